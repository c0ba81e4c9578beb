"""Fault operations on a deployed lab: change the active FaultSet, make the kernel match,
record it in the lab state. Also the core hooks (after_up, status).

Every change is checked whole before anything is touched (bad names and faults this
kernel cannot make are refused with exit 2), then applied; if applying fails part-way,
the kernel is put back to the faults that were active before and nothing is recorded.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from ..core import apply, state
from ..core.errors import ApplyError, Problems
from ..core.state import LabState
from . import probe
from .driver import Driver
from .model import DIRECTIONS, FaultSet, Impairment
from .render import Desired, LabFacts, render
from .scenario import (
    node_links,
    parse_groups,
    parse_scenario,
    perform,
    resolve_link,
    undo,
)


class FaultRefused(Exception):
    """Bad input or a fault this kernel cannot make: one located line each (exit 2)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class NotDeployed(Exception):
    """The lab is not up (exit 1)."""


@dataclass
class Lab:
    """A deployed lab as faults see it."""
    state: LabState
    facts: LabFacts
    faults: FaultSet

    @property
    def record(self) -> dict[str, Any]:
        return self.state.extras.setdefault("faults", {})


def load(lab: str) -> Lab:
    st = LabState.load(lab)
    if st is None or st.status != "up":
        raise NotDeployed(f"lab {lab} is not deployed")
    return Lab(st, LabFacts.from_plan(st.plan), FaultSet.from_dict(st.extras.get("faults")))


@contextlib.contextmanager
def locked(lab: str):
    """One fault change at a time per lab (they read, change and save the state)."""
    if not os.path.isdir(state.lab_dir(lab)):
        raise NotDeployed(f"lab {lab} is not deployed")
    fd = os.open(os.path.join(state.lab_dir(lab), "faults.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _render(faults: FaultSet, facts: LabFacts) -> Desired:
    return render(faults, facts, probe.has)


def _record(record: dict[str, Any], faults: FaultSet, desired: Desired) -> None:
    record.update(faults.to_dict())
    record["mechanisms"] = desired.mechanisms


def change(lab: str, mutate: Callable[[Lab, FaultSet], None]) -> FaultSet:
    """Apply `mutate` to a copy of the lab's faults; make the kernel match; save."""
    from ..core.lab import require_root
    require_root("fault")
    with locked(lab):
        current = load(lab)
        wanted = current.faults.copy()
        mutate(current, wanted)
        new = _render(wanted, current.facts)
        if new.refusals:
            raise FaultRefused(new.refusals)
        old = _render(current.faults, current.facts)
        ctx = apply.Context(lab)
        try:
            Driver(ctx, current.facts).converge(old, new)
        except ApplyError:
            Driver(ctx, current.facts).converge(new, old, force=True, best_effort=True)
            raise
        finally:
            ctx.close()
        _record(current.record, wanted, new)
        current.state.save()
        return wanted


def scenarios(current: Lab) -> dict[str, Any]:
    """The `faults:` section of the file the lab was deployed from."""
    saved = current.record.get("scenarios")
    if saved is not None:
        return saved
    if current.state.source and os.path.isfile(current.state.source):
        from ..core.loader import load_file
        return load_file(current.state.source).faults or {}
    return {}


def _scenario_actions(current: Lab, lab: str, name: str) -> list:
    """The actions of one of the file's scenarios, or a refusal naming the known ones."""
    known = scenarios(current)
    if name not in known:
        names = ", ".join(sorted(known)) or "none"
        raise FaultRefused([f"lab {lab} has no fault scenario {name!r} (it has: {names})"])
    problems = Problems()
    actions = parse_scenario(name, known[name], current.facts.ifaces, problems)
    if problems:
        raise FaultRefused(problems.lines)
    return actions


def apply_scenario(lab: str, name: str) -> FaultSet:
    def mutate(current: Lab, faults: FaultSet) -> None:
        perform(faults, _scenario_actions(current, lab, name))
        if name not in faults.applied:
            faults.applied.append(name)
    return change(lab, mutate)


def clear_scenario(lab: str, name: str) -> FaultSet:
    """`fault clear LAB SCENARIO`: remove what that scenario applied."""
    def mutate(current: Lab, faults: FaultSet) -> None:
        undo(faults, _scenario_actions(current, lab, name))
        if name in faults.applied:
            faults.applied.remove(name)
    return change(lab, mutate)


def _targets(current: Lab, links: list[str], nodes: list[str], problems: Problems) -> list[str]:
    """--link N:IF and --node N options, resolved against the deployed lab."""
    found = [resolve_link(x, "--link", current.facts.ifaces, problems) for x in links]
    for node in nodes:
        found += node_links(node, "--node", current.facts.ifaces, problems)
    if not links and not nodes:
        problems.add("", "name a link (--link NODE:IF) or a node (--node NODE)")
    return [x for x in found if x]


def set_impairment(lab: str, links: list[str], nodes: list[str], direction: str,
                   values: dict[str, Any]) -> FaultSet:
    """`fault set`: replace the impairment of links (in a direction) with these values."""
    def mutate(current: Lab, faults: FaultSet) -> None:
        problems = Problems()
        targets = _targets(current, links, nodes, problems)
        if direction not in DIRECTIONS:
            problems.add("--direction", f"must be egress, ingress or both, not {direction!r}")
        imp = Impairment.parse(values, "", problems)
        if problems:
            raise FaultRefused(problems.lines)
        for link in targets:
            faults.set_link(link, direction, imp)
    return change(lab, mutate)


def set_state(lab: str, links: list[str], nodes: list[str], down: bool) -> FaultSet:
    """`fault down` / `fault up`."""
    def mutate(current: Lab, faults: FaultSet) -> None:
        problems = Problems()
        targets = _targets(current, links, nodes, problems)
        if problems:
            raise FaultRefused(problems.lines)
        for link in targets:
            faults.set_down(link, down)
    return change(lab, mutate)


def partition(lab: str, groups: list[list[str]]) -> FaultSet:
    """`fault partition --between A,B --and C,D`."""
    def mutate(current: Lab, faults: FaultSet) -> None:
        problems = Problems()
        parsed = parse_groups(groups, "--between/--and", current.facts.ifaces, problems)
        if problems or parsed is None:
            raise FaultRefused(problems.lines)
        faults.add_partition([list(g) for g in parsed.groups])
    return change(lab, mutate)


def clear(lab: str, links: list[str] | None = None, nodes: list[str] | None = None,
          partitions: bool = False) -> FaultSet:
    """Clear everything, or only the named links/nodes (and/or the partitions)."""
    def mutate(current: Lab, faults: FaultSet) -> None:
        if not links and not nodes and not partitions:
            faults.links.clear()
            faults.down.clear()
            faults.partitions.clear()
            faults.applied.clear()
            return
        problems = Problems()
        targets = _targets(current, links or [], nodes or [], problems) if links or nodes else []
        if problems:
            raise FaultRefused(problems.lines)
        for link in targets:
            faults.clear_link(link)
        if partitions:
            faults.partitions.clear()
    return change(lab, mutate)


# -- core hooks

def after_up(ctx: apply.Context, plan, topo) -> None:
    """Keep the file's scenarios, and re-apply the active faults after a reconcile (it may
    have re-created interfaces or namespaces they lived on)."""
    record = ctx.extras.setdefault("faults", {})
    record["scenarios"] = topo.sections.get("faults") or {}
    faults = FaultSet.from_dict(record)
    if faults.empty:
        return
    facts = LabFacts.from_plan(plan)
    for dropped in faults.keep_only(facts.ifaces):
        _warn(f"fault on {dropped} removed: it is no longer in the lab")
    desired = _render(faults, facts)
    for line in desired.refusals:
        _warn(f"fault not re-applied: {line}")
    errors = Driver(ctx, facts).converge(desired, desired, force=True, best_effort=True)
    for line in errors:
        _warn(f"fault not re-applied: {line}")
    _record(record, faults, desired)


def _warn(message: str) -> None:
    sys.stderr.write(f"netlab: warning: {message}\n")


def status(entry: dict, state: LabState) -> None:  # noqa: F811 (the hook's parameter name)
    """`netlab status`: the faults active on each lab."""
    faults = FaultSet.from_dict(state.extras.get("faults"))
    if not faults.empty:
        entry["faults"] = faults.lines()
