"""Compile a Topology into a Plan: addressing, interface naming, MTU, gateways, routes.

Pure: no root, no kernel, no docker. The same topology always gives the same plan.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import zlib
from collections import deque
from dataclasses import dataclass, field

from . import hooks
from .model import Node, Topology
from .plan import Address, Bridge, Namespace, Plan, Route, Veth


@dataclass
class Iface:
    node: str
    ifname: str
    index: int
    segment: str                        # network name, or "link:<i>" for a p2p link
    subnet: ipaddress.IPv4Network | None
    address: ipaddress.IPv4Address | None
    mtu: int | None
    subnet6: ipaddress.IPv6Network | None = None
    address6: ipaddress.IPv6Address | None = None

    @property
    def cidr(self) -> str | None:
        return f"{self.address}/{self.subnet.prefixlen}" if self.address else None

    @property
    def cidr6(self) -> str | None:
        return f"{self.address6}/{self.subnet6.prefixlen}" if self.address6 else None

    def as_v6(self) -> Iface:
        """This interface seen through its IPv6 subnet and address (for routing)."""
        return dataclasses.replace(self, subnet=self.subnet6, address=self.address6)


@dataclass
class Compiled:
    """What the compiler worked out; feature compilers read it to add their steps."""
    topo: Topology
    ifaces: dict[str, list[Iface]] = field(default_factory=dict)
    gateways: dict[str, str | None] = field(default_factory=dict)
    routes: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    overlays: bool = False              # set by a feature (tunnels) whose overlays keep
                                        # underlay and overlay apart: no reachability promise

    def address_of(self, node: str, segment: str | None = None, version: int = 4):
        """A node's address (IPv4, or IPv6 with version=6) on a segment, or its first."""
        for iface in self.ifaces.get(node, []):
            address = iface.address if version == 4 else iface.address6
            if address and (segment is None or iface.segment == segment):
                return address
        return None


def interface_index(ifname: str, taken: set[int]) -> int:
    """A stable ifindex for an interface inside its node: ethN -> 1000+N, other names a
    hash above 2000. Fixed indexes let apply address an interface without looking it up;
    they start high because a new namespace may be born with devices of its own at low
    indexes (lo is 1; with ip_gre or ip6_tunnel loaded, gre0, gretap0, ip6tnl0... follow)."""
    if ifname.startswith("eth") and ifname[3:].isdigit() and int(ifname[3:]) < 1000:
        index = int(ifname[3:]) + 1000
    else:
        index = 2000 + zlib.crc32(ifname.encode()) % 1_000_000
    while index in taken:
        index += 1
    taken.add(index)
    return index


def port_name(node: str, ifname: str) -> str:
    """The bridge-side name of a node's veth, unique inside the lab namespace."""
    name = f"{node}.{ifname}"
    if len(name) <= 15:
        return name
    return "x." + hashlib.sha1(name.encode()).hexdigest()[:12]


def assign_addresses(topo: Topology, compiled: Compiled) -> None:
    """Fixed addresses first; the others from the bottom of each subnet in node order.
    p2p links get the first two usable addresses in endpoint order. Both families."""
    free = {}
    for key, field_name in (("subnet", "address"), ("subnet6", "address6")):
        for net in topo.networks.values():
            subnet = getattr(net, key)
            if subnet is not None:
                taken = {getattr(a, field_name) for n in topo.nodes.values() for a in n.attachments
                         if a.network == net.name and getattr(a, field_name) is not None}
                free[(key, net.name)] = _free_hosts(subnet, taken)
    for node in topo.nodes.values():
        used: set[int] = set()
        ifaces = compiled.ifaces.setdefault(node.name, [])
        for att in node.attachments:
            net = topo.networks[att.network]
            address, address6 = att.address, att.address6
            if address is None and net.subnet is not None:
                address = next(free[("subnet", att.network)])
            if address6 is None and net.subnet6 is not None:
                address6 = next(free[("subnet6", att.network)])
            ifaces.append(Iface(node.name, att.ifname, interface_index(att.ifname, used),
                                att.network, net.subnet, address, net.mtu, net.subnet6, address6))
    indexes = {name: {i.index for i in ifaces} for name, ifaces in compiled.ifaces.items()}
    for i, link in enumerate(topo.links):
        hosts = list(_first_hosts(link.subnet, 2)) if link.subnet else [None, None]
        hosts6 = list(_first_hosts(link.subnet6, 2)) if link.subnet6 else [None, None]
        for end, address, address6 in zip(link.endpoints, hosts, hosts6):
            compiled.ifaces[end.node].append(
                Iface(end.node, end.ifname, interface_index(end.ifname, indexes[end.node]),
                      f"link:{i}", link.subnet, address, link.mtu, link.subnet6, address6))


def _hosts(subnet):
    """Usable addresses: all of them for /31 and /127 point-to-point subnets."""
    return iter(subnet) if subnet.prefixlen >= subnet.max_prefixlen - 1 else subnet.hosts()


def _free_hosts(subnet, taken: set):
    for host in _hosts(subnet):
        if host not in taken:
            yield host


def _first_hosts(subnet, count: int):
    hosts = _hosts(subnet)
    for _ in range(count):
        yield next(hosts)


def resolve_gateways(topo: Topology, compiled: Compiled) -> None:
    for net in topo.networks.values():
        gateway = net.gateway
        if gateway is None and (net.subnet is not None or net.subnet6 is not None):
            routers = [n.name for n in topo.nodes.values() if n.is_router
                       and any(a.network == net.name for a in n.attachments)]
            gateway = routers[0] if len(routers) == 1 else None
        compiled.gateways[net.name] = gateway


def compute_routes(topo: Topology, compiled: Compiled) -> None:
    """Static routes so every lab subnet is reachable from every node (shortest paths
    through routers; ties broken by name so the plan is stable), for IPv4 and IPv6."""
    v4 = _family_routes(topo, compiled)
    view = Compiled(topo, {n: [i.as_v6() for i in ifs] for n, ifs in compiled.ifaces.items()},
                    compiled.gateways, overlays=compiled.overlays)
    v6 = _family_routes(topo, view)
    for routes, family in ((v4, compiled), (v6, view)):
        compiled.warnings += _break_default_loops(topo, family, routes)
        compiled.warnings += _unreachable(topo, family, routes)
    for node in topo.nodes:
        routes6 = [("::/0" if dst == "default" else dst, via, dev) for dst, via, dev in v6[node]]
        compiled.routes[node] = v4[node] + routes6


def _owners(compiled: Compiled) -> dict:
    return {i.address: n for n, ifs in compiled.ifaces.items() for i in ifs if i.address}


def _break_default_loops(topo: Topology, compiled: Compiled, routes: dict) -> list[str]:
    """Routers whose default routes point at each other in a ring (explicit gateways can
    do that) would bounce unknown traffic until its TTL ran out: drop those defaults."""
    owner = _owners(compiled)
    nxt = {}
    for node, rs in routes.items():
        for dst, via, _ in rs:
            if dst == "default" and topo.nodes[node].is_router:
                nxt[node] = owner.get(ipaddress.ip_address(via))
    ring: set[str] = set()
    for start in nxt:
        seen, cur = [], start
        while cur in nxt and cur not in seen:
            seen.append(cur)
            cur = nxt[cur]
        if cur in seen:
            ring |= set(seen[seen.index(cur):])
    for node in ring:
        routes[node] = [r for r in routes[node] if r[0] != "default"]
    if not ring:
        return []
    return [f"routers {', '.join(sorted(ring))} name each other as gateway: their default routes "
            f"would loop, so they get none"]


def _unreachable(topo: Topology, compiled: Compiled, routes: dict, limit: int = 200_000) -> list[str]:
    """Walk every node's routes towards every lab subnet; name the subnets some nodes
    cannot reach (the promise is that every subnet is reachable from every node)."""
    segments = {}
    for ifs in compiled.ifaces.values():
        for i in ifs:
            if i.subnet is not None and i.address is not None:
                segments.setdefault(i.subnet, set()).add(i.node)
    if not segments or compiled.overlays or len(topo.nodes) * len(segments) > limit:
        return []             # overlays keep underlay and overlay apart on purpose
    owner = _owners(compiled)
    tables = {n: ({ipaddress.ip_network(d): via for d, via, _ in rs if d != "default"},
                  next((via for d, via, _ in rs if d == "default"), None)) for n, rs in routes.items()}
    missing: dict = {}
    for start in topo.nodes:
        if not any(i.address for i in compiled.ifaces[start]):
            continue
        for subnet, members in segments.items():
            node, hops = start, 0
            while node is not None and node not in members and hops <= len(topo.nodes):
                if hops and not topo.nodes[node].is_router:
                    node = None
                    break
                specific, default = tables[node]
                via = specific.get(subnet, default)
                node = owner.get(ipaddress.ip_address(via)) if via else None
                hops += 1
            if node is None or node not in members:
                missing.setdefault(subnet, []).append(start)
    warnings = []
    for subnet, nodes in missing.items():
        shown = ", ".join(nodes[:5]) + (f" (+{len(nodes) - 5} more)" if len(nodes) > 5 else "")
        warnings.append(f"{subnet} is not reachable from {shown}")
    return warnings


def _family_routes(topo: Topology, compiled: Compiled) -> dict[str, list[tuple[str, str, str]]]:
    """Routes of one family; `compiled` is a view whose ifaces carry that family."""
    result: dict[str, list[tuple[str, str, str]]] = {}
    segments: dict[str, list[Iface]] = {}
    for ifaces in compiled.ifaces.values():
        for iface in ifaces:
            if iface.subnet is not None and iface.address is not None:
                segments.setdefault(iface.segment, []).append(iface)
    subnet_of = {seg: members[0].subnet for seg, members in segments.items()}
    routers = sorted(n.name for n in topo.nodes.values() if n.is_router)
    router_set = set(routers)
    attached = {node: {i.segment for i in ifaces if i.segment in segments}
                for node, ifaces in compiled.ifaces.items()}

    # neighbours: router -> [(neighbour router, its address, my dev)]
    neighbours: dict[str, list[tuple[str, str, str]]] = {r: [] for r in routers}
    for seg, members in segments.items():
        for mine in members:
            if mine.node not in router_set:
                continue
            for other in members:
                if other.node != mine.node and other.node in router_set:
                    neighbours[mine.node].append((other.node, str(other.address), mine.ifname))
    for r in routers:
        neighbours[r].sort()

    # per router: distance (in router hops) and first hop to every router
    dist: dict[str, dict[str, int]] = {}
    first_hop: dict[str, dict[str, tuple[str, str]]] = {}
    for r in routers:
        d, hop = {r: 0}, {}
        queue = deque([r])
        while queue:
            cur = queue.popleft()
            for nb, via, dev in neighbours[cur]:
                if nb not in d:
                    d[nb] = d[cur] + 1
                    hop[nb] = (via, dev) if cur == r else hop[cur]
                    queue.append(nb)
        dist[r], first_hop[r] = d, hop

    def router_cost(r: str, seg: str) -> tuple[int, str] | None:
        """(hops, attached router) for the best way from router r to segment seg."""
        best = None
        for x in routers:
            if seg in attached[x] and x in dist[r]:
                cand = (dist[r][x], x)
                best = cand if best is None or cand < best else best
        return best

    cost_cache: dict[tuple[str, str], tuple[int, str] | None] = {}

    def cached_cost(r: str, seg: str):
        if (r, seg) not in cost_cache:
            cost_cache[(r, seg)] = router_cost(r, seg)
        return cost_cache[(r, seg)]

    for node in topo.nodes.values():
        routes: list[tuple[str, str, str]] = []
        mine = {i.segment: i for i in compiled.ifaces[node.name] if i.segment in segments}
        default = None
        if node.is_router:
            for seg in sorted(segments):
                if seg in mine:
                    continue
                best = cached_cost(node.name, seg)
                if best is None:
                    continue
                via, dev = first_hop[node.name][best[1]]
                routes.append((str(subnet_of[seg]), via, dev))
            for seg, iface in mine.items():
                gw = compiled.gateways.get(seg)
                if gw and gw != node.name and default is None:
                    default = (compiled.address_of(gw, seg), iface.ifname)
        else:
            for iface in compiled.ifaces[node.name]:
                gw = compiled.gateways.get(iface.segment)
                if gw and gw != node.name and iface.segment in mine:
                    default = (compiled.address_of(gw, iface.segment), iface.ifname)
                    break
            if routers:
                routes = _host_routes(node, mine, segments, subnet_of, default, compiled, cached_cost)
        if default is not None and default[0] is not None:
            routes.insert(0, ("default", str(default[0]), default[1]))
        result[node.name] = routes
    return result


def _host_routes(node, mine, segments, subnet_of, default, compiled, cost):
    routes = []
    default_via = str(default[0]) if default else None
    for seg in sorted(segments):
        if seg in mine:
            continue
        options = []
        for my_seg, iface in mine.items():
            for other in segments[my_seg]:
                if other.node == node.name or not compiled.topo.nodes[other.node].is_router:
                    continue
                c = 0 if seg in {i.segment for i in compiled.ifaces[other.node]} else None
                if c is None:
                    best = cost(other.node, seg)
                    c = None if best is None else best[0] + 1
                if c is not None:
                    via = str(other.address)
                    options.append((c, via != default_via, other.node, via, iface.ifname))
        if not options:
            continue
        c, not_default, _, via, dev = min(options)
        if via != default_via:
            routes.append((str(subnet_of[seg]), via, dev))
    return routes


def compile_topology(topo: Topology) -> tuple[Plan, Compiled]:
    compiled = Compiled(topo)
    assign_addresses(topo, compiled)
    for hook in hooks.registry().hooks("interfaces"):  # features add interfaces routing must see (gre tunnels)
        hook(topo, compiled)
    resolve_gateways(topo, compiled)
    compute_routes(topo, compiled)
    plan = Plan(lab=topo.name, warnings=list(compiled.warnings))
    _emit_core_steps(topo, compiled, plan)
    plan.meta = _meta(topo, compiled)       # before the hooks: features read and add keys
    for hook in hooks.registry().hooks("compile"):
        hook(topo, compiled, plan)
    return plan, compiled


def _emit_core_steps(topo: Topology, compiled: Compiled, plan: Plan) -> None:
    lab_ns = topo.switch_netns
    if topo.networks:
        plan.add(Namespace(ns=lab_ns, node=None, role="lab"))
        for net in topo.networks.values():
            plan.add(Bridge(ns=lab_ns, name=net.name, mtu=net.mtu))
    late_routes = []
    for node in topo.nodes.values():
        ns = topo.netns(node.name)
        plan.add(Namespace(ns=ns, node=node.name, role=node.kind, image=node.image,
                           container=_container_spec(node) if node.is_container else None))
        bridged = set()
        for iface in compiled.ifaces[node.name]:
            if iface.segment.startswith(("link:", "tunnel:")):  # tunnel:<i> is made by netlab.tunnels
                continue
            bridged.add(iface.ifname)
            plan.add(Veth(ns=ns, ifname=iface.ifname, index=iface.index, peer_ns=lab_ns,
                          peer=port_name(node.name, iface.ifname), master=iface.segment,
                          mtu=iface.mtu, alias=f"{node.name}:{iface.ifname}"))
            for cidr in (iface.cidr, iface.cidr6):
                if cidr:
                    plan.add(Address(ns=ns, ifname=iface.ifname, cidr=cidr))
        for dst, via, dev in compiled.routes[node.name]:
            route = Route(ns=ns, dst=dst, via=via, dev=dev)
            (plan.add(route) if dev in bridged else late_routes.append(route))
    for i, link in enumerate(topo.links):
        a, b = link.endpoints
        ia = _iface(compiled, a.node, a.ifname)
        ib = _iface(compiled, b.node, b.ifname)
        plan.add(Veth(ns=topo.netns(a.node), ifname=a.ifname, index=ia.index,
                      peer_ns=topo.netns(b.node), peer=b.ifname, mtu=link.mtu))
        for end, iface in ((a, ia), (b, ib)):
            for cidr in (iface.cidr, iface.cidr6):
                if cidr:
                    plan.add(Address(ns=topo.netns(end.node), ifname=end.ifname, cidr=cidr))
    for route in late_routes:
        plan.add(route)


def _iface(compiled: Compiled, node: str, ifname: str) -> Iface:
    return next(i for i in compiled.ifaces[node] if i.ifname == ifname)


def _container_spec(node: Node) -> dict:
    return {"cmd": node.cmd, "env": node.env, "binds": node.binds, "exec": node.exec,
            "privileged": node.privileged, "cap_add": node.cap_add}


def _meta(topo: Topology, compiled: Compiled) -> dict:
    return {
        "domain": topo.domain,
        "source": topo.source,
        "networks": {n.name: {"subnet": str(n.subnet) if n.subnet else None,
                              "subnet6": str(n.subnet6) if n.subnet6 else None,
                              "gateway": compiled.gateways.get(n.name), "mtu": n.mtu}
                     for n in topo.networks.values()},
        "nodes": {n.name: {"kind": n.kind, "ns": topo.netns(n.name), "image": n.image,
                           "interfaces": [{"ifname": i.ifname, "segment": i.segment,
                                           "address": i.cidr, "address6": i.cidr6}
                                          for i in compiled.ifaces[n.name]]}
                  for n in topo.nodes.values()},
    }
