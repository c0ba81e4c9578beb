"""The `services:` of a node: netlab's own responders (HTTP, TCP echo, UDP echo, each on
IPv4 and IPv6 alike; see netlab.core.responder) started inside it by `up`, restarted by
`up` if they died, stopped at `down`. This module parses and validates the section; the
step and its compile hook are in compile.py, the process and its hooks in kernel.py.

    services: [http:80, tcp:9000, udp:7]
"""
from __future__ import annotations

import re

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
        for i, item in enumerate(node.sections.get("services") or []):
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
