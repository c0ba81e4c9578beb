"""Reports for people and machines (pure: results made by hand)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from netlab.checks import report
from netlab.checks.matrix import Matrix
from netlab.checks.result import Outcome, Result, judge
from netlab.checks.spec import parse_checks
from netlab.core.errors import Problems


def results() -> list[Result]:
    specs = parse_checks([{"tcp": {"from": "a", "to": "b:22", "expect": "blocked"}},
                          {"arp": {"from": "a", "to": "b"}}], {"a", "b"}, Problems())
    return [Result(specs[0], False, "expected blocked, but it got through: connected", 0.01, 3),
            Result(specs[1], True, "10.0.0.2 is-at 02:00:00:00:00:02 on eth0", 0.002, 1)]


def test_table_groups_by_layer_in_order():
    text = report.table("ck", results(), 0.5)
    lines = text.splitlines()
    assert lines[0] == "L2" and lines[2] == "L4"
    assert lines[3].startswith("  FAIL  tcp a -> b:22 (blocked)  expected blocked")
    assert lines[-1] == "lab ck: 2 checks, 1 passed, 1 failed in 0.50s"


def test_json_and_junit():
    data = json.loads(report.to_json("ck", results(), 0.5))
    assert data["ok"] is False and data["checks"][0]["expect"] == "blocked"
    assert data["checks"][0]["where"] == "checks[0].tcp" and data["checks"][0]["attempts"] == 3
    root = ET.fromstring(report.to_junit("ck", results()))
    (failure,) = root.findall(".//failure")
    assert failure.get("type") == "tcp" and failure.text.startswith("checks[0].tcp: expected blocked")


def test_matrix_text():
    m = Matrix(["a", "b"], {("a", "b", 4): 0.001}, {("b", "a", 4): "timeout"}, 0.2)
    text = report.matrix_text(m)
    assert text.splitlines()[0] == "all pairs: 1/2 reachable in 0.20s"
    assert "  FAIL  b -> a: timeout" in text
    root = ET.fromstring(report.to_junit("ck", [], m))
    assert root.find("testsuite").get("failures") == "1"


def test_matrix_of_both_families():
    ok = {("a", "b", 4): 0.001, ("a", "b", 6): 0.001, ("b", "a", 4): 0.001, ("a", "c", 6): 0.001}
    failed = {("b", "a", 6): "timeout", ("c", "a", 0): "no address"}
    m = Matrix(["a", "b", "c"], ok, failed, 0.3, rounds=2, notes=["overflowed"])
    text = report.matrix_text(m).splitlines()
    assert text[0] == "all pairs: 2/4 reachable (IPv4 2/2, IPv6 2/3) in 0.30s in 2 rounds"
    assert text[3].rstrip() == "b 1 4 -" and "  FAIL  b -> a (IPv6): timeout" in text
    assert "  FAIL  c -> a: no address" in text and text[-1] == "  note: overflowed"
    data = json.loads(report.to_json("ck", [], 0.3, m))["all_pairs"]
    assert data["families"] == {"ipv4": {"pairs": 2, "reachable": 2}, "ipv6": {"pairs": 3, "reachable": 2}}
    assert {"from": "b", "to": "a", "ip": 6, "detail": "timeout"} in data["failed"]


def test_judge():
    spec = results()[0].spec
    assert judge(spec, Outcome.blocked("timeout")) == (True, "blocked: timeout")
    assert judge(spec, Outcome.cannot("no DNS"))[0] is False
