"""Fault injection on live labs: loss, delay, jitter, rate, duplication, corruption,
reordering, link down and partitions.

Owns the `faults:` section of a topology (scenarios), the `netlab fault` commands and the
faults recorded in a lab's state (`extras["faults"]`). Modules:
  model     Impairment / FaultSet and value parsing (10%, 50ms, 10mbit)
  scenario  the file's scenarios -> actions; the `validate` hook
  probe     which kernel mechanisms exist (tried in a throwaway namespace)
  render    FaultSet -> qdiscs, nft rules, link states (pure)
  driver    makes the kernel match a rendering
  ops       the operations behind the CLI, and the after_up/status hooks
  cli       `netlab fault ...`

Hooks: validate (scenario), after_up and status (ops).
"""
from __future__ import annotations

from ..core.hooks import Feature

FEATURE = Feature(
    name="faults",
    owns={"topology": {"faults": "mapping"}},
    commands={"fault": "cli:fault"},
    hooks={"validate": "scenario:validate", "after_up": "ops:after_up", "status": "ops:status"},
)
