"""Processes netlab starts inside labs (DNS servers, responders): a record is a PID plus
the process's start time, so a recycled PID is never mistaken for ours, and stopping is
by that PID only, never by name.

Ending a process is not done until it has exited: netlab waits (bounded) for what it
ended. Its own children it reaps itself (waitpid), so they leave no zombie. Others, such
as a DNS server whose `netlab up` has exited (its parent is then PID 1), it watches in
/proc until they have exited (a zombie holds no socket, file or namespace any more);
collecting them is their parent's job, which PID 1 of some machines does only about once
a second, and `netlab down` does not wait for that. Servers netlab starts as daemons
become its own children (`adopting`), so a lab brought up and down by one process (a
test, the pytest plugin, `netlab agent`) leaves nothing for PID 1 to collect; and a
thread reaps those children as they exit (`watch`), also when another process (`netlab
down` as a command) ends them.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import threading
import time

# How long netlab waits for a process it ended to be gone. Its own children take
# microseconds; PID 1 of some machines collects orphans only every second or so (1.0 to
# 1.4 s measured on a Firecracker VM), and a parent that never reaps must not hang netlab.
REAP_TIMEOUT = 3.0

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37


def _stat(pid: int) -> tuple[str, int, str, int] | None:
    """(state, parent PID, start time in clock ticks, session) of a process; None if
    there is no such PID."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), fields[19], int(fields[3])


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot); None if gone or a zombie."""
    st = _stat(pid)
    return None if st is None or st[0] in ("Z", "X") else st[2]


def alive(record: dict | None) -> bool:
    """Whether the process a record names is still the one that was started."""
    return bool(record) and start_time(record["pid"]) == record.get("start")


def record(pid: int) -> dict | None:
    """A record for a process that exists now (running or a zombie), or None."""
    st = _stat(pid)
    return None if st is None else {"pid": pid, "start": st[2]}


def _present(rec: dict) -> tuple[str, int] | None:
    """(state, parent PID) while the PID still names the recorded process (running or a
    zombie); None once it is gone (or its PID names another process now)."""
    st = _stat(rec["pid"])
    if st is None or st[2] != rec.get("start"):
        return None
    return st[0], st[1]


def _reap(pid: int) -> bool:
    """Collect our own child's exit status if it has exited; True if it is gone. A
    watched child is left to the reaper thread (it is gone a moment later)."""
    with _watch_lock:
        if pid in _watched.values():
            return False
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def wait(records: list[dict], timeout: float = REAP_TIMEOUT, reap: bool = True,
         dead_only: bool = False) -> list[dict]:
    """Wait until every recorded process is gone; returns those still there when
    `timeout` ran out. Children of this process are reaped (`reap`), or with reap=False
    only waited for until they have exited (whoever started them collects them, e.g. a
    caller's subprocess.Popen). dead_only: a zombie counts as gone (it has let go of
    everything: sockets, files, namespaces)."""
    me = os.getpid()
    pending = list(records)
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        left = []
        for rec in pending:
            present = _present(rec)
            if present is None:
                continue
            state, parent = present
            dead = state in ("Z", "X")
            if parent == me and reap:
                if (dead or not dead_only) and _reap(rec["pid"]):
                    continue
                if dead and dead_only:
                    continue
            elif dead and (dead_only or parent == me):
                continue
            left.append(rec)
        if not left or time.monotonic() >= deadline:
            return left
        pending = left
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.02)


def _signal(rec: dict, sig: int) -> bool:
    """Send a signal if the PID still names the recorded, running process."""
    present = _present(rec)
    if present is None or present[0] in ("Z", "X"):
        return False
    try:
        os.kill(rec["pid"], sig)
    except ProcessLookupError:
        return False
    return True


_local = threading.local()              # .deferred: see collecting()


def stop(rec: dict | None, grace: float = 1.0, timeout: float = REAP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; only if it is still our process.
    Then wait (at most `timeout`) until it has exited: reaped if it is our child. Inside
    `collecting()`, a process of another parent is waited for at the block's end."""
    if not rec or _present(rec) is None:
        return
    rec = {"pid": rec["pid"], "start": rec.get("start")}
    if _signal(rec, signal.SIGTERM) and wait([rec], grace, dead_only=True):
        _signal(rec, signal.SIGKILL)
    deferred = getattr(_local, "deferred", None)
    if deferred is not None:
        deferred.extend(wait([rec], 0))      # our own child is reaped here and now
        return
    wait([rec], timeout, dead_only=True)


@contextlib.contextmanager
def collecting(timeout: float = REAP_TIMEOUT):
    """Processes that stop() ends in the block (on this thread) are waited for together
    when it ends, so that two servers of another parent cost one wait, not two."""
    outer = getattr(_local, "deferred", None)
    pending = _local.deferred = []
    try:
        yield
    finally:
        _local.deferred = outer
        if outer is not None:
            outer.extend(pending)
        else:
            wait(pending, timeout, dead_only=True)


def kill(pids: list[int]) -> list[dict]:
    """SIGKILL these processes; returns records of those signalled, for `wait`."""
    ended = []
    for pid in pids:
        rec = record(pid)
        if rec is not None and _signal(rec, signal.SIGKILL):
            ended.append(rec)
    return ended


_libc = None


def _prctl(option: int, arg) -> int:
    """prctl(2) with every argument passed at its full width (unsigned long)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    zero = ctypes.c_ulong(0)
    arg = ctypes.c_ulong(arg) if isinstance(arg, int) else arg
    return _libc.prctl(ctypes.c_int(option), arg, zero, zero, zero)


@contextlib.contextmanager
def adopting():
    """Within the block, processes orphaned below this one (a daemon's double fork)
    become this process's children instead of PID 1's (PR_SET_CHILD_SUBREAPER), so
    that netlab can reap them when it stops them. The setting is restored after."""
    before = ctypes.c_int(0)
    if _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(before)) != 0 or before.value:
        yield                   # not supported, or already a subreaper: nothing to change
        return
    if _prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        yield
        return
    try:
        yield
    finally:
        _prctl(PR_SET_CHILD_SUBREAPER, 0)


def reap_daemon_parent(pid: int) -> None:
    """After `adopting` a daemon: its double fork's middle process (the session leader
    that forked it and exited) is a zombie child of ours now; collect it, by the PID the
    daemon names as its session."""
    st = _stat(pid)
    if st is None:
        return
    leader = st[3]
    if leader in (pid, os.getpid()) or leader <= 1:
        return
    lead = _stat(leader)
    if lead is not None and lead[1] == os.getpid() and lead[0] in ("Z", "X"):
        _reap(leader)


# --- children reaped as they exit ----------------------------------------------------

_watch_lock = threading.Lock()
_watched: dict[int, int] = {}           # pidfd -> PID of a child of this process
_reaper: tuple[int, int, int] | None = None   # (our PID, wake-up pipe's ends) once started


def watch(pid: int) -> None:
    """Reap this child of ours as soon as it exits, whoever ended it: when a lab brought
    up by a long-lived process (a test run, an agent) is taken down by another (`netlab
    down` as a command), its servers do not linger here as zombies, and that `down` need
    not wait for them. A daemon thread does it, started with the first watched child."""
    global _reaper
    if not hasattr(os, "pidfd_open") or not hasattr(os, "P_PIDFD"):
        return                      # Python or kernel without pidfds: stop() still reaps
    st = _stat(pid)
    if st is None or st[1] != os.getpid():
        return                      # not our child (left to PID 1): nothing to reap here
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    with _watch_lock:
        if _reaper is None or _reaper[0] != os.getpid():     # first, or in a forked child
            for inherited in _watched:
                os.close(inherited)
            _watched.clear()
            wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            _reaper = (os.getpid(), wake_r, wake_w)
            threading.Thread(target=_reap_watched, args=(wake_r,), name="netlab-reaper",
                             daemon=True).start()
        _watched[fd] = pid
        os.write(_reaper[2], b"w")


def _reap_watched(wake: int) -> None:
    poller = select.poll()
    poller.register(wake, select.POLLIN)
    polled: set[int] = set()
    while True:
        with _watch_lock:
            for fd in set(_watched) - polled:
                poller.register(fd, select.POLLIN)
                polled.add(fd)
        for fd, _ in poller.poll():
            if fd == wake:
                try:
                    os.read(wake, 4096)
                except BlockingIOError:
                    pass
                continue
            try:
                os.waitid(os.P_PIDFD, fd, os.WEXITED)   # this process, never a reused PID
            except ChildProcessError:                   # collected by someone already
                pass
            poller.unregister(fd)
            polled.discard(fd)
            with _watch_lock:
                _watched.pop(fd, None)
            os.close(fd)
