"""Apply: walk plan steps against the kernel, undoing what this run made if one fails.

Executors are registered per step type (`@executor("veth")`); the Context hands them one
netlink socket per namespace, opened on this thread while inside that namespace (DESIGN.md:
0.5 ms, versus 14 ms for IPRoute(netns=...), which forks).
"""
from __future__ import annotations

import errno
import os
import sys
import time
from typing import TYPE_CHECKING, Callable, Iterable

from . import hooks, kernel
from .errors import ApplyError
from .plan import Namespace, Step, Veth

if TYPE_CHECKING:
    from pyroute2 import IPRoute

MARK_PREFIX = "netlab:"
GONE = {errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL}


class Executor:
    def create(self, ctx: Context, step: Step) -> None:
        raise NotImplementedError

    def delete(self, ctx: Context, step: Step) -> None:
        raise NotImplementedError


EXECUTORS: dict[str, Executor] = {}

# Pre-phases run before a run's creations (e.g. containers created and started in
# parallel): objects with prepare(ctx, creates) and abandon(ctx) (undo what was prepared
# but not consumed, when the run fails).
PHASES: list = []


def executor(type_name: str) -> Callable:
    def register(cls):
        EXECUTORS[type_name] = cls()
        return cls
    return register


def mark(lab: str, node: str | None) -> str:
    """The ownership mark netlab writes on `lo` of every namespace it makes."""
    return f"{MARK_PREFIX}{lab}:{node or ''}"


class Progress:
    """'nodes 120/1000' on a terminal for big labs; silent otherwise."""

    def __init__(self, total: int, label: str = "nodes", stream=None):
        self.stream = stream or sys.stderr
        self.enabled = total > 20 and self.stream.isatty()
        self.total, self.done, self.label, self._last = total, 0, label, 0.0

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done == self.total):
            self._last = now
            self.stream.write(f"\r{self.label} {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


class Context:
    """What executors share during one run: the lab, sockets and fds per namespace."""

    def __init__(self, lab: str, extras: dict | None = None):
        self.lab = lab
        self.extras = extras if extras is not None else {}   # feature state saved with the lab
        self._sockets: dict[str, IPRoute] = {}
        self._fds: dict[str, int] = {}
        self.indexes: dict[tuple[str, str], int] = {}
        self.progress: Progress | None = None
        self.deleted: list[Step] = []        # what this run removed (kept also on failure)

    def adopt(self, ns: str, ipr: IPRoute) -> None:
        """Keep a socket that was opened inside `ns` (e.g. right after creating it)."""
        self._sockets[ns] = ipr

    def ipr(self, ns: str) -> IPRoute:
        sock = self._sockets.get(ns)
        if sock is None:
            from pyroute2 import IPRoute        # here: `netlab down` opens no socket
            with kernel.entered(ns):
                sock = IPRoute()
            self._sockets[ns] = sock
        return sock

    def home(self) -> IPRoute:
        """A socket in the namespace this process runs in (the host's, for an agent):
        stitches make their VXLAN devices from here so the underlay is the host's."""
        sock = self._sockets.get("")
        if sock is None:
            from pyroute2 import IPRoute
            sock = self._sockets[""] = IPRoute()
        return sock

    def fd(self, ns: str) -> int:
        fd = self._fds.get(ns)
        if fd is None:
            fd = self._fds[ns] = os.open(kernel.netns_path(ns), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def index(self, ns: str, ifname: str) -> int:
        key = (ns, ifname)
        if key not in self.indexes:
            self.indexes[key] = self.ipr(ns).link("get", ifname=ifname)[0]["index"]
        return self.indexes[key]

    def forget(self, ns: str) -> None:
        sock = self._sockets.pop(ns, None)
        if sock is not None:
            sock.close()
        fd = self._fds.pop(ns, None)
        if fd is not None:
            os.close(fd)
        self.indexes = {k: v for k, v in self.indexes.items() if k[0] != ns}

    def close(self) -> None:
        for ns in list(self._sockets) + list(self._fds):
            self.forget(ns)


def _is_netlink_error(err: BaseException) -> bool:
    """Without pyroute2 imported, no netlink error can have been raised."""
    module = sys.modules.get("pyroute2.netlink.exceptions")
    return module is not None and isinstance(err, module.NetlinkError)


def describe_error(err: BaseException) -> str:
    if _is_netlink_error(err):
        return f"{os.strerror(err.code)} (netlink error {err.code})"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror if not err.filename else f"{err.strerror}: {err.filename}"
    return str(err) or type(err).__name__


def is_gone(err: BaseException) -> bool:
    return ((_is_netlink_error(err) or isinstance(err, OSError))
            and getattr(err, "code", getattr(err, "errno", None)) in GONE)


def run(ctx: Context, deletes: Iterable[Step], creates: Iterable[Step]) -> list[Step]:
    """Delete, then create. On a failure, undo the creations of this run (newest first)
    and raise ApplyError naming the step. Returns the steps created."""
    hooks.registry().import_kernels()   # every feature's executors, phases and runtimes
    deleted_ns: set[str] = set()
    for s in deletes:
        if getattr(s, "ns", None) not in deleted_ns:
            delete_step(ctx, s)
        ctx.deleted.append(s)
        if isinstance(s, Namespace):
            deleted_ns.add(s.ns)
    done: list[Step] = []
    s = None
    creates = list(creates)
    try:
        for phase in PHASES:
            phase.prepare(ctx, creates)
        for s in creates:
            EXECUTORS[s.type].create(ctx, s)
            done.append(s)
            if ctx.progress and isinstance(s, Namespace) and s.node:
                ctx.progress.tick()
    except BaseException as err:
        for phase in PHASES:
            try:
                phase.abandon(ctx)
            except Exception:
                pass
        undo(ctx, done)
        if isinstance(err, ApplyError):
            raise
        if isinstance(err, KeyboardInterrupt):
            raise ApplyError("interrupted; undid what this run had made") from None
        where = s.describe() if s is not None else "preparing the run"
        raise ApplyError(f"{' '.join(where.split())}: {describe_error(err)}") from err
    return done


def undo(ctx: Context, done: list[Step]) -> None:
    deleted_ns: set[str] = set()
    for s in reversed(done):
        if getattr(s, "ns", None) in deleted_ns:
            continue
        try:
            delete_step(ctx, s)
        except Exception:
            pass
        if isinstance(s, Namespace):
            deleted_ns.add(s.ns)


def delete_step(ctx: Context, s: Step) -> None:
    ns = getattr(s, "ns", None)
    if ns is not None and not isinstance(s, Namespace) and not kernel.netns_exists(ns):
        if isinstance(s, Veth) and kernel.netns_exists(s.peer_ns):
            _delete_orphan_peer(ctx, s)
        return
    try:
        EXECUTORS[s.type].delete(ctx, s)
    except Exception as err:
        if not is_gone(err):
            raise ApplyError(f"removing {s.describe()}: {describe_error(err)}") from err


def _delete_orphan_peer(ctx: Context, s: Veth) -> None:
    """A namespace that vanished while a process still held it keeps its veths alive, so
    the far end (a bridge port in the lab namespace) would block re-creating the pair."""
    try:
        ctx.ipr(s.peer_ns).link("del", ifname=s.peer)
    except Exception as err:
        if not is_gone(err):
            raise
    ctx.indexes.pop((s.peer_ns, s.peer), None)
