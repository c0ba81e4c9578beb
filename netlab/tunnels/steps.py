"""The tunnels' plan steps: a tunnel device, and an interface made a bridge port.

Pure data, and cheap to import: reading a lab's state (as `netlab down` does) loads this
module alone, not the compiler.
"""
from __future__ import annotations

from typing import ClassVar

from ..core.plan import Step, step


@step
class TunnelDevice(Step):
    """A tunnel interface in an endpoint's namespace: vxlan, gretap, ip6gretap (ports of
    the site's bridge `master`) or gre, ip6gre (addressed point-to-point interfaces).
    `local` and `remotes` are of one IP version, the underlay's."""
    type: ClassVar[str] = "tunnel"
    ns: str
    ifname: str
    index: int
    kind: str
    local: str
    remotes: str                        # the peers' underlay addresses, comma-separated
    underlay: str                       # the interface `local` lives on
    vni: int | None = None
    port: int | None = None
    gre_key: int | None = None
    master: str | None = None           # the site's bridge
    mtu: int | None = None
    network: str | None = None          # the lab network it stretches

    key = property(lambda s: ("tunnel", s.ns, s.ifname))
    peers = property(lambda s: s.remotes.split(","))
    provides = property(lambda s: (("iface", s.ns, s.ifname),))

    @property
    def parents(self):
        parents = [("netns", self.ns), ("iface", self.ns, self.underlay)]
        if self.master:
            parents.append(("bridge", self.ns, self.master))
        return tuple(parents)

    def describe(self) -> str:
        what = {"vxlan": f"vxlan vni {self.vni} port {self.port}"}.get(self.kind, self.kind)
        if self.gre_key is not None:
            what += f" key {self.gre_key}"
        text = f"tunnel  {self.ns}:{self.ifname} {what} {self.local} -> {', '.join(self.peers)}"
        if self.master:
            text += f" (port of {self.master})"
        return text + (f" mtu {self.mtu}" if self.mtu else "")


@step
class BridgePort(Step):
    """Make an existing interface a port of a bridge in the same namespace."""
    type: ClassVar[str] = "bridge-port"
    ns: str
    ifname: str
    master: str

    key = property(lambda s: ("bridge-port", s.ns, s.ifname))
    parents = property(lambda s: (("iface", s.ns, s.ifname), ("bridge", s.ns, s.master)))

    def describe(self) -> str:
        return f"port    {self.ns}:{self.ifname} (port of {self.master})"
