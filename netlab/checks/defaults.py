"""The checks run when a lab declares none: every node reaches its gateway (or, on a
segment without one, its neighbour) and the other end of each point-to-point link; and,
if the lab has DNS, every node resolves the name of another node."""
from __future__ import annotations

from .labinfo import LabView
from .spec import CheckSpec


def default_checks(view: LabView) -> list[CheckSpec]:
    specs: list[CheckSpec] = []
    members: dict[str, list[str]] = {}
    for node in sorted(view.ns):
        for i in view.ifaces[node]:
            if i.address or i.address6:
                members.setdefault(i.segment, []).append(node)
    for n, node in enumerate(sorted(view.ns)):
        targets: list[str] = []
        for i in view.ifaces[node]:
            if not (i.address or i.address6):
                continue
            gw = view.gateways.get(i.segment)
            peers = members.get(i.segment, [])
            if gw and gw != node:
                target = gw
            elif len(peers) > 1 and not gw:
                target = peers[(peers.index(node) + 1) % len(peers)]
            else:
                continue
            if target not in targets:
                targets.append(target)
                specs.append(CheckSpec("ping", f"defaults.ping[{node}->{target}]", node, target))
        server = view.dns_server(node)
        if server:
            other = sorted(view.ns)[(n + 1) % len(view.ns)]
            spec = CheckSpec("dns", f"defaults.dns[{node}]", node)
            v4 = view.addresses(other)
            v6 = [i.address6 for i in view.ifaces[other] if i.address6]
            spec.opts.update(name=other, server=None, type="A" if v4 or not v6 else "AAAA",
                             any_of=v4 or v6)
            specs.append(spec)
    return specs
