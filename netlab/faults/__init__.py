"""Fault injection on live labs: loss, delay, jitter, rate, duplication, corruption,
reordering, link down and partitions (issue 7).

Owns the `faults:` section of a topology (scenarios), the `netlab fault` commands and the
faults recorded in a lab's state (`extras["faults"]`). Modules:
  model     Impairment / FaultSet and value parsing (10%, 50ms, 10mbit)
  scenario  the file's scenarios -> actions; the `validate` hook
  probe     which kernel mechanisms exist (tried in a throwaway namespace)
  render    FaultSet -> qdiscs, nft rules, link states (pure)
  driver    makes the kernel match a rendering
  ops       the operations behind the CLI, and the after_up/status hooks
  cli       `netlab fault ...`
"""
from __future__ import annotations

from .ops import after_up, status  # noqa: F401  (core hooks, found by name)
from .scenario import validate  # noqa: F401

__all__ = ["after_up", "status", "validate"]
