"""The lab DNS server on the real kernel: dnspython queries from sockets made inside node
namespaces (asking the server each node's resolv.conf names), `getent hosts` through
`ip netns exec`, reconcile of records, restart of a dead server, and nothing left at down.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from netlab.core import kernel
from netlab.core import lab as labops
from netlab.core.loader import load_text
from netlab.core.state import LabState, lab_dir
from netlab.dns.resolv import shared_root
from netlab.dns.server import alive, files, start_time
from tests.conftest import module_lab, nsexec

pytestmark = pytest.mark.kernel

LAB = "dn-k1"
TOPO = f"""
name: {LAB}
domain: k1.test
networks:
  lan: {{subnet: 10.171.0.0/24}}
  dmz: {{subnet: 10.172.0.0/24}}
nodes:
  gw: {{kind: router, networks: {{lan: 10.171.0.1, dmz: 10.172.0.1}}}}
  pc1: {{networks: [lan]}}
  web: {{networks: {{dmz: 10.172.0.10}}}}
  edge: {{kind: router, networks: [dmz]}}
  far: {{}}
links:
  - endpoints: [edge:eth5, far:eth0]
    subnet: 10.173.0.0/30
dns:
  ttl: 30
  records:
    - {{name: api, cname: web}}
    - {{name: vip, a: [10.172.0.100, 10.172.0.101]}}
    - {{name: www, a: 10.172.0.10}}
    - {{name: _http._tcp.web, srv: {{target: web, port: 80, priority: 5, weight: 7}}}}
    - {{name: web, txt: ["role=frontend", "tier=1"]}}
"""


def nameserver(ns: str) -> str:
    """The first nameserver of the node's resolv.conf (what `ip netns exec` tools use)."""
    with open(f"/etc/netns/{ns}/resolv.conf") as f:
        return next(line.split()[1] for line in f if line.startswith("nameserver"))


def ask(ns: str, name: str, rdtype: str = "A", tcp: bool = False, server: str | None = None):
    """A DNS query from a socket made inside the node's namespace."""
    server = server or nameserver(ns)
    query = dns.message.make_query(name, rdtype)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with kernel.entered(ns):
        sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    sock.setblocking(False)             # dnspython waits with select() on a non-blocking socket
    try:
        if tcp:
            sock.settimeout(3)
            sock.connect((server, 53))
            sock.setblocking(False)
            return dns.query.tcp(query, server, timeout=3, sock=sock)
        return dns.query.udp(query, server, timeout=3, sock=sock)
    finally:
        sock.close()


def values(reply, rdtype: str) -> list[str]:
    kind = dns.rdatatype.from_text(rdtype)
    return sorted(r.to_text() for rrset in reply.answer if rrset.rdtype == kind for r in rrset)


def getent(ns: str, *names: str) -> dict[str, list[str]]:
    """name -> the words `getent hosts` prints for it (address first), inside the node."""
    found = {}
    for name in names:
        out = nsexec(ns, "getent", "hosts", name)
        found[name] = out.stdout.split() if out.returncode == 0 else []
    return found


def eventually(fn, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = fn()
        except dns.exception.Timeout:
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def dns_pids(lab: str) -> list[int]:
    """Live (non-zombie) processes running this lab's DNS configuration."""
    conf = files(lab)["conf"].encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if conf in f.read() and start_time(int(entry)) is not None:
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def bridge_mac(ns: str, bridge: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show", bridge], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[out.index("link/ether") + 1]


lab = module_lab(TOPO)


# --- answers -------------------------------------------------------------------------

def test_short_and_full_names_resolve_with_getent(lab):
    seen = getent(f"{LAB}-pc1", "web", "web.k1.test", "api", "far", "edge.eth5", "gw.dmz")
    assert seen["web"][:2] == ["10.172.0.10", "web.k1.test"]
    assert seen["web.k1.test"][0] == "10.172.0.10"
    assert seen["api"][0] == "10.172.0.10" and "api.k1.test" in seen["api"]
    assert seen["far"][0] == "10.173.0.2"
    assert seen["edge.eth5"][0] == "10.173.0.1"
    assert seen["gw.dmz"][0] == "10.172.0.1"
    assert getent(f"{LAB}-pc1", "nosuchnode")["nosuchnode"] == []


def test_a_node_name_answers_with_the_address_on_the_askers_segment(lab):
    assert values(ask(f"{LAB}-pc1", "gw.k1.test"), "A") == ["10.171.0.1"]
    assert values(ask(f"{LAB}-web", "gw.k1.test"), "A") == ["10.172.0.1"]


def test_per_interface_names(lab):
    for ns in (f"{LAB}-pc1", f"{LAB}-web"):
        assert values(ask(ns, "gw.lan.k1.test"), "A") == ["10.171.0.1"]
        assert values(ask(ns, "gw.dmz.k1.test"), "A") == ["10.172.0.1"]
        assert values(ask(ns, "edge.eth5.k1.test"), "A") == ["10.173.0.1"]


def test_ptr_for_every_lab_address(lab):
    expected = {"10.171.0.1": "gw", "10.172.0.1": "gw", "10.172.0.10": "web", "10.173.0.1": "edge",
                "10.173.0.2": "far", "10.172.0.100": "vip"}
    for address, node in expected.items():
        name = ".".join(reversed(address.split("."))) + ".in-addr.arpa"
        reply = ask(f"{LAB}-pc1", name, "PTR")
        assert values(reply, "PTR") == [f"{node}.k1.test."], address   # www shares web's address
    assert nsexec(f"{LAB}-web", "getent", "hosts", "10.171.0.2").stdout.split()[1] == "pc1.k1.test"


def test_srv_cname_txt_with_the_ttl_and_authority(lab):
    srv = ask(f"{LAB}-pc1", "_http._tcp.web.k1.test", "SRV")
    assert values(srv, "SRV") == ["5 7 80 web.k1.test."]
    assert srv.answer[0].ttl == 30 and srv.flags & dns.flags.AA
    cname = ask(f"{LAB}-pc1", "api.k1.test")
    assert values(cname, "CNAME") == ["web.k1.test."] and values(cname, "A") == ["10.172.0.10"]
    assert all(rrset.ttl == 30 for rrset in cname.answer)
    assert values(ask(f"{LAB}-pc1", "web.k1.test", "TXT"), "TXT") == ['"role=frontend" "tier=1"']
    assert values(ask(f"{LAB}-pc1", "vip.k1.test"), "A") == ["10.172.0.100", "10.172.0.101"]
    a = ask(f"{LAB}-pc1", "pc1.k1.test")
    assert a.answer[0].ttl == 30 and a.flags & dns.flags.AA


def test_nxdomain_for_unknown_names_and_nothing_outside_the_lab(lab):
    for name, rdtype in (("nosuch.k1.test", "A"), ("example.com", "A"), ("com", "NS"),
                         ("77.0.171.10.in-addr.arpa", "PTR"), ("8.8.8.8.in-addr.arpa", "PTR")):
        assert ask(f"{LAB}-pc1", name, rdtype).rcode() == dns.rcode.NXDOMAIN, name


def test_tcp_answers_like_udp(lab):
    for name, rdtype in (("web.k1.test", "A"), ("_http._tcp.web.k1.test", "SRV")):
        tcp = ask(f"{LAB}-web", name, rdtype, tcp=True)
        assert values(tcp, rdtype) == values(ask(f"{LAB}-web", name, rdtype), rdtype) != []


def test_a_node_on_links_only_asks_through_its_routers(lab):
    assert nameserver(f"{LAB}-far") == "10.172.0.254"
    assert values(ask(f"{LAB}-far", "pc1.k1.test"), "A") == ["10.171.0.2"]
    assert getent(f"{LAB}-far", "web")["web"][0] == "10.172.0.10"


def test_every_node_resolves_every_other(lab):
    nodes = sorted(lab.nodes)
    for src in nodes:
        seen = getent(lab.netns(src), *nodes)
        assert all(seen[dst] for dst in nodes), (src, seen)


def test_server_sits_in_the_lab_namespace_which_does_not_forward(lab):
    st = LabState.load(LAB)
    record = st.extras["dns"]
    assert alive(record)
    assert os.stat(f"/proc/{record['pid']}/ns/net").st_ino == kernel.netns_inode(f"{LAB}--lab")
    assert st.plan.meta["dns"]["servers"] == {"lan": "10.171.0.254", "dmz": "10.172.0.254"}
    with kernel.entered(f"{LAB}--lab"):
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            assert f.read().strip() == "0"
    with open(f"/etc/netns/{LAB}-pc1/resolv.conf") as f:
        assert "search k1.test" in f.read()
    assert labops.status(LAB)[0]["dns"]["running"] is True


# --- lifecycle ---------------------------------------------------------------------

BASE = """
name: dn-k2
networks:
  lan: {subnet: 10.174.0.0/24}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan]}
"""


def test_reconcile_updates_records_without_restarting_the_server(deploy):
    deploy(BASE)
    pid = LabState.load("dn-k2").extras["dns"]["pid"]
    assert values(ask("dn-k2-a", "b.dn-k2.lab"), "A") == ["10.174.0.2"]
    assert os.path.exists("/etc/netns/dn-k2-b/resolv.conf")

    mac = bridge_mac("dn-k2--lab", "lan")
    changed = BASE.replace("  b: {networks: [lan]}", "  c: {networks: {lan: 10.174.0.30}}")
    result = labops.up(load_text(changed))
    assert result.changed
    assert bridge_mac("dn-k2--lab", "lan") == mac     # the server's MAC stays put for ARP caches
    assert LabState.load("dn-k2").extras["dns"]["pid"] == pid          # re-read, not restarted
    assert eventually(lambda: values(ask("dn-k2-a", "c.dn-k2.lab"), "A") == ["10.174.0.30"])
    assert ask("dn-k2-a", "b.dn-k2.lab").rcode() == dns.rcode.NXDOMAIN
    assert getent("dn-k2-c", "a")["a"][0] == "10.174.0.1"
    assert not os.path.exists("/etc/netns/dn-k2-b")                     # b's files went with b

    with_record = changed + "dns: {records: [{name: db, cname: c}]}\n"
    labops.up(load_text(with_record))
    assert values(ask("dn-k2-a", "db.dn-k2.lab"), "CNAME") == ["c.dn-k2.lab."]
    assert labops.up(load_text(with_record)).changed is False


def test_up_restarts_a_server_that_died(deploy):
    topo = deploy(BASE.replace("dn-k2", "dn-k3").replace("10.174", "10.175"))
    old = LabState.load("dn-k3").extras["dns"]
    os.kill(old["pid"], signal.SIGKILL)
    assert eventually(lambda: not alive(old))
    assert labops.status("dn-k3")[0]["healthy"] is False
    labops.up(topo)
    new = LabState.load("dn-k3").extras["dns"]
    assert alive(new) and new["pid"] != old["pid"]
    assert values(ask("dn-k3-a", "b.dn-k3.lab"), "A") == ["10.175.0.2"]
    assert labops.status("dn-k3")[0]["healthy"] is True


def test_down_leaves_no_process_and_no_file():
    topo = load_text(BASE.replace("dn-k2", "dn-k4").replace("10.174", "10.176"))
    try:
        labops.up(topo)
        pid = LabState.load("dn-k4").extras["dns"]["pid"]
        assert dns_pids("dn-k4") == [pid]
        assert sorted(os.listdir("/etc/netns/dn-k4-a")) == ["hosts", "resolv.conf"]
    finally:
        labops.down("dn-k4")
    assert eventually(lambda: not dns_pids("dn-k4"))
    assert not any(os.path.lexists(f"/etc/netns/dn-k4-{n}") for n in ("a", "b"))
    assert not os.path.exists(lab_dir("dn-k4"))
    assert not os.path.exists(shared_root("dn-k4"))


def test_down_without_state_still_removes_the_nodes_files():
    topo = load_text(BASE.replace("dn-k2", "dn-k5").replace("10.174", "10.177"))
    try:
        labops.up(topo)
        os.unlink(os.path.join(lab_dir("dn-k5"), "state.json"))     # state lost (a crash)
    finally:
        labops.down("dn-k5")
    assert eventually(lambda: not dns_pids("dn-k5"))
    assert not os.path.exists("/etc/netns/dn-k5-a")


def test_dns_false_runs_no_server(deploy):
    deploy(BASE.replace("dn-k2", "dn-k6").replace("10.174", "10.178") + "dns: false\n")
    assert "dns" not in LabState.load("dn-k6").extras
    assert not os.path.exists("/etc/netns/dn-k6-a")
    assert not dns_pids("dn-k6")


def test_a_server_that_cannot_start_fails_up_and_leaves_nothing(monkeypatch):
    from netlab.core.errors import ApplyError
    from netlab.dns import server as backend
    monkeypatch.setattr(backend, "dnsmasq_binary", lambda: "/bin/false")
    topo = load_text(BASE.replace("dn-k2", "dn-k8").replace("10.174", "10.180"))
    try:
        with pytest.raises(ApplyError, match="dns server in dn-k8--lab"):
            labops.up(topo)
        assert not [n for n in kernel.list_netns() if n.startswith("dn-k8-")]
        assert not [n for n in kernel.list_netns() if n.startswith("dn-k8-")]
        assert not any(os.path.lexists(f"/etc/netns/dn-k8-{n}") for n in ("a", "b"))
        assert LabState.load("dn-k8") is None
    finally:
        labops.down("dn-k8")


def test_dns_passes_a_router_whose_firewall_drops_everything_else(deploy):
    deploy("""
name: dn-k9
networks:
  core: {subnet: 10.181.0.0/24}
nodes:
  edge: {kind: router, networks: [core], firewall: {policy: drop}}
  srv: {networks: [core]}
  leaf: {}
links:
  - endpoints: [edge:eth5, leaf:eth0]
    subnet: 10.182.0.0/30
""")
    assert nameserver("dn-k9-leaf") == "10.181.0.254"                  # through edge
    assert getent("dn-k9-leaf", "srv")["srv"][0] == "10.181.0.2"
    assert nsexec("dn-k9-leaf", "ping", "-c", "1", "-W", "1", "10.181.0.2").returncode != 0


def test_dual_stack_nodes_get_aaaa_and_ip6_ptr(deploy):
    deploy("""
name: dn-k10
networks:
  lan: {subnet: 10.183.0.0/24, subnet6: "2001:db8:183::/64"}
  dmz: {subnet: 10.184.0.0/24, subnet6: "2001:db8:184::/64"}
nodes:
  r: {kind: router, networks: [lan, dmz]}
  a: {networks: [lan]}
  b: {networks: {dmz: [10.184.0.9, "2001:db8:184::9"]}}
  c: {networks: [v6only]}
  r6: {kind: router, networks: [dmz, v6only]}
dns: {records: [{name: v6svc, aaaa: "2001:db8:184::99"}]}
""".replace("nodes:", "  v6only: {subnet6: \"2001:db8:185::/64\"}\nnodes:"))
    assert values(ask("dn-k10-a", "b.dn-k10.lab", "AAAA"), "AAAA") == ["2001:db8:184::9"]
    assert values(ask("dn-k10-a", "b.dn-k10.lab"), "A") == ["10.184.0.9"]
    # dnsmasq narrows only A answers to the asker's segment (localise-queries), not AAAA ones
    assert values(ask("dn-k10-a", "r.dn-k10.lab", "AAAA"), "AAAA") == ["2001:db8:183::1", "2001:db8:184::1"]
    assert values(ask("dn-k10-a", "r.dn-k10.lab"), "A") == ["10.183.0.1"]
    assert values(ask("dn-k10-a", "v6svc.dn-k10.lab", "AAAA"), "AAAA") == ["2001:db8:184::99"]
    # a node on an IPv6-only network asks the server over IPv6, on-link
    assert nameserver("dn-k10-c") == "2001:db8:185:0:ffff:ffff:ffff:ffff"
    assert getent("dn-k10-c", "a")["a"][0] in ("10.183.0.2", "2001:db8:183::2")
    assert values(ask("dn-k10-c", "b.dn-k10.lab", "AAAA"), "AAAA") == ["2001:db8:184::9"]
    ptr = ask("dn-k10-a", "9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.8.1.0.8.b.d.0.1.0.0.2.ip6.arpa", "PTR")
    assert values(ptr, "PTR") == ["b.dn-k10.lab."]


def test_turning_dns_off_and_on_on_a_live_lab(deploy):
    text = BASE.replace("dn-k2", "dn-k11").replace("10.174", "10.187")
    deploy(text)
    pid = LabState.load("dn-k11").extras["dns"]["pid"]
    labops.up(load_text(text + "dns: false\n"))
    assert eventually(lambda: not dns_pids("dn-k11")) and start_time(pid) is None
    assert "dns" not in LabState.load("dn-k11").extras
    assert not os.path.lexists("/etc/netns/dn-k11-a") and not os.path.exists(shared_root("dn-k11"))
    assert not [f for f in os.listdir(lab_dir("dn-k11")) if f.startswith("dns.")]
    labops.up(load_text(text))
    assert getent("dn-k11-a", "b")["b"][0] == "10.187.0.2"


# --- containers ----------------------------------------------------------------------

@pytest.mark.docker
def test_a_container_resolves_a_namespace_node_and_back(deploy):
    from tests.containers.busybox_image import IMAGE, build_image
    build_image(IMAGE)
    deploy(f"""
name: dn-k7
networks:
  lan: {{subnet: 10.179.0.0/24}}
nodes:
  pc1: {{networks: [lan]}}
  box: {{image: "{IMAGE}", networks: [lan]}}
""")
    out = subprocess.run(["docker", "exec", "dn-k7-box", "nslookup", "pc1"], capture_output=True,
                         text=True, timeout=30)
    assert "10.179.0.1" in out.stdout, out.stdout + out.stderr
    ping = subprocess.run(["docker", "exec", "dn-k7-box", "ping", "-c", "1", "-W", "2", "pc1"],
                          capture_output=True, text=True, timeout=30)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert getent("dn-k7-pc1", "box")["box"][0] == "10.179.0.2"
    assert values(ask("dn-k7-box", "pc1.dn-k7.lab", server="10.179.0.254"), "A") == ["10.179.0.1"]
