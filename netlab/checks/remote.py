"""Checks as plain data, for features that run them elsewhere (multihost: each host's
agent runs the checks whose source node it holds; the controller prints them together).
The hooks check_sources, run_checks and report_checks (see netlab.core.hooks).

Both sides derive the same list of checks from the same data (the file's checks, or the
default ones from the lab's meta), so a result travels as its index in that list.
"""
from __future__ import annotations

from ..core.errors import Problems, TopologyError
from .labinfo import LabView
from .result import Result
from .spec import CheckSpec


def _specs(declared: list | None, view: LabView) -> list[CheckSpec]:
    from .defaults import default_checks
    from .spec import parse_checks
    if not declared:
        return default_checks(view)
    problems = Problems()
    specs = parse_checks(declared, set(view.ns), problems)
    if problems:
        raise TopologyError(problems.lines)
    return specs


def check_sources(lab, meta, declared) -> list[str]:
    """The source node of each check, in order (TopologyError for a bad declaration)."""
    return [s.src for s in _specs(declared, LabView.from_meta(lab, meta))]


def run_checks(lab, meta, declared, indexes, wait, parallel) -> list[dict]:
    """Run the checks at `indexes` from this process; results as plain data."""
    from .runner import run_checks as run
    view = LabView.from_meta(lab, meta)
    specs = _specs(declared, view)
    results = run([specs[i] for i in indexes], view, wait=wait, parallel=parallel)
    return [{"index": i, "ok": r.ok, "detail": r.detail, "seconds": round(r.seconds, 4),
             "attempts": r.attempts} for i, r in zip(indexes, results)]


def report_checks(lab, meta, declared, results, seconds, as_json, junit) -> bool:
    """Print results given in check order (table or JSON; JUnit XML to `junit` too)."""
    import click

    from . import report
    specs = _specs(declared, LabView.from_meta(lab, meta))
    merged = [Result(spec, r["ok"], r["detail"], r.get("seconds", 0.0), r.get("attempts", 0))
              for spec, r in zip(specs, results)]
    if junit:
        with open(junit, "w") as f:
            f.write(report.to_junit(lab, merged))
    click.echo(report.to_json(lab, merged, seconds) if as_json else report.table(lab, merged, seconds))
    return all(r.ok for r in merged)
