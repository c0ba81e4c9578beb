"""`netlab fault ...`: faults on a live lab. Exit 0 done, 1 failed, 2 bad input or a
fault this kernel cannot make (nothing is changed then)."""
from __future__ import annotations

import json
import sys

import click

from ..core.errors import ApplyError
from . import ops
from .model import FIELDS, FaultSet


def _lab(name: str) -> str:
    from ..core.cli import lab_name
    return lab_name(name)


def _run(fn, *args, **kwargs) -> FaultSet:
    try:
        return fn(*args, **kwargs)
    except ops.FaultRefused as e:
        for line in e.lines:
            click.echo(f"netlab: {line}", err=True)
        sys.exit(2)
    except ops.NotDeployed as e:
        click.echo(f"netlab: {e}", err=True)
        sys.exit(1)
    except ApplyError as e:
        click.echo(f"netlab: {e} (the faults active before are back in place)", err=True)
        sys.exit(1)


def _summary(lab: str, faults: FaultSet, mechanisms: dict | None = None) -> None:
    lines = faults.lines(mechanisms)
    click.echo(f"lab {lab}: {len(lines)} fault(s) active" if lines else f"lab {lab}: no faults")
    for line in lines:
        click.echo(f"  {line}")


def _done(lab: str) -> None:
    """After a change: what is active now, and how each fault is made."""
    current = ops.load(lab)
    _summary(lab, current.faults, current.record.get("mechanisms", {}))


def _split(values: tuple[str, ...]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


link_option = click.option("--link", "links", multiple=True, metavar="NODE:IF",
                           help="An interface of a node (repeatable).")
node_option = click.option("--node", "nodes", multiple=True, metavar="NODE",
                           help="Every interface of a node (repeatable).")


@click.group(name="fault")
def fault():
    """Faults on a live lab: loss, delay, rate, link down, partitions."""


@fault.command(name="set")
@click.argument("lab")
@link_option
@node_option
@click.option("--loss", metavar="PCT", help="Drop this share of packets, e.g. 5%.")
@click.option("--delay", metavar="TIME", help="Add latency, e.g. 50ms (needs sch_netem).")
@click.option("--jitter", metavar="TIME", help="Vary the delay by up to this, e.g. 5ms.")
@click.option("--rate", metavar="RATE", help="Limit the bandwidth, e.g. 10mbit.")
@click.option("--duplicate", metavar="PCT", help="Duplicate this share of packets.")
@click.option("--corrupt", metavar="PCT", help="Corrupt a bit in this share (needs sch_netem).")
@click.option("--reorder", metavar="PCT", help="Send this share out of order (needs --delay).")
@click.option("--direction", default="egress", show_default=True,
              type=click.Choice(["egress", "ingress", "both"]))
def set_(lab, links, nodes, direction, **values):
    """Impair links: replaces what they had in that direction."""
    lab = _lab(lab)
    _run(ops.set_impairment, lab, list(links), list(nodes), direction, {k: values[k] for k in FIELDS})
    _done(lab)


@fault.command()
@click.argument("lab")
@link_option
@node_option
def down(lab, links, nodes):
    """Take links down (the interface goes administratively down)."""
    lab = _lab(lab)
    _run(ops.set_state, lab, list(links), list(nodes), True)
    _done(lab)


@fault.command()
@click.argument("lab")
@link_option
@node_option
def up(lab, links, nodes):
    """Bring links back up (their routes are restored)."""
    lab = _lab(lab)
    _run(ops.set_state, lab, list(links), list(nodes), False)
    _done(lab)


@fault.command()
@click.argument("lab")
@click.option("--between", required=True, metavar="A,B", help="One group of nodes.")
@click.option("--and", "and_", required=True, multiple=True, metavar="C,D",
              help="Another group (repeatable for more groups).")
def partition(lab, between, and_):
    """Cut all traffic between groups of nodes, both ways."""
    lab = _lab(lab)
    groups = [_split((between,))] + [_split((g,)) for g in and_]
    _run(ops.partition, lab, groups)
    _done(lab)


@fault.command(name="apply")
@click.argument("lab")
@click.argument("scenario")
def apply_(lab, scenario):
    """Apply a scenario from the topology file's faults: section."""
    lab = _lab(lab)
    _run(ops.apply_scenario, lab, scenario)
    _done(lab)


@fault.command()
@click.argument("lab")
@click.argument("scenario", required=False)
@link_option
@node_option
@click.option("--partitions", is_flag=True, help="Remove the partitions.")
def clear(lab, scenario, links, nodes, partitions):
    """Remove faults: all of them, a scenario's, or those of some links/nodes."""
    lab = _lab(lab)
    if scenario:
        _run(ops.clear_scenario, lab, scenario)
    else:
        _run(ops.clear, lab, list(links), list(nodes), partitions)
    _done(lab)


@fault.command()
@click.argument("lab")
@click.option("--json", "as_json", is_flag=True)
def show(lab, as_json):
    """The faults active on a lab, and how they are made."""
    lab = _lab(lab)
    try:
        current = ops.load(lab)
    except ops.NotDeployed as e:
        click.echo(f"netlab: {e}", err=True)
        sys.exit(1)
    mechanisms = current.record.get("mechanisms", {})
    if as_json:
        data = current.faults.to_dict()
        data["lab"] = lab
        data["mechanisms"] = mechanisms
        data["scenarios"] = sorted(current.record.get("scenarios", {}))
        click.echo(json.dumps(data, indent=2))
        return
    _summary(lab, current.faults, mechanisms)
    if current.faults.applied:
        click.echo(f"  scenarios applied: {', '.join(current.faults.applied)}")
