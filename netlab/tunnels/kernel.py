"""Tunnel executors (vxlan, gretap, gre, and over IPv6 vxlan, ip6gretap, ip6gre, through
pyroute2) and the kernel-support probe.

The probe tries each tunnel type once per process in a throwaway, unnamed namespace of
its own (nothing on disk, freed when its socket closes), so `up` can refuse a type the
kernel lacks before it builds anything; it never reads a kernel version.
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..core import kernel
from ..core.apply import Context, Executor, executor
from ..core.errors import ApplyError
from .spec import MODULE
from .steps import BridgePort, TunnelDevice

GRE_KEY_FLAG = 0x2000    # GRE_KEY; pyroute2 encodes the flags big-endian (its docs say 32: wrong)
GRE6_KEY_FLAG = socket.htons(GRE_KEY_FLAG)   # ip6gre: pyroute2 sends these in host order
IGN_ENCAP_LIMIT = 0x1    # IP6_TNL_F_IGN_ENCAP_LIMIT: no 8-byte encapsulation-limit option
TTL = 64
BRIDGE_NF = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables")
UNSUPPORTED = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOENT}

_probed: dict[str, bool] = {}


@contextlib.contextmanager
def scratch_netns():
    """Run the block with this thread in a new unnamed namespace; come back after."""
    with kernel._lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            kernel._check(kernel._libc.unshare(kernel.CLONE_NEWNET), "unshare")
            try:
                yield
            finally:
                kernel._check(kernel._libc.setns(home, kernel.CLONE_NEWNET), "setns back")
        finally:
            os.close(home)


_PROBE_ARGS = {"vxlan": {"vxlan_id": 1, "vxlan_port": 4789},
               "gre": {"gre_local": "192.0.2.1", "gre_remote": "192.0.2.2"},
               "gretap": {"gre_local": "192.0.2.1", "gre_remote": "192.0.2.2"},
               "ip6gre": {"ip6gre_local": "2001:db8::1", "ip6gre_remote": "2001:db8::2"},
               "ip6gretap": {"ip6gre_local": "2001:db8::1", "ip6gre_remote": "2001:db8::2"}}


def _probe(kinds: list[str]) -> None:
    """Try each type in a scratch namespace."""
    with scratch_netns():
        ipr = IPRoute()
    try:
        for kind in kinds:
            try:
                ipr.link("add", ifname="probe0", kind=kind, **_PROBE_ARGS[kind])
                _probed[kind] = True
                ipr.link("del", ifname="probe0")
            except NetlinkError as err:
                if err.code not in UNSUPPORTED:
                    raise
                _probed[kind] = False
    finally:
        ipr.close()          # the last reference: the scratch namespace goes with it


def supported(kinds: list[str]) -> dict[str, bool]:
    """Whether this kernel can make each tunnel type (tried once per process)."""
    todo = [k for k in kinds if k not in _probed]
    if todo:
        _probe(todo)
    return {k: _probed[k] for k in kinds}


def require(kinds: list[str]) -> None:
    """Raise one line per missing kernel module naming it; nothing has been built yet."""
    missing: dict[str, list[str]] = {}
    for kind, ok in supported(kinds).items():
        if not ok:
            missing.setdefault(MODULE[kind], []).append(kind)
    if missing:
        raise ApplyError("; ".join(
            f"{' and '.join(kinds)} tunnels need the {module} kernel module, absent on this kernel"
            for module, kinds in missing.items()))


def _link_args(step: TunnelDevice) -> dict:
    """pyroute2's arguments for the device; the underlay's version follows `local`."""
    args = {"ifname": step.ifname, "index": step.index, "kind": step.kind}
    if step.mtu:
        args["mtu"] = step.mtu
    if step.kind == "vxlan":
        args.update(_vxlan_args(step))
    elif step.kind.startswith("ip6"):
        args.update(ip6gre_local=step.local, ip6gre_remote=step.peers[0], ip6gre_ttl=TTL,
                    ip6gre_flags=IGN_ENCAP_LIMIT)
        if step.gre_key is not None:
            args.update(ip6gre_ikey=step.gre_key, ip6gre_okey=step.gre_key,
                        ip6gre_iflags=GRE6_KEY_FLAG, ip6gre_oflags=GRE6_KEY_FLAG)
    else:
        args.update(gre_local=step.local, gre_remote=step.peers[0], gre_ttl=TTL)
        if step.gre_key is not None:
            args.update(gre_ikey=step.gre_key, gre_okey=step.gre_key,
                        gre_iflags=GRE_KEY_FLAG, gre_oflags=GRE_KEY_FLAG)
    return args


def _vxlan_args(step: TunnelDevice) -> dict:
    """VXLAN over IPv4 (IFLA_VXLAN_LOCAL/GROUP) or IPv6 (IFLA_VXLAN_LOCAL6/GROUP6); one
    peer is the device's remote, several get head-end replication entries instead."""
    six = "6" if ipaddress.ip_address(step.local).version == 6 else ""
    args = {"vxlan_id": step.vni, "vxlan_port": step.port, f"vxlan_local{six}": step.local,
            "vxlan_learning": 1, "vxlan_ttl": TTL}
    if len(step.peers) == 1:
        args[f"vxlan_group{six}"] = step.peers[0]
    return args


def _bridge_without_netfilter(ctx: Context, ns: str) -> None:
    """Frames bridged at a site must not meet the node's own IP firewall (br_netfilter
    defaults to on in every namespace once the module is loaded)."""
    with kernel.entered(ctx.fd(ns)):
        for name in BRIDGE_NF:
            path = f"/proc/sys/net/bridge/{name}"
            if os.path.exists(path):
                kernel.write_sysctl(f"net.bridge.{name}", "0")


@executor("tunnel")
class TunnelExecutor(Executor):
    def create(self, ctx: Context, step: TunnelDevice) -> None:
        ipr = ctx.ipr(step.ns)
        ipr.link("add", **_link_args(step))
        ctx.indexes[(step.ns, step.ifname)] = step.index
        if step.kind == "vxlan" and len(step.peers) > 1:
            for remote in step.peers:   # head-end replication: flood to every other site
                ipr.fdb("append", ifindex=step.index, lladdr="00:00:00:00:00:00", dst=remote)
        if step.master:
            _bridge_without_netfilter(ctx, step.ns)
            ipr.link("set", index=step.index, master=ctx.index(step.ns, step.master), state="up")
        else:
            ipr.link("set", index=step.index, state="up")

    def delete(self, ctx: Context, step: TunnelDevice) -> None:
        ctx.ipr(step.ns).link("del", index=ctx.index(step.ns, step.ifname))
        ctx.indexes.pop((step.ns, step.ifname), None)


@executor("bridge-port")
class BridgePortExecutor(Executor):
    def create(self, ctx: Context, step: BridgePort) -> None:
        ctx.ipr(step.ns).link("set", index=ctx.index(step.ns, step.ifname),
                              master=ctx.index(step.ns, step.master), state="up")

    def delete(self, ctx: Context, step: BridgePort) -> None:
        ctx.ipr(step.ns).link("set", index=ctx.index(step.ns, step.ifname), master=0)


# ---------------------------------------------------------------- hooks

def preflight(topo, plan) -> None:
    """Refuse tunnel types this kernel lacks, and a gre subnet6 on a host without IPv6."""
    from ..core.lab import refuse_ipv6_if_disabled
    from .spec import uses_ipv6
    refuse_ipv6_if_disabled(uses_ipv6(topo))
    kinds = sorted({s.kind for s in plan.steps if isinstance(s, TunnelDevice)})
    if kinds:
        require(kinds)


def status(entry: dict, state) -> None:
    """The lab's tunnel devices in `netlab status --json`."""
    devices = [s for s in state.plan.steps if isinstance(s, TunnelDevice)]
    if devices:
        entry["tunnels"] = [{"netns": s.ns, "ifname": s.ifname, "type": s.kind, "local": s.local,
                             "remotes": s.peers, "family": ipaddress.ip_address(s.local).version,
                             "vni": s.vni, "key": s.gre_key,
                             "network": s.network, "bridge": s.master,
                             "mtu": s.mtu} for s in devices]
