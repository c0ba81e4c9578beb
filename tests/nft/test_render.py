"""NAT and firewall rendering, without root: golden rulesets and syntax corner cases.

tests/nft/golden/nft_<case>.yml -> nft_<case>.nft (every node's table, rendered). The generic
plan golden (nft_<case>.plan) is checked by tests/core/test_golden.py. Regenerate with NETLAB_REGEN=1
and review the diff. Error cases live in tests/nft/errors/nft_*.yml (run by tests/core/test_golden.py).
"""
from __future__ import annotations

import os
import pathlib

import pytest

from netlab.core import reconcile
from netlab.core.compiler import compile_topology
from netlab.core.errors import Problems, TopologyError
from netlab.core.loader import load_file, load_text
from netlab.core.plan import Plan, step_from_dict
from netlab.nft.compile import NftRuleset
from netlab.nft.render import render, rule_texts
from netlab.nft.spec import parse_node

GOLDEN = pathlib.Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("nft_*.yml"))
ROOT = pathlib.Path(__file__).parents[2]


def rulesets(plan) -> str:
    return "".join(f"# {s.node} ({s.ns})\n{s.ruleset}" for s in plan.steps if isinstance(s, NftRuleset))


@pytest.mark.parametrize("case", CASES)
def test_rulesets_match_golden(case):
    plan, _ = compile_topology(load_file(str(GOLDEN / f"{case}.yml")))
    expected = GOLDEN / f"{case}.nft"
    if os.environ.get("NETLAB_REGEN") == "1":
        expected.write_text(rulesets(plan))
    assert rulesets(plan) == expected.read_text()


@pytest.mark.parametrize("example", ["branch", "vpc"])
def test_examples_load_and_render(example):
    plan, _ = compile_topology(load_file(str(ROOT / "topologies" / f"{example}.yml")))
    assert any(isinstance(s, NftRuleset) for s in plan.steps)


BASE = """
name: fwu-x
networks:
  lan: {subnet: 10.1.0.0/24}
  wan: {subnet: 192.0.2.0/24}
nodes:
  pc: {networks: [lan]}
  isp: {networks: [wan]}
  gw:
    kind: router
    networks: {lan: 10.1.0.1, wan: 192.0.2.1}
"""


def gw_ruleset(extra: str, dns: list[str] | None = None) -> str:
    topo = load_text(BASE + extra)
    plan, compiled = compile_topology(topo)
    if dns is None:
        return next(s.ruleset for s in plan.steps if isinstance(s, NftRuleset))
    spec = parse_node(topo, topo.nodes["gw"], Problems())
    return render(spec, compiled, dns)


def test_no_nat_or_firewall_means_no_step():
    plan, _ = compile_topology(load_text(BASE))
    assert not [s for s in plan.steps if isinstance(s, NftRuleset)]


def test_dns_servers_are_let_through_unless_opted_out():
    text = "    firewall: {policy: drop}\n"
    rules = gw_ruleset(text, dns=["10.1.0.53", "192.0.2.53", "192.0.2.1"])
    assert rule_texts(rules)[("forward", "firewall.dns")] == (
        "ip daddr { 10.1.0.53, 192.0.2.53 } meta l4proto { tcp, udp } th dport 53 counter accept")
    # a server on the node itself is let in by the input chain
    assert rule_texts(rules)[("input", "firewall.dns")].startswith("ip daddr 192.0.2.1 ")
    # before any deny
    rules = gw_ruleset("    firewall: {policy: drop, deny: [{port: 53}]}\n", dns=["10.1.0.53"])
    forward = rules[rules.index("chain forward"):]
    assert forward.index("firewall.dns") < forward.index("firewall.deny[0]")
    assert "firewall.dns" not in gw_ruleset("    firewall: {policy: drop, dns: false}\n", dns=["10.1.0.53"])


def test_dns_servers_come_from_plan_meta():
    from netlab.nft.compile import dns_servers
    plan = Plan(lab="x", meta={"dns": {"servers": {"lan": "10.1.0.53", "wan": "192.0.2.53"}}})
    assert dns_servers(plan) == ["10.1.0.53", "192.0.2.53"]
    both = Plan(lab="x", meta={"dns": {"servers": {"lan": "10.1.0.53"}, "servers6": {"lan": "fd00::53"}}})
    assert dns_servers(both) == ["10.1.0.53", "fd00::53"]
    assert dns_servers(Plan(lab="x")) == []


def test_overlapping_selectors_are_merged_for_nft():
    rules = gw_ruleset("    firewall: {allow: [{from: [lan, pc, 10.1.0.0/16]}]}\n")
    assert "ip saddr 10.1.0.0/16 counter accept" in rules


def test_policy_accept_adds_no_drop_and_host_has_only_input():
    topo = load_text(BASE.replace("pc: {networks: [lan]}", "pc: {networks: [lan], firewall: {}}"))
    plan, _ = compile_topology(topo)
    ruleset = next(s.ruleset for s in plan.steps if isinstance(s, NftRuleset))
    assert "chain input" in ruleset and "chain forward" not in ruleset
    assert "policy accept;" in ruleset and "drop" not in ruleset


def test_changed_ruleset_is_the_only_step_reapplied():
    a, _ = compile_topology(load_text(BASE + "    firewall: {policy: drop, allow: [{from: lan}]}\n"))
    b, _ = compile_topology(load_text(BASE + "    firewall: {policy: drop, allow: [{from: wan}]}\n"))
    deletes, creates = reconcile.diff(a, b)
    assert [s.type for s in deletes] == ["nft"] and [s.type for s in creates] == ["nft"]
    assert reconcile.diff(a, a) == ([], [])


def test_step_survives_state_round_trip():
    plan, _ = compile_topology(load_text(BASE + "    nat: {masquerade: [wan]}\n"))
    s = next(s for s in plan.steps if isinstance(s, NftRuleset))
    assert step_from_dict(s.to_dict()) == s
    assert s.key == ("nft", "fwu-x-gw") and s.parents == (("netns", "fwu-x-gw"),)


def test_rule_texts_read_back_by_chain_and_origin():
    ruleset = gw_ruleset("    nat: {masquerade: [wan]}\n    firewall: {policy: drop, allow: [{from: lan}]}\n")
    texts = rule_texts(ruleset)
    assert texts[("postrouting", "nat.masquerade[0]")] == 'oifname "eth1" counter masquerade'
    assert texts[("forward", "firewall.allow[0]")] == "ip saddr 10.1.0.0/24 counter accept"


def test_bad_types_are_located():
    with pytest.raises(TopologyError) as info:
        load_text(BASE + "    nat: [wan]\n    firewall: {allow: [wan], log: 1}\n")
    assert info.value.problems == [
        "nodes.gw.nat: must be a mapping with masquerade, snat or forward, not a list",
        "nodes.gw.firewall.allow[0]: must be a mapping like {from: lan, port: 80/tcp}, not a string",
        "nodes.gw.firewall.log: must be true or false, not 1",
    ]


def test_readme_example_is_valid():
    """The README's NAT and firewall example, completed with the nodes it names."""
    import yaml
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## NAT and firewalls"):]
    block = section[section.index("```yaml") + 7:section.index("```", section.index("```yaml") + 7)]
    data = yaml.safe_load(block)
    data.update(name="fwu-readme", networks={
        "lan": {"subnet": "10.10.0.0/24"}, "dmz": {"subnet": "10.20.0.0/24"},
        "wan": {"subnet": "198.51.100.0/24"}, "guest": {"subnet": "10.30.0.0/24"}})
    data["nodes"].update(pc1={"networks": ["lan"]}, web={"networks": ["dmz"]})
    data["nodes"]["gw"]["networks"]["guest"] = "10.30.0.1"
    plan, _ = compile_topology(load_text(yaml.safe_dump(data)))
    assert any(isinstance(s, NftRuleset) for s in plan.steps)


# ---------------------------------------------------------------- NAT66 (nat.ipv6)

BASE6 = """
name: fwu-6
networks:
  lan: {subnet: 10.1.0.0/24, subnet6: "2001:db8:1::/64"}
  dmz: {subnet: 10.2.0.0/24, subnet6: "2001:db8:2::/64"}
  wan: {subnet: 192.0.2.0/24, subnet6: "2001:db8:ff::/64"}
nodes:
  pc: {networks: {lan: [10.1.0.10, "2001:db8:1::10"]}}
  web: {networks: {dmz: [10.2.0.10, "2001:db8:2::10"]}}
  isp: {networks: [wan]}
  gw:
    kind: router
    networks: {lan: [10.1.0.1, "2001:db8:1::1"], dmz: [10.2.0.1, "2001:db8:2::1"], wan: [192.0.2.1, "2001:db8:ff::1"]}
"""


def gw6(nat: str, firewall: str = "") -> dict[tuple[str, str], str]:
    """gw's rendered rules in the dual-stack lab, by (chain, origin)."""
    plan, _ = compile_topology(load_text(BASE6 + f"    nat: {nat}\n" + (f"    firewall: {firewall}\n" if firewall else "")))
    return rule_texts(next(s.ruleset for s in plan.steps if isinstance(s, NftRuleset) and s.node == "gw"))


def test_without_ipv6_nat_and_forwards_stay_ipv4():
    texts = gw6('{masquerade: [wan], forward: [{port: 8080/tcp, to: "web:80", in: wan}]}',
                "{allow: [{to: web, port: 80/tcp, dnat: true}]}")
    assert not [key for key in texts if key[1].endswith("/ip6") and key[1].startswith(("nat.", "firewall.allow"))]
    assert texts[("postrouting", "nat.masquerade[0]")] == 'oifname "eth2" meta nfproto ipv4 counter masquerade'


def test_ipv6_masquerade_gets_its_own_counted_line():
    texts = gw6("{ipv6: true, masquerade: [wan, {out: wan, from: lan}]}")
    assert texts[("postrouting", "nat.masquerade[0]")] == 'oifname "eth2" meta nfproto ipv4 counter masquerade'
    assert texts[("postrouting", "nat.masquerade[0]/ip6")] == 'oifname "eth2" meta nfproto ipv6 counter masquerade'
    assert texts[("postrouting", "nat.masquerade[1]/ip6")] == 'oifname "eth2" ip6 saddr 2001:db8:1::/64 counter masquerade'


def test_snat_to_an_ipv6_address_is_ipv6_only():
    texts = gw6('{ipv6: true, snat: [{out: wan, to: "2001:db8:ff:0::9"}, {out: wan, to: 192.0.2.9}]}')
    assert texts[("postrouting", "nat.snat[0]/ip6")] == (
        'oifname "eth2" meta nfproto ipv6 counter snat ip6 to 2001:db8:ff::9')
    assert ("postrouting", "nat.snat[0]") not in texts and ("postrouting", "nat.snat[1]/ip6") not in texts


def test_forward_to_a_node_uses_its_ipv6_address_and_the_routers_on_in():
    texts = gw6('{ipv6: true, forward: [{port: 8080/tcp, to: "web:80", in: wan}]}',
                "{policy: drop, allow: [{to: web, port: 80/tcp, dnat: true}]}")
    assert texts[("prerouting", "nat.forward[0]")] == "ip daddr 192.0.2.1 tcp dport 8080 counter dnat ip to 10.2.0.10:80"
    assert texts[("prerouting", "nat.forward[0]/ip6")] == (
        "ip6 daddr 2001:db8:ff::1 tcp dport 8080 counter dnat ip6 to [2001:db8:2::10]:80")
    assert texts[("postrouting", "nat.hairpin[0]/ip6")] == (
        "ip6 saddr 2001:db8:2::/64 ip6 daddr 2001:db8:2::10 tcp dport 80 ct status dnat counter masquerade")
    assert texts[("forward", "firewall.allow[0]/ip6")] == "ip6 daddr 2001:db8:2::10 ct status dnat tcp dport 80 counter accept"


def test_forward_to_an_ipv6_literal_is_ipv6_only():
    texts = gw6('{ipv6: true, hairpin: false, forward: [{port: 443/tcp, to: "[2001:db8:2::10]:8443", in: wan},'
                ' {port: 53/udp, to: "2001:db8:2::10"}]}')
    assert texts[("prerouting", "nat.forward[0]/ip6")] == (
        'iifname "eth2" ip6 daddr 2001:db8:ff::1 tcp dport 443 counter dnat ip6 to [2001:db8:2::10]:8443')
    assert texts[("prerouting", "nat.forward[1]/ip6")].endswith("udp dport 53 counter dnat ip6 to 2001:db8:2::10")
    assert ("prerouting", "nat.forward[0]") not in texts and not [k for k in texts if k[0] == "postrouting"]


def test_forward_from_limits_each_family_to_its_addresses():
    texts = gw6('{ipv6: true, forward: [{port: 22/tcp, to: "web:22", from: "2001:db8:ff::/64"}]}')
    assert ("prerouting", "nat.forward[0]") not in texts
    assert texts[("prerouting", "nat.forward[0]/ip6")].startswith("ip6 saddr 2001:db8:ff::/64 ip6 daddr {")


@pytest.mark.parametrize("text, parts", [
    ("web:80", ("web", "80", False)), ("web", ("web", "", False)), ("node:web:80", ("node:web", "80", False)),
    ("10.2.0.10:80", ("10.2.0.10", "80", False)), ("[2001:db8::9]:80", ("2001:db8::9", "80", True)),
    ("[2001:db8::9]", ("2001:db8::9", "", True)), ("2001:db8::9", ("2001:db8::9", "", False)),
    ("[2001:db8::9", None), ("[2001:db8::9]80", None), ("[2001:db8::9]:", None)])
def test_forward_targets_split_into_host_and_port(text, parts):
    from netlab.nft.spec import _split_target
    assert _split_target(text) == parts
