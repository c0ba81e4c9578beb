"""Make the kernel match a rendered fault configuration: qdiscs and ifb devices through
pyroute2, nft tables through one `nft -f -` per namespace, link states through netlink.

`converge(old, new)` touches only what differs (or everything with force=True, as after a
reconcile re-created interfaces). On a failure the caller converges back to `old`.
"""
from __future__ import annotations

import subprocess
from typing import Callable

from pyroute2.netlink.exceptions import NetlinkError

from ..core import kernel
from ..core.apply import Context, describe_error
from ..core.errors import ApplyError
from ..core.netns import keep_ipv6_addresses_on_down
from .render import Desired, LabFacts, TcSpec, nft_script

TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
INGRESS = 0xFFFF0000
ETH_P_ALL = 0x0003
ABSENT = {2, 19, 22}        # ENOENT, ENODEV, EINVAL: the qdisc or device is not there
MIN_BURST = 15_140          # ten full frames


def tbf_args(rate_bits: int) -> dict:
    """tbf with a burst of max(10 frames, 50 ms) and a queue of 100 ms on top. A shorter
    burst loses rate wherever timers fire late: measured in the full-kernel VM (software
    emulation), 10mbit gave 6.5 Mbit/s of TCP with 12 ms of burst, 9.5 with 50 ms."""
    rate = rate_bits // 8
    burst = max(MIN_BURST, rate // 20)
    return {"rate": rate, "burst": burst, "limit": burst + rate // 10}


def run_nft(ns: str, script: str) -> None:
    """Run an nft script inside a namespace (the child inherits this thread's netns)."""
    with kernel.entered(ns):
        result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["nft failed"])[0]
        raise OSError(f"nft: {first}")


def _tolerant(fn: Callable[[], object]) -> None:
    try:
        fn()
    except NetlinkError as e:
        if e.code not in ABSENT:
            raise


class Driver:
    def __init__(self, ctx: Context, facts: LabFacts):
        self.ctx = ctx
        self.facts = facts
        self.errors: list[str] = []

    def _attempt(self, what: str, fn: Callable[[], None], best_effort: bool) -> None:
        try:
            fn()
        except Exception as e:   # noqa: BLE001 - reported as one line naming the object
            message = f"{what}: {describe_error(e)}"
            if not best_effort:
                raise ApplyError(message) from e
            self.errors.append(message)

    def converge(self, old: Desired, new: Desired, force: bool = False,
                 best_effort: bool = False) -> list[str]:
        """Change the kernel from `old` to `new`; returns errors when best_effort."""
        for ns in sorted(set(old.nft) | set(new.nft)):
            before = {k: v for k, v in old.nft.get(ns, {}).items() if v}
            after = {k: v for k, v in new.nft.get(ns, {}).items() if v}
            if force or before != after:
                self._attempt(f"nft rules in {ns}", lambda: run_nft(ns, nft_script(after)), best_effort)
        for key in sorted(set(old.tc) | set(new.tc)):
            was, want = old.tc.get(key), new.tc.get(key)
            if force or was != want:
                ns, dev, side = key
                self._attempt(f"qdiscs on {ns}:{dev} ({side})",
                              lambda: self._replace_tc(key, was or want, want), best_effort)
        for ns, dev in sorted(new.down if force else new.down - old.down):
            self._attempt(f"setting {ns}:{dev} down", lambda: self._set_state(ns, dev, False), best_effort)
        for ns, dev in sorted(old.down - new.down):
            self._attempt(f"setting {ns}:{dev} up", lambda: self._set_state(ns, dev, True), best_effort)
        return self.errors

    # -- tc

    def _replace_tc(self, key: tuple[str, str, str], was: TcSpec | None, want: TcSpec | None) -> None:
        ns, dev, side = key
        ipr = self.ctx.ipr(ns)
        index = self.ctx.index(ns, dev)
        if side == "ingress":
            _tolerant(lambda: ipr.tc("del", index=index, handle=INGRESS, parent=TC_H_INGRESS))
            if was is not None and was.ifb:
                _tolerant(lambda: ipr.link("del", ifname=was.ifb))
        else:
            _tolerant(lambda: ipr.tc("del", index=index, handle=0x10000, parent=TC_H_ROOT))
        if want is None:
            return
        target = index
        if side == "ingress":
            ipr.link("add", ifname=want.ifb, kind="ifb")
            target = ipr.link("get", ifname=want.ifb)[0]["index"]
            ipr.link("set", index=target, state="up")
            ipr.tc("add", "ingress", index, INGRESS)
            ipr.tc("add-filter", "u32", index, parent=INGRESS, prio=1, protocol=ETH_P_ALL,
                   target=0x10001, keys=["0x0/0x0+0"],
                   action={"kind": "mirred", "direction": "egress", "action": "redirect",
                           "ifindex": target})
        handle, parent = 0x10000, TC_H_ROOT
        if want.netem:
            ipr.tc("add", "netem", target, handle, parent=parent, **dict(want.netem))
            handle, parent = 0x20000, 0x10001
        if want.rate:
            ipr.tc("add", "tbf", target, handle, parent=parent, **tbf_args(want.rate))

    # -- link state

    def _set_state(self, ns: str, dev: str, up: bool) -> None:
        ipr = self.ctx.ipr(ns)
        index = self.ctx.index(ns, dev)
        if not up:
            keep_ipv6_addresses(ns)
        ipr.link("set", index=index, state="up" if up else "down")
        if up:
            # the kernel drops routes through a device that goes down: put the lab's back
            for r in self.facts.routes.get((ns, dev), []):
                dst = "0.0.0.0/0" if r.dst == "default" else r.dst
                ipr.route("replace", dst=dst, gateway=r.via, oif=index)


def keep_ipv6_addresses(ns: str) -> None:
    """keep_addr_on_down inside `ns`: labs set it at `up`; this covers labs made before."""
    with kernel.entered(ns):
        keep_ipv6_addresses_on_down()
