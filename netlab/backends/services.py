"""The `service` step: netlab's responder process (netlab.responder) serving a node's
`services:` from inside its namespace. Started and stopped by PID; the PID and the
process's start time (so a recycled PID is never killed) live in the lab state extras.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import ClassVar

from .. import state
from ..apply import Context, Executor, executor
from ..errors import ApplyError
from ..plan import Step, step

READY_TIMEOUT = 10.0


@step
class Service(Step):
    """Responders for one node: `services` like ("http:80", "udp:7")."""
    type: ClassVar[str] = "service"
    ns: str
    node: str
    services: tuple = ()

    key = property(lambda s: ("service", s.ns))
    parents = property(lambda s: (("netns", s.ns),))

    def describe(self) -> str:
        return f"service {self.ns:<24} responders {' '.join(self.services)}"


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def alive(record: dict | None) -> bool:
    return bool(record) and start_time(record["pid"]) == record.get("start")


def spawn(lab: str, s: Service) -> dict:
    """Start the responder in the node and wait until it listens (or says why it can't)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    os.makedirs(state.lab_dir(lab), exist_ok=True)
    log_path = os.path.join(state.lab_dir(lab), f"services-{s.node}.log")
    read_fd, write_fd = os.pipe()
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "netlab.responder", "--netns", s.ns, "--node", s.node,
                 "--ready-fd", str(write_fd), *s.services],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True, pass_fds=(write_fd,))
        os.close(write_fd)
        write_fd = -1
        message = _read_ready(read_fd)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if message != "ready":
        stop({"pid": proc.pid, "start": start_time(proc.pid)})
        _reap(proc.pid)
        raise ApplyError(f"node {s.node}: services {' '.join(s.services)}: "
                         f"{message or 'the responder did not start'} (log: {log_path})")
    proc.returncode = 0          # not ours to wait for: it outlives this command
    return {"pid": proc.pid, "start": start_time(proc.pid), "ns": s.ns,
            "services": list(s.services)}


def _read_ready(fd: int) -> str:
    data = b""
    deadline = time.monotonic() + READY_TIMEOUT
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return "the responder did not get ready in time"
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(record: dict | None, grace: float = 1.0) -> None:
    """Stop a responder by PID, only if it is still the process we started."""
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
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


@executor("service")
class ServiceExecutor(Executor):
    def create(self, ctx: Context, s: Service) -> None:
        records = ctx.extras.setdefault("services", {})
        stop(records.get(s.node))
        records[s.node] = spawn(ctx.lab, s)

    def delete(self, ctx: Context, s: Service) -> None:
        stop(ctx.extras.get("services", {}).pop(s.node, None))
