"""The `service` step's executor: netlab's responder process (netlab.core.responder)
serving a node's `services:` from inside its namespace; and the hooks after_up, teardown
and status. Started and stopped by PID; the PID and the
process's start time (so a recycled PID is never killed) live in the lab state extras.
"""
from __future__ import annotations

import os
import select
import sys
import time

from ..core import state
from ..core.apply import Context, Executor, executor
from ..core.errors import ApplyError
from ..core.processes import _reap, alive, start_time, stop, watch  # noqa: F401 (re-exported)
from .compile import Service

READY_TIMEOUT = 10.0


def spawn(lab: str, s: Service) -> dict:
    """Start the responder in the node and wait until it listens (or says why it can't)."""
    import subprocess                   # here: `netlab down` starts nothing
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    os.makedirs(state.lab_dir(lab), exist_ok=True)
    log_path = os.path.join(state.lab_dir(lab), f"services-{s.node}.log")
    read_fd, write_fd = os.pipe()
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "netlab.core.responder", "--netns", s.ns, "--node", s.node,
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
    watch(proc.pid)              # reaped when it exits, whoever stops it
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






@executor("service")
class ServiceExecutor(Executor):
    def create(self, ctx: Context, s: Service) -> None:
        records = ctx.extras.setdefault("services", {})
        stop(records.get(s.node))
        records[s.node] = spawn(ctx.lab, s)

    def delete(self, ctx: Context, s: Service) -> None:
        stop(ctx.extras.get("services", {}).pop(s.node, None))


# ---------------------------------------------------------------- hooks

def after_up(ctx, plan, topo) -> None:
    """Restart responders that died since the lab came up (the step itself is unchanged,
    so reconcile leaves it alone)."""
    records = ctx.extras.setdefault("services", {})
    for s in plan.steps:
        if isinstance(s, Service) and not alive(records.get(s.node)):
            records[s.node] = spawn(ctx.lab, s)


def teardown(lab, plan, extras) -> None:
    for record in (extras or {}).get("services", {}).values():
        stop(record)


def status(entry, state) -> None:
    records = state.extras.get("services", {})
    if records:
        entry["services"] = {node: {"pid": r["pid"], "services": r["services"], "running": alive(r)}
                             for node, r in records.items()}
