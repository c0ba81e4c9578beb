"""Checks of a lab that spans hosts: each agent runs the checks that start on its nodes
(sockets must be opened inside the source node's namespace, which lives on that host),
and the controller puts the results back in the file's order.

The checks feature does the checking through the hooks check_sources, run_checks and
report_checks (netlab.core.hooks); results travel as plain data with their index.
"""
from __future__ import annotations

from ..core import hooks
from ..core.errors import TopologyError


def sources(lab: str, meta: dict, declared: list | None) -> list[str]:
    """The source node of each check, in order (TopologyError for bad checks)."""
    return hooks.registry().provider("check_sources")(lab, meta, declared)


def run_local(lab: str, request: dict, meta: dict, host: str) -> list[dict]:
    """Run this host's share of a check request; results as plain data with their index."""
    try:
        srcs = sources(lab, meta, request.get("checks"))
    except TopologyError as err:
        return [{"index": -1, "ok": False, "detail": line} for line in err.problems]
    placement = meta.get("multihost", {}).get("placement", {})
    mine = [i for i, src in enumerate(srcs) if placement.get(src) == host]
    return hooks.registry().provider("run_checks")(lab, meta, request.get("checks"), mine,
                                                    request.get("wait", 5.0), request.get("parallel", 16))


def merge(srcs: list[str], replies: dict[str, list[dict]], missing: dict[str, str]) -> list[dict]:
    """Results in check order; a check whose host did not answer fails, saying why."""
    found: dict[int, dict] = {}
    for results in replies.values():
        for r in results:
            if 0 <= r["index"] < len(srcs):
                found[r["index"]] = r
    return [found.get(i) or {"index": i, "ok": False, "detail": missing.get(src, "no result from its host"),
                             "seconds": 0.0, "attempts": 0}
            for i, src in enumerate(srcs)]
