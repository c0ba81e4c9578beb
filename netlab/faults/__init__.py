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

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
