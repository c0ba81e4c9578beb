"""The `services:` of a node: netlab's own responders (HTTP, TCP echo, UDP echo; the
program is netlab.core.responder) run inside it from `up` to `down`.

  spec     the section's syntax and validation (hook validate)
  compile  the `service` step, one per node (hook compile)
  kernel   the step's executor: the responder process by PID; hooks after_up (restart
           what died), teardown (stop by PID), status

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
