"""The feature registry: what `netlab down` imports is declared, and the declaration matches
the modules. Pure: no root."""
from __future__ import annotations

import importlib
import subprocess
import sys

from netlab import backends, features, plan


def test_teardown_modules_are_exactly_those_with_a_teardown_hook_in_order():
    having = [m for m in features.FEATURE_MODULES if hasattr(importlib.import_module(m), "teardown")]
    assert features.TEARDOWN_MODULES == having, (
        "a feature module with a teardown hook must be listed in features.TEARDOWN_MODULES")


def test_down_path_imports_neither_pyroute2_nor_every_feature():
    """What `netlab down` of a lab with DNS and responders loads: the CLI, the lab
    operations, the state's step types and the teardown hooks; no netlink library, no
    compiler, no YAML loader, no firewall or tunnel code."""
    code = ("import sys; from netlab import cli, lab, features; "
            "import netlab.backends.dns, netlab.backends.resolv, netlab.backends.services; "
            "features.hooks('teardown'); "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    unwanted = {"pyroute2", "docker", "yaml", "netlab.compiler", "netlab.loader", "netlab.nft",
                "netlab.tunnels", "netlab.checks", "netlab.faults", "netlab.backends.netns"}
    assert not loaded & unwanted, sorted(loaded & unwanted)


def test_every_feature_step_type_names_the_module_that_defines_it():
    backends.register_all()
    defined = {t: cls.__module__ for t, cls in plan.STEP_TYPES.items() if cls.__module__ != "netlab.plan"}
    assert backends.STEP_MODULES == defined
