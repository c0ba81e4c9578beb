"""The lab DNS server's life after the steps: restarted by `up` if it died, stopped with
every node link and file by `down`, reported by `status` (hooks after_up, teardown, status).

Imported by `netlab down`: it loads no compiler, spec or pyroute2.
"""
from __future__ import annotations

import os

from .resolv import (
    DnsClient,
    group_dir,
    link_node,
    our_links,
    prune_groups,
    unlink_node,
)
from .server import (
    DnsServer,
    DnsZone,
    _write,
    alive,
    files,
    record_from_pidfile,
    start,
    stop,
)


def after_up(ctx, plan, topo) -> None:
    """Restart the server if it died since the lab came up (reconcile leaves an unchanged
    step alone), put back node links someone removed, and drop unused shared files."""
    server = next((s for s in plan.steps if isinstance(s, DnsServer)), None)
    if server is not None and not alive(ctx.extras.get("dns")):
        record = record_from_pidfile(ctx.lab)
        if alive(record):
            ctx.extras["dns"] = record
        else:
            zone = next((s for s in plan.steps if isinstance(s, DnsZone)), None)
            if zone is not None:
                _write(files(ctx.lab)["hosts"], "".join(line + "\n" for line in zone.lines))
            ctx.extras["dns"] = start(server)
    clients = [s for s in plan.steps if isinstance(s, DnsClient)]
    for s in clients:
        link_node(s)
    prune_groups(ctx.lab, {group_dir(s) for s in clients})


def teardown(lab, plan, extras) -> None:
    """Stop the server by PID and remove every file and link made for the lab's nodes."""
    stop((extras or {}).get("dns") or record_from_pidfile(lab))
    netns = {s.netns for s in (plan.steps if plan else []) if isinstance(s, DnsClient)}
    for name in sorted(netns | set(our_links(lab))):
        unlink_node(name, lab)
    prune_groups(lab, set())
    for path in files(lab).values():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def status(entry, state) -> None:
    server = next((s for s in state.plan.steps if isinstance(s, DnsServer)), None)
    if server is None:
        return
    record = state.extras.get("dns") or {}
    running = alive(record)
    meta = state.plan.meta.get("dns", {})
    entry["dns"] = {"domain": server.domain, "servers": meta.get("servers", {}),
                    "servers6": meta.get("servers6", {}), "pid": record.get("pid"), "running": running}
    if not running:
        entry["healthy"] = False
