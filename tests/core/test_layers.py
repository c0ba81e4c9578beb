"""The layout holds: the core imports no feature, a feature imports only the core and
itself, no import cycle, and every module imports alone in a fresh interpreter (so no
module works only because another happened to be imported first). Pure: no root."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.core import import_graph

ROOT = import_graph.ROOT


def test_the_core_imports_no_feature_and_no_feature_imports_another():
    assert import_graph.breaches(import_graph.graph()) == []


def test_no_import_cycle():
    assert import_graph.cycles(import_graph.graph()) == []


def test_the_cycle_finder_finds_a_cycle_and_the_layer_check_a_breach():
    g = {"netlab.core.a": {"netlab.nft.b"}, "netlab.nft.b": {"netlab.core.a"}, "netlab.dns.c": {"netlab.nft.b"}}
    assert import_graph.cycles(g) == [["netlab.core.a", "netlab.nft.b"]]
    assert [b.split(" (")[0] for b in import_graph.breaches(g)] == [
        "netlab.core.a imports netlab.nft.b", "netlab.dns.c imports netlab.nft.b"]


def test_the_import_graph_script_passes():
    done = subprocess.run([sys.executable, "-m", "tests.core.import_graph"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problems" in done.stdout


def _import_alone(module: str) -> str | None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else f"{module}: {done.stderr.strip().splitlines()[-1]}"


def test_every_module_imports_alone():
    names = [m for m in import_graph.modules() if m != "netlab.__main__"]   # that one runs the CLI
    with ThreadPoolExecutor(4) as pool:
        failures = [f for f in pool.map(_import_alone, names) if f]
    assert failures == []
