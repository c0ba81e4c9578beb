"""Tunnels on the real kernel: VXLAN here; GRE and GRETAP in the full-kernel VM
(`tests/vm/run -- python3 -m pytest -m fullkernel tests/tunnels/test_kernel.py`), and
their clear refusal on a kernel without ip_gre.

Traffic stays between the lab's namespaces; the underlay is captured with an AF_PACKET
socket made inside a lab namespace. Every lab is removed by the `deploy` fixture.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys

import pytest

from netlab.core import kernel, state
from netlab.core import lab as labops
from netlab.core.compiler import compile_topology
from netlab.core.errors import ApplyError
from netlab.core.loader import load_text
from netlab.tunnels import kernel as backend
from tests.conftest import nsexec

ETH_P_ALL = 0x0003

TWO_SITES = """
name: %(name)s
networks:
  stretched: {subnet: 10.50.0.0/24%(mtu)s}
nodes:
  core: {kind: router}
  site-a: {kind: router}
  site-b: {kind: router}
  site-a-h1: {networks: [stretched]}
  site-a-h2: {networks: [stretched]}
  site-b-h1: {networks: [stretched]}
links:
  - {endpoints: ["site-a:eth0", "core:eth0"], subnet: 192.0.2.0/30}
  - {endpoints: ["site-b:eth0", "core:eth1"], subnet: 192.0.2.4/30}
tunnels:
  - {type: %(type)s, %(ident)s endpoints: [site-a, site-b], network: stretched}
"""

TOPOLOGIES = os.path.join(os.path.dirname(__file__), "..", "..", "topologies")
GRE_HUB = os.path.join(TOPOLOGIES, "gre.yml")


def two_sites(name, type_="vxlan", ident="id: 42,", mtu=""):
    return TWO_SITES % {"name": name, "type": type_, "ident": ident, "mtu": mtu}


class Capture:
    """An AF_PACKET socket opened inside a namespace, on one interface."""

    def __init__(self, ns: str, ifname: str):
        with kernel.entered(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.setblocking(False)

    def frames(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                return out

    def close(self):
        self.sock.close()


def ipv4(frame: bytes):
    """(protocol, src, dst, payload) of an IPv4 frame, else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    return frame[23], socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34]), frame[14 + ihl:]


def vxlan_frames(frames, port=4789):
    """(vni, inner ethernet frame) of each VXLAN packet among the frames."""
    found = []
    for frame in frames:
        ip = ipv4(frame)
        if ip and ip[0] == socket.IPPROTO_UDP and struct.unpack("!H", ip[3][2:4])[0] == port:
            vx = ip[3][8:]
            found.append((int.from_bytes(vx[4:7], "big"), vx[8:]))
    return found


def gre_packets(frames):
    """(protocol type, key or None, payload) of each GRE packet among the frames."""
    found = []
    for frame in frames:
        ip = ipv4(frame)
        if ip and ip[0] == 47:
            flags, proto = struct.unpack("!HH", ip[3][:4])
            key = struct.unpack("!I", ip[3][4:8])[0] if flags & 0x2000 else None
            found.append((proto, key, ip[3][8 if key is not None else 4:]))
    return found


def mac_of(ns: str, ifname: str) -> str:
    out = nsexec(ns, "ip", "-j", "link", "show", ifname, check=True).stdout
    return json.loads(out)[0]["address"]


def neighbour(ns: str, address: str) -> str | None:
    out = nsexec(ns, "ip", "-j", "neigh", "show", address, check=True).stdout
    entries = json.loads(out or "[]")
    return entries[0].get("lladdr") if entries else None


def ping(ns: str, address: str, size: int = 56, df: bool = False, count: int = 1) -> bool:
    args = ["ping", "-n", "-c", str(count), "-W", "1", "-s", str(size)]
    if df:
        args += ["-M", "do"]
    return nsexec(ns, *args, address).returncode == 0


# ---------------------------------------------------------------- VXLAN, this kernel

@pytest.mark.kernel
def test_vxlan_hosts_at_both_sites_ping_and_arp_each_other(deploy):
    topo = deploy(two_sites("ov-t-vx"))
    a1, b1 = topo.netns("site-a-h1"), topo.netns("site-b-h1")
    cap = Capture(topo.netns("core"), "eth0")
    try:
        assert ping(a1, "10.50.0.3", count=2)
        frames = cap.frames()
    finally:
        cap.close()
    # ARP both ways: each side learnt the other's real MAC
    assert neighbour(a1, "10.50.0.3") == mac_of(b1, "eth0")
    assert neighbour(b1, "10.50.0.1") == mac_of(a1, "eth0")
    # the underlay carried it as VXLAN, VNI 42, UDP 4789, between the two sites' addresses
    packets = vxlan_frames(frames)
    assert packets, "no VXLAN (UDP 4789) packet on the underlay"
    assert {vni for vni, _ in packets} == {42}
    inner_types = {inner[12:14] for _, inner in packets}
    assert b"\x08\x06" in inner_types and b"\x08\x00" in inner_types     # ARP and IPv4 inside
    ends = {ipv4(f)[1:3] for f in frames if ipv4(f) and ipv4(f)[0] == socket.IPPROTO_UDP}
    assert ends <= {("192.0.2.1", "192.0.2.5"), ("192.0.2.5", "192.0.2.1")}


@pytest.mark.kernel
def test_vxlan_objects_live_in_the_lab_only(deploy):
    text = two_sites("ov-t-vx2") + "dns: false\n"
    topo = deploy(text)
    out = nsexec(topo.netns("site-a"), "ip", "-j", "-d", "link", "show", "vxlan-0", check=True).stdout
    info = json.loads(out)[0]
    assert info["linkinfo"]["info_kind"] == "vxlan"
    assert info["linkinfo"]["info_data"]["id"] == 42
    assert info["master"] == "stretched" and info["mtu"] == 1450
    # nothing in the host's namespace: no tunnel device, no site bridge
    host = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True)
    names = {link["ifname"] for link in json.loads(host.stdout)}
    assert not {"vxlan-0", "stretched"} & names
    # unchanged file: nothing to do
    assert not labops.up(load_text(text)).changed


@pytest.mark.kernel
def test_changing_the_vni_on_a_live_lab_touches_only_the_tunnels(deploy):
    text = two_sites("ov-t-vni") + "dns: false\n"
    topo = deploy(text)
    result = labops.up(load_text(text.replace("id: 42,", "id: 43,")))
    assert (result.created, result.deleted) == (2, 2)
    out = nsexec(topo.netns("site-b"), "ip", "-j", "-d", "link", "show", "vxlan-0", check=True).stdout
    assert json.loads(out)[0]["linkinfo"]["info_data"]["id"] == 43
    assert ping(topo.netns("site-a-h1"), "10.50.0.3")


@pytest.mark.kernel
def test_vxlan_mtu_max_passes_and_one_more_does_not(deploy):
    topo = deploy(two_sites("ov-t-mtu"))
    a1 = topo.netns("site-a-h1")
    assert ping(a1, "10.50.0.3", size=1450 - 28, df=True)
    assert not ping(a1, "10.50.0.3", size=1450 - 28 + 1, df=True)


@pytest.mark.kernel
def test_pinned_mtu_warns_and_large_frames_do_not_cross(deploy):
    text = two_sites("ov-t-pin", mtu=", mtu: 1500")
    plan, _ = compile_topology(load_text(text))
    assert any("larger packets will not pass" in w for w in plan.warnings)
    topo = deploy(text)
    a1 = topo.netns("site-a-h1")
    assert ping(a1, "10.50.0.2", size=1472, df=True)           # same site: 1500 works
    assert ping(a1, "10.50.0.3", size=1450 - 28, df=True)      # across: up to the overlay's 1450
    assert not ping(a1, "10.50.0.3", size=1450 - 28 + 1, df=True)


@pytest.mark.kernel
def test_vxlan_mesh_of_three_sites_routed_by_one_of_them(deploy):
    """One VNI over three sites; s1 is also on the stretched network (at its own site) and
    is its gateway, so the other sites' hosts are routed through the overlay."""
    topo = deploy("""
name: ov-t-mesh
dns: false
networks:
  wan: {subnet: 198.51.100.0/24}
  red: {subnet: 10.50.0.0/24}
nodes:
  s1: {kind: router, networks: {wan: 198.51.100.1, red: 10.50.0.254}}
  s2: {kind: router, networks: [wan]}
  s3: {kind: router, networks: [wan]}
  s1-pc: {networks: [red]}
  s2-pc: {networks: [red]}
  s3-pc: {networks: [red]}
tunnels:
  - {type: vxlan, id: 7, endpoints: [s1, s2, s3], network: red}
""")
    for src in ("s1-pc", "s2-pc", "s3-pc"):
        for dst in ("10.50.0.1", "10.50.0.2", "10.50.0.3"):
            assert ping(topo.netns(src), dst), f"{src} -> {dst}"
    fdb = nsexec(topo.netns("s1"), "bridge", "fdb", "show", "dev", "vxlan-0", check=True).stdout
    assert "dst 198.51.100.2" in fdb and "dst 198.51.100.3" in fdb
    # s3-pc -> (vxlan) -> s1 -> wan -> s2, and back
    assert ping(topo.netns("s3-pc"), "198.51.100.2")
    assert ping(topo.netns("s2-pc"), "10.50.0.254")


@pytest.mark.kernel
def test_cli_up_check_down_of_the_example():
    """The example as a user runs it (own lab name, so it never meets a user's lab)."""
    with open(os.path.join(TOPOLOGIES, "vxlan.yml")) as f:
        text = f.read().replace("name: ov-vxlan", "name: ov-t-ex")
    topo = load_text(text)
    try:
        labops.up(topo)
        assert ping(topo.netns("site-a-h2"), "10.50.0.3")
        entry = labops.status("ov-t-ex")[0]
        assert [t["ifname"] for t in entry["tunnels"]] == ["vxlan-0", "vxlan-0"]
    finally:
        labops.down("ov-t-ex")
    assert not kernel.netns_exists(topo.netns("site-a"))


# ---------------------------------------------------------------- GRE refused here

@pytest.mark.kernel
def test_gre_is_refused_before_anything_is_built_on_a_kernel_without_ip_gre():
    if backend.supported(["gre"])["gre"]:
        pytest.skip("this kernel has ip_gre (the refusal is tested where it is absent)")
    with open(GRE_HUB) as f:
        topo = load_text(f.read().replace("name: ov-gre", "name: ov-t-nogre"))
    with pytest.raises(ApplyError) as info:
        labops.up(topo)
    assert str(info.value) == "gre tunnels need the ip_gre kernel module, absent on this kernel"
    assert not [n for n in kernel.list_netns() if n.startswith("ov-t-nogre-")]
    assert state.LabState.load("ov-t-nogre") is None


@pytest.mark.kernel
def test_cli_refuses_gretap_with_one_line_and_exit_1(tmp_path):
    if backend.supported(["gretap"])["gretap"]:
        pytest.skip("this kernel has ip_gre")
    path = tmp_path / "t.yml"
    path.write_text(two_sites("ov-t-cli", "gretap", ""))
    run = subprocess.run([sys.executable, "-c", "from netlab.cli import main; main()", "up", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr == "netlab: gretap tunnels need the ip_gre kernel module, absent on this kernel\n"
    assert not [n for n in kernel.list_netns() if n.startswith("ov-t-cli-")]


@pytest.mark.kernel
def test_probe_leaves_nothing_behind():
    before = set(kernel.list_netns())
    fds = set(os.listdir("/proc/self/fd"))
    backend._probed.clear()
    result = backend.supported(["vxlan", "gre", "gretap"])
    assert result["vxlan"] is True
    # the scratch namespace was never named (other engineers' labs come and go meanwhile)
    assert not [n for n in set(kernel.list_netns()) - before if n.startswith("ov") or "probe" in n]
    assert set(os.listdir("/proc/self/fd")) <= fds          # its socket is closed: it is gone
    # this thread is back in its own namespace
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink(f"/proc/{os.getpid()}/ns/net")


# ---------------------------------------------------------------- GRE, GRETAP: full kernel

@pytest.mark.fullkernel
def test_labs_build_where_namespaces_are_born_with_fallback_tunnel_devices(deploy):
    """With ip_gre loaded (the VM loads it) every new namespace gets gre0, gretap0...
    at low interface indexes; netlab's fixed indexes start above them."""
    path = "/proc/sys/net/core/fb_tunnels_only_for_init_net"
    with open(path) as f:
        assert f.read().strip() == "0"
    topo = deploy(two_sites("ov-t-fb"))
    ns = topo.netns("site-a-h1")
    links = nsexec(ns, "ip", "-br", "link").stdout
    assert "gre0" in links and "eth0" in links
    nodes = state.LabState.load("ov-t-fb").plan.meta["nodes"]
    far = next(i["address"] for i in nodes["site-b-h1"]["interfaces"] if i["address"]).split("/")[0]
    assert nsexec(ns, "ping", "-c", "1", "-W", "2", far).returncode == 0


@pytest.mark.fullkernel
def test_gre_hub_and_spoke(deploy):
    with open(GRE_HUB) as f:
        topo = deploy(f.read().replace("name: ov-gre", "name: ov-t-gre"))
    s1 = topo.netns("s1-pc")
    cap = Capture(topo.netns("inet"), "spoke1")
    try:
        assert ping(s1, "10.0.0.2")                  # spoke LAN -> hub LAN
        frames = cap.frames()
    finally:
        cap.close()
    assert ping(s1, "10.2.0.2")                      # spoke -> spoke, through the hub
    packets = gre_packets(frames)
    assert packets, "no GRE packet on the underlay"
    assert {(proto, key) for proto, key, _ in packets} == {(0x0800, 1)}
    inner = {(socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20])) for _, _, p in packets}
    assert ("10.1.0.2", "10.0.0.2") in inner
    # MTU of the tunnel: 1500 - 24 - 4 (key) = 1472
    assert ping(s1, "10.0.0.2", size=1472 - 28, df=True)
    assert not ping(s1, "10.0.0.2", size=1472 - 28 + 1, df=True)
    route = nsexec(topo.netns("spoke1"), "ip", "route", "get", "198.51.100.1", check=True).stdout
    assert "dev wan" in route


@pytest.mark.fullkernel
def test_gretap_stretches_a_segment(deploy):
    topo = deploy(two_sites("ov-t-gtap", "gretap", "key: 7,"))
    a1, b1 = topo.netns("site-a-h1"), topo.netns("site-b-h1")
    cap = Capture(topo.netns("core"), "eth1")
    try:
        assert ping(a1, "10.50.0.3", count=2)
        frames = cap.frames()
    finally:
        cap.close()
    assert neighbour(a1, "10.50.0.3") == mac_of(b1, "eth0")
    packets = gre_packets(frames)
    assert packets and {(proto, key) for proto, key, _ in packets} == {(0x6558, 7)}
    # MTU: 1500 - 38 - 4 (key) = 1458
    assert ping(a1, "10.50.0.3", size=1458 - 28, df=True)
    assert not ping(a1, "10.50.0.3", size=1458 - 28 + 1, df=True)

