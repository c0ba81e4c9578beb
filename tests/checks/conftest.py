"""Shared pieces for the checks tests: the test lab and helpers to run checks on it."""
from __future__ import annotations

import pytest

from netlab.checks.labinfo import LabView
from netlab.checks.runner import run_checks
from netlab.checks.spec import parse_checks
from netlab.core.errors import Problems
from netlab.core.state import LabState

# pc1, pc2 --lan-- gw --wan-- isp (responders); lone on a segment nobody routes to
LAB = """
name: {name}
networks:
  lan: {{subnet: 10.10.0.0/24}}
  wan: {{subnet: 198.51.100.0/24}}
  iso: {{subnet: 10.99.0.0/24}}
nodes:
  gw: {{kind: router, networks: {{lan: 10.10.0.1, wan: 198.51.100.2}}}}
  pc1: {{networks: {{lan: 10.10.0.11}}}}
  pc2: {{networks: {{lan: 10.10.0.12}}}}
  lone: {{networks: [iso]}}
  isp:
    networks: {{wan: 198.51.100.1}}
    services: [http:80, tcp:9000, udp:7]
"""


def lab_text(name: str, extra: str = "") -> str:
    return LAB.format(name=name) + extra


def run(lab: str, checks: list, wait: float = 0.0, timeout: float = 0.5):
    """Parse `checks` (the YAML list as data), run them on the deployed lab, return results."""
    view = LabView.from_meta(lab, LabState.load(lab).plan.meta)
    problems = Problems()
    for c in checks:
        body = next(iter(c.values()))
        body.setdefault("timeout", timeout)
    specs = parse_checks(checks, set(view.ns), problems)
    assert not problems, problems.lines
    return run_checks(specs, view, wait=wait)


def one(lab: str, check: dict, **kw):
    (result,) = run(lab, [check], **kw)
    return result


@pytest.fixture
def lab(deploy):
    """The standard test lab, deployed (and always removed)."""
    def _make(name: str, extra: str = ""):
        topo = deploy(lab_text(name, extra))
        return topo.name
    return _make
