"""The one place where feature stages (NAT/firewall, DNS, services, tunnels, faults,
checks) register their validation and compile hooks, so the core stays unaware of them.

A validator is `fn(topo, problems)`; a compiler is `fn(topo, compiled, builder)` and adds
steps to the plan. Each feature module appears once in FEATURE_MODULES.
"""
from __future__ import annotations

import importlib
from typing import Callable

FEATURE_MODULES: list[str] = [
    "netlab.checks",       # checks: syntax
    "netlab.services",     # services: responders
    "netlab.dns",          # before nft: the firewall reads meta["dns"] to let DNS through
    "netlab.nft",          # NAT and firewalls
    "netlab.containers",   # container fields, exec: after wiring
    "netlab.tunnels",      # vxlan / gretap / gre
    "netlab.overview",     # status: links, tunnels, faults, rule counters
    "netlab.faults",       # faults: scenarios, re-applied after a reconcile
    "netlab.multihost",    # hosts: placement of nodes on machines (used by up --etcd)
]


# The modules that define a teardown hook, in FEATURE_MODULES order: `netlab down` imports
# only these, not every feature (tests/test_features.py checks the list against the
# modules). A feature that adds a teardown hook adds its module here.
TEARDOWN_MODULES: list[str] = ["netlab.services", "netlab.dns"]


def _hooks(name: str) -> list[Callable]:
    hooks = []
    for module_name in TEARDOWN_MODULES if name == "teardown" else FEATURE_MODULES:
        module = importlib.import_module(module_name)
        hook = getattr(module, name, None)
        if hook is not None:
            hooks.append(hook)
    return hooks


def hooks(name: str) -> list[Callable]:
    """Hooks of one name: after_up(ctx, plan, topo), teardown(lab, plan, extras),
    status(entry, state)."""
    return _hooks(name)


def validators() -> list[Callable]:
    return _hooks("validate")


def compilers() -> list[Callable]:
    return _hooks("compile")
