"""DNS and service discovery for a lab: compiles the lab's DNS server, zone and per-node
resolver settings into steps, and keeps the server running (feature hooks validate,
compile; after_up, teardown and status are in lifecycle.py); the `dns:` section itself is
parsed in spec.py.

Design (README "DNS and service discovery"): one dnsmasq per lab runs in the lab
namespace `<lab>--lab`, which holds every network's bridge. It takes one address of
each family on each bridge (IPv4, IPv6, both on a dual-stack network), the highest host
address no node uses, so every segment has its DNS server on-link; resolv.conf lists the
IPv4 server before the IPv6 one. Nodes on point-to-point links only ask one through their
routers, and the lab namespace gets a route back to their link subnet (it never forwards:
ip_forward stays 0, so segments stay apart). Names: `<node>.<domain>` (answered with the
address on the asker's segment when it asks over IPv4), `<node>.<network>.<domain>` per
interface (`<node>.<ifname>.<domain>` on links), A and AAAA (dual-stack), PTR for every
lab address (-> `<node>.<domain>`), plus the records of `dns:`:

    dns:
      ttl: 60                                   # seconds, for every lab record
      records:
        - {name: master, cname: n1}
        - {name: vip, a: [10.0.0.10, 10.0.0.11]}
        - {name: vip6, aaaa: "2001:db8::10"}
        - {name: _rdzv._tcp.train, srv: {target: master, port: 29500}}   # or "master:29500"
        - {name: train, txt: "world_size=4"}
    # dns: false  turns the lab's DNS off

The step types and the process handling live in server.py, node resolvers in resolv.py.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from .resolv import DnsClient
from .server import DnsListen, DnsServer, DnsZone
from .spec import DnsSpec, iface_label, parse

MAX_NAMESERVERS = 3             # resolv.conf: all the C library reads


def validate(topo, problems) -> None:
    spec = parse(topo, problems)
    if not spec.enabled:
        return
    for net in topo.networks.values():
        members = sum(1 for n in topo.nodes.values() for a in n.attachments if a.network == net.name)
        for key, subnet in (("subnet", net.subnet), ("subnet6", _v6(net.subnet6))):
            if subnet is not None and members >= _usable(subnet):
                problems.add(f"networks.{net.name}.{key}",
                             f"{subnet} is full ({members} nodes): the lab's DNS server needs one "
                             f"free address on it; use a larger {key}, or `dns: false`")


def _usable(subnet) -> int:
    """How many addresses of a subnet a node (or the server) may take: not the IPv4
    network and broadcast addresses, not IPv6's subnet-router anycast `::` (all of a
    /31 or /127, RFC 3021 and 6164)."""
    return subnet.num_addresses - len(_excluded(subnet))


def _excluded(subnet) -> tuple[int, ...]:
    """The addresses of a subnet no host takes, as integers."""
    if subnet.prefixlen >= subnet.max_prefixlen - 1:
        return ()
    if subnet.version == 6:
        return (int(subnet.network_address),)
    return int(subnet.network_address), int(subnet.broadcast_address)


# --- compile ----------------------------------------------------------------------

def server_addresses(topo, compiled, version: int = 4) -> dict[str, Any]:
    """Per network with a subnet of that family (IPv4, or IPv6 with version=6, dual-stack
    networks included): the highest address of it a host may have that no node uses.
    Nodes get theirs from the bottom first, so the two never collide."""
    used: dict[str, set] = {}
    for ifaces in compiled.ifaces.values():
        for iface in ifaces:
            address = iface.address if version == 4 else iface.address6
            if address is not None:
                used.setdefault(iface.segment, set()).add(int(address))
    servers = {}
    for net in topo.networks.values():
        subnet = net.subnet if version == 4 else _v6(net.subnet6)
        address = None if subnet is None else _highest_free(subnet, used.get(net.name, set()))
        if address is not None:
            servers[net.name] = ipaddress.ip_interface(f"{address}/{subnet.prefixlen}")
    return servers


def _highest_free(subnet, used: set[int]):
    """The highest address of a subnet a host may have and no node uses (looking at
    the top 65536 only), or None."""
    top, bottom = int(subnet.broadcast_address), int(subnet.network_address)
    skip = set(_excluded(subnet)) | used
    for candidate in range(top, max(bottom, top - 65536) - 1, -1):
        if candidate not in skip:
            return type(subnet.network_address)(candidate)
    return None


def _v6(subnet) -> ipaddress.IPv6Network | None:
    return ipaddress.IPv6Network(str(subnet)) if subnet else None


def bridge_mac(lab_ns: str, network: str) -> str:
    """A stable, locally administered MAC for a bridge that carries the server's address."""
    import hashlib                      # here: `netlab down` imports this module
    digest = hashlib.sha1(f"{lab_ns}/{network}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def _reaches(compiled, node: str, address) -> bool:
    """Whether a node has a route (of the address's family) towards an address."""
    for dst, _via, _dev in compiled.routes.get(node, []):
        net = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst)
        if net.version == address.version and address in net:
            return True
    return False


def _via_link(topo, compiled, servers, link_seg, subnet):
    """(network, router address on it) through which the lab namespace best reaches a
    link subnet (of either family): a router on the link first, then one with a route
    to it; by name."""
    best = None
    for name, node in topo.nodes.items():
        if not node.is_router:
            continue
        ifaces = compiled.ifaces[name]
        direct = any(i.segment == link_seg for i in ifaces)
        if not direct and not any(dst == str(subnet) for dst, _, _ in compiled.routes.get(name, [])):
            continue
        for i in ifaces:
            address = i.address if subnet.version == 4 else i.address6
            if i.segment in servers and address is not None:
                cand = (0 if direct else 1, i.segment, name, str(address))
                best = cand if best is None or cand < best else best
    return (best[1], best[3]) if best else None


def resolvers(topo, compiled, servers, servers6=None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(nameservers per node, lab-namespace routes per network as 'dst via').

    A node asks the servers on its own networks: one per network first (the IPv4 one,
    the IPv6 one on an IPv6-only network), then the IPv6 ones of its dual-stack networks,
    at most three (all the C library reads). A node on links only asks through its
    routers, IPv4 first, and the lab namespace gets a route back to its link subnet."""
    tables = {4: servers, 6: servers6 or {}}
    clients: dict[str, list[str]] = {}
    routes: dict[str, list[str]] = {}
    for name in topo.nodes:
        found = _on_link(compiled.ifaces[name], tables)
        if not found:
            for version in (4, 6):
                hit = _through_routers(topo, compiled, name, tables[version], version)
                if hit is None:
                    continue
                network, route, server = hit
                if route not in routes.setdefault(network, []):
                    routes[network].append(route)
                found.append(server)
        clients[name] = found[:MAX_NAMESERVERS]
    return clients, routes


def _on_link(ifaces, tables) -> list[str]:
    """The server addresses on a node's own networks, in the order resolvers() gives."""
    segments = [i.segment for i in ifaces]
    first = [tables[4].get(s) or tables[6].get(s) for s in segments]
    then = [tables[6].get(s) for s in segments if s in tables[4]]
    found: list[str] = []
    for server in first + then:
        if server is not None and str(server.ip) not in found:
            found.append(str(server.ip))
    return found


def _through_routers(topo, compiled, node: str, servers, version: int) -> tuple[str, str, str] | None:
    """(network, lab-namespace route 'dst via', server address) by which a node on
    links only reaches a server of `servers` over IPv4 (or IPv6 with version=6), or None."""
    for iface in compiled.ifaces[node]:
        subnet, address = (iface.subnet, iface.address) if version == 4 else (iface.subnet6, iface.address6)
        if not iface.segment.startswith("link:") or subnet is None or address is None:
            continue
        via = _via_link(topo, compiled, servers, iface.segment, subnet)
        if via is not None and _reaches(compiled, node, servers[via[0]].ip):
            return via[0], f"{subnet} {via[1]}", str(servers[via[0]].ip)
    return None


def zone_lines(topo, compiled, spec: DnsSpec) -> list[str]:
    """hosts-file lines: per address '<addr> <node>.<domain> <node>.<label>.<domain>'
    (the first name answers PTR), then the extra A records."""
    lines = []
    for name in topo.nodes:
        for iface in compiled.ifaces[name]:
            label = iface_label(iface.segment, iface.ifname)
            for address in (iface.address, getattr(iface, "address6", None)):
                if address is not None:
                    lines.append(f"{address} {name}.{topo.domain} {name}.{label}.{topo.domain}")
    for r in spec.records:
        if r.kind in ("a", "aaaa"):
            lines += [f"{address} {r.name}" for address in r.values]
    return lines


def server_options(topo, spec: DnsSpec) -> list[str]:
    """Records and answers: the lab zone and everything else are local (NXDOMAIN for
    unknown names, in-addr.arpa included); nothing is ever forwarded."""
    options = [f"local=/{topo.domain}/", "local=/#/", f"local-ttl={spec.ttl}"]
    for r in spec.records:
        if r.kind == "cname":
            options.append(f"cname={r.name},{r.values[0]}")
        elif r.kind == "srv":
            options.append(f"srv-host={r.name},{','.join(r.values)}")
        elif r.kind == "txt":
            options.append(f"txt-record={r.name}," + ",".join(f'"{t}"' for t in r.values))
    return options


def compile(topo, compiled, plan) -> None:
    spec = parse(topo)
    meta: dict[str, Any] = {"enabled": spec.enabled, "domain": topo.domain, "ttl": spec.ttl,
                            "servers": {}, "clients": {}}
    plan.meta["dns"] = meta
    if not spec.enabled:
        return
    servers = server_addresses(topo, compiled)
    servers6 = server_addresses(topo, compiled, version=6)
    if not servers and not servers6:
        if topo.sections.get("dns") is not None:
            plan.warnings.append("dns: no network has a subnet, so the lab has no DNS server")
        meta["enabled"] = False
        return
    clients, routes = resolvers(topo, compiled, servers, servers6)
    _add_server_steps(topo, compiled, plan, spec, listen_addresses(servers, servers6), routes)
    _add_client_steps(topo, compiled, plan, clients)
    meta["servers"] = {net: str(a.ip) for net, a in servers.items()}        # IPv4 (nft reads it)
    meta["servers6"] = {net: str(a.ip) for net, a in servers6.items()}      # IPv6, dual-stack too
    meta["clients"] = clients                                               # IPv4 first


def listen_addresses(servers, servers6) -> dict[str, tuple]:
    """network -> the server's addresses on it (IPv4 first), networks with an IPv4
    subnet first: the order of the listen steps and of the server's addresses."""
    return {net: tuple(a for a in (servers.get(net), servers6.get(net)) if a is not None)
            for net in {**servers, **servers6}}


def _add_server_steps(topo, compiled, plan, spec: DnsSpec, listen: dict[str, tuple], routes) -> None:
    lab_ns = topo.switch_netns
    for net, addresses in listen.items():
        plan.add(DnsListen(lab_ns=lab_ns, network=net, cidr=str(addresses[0]),
                           cidr6=str(addresses[1]) if len(addresses) > 1 else None,
                           routes=tuple(routes.get(net, [])), mac=bridge_mac(lab_ns, net)))
    plan.add(DnsZone(lab=topo.name, domain=topo.domain, lines=tuple(zone_lines(topo, compiled, spec))))
    plan.add(DnsServer(lab=topo.name, lab_ns=lab_ns, domain=topo.domain,
                       listen=tuple(f"{net}={a.ip}" for net, addresses in listen.items() for a in addresses),
                       options=tuple(server_options(topo, spec))))


def _add_client_steps(topo, compiled, plan, clients: dict[str, list[str]]) -> None:
    for name, node in topo.nodes.items():
        own = [f"{a} {name}.{topo.domain} {name}" for i in compiled.ifaces[name]
               for a in (i.address, i.address6) if a and node.is_container]
        plan.add(DnsClient(netns=topo.netns(name), lab=topo.name, node=name, domain=topo.domain,
                           nameservers=tuple(clients[name]), hosts=tuple(own),
                           container=node.is_container))
    lost = [name for name in topo.nodes if not clients[name]]
    if lost:
        plan.warnings.append(f"dns: {'node' if len(lost) == 1 else 'nodes'} {', '.join(lost)} "
                             f"{'reaches' if len(lost) == 1 else 'reach'} no DNS server "
                             f"(no network with a subnet, and no route to one)")
