"""What this kernel can do for faults, found by trying it in a throwaway namespace.

Each capability is probed once per process, and only when a fault needs it: the probe
makes an anonymous network namespace (unshare, no name, nothing to clean up: it goes
when the probe's socket closes), tries the qdisc, device or nft rule there, and keeps
the answer. DESIGN.md: probe by trying, never guess from a kernel version.

NETLAB_FAULTS_WITHOUT=netem,ifb (a comma list) makes netlab act as if those were
absent: tests use it to exercise the fallbacks on a kernel that has everything.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..core import kernel

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

# capability -> what a refusal says is missing
MISSING = {
    "netem": "the sch_netem kernel module, absent on this kernel",
    "tbf": "the sch_tbf kernel module, absent on this kernel",
    "ifb": "ifb devices with tc ingress, u32 and mirred, absent on this kernel",
    "nft": "nftables netdev ingress/egress hooks with numgen and dup, absent on this kernel",
}

_cache: dict[str, bool] = {}


@contextlib.contextmanager
def scratch():
    """Run the block on this thread inside a new anonymous network namespace."""
    with kernel._lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare: {os.strerror(err)}")
            try:
                yield
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns back: {os.strerror(err)}")
        finally:
            os.close(home)


def _veth(ipr: IPRoute) -> tuple[int, int]:
    ipr.link("add", ifname="p0", kind="veth", peer={"ifname": "p1"})
    a = ipr.link("get", ifname="p0")[0]["index"]
    b = ipr.link("get", ifname="p1")[0]["index"]
    ipr.link("set", index=a, state="up")
    ipr.link("set", index=b, state="up")
    return a, b


def _probe_netem(ipr: IPRoute) -> None:
    a, _ = _veth(ipr)
    ipr.tc("add", "netem", a, 0x10000, delay=1000)


def _probe_tbf(ipr: IPRoute) -> None:
    a, _ = _veth(ipr)
    ipr.tc("add", "tbf", a, 0x10000, rate=125000, burst=15000, limit=30000)


def _probe_ifb(ipr: IPRoute) -> None:
    a, _ = _veth(ipr)
    ipr.link("add", ifname="ifb0", kind="ifb")
    ifb = ipr.link("get", ifname="ifb0")[0]["index"]
    ipr.tc("add", "ingress", a, 0xFFFF0000)
    ipr.tc("add-filter", "u32", a, parent=0xFFFF0000, prio=1, protocol=0x0003, target=0x10001,
           keys=["0x0/0x0+0"], action={"kind": "mirred", "direction": "egress",
                                        "action": "redirect", "ifindex": ifb})


PROBE_NFT = """table netdev netlab_probe {
  chain i { type filter hook ingress device "p0" priority 0; numgen random mod 100 < 1 drop; }
  chain e { type filter hook egress device "p0" priority 0;
    meta mark 0x4e4c0001 meta mark set 0 accept
    numgen random mod 100 < 1 meta mark set 0x4e4c0001 dup to "p0" meta mark set 0; }
}
table inet netlab_probe {
  chain i { type filter hook input priority -10; ip saddr { 192.0.2.1 } drop; }
}
"""


def _probe_nft(ipr: IPRoute) -> None:
    _veth(ipr)
    if shutil.which("nft") is None:
        raise OSError("nft is not installed")
    result = subprocess.run(["nft", "-f", "-"], input=PROBE_NFT, capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(result.stderr.strip())


PROBES = {"netem": _probe_netem, "tbf": _probe_tbf, "ifb": _probe_ifb, "nft": _probe_nft}


def disabled() -> set[str]:
    return {c.strip() for c in os.environ.get("NETLAB_FAULTS_WITHOUT", "").split(",") if c.strip()}


def has(capability: str) -> bool:
    """True if this kernel (and host) can do it; probed once per process."""
    if capability in disabled():
        return False
    if capability not in _cache:
        try:
            with scratch():
                ipr = IPRoute()
                try:
                    PROBES[capability](ipr)
                    _cache[capability] = True
                finally:
                    ipr.close()
        except (NetlinkError, OSError):
            _cache[capability] = False
    return _cache[capability]
