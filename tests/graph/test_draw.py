"""`netlab graph`: golden drawings (tests/graph/golden/<case>.yml -> <case>.mmd, <case>.dot),
the command line, and an SVG through Graphviz when it is installed. Pure: no root.

Regenerate after an intended change with NETLAB_REGEN=1 and review the diff.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from netlab.core.loader import load_file
from netlab.graph import draw as graph

GOLDEN = pathlib.Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yml"))


def _golden(path: pathlib.Path, text: str) -> str:
    if os.environ.get("NETLAB_REGEN") == "1":
        path.write_text(text)
    return path.read_text()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt,ext", [("mermaid", "mmd"), ("dot", "dot")])
def test_drawing_matches_golden(case, fmt, ext):
    text = graph.render(load_file(str(GOLDEN / f"{case}.yml")), fmt)
    assert text == _golden(GOLDEN / f"{case}.{ext}", text)


def test_drawing_has_every_node_network_link_and_tunnel():
    topo = load_file(str(GOLDEN / "overlay.yml"))
    text = graph.render(topo, "mermaid")
    for name in list(topo.nodes) + list(topo.networks):
        assert f'"{name}<br/>' in text
    assert text.count(" -.-|") == len(topo.sections["tunnels"])          # tunnels are dashed
    assert "site-a gre-1 172.16.9.1" in text                 # the tunnel's addresses


def test_dual_stack_drawing_shows_both_families():
    example = pathlib.Path(__file__).parents[2] / "topologies" / "dualstack.yml"
    text = graph.render(load_file(str(example)), "mermaid")
    assert "lan-a<br/>10.71.1.0/24<br/>2001:db8:71:1::/64" in text     # a network's subnets
    assert "v6only<br/>2001:db8:71:3::/64" in text
    assert "eth0 10.71.1.2 2001:db8:71:1::2" in text                     # pc1's interface
    assert '"eth0 2001:db8:71:3::2"' in text                             # the IPv6-only sensor
    assert "r1 eth1 10.71.12.1 2001:db8:71:12::<br/>" in text            # a dual-stack link


def _netlab(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netlab", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_cli_prints_mermaid_by_default_and_dot_on_request():
    path = str(GOLDEN / "routed.yml")
    done = _netlab("graph", path)
    assert done.returncode == 0 and done.stdout == (GOLDEN / "routed.mmd").read_text()
    done = _netlab("graph", path, "--format", "dot")
    assert done.returncode == 0 and done.stdout == (GOLDEN / "routed.dot").read_text()


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: plg-bad\nnodes:\n  a: {networks: [nope]}\n")
    done = _netlab("graph", str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "nope" in done.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_cli_writes_svg_with_graphviz(tmp_path):
    out = tmp_path / "routed.svg"
    done = _netlab("graph", str(GOLDEN / "routed.yml"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "192.0.2.1" in svg


def test_cli_svg_without_graphviz_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))                # no dot on this PATH
    done = _netlab("graph", str(GOLDEN / "routed.yml"), "-o", str(tmp_path / "x.svg"))
    assert done.returncode == 1 and "Graphviz is not installed" in done.stderr
