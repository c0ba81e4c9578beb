"""Checks of a lab that spans hosts: each agent runs the checks that start on its nodes
(sockets must be opened inside the source node's namespace, which lives on that host),
and the controller puts the results back in the file's order.

Both sides derive the same list of checks from the same data (the file's checks, or the
default ones from the lab's meta), so a result travels as its index in that list.
"""
from __future__ import annotations

from ..checks.labinfo import LabView
from ..checks.result import Result
from ..checks.spec import CheckSpec
from ..errors import Problems, TopologyError


def specs_of(declared: list | None, view: LabView) -> list[CheckSpec]:
    from ..checks.defaults import default_checks
    from ..checks.spec import parse_checks
    if not declared:
        return default_checks(view)
    problems = Problems()
    specs = parse_checks(declared, set(view.ns), problems)
    if problems:
        raise TopologyError(problems.lines)
    return specs


def run_local(lab: str, request: dict, meta: dict, host: str) -> list[dict]:
    """Run this host's share of a check request; results as plain data with their index."""
    from ..checks.runner import run_checks
    view = LabView.from_meta(lab, meta)
    try:
        specs = specs_of(request.get("checks"), view)
    except TopologyError as err:
        return [{"index": -1, "ok": False, "detail": line} for line in err.problems]
    placement = meta.get("multihost", {}).get("placement", {})
    mine = [i for i, s in enumerate(specs) if placement.get(s.src) == host]
    results = run_checks([specs[i] for i in mine], view, wait=request.get("wait", 5.0),
                         parallel=request.get("parallel", 16))
    return [{"index": i, "ok": r.ok, "detail": r.detail, "seconds": round(r.seconds, 4),
             "attempts": r.attempts} for i, r in zip(mine, results)]


def merge(specs: list[CheckSpec], replies: dict[str, list[dict]], missing: dict[str, str]) -> list[Result]:
    """Results in the order of `specs`; a check whose host did not answer fails, saying why."""
    found: dict[int, Result] = {}
    for host, results in replies.items():
        for r in results:
            if 0 <= r["index"] < len(specs):
                found[r["index"]] = Result(specs[r["index"]], r["ok"], r["detail"],
                                           r.get("seconds", 0.0), r.get("attempts", 0))
    out = []
    for i, spec in enumerate(specs):
        if i in found:
            out.append(found[i])
        else:
            out.append(Result(spec, False, missing.get(spec.src, "no result from its host"), 0.0, 0))
    return out
