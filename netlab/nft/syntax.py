"""Typed NAT/firewall specs and the selector, interface and port syntax they share.

Pure: turns the raw YAML values of a node's `nat:` and `firewall:` into typed values,
reporting every unknown name with its location. `spec` builds the sections from these;
`render` reads them.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import Problems
from ..core.model import Node, Topology

CHAINS = ("input", "forward")
PROTOCOLS = ("tcp", "udp", "sctp", "icmp", "gre", "esp", "ah")
PORT_PROTOCOLS = ("tcp", "udp", "sctp")

# ---------------------------------------------------------------- typed specs

@dataclass(frozen=True)
class Ref:
    """An address selector as written: any, a CIDR or address, a node, a network."""
    kind: str                   # cidr | node | net
    value: str


@dataclass(frozen=True)
class Service:
    """Protocols and destination ports matched together; no ports = any port."""
    protos: tuple[str, ...]
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    where: str                  # e.g. firewall.allow[0]: the rule's comment in nft
    action: str                 # accept | drop | reject
    src: tuple[Ref, ...] = ()
    dst: tuple[Ref, ...] = ()
    services: tuple[Service, ...] = ()
    icmp: tuple[str, ...] = ()
    iif: tuple[str, ...] = ()
    oif: tuple[str, ...] = ()
    chains: tuple[str, ...] = CHAINS
    counter: bool = True
    log: bool = False
    dnat: bool = False          # only connections a port forward redirected


@dataclass(frozen=True)
class Snat:
    where: str
    out: str | None             # ifname
    src: tuple[Ref, ...]
    to: str | None              # None: masquerade
    versions: tuple[int, ...] = (4,)    # IP versions translated (6: NAT66, asked for)


@dataclass(frozen=True)
class Dnat:
    where: str
    service: Service
    target: Ref                 # node or cidr (a single address)
    port: int | None
    iif: str | None
    src: tuple[Ref, ...]
    versions: tuple[int, ...] = (4,)    # IP versions forwarded (6: NAT66, asked for)


@dataclass
class NatSpec:
    snat: list[Snat]
    dnat: list[Dnat]
    hairpin: bool = True
    ipv6: bool = False          # NAT66: masquerade, snat and forward apply to IPv6 too


@dataclass
class FirewallSpec:
    policies: dict[str, str]    # chain -> accept | drop | reject
    established: bool = True
    dns: bool = True
    counters: bool = True
    log: bool = False
    rules: list[Rule] = field(default_factory=list)             # deny/reject first, then allow
    raw: dict[str, list[str]] = field(default_factory=dict)     # chain -> nft rule lines


@dataclass
class NodeSpec:
    node: str
    router: bool
    nat: NatSpec | None = None
    firewall: FirewallSpec | None = None


# ---------------------------------------------------------------- parsing helpers

def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number",
            bool: "true/false", float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def unknown_keys(where: str, data: dict, allowed: set[str], problems: Problems) -> None:
    for key in data:
        if key not in allowed:
            problems.add(f"{where}.{key}", f"unknown field (expected one of: {', '.join(sorted(allowed))})")


def flag(where: str, value: Any, default: bool, problems: Problems) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.add(where, f"must be true or false, not {value!r}")
        return default
    return value


def _versions(numbered) -> set[int]:
    """The IP versions a network or link gives addresses of."""
    return ({4} if numbered.subnet is not None else set()) | (
        {6} if getattr(numbered, "subnet6", None) is not None else set())


def ip_version(text: str) -> int | None:
    """4 or 6 for an IP address written as text, None if it is not one (nor scoped: fe80::1%eth0)."""
    try:
        return ipaddress.ip_address(text).version if "%" not in text else None
    except ValueError:
        return None


class Names:
    """What a node's rules may name: nodes, networks, and the node's own interfaces."""

    def __init__(self, topo: Topology, node: Node):
        self.topo = topo
        self.node = node
        self.ifnames = {a.ifname: a.ifname for a in node.attachments}
        self.ifnames.update({e.ifname: e.ifname for link in topo.links
                             for e in link.endpoints if e.node == node.name})
        self.by_network = {a.network: a.ifname for a in node.attachments}
        self.versions: dict[str, set[int]] = {}
        for a in node.attachments:
            self.versions[a.ifname] = _versions(topo.networks[a.network])
        for link in topo.links:
            for e in link.endpoints:
                if e.node == node.name:
                    self.versions[e.ifname] = _versions(link)

    def iface_has(self, ifname: str, version: int) -> bool:
        """Whether one of this node's interfaces gets an address of this IP version."""
        return version in self.versions.get(ifname, set())

    def has_address(self, node: str, version: int | None = None) -> bool:
        """Whether a node gets an address (of this IP version; None: either)."""
        def numbered(obj) -> bool:
            found = _versions(obj)
            return bool(found) if version is None else version in found
        n = self.topo.nodes[node]
        if any(numbered(self.topo.networks[a.network]) for a in n.attachments):
            return True
        return any(numbered(link) and any(e.node == node for e in link.endpoints) for link in self.topo.links)

    def ref(self, where: str, value: Any, problems: Problems, prefer: str = "") -> Ref | None:
        if not isinstance(value, str):
            problems.add(where, f"must be a node, network, address or CIDR, not {type_name(value)}")
            return None
        text = value.strip()
        kind, _, name = text.partition(":") if text.startswith(("node:", "net:")) else ("", "", text)
        if not kind:
            try:
                net = ipaddress.ip_network(text, strict=False) if "%" not in text else None
            except ValueError:
                net = None
            if net is not None:
                if "/" in text and str(net) != text:
                    problems.add(where, f"'{text}' has host bits set; did you mean {net}?")
                    return None
                return Ref("cidr", str(net))
            is_node, is_net = name in self.topo.nodes, name in self.topo.networks
            if is_node and is_net and prefer:
                is_net = prefer == "net"
                is_node = not is_net
            if is_node and is_net:
                problems.add(where, f"'{name}' is both a node and a network; write node:{name} or net:{name}")
                return None
            kind = "node" if is_node else "net" if is_net else ""
        if kind == "node":
            if name not in self.topo.nodes:
                problems.add(where, f"unknown node '{name}'")
                return None
            if not self.has_address(name):
                problems.add(where, f"node '{name}' has no address")
                return None
            return Ref("node", name)
        if kind == "net":
            if name not in self.topo.networks:
                problems.add(where, f"unknown network '{name}'")
                return None
            network = self.topo.networks[name]
            if network.subnet is None and getattr(network, "subnet6", None) is None:
                problems.add(where, f"network '{name}' has no subnet")
                return None
            return Ref("net", name)
        problems.add(where, f"unknown node or network '{name}' (or write an address or CIDR)")
        return None

    def refs(self, where: str, value: Any, problems: Problems) -> tuple[Ref, ...]:
        """A selector or a list of them; None or 'any' means anything."""
        if value is None or value == "any":
            return ()
        items = as_list(value)
        if not items:
            problems.add(where, "an empty list matches nothing; leave the field out to match anything")
            return ()
        found = []
        for i, item in enumerate(items):
            ref = self.ref(f"{where}[{i}]" if isinstance(value, list) else where, item, problems)
            if ref is not None and ref not in found:
                found.append(ref)
        return tuple(found)

    def iface(self, where: str, value: Any, problems: Problems) -> str | None:
        """A network this node is on, or one of its interface names -> the interface."""
        if not isinstance(value, str):
            problems.add(where, f"must be a network or interface of node {self.node.name}, not {type_name(value)}")
            return None
        if value in self.by_network:
            return self.by_network[value]
        if value in self.ifnames:
            return value
        known = sorted(set(self.by_network) | set(self.ifnames))
        problems.add(where, f"node {self.node.name} has no network or interface '{value}' "
                            f"(it has: {', '.join(known) or 'none'})")
        return None

    def ifaces(self, where: str, value: Any, problems: Problems) -> tuple[str, ...]:
        if value is None:
            return ()
        found = []
        for i, item in enumerate(as_list(value)):
            name = self.iface(f"{where}[{i}]" if isinstance(value, list) else where, item, problems)
            if name is not None and name not in found:
                found.append(name)
        return tuple(found)


def _port_range(where: str, text: str, problems: Problems) -> str | None:
    low, sep, high = text.partition("-")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        problems.add(where, f"'{text}' is not a port, range (1000-2000) or list (80,443)")
        return None
    if not (1 <= lo <= 65535 and 1 <= hi <= 65535) or hi < lo:
        problems.add(where, f"'{text}': ports are 1 to 65535, ranges low-high")
        return None
    return f"{lo}-{hi}" if sep and hi != lo else str(lo)


def parse_services(where: str, port: Any, proto: Any, problems: Problems) -> tuple[Service, ...]:
    """`port: 80/tcp`, `port: [53, 8000-8100/tcp]`, `port: "80,443/tcp"`, `proto: icmp`.
    A port without a protocol means tcp and udp (or the rule's `proto`)."""
    if proto is not None and (not isinstance(proto, str) or proto not in PROTOCOLS):
        problems.add(f"{where}.proto", f"unknown protocol {proto!r} (expected one of: {', '.join(PROTOCOLS)})")
        return ()
    if port is None:
        return (Service((proto,)),) if proto else ()
    if proto is not None and proto not in PORT_PROTOCOLS:
        problems.add(f"{where}.port", f"ports need tcp, udp or sctp, not {proto}")
        return ()
    groups: dict[tuple[str, ...], list[str]] = {}
    items = port if isinstance(port, list) else [port]
    if not items:
        problems.add(f"{where}.port", "an empty list matches nothing")
    for i, item in enumerate(items):
        at = f"{where}.port[{i}]" if isinstance(port, list) else f"{where}.port"
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            problems.add(at, f"must be a port like 80, 80/tcp or 1000-2000/udp, not {type_name(item)}")
            continue
        text, _, suffix = str(item).strip().partition("/")
        if suffix and suffix not in PORT_PROTOCOLS:
            problems.add(at, f"'{item}': the protocol after / must be tcp, udp or sctp")
            continue
        if suffix and proto and suffix != proto:
            problems.add(at, f"'{item}' says {suffix} but the rule's proto is {proto}")
            continue
        protos = (suffix,) if suffix else (proto,) if proto else ("tcp", "udp")
        for part in text.split(","):
            value = _port_range(at, part.strip(), problems)
            if value is not None and value not in groups.setdefault(protos, []):
                groups[protos].append(value)
    return tuple(Service(protos, tuple(ports)) for protos, ports in groups.items() if ports)
