"""`netlab check FILE|LAB [--all-pairs] [--json] [--junit PATH]`: exit 0 when every check
passes, 1 when one fails (or the lab is not deployed), 2 for a bad file or arguments."""
from __future__ import annotations

import os
import sys
import time

import click

from ..core.errors import Problems, TopologyError


def _say(message: str, code: int):
    click.echo(f"netlab: {message}", err=True)
    sys.exit(code)


def _load_checks(file_or_lab: str):
    """(lab, declared checks as raw data or None, warning) from a file or a lab's state."""
    from ..core.loader import load_file
    from ..core.state import LabState
    if os.path.isfile(file_or_lab):
        topo = load_file(file_or_lab)            # TopologyError -> exit 2 in the group
        return topo.name, topo.sections.get("checks"), None
    st = LabState.load(file_or_lab)
    if st is None:
        _say(f"lab {file_or_lab} is not deployed (and no such file)", 1)
    if st.source and os.path.isfile(st.source):
        topo = load_file(st.source)
        return st.lab, topo.sections.get("checks"), None
    return st.lab, None, f"the topology file of lab {st.lab} ({st.source}) is gone; running default checks"


@click.command(name="check")
@click.argument("file_or_lab")
@click.option("--all-pairs", is_flag=True, help="L3 reachability between every pair of nodes (a matrix), instead of the declared checks.")
@click.option("--json", "as_json", is_flag=True, help="Results as JSON on stdout.")
@click.option("--junit", "junit", type=click.Path(dir_okay=False, writable=True), help="Also write JUnit XML here.")
@click.option("--wait", type=click.FloatRange(0, 600), default=5.0, show_default=True,
              help="Seconds each check may retry while the lab converges.")
@click.option("--ip", "families", type=click.Choice(["4", "6"]), multiple=True,
              help="With --all-pairs: only this family (default: every family both nodes of a pair speak).")
@click.option("--parallel", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Checks run at once.")
def check(file_or_lab, all_pairs, as_json, junit, wait, families, parallel):
    """Run the checks of a deployed lab (by its file or its name)."""
    from ..core.state import LabState
    from . import report
    from .defaults import default_checks
    from .labinfo import LabView
    from .matrix import all_pairs as matrix_of
    from .runner import run_checks
    from .spec import parse_checks
    if os.geteuid() != 0:
        _say("netlab check needs root (its probes run inside the lab's namespaces)", 1)
    lab, declared, warning = _load_checks(file_or_lab)
    st = LabState.load(lab)
    if st is None or st.status != "up":
        _say(f"lab {lab} is not deployed (run netlab up first)", 1)
    if warning:
        click.echo(f"netlab: {warning}", err=True)
    view = LabView.from_meta(lab, st.plan.meta)
    started = time.monotonic()
    results, matrix = [], None
    if all_pairs:
        matrix = matrix_of(view, timeout=max(wait, 1.0),
                           families=tuple(sorted({int(f) for f in families})) or (4, 6))
    else:
        problems = Problems()
        specs = parse_checks(declared, set(view.ns), problems) if declared else default_checks(view)
        if problems:
            raise TopologyError(problems.lines)
        results = run_checks(specs, view, wait=wait, parallel=parallel)
    seconds = time.monotonic() - started
    if junit:
        with open(junit, "w") as f:
            f.write(report.to_junit(lab, results, matrix))
    if as_json:
        click.echo(report.to_json(lab, results, seconds, matrix))
    elif matrix is not None:
        click.echo(report.matrix_text(matrix))
    else:
        click.echo(report.table(lab, results, seconds))
    ok = all(r.ok for r in results) and not (matrix and matrix.failed)
    sys.exit(0 if ok else 1)
