"""`--etcd` on the commands that act on a lab across hosts (up, down, status, check), added
by the hook extend_command: given --etcd (or NETLAB_ETCD), the command goes to the
controller (cli.py) instead of acting on this machine.

Imported by every command that runs (the hook is asked for each): click and the standard
library only.
"""
from __future__ import annotations

import functools
import os

import click

ACROSS_HOSTS = ("up", "down", "status", "check")


def _etcd_option(name: str) -> click.Option:
    text = ("etcd client URLs: a lab across hosts (each host's agent runs its checks)." if name == "check" else
            "etcd client URLs, comma-separated: a lab across hosts (netlab agent on each).")
    return click.Option(["--etcd"], envvar="NETLAB_ETCD", metavar="URLS", help=text)


def _timeout_option() -> click.Option:
    return click.Option(["--timeout"], type=click.FloatRange(1, 3600), default=300, show_default=True,
                        help="With --etcd: seconds to wait for the hosts' agents.")


def extend_command(name, command) -> None:
    """Add --etcd (and --timeout for up and down) to the commands that act across hosts."""
    if name not in ACROSS_HOSTS:
        return
    command.params.append(_etcd_option(name))
    if name in ("up", "down"):
        command.params.append(_timeout_option())
    local = command.callback

    @functools.wraps(local)
    def callback(etcd=None, timeout=300.0, **kwargs):
        if not etcd:
            return local(**kwargs)
        return _across_hosts(name, etcd, timeout, kwargs)
    command.callback = callback


def _across_hosts(name: str, etcd: str, timeout: float, args: dict) -> None:
    from ..core.cli import _fail, _load, lab_name
    from . import cli
    if name == "up":
        return cli.up(etcd, _load(args["file"]), timeout)
    if name == "down":
        return cli.down(etcd, lab_name(args["file_or_lab"]), timeout)
    if name == "status":
        lab = args["lab"]
        return cli.status(etcd, lab_name(lab) if lab else None, args["as_json"])
    if args["all_pairs"]:
        _fail("--all-pairs is not available for labs across hosts yet; run the declared checks", 2)
    declared, lab = None, args["file_or_lab"]
    if os.path.isfile(lab):
        topo = _load(lab)
        lab, declared = topo.name, topo.sections.get("checks")
    return cli.check(etcd, lab, declared, args["as_json"], args["junit"], args["wait"], args["parallel"])
