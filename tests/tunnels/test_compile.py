"""Pure tests of netlab.tunnels: how tunnels compile (sites, MTU, routes), no root needed.

Whole plans are golden files (tests/tunnels/golden/tunnels_*.yml), error messages are error
cases (tests/tunnels/errors/tunnel_*.yml); these tests pin the rules behind them.
"""
from __future__ import annotations

import pathlib

import pytest

from netlab.core import reconcile
from netlab.core.compiler import compile_topology
from netlab.core.errors import TopologyError
from netlab.core.loader import load_file, load_text
from netlab.core.plan import Bridge, Route, Veth
from netlab.tunnels.spec import OVERHEAD
from netlab.tunnels.steps import BridgePort, TunnelDevice

ROOT = pathlib.Path(__file__).parents[2]

TWO_SITES = """
name: ov-pure
dns: false
networks:
  stretched: {subnet: 10.50.0.0/24%(mtu)s}
nodes:
  core: {kind: router}
  site-a: {kind: router}
  site-b: {kind: router}
  site-a-h1: {networks: [stretched]}
  site-b-h1: {networks: [stretched]}
links:
  - {endpoints: ["site-a:eth0", "core:eth0"], subnet: 192.0.2.0/30%(link_mtu)s}
  - {endpoints: ["site-b:eth0", "core:eth1"], subnet: 192.0.2.4/30}
tunnels:
  - {type: %(type)s, %(ident)s endpoints: [site-a, site-b], network: stretched}
"""


def two_sites(type_="vxlan", ident="id: 42,", mtu="", link_mtu=""):
    text = TWO_SITES % {"type": type_, "ident": ident, "mtu": mtu, "link_mtu": link_mtu}
    return compile_topology(load_text(text))[0]


def steps(plan, cls):
    return [s for s in plan.steps if isinstance(s, cls)]


def test_the_contract_sketch_line_works_as_written():
    plan = two_sites()
    devices = steps(plan, TunnelDevice)
    assert [(d.ns, d.kind, d.vni, d.port, d.local, d.peers) for d in devices] == [
        ("ov-pure-site-a", "vxlan", 42, 4789, "192.0.2.1", ["192.0.2.5"]),
        ("ov-pure-site-b", "vxlan", 42, 4789, "192.0.2.5", ["192.0.2.1"]),
    ]


def test_hosts_hang_off_their_sites_bridge_and_the_lab_bridge_off_the_first_site():
    plan = two_sites()
    veths = {s.ns: s for s in steps(plan, Veth) if s.master == "stretched"}
    assert veths["ov-pure-site-a-h1"].peer_ns == "ov-pure-site-a"
    assert veths["ov-pure-site-b-h1"].peer_ns == "ov-pure-site-b"
    uplink = veths["ov-pure-site-a"]
    assert uplink.peer_ns == "ov-pure--lab" and uplink.ifname == "stretched.lab"
    assert steps(plan, BridgePort) == [BridgePort(ns="ov-pure-site-a", ifname="stretched.lab", master="stretched")]
    bridges = {(b.ns, b.name) for b in steps(plan, Bridge)}
    assert {("ov-pure-site-a", "stretched"), ("ov-pure-site-b", "stretched"),
            ("ov-pure--lab", "stretched")} <= bridges


def test_each_step_comes_after_what_it_lives_on():
    for case in ("tunnels_vxlan", "tunnels_mesh", "tunnels_gre"):
        plan = compile_topology(load_file(str(ROOT / "tests" / "tunnels" / "golden" / f"{case}.yml")))[0]
        provided: set = set()
        for s in plan.steps:
            for parent in s.parents:
                assert parent in provided, f"{case}: {s.describe()} before its parent {parent}"
            provided.add(s.key)
            provided.update(plan.iface_key(s))


@pytest.mark.parametrize("type_,ident,mtu", [("vxlan", "id: 1,", 1450), ("gretap", "", 1462),
                                             ("gretap", "key: 5,", 1458)])
def test_unpinned_overlay_mtu_is_lowered_by_the_encapsulation(type_, ident, mtu):
    plan = two_sites(type_, ident)
    assert {d.mtu for d in steps(plan, TunnelDevice)} == {mtu}
    assert {v.mtu for v in steps(plan, Veth) if v.master == "stretched"} == {mtu}
    assert plan.warnings == []


def test_the_smallest_underlay_mtu_limits_the_overlay():
    plan = two_sites(link_mtu=", mtu: 1400")
    assert {d.mtu for d in steps(plan, TunnelDevice)} == {1400 - OVERHEAD["vxlan"]}


def test_a_pinned_mtu_too_large_stays_and_warns():
    plan = two_sites(mtu=", mtu: 1500")
    assert {v.mtu for v in steps(plan, Veth) if v.master == "stretched"} == {1500}
    assert {d.mtu for d in steps(plan, TunnelDevice)} == {1450}
    assert plan.warnings == ["networks.stretched.mtu: 1500 is above what vxlan tunnels[0] carries "
                             "(1450 = 1500 - 50); larger packets will not pass"]
    assert "warning: networks.stretched.mtu: 1500" in plan.render()


def test_a_pinned_mtu_that_fits_is_used_everywhere():
    plan = two_sites(mtu=", mtu: 1400")
    assert {d.mtu for d in steps(plan, TunnelDevice)} == {1400}
    assert plan.warnings == []


def test_gre_is_routed_and_keeps_its_underlay_out_of_itself():
    plan = compile_topology(load_file(str(ROOT / "topologies" / "gre.yml")))[0]
    routes = {(r.ns, r.dst): (r.via, r.dev) for r in steps(plan, Route)}
    # LAN to LAN through the tunnels, spoke to spoke through the hub
    assert routes[("ov-gre-spoke1", "10.0.0.0/24")] == ("172.16.0.1", "gre-0")
    assert routes[("ov-gre-spoke1", "10.2.0.0/24")] == ("172.16.0.1", "gre-0")
    # the hub's underlay address is reached through the underlay, never the tunnel
    assert routes[("ov-gre-spoke1", "198.51.100.1/32")] == ("198.51.100.6", "wan")
    devices = {(d.ns, d.ifname): d for d in steps(plan, TunnelDevice)}
    assert devices[("ov-gre-spoke1", "gre-0")].mtu == 1500 - 24 - 4
    assert devices[("ov-gre-hub", "gre-1")].gre_key == 2


def test_no_underlay_route_is_added_where_the_lab_routes_already_use_the_underlay():
    plan = two_sites()
    assert not [r for r in steps(plan, Route) if r.dst.endswith("/32")]


def test_changing_the_vni_recreates_only_the_tunnel_devices():
    old = two_sites(ident="id: 42,")
    new = two_sites(ident="id: 43,")
    deletes, creates = reconcile.diff(old, new)
    assert {s.key for s in deletes} == {s.key for s in creates} == {
        ("tunnel", "ov-pure-site-a", "vxlan-0"), ("tunnel", "ov-pure-site-b", "vxlan-0")}


def test_an_unchanged_topology_reconciles_to_nothing():
    deletes, creates = reconcile.diff(two_sites(), two_sites())
    assert deletes == [] and creates == []


def test_tunnel_steps_survive_the_state_file_round_trip():
    from netlab.core.plan import Plan
    plan = compile_topology(load_file(str(ROOT / "tests" / "tunnels" / "golden" / "tunnels_mesh.yml")))[0]
    again = Plan.from_dict(plan.to_dict())
    assert reconcile.diff(again, plan) == ([], [])


def test_a_node_at_no_site_is_reported():
    text = (TWO_SITES % {"type": "vxlan", "ident": "id: 1,", "mtu": "", "link_mtu": ""}).replace(
        "site-b-h1: {networks", "lost: {networks")
    with pytest.raises(TopologyError) as info:
        load_text(text)
    assert info.value.problems == [
        "tunnels[0].sites: node 'lost' is on stretched network stretched but at no site: list it "
        "under tunnels[0].sites.<endpoint> (or name it <endpoint>-...)"]


def test_examples_compile_without_warnings_from_tunnels():
    for name in ("vxlan", "gre"):
        plan = compile_topology(load_file(str(ROOT / "topologies" / f"{name}.yml")))[0]
        assert not [w for w in plan.warnings if w.startswith(("tunnels", "networks"))]
