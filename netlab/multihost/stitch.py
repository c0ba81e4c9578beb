"""Stitches: VXLAN devices that join the parts of a network or a link split across hosts.

A stitch's VXLAN device is created by a netlink socket in the agent's own namespace (the
host's, where the underlay address lives) with IFLA_NET_NS_FD naming the lab namespace:
the kernel makes the device there directly, while its UDP socket stays in the host's
namespace. So nothing of the lab ever appears in the host's root namespace, and removing
the lab namespace removes the device and its socket with it.

- StitchSegment: a port of a network's bridge (in the host's lab namespace) with one
  all-zero FDB entry per other host (head-end replication of broadcast, unknown unicast
  and multicast; the bridge learns the rest).
- StitchLink: one end of a point-to-point link whose other end is on another host: the
  VXLAN device *is* the node's interface, with a unicast remote.
"""
from __future__ import annotations

from typing import ClassVar

from ..core.apply import Context, Executor, executor
from ..core.plan import Step, step

VXLAN_PORT = 4789
ZERO_MAC = "00:00:00:00:00:00"


def overhead(underlay_address: str) -> int:
    """Bytes VXLAN adds to an inner frame over this underlay: the outer IP header (40
    bytes over IPv6, 20 over IPv4), UDP 8, VXLAN 8, the inner Ethernet header 14."""
    return (40 if ":" in underlay_address else 20) + 8 + 8 + 14


def _vxlan_args(vni: int, local: str, remote: str | None = None) -> dict:
    six = ":" in local
    args = {"kind": "vxlan", "vxlan_id": vni, "vxlan_port": VXLAN_PORT,
            ("vxlan_local6" if six else "vxlan_local"): local}
    if remote:
        args["vxlan_group6" if six else "vxlan_group"] = remote
        args["vxlan_learning"] = 0
    return args


def _create_vxlan(ctx: Context, ns: str, ifname: str, mtu: int | None, args: dict) -> int:
    """Make the device in `ns` from the agent's namespace; returns its index there."""
    extra = {"mtu": mtu} if mtu else {}
    ctx.home().link("add", ifname=ifname, net_ns_fd=ctx.fd(ns), **args, **extra)
    return ctx.index(ns, ifname)


@step
class StitchSegment(Step):
    """Network `bridge` of a lab, extended to other hosts by VXLAN `vni`."""
    type: ClassVar[str] = "stitch-segment"
    ns: str                              # this host's lab namespace
    bridge: str
    ifname: str
    vni: int
    local: str                           # this host's underlay address
    remotes: tuple = ()                  # the other hosts' underlay addresses
    mtu: int | None = None

    key = property(lambda s: ("stitch-segment", s.ns, s.bridge))
    parents = property(lambda s: (("iface", s.ns, s.bridge),))

    def describe(self) -> str:
        return (f"stitch  {self.ns}/{self.bridge} vxlan {self.vni} {self.local} -> "
                f"{', '.join(self.remotes)}" + (f" mtu {self.mtu}" if self.mtu else ""))


@step
class StitchLink(Step):
    """Interface `ifname` of a node whose link peer runs on another host."""
    type: ClassVar[str] = "stitch-link"
    ns: str
    ifname: str
    vni: int
    local: str
    remote: str
    peer: str                            # "node:ifname" at the other end, for people
    mtu: int | None = None
    master: str | None = None            # a bridge in the node it is a port of (a tunnel site)

    key = property(lambda s: ("stitch-link", s.ns, s.ifname))
    parents = property(lambda s: (("netns", s.ns),) + ((("bridge", s.ns, s.master),) if s.master else ()))
    provides = property(lambda s: (("iface", s.ns, s.ifname),))

    def describe(self) -> str:
        return (f"stitch  {self.ns}:{self.ifname} <-> {self.peer} vxlan {self.vni} "
                f"{self.local} -> {self.remote}" + (f" mtu {self.mtu}" if self.mtu else ""))


class _VxlanExecutor(Executor):
    def delete(self, ctx: Context, s) -> None:
        ctx.ipr(s.ns).link("del", index=ctx.index(s.ns, s.ifname))
        ctx.indexes.pop((s.ns, s.ifname), None)


@executor("stitch-segment")
class SegmentExecutor(_VxlanExecutor):
    def create(self, ctx: Context, s: StitchSegment) -> None:
        index = _create_vxlan(ctx, s.ns, s.ifname, s.mtu, _vxlan_args(s.vni, s.local))
        ipr = ctx.ipr(s.ns)
        ipr.link("set", index=index, master=ctx.index(s.ns, s.bridge), state="up")
        for remote in s.remotes:
            ipr.fdb("append", ifindex=index, lladdr=ZERO_MAC, dst=remote)


@executor("stitch-link")
class LinkExecutor(_VxlanExecutor):
    def create(self, ctx: Context, s: StitchLink) -> None:
        index = _create_vxlan(ctx, s.ns, s.ifname, s.mtu, _vxlan_args(s.vni, s.local, s.remote))
        master = {"master": ctx.index(s.ns, s.master)} if s.master else {}
        ctx.ipr(s.ns).link("set", index=index, state="up", **master)
