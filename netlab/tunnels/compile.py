"""Compile `tunnels:` into plan steps (pure; the rules are in netlab/tunnels/spec.py).

- `interfaces(topo, compiled)`, before routing: each gre tunnel becomes an interface
  (segment `tunnel:<i>`) at both endpoints, so the static routes may cross it.
- `compile(topo, compiled, plan)`, after the core steps: gives each stretched network a
  bridge at every site (endpoint namespace), rewires the veths of the nodes at a site to
  it, hangs the network's lab-namespace bridge off the first site, adds the tunnel
  devices, the gre addresses, the /32 (/128 over IPv6) underlay routes that keep
  tunnels out of themselves, and MTU warnings.
"""
from __future__ import annotations

import hashlib
import ipaddress

from ..core.compiler import (
    Compiled,
    Iface,
    _first_hosts,
    compute_routes,
    interface_index,
    port_name,
    resolve_gateways,
)
from ..core.plan import Address, Bridge, Plan, Route, Veth
from .spec import DEFAULT_MTU, Tunnel, parse, site_of, stretched
from .steps import BridgePort, TunnelDevice


def _first_two(subnet) -> list:
    """The gre endpoints' addresses in a tunnel's subnet (either version), or two Nones."""
    return list(_first_hosts(subnet, 2)) if subnet is not None else [None, None]


def _iface(compiled: Compiled, node: str, ifname: str) -> Iface:
    return next(i for i in compiled.ifaces[node] if i.ifname == ifname)


class Ends:
    """The underlay interface of every tunnel endpoint (tunnels/underlay.py chose it
    and the IP version), with its compiled address."""

    def __init__(self, compiled: Compiled, tunnels: list[Tunnel]):
        self.iface: dict[tuple[int, str], Iface] = {}
        for t in tunnels:
            for node in t.endpoints:
                self.iface[(t.index, node)] = _iface(compiled, node, t.ends[node])

    def of(self, t: Tunnel, node: str) -> Iface:
        return self.iface[(t.index, node)]

    def address(self, t: Tunnel, node: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The endpoint's underlay address, of the tunnel's underlay version."""
        iface = self.of(t, node)
        return iface.address6 if t.family == 6 else iface.address

    def capacity(self, t: Tunnel) -> tuple[int, int]:
        """(largest packet the tunnel carries, the underlay MTU that limits it)."""
        underlay = min(self.of(t, n).mtu or DEFAULT_MTU for n in t.endpoints)
        return underlay - t.overhead, underlay


def interfaces(topo, compiled: Compiled) -> None:
    """Hook (before routing): gre tunnels are point-to-point segments `tunnel:<i>`."""
    if not topo.sections.get("tunnels"):
        return
    compiled.overlays = True
    tunnels = parse(topo)
    ends = Ends(compiled, tunnels)
    for t in tunnels:
        if t.type != "gre":
            continue
        cap, _ = ends.capacity(t)
        for node, address, address6 in zip(t.endpoints, _first_two(t.subnet), _first_two(t.subnet6)):
            taken = {i.index for i in compiled.ifaces[node]}
            compiled.ifaces[node].append(Iface(node, t.ifname, interface_index(t.ifname, taken),
                                               f"tunnel:{t.index}", t.subnet, address, t.mtu or cap,
                                               t.subnet6, address6))


def compile(topo, compiled: Compiled, plan: Plan) -> None:
    """Hook: the steps of every tunnel (see the module docstring)."""
    tunnels = parse(topo)
    if not tunnels:
        return
    nets = stretched(tunnels)
    ends = Ends(compiled, tunnels)
    gre_names = {(topo.netns(n), t.ifname) for t in tunnels if t.type == "gre" for n in t.endpoints}
    veths, later = _take_core_steps(topo, plan, set(nets), gre_names)
    for net, group in nets.items():
        _stretch(topo, compiled, plan, net, group, ends, veths)
    plan.steps += later["l2"]
    for t in tunnels:
        if t.type == "gre":
            _gre(topo, compiled, plan, t, ends)
    plan.steps += later["gre"]
    _underlay_routes(topo, compiled, plan, tunnels, ends)


def _take_core_steps(topo, plan: Plan, nets: set[str], gre_names: set) -> tuple[dict, dict]:
    """Remove from the plan what the core made for stretched networks (the veths to their
    lab-namespace bridge) and what must follow the tunnel devices (addresses and routes
    on those veths, routes through gre devices). Returns them."""
    lab_ns = topo.switch_netns
    veths: dict[tuple[str, str], Veth] = {}
    later: dict[str, list] = {"l2": [], "gre": []}
    kept = []
    for s in plan.steps:
        if isinstance(s, Veth) and s.peer_ns == lab_ns and s.master in nets:
            veths[(s.ns, s.ifname)] = s
            continue
        dev = (getattr(s, "ns", None), s.ifname if isinstance(s, Address) else getattr(s, "dev", None))
        if isinstance(s, (Address, Route)) and dev in veths:
            later["l2"].append(s)
        elif isinstance(s, Route) and dev in gre_names:
            later["gre"].append(s)
        else:
            kept.append(s)
    plan.steps[:] = kept
    return veths, later


def _l2_mtu(topo, plan: Plan, net: str, group: list[Tunnel], ends: Ends) -> tuple[int, int]:
    """(MTU of the network's ports and bridges, MTU of its tunnel devices)."""
    caps = [(ends.capacity(t), t) for t in group]
    (cap, underlay), worst = min(caps, key=lambda c: c[0][0])
    pinned = topo.networks[net].mtu
    if pinned is None:
        return cap, cap
    if pinned > cap:
        plan.warnings.append(
            f"networks.{net}.mtu: {pinned} is above what {worst.type} {worst.where} carries "
            f"({cap} = {underlay} - {worst.overhead}); larger packets will not pass")
        return pinned, cap
    return pinned, pinned


def _stretch(topo, compiled, plan: Plan, net: str, group: list[Tunnel], ends: Ends, veths) -> None:
    """Per site: a bridge (named as the network; or, at an endpoint that is itself on the
    network, named as that endpoint's interface there, which then holds its address),
    the tunnel devices as its ports, then the veths of the nodes at that site."""
    port_mtu, dev_mtu = _l2_mtu(topo, plan, net, group, ends)
    sites = list(dict.fromkeys(e for t in group for e in t.endpoints))
    own = {site: v.ifname for (ns, _), v in veths.items() if v.master == net
           for site in sites if topo.netns(site) == ns}
    bridge = {site: own.get(site, net) for site in sites}
    for site in sites:
        plan.add(Bridge(ns=topo.netns(site), name=bridge[site], mtu=port_mtu))
    for t in group:
        for node in t.endpoints:
            plan.add(_device(topo, compiled, t, node, ends, master=bridge[node], mtu=dev_mtu))
    _uplink(topo, compiled, plan, net, sites[0], bridge[sites[0]], port_mtu)
    placed = {topo.netns(node): site for node, site in site_of(topo, net, group).items()}
    for v in veths.values():
        site = placed.get(v.ns)
        if v.master == net and own.get(site) != v.ifname:
            plan.add(Veth(ns=v.ns, ifname=v.ifname, index=v.index, peer_ns=topo.netns(site),
                          peer=v.peer, master=bridge[site], mtu=port_mtu, alias=v.alias))


def _uplink(topo, compiled, plan: Plan, net: str, site: str, bridge: str, mtu: int) -> None:
    """One veth from the first site's bridge to the network's bridge in the lab namespace."""
    name = f"{net}.lab" if len(net) <= 11 else "ul." + hashlib.sha1(net.encode()).hexdigest()[:12]
    index = interface_index(name, {i.index for i in compiled.ifaces[site]})
    ns = topo.netns(site)
    plan.add(Veth(ns=ns, ifname=name, index=index, peer_ns=topo.switch_netns,
                  peer=port_name(site, net), master=net, mtu=mtu, alias=f"{site}:{net} (site uplink)"))
    plan.add(BridgePort(ns=ns, ifname=name, master=bridge))


def _device(topo, compiled, t: Tunnel, node: str, ends: Ends, master: str | None,
            mtu: int) -> TunnelDevice:
    remotes = ",".join(str(ends.address(t, r)) for r in t.endpoints if r != node)
    ifaces = compiled.ifaces[node]
    own = next((i for i in ifaces if i.ifname == t.ifname), None)
    index = own.index if own else interface_index(t.ifname, {i.index for i in ifaces})
    return TunnelDevice(ns=topo.netns(node), ifname=t.ifname, index=index, kind=t.kind,
                        local=str(ends.address(t, node)), remotes=remotes, underlay=t.ends[node],
                        vni=t.vni, port=t.port, gre_key=t.key, master=master, mtu=mtu,
                        network=t.network)


def _gre(topo, compiled, plan: Plan, t: Tunnel, ends: Ends) -> None:
    cap, underlay = ends.capacity(t)
    if t.mtu is not None and t.mtu > cap:
        plan.warnings.append(f"{t.where}.mtu: {t.mtu} is above what gre carries "
                             f"({cap} = {underlay} - {t.overhead}); larger packets will not pass")
    for node in t.endpoints:
        plan.add(_device(topo, compiled, t, node, ends, master=None, mtu=t.mtu or cap))
        own = _iface(compiled, node, t.ifname)
        for cidr in (own.cidr, own.cidr6):
            if cidr:
                plan.add(Address(ns=topo.netns(node), ifname=t.ifname, cidr=cidr))


def _lookup(routes: list[tuple[str, str, str]], address):
    """The (via, dev) of the longest route prefix (of the address's IP version) that
    covers the address, or None."""
    best = None
    for dst, via, dev in routes:
        net = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst)
        if address in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, via, dev)
    return best[1:] if best else None


def _underlay_only(topo, compiled: Compiled, tunnels: list[Tunnel]) -> Compiled:
    """The lab's routes as if no overlay existed (for the tunnels' own packets)."""
    overlay = set(stretched(tunnels)) | {f"tunnel:{t.index}" for t in tunnels if t.type == "gre"}
    under = Compiled(topo, ifaces={n: [i for i in ifaces if i.segment not in overlay]
                                   for n, ifaces in compiled.ifaces.items()})
    resolve_gateways(topo, under)
    compute_routes(topo, under)
    return under


def _underlay_routes(topo, compiled: Compiled, plan: Plan, tunnels: list[Tunnel], ends: Ends) -> None:
    """A host route (/32, /128) to each peer's underlay address, via the underlay, wherever
    the lab's routes would send it into an overlay; a warning where the underlay has no way."""
    connected = {n: [s for i in ifaces if not i.segment.startswith("tunnel:")
                     for s in (i.subnet, i.subnet6) if s]
                 for n, ifaces in compiled.ifaces.items()}
    under = None
    have = {s.key for s in plan.steps}
    for t in tunnels:
        for node in t.endpoints:
            for peer in t.endpoints:
                remote = ends.address(t, peer)
                if peer == node or any(remote in subnet for subnet in connected[node]):
                    continue
                under = under or _underlay_only(topo, compiled, tunnels)
                path = _lookup(under.routes[node], remote)
                if path is None:
                    plan.warnings.append(f"{t.where}: no underlay route from {node} to {peer}'s "
                                         f"address {remote}; the tunnel will not carry anything")
                    continue
                route = Route(ns=topo.netns(node), dst=f"{remote}/{remote.max_prefixlen}",
                              via=path[0], dev=path[1])
                if _lookup(compiled.routes[node], remote) != path and route.key not in have:
                    plan.add(route)
                    have.add(route.key)
