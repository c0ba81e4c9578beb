"""Link executors: bridges, veth pairs, addresses and routes, through pyroute2."""
from __future__ import annotations

import socket

from .apply import Context, Executor, executor
from .plan import Address, Bridge, Route, Veth


@executor("bridge")
class BridgeExecutor(Executor):
    def create(self, ctx: Context, step: Bridge) -> None:
        ipr = ctx.ipr(step.ns)
        extra = {"mtu": step.mtu} if step.mtu else {}
        ipr.link("add", ifname=step.name, kind="bridge", state="up", **extra)
        ctx.index(step.ns, step.name)

    def delete(self, ctx: Context, step: Bridge) -> None:
        ctx.ipr(step.ns).link("del", index=ctx.index(step.ns, step.name))
        ctx.indexes.pop((step.ns, step.name), None)


@executor("veth")
class VethExecutor(Executor):
    def create(self, ctx: Context, step: Veth) -> None:
        mtu = {"mtu": step.mtu} if step.mtu else {}
        peer = {"ifname": step.peer, "net_ns_fd": ctx.fd(step.peer_ns), **mtu}
        ipr = ctx.ipr(step.ns)
        # created administratively up: one netlink round trip less per interface
        ipr.link("add", ifname=step.ifname, index=step.index, kind="veth", state="up", peer=peer, **mtu)
        ctx.indexes[(step.ns, step.ifname)] = step.index
        peer_ipr = ctx.ipr(step.peer_ns)
        if step.master:
            extra = {"ifalias": step.alias} if step.alias else {}
            peer_ipr.link("set", ifname=step.peer, master=ctx.index(step.peer_ns, step.master),
                          state="up", **extra)
        else:
            peer_ipr.link("set", index=ctx.index(step.peer_ns, step.peer), state="up")

    def delete(self, ctx: Context, step: Veth) -> None:
        ctx.ipr(step.ns).link("del", index=ctx.index(step.ns, step.ifname))
        ctx.indexes.pop((step.ns, step.ifname), None)
        ctx.indexes.pop((step.peer_ns, step.peer), None)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _addr_args(ctx: Context, step: Address) -> dict:
    address, prefix = step.cidr.split("/")
    return {"index": ctx.index(step.ns, step.ifname), "address": address,
            "prefixlen": int(prefix), "family": _family(address)}


@executor("addr")
class AddressExecutor(Executor):
    def create(self, ctx: Context, step: Address) -> None:
        ctx.ipr(step.ns).addr("add", **_addr_args(ctx, step))

    def delete(self, ctx: Context, step: Address) -> None:
        ctx.ipr(step.ns).addr("del", **_addr_args(ctx, step))


def _route_args(ctx: Context, step: Route) -> dict:
    dst = "0.0.0.0/0" if step.dst == "default" else step.dst
    return {"dst": dst, "gateway": step.via, "oif": ctx.index(step.ns, step.dev),
            "family": _family(step.via)}


@executor("route")
class RouteExecutor(Executor):
    def create(self, ctx: Context, step: Route) -> None:
        ctx.ipr(step.ns).route("add", **_route_args(ctx, step))

    def delete(self, ctx: Context, step: Route) -> None:
        ctx.ipr(step.ns).route("del", **_route_args(ctx, step))
