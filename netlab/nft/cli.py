"""`netlab rules LAB [NODE] [--json]`: each node's live NAT and firewall rules with their
packet and byte counters, and the place in the topology file each rule came from."""
from __future__ import annotations

import json
import sys

import click

from .compile import NftRuleset


def _fail(message: str, code: int):
    click.echo(f"netlab: {message}", err=True)
    sys.exit(code)


def _print_node(node: str, ns: str, data: dict) -> None:
    click.echo(f"{node} ({ns})")
    if "error" in data:
        click.echo(f"  {data['error']}")
        return
    for name, chain in data["chains"].items():
        click.echo(f"  chain {name} ({chain.get('hook')}, policy {chain.get('policy')})")
        for rule in chain["rules"]:
            packets = "-" if rule["packets"] is None else str(rule["packets"])
            size = "-" if rule["bytes"] is None else str(rule["bytes"])
            click.echo(f"    {packets:>9} {size:>11}  {rule['rule']}  [{rule['from']}]")


def _print_rendered(path: str, node: str | None) -> None:
    """The rulesets a topology file compiles to, as nft text; touches nothing."""
    from ..core.cli import _load
    from ..core.compiler import compile_topology
    plan, _ = compile_topology(_load(path))
    steps = [s for s in plan.steps if isinstance(s, NftRuleset) and node in (None, s.node)]
    if node is not None and node not in plan.meta.get("nodes", {}):
        _fail(f"{path}: no node {node!r}", 2)
    for s in steps:
        click.echo(f"# {s.node} ({s.ns})\n{s.ruleset}")


@click.command()
@click.argument("lab")
@click.argument("node", required=False)
@click.option("--json", "as_json", is_flag=True, help="Chains and counters as JSON.")
@click.option("--rendered", is_flag=True,
              help="LAB is a topology file: print the nft rulesets it compiles to (no root needed).")
def rules(lab, node, as_json, rendered):
    """Show the NAT and firewall rules of a lab's nodes with packet counters."""
    from ..core.cli import lab_name
    from ..core.lab import require_root
    from ..core.state import LabState
    from .kernel import node_rules
    if rendered:
        _print_rendered(lab, node)
        return
    lab = lab_name(lab)
    st = LabState.load(lab)
    if st is None:
        _fail(f"lab {lab} is not deployed", 1)
    steps = [s for s in st.plan.steps if isinstance(s, NftRuleset)]
    if node is not None:
        if node not in st.plan.meta.get("nodes", {}):
            _fail(f"lab {lab} has no node {node!r}", 2)
        steps = [s for s in steps if s.node == node]
        if not steps:
            _fail(f"node {node} of lab {lab} has no nat or firewall", 1)
    require_root("rules")
    result = {s.node: node_rules(s) for s in steps}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if not steps:
        click.echo(f"lab {lab}: no node has nat or firewall rules")
        return
    click.echo(f"{'packets':>13} {'bytes':>11}  rule  [from the topology]")
    for s in steps:
        _print_node(s.node, s.ns, result[s.node])
