"""What checks need to know about a lab, read from the plan's meta: node namespaces,
interfaces and addresses, gateways, DNS servers; and how a node name becomes an address.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeIface:
    node: str
    ifname: str
    segment: str
    address: str | None                 # plain address, no prefix
    network: ipaddress.IPv4Network | None
    address6: str | None = None


@dataclass
class LabView:
    lab: str
    domain: str
    ns: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    ifaces: dict[str, list[NodeIface]] = field(default_factory=dict)
    gateways: dict[str, str | None] = field(default_factory=dict)
    dns: dict[str, Any] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)     # address -> node
    remote: set[str] = field(default_factory=set)          # nodes on another host (labs across hosts)

    @classmethod
    def from_meta(cls, lab: str, meta: dict[str, Any]) -> LabView:
        view = cls(lab=lab, domain=meta.get("domain") or f"{lab}.lab",
                   dns=meta.get("dns") or {})
        for name, net in (meta.get("networks") or {}).items():
            view.gateways[name] = net.get("gateway")
        for node, info in (meta.get("nodes") or {}).items():
            view.ns[node] = info["ns"]
            view.kinds[node] = info.get("kind", "host")
            ifaces = []
            for i in info.get("interfaces", []):
                cidr = i.get("address")
                net = ipaddress.ip_interface(cidr).network if cidr else None
                addr = cidr.split("/")[0] if cidr else None
                addr6 = (i.get("address6") or "").split("/")[0] or None
                ifaces.append(NodeIface(node, i["ifname"], i["segment"], addr, net, addr6))
                for a in (addr, addr6):
                    if a:
                        view.owner.setdefault(a, node)
            view.ifaces[node] = ifaces
        here = (meta.get("multihost") or {}).get("host")
        if here:
            view.remote = {n for n, info in (meta.get("nodes") or {}).items() if info.get("host") != here}
        return view

    def addresses(self, node: str) -> list[str]:
        return [i.address for i in self.ifaces.get(node, []) if i.address]

    def segments(self, node: str) -> set[str]:
        return {i.segment for i in self.ifaces.get(node, [])}

    def address(self, src: str | None, dst: str, v6: bool = False) -> str | None:
        """The address a probe from `src` should use for `dst`: an IP as given, else the
        target's address (IPv6 with v6) on a segment they share, else its first one."""
        ifaces = self.ifaces.get(dst)
        if ifaces is None:
            return dst if is_ip(dst) or is_ip6(dst) else None
        first = None
        mine = self.ifaces.get(src, ()) if src else ()
        for i in ifaces:
            a = i.address6 if v6 else i.address
            if a:
                first = first or a
                if any(m.segment == i.segment for m in mine):
                    return a
        return first

    def target(self, src: str | None, dst: str | None, ip: int | None = None) -> tuple[str | None, bool]:
        """(address, is IPv6) for a probe: `ip: 6` in the check, an IPv6 literal, or a
        source or target node with only IPv6 addresses means IPv6."""
        v6 = ip == 6 or (ip is None and (self.wants_v6(dst) or self.wants_v6(src)))
        return (self.address(src, dst, v6) if dst else None), v6

    def wants_v6(self, dst: str | None) -> bool:
        """A target reached over IPv6: an IPv6 literal, or a node with no IPv4 address."""
        if not dst:
            return False
        if dst in self.ifaces:       # (also asked of sources: a v6-only node speaks v6)
            return not self.addresses(dst) and any(i.address6 for i in self.ifaces[dst])
        return is_ip6(dst)

    def name_of(self, address: str) -> str:
        """A node name for an address seen on the wire (the address if unknown)."""
        return self.owner.get(address, address)

    def gateway_of(self, node: str) -> tuple[str, str] | None:
        """(gateway node, its address) for a host's first segment that has a gateway."""
        for i in self.ifaces.get(node, []):
            gw = self.gateways.get(i.segment)
            if gw and gw != node:
                for g in self.ifaces.get(gw, []):
                    if g.segment == i.segment and g.address:
                        return gw, g.address
        return None

    def dns_server(self, node: str, ip: int | None = None) -> str | None:
        """The lab DNS server a node should ask, from the DNS feature's meta (`clients`:
        node -> its resolvers, IPv4 first; `servers` and `servers6`: network -> address),
        if the lab has DNS; with ip=4 or ip=6 one of that family (None if it has none)."""
        if not isinstance(self.dns, dict) or self.dns.get("enabled") is False:
            return None
        clients = self.dns.get("clients")
        tables = [self.dns.get("servers"), self.dns.get("servers6")]
        found = _addresses(clients.get(node) if isinstance(clients, dict) else None)
        for table in tables:            # the servers on the node's networks, then any
            if isinstance(table, dict):
                found += [a for i in self.ifaces.get(node, []) for a in _addresses(table.get(i.segment))]
        for table in tables:
            found += _addresses(list(table.values()) if isinstance(table, dict) else table)
        return next((a for a in found if ip is None or (":" in a) == (ip == 6)), None)


def _addresses(value: Any) -> list[str]:
    """Plain addresses from a meta value: an address (a CIDR too), a list of them, or
    a mapping with an `address` (else its values)."""
    if not value:
        return []
    if isinstance(value, list):
        return [a for item in value for a in _addresses(item)]
    if isinstance(value, dict):
        return _addresses(value.get("address") or list(value.values()))
    return [str(value).split("/")[0]]


def is_ip6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
        return True
    except ValueError:
        return False


def is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
