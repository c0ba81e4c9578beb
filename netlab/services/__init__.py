"""The `services:` of a node: netlab's own responders (HTTP, TCP echo, UDP echo; the
program is netlab.core.responder) run inside it from `up` to `down`.

  spec     the section's syntax and validation (hook validate)
  compile  the `service` step, one per node (hook compile)
  kernel   the step's executor: the responder process by PID; hooks after_up (restart
           what died), teardown (stop by PID), status
"""
from __future__ import annotations

from ..core.hooks import Feature

FEATURE = Feature(
    name="services",
    owns={"node": {"services": "list"}},
    steps={"service": "compile"},
    kernel=("kernel",),
    hooks={"validate": "spec:validate", "compile": "compile:compile", "after_up": "kernel:after_up",
           "teardown": "kernel:teardown", "status": "kernel:status"},
)
