"""The bare-netlink floor for an N-host LAN (DESIGN.md): the least Python can do.

One namespace with a bridge, N namespaces made in-process (unshare + bind mount), a veth
per host with its peer on the bridge, an address, links up. No state, no checks, no
marks. `python3 bench/floor.py up N` builds it; `python3 bench/floor.py down N` removes it.
"""
from __future__ import annotations

import ctypes
import os
import sys

PREFIX = "floor"
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, MS_BIND, MNT_DETACH = 0x40000000, 0x1000, 2


def _ok(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def make_ns(name: str, home: int):
    from pyroute2 import IPRoute        # `down` needs no netlink: it only unnames namespaces
    path = f"/run/netns/{name}"
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0))
    _ok(libc.unshare(CLONE_NEWNET))
    _ok(libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None))
    ipr = IPRoute()
    _ok(libc.setns(home, CLONE_NEWNET))
    return ipr


def up(n: int) -> None:
    os.makedirs("/run/netns", exist_ok=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    sw = make_ns(f"{PREFIX}-sw", home)
    sw.link("add", ifname="br0", kind="bridge", state="up")
    bridge = sw.link("get", ifname="br0")[0]["index"]
    sw_fd = os.open(f"/run/netns/{PREFIX}-sw", os.O_RDONLY)
    prefix = 32 - max(8, (n + 2).bit_length())
    for i in range(n):
        ipr = make_ns(f"{PREFIX}-h{i}", home)
        ipr.link("add", ifname="eth0", index=2, kind="veth", peer={"ifname": f"p{i}", "net_ns_fd": sw_fd})
        sw.link("set", ifname=f"p{i}", master=bridge, state="up")
        host = i + 1
        ipr.addr("add", index=2, address=f"10.0.{host >> 8}.{host & 255}", prefixlen=prefix)
        ipr.link("set", index=2, state="up")
        ipr.link("set", index=1, state="up")
        ipr.close()


def down(n: int) -> None:
    for name in [f"{PREFIX}-h{i}" for i in range(n)] + [f"{PREFIX}-sw"]:
        path = f"/run/netns/{name}"
        libc.umount2(path.encode(), MNT_DETACH)
        os.unlink(path)


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1]](int(sys.argv[2]))
