"""The pure side of labs across hosts: placement and the split of a plan into per-host
sub-plans with VXLAN stitches. Golden files: tests/multihost/golden/<case>.<host>.plan
(regenerate with NETLAB_REGEN=1 and review the diff)."""
from __future__ import annotations

import os
import pathlib

import pytest

from netlab.core.compiler import compile_topology
from netlab.core.errors import ApplyError
from netlab.core.loader import load_file, load_text
from netlab.core.plan import Namespace, Plan, Veth
from netlab.multihost.partition import Underlay, split
from netlab.multihost.placement import place
from netlab.multihost.stitch import StitchLink, StitchSegment

ROOT = pathlib.Path(__file__).parent.parent.parent
GOLDEN = pathlib.Path(__file__).parent / "golden"
HOSTS = {"h1": Underlay("10.88.0.1"), "h2": Underlay("10.88.0.2"), "h3": Underlay("10.88.0.3", 9000)}


def split_file(path, hosts=HOSTS, **kw):
    topo = load_file(str(path))
    plan, _ = compile_topology(topo)
    return topo, plan, split(plan, place(topo, list(hosts)), hosts, **kw)


@pytest.mark.parametrize("host", ["h1", "h2", "h3"])
def test_multihost_example_splits_as_golden(host):
    _, _, parts = split_file(ROOT / "topologies" / "multihost.yml")
    expected = GOLDEN / f"multihost.{host}.plan"
    text = parts.plans[host].render()
    if os.environ.get("NETLAB_REGEN") == "1":
        expected.write_text(text)
    assert text == expected.read_text()


def test_every_step_lands_on_exactly_the_hosts_that_need_it():
    _, _, parts = split_file(ROOT / "topologies" / "multihost.yml")
    placement = parts.plans["h1"].meta["multihost"]["placement"]
    for host, sub in parts.plans.items():
        for s in sub.steps:
            for ns in (getattr(s, "ns", None), getattr(s, "peer_ns", None), getattr(s, "netns", None)):
                node = ns.removeprefix("mh-") if ns and not ns.startswith("mh--") else None
                if node:
                    assert placement[node] == host, f"{s.describe()} on {host}"
                elif ns:
                    assert ns == f"mh--{host}"
    links = [s for sub in parts.plans.values() for s in sub.steps if isinstance(s, StitchLink)]
    assert {(s.ns, s.ifname, s.remote) for s in links} == {("mh-gw", "eth9", "10.88.0.3"),
                                                          ("mh-isp", "eth0", "10.88.0.1")}
    assert len({s.vni for s in links}) == 1


def test_stretched_segments_get_the_mtu_vxlan_carries():
    _, _, parts = split_file(ROOT / "topologies" / "multihost.yml")
    h2 = parts.plans["h2"]
    bridge = next(s for s in h2.steps if s.type == "bridge" and s.name == "lan")
    assert bridge.mtu == 1450
    assert all(s.mtu == 1450 for s in h2.steps if isinstance(s, Veth))
    # the h1-h3 link takes the smaller host's: h3's underlay has jumbo frames, h1's has not
    assert {s.mtu for sub in parts.plans.values() for s in sub.steps if isinstance(s, StitchLink)} == {1450}
    assert h2.meta["networks"]["lan"]["mtu"] == 1450


def test_a_bigger_mtu_in_the_file_is_kept_and_warned_about():
    text = (ROOT / "topologies" / "multihost.yml").read_text().replace(
        "lan: {subnet: 10.10.0.0/24}", "lan: {subnet: 10.10.0.0/24, mtu: 1500}")
    topo = load_text(text)
    plan, _ = compile_topology(topo)
    parts = split(plan, place(topo, list(HOSTS)), HOSTS)
    assert any("networks.lan: mtu 1500 is more than VXLAN between hosts carries (1450)" in w
               for w in parts.warnings)


def test_a_network_on_one_host_is_not_stitched():
    topo = load_text("name: one\nhosts: {h1: [a, b], h2: [c]}\nnetworks:\n  lan: {subnet: 10.1.0.0/24}\n"
                     "  solo: {subnet: 10.2.0.0/24}\nnodes:\n  a: {networks: [lan]}\n"
                     "  b: {networks: [lan]}\n  c: {networks: [solo]}\ndns: false\n")
    plan, _ = compile_topology(topo)
    parts = split(plan, place(topo, ["h1", "h2"]), HOSTS)
    assert not [s for p in parts.plans.values() for s in p.steps if isinstance(s, (StitchSegment, StitchLink))]
    assert [s.name for s in parts.plans["h2"].steps if s.type == "bridge"] == ["solo"]


def test_vnis_are_kept_across_reconciles_and_skip_other_labs():
    _, plan, first = split_file(ROOT / "topologies" / "multihost.yml")
    _, _, again = split_file(ROOT / "topologies" / "multihost.yml", old_vnis=first.vnis)
    assert again.vnis == first.vnis
    taken = set(first.vnis.values())
    _, _, other = split_file(ROOT / "topologies" / "multihost.yml", taken_vnis=taken)
    assert not taken & set(other.vnis.values())
    assert all(4096 <= v < 1 << 24 for v in other.vnis.values())


def test_sub_plans_survive_the_trip_through_etcd():
    from netlab.multihost.store import pack, unpack
    _, _, parts = split_file(ROOT / "topologies" / "multihost.yml")
    for sub in parts.plans.values():
        back = Plan.from_dict(unpack(pack(sub.to_dict())))
        assert [s.to_dict() for s in back.steps] == [s.to_dict() for s in sub.steps]


def test_automatic_placement_balances_and_keeps_nodes_where_they_were():
    nodes = "\n".join(f"  n{i}: {{networks: [lan]}}" for i in range(7))
    topo = load_text(f"name: auto\nnetworks:\n  lan: {{subnet: 10.1.0.0/24}}\nnodes:\n{nodes}\n")
    placement = place(topo, ["b", "a", "c"])
    counts = {h: list(placement.values()).count(h) for h in "abc"}
    assert counts == {"a": 3, "b": 2, "c": 2}
    assert place(topo, ["a", "b", "c", "d"], placement) == placement      # a new host moves nothing
    fixed = load_text(f"name: auto\nhosts: {{d: [n0]}}\nnetworks:\n  lan: {{subnet: 10.1.0.0/24}}\n"
                      f"nodes:\n{nodes}\n")
    assert place(fixed, ["a", "b", "c", "d"], placement)["n0"] == "d"


def test_placement_names_hosts_without_an_agent():
    topo = load_file(str(ROOT / "topologies" / "multihost.yml"))
    with pytest.raises(ApplyError) as err:
        place(topo, ["h1", "h2"])
    assert str(err.value) == ("host h3 has no agent running (it should run isp): start its agent, or place "
                              "it on another host under hosts: (live hosts: h1, h2)")
    with pytest.raises(ApplyError):
        place(load_text("name: x\nnodes: {a: {}}\n"), [])


def test_a_node_is_not_moved_off_a_dead_host_by_itself():
    nodes = "\n".join(f"  n{i}: {{networks: [lan]}}" for i in range(4))
    topo = load_text(f"name: auto\nnetworks:\n  lan: {{subnet: 10.1.0.0/24}}\nnodes:\n{nodes}\n")
    before = place(topo, ["a", "b"])
    with pytest.raises(ApplyError, match="host b has no agent running .it should run n1, n3."):
        place(topo, ["a"], before)


def test_a_lab_with_hosts_still_deploys_on_one_machine_unchanged():
    """`hosts:` only matters to `up --etcd`: the one-host plan ignores it."""
    topo = load_file(str(ROOT / "topologies" / "multihost.yml"))
    plan, _ = compile_topology(topo)
    assert any(isinstance(s, Namespace) and s.ns == "mh--lab" for s in plan.steps)


def test_a_tunnel_site_port_split_from_its_site_stays_a_bridge_port():
    topo = load_file(str(ROOT / "topologies" / "vxlan.yml"))
    plan, _ = compile_topology(topo)
    placement = {n: ("h2" if n == "site-a-h1" else "h1") for n in topo.nodes}
    parts = split(plan, placement, HOSTS)
    (site_end,) = [s for s in parts.plans["h1"].steps if isinstance(s, StitchLink)]
    (host_end,) = [s for s in parts.plans["h2"].steps if isinstance(s, StitchLink)]
    assert site_end.master == "stretched" and host_end.master is None
    assert ("bridge", site_end.ns, "stretched") in site_end.parents


def test_phase_one_drops_a_leaving_node_and_what_lived_on_its_links():
    from netlab.multihost.controller import without_namespaces
    text = (ROOT / "topologies" / "multihost.yml").read_text().replace(
        "h1: [pc1, gw]", "h1: [pc1, gw, isp]").replace("h3: [isp]\n", "")
    topo = load_text(text)
    plan, _ = compile_topology(topo)
    h1 = split(plan, place(topo, ["h1", "h2"]), HOSTS).plans["h1"]
    left = without_namespaces(h1, {"mh-isp"})
    described = "\n".join(s.describe() for s in left.steps)
    assert "mh-isp" not in described
    assert "mh-gw:eth9" not in described          # gw's end of the link went with the link
    assert "addr    mh-gw:eth0 10.10.0.3/24" in described
    assert len(left.steps) < len(h1.steps)


def test_the_dns_server_stays_on_its_host_while_that_host_runs_nodes():
    topo = load_file(str(ROOT / "topologies" / "multihost.yml"))
    plan, _ = compile_topology(topo)
    placement = place(topo, list(HOSTS))
    assert split(plan, placement, HOSTS).dns_host == "h1"
    assert split(plan, placement, HOSTS, dns_host="h2").dns_host == "h2"
    assert split(plan, placement, HOSTS, dns_host="h9").dns_host == "h1"   # gone: the first node's
