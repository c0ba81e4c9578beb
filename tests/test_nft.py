"""NAT and firewall rendering, without root: golden rulesets and syntax corner cases.

tests/golden/nft_<case>.yml -> nft_<case>.nft (every node's table, rendered). The generic
plan golden (nft_<case>.plan) is checked by test_compiler. Regenerate with NETLAB_REGEN=1
and review the diff. Error cases live in tests/errors/nft_*.yml (run by test_loader).
"""
from __future__ import annotations

import os
import pathlib

import pytest

from netlab.compiler import compile_topology
from netlab.errors import Problems, TopologyError
from netlab.loader import load_file, load_text
from netlab.nft import NftRuleset, parse_node
from netlab.nft_render import render, rule_texts
from netlab.plan import Plan, step_from_dict
from netlab import reconcile

GOLDEN = pathlib.Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("nft_*.yml"))
ROOT = pathlib.Path(__file__).parent.parent


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
    from netlab.nft import dns_servers
    plan = Plan(lab="x", meta={"dns": {"servers": {"lan": "10.1.0.53", "wan": "192.0.2.53"}}})
    assert dns_servers(plan) == ["10.1.0.53", "192.0.2.53"]
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
