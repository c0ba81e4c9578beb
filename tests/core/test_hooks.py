"""The feature registry: declarations are checked when it is built (unknown hooks, keys
claimed twice, `after` naming no feature, cycles), hooks against their specs when they are
resolved, and a feature from outside netlab goes through load and compile with no core
change. Pure: no root."""
from __future__ import annotations

import subprocess
import sys

import pytest

from netlab import features
from netlab.core import hooks
from netlab.core.compiler import compile_topology
from netlab.core.errors import TopologyError
from netlab.core.hooks import Feature, Registry, RegistryError
from netlab.core.loader import load_text


def test_every_declared_hook_command_runtime_and_step_module_resolves():
    registry = Registry(features.FEATURES)
    registry.verify()
    assert registry.names[:4] == ["checks", "services", "dns", "nft"]
    assert registry.command_names() == ["check", "rules", "fault", "agent", "capture", "graph"]


def test_every_feature_step_type_names_the_module_that_defines_it():
    from netlab.core import plan
    registry = hooks.registry()
    registry.import_kernels()
    defined = {t: cls.__module__ for t, cls in plan.STEP_TYPES.items() if not cls.__module__.startswith("netlab.core.")}
    assert {t: registry.step_module(t) for t in defined} == defined


def test_an_unknown_hook_is_refused_with_the_valid_names():
    with pytest.raises(RegistryError, match=r"feature toy: unknown hook 'compil' \(hooks: after_up, check_sources, compile,"):
        Registry([Feature("toy", hooks={"compil": "x:y"})])


def test_a_key_or_step_type_claimed_twice_is_refused():
    with pytest.raises(RegistryError, match="features a and b both claim key 'node.nat'"):
        Registry([Feature("a", owns={"node": {"nat": "any"}}), Feature("b", owns={"node": {"nat": "any"}})])
    with pytest.raises(RegistryError, match="features a and b both claim step type 'nft'"):
        Registry([Feature("a", steps={"nft": "m"}), Feature("b", steps={"nft": "m"})])


def test_after_orders_features_and_refuses_unknown_names_and_cycles():
    ordered = Registry([Feature("nft", after=("dns",)), Feature("dns"), Feature("checks")])
    assert ordered.names == ["dns", "nft", "checks"]
    with pytest.raises(RegistryError, match="after names unknown feature 'dn' .features: dns, nft."):
        Registry([Feature("nft", after=("dn",)), Feature("dns")])
    with pytest.raises(RegistryError, match="cycle through `after`: a -> b"):
        Registry([Feature("a", after=("b",)), Feature("b", after=("a",))])


def test_a_hook_with_other_parameters_is_refused_when_resolved():
    registry = Registry([Feature("toy", hooks={"teardown": "netlab.core.state:remove"})])
    with pytest.raises(RegistryError, match=r"feature toy: hook teardown\('lab',\) must take \(lab, plan, extras\)"):
        registry.hooks("teardown")


def test_a_provided_hook_without_provider_names_the_hook():
    with pytest.raises(RegistryError, match="no feature provides the run_checks hook"):
        Registry([]).provider("run_checks")


@pytest.fixture
def with_toy_feature():
    from tests.core.toyfeature import FEATURE as TOY
    previous = hooks.install(Registry(features.FEATURES + [TOY]))
    yield
    hooks.install(previous)


def test_a_feature_outside_netlab_loads_validates_and_compiles(with_toy_feature):
    topo = load_text("name: toy\nnodes:\n  a: {toy: [hello, world]}\nbanner: hi\n")
    assert topo.specs["toy"] == {"a": ("hello", "world")}      # what validate returned
    plan, _ = compile_topology(topo)
    assert [s.describe() for s in plan.steps if s.type == "toy"] == ["toy     toy-a hello, world (hi)"]
    assert plan.meta["toy"] == {"nodes": ["a"]}
    with pytest.raises(TopologyError) as info:        # the shape its declaration gives
        load_text("name: toy\nnodes:\n  a: {toy: 3}\n")
    assert info.value.problems == ["nodes.a.toy: must be a list, not a number"]
    with pytest.raises(TopologyError) as info:        # its own validate hook
        load_text("name: toy\nnodes:\n  a: {toy: [x]}\nbanner: [x]\n")
    assert info.value.problems == ["banner: must be text, not a list"]


def test_the_spec_validate_parsed_is_kept_for_compile():
    topo = load_text("name: t\nnetworks: {lan: {subnet: 10.0.0.0/24}}\n"
                     "nodes:\n  gw: {kind: router, networks: [lan], firewall: {policy: drop}}\n  pc: {networks: [lan]}\n")
    assert list(topo.specs["nft"]) == ["gw"] and topo.specs["nft"]["gw"].firewall.policies


def test_without_the_toy_feature_its_keys_are_unknown():
    with pytest.raises(TopologyError) as info:
        load_text("name: toy\nnodes:\n  a: {toy: [x]}\n")
    assert info.value.problems[0].startswith("nodes.a.toy: unknown field (expected one of: binds, cap_add,")


def test_down_path_imports_neither_pyroute2_nor_every_feature():
    """What `netlab down` of a lab with DNS and responders loads: the CLI, the lab
    operations, the state's step types and the teardown hooks; no netlink library, no
    compiler, no YAML loader, no firewall or tunnel code."""
    code = ("import sys; from netlab import cli; from netlab.core import hooks, lab; "
            "import netlab.dns.server, netlab.dns.resolv, netlab.services.kernel; "
            "hooks.registry().hooks('teardown'); "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    unwanted = {"pyroute2", "docker", "yaml", "netlab.core.compiler", "netlab.core.loader", "netlab.nft.spec",
                "netlab.tunnels.spec", "netlab.checks", "netlab.faults", "netlab.core.netns"}
    assert not loaded & unwanted, sorted(loaded & unwanted)
