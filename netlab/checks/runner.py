"""Run checks: a bounded pool of worker threads, each check retried until it gives the
expected answer or its wait budget (for a lab still converging) runs out."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from . import l2, l3, l4, l7
from .labinfo import LabView
from .result import Outcome, Result, judge
from .spec import CheckSpec

PROBES: dict[str, Callable[[CheckSpec, LabView], Outcome]] = {
    "arp": l2.arp, "ping": l3.ping, "path": l3.path, "mtu": l3.mtu,
    "tcp": l4.tcp, "udp": l4.udp, "dns": l7.dns_check, "http": l7.http, "nat": l7.nat,
}
RETRY_PAUSE = 0.2


def _problem(spec: CheckSpec, view: LabView) -> str | None:
    """Why a check cannot run on this lab at all (a node it names is not in the lab)."""
    for node in (spec.src, spec.dst if spec.dst and spec.dst not in view.owner and ":" not in spec.dst
                 and not spec.dst[0].isdigit() else None):
        if node and node not in view.ns:
            return f"node {node!r} is not in lab {view.lab}"
    address, v6 = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    if spec.dst and not address:
        return f"{spec.dst} has no IPv{6 if v6 else 4} address"
    return None


def run_one(spec: CheckSpec, view: LabView, wait: float) -> Result:
    started = time.monotonic()
    problem = _problem(spec, view)
    if problem:
        return Result(spec, False, problem, 0.0, 0)
    attempts = 0
    while True:
        attempts += 1
        try:
            outcome = PROBES[spec.kind](spec, view)
            ok, detail = judge(spec, outcome)
            if outcome.error:
                return Result(spec, False, detail, time.monotonic() - started, attempts)
        except FileNotFoundError as err:
            return Result(spec, False, f"namespace missing ({err.filename}): is the lab up?",
                          time.monotonic() - started, attempts)
        except OSError as err:
            ok, detail = False, f"probe failed: {err.strerror or err}"
        if ok or time.monotonic() - started + RETRY_PAUSE >= wait:
            return Result(spec, ok, detail, time.monotonic() - started, attempts)
        time.sleep(RETRY_PAUSE)


def run_checks(specs: list[CheckSpec], view: LabView, wait: float = 5.0,
               parallel: int = 16) -> list[Result]:
    """Results in the order of `specs`."""
    if not specs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(specs)))) as pool:
        return list(pool.map(lambda s: run_one(s, view, wait), specs))
