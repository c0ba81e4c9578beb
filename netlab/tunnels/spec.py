"""Tunnels (overlays): the `tunnels:` section, its validation and its MTU rules.

Pure: no root, no kernel. Owns the meaning of

    tunnels:
      - {type: vxlan, id: 42, endpoints: [site-a, site-b], network: stretched}
      - {type: gretap, key: 7, endpoints: [site-a, site-b], network: stretched2}
      - {type: gre, key: 9, endpoints: [r1, r2], subnet: 172.16.9.0/30, subnet6: "fd00:9::/127"}

How a network is stretched (vxlan, gretap): every endpoint is a "site" with a bridge of
its own, named as the network, in its namespace (an endpoint that is itself on the
network gets its interface there as that bridge, holding its address, like a switch's
VLAN interface); that site's tunnel device is a port of it, and the veths of the nodes at the site are wired to it instead of to the network's
bridge in the lab namespace `<lab>--lab`. That lab bridge stays (what other features put
there, like the lab DNS server's address, keeps working) and hangs off the first site's
bridge by one veth. A node is at the site whose endpoint lists it under `sites:`, or, by
default, whose name prefixes it (`site-a-h1` is at `site-a`); an endpoint attached to the
network is at its own site. The sites of a network must form a tree (no spanning tree
runs): several sites in one vxlan entry (a mesh, head-end replication), or a hub with
one tunnel per spoke.

A gre tunnel is a point-to-point interface with addresses from its `subnet` and/or
`subnet6` (the first two of each, in endpoint order). The compiler's static routing sees
it as one more segment between its two endpoints (hook `interfaces`, called before
routing), so routes of both versions may cross it. Every endpoint whose route to its
peer's underlay address would enter an overlay gets a host route (/32, or /128 over
IPv6) via the underlay, so no tunnel is ever carried inside itself.

The underlay (which interface and IP version carries each endpoint: IPv4, or IPv6 with
the kernel's ip6gre/ip6gretap and vxlan over IPv6) is worked out in
netlab/tunnels/underlay.py; the plan steps and how they are made in compile.py,
the kernel's side in kernel.py.

MTU: the overlay carries underlay MTU minus the encapsulation: over IPv4 vxlan 50,
gretap 38, gre 24; over IPv6 vxlan 70, gretap 58, gre 44 (ip6gre/ip6gretap are built
without the encapsulation-limit option, which would cost 8 more); +4 with a key. An
overlay without a pinned MTU gets that; a pinned one that is larger stays and `netlab
plan` warns that larger packets will not pass.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from ..core.errors import Problems
from .tunnel import KEY_OVERHEAD, KIND6, OVERHEAD, OVERHEAD6, Tunnel  # noqa: F401 (the section's constants)
from .underlay import parse_family, parse_map, ports, resolve

TYPES = ("vxlan", "gretap", "gre")
L2_TYPES = ("vxlan", "gretap")
MODULE = {"vxlan": "vxlan", "gretap": "ip_gre", "gre": "ip_gre", "ip6gretap": "ip6_gre",
          "ip6gre": "ip6_gre"}
VXLAN_PORT = 4789
DEFAULT_MTU = 1500
KEYS = {"type", "id", "key", "port", "endpoints", "network", "subnet", "subnet6", "sites",
        "underlay", "family", "mtu", "ifname"}
IFNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
RESERVED = {"lo", "gre0", "gretap0", "erspan0", "tunl0", "sit0", "ip6tnl0", "ip6gre0"}


# ---------------------------------------------------------------- reading the section

def _int(where: str, value: Any, low: int, high: int, problems: Problems) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(where, f"{value!r} must be a whole number from {low} to {high}")
        return None
    return value


def parse(topo, problems: Problems | None = None) -> list[Tunnel]:
    """The tunnels of a topology, each entry checked on its own; problems are reported to
    `problems` (or dropped) and bad entries left out."""
    problems = problems if problems is not None else Problems()
    tunnels = []
    for i, raw in enumerate(topo.sections.get("tunnels") or []):
        tunnel = _parse_one(topo, i, raw, problems)
        if tunnel is not None:
            tunnels.append(tunnel)
    nets = stretched(tunnels)
    for t in tunnels:
        resolve(topo, t, nets, problems)
    return tunnels


def _parse_one(topo, i: int, raw: Any, problems: Problems) -> Tunnel | None:
    where = f"tunnels[{i}]"
    if not isinstance(raw, dict):
        problems.add(where, "must be a mapping like {type: vxlan, id: 42, endpoints: [a, b], network: n}")
        return None
    before = len(problems.lines)
    for k in sorted(set(raw) - KEYS, key=str):
        problems.add(f"{where}.{k}", f"unknown key (known: {', '.join(sorted(KEYS))})")
    kind = raw.get("type")
    if kind not in TYPES:
        problems.add(f"{where}.type", f"{kind!r} must be one of {', '.join(TYPES)}")
        return None
    endpoints = _endpoints(topo, where, kind, raw.get("endpoints"), problems)
    t = Tunnel(i, kind, endpoints, raw.get("ifname", f"{kind}-{i}"))
    if not isinstance(t.ifname, str) or not IFNAME.match(t.ifname) or t.ifname in RESERVED:
        problems.add(f"{where}.ifname", f"{t.ifname!r} is not a usable interface name")
    if kind == "vxlan":
        if "id" not in raw:
            problems.add(f"{where}.id", "required: the VXLAN network identifier (1 to 16777215)")
        else:
            t.vni = _int(f"{where}.id", raw["id"], 1, 2**24 - 1, problems)
        t.port = _int(f"{where}.port", raw.get("port", VXLAN_PORT), 1, 65535, problems)
    for k in (("key",) if kind == "vxlan" else ("id", "port")):
        if k in raw:
            problems.add(f"{where}.{k}", f"not used by {kind} tunnels")
    if kind != "vxlan" and "key" in raw:
        t.key = _int(f"{where}.key", raw["key"], 0, 2**32 - 1, problems)
    if kind in L2_TYPES:
        _l2_fields(topo, t, raw, problems)
    else:
        _gre_fields(topo, t, raw, problems)
    t.underlay = parse_map(topo, t, raw.get("underlay"), problems)
    t.family = parse_family(where, raw.get("family"), problems)
    return t if len(problems.lines) == before else None


def _endpoints(topo, where: str, kind: str, raw: Any, problems: Problems) -> list[str]:
    count = "two or more" if kind == "vxlan" else "exactly two"
    if not isinstance(raw, list) or len(raw) < 2 or (kind != "vxlan" and len(raw) != 2):
        problems.add(f"{where}.endpoints", f"must list {count} nodes, like [site-a, site-b]")
        return []
    found = []
    for j, name in enumerate(raw):
        if not isinstance(name, str) or name not in topo.nodes:
            problems.add(f"{where}.endpoints[{j}]", f"unknown node {name!r}")
        elif name in found:
            problems.add(f"{where}.endpoints[{j}]", f"node {name!r} is listed twice")
        else:
            found.append(name)
    return found


def _l2_fields(topo, t: Tunnel, raw: dict, problems: Problems) -> None:
    for k in ("subnet", "subnet6", "mtu"):
        if k in raw:
            problems.add(f"{t.where}.{k}", f"not used by {t.type} tunnels (set it on the network)")
    t.network = raw.get("network")
    if t.network is None:
        problems.add(f"{t.where}.network", f"required: the network that {t.type} stretches")
    elif not isinstance(t.network, str) or t.network not in topo.networks:
        problems.add(f"{t.where}.network", f"unknown network {t.network!r}")
    sites = raw.get("sites", {})
    if not isinstance(sites, dict):
        problems.add(f"{t.where}.sites", "must map endpoints to the nodes at their site, like {site-a: [h1]}")
        return
    for endpoint, members in sites.items():
        at = f"{t.where}.sites.{endpoint}"
        if endpoint not in t.endpoints:
            problems.add(at, f"{endpoint!r} is not an endpoint of this tunnel")
        elif not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            problems.add(at, "must be a list of node names")
        else:
            for m in members:
                if m not in topo.nodes:
                    problems.add(at, f"unknown node {m!r}")
                elif t.network and not _attached(topo, m, t.network):
                    problems.add(at, f"node {m!r} is not on network {t.network}")
            t.sites[endpoint] = list(members)


def _gre_fields(topo, t: Tunnel, raw: dict, problems: Problems) -> None:
    for k in ("network", "sites"):
        if k in raw:
            problems.add(f"{t.where}.{k}", "not used by gre tunnels (gre is routed: give it a subnet)")
    if "subnet" not in raw and "subnet6" not in raw:
        problems.add(f"{t.where}.subnet", "required: the tunnel's own subnet, like 172.16.9.0/30 "
                                          "(or a subnet6, or both)")
    t.subnet = _own_subnet(t, raw, "subnet", problems)
    t.subnet6 = _own_subnet(t, raw, "subnet6", problems)
    if "mtu" in raw:
        t.mtu = _int(f"{t.where}.mtu", raw["mtu"], 68, 65535, problems)


def _own_subnet(t: Tunnel, raw: dict, key: str, problems: Problems):
    """A gre tunnel's `subnet` (IPv4) or `subnet6` (IPv6), checked; None if absent or bad."""
    if key not in raw:
        return None
    version, other = (4, "IPv6 goes in subnet6") if key == "subnet" else (6, "IPv4 goes in subnet")
    try:
        subnet = ipaddress.ip_network(str(raw[key]), strict=True)
    except ValueError as e:
        problems.add(f"{t.where}.{key}", f"{raw[key]!r} is not an IPv{version} subnet ({e})")
        return None
    if subnet.version != version:
        problems.add(f"{t.where}.{key}", f"{raw[key]!r} is not IPv{version} ({other})")
        return None
    if subnet.prefixlen > subnet.max_prefixlen - 1:
        problems.add(f"{t.where}.{key}", f"{subnet} is too small for two endpoints")
        return None
    return subnet


def _attached(topo, node: str, network: str) -> bool:
    return any(a.network == network for a in topo.nodes[node].attachments)


# ---------------------------------------------------------------- whole-section checks

def stretched(tunnels: list[Tunnel]) -> dict[str, list[Tunnel]]:
    """network -> the L2 tunnels that stretch it."""
    nets: dict[str, list[Tunnel]] = {}
    for t in tunnels:
        if t.network:
            nets.setdefault(t.network, []).append(t)
    return nets


def validate(topo, problems: Problems) -> None:
    """Hook: every problem of `tunnels:`, located."""
    if not topo.sections.get("tunnels"):
        return
    tunnels = parse(topo, problems)
    nets = stretched(tunnels)
    _check_subnets(topo, tunnels, problems)
    for net, group in nets.items():
        _check_sites(topo, net, group, problems)
        _check_tree(net, group, problems)
    _check_clashes(topo, tunnels, problems)


def _check_subnets(topo, tunnels, problems: Problems) -> None:
    """A gre tunnel's own subnets overlap no other subnet of the lab, of either version."""
    for key in ("subnet", "subnet6"):
        subnets = [(f"networks.{n.name}.{key}", getattr(n, key)) for n in topo.networks.values()]
        subnets += [(f"links[{i}].{key}", getattr(l, key)) for i, l in enumerate(topo.links)]
        subnets = [(where, s) for where, s in subnets if s is not None]
        for t in tunnels:
            mine = getattr(t, key)
            if mine is None:
                continue
            for where, other in subnets:
                if mine.overlaps(other):
                    problems.add(f"{t.where}.{key}", f"{mine} overlaps {other} ({where})")
            subnets.append((f"{t.where}.{key}", mine))


def site_of(topo, net: str, group: list[Tunnel]) -> dict[str, str | None]:
    """Node on a stretched network -> the endpoint (site) it hangs off; None: nowhere."""
    endpoints = sorted({e for t in group for e in t.endpoints}, key=len, reverse=True)
    explicit = {m: site for t in group for site, members in t.sites.items() for m in members}
    placed: dict[str, str | None] = {}
    for node in topo.nodes.values():
        if not _attached(topo, node.name, net):
            continue
        if node.name in endpoints:
            placed[node.name] = node.name
        elif node.name in explicit:
            placed[node.name] = explicit[node.name]
        else:
            placed[node.name] = next((e for e in endpoints if node.name.startswith(e + "-")), None)
    return placed


def _check_sites(topo, net: str, group: list[Tunnel], problems: Problems) -> None:
    seen: dict[str, str] = {}
    for t in group:
        for site, members in t.sites.items():
            for m in members:
                if m in seen and seen[m] != site:
                    problems.add(f"{t.where}.sites.{site}", f"node {m!r} is already at site {seen[m]}")
                elif m in {e for g in group for e in g.endpoints} and m != site:
                    problems.add(f"{t.where}.sites.{site}", f"node {m!r} is an endpoint: it is its own site")
                seen[m] = site
    for node, site in site_of(topo, net, group).items():
        if site is None:
            problems.add(f"{group[0].where}.sites",
                         f"node {node!r} is on stretched network {net} but at no site: list it under "
                         f"{group[0].where}.sites.<endpoint> (or name it <endpoint>-...)")


def _check_tree(net: str, group: list[Tunnel], problems: Problems) -> None:
    """The sites of a stretched network must be joined without loops (the bridges run no
    spanning tree) and without islands."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for t in group:
        roots = [root(e) for e in t.endpoints]
        if len(set(roots)) < len(roots):
            problems.add(t.where, f"closes a loop on network {net} (its sites are already joined; "
                                  f"bridges here run no spanning tree: list every site in one vxlan entry)")
            continue
        for r in roots[1:]:
            parent[r] = roots[0]
    islands = {root(x) for x in list(parent)}
    if len(islands) > 1:
        problems.add(group[0].where, f"network {net} is stretched to sites that no tunnel joins "
                                     f"({len(islands)} separate groups)")


def _check_clashes(topo, tunnels, problems: Problems) -> None:
    """Names and kernel identities that must be unique per endpoint namespace."""
    nets = stretched(tunnels)
    names: dict[tuple[str, str], str] = {}
    for node in topo.nodes:
        for ifname in ports(topo, node):
            names[(node, ifname)] = "an interface"
    for net, group in nets.items():
        for node in {e for t in group for e in t.endpoints}:
            if _attached(topo, node, net):
                continue                  # its own interface on the network is the bridge
            if (node, net) in names:
                problems.add(group[0].where, f"node {node} has an interface named {net}, which the "
                                             f"site bridge of network {net} needs")
            names[(node, net)] = f"the bridge of network {net}"
    ids: dict[tuple, str] = {}
    for t in tunnels:
        for node in t.endpoints:
            if (node, t.ifname) in names:
                problems.add(f"{t.where}.ifname", f"node {node} already has {names[(node, t.ifname)]} "
                                                  f"named {t.ifname}")
            names[(node, t.ifname)] = f"a tunnel ({t.where})"
            others = tuple(sorted(set(t.endpoints) - {node}))
            ident = (node, t.kind, t.family) + ((t.vni, t.port) if t.type == "vxlan" else (others, t.key))
            if ident in ids:
                problems.add(t.where, f"node {node} already terminates the same {t.type} tunnel "
                                      f"({ids[ident]}); give it another id/key")
            ids[ident] = t.where


def uses_ipv6(topo) -> str | None:
    """Where the tunnels ask for IPv6 of their own (a gre tunnel's subnet6), or None."""
    for i, tunnel in enumerate(topo.sections.get("tunnels") or []):
        if isinstance(tunnel, dict) and tunnel.get("subnet6"):
            return f"tunnels[{i}].subnet6"
    return None
