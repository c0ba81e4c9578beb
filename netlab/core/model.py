"""The typed topology model: what a valid topology file says, after defaults are merged.

Sections that features own (a node's nat, firewall, services; the lab's tunnels, faults,
checks, dns, hosts: whatever their declarations list) are carried in one mapping,
`sections`, as the plain data the file gave, after the loader checked their shape; the
feature that owns each validates the rest.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address
IPv6Net = ipaddress.IPv6Network
IPv6Addr = ipaddress.IPv6Address


@dataclass
class Network:
    name: str
    subnet: IPv4Net | None = None
    gateway: str | None = None          # node name, resolved by the compiler if None
    mtu: int | None = None
    subnet6: IPv6Net | None = None


@dataclass
class Attachment:
    """A node's interface on a network: eth0, eth1, ... in the order the node lists them."""
    network: str
    ifname: str
    address: IPv4Addr | None = None     # fixed by the file; None = automatic
    address6: IPv6Addr | None = None


@dataclass
class Node:
    name: str
    kind: str = "host"                  # host | router
    image: str | None = None            # set: a container node
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    binds: list[str] = field(default_factory=list)
    exec: list[str] = field(default_factory=list)
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)   # owned by features, by key

    @property
    def is_router(self) -> bool:
        return self.kind == "router"

    @property
    def is_container(self) -> bool:
        return self.image is not None


@dataclass
class Endpoint:
    node: str
    ifname: str


@dataclass
class Link:
    endpoints: tuple[Endpoint, Endpoint]
    subnet: IPv4Net | None = None
    mtu: int | None = None
    subnet6: IPv6Net | None = None
    position: int = 0                   # its index in the file's links list, for messages


@dataclass
class Topology:
    name: str
    domain: str
    networks: dict[str, Network] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)   # owned by features, by key
    specs: dict[str, Any] = field(default_factory=dict)      # what each feature's validate
                                                              # parsed them into, by feature
    source: str | None = None           # path of the file it came from

    def netns(self, node: str) -> str:
        return f"{self.name}-{node}"

    @property
    def switch_netns(self) -> str:
        """The lab's own namespace that holds its bridges (never the host's)."""
        return f"{self.name}--lab"
