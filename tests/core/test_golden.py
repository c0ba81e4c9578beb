"""Golden cases of every feature, one runner: tests/<feature>/golden/<case>.yml ->
<case>.plan (the compiled plan), tests/<feature>/errors/<case>.yml -> <case>.txt (the
located problems, one a line). A case costs no Python. Pure: no root.

Regenerate after an intended change with NETLAB_REGEN=1 and review the diff.
"""
from __future__ import annotations

import os
import pathlib

import pytest

from netlab.core.compiler import compile_topology
from netlab.core.errors import TopologyError
from netlab.core.loader import load_file

ROOT = pathlib.Path(__file__).parents[2]
TESTS = ROOT / "tests"
PLANS = sorted(p for p in TESTS.glob("*/golden/*.yml") if p.with_suffix(".plan").exists())
ERRORS = sorted(TESTS.glob("*/errors/*.yml"))


def _name(path: pathlib.Path) -> str:
    return f"{path.parts[-3]}/{path.stem}"


def test_every_feature_has_its_cases_beside_its_tests():
    assert {p.parts[-3] for p in PLANS} >= {"core", "dns", "nft", "tunnels", "containers", "services"}
    assert {p.parts[-3] for p in ERRORS} >= {"core", "dns", "nft", "tunnels", "faults", "multihost"}


@pytest.mark.parametrize("case", PLANS, ids=_name)
def test_plan_matches_golden(case):
    plan, _ = compile_topology(load_file(str(case)))
    expected = case.with_suffix(".plan")
    if os.environ.get("NETLAB_REGEN") == "1":
        expected.write_text(plan.render())
    assert plan.render() == expected.read_text()


@pytest.mark.parametrize("case", ERRORS, ids=_name)
def test_error_case_gives_exact_messages(case, monkeypatch):
    monkeypatch.chdir(ROOT)
    expected = case.with_suffix(".txt")
    with pytest.raises(TopologyError) as info:
        load_file(str(case.relative_to(ROOT)))
    if os.environ.get("NETLAB_REGEN") == "1":
        expected.write_text("\n".join(info.value.problems) + "\n")
    assert info.value.problems == expected.read_text().splitlines()
