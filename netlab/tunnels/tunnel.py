"""One checked entry of `tunnels:` (spec.py makes it, underlay.py completes its underlay)
and the encapsulation sizes its MTU comes from. Pure.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

OVERHEAD = {"vxlan": 50, "gretap": 38, "gre": 24}      # bytes over IPv4, without a key
OVERHEAD6 = {"vxlan": 70, "gretap": 58, "gre": 44}     # over IPv6 (no encapsulation limit)
KEY_OVERHEAD = 4
KIND6 = {"vxlan": "vxlan", "gretap": "ip6gretap", "gre": "ip6gre"}   # the kernel's kinds


@dataclass
class Tunnel:
    """One entry of `tunnels:`, checked."""
    index: int
    type: str
    endpoints: list[str]
    ifname: str
    vni: int | None = None
    key: int | None = None
    port: int | None = None
    network: str | None = None
    subnet: ipaddress.IPv4Network | None = None
    subnet6: ipaddress.IPv6Network | None = None
    mtu: int | None = None
    sites: dict[str, list[str]] = field(default_factory=dict)
    underlay: dict[str, str] = field(default_factory=dict)   # as the file gives it
    family: int | None = None           # the underlay's IP version (given, then resolved)
    ends: dict[str, str] = field(default_factory=dict)       # endpoint -> underlay interface

    @property
    def where(self) -> str:
        return f"tunnels[{self.index}]"

    @property
    def overhead(self) -> int:
        table = OVERHEAD6 if self.family == 6 else OVERHEAD
        return table[self.type] + (KEY_OVERHEAD if self.key is not None else 0)

    @property
    def kind(self) -> str:
        """The kernel's device kind: ip6gre and ip6gretap over an IPv6 underlay."""
        return KIND6[self.type] if self.family == 6 else self.type
