"""Command line of multi-host labs: `netlab agent`, and what `up`, `down`, `status` and
`check` do when given --etcd (or NETLAB_ETCD)."""
from __future__ import annotations

import json
import sys

import click

from ..core.errors import ApplyError
from .store import Store, StoreError, parse_endpoints

ETCD_HELP = "etcd client URLs, comma-separated (a lab across hosts); also NETLAB_ETCD."


def connect(endpoints: str) -> Store:
    try:
        return Store(parse_endpoints(endpoints))
    except StoreError as err:
        raise click.UsageError(str(err))


def _guard(fn):
    """etcd trouble is a failed operation (exit 1) in one line."""
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoreError as err:
            raise ApplyError(str(err)) from None
    return wrapped


@click.command(name="agent")
@click.option("--etcd", "endpoints", envvar="NETLAB_ETCD", required=True, help=ETCD_HELP)
@click.option("--host", required=True, help="This machine's name in labs (hosts: in the topology).")
@click.option("--underlay", help="Address other hosts reach this one at for VXLAN "
                                 "(default: the source address towards the first etcd endpoint).")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where lab state is kept (default /run/netlab).")
@click.option("--ttl", type=click.IntRange(2, 600), default=10, show_default=True,
              help="Seconds of the agent's etcd lease: a host whose agent is gone this long is dead.")
def agent(endpoints, host, underlay, state_dir, ttl):
    """Run this machine's share of labs that span hosts (one agent per machine)."""
    from .agent import main
    from .placement import HOST_NAME
    if not HOST_NAME.match(host):
        raise click.UsageError(f"--host {host!r} is not a host name (lowercase letters, digits, '.', '-')")
    try:
        main(endpoints, host, underlay, state_dir, ttl)
    except StoreError as err:
        raise ApplyError(str(err)) from None


@_guard
def up(endpoints: str, topo, timeout: float) -> None:
    from .controller import up as controller_up
    report = controller_up(connect(endpoints), topo, timeout)
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    click.echo(f"lab {report.lab}: {len(report.placement)} nodes up on {len(report.hosts)} hosts "
               f"(generation {report.generation}, {report.created} created, {report.deleted} removed) "
               f"in {report.seconds:.2f}s")


@_guard
def down(endpoints: str, lab: str, timeout: float) -> None:
    from .controller import down as controller_down
    found, dead = controller_down(connect(endpoints), lab, timeout)
    if not found:
        click.echo(f"lab {lab}: nothing to remove")
    elif dead:
        click.echo(f"lab {lab}: removed from every living host (dead: {', '.join(sorted(dead))})")
    else:
        click.echo(f"lab {lab}: removed")


@_guard
def status(endpoints: str, lab: str | None, as_json: bool) -> None:
    from .controller import status as controller_status
    data = controller_status(connect(endpoints), lab)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    hosts = data["hosts"]
    click.echo("hosts: " + (", ".join(f"{h} ({i['address']})" for h, i in hosts.items()) or "none registered"))
    if not data["labs"]:
        click.echo(f"lab {lab}: not deployed" if lab else "no labs deployed across hosts")
    for entry in data["labs"]:
        health = "healthy" if entry["healthy"] else "DEGRADED"
        click.echo(f"lab {entry['lab']} (generation {entry['generation']}, {health}): "
                   f"{len(entry['nodes'])} nodes on {len(entry['hosts'])} hosts")
        for host, part in entry["hosts"].items():
            state = part["state"].upper() if part["state"] != "up" else "up"
            extra = f"  {part['error']}" if part.get("error") and part["state"] == "failed" else ""
            click.echo(f"  {host:<16} {state:<8} {' '.join(part['nodes'])}{extra}")


@_guard
def check(endpoints: str, lab: str, declared, as_json: bool, junit: str | None, wait: float,
          parallel: int) -> None:
    from ..core import hooks
    from .controller import check as controller_check
    results, seconds, meta, declared = controller_check(connect(endpoints), lab, declared, wait, parallel)
    report = hooks.registry().provider("report_checks")
    sys.exit(0 if report(lab, meta, declared, results, seconds, as_json, junit) else 1)
