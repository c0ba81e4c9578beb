"""The `services:` of a node: netlab's own responders (HTTP, TCP echo, UDP echo, each on
IPv4 and IPv6 alike; see netlab.responder) started inside it by `up`, restarted by `up` if
they died, stopped at `down`. Feature hooks: validate, compile (one `service` step per node), after_up, teardown,
status. The step and its executor live in netlab.backends.services.

    services: [http:80, tcp:9000, udp:7]
"""
from __future__ import annotations

import re

from .backends.services import Service, alive, spawn, stop

PROTOS = ("http", "tcp", "udp")
ITEM = re.compile(r"^(http|tcp|udp):(\d{1,5})$")


def parse_service(item) -> tuple[str, int] | None:
    match = ITEM.match(str(item)) if isinstance(item, str) else None
    if not match or not 1 <= int(match.group(2)) <= 65535:
        return None
    return match.group(1), int(match.group(2))


def validate(topo, problems) -> None:
    for node in topo.nodes.values():
        seen: dict[tuple[str, int], int] = {}
        for i, item in enumerate(node.services or []):
            where = f"nodes.{node.name}.services[{i}]"
            parsed = parse_service(item)
            if parsed is None:
                problems.add(where, f"{item!r} must be proto:port with proto http, tcp or udp "
                                    f"and port 1-65535 (like http:80)")
                continue
            proto, port = parsed
            family = ("udp" if proto == "udp" else "tcp", port)
            if family in seen:
                problems.add(where, f"port {port}/{family[0]} is already served by "
                                    f"services[{seen[family]}]")
            seen.setdefault(family, i)


def compile(topo, compiled, plan) -> None:
    for node in topo.nodes.values():
        if node.services:
            plan.add(Service(ns=topo.netns(node.name), node=node.name,
                             services=tuple(str(s) for s in node.services)))


def after_up(ctx, plan, topo) -> None:
    """Restart responders that died since the lab came up (the step itself is unchanged,
    so reconcile leaves it alone)."""
    records = ctx.extras.setdefault("services", {})
    for s in plan.steps:
        if isinstance(s, Service) and not alive(records.get(s.node)):
            records[s.node] = spawn(ctx.lab, s)


def teardown(lab, plan, extras) -> None:
    for record in (extras or {}).get("services", {}).values():
        stop(record)


def status(entry, st) -> None:
    records = st.extras.get("services", {})
    if records:
        entry["services"] = {node: {"pid": r["pid"], "services": r["services"], "running": alive(r)}
                             for node, r in records.items()}
