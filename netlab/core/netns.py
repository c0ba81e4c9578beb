"""Node runtimes: a namespace node, made in-process; container nodes plug in here too."""
from __future__ import annotations

from pyroute2 import IPRoute

from . import hooks, kernel
from .apply import Context, Executor, executor, mark
from .errors import ApplyError
from .plan import Namespace

# A node runtime (containers) is a feature's: found by `hooks.registry().runtime(kind)`.
# It offers create(ctx, step), delete(ctx, step), present(step), inspect(ns),
# lab_containers(lab), remove_lab(lab) and all_labs().


def configure_inside(step: Namespace, lab: str, enable_ipv6: bool = False) -> IPRoute:
    """Settings made from inside a fresh namespace: returns a socket bound to it.
    enable_ipv6: turn IPv6 on first (Docker turns it off in containers it does not wire
    itself, and adding an IPv6 address there is then refused: EACCES)."""
    ipr = IPRoute()
    if enable_ipv6:
        for key in ("all", "default"):
            try:
                kernel.write_sysctl(f"net.ipv6.conf.{key}.disable_ipv6", "0")
            except OSError:        # IPv6 not compiled in, or /proc/sys read-only
                pass
    ipr.link("set", index=1, state="up", ifalias=mark(lab, step.node))
    # IPv4 settings of a new namespace are inherited from the host's (Docker turns
    # forwarding on there), so set forwarding explicitly: only routers forward.
    kernel.write_sysctl("net.ipv4.ip_forward", "1" if step.role == "router" else "0")
    # ICMP errors are not rate-limited in a lab: the default (icmp_ratelimit=1000 ms, a
    # burst of 6 per destination, then one a second) silenced the time-exceeded and port
    # unreachable replies of a second `traceroute` within seconds, so hops showed as * * *
    kernel.write_sysctl("net.ipv4.icmp_ratelimit", "0")
    if not kernel.ipv6_available():
        return ipr
    if step.role == "lab":
        # bridges forward IPv6 frames without addresses of their own: no DAD/MLD noise
        kernel.write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        kernel.write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
    else:
        # Lab addresses are unique by construction: skip duplicate address detection so
        # addresses (link-local ones too) are usable the moment `up` returns.
        kernel.write_sysctl("net.ipv6.conf.default.accept_dad", "0")
        kernel.write_sysctl("net.ipv6.conf.all.accept_dad", "0")
        keep_ipv6_addresses_on_down()
        kernel.write_sysctl("net.ipv6.icmp.ratelimit", "0")      # as icmp_ratelimit above
        if step.role == "router":
            kernel.write_sysctl("net.ipv6.conf.all.forwarding", "1")
    return ipr


def keep_ipv6_addresses_on_down() -> None:
    """In the namespace the thread is in: a link taken down (`netlab fault down`, or by
    hand) keeps its static IPv6 addresses, as IPv4 ones are kept, so `up` brings the same
    link back (IPv6's default drops them)."""
    try:
        kernel.write_sysctl("net.ipv6.conf.all.keep_addr_on_down", "1")
    except OSError:          # no IPv6 here, or a kernel without the setting (before 4.6)
        pass


@executor("netns")
class NamespaceExecutor(Executor):
    def create(self, ctx: Context, step: Namespace) -> None:
        if step.image:
            runtime = hooks.registry().runtime("container")
            if runtime is None:
                raise ApplyError(f"node {step.node}: container nodes need the docker runtime")
            runtime.create(ctx, step)
            return
        try:
            with kernel.created(step.ns):
                ctx.adopt(step.ns, configure_inside(step, ctx.lab))
        except FileExistsError:
            raise ApplyError(f"namespace {step.ns} already exists and is not part of this lab "
                             f"(remove it, or rename the lab)") from None

    def delete(self, ctx: Context, step: Namespace) -> None:
        ctx.forget(step.ns)
        runtime = hooks.registry().runtime("container") if step.image else None
        if runtime is not None:
            runtime.delete(ctx, step)
        kernel.delete(step.ns)
