"""Pure tests: which mechanism each fault gets, with and without netem, and the exact
nft rules and qdiscs it renders to (no root needed)."""
from __future__ import annotations

from netlab.core.compiler import compile_topology
from netlab.core.loader import load_text
from netlab.faults.model import FaultSet, Impairment
from netlab.faults.render import LabFacts, TcSpec, nft_script, render

TOPO = """
name: ftr
networks: {lan: {subnet: 10.70.0.0/24}}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan]}
links:
  - endpoints: [a:p0, b:p0]
    subnet: 10.70.9.0/30
"""


def facts() -> LabFacts:
    plan, _ = compile_topology(load_text(TOPO))
    return LabFacts.from_plan(plan)


def caps(*present: str):
    return lambda name: name in present


def test_facts_from_plan():
    f = facts()
    assert f.ns == {"a": "ftr-a", "b": "ftr-b"}
    assert f.addresses == {"a": ["10.70.0.1", "10.70.9.1"], "b": ["10.70.0.2", "10.70.9.2"]}
    assert f.peers[("ftr-a", "eth0")] == ("ftr--lab", "a.eth0")
    assert f.peers[("ftr-b", "p0")] == ("ftr-a", "p0")


def test_without_netem_loss_is_dropped_where_packets_arrive():
    faults = FaultSet()
    faults.set_link("a:eth0", "both", Impairment(loss=20.0, duplicate=1.5))
    faults.set_link("a:p0", "egress", Impairment(loss=0.1, rate=10_000_000))
    d = render(faults, facts(), caps("tbf", "ifb", "nft"))
    assert not d.refusals
    assert d.nft["ftr--lab"] == {
        ("a.eth0", "ingress"): ["numgen random mod 1000000 < 200000 drop"],
        ("a.eth0", "egress"): ['numgen random mod 1000000 < 15000 meta mark set 0x4e4c0001 '
                               'dup to "a.eth0" meta mark set 0']}
    assert d.nft["ftr-a"][("eth0", "ingress")] == ["numgen random mod 1000000 < 200000 drop"]
    assert d.nft["ftr-b"][("p0", "ingress")] == ["numgen random mod 1000000 < 1000 drop"]
    assert d.tc == {("ftr-a", "p0", "egress"): TcSpec(rate=10_000_000)}
    assert d.mechanisms["a:eth0"]["egress"] == "nft drop at the peer's ingress, nft dup at egress"
    assert d.mechanisms["a:eth0"]["ingress"] == "nft drop at ingress, nft dup at the peer's egress"


def test_with_netem_everything_is_a_qdisc():
    faults = FaultSet()
    faults.set_link("a:eth0", "ingress", Impairment(loss=5.0, delay=50.0, jitter=5.0, rate=2_000_000))
    faults.set_link("b:eth0", "egress", Impairment(corrupt=0.1, reorder=25.0, delay=10.0, duplicate=1.0))
    d = render(faults, facts(), caps("netem", "tbf", "ifb", "nft"))
    assert not d.refusals and not d.nft
    assert d.tc[("ftr-a", "eth0", "ingress")] == TcSpec(
        netem=(("delay", 50000), ("jitter", 5000), ("loss", 5.0)), rate=2_000_000, ifb="nlf-eth0")
    assert d.tc[("ftr-b", "eth0", "egress")].netem == (
        ("delay", 10000), ("duplicate", 1.0), ("prob_corrupt", 0.1), ("prob_reorder", 25.0))
    assert d.mechanisms["a:eth0"]["ingress"] == "ifb netem+tbf"


def test_refusals_name_what_is_missing_once():
    faults = FaultSet()
    faults.set_link("a:eth0", "both", Impairment(delay=50.0, jitter=5.0))
    faults.set_link("b:eth0", "egress", Impairment(corrupt=1.0))
    faults.set_link("b:p0", "ingress", Impairment(rate=1_000_000))
    d = render(faults, facts(), caps("tbf", "nft"))
    assert d.refusals == [
        "a:eth0: delay and jitter need the sch_netem kernel module, absent on this kernel",
        "b:eth0: corrupt needs the sch_netem kernel module, absent on this kernel",
        "b:p0: ingress shaping needs ifb devices with tc ingress, u32 and mirred, absent on this kernel"]


def test_partition_drops_the_other_groups_at_input():
    faults = FaultSet()
    faults.add_partition([["b"], ["a"]])
    d = render(faults, facts(), caps("nft"))
    assert d.nft["ftr-a"][("", "input")] == ["ip saddr { 10.70.0.2, 10.70.9.2 } drop"]
    assert d.nft["ftr-b"][("", "input")] == ["ip saddr { 10.70.0.1, 10.70.9.1 } drop"]
    assert render(faults, facts(), caps()).refusals[0].startswith("partition b | a: needs nftables")


def test_partition_covers_ipv6_where_nodes_have_it():
    topo = TOPO.replace("{lan: {subnet: 10.70.0.0/24}}", '{lan: {subnet: 10.70.0.0/24, subnet6: "2001:db8:70::/64"}}')
    plan, _ = compile_topology(load_text(topo))
    faults = FaultSet()
    faults.add_partition([["a"], ["b"]])
    d = render(faults, LabFacts.from_plan(plan), caps("nft"))
    assert d.nft["ftr-a"][("", "input")] == ["ip saddr { 10.70.0.2, 10.70.9.2 } drop",
                                             "ip6 saddr { 2001:db8:70::2 } drop"]


def test_down_is_a_link_state():
    faults = FaultSet()
    faults.set_down("a:p0", True)
    assert render(faults, facts(), caps()).down == {("ftr-a", "p0")}


def test_certain_loss_needs_no_random_number():
    faults = FaultSet()
    faults.set_link("a:p0", "ingress", Impairment(loss=100.0))
    assert render(faults, facts(), caps("nft")).nft["ftr-a"][("p0", "ingress")] == ["drop"]


def test_nft_script_replaces_both_tables_in_one_transaction():
    script = nft_script({("a.eth0", "ingress"): ["numgen random mod 1000000 < 5 drop"],
                         ("a.eth0", "egress"): ['numgen random mod 1000000 < 5 meta mark set 0x4e4c0001 '
                                                'dup to "a.eth0" meta mark set 0'],
                         ("", "input"): ["ip saddr { 10.0.0.1 } drop"]})
    assert script == """table netdev netlab_fault {}
delete table netdev netlab_fault
table inet netlab_fault {}
delete table inet netlab_fault
table netdev netlab_fault {
  chain a_eth0_egress {
    type filter hook egress device "a.eth0" priority -10;
    meta mark 0x4e4c0001 meta mark set 0 accept
    numgen random mod 1000000 < 5 meta mark set 0x4e4c0001 dup to "a.eth0" meta mark set 0
  }
  chain a_eth0_ingress {
    type filter hook ingress device "a.eth0" priority -10;
    numgen random mod 1000000 < 5 drop
  }
}
table inet netlab_fault {
  chain input {
    type filter hook input priority -10;
    ip saddr { 10.0.0.1 } drop
  }
}
"""
    assert nft_script({}).count("delete table") == 2
