"""Tunnels in `netlab graph`: a dashed edge between the two endpoints of each tunnel,
labelled with its type, id, network or subnets and the endpoints' addresses (hook
graph_edges). Pure.
"""
from __future__ import annotations

from typing import Any

from ..core.compiler import Compiled
from .spec import Tunnel, parse


def _tunnel_ends(raw: Any) -> list[str]:
    ends = raw.get("endpoints") if isinstance(raw, dict) else None
    if not isinstance(ends, list):
        return []
    return [str(e).split(":", 1)[0] for e in ends]


def _tunnel_label(raw: dict, index: int, compiled: Compiled, tunnel: Tunnel | None) -> list[str]:
    kind = str(raw.get("type", "tunnel"))
    ident = raw.get("id", raw.get("key", raw.get("vni")))
    head = f"{kind} {ident}" if ident is not None else kind
    lines = [head]
    if raw.get("network"):
        lines.append(f"L2 {raw['network']}")
    lines += [str(raw[k]) for k in ("subnet", "subnet6") if raw.get(k)]
    # addresses the tunnels feature assigned, if it records them as a segment
    segment = f"tunnel:{index}"
    for node in _tunnel_ends(raw):
        for iface in compiled.ifaces.get(node, []):
            if iface.segment == segment:
                addresses = [str(a) for a in (iface.address, iface.address6) if a]
                lines.append(" ".join([node, iface.ifname] + addresses))
    return lines + _underlay6(tunnel, compiled)


def _underlay6(tunnel: Tunnel | None, compiled: Compiled) -> list[str]:
    """`over IPv6 A, B`: the endpoints' underlay addresses of a tunnel over IPv6 (an IPv4
    underlay is the default, and its addresses are on the underlay's own edges)."""
    if tunnel is None or tunnel.family != 6 or len(tunnel.ends) != len(tunnel.endpoints):
        return []
    addresses = [next((str(i.address6) for i in compiled.ifaces.get(node, [])
                       if i.ifname == tunnel.ends[node]), "?") for node in tunnel.endpoints]
    return ["over IPv6 " + ", ".join(addresses)]


def graph_edges(topo, compiled) -> list[tuple[str, str, list[str], str]]:
    """(endpoint, endpoint, label lines, "dashed") for each tunnel between two nodes."""
    raws = topo.sections.get("tunnels") or []
    parsed = {t.index: t for t in parse(topo)} if raws else {}
    edges = []
    for i, raw in enumerate(raws):
        ends = [e for e in _tunnel_ends(raw) if e in topo.nodes]
        if len(ends) == 2 and isinstance(raw, dict):
            edges.append((ends[0], ends[1], _tunnel_label(raw, i, compiled, parsed.get(i)), "dashed"))
    return edges
