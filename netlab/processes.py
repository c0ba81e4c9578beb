"""Processes netlab starts inside labs (DNS servers, responders): a record is a PID plus
the process's start time, so a recycled PID is never mistaken for ours, and stopping is
by that PID only, never by name."""
from __future__ import annotations

import os
import signal
import time


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot); None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def alive(record: dict | None) -> bool:
    """Whether the process a record names is still the one that was started."""
    return bool(record) and start_time(record["pid"]) == record.get("start")


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(record: dict | None, grace: float = 1.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; only if it is still our process."""
    if not alive(record):
        return
    pid = record["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if start_time(pid) is None:
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
