"""Reconcile: what to delete and what to create to turn one plan into another.

A step is kept when its key and content are unchanged and nothing it lives on changes;
so an unchanged lab gives empty lists, and a change touches only what it must.
"""
from __future__ import annotations

from .plan import Plan, Step


def _resolver(plan: Plan):
    alias = {}
    for s in plan.steps:
        for k in plan.iface_key(s):
            alias[k] = s.key
    return lambda key: alias.get(key, key)


def diff(old: Plan, new: Plan, missing: set[tuple] = frozenset()) -> tuple[list[Step], list[Step]]:
    """(deletes in reverse dependency order, creates in plan order). `missing` holds keys
    of old steps found absent on the host (e.g. a namespace someone removed)."""
    new_by_key = {s.key: s for s in new.steps}
    old_keys = {s.key for s in old.steps}
    resolve = _resolver(old)
    changed: set[tuple] = set(missing)
    # The kernel flushes an interface's routes when an address on it goes: a route on an
    # interface whose addresses change must be made again even if it did not change.
    readdressed = {(s.ns, s.ifname) for s in new.steps if s.type == "addr" and s.key not in old_keys}
    for s in old.steps:
        twin = new_by_key.get(s.key)
        if twin is None or twin.to_dict() != s.to_dict():
            changed.add(s.key)
        elif any(resolve(p) in changed for p in s.parents):
            changed.add(s.key)
        elif s.type == "route" and (s.ns, s.dev) in readdressed:
            changed.add(s.key)
        if s.type == "addr" and s.key in changed:
            readdressed.add((s.ns, s.ifname))
    deletes = [s for s in reversed(old.steps) if s.key in changed]
    creates = [s for s in new.steps if s.key in changed or s.key not in old_keys]
    return deletes, creates
