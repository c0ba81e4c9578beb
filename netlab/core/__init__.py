"""The pipeline every lab goes through, importing no feature:

    loader (YAML -> model) -> compiler (model -> plan) -> lab (diff with state, apply, save)

errors     located problems and failed operations
model      the typed topology; features' sections kept as data in `sections`
loader     the file -> model, core keys checked, features' keys by their declared shape
compiler   addresses, interfaces, gateways, routes -> plan steps; features add theirs
plan       steps (pure data) and their registry; reconcile: the diff of two plans
apply      runs steps through executors, undoing a failed run; netns, links: the core's
state      what exists, on disk; kernel: namespaces in-process; processes: by PID
lab        up, down, destroy, status;  cli: the click group and the core commands
hooks      the hook specs and the feature registry;  generate, responder: small tools
"""
