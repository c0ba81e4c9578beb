"""NAT and firewalls on the real kernel: nft tables inside node namespaces, traffic from
plain sockets made inside those namespaces (servers report the source address they saw).

Labs: tests/nft/golden/nft_branch.yml and nft_vpc.yml are the examples without their services
and checks, so these tests depend on nothing but the core and nftables.
"""
from __future__ import annotations

import errno
import pathlib
import socket
import subprocess
import threading

import pytest

from netlab.core import kernel
from netlab.core import lab as labops
from netlab.core.errors import ApplyError
from netlab.core.loader import load_text
from netlab.core.state import LabState
from netlab.nft.compile import NftRuleset
from netlab.nft.kernel import node_rules
from tests.conftest import nsexec

pytestmark = pytest.mark.kernel
GOLDEN = pathlib.Path(__file__).parent / "golden"


class Server:
    """TCP or UDP server inside a namespace; answers every peer with the address it saw."""

    def __init__(self, ns: str, address: str, port: int, udp: bool = False):
        with kernel.entered(ns):
            self.sock = socket.socket(family(address), socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.udp = udp
        if not udp:
            self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                if self.udp:
                    _, peer = self.sock.recvfrom(2048)
                    if peer is None:
                        return
                    self.sock.sendto(f"seen {peer[0]}".encode(), peer)
                else:
                    conn, peer = self.sock.accept()
                    with conn:
                        conn.sendall(f"seen {peer[0]}".encode())
            except OSError:
                return

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def servers():
    made: list[Server] = []

    def start(ns, address, port, udp=False):
        made.append(Server(ns, address, port, udp))
        return made[-1]

    yield start
    for s in made:
        s.close()


def family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def tcp(ns: str, address: str, port: int, timeout: float = 1.0) -> str:
    """'seen A.B.C.D' from our server, 'refused', or 'timeout'."""
    with kernel.entered(ns):
        sock = socket.socket(family(address), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        return sock.recv(100).decode()
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "timeout" if isinstance(e, TimeoutError) else f"error {e.strerror}"
    finally:
        sock.close()


def udp(ns: str, address: str, port: int, timeout: float = 1.0) -> str:
    with kernel.entered(ns):
        sock = socket.socket(family(address), socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        sock.send(b"hi")
        return sock.recv(100).decode()
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "unreachable" if e.errno == errno.EHOSTUNREACH else f"error {e.strerror}"
    finally:
        sock.close()


def expect(probe, ns: str, address: str, port: int, want: str) -> None:
    """Probe quickly when a timeout is what we expect; give success time on a busy machine."""
    got = probe(ns, address, port, timeout=1.0 if want == "timeout" else 5.0)
    assert got == want, f"{probe.__name__} {ns} -> {address}:{port}: {got!r}, expected {want!r}"


def ping(ns: str, address: str) -> bool:
    return nsexec(ns, "ping", "-c", "1", "-W", "1", address).returncode == 0


def root_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def counters(lab: str, node: str) -> dict[tuple[str, str], int]:
    st = LabState.load(lab)
    step = next(s for s in st.plan.steps if isinstance(s, NftRuleset) and s.node == node)
    data = node_rules(step)
    return {(c, r["from"]): r["packets"] for c, chain in data["chains"].items() for r in chain["rules"]}


def test_branch_nat_port_forward_and_firewall(deploy, servers):
    before = root_tables()
    topo = deploy(str(GOLDEN / "nft_branch.yml"))
    ns = topo.netns
    assert root_tables() == before, "nothing may appear in the host's own ruleset"
    assert "table inet netlab" in nsexec(ns("gw"), "nft", "list", "tables").stdout

    servers(ns("isp"), "198.51.100.1", 9000)
    servers(ns("isp"), "198.51.100.1", 7, udp=True)
    servers(ns("web"), "10.20.0.2", 80)
    servers(ns("pc1"), "0.0.0.0", 22)
    servers(ns("pc2"), "0.0.0.0", 22)

    # masquerade: the wan server sees the router's wan address; replies come back (established)
    expect(tcp, ns("pc1"), "198.51.100.1", 9000, want="seen 198.51.100.2")
    expect(udp, ns("pc2"), "198.51.100.1", 7, want="seen 198.51.100.2")
    # the port forward reaches the dmz server, which sees the real client
    expect(tcp, ns("isp"), "198.51.100.2", 8080, want="seen 198.51.100.1")
    # hairpin: the lan uses the outside address too
    expect(tcp, ns("pc1"), "198.51.100.2", 8080, want="seen 10.10.0.2")
    # the web server only through the forward; the lan never from outside (dropped)
    expect(tcp, ns("isp"), "10.20.0.2", 80, want="timeout")
    expect(tcp, ns("isp"), "10.10.0.2", 22, want="timeout")
    assert not ping(ns("isp"), "10.10.0.2")
    # the dmz is refused fast on the way to the lan (reject rule: TCP reset)
    expect(tcp, ns("web"), "10.10.0.50", 22, want="refused")
    # ICMP to the router itself is allowed from anywhere
    assert ping(ns("isp"), "198.51.100.2")

    seen = counters(topo.name, "gw")
    assert seen[("postrouting", "nat.masquerade[0]")] >= 2
    assert seen[("prerouting", "nat.forward[0]")] >= 2
    assert seen[("forward", "firewall.reject[0]/tcp")] >= 1
    assert seen[("forward", "firewall.policy")] >= 1


def test_vpc_private_subnet_behind_nat_gateway_and_bastion(deploy, servers):
    topo = deploy(str(GOLDEN / "nft_vpc.yml"))
    ns = topo.netns
    servers(ns("ext"), "203.0.113.50", 9000)
    servers(ns("bastion"), "10.0.1.10", 22)
    servers(ns("bastion"), "10.0.1.10", 9000)
    for app, address in (("app1", "10.0.2.11"), ("app2", "10.0.2.12")):
        servers(ns(app), address, 22)
        servers(ns(app), address, 80)

    expect(tcp, ns("app1"), "203.0.113.50", 9000, want="seen 203.0.113.1")   # out through both NATs
    expect(tcp, ns("app1"), "10.0.1.10", 22, want="seen 10.0.1.2")           # the NAT gateway's address
    expect(tcp, ns("ext"), "203.0.113.1", 22, want="seen 203.0.113.50")      # ssh to the bastion
    expect(tcp, ns("bastion"), "10.0.2.11", 22, want="seen 10.0.1.10")       # the bastion gets in
    expect(tcp, ns("app1"), "10.0.2.12", 80, want="seen 10.0.2.11")          # inside the subnet
    expect(tcp, ns("ext"), "10.0.1.10", 22, want="timeout")                  # only via the address
    expect(tcp, ns("ext"), "10.0.2.11", 22, want="timeout")
    expect(tcp, ns("web"), "10.0.2.11", 22, want="timeout")                  # public, not the bastion
    expect(tcp, ns("bastion"), "10.0.2.11", 80, want="timeout")              # only ssh
    expect(tcp, ns("ext"), "203.0.113.1", 9000, want="timeout")              # no forward for it
    # app2's security group rejects (policy reject) what is not allowed: a TCP reset
    expect(tcp, ns("natgw"), "10.0.2.12", 9999, want="refused")


HOST_FW = """
name: fwt-rej
dns: false            # this file's reconcile test counts steps: only the core and nft
networks:
  lan: {subnet: 10.77.0.0/24}
nodes:
  a: {networks: {lan: 10.77.0.10}}
  b:
    networks: {lan: 10.77.0.20}
    firewall:
      policy: %s
      allow: [{port: 22/tcp}]
"""


@pytest.mark.parametrize("policy, outcome", [("drop", "timeout"), ("reject", "refused"), ("accept", "seen 10.77.0.10")])
def test_input_policies(deploy, servers, policy, outcome):
    topo = deploy(HOST_FW % policy)
    servers(topo.netns("b"), "10.77.0.20", 22)
    servers(topo.netns("b"), "10.77.0.20", 80)
    expect(tcp, topo.netns("a"), "10.77.0.20", 22, want="seen 10.77.0.10")
    expect(tcp, topo.netns("a"), "10.77.0.20", 80, want=outcome)
    expect(udp, topo.netns("a"), "10.77.0.20", 53, want={"drop": "timeout", "reject": "unreachable", "accept": "refused"}[policy])


def test_reconcile_reapplies_only_a_changed_ruleset(deploy, servers):
    topo = deploy(HOST_FW % "drop")
    servers(topo.netns("b"), "10.77.0.20", 80)
    expect(tcp, topo.netns("a"), "10.77.0.20", 80, want="timeout")
    again = labops.up(load_text(HOST_FW % "drop"))
    assert (again.created, again.deleted) == (0, 0)
    changed = labops.up(load_text((HOST_FW % "drop").replace("port: 22/tcp", "port: [22, 80], proto: tcp")))
    assert (changed.created, changed.deleted) == (1, 1)
    expect(tcp, topo.netns("a"), "10.77.0.20", 80, want="seen 10.77.0.10")
    # removing the firewall removes netlab's table and nothing else
    subprocess.run(["ip", "netns", "exec", topo.netns("b"), "nft", "add", "table", "ip", "mine"], check=True)
    gone = labops.up(load_text((HOST_FW % "drop").split("    firewall:")[0]))
    assert (gone.created, gone.deleted) == (0, 1)
    tables = nsexec(topo.netns("b"), "nft", "list", "tables").stdout
    assert "netlab" not in tables and "table ip mine" in tables


def test_down_leaves_no_netlab_ruleset_anywhere(deploy):
    topo = deploy(str(GOLDEN / "nft_branch.yml"))
    names = [topo.netns(n) for n in topo.nodes]
    labops.down(topo.name)
    assert not any(kernel.netns_exists(n) for n in names)
    assert "netlab" not in root_tables()
    for other in kernel.list_netns():
        if other.startswith(topo.name + "-"):
            pytest.fail(f"{other} survived down")


REFUSED = """
name: fwt-ref
networks:
  lan: {subnet: 10.78.0.0/24}
nodes:
  a: {networks: [lan]}
  gw:
    kind: router
    networks: [lan]
    firewall:
      raw: {forward: ["%s"]}
"""


@pytest.mark.parametrize("rule, message", [
    ("socket transparent 1 accept", "Could not process rule: Operation not supported"),   # missing in this kernel
    ("meta nosuchthing 1 accept", "syntax error"),
])
def test_refused_ruleset_fails_up_names_the_node_and_leaves_nothing(rule, message):
    topo = load_text(REFUSED % rule)
    try:
        with pytest.raises(ApplyError) as info:
            labops.up(topo)
        text = str(info.value)
        assert text.startswith("node gw: nftables refused its ruleset: ") and message in text
        assert "firewall.raw.forward[0]" in text
        assert LabState.load(topo.name) is None
        assert not [n for n in kernel.list_netns() if n.startswith(topo.name + "-")]
    finally:
        labops.down(topo.name)


def test_cli_up_of_a_refused_ruleset_exits_1_with_one_line(tmp_path):
    path = tmp_path / "refused.yml"
    path.write_text(REFUSED % "socket transparent 1 accept")
    try:
        proc = subprocess.run(["python3", "-c", "from netlab.cli import main; main()", "up", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1 and "node gw: nftables refused" in proc.stderr
    finally:
        labops.down("fwt-ref")


def test_every_knob_is_accepted_by_the_kernel_and_behaves(deploy, servers):
    """tests/nft/golden/nft_features.yml: SNAT to a fixed address, DNAT limited by source and
    interface, logging, reject policies, raw rules: all loaded by this kernel."""
    topo = deploy(str(GOLDEN / "nft_features.yml"))
    ns = topo.netns
    servers(ns("far"), "192.0.2.99", 9000)
    servers(ns("srv"), "10.2.0.10", 8000)
    servers(ns("srv"), "10.2.0.10", 8080)
    servers(ns("srv"), "10.2.0.10", 22)
    servers(ns("srv"), "10.2.0.10", 5000, udp=True)
    expect(tcp, ns("pc"), "192.0.2.99", 9000, want="seen 192.0.2.1")        # snat to a fixed address
    expect(tcp, ns("pc"), "10.2.0.10", 8000, want="seen 10.1.0.10")         # srv allows the lan
    expect(tcp, ns("pc"), "10.2.0.10", 8080, want="timeout")                # srv denies pc:8080
    expect(tcp, ns("far"), "192.0.2.1", 2222, want="timeout")               # forward only from 192.0.2.128/25
    expect(udp, ns("far"), "192.0.2.1", 5000, want="unreachable")           # forwarded; srv rejects
    expect(tcp, ns("far"), "10.2.0.10", 22, want="refused")                 # r1 forward policy reject


@pytest.mark.docker
def test_container_node_gets_its_firewall_in_its_own_namespace(deploy, servers):
    from tests.containers.busybox_image import IMAGE, build_image
    build_image(IMAGE)
    topo = deploy(f"""
name: fwt-box
networks:
  lan: {{subnet: 10.79.0.0/24}}
nodes:
  pc: {{networks: {{lan: 10.79.0.10}}}}
  box:
    image: "{IMAGE}"
    networks: {{lan: 10.79.0.20}}
    firewall: {{policy: reject, allow: [{{port: 22/tcp}}]}}
""")
    servers(topo.netns("box"), "10.79.0.20", 22)
    servers(topo.netns("box"), "10.79.0.20", 80)
    expect(tcp, topo.netns("pc"), "10.79.0.20", 22, want="seen 10.79.0.10")
    expect(tcp, topo.netns("pc"), "10.79.0.20", 80, want="refused")
    assert "netlab" in nsexec(topo.netns("box"), "nft", "list", "tables").stdout
    assert "netlab" not in root_tables()


def test_status_json_shows_rules_with_counters(deploy):
    topo = deploy(HOST_FW % "drop")
    nsexec(topo.netns("a"), "ping", "-c", "1", "-W", "1", "10.77.0.20")
    entry = labops.status(topo.name)[0]
    node = next(n for n in entry["nodes"] if n["name"] == "b")
    rules = {r["from"]: r for r in node["nft"]["chains"]["input"]["rules"]}
    assert rules["firewall.policy"]["packets"] >= 1
    assert rules["firewall.allow[0]"]["rule"] == "tcp dport 22 counter accept"
    assert "nft" not in next(n for n in entry["nodes"] if n["name"] == "a")
    proc = subprocess.run(["python3", "-c", "from netlab.cli import main; main()", "rules", topo.name, "b"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "[firewall.allow[0]]" in proc.stdout


def test_nft_command_fallback_when_libnftables_is_missing(deploy, servers, monkeypatch):
    import netlab.nft.kernel as backend
    monkeypatch.setattr(backend, "_LIB", None)
    topo = deploy(HOST_FW % "reject")
    servers(topo.netns("b"), "10.77.0.20", 80)
    expect(tcp, topo.netns("a"), "10.77.0.20", 80, want="refused")
    entry = labops.status(topo.name)[0]
    node = next(n for n in entry["nodes"] if n["name"] == "b")
    assert {r["from"] for r in node["nft"]["chains"]["input"]["rules"]} >= {"firewall.allow[0]", "firewall.policy"}
    with pytest.raises(ApplyError, match="node b: nftables refused its ruleset: .*firewall.raw.input"):
        labops.up(load_text((HOST_FW % "drop").replace("      allow:", "      raw: [\"meta nosuch 1\"]\n      allow:")))


def test_refused_change_keeps_the_old_rules_in_force(deploy, servers):
    topo = deploy(HOST_FW % "drop")
    servers(topo.netns("b"), "10.77.0.20", 80)
    bad = (HOST_FW % "accept").replace("      allow:", "      raw: [\"masquerade\"]\n      allow:")   # only nat chains may
    with pytest.raises(ApplyError, match="node b: nftables refused"):
        labops.up(load_text(bad))
    expect(tcp, topo.netns("a"), "10.77.0.20", 80, want="timeout")       # still the old drop policy
    fixed = labops.up(load_text(HOST_FW % "accept"))
    assert fixed.created == 1
    expect(tcp, topo.netns("a"), "10.77.0.20", 80, want="seen 10.77.0.10")


def test_dual_stack_filters_both_families_and_nats_only_ipv4(deploy, servers):
    topo = deploy(str(GOLDEN / "nft_dualstack.yml"))
    ns = topo.netns
    servers(ns("isp"), "10.81.2.1", 9000)
    servers(ns("isp"), "fd81:2::1", 9000)
    servers(ns("isp"), "fd81:2::1", 443)
    servers(ns("pc"), "fd81:1::10", 22)
    servers(ns("pc"), "fd81:1::10", 80)
    servers(ns("srv"), "fd81:1::20", 22)
    servers(ns("srv"), "fd81:1::20", 80)
    expect(tcp, ns("pc"), "10.81.2.1", 9000, want="seen 10.81.2.2")          # IPv4: masqueraded
    expect(tcp, ns("pc"), "fd81:2::1", 9000, want="seen fd81:1::10")         # IPv6: routed as is
    expect(tcp, ns("isp"), "fd81:1::10", 22, want="seen fd81:2::1")
    expect(tcp, ns("isp"), "fd81:1::10", 80, want="timeout")
    expect(tcp, ns("sensor"), "fd81:2::1", 443, want="seen fd81:3::10")
    expect(tcp, ns("sensor"), "fd81:2::1", 9000, want="timeout")
    # a host under a reject policy: neighbour discovery still works, the rest is refused
    expect(tcp, ns("pc"), "fd81:1::20", 22, want="seen fd81:1::10")
    expect(tcp, ns("pc"), "fd81:1::20", 80, want="refused")
    assert nsexec(ns("pc"), "ping", "-6", "-c", "1", "-W", "2", "fd81:1::20").returncode == 0
    assert nsexec(ns("isp"), "ping", "-6", "-c", "1", "-W", "1", "fd81:1::20").returncode != 0
