"""Which address carries each tunnel endpoint: its underlay interface and IP version.

Pure: no root, no kernel. Owns the meaning of two keys of a `tunnels:` entry:

    tunnels:
      - {type: vxlan, id: 42, endpoints: [a, b], network: n, underlay: {a: wan}, family: 6}

- `underlay:` names the interface whose address carries the tunnel at an endpoint;
  default: the endpoint's first interface with an address of the tunnel's IP version
  that is not on a network a tunnel stretches (a tunnel never runs over an overlay).
- `family:` (4 or 6) is the IP version of the underlay. Default: IPv4 when every
  endpoint has an IPv4 underlay address (so a dual-stack underlay carries IPv4, as it
  always did), else IPv6 when every endpoint has an IPv6 one (a v6-only underlay just
  works). The tunnel's overlay may carry either version whatever its underlay is.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ..core.errors import Problems
from .tunnel import Tunnel

FAMILIES = (4, 6)
SUBNET_KEY = {4: "subnet", 6: "subnet6"}


@dataclass(frozen=True)
class Port:
    """One interface of a node as the file gives it: on a network, or a link's end."""
    network: str | None                 # None: one end of a point-to-point link
    subnet: ipaddress.IPv4Network | None
    subnet6: ipaddress.IPv6Network | None

    @property
    def families(self) -> set[int]:
        """The IP versions this interface has an address of."""
        return {f for f, s in ((4, self.subnet), (6, self.subnet6)) if s is not None}


def ports(topo, node: str) -> dict[str, Port]:
    """A node's interfaces from the file, by name, in the order it gets them."""
    found = {}
    for a in topo.nodes[node].attachments:
        net = topo.networks[a.network]
        found[a.ifname] = Port(a.network, net.subnet, net.subnet6)
    for link in topo.links:
        for end in link.endpoints:
            if end.node == node:
                found[end.ifname] = Port(None, link.subnet, link.subnet6)
    return found


def parse_family(where: str, raw: Any, problems: Problems) -> int | None:
    """The `family:` key: 4, 6 or absent (None: chosen from the addresses)."""
    if raw is None or (raw in FAMILIES and not isinstance(raw, bool)):
        return raw
    problems.add(f"{where}.family", f"{raw!r} must be 4 or 6 (the IP version of the underlay)")
    return None


def parse_map(topo, t: Tunnel, raw: Any, problems: Problems) -> dict[str, str]:
    """The `underlay:` key: endpoint -> one of its interfaces."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(f"{t.where}.underlay", "must map endpoints to an interface, like {site-a: eth1}")
        return {}
    for node, ifname in raw.items():
        if node not in t.endpoints:
            problems.add(f"{t.where}.underlay.{node}", f"{node!r} is not an endpoint of this tunnel")
        elif not isinstance(ifname, str) or ifname not in ports(topo, node):
            problems.add(f"{t.where}.underlay.{node}", f"node {node} has no interface {ifname!r}")
    return dict(raw)


def resolve(topo, t: Tunnel, nets: dict, problems: Problems) -> None:
    """Set `t.family` and `t.ends` (endpoint -> underlay interface), or report, one line
    each, why an endpoint has no usable underlay address; `nets` are the stretched ones."""
    offers = {node: _offers(topo, t, j, node, nets, problems) for j, node in enumerate(t.endpoints)}
    if not offers or any(o is None for o in offers.values()):
        return
    family = t.family or _common(t, offers, problems)
    if family is None:
        return
    ends = {}
    for j, node in enumerate(t.endpoints):
        if family in offers[node]:
            ends[node] = t.underlay.get(node) or _first(topo, node, nets, family)
        elif node in t.underlay:
            problems.add(f"{t.where}.underlay.{node}", f"{node}:{t.underlay[node]} has no IPv{family} "
                                                       f"address (no {SUBNET_KEY[family]})")
        else:
            problems.add(f"{t.where}.endpoints[{j}]",
                         f"node {node} has no IPv{family} underlay address (attach it to a network "
                         f"or link with a {SUBNET_KEY[family]}, or drop family: {family})")
    if len(ends) == len(t.endpoints):
        t.family, t.ends = family, ends


def _candidates(topo, node: str, nets: dict) -> dict[str, Port]:
    """The interfaces that may carry a tunnel: not on a stretched network."""
    return {name: p for name, p in ports(topo, node).items() if p.network not in nets}


def _first(topo, node: str, nets: dict, family: int) -> str:
    return next(name for name, p in _candidates(topo, node, nets).items() if family in p.families)


def _offers(topo, t: Tunnel, j: int, node: str, nets: dict, problems: Problems) -> set[int] | None:
    """The IP versions the endpoint's underlay could use; None (reported) if none."""
    if node in t.underlay:
        ifname = t.underlay[node]
        port = ports(topo, node)[ifname]
        if port.network in nets:
            problems.add(f"{t.where}.underlay.{node}",
                         f"{ifname} is on network {port.network}, which a tunnel stretches; "
                         f"a tunnel cannot run over an overlay")
            return None
        if not port.families:
            problems.add(f"{t.where}.underlay.{node}", f"{node}:{ifname} has no address (no subnet)")
        return port.families or None
    families = set().union(*(p.families for p in _candidates(topo, node, nets).values()))
    if not families:
        problems.add(f"{t.where}.endpoints[{j}]",
                     f"node {node} has no underlay address (attach it to a network with a "
                     f"subnet, or a link with a subnet)")
    return families or None


def _common(t: Tunnel, offers: dict[str, set[int]], problems: Problems) -> int | None:
    """IPv4 if every endpoint offers it, else IPv6 if every one does; else reported."""
    shared = set.intersection(*offers.values())
    for family in FAMILIES:
        if family in shared:
            return family
    have = ", ".join(f"{node} has {' and '.join(f'IPv{f}' for f in sorted(fams))}"
                     for node, fams in offers.items())
    problems.add(t.where, f"its endpoints share no IP version on the underlay ({have}); "
                          f"give every endpoint an address of one version")
    return None
