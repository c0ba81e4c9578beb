"""Labs across several machines (`netlab up --etcd URL FILE`, `netlab agent`).

The controller compiles the whole lab as usual, places nodes on hosts (`hosts:` in the
file, or balanced automatically), splits the plan into one sub-plan per host with VXLAN
stitches where a network or link spans hosts, and writes every sub-plan to etcd in one
transaction. On each machine `netlab agent` watches its share and applies it with the
ordinary apply engine and state, then reports back. Modules:

- placement: the `hosts:` section, automatic placement (pure)
- partition: one plan -> sub-plans with stitches and VNIs (pure)
- stitch:    the stitch steps and their executors (VXLAN made from the host namespace)
- checks:    checks across hosts, run through the checks feature's hooks
- options:   --etcd on up, down, status and check (hook extend_command)
- store:     etcd access with endpoint fail-over, the key layout, leases
- agent:     the per-host loop;  controller: up/down/status/check across hosts
- cli:       the click commands

Hooks: validate (placement), extend_command (options).

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
