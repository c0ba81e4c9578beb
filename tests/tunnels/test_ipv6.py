"""Tunnels over an IPv6 underlay: how they compile (no root), VXLAN over IPv6 on this
kernel, and ip6gre / ip6gretap in the full-kernel VM:

    tests/vm/run -- python3 -m pytest -q -rs -p no:cacheprovider -m fullkernel tests/tunnels/test_ipv6.py

Every lab is named t6-..., deployed by the `deploy` fixture (or a try/finally) and always
removed; traffic stays between the lab's namespaces, and the underlay is captured with an
AF_PACKET socket made inside a lab namespace.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import types

import pytest

from netlab.core import kernel, state
from netlab.core import lab as labops
from netlab.core.compiler import compile_topology
from netlab.core.errors import ApplyError
from netlab.core.loader import load_file, load_text
from netlab.core.plan import Route
from netlab.graph.draw import build, to_mermaid
from netlab.overview.status import status_lines
from netlab.tunnels import kernel as backend
from netlab.tunnels.kernel import status as tunnel_status
from netlab.tunnels.spec import OVERHEAD6
from netlab.tunnels.steps import TunnelDevice
from tests.conftest import nsexec
from tests.tunnels.test_kernel import Capture, mac_of, neighbour, ping

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLE = os.path.join(ROOT, "topologies", "vxlan6.yml")
GRE6 = os.path.join(ROOT, "tests", "tunnels", "golden", "tunnels_gre6.yml")
ETH_P_IPV6 = b"\x86\xdd"

# Two sites behind a core router; the routed underlay is IPv6 only (unless `wan4` adds
# IPv4), the stretched network carries both versions.
TWO_SITES = """
name: %(name)s
dns: false
networks:
  stretched: {subnet: 10.50.0.0/24, subnet6: "fd00:50::/64"}
nodes:
  core: {kind: router}
  site-a: {kind: router}
  site-b: {kind: router}
  site-a-h1: {networks: [stretched]}
  site-a-h2: {networks: [stretched]}
  site-b-h1: {networks: [stretched]}
links:
  - {endpoints: ["site-a:eth0", "core:eth0"], subnet6: "2001:db8:ff:1::/64"%(wan4)s}
  - {endpoints: ["site-b:eth0", "core:eth1"], subnet6: "2001:db8:ff:2::/64"%(wan4b)s}
tunnels:
  - {type: %(type)s, %(ident)s endpoints: [site-a, site-b], network: stretched%(extra)s}
"""


def two_sites(name="t6-pure", type_="vxlan", ident="id: 42,", extra="", dual=False) -> str:
    wan4, wan4b = (", subnet: 192.0.2.0/30", ", subnet: 192.0.2.4/30") if dual else ("", "")
    return TWO_SITES % {"name": name, "type": type_, "ident": ident, "extra": extra,
                        "wan4": wan4, "wan4b": wan4b}


def devices(text: str) -> list[TunnelDevice]:
    plan = compile_topology(load_text(text))[0]
    return [s for s in plan.steps if isinstance(s, TunnelDevice)]


def ipv6(frame: bytes):
    """(next header, src, dst, payload) of an IPv6 frame, else None."""
    if len(frame) < 54 or frame[12:14] != ETH_P_IPV6:
        return None
    src = socket.inet_ntop(socket.AF_INET6, frame[22:38])
    dst = socket.inet_ntop(socket.AF_INET6, frame[38:54])
    return frame[20], src, dst, frame[54:]


def vxlan6_packets(frames, port=4789):
    """(src, dst, vni, inner frame) of each VXLAN-over-IPv6 packet among the frames."""
    found = []
    for frame in frames:
        ip = ipv6(frame)
        if ip and ip[0] == socket.IPPROTO_UDP and struct.unpack("!H", ip[3][2:4])[0] == port:
            vx = ip[3][8:]
            found.append((ip[1], ip[2], int.from_bytes(vx[4:7], "big"), vx[8:]))
    return found


def gre6_packets(frames):
    """(src, dst, protocol type, key or None, payload) of each GRE packet carried directly
    in IPv6 (next header 47: no encapsulation-limit option in between)."""
    found = []
    for frame in frames:
        ip = ipv6(frame)
        if ip and ip[0] == 47:
            flags, proto = struct.unpack("!HH", ip[3][:4])
            key = struct.unpack("!I", ip[3][4:8])[0] if flags & 0x2000 else None
            found.append((ip[1], ip[2], proto, key, ip[3][8 if key is not None else 4:]))
    return found


def pinging(ns: str, addresses: list[str], capture_ns: str, capture_if: str) -> list[bytes]:
    """Ping each address once from `ns` (every one must answer) while capturing the frames
    on an underlay interface; returns them."""
    cap = Capture(capture_ns, capture_if)
    try:
        for address in addresses:
            assert ping(ns, address), f"{ns} -> {address}"
        return cap.frames()
    finally:
        cap.close()


def carries_exactly(ns: str, address: str, mtu: int) -> bool:
    """A packet of `mtu` bytes with DF set reaches `address`, one byte more does not."""
    header = 48 if ":" in address else 28            # IP + ICMP echo headers
    return (ping(ns, address, size=mtu - header, df=True)
            and not ping(ns, address, size=mtu - header + 1, df=True))


def device(ns: str, ifname: str) -> tuple[str, str, str, int, str | None]:
    """(kind, local, remote, mtu, master) of a tunnel device, as `ip -d link` shows it."""
    out = nsexec(ns, "ip", "-j", "-d", "link", "show", ifname, check=True).stdout
    info = json.loads(out)[0]
    data = info["linkinfo"]["info_data"]
    local, remote = (data["local6"], data["remote6"]) if "local6" in data else (data["local"], data["remote"])
    return info["linkinfo"]["info_kind"], local, remote, info["mtu"], info.get("master")


def netlab(*args: str) -> subprocess.CompletedProcess:
    """The command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "netlab", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def lab_namespaces(lab: str) -> list[str]:
    return [n for n in kernel.list_netns() if n.startswith(f"{lab}-")]


# ---------------------------------------------------------------- compile (no root)

def test_a_v6_only_underlay_carries_vxlan_over_ipv6_by_itself():
    found = devices(two_sites())
    assert [(d.kind, d.local, d.peers, d.mtu) for d in found] == [
        ("vxlan", "2001:db8:ff:1::1", ["2001:db8:ff:2::1"], 1500 - 70),
        ("vxlan", "2001:db8:ff:2::1", ["2001:db8:ff:1::1"], 1500 - 70),
    ]


def test_a_dual_stack_underlay_stays_ipv4_unless_the_tunnel_says_family_6():
    assert {d.local for d in devices(two_sites(dual=True))} == {"192.0.2.1", "192.0.2.5"}
    six = devices(two_sites(dual=True, extra=", family: 6"))
    assert {d.local for d in six} == {"2001:db8:ff:1::1", "2001:db8:ff:2::1"}


@pytest.mark.parametrize("type_,ident,kind,mtu", [
    ("vxlan", "id: 1,", "vxlan", 1430), ("gretap", "", "ip6gretap", 1442),
    ("gretap", "key: 5,", "ip6gretap", 1438)])
def test_the_overlay_mtu_pays_for_the_ipv6_header(type_, ident, kind, mtu):
    """The kernel's own ip6gretap default over a 1500 underlay, without the
    encapsulation-limit option, is 1442 (1438 with a key); VXLAN6_HEADROOM is 70."""
    found = devices(two_sites(type_=type_, ident=ident))
    assert {(d.kind, d.mtu) for d in found} == {(kind, mtu)}


def test_ip6gre_hub_and_spoke_compiles_with_routes_of_both_versions_and_host_routes():
    plan = compile_topology(load_file(GRE6))[0]
    gre = {(d.ns, d.ifname): d for d in plan.steps if isinstance(d, TunnelDevice)}
    hub = gre[("ov-gre6-hub", "gre-0")]
    assert (hub.kind, hub.local, hub.peers, hub.gre_key) == ("ip6gre", "2001:db8:ff::", ["2001:db8:ff::2"], 1)
    assert hub.mtu == 1500 - OVERHEAD6["gre"] - 4
    routes = {(r.ns, r.dst): (r.via, r.dev) for r in plan.steps if isinstance(r, Route)}
    assert routes[("ov-gre6-spoke1", "10.0.0.0/24")] == ("172.16.0.1", "gre-0")
    assert routes[("ov-gre6-spoke1", "fd00:0:0:10::/64")] == ("fd00:16::", "gre-0")
    # the hub's underlay address never through the tunnel: a /128 through the underlay
    assert routes[("ov-gre6-spoke1", "2001:db8:ff::/128")] == ("2001:db8:ff::3", "wan")
    assert plan.warnings == ["tunnels[1].mtu: 1500 is above what gre carries "
                             "(1456 = 1500 - 44); larger packets will not pass"]


def test_ip6gre_devices_are_built_without_the_encapsulation_limit_and_keys_in_network_order():
    hub = next(d for d in compile_topology(load_file(GRE6))[0].steps if isinstance(d, TunnelDevice))
    args = backend._link_args(hub)
    assert args["kind"] == "ip6gre" and args["ip6gre_local"] == "2001:db8:ff::"
    assert args["ip6gre_flags"] == backend.IGN_ENCAP_LIMIT
    assert struct.pack("=H", args["ip6gre_iflags"]) == b"\x20\x00"     # GRE_KEY, big-endian on the wire
    vx = backend._link_args(devices(two_sites())[0])
    assert (vx["vxlan_local6"], vx["vxlan_group6"]) == ("2001:db8:ff:1::1", "2001:db8:ff:2::1")
    assert "vxlan_local" not in vx


def test_status_and_graph_show_the_ipv6_underlay():
    plan = compile_topology(load_text(two_sites(name="t6-show")))[0]
    entry = {"lab": "t6-show"}
    tunnel_status(entry, types.SimpleNamespace(plan=plan))
    assert entry["tunnels"][0]["family"] == 6
    assert status_lines(entry)[:2] == [
        "  tunnels:", "    t6-show-site-a:vxlan-0 vxlan vni 42 2001:db8:ff:1::1 -> 2001:db8:ff:2::1 bridge stretched"]
    topo = load_file(GRE6)
    drawing = to_mermaid(build(topo, compile_topology(topo)[1]))
    assert "hub gre-0 172.16.0.1 fd00:16::<br/>spoke1 gre-0 172.16.0.2 fd00:16::1" in drawing
    assert "over IPv6 2001:db8:ff::, 2001:db8:ff::2" in drawing


# ---------------------------------------------------------------- VXLAN over IPv6, this kernel

@pytest.mark.kernel
def test_vxlan_over_a_routed_ipv6_only_underlay(deploy):
    topo = deploy(two_sites("t6-vx"))
    a1 = topo.netns("site-a-h1")
    frames = pinging(a1, ["10.50.0.3", "fd00:50::3"], topo.netns("core"), "eth0")
    assert neighbour(a1, "10.50.0.3") == mac_of(topo.netns("site-b-h1"), "eth0")
    packets = vxlan6_packets(frames)
    assert packets, "no VXLAN (UDP 4789 over IPv6) packet on the underlay"
    assert {(src, dst, vni) for src, dst, vni, _ in packets} <= {
        ("2001:db8:ff:1::1", "2001:db8:ff:2::1", 42), ("2001:db8:ff:2::1", "2001:db8:ff:1::1", 42)}
    inner = {frame[12:14] for *_, frame in packets}
    assert {b"\x08\x06", b"\x08\x00", ETH_P_IPV6} <= inner      # ARP, IPv4 and IPv6 inside
    assert device(topo.netns("site-a"), "vxlan-0") == (
        "vxlan", "2001:db8:ff:1::1", "2001:db8:ff:2::1", 1430, "stretched")
    # the overlay carries 1430 bytes, of either version, and not one more
    assert carries_exactly(a1, "10.50.0.3", 1430) and carries_exactly(a1, "fd00:50::3", 1430)


@pytest.mark.kernel
def test_vxlan_mesh_over_ipv6_replicates_to_ipv6_peers(deploy):
    topo = deploy("""
name: t6-mesh
dns: false
networks:
  wan: {subnet: 198.51.100.0/24, subnet6: "2001:db8:ff::/64"}
  red: {subnet: 10.50.0.0/24}
nodes:
  s1: {kind: router, networks: [wan]}
  s2: {kind: router, networks: [wan]}
  s3: {kind: router, networks: [wan]}
  s1-pc: {networks: [red]}
  s2-pc: {networks: [red]}
  s3-pc: {networks: [red]}
tunnels:
  - {type: vxlan, id: 7, endpoints: [s1, s2, s3], network: red, family: 6}
""")
    fdb = nsexec(topo.netns("s1"), "bridge", "fdb", "show", "dev", "vxlan-0", check=True).stdout
    assert "dst 2001:db8:ff::2" in fdb and "dst 2001:db8:ff::3" in fdb
    pairs = [(src, dst) for src in ("s1-pc", "s2-pc", "s3-pc")
             for dst in ("10.50.0.1", "10.50.0.2", "10.50.0.3")]
    assert [(src, dst) for src, dst in pairs if not ping(topo.netns(src), dst)] == []


@pytest.mark.kernel
def test_the_example_checks_pass_and_down_leaves_nothing(tmp_path):
    """topologies/vxlan6.yml as a user runs it (own lab name, so it never meets theirs)."""
    path = tmp_path / "vxlan6.yml"
    with open(EXAMPLE) as f:
        path.write_text(f.read().replace("name: ov-vxlan6", "name: t6-ex"))
    try:
        assert netlab("up", str(path)).returncode == 0
        run = netlab("check", str(path))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "7 passed, 0 failed" in run.stdout
        entry = labops.status("t6-ex")[0]
        assert {(t["type"], t["family"]) for t in entry["tunnels"]} == {("vxlan", 6)}
    finally:
        labops.down("t6-ex")
    assert lab_namespaces("t6-ex") == []
    assert state.LabState.load("t6-ex") is None
    host = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True)
    assert not {"vxlan-0", "stretched"} & {link["ifname"] for link in json.loads(host.stdout)}


@pytest.mark.kernel
@pytest.mark.parametrize("kind,text", [
    ("ip6gre", open(GRE6).read().replace("name: ov-gre6", "name: t6-nogre")),
    ("ip6gretap", two_sites("t6-nogtap", "gretap", ""))], ids=["ip6gre", "ip6gretap"])
def test_gre_over_ipv6_is_refused_up_front_where_the_kernel_lacks_ip6_gre(kind, text):
    if backend.supported([kind])[kind]:
        pytest.skip("this kernel has ip6_gre (the refusal is tested where it is absent)")
    topo = load_text(text)
    with pytest.raises(ApplyError, match=f"^{kind} tunnels need the ip6_gre kernel module, absent"):
        labops.up(topo)
    assert lab_namespaces(topo.name) == [] and state.LabState.load(topo.name) is None


# ---------------------------------------------------------------- ip6gre, ip6gretap: full kernel

@pytest.mark.kernel
@pytest.mark.fullkernel
def test_ip6gre_hub_and_spoke_over_ipv6(deploy):
    with open(GRE6) as f:
        topo = deploy(f.read().replace("name: ov-gre6", "name: t6-gre"))
    s1 = topo.netns("s1-pc")
    # LAN to LAN in both versions, and spoke to spoke (IPv6 only there) through the hub
    frames = pinging(s1, ["10.0.0.1", "fd00:0:0:10::1", "fd00:0:0:12::1"], topo.netns("inet"), "spoke1")
    packets = gre6_packets(frames)
    assert packets, "no GRE packet directly inside IPv6 on the underlay"
    assert {(src, dst) for src, dst, *_ in packets} <= {
        ("2001:db8:ff::2", "2001:db8:ff::"), ("2001:db8:ff::", "2001:db8:ff::2")}
    assert {(proto, key) for _, _, proto, key, _ in packets} == {(0x0800, 1), (0x86DD, 1)}
    # 1500 - 40 (IPv6) - 4 (GRE) - 4 (key)
    assert device(topo.netns("hub"), "gre-0") == ("ip6gre", "2001:db8:ff::", "2001:db8:ff::2", 1452, None)
    assert carries_exactly(s1, "10.0.0.1", 1452) and carries_exactly(s1, "fd00:0:0:10::1", 1452)
    route = nsexec(topo.netns("spoke1"), "ip", "-6", "route", "get", "2001:db8:ff::", check=True).stdout
    assert "dev wan" in route


@pytest.mark.kernel
@pytest.mark.fullkernel
def test_ip6gretap_stretches_a_segment_over_ipv6(deploy):
    topo = deploy(two_sites("t6-gtap", "gretap", "key: 7,"))
    a1 = topo.netns("site-a-h1")
    frames = pinging(a1, ["10.50.0.3", "fd00:50::3"], topo.netns("core"), "eth1")
    assert neighbour(a1, "10.50.0.3") == mac_of(topo.netns("site-b-h1"), "eth0")
    packets = gre6_packets(frames)
    assert packets and {(proto, key) for _, _, proto, key, _ in packets} == {(0x6558, 7)}
    # 1500 - 40 (IPv6) - 4 (GRE) - 14 (Ethernet) - 4 (key)
    assert device(topo.netns("site-b"), "gretap-0") == (
        "ip6gretap", "2001:db8:ff:2::1", "2001:db8:ff:1::1", 1438, "stretched")
    assert carries_exactly(a1, "10.50.0.3", 1438) and carries_exactly(a1, "fd00:50::3", 1438)
