"""`netlab check`: exit codes, the table, --json, --junit, --all-pairs, default checks."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from netlab.core.cli import main

from .conftest import lab_text

pytestmark = pytest.mark.kernel

CHECKS = """checks:
  - {arp: {from: pc1, to: pc2}}
  - {ping: {from: pc1, to: isp}}
  - {tcp: {from: pc1, to: "isp:9000"}}
  - {http: {from: pc1, url: "http://isp/"}}
  - {nat: {from: pc1, to: "isp:9000", seen_as: pc1}}
"""
FAILING = """  - {ping: {from: pc1, to: lone, timeout: 0.3}}
  - {tcp: {from: pc1, to: "isp:9000", expect: blocked}}
"""


def check(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return str(path)


def test_passing_file_exit_0_with_table_json_and_junit(deploy, tmp_path):
    path = write(tmp_path, "ck-cli", lab_text("ck-cli", CHECKS))
    deploy(path)
    result = check(path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "L2" and "L3" in lines and "L4" in lines and "L7" in lines and "NAT" in lines
    assert lines[-1].startswith("lab ck-cli: 5 checks, 5 passed, 0 failed in ")
    # by lab name: the checks come from the file recorded in the state
    junit = tmp_path / "out.xml"
    result = check("ck-cli", "--json", "--junit", str(junit))
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True and len(data["checks"]) == 5
    assert data["checks"][0] == {**data["checks"][0], "layer": "L2", "type": "arp", "from": "pc1", "to": "pc2",
                                 "ok": True, "expect": "reachable"}
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert sorted(s.get("name") for s in root) == ["ck-cli.L2", "ck-cli.L3", "ck-cli.L4", "ck-cli.L7", "ck-cli.NAT"]
    assert not root.findall(".//failure")


def test_failing_checks_exit_1_and_say_where(deploy, tmp_path):
    path = write(tmp_path, "ck-clif", lab_text("ck-clif", CHECKS + FAILING))
    deploy(path)
    junit = tmp_path / "out.xml"
    result = check(path, "--wait", "0.5", "--junit", str(junit))
    assert result.exit_code == 1
    assert "FAIL  ping pc1 -> lone" in result.output and "ICMP network unreachable from gw" in result.output
    assert "FAIL  tcp pc1 -> isp:9000 (blocked)" in result.output and "expected blocked, but it got through" in result.output
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert sorted(f.text.split(":")[0] for f in failures) == ["checks[5].ping", "checks[6].tcp"]
    data = json.loads(check(path, "--wait", "0", "--json").output)
    assert data["ok"] is False and [c["ok"] for c in data["checks"]] == [True] * 5 + [False] * 2


def test_defaults_when_none_declared(deploy, tmp_path):
    path = write(tmp_path, "ck-dflt", lab_text("ck-dflt"))
    deploy(path)
    result = check("ck-dflt", "--json")
    data = json.loads(result.output)
    names = [c["name"] for c in data["checks"]]
    assert "ping pc1 -> gw" in names and "ping isp -> gw" in names and "ping gw -> isp" not in names
    # lone's segment has no gateway and no neighbour: nothing to ping there
    assert not any(n.startswith("ping lone") for n in names)
    if any(c["type"] == "dns" for c in data["checks"]):            # the lab's DNS is deployed
        assert "dns pc1 -> pc2" in names
    assert result.exit_code == 0, result.output


def test_all_pairs_matrix(deploy, tmp_path):
    path = write(tmp_path, "ck-pairs", lab_text("ck-pairs"))
    deploy(path)
    result = check("ck-pairs", "--all-pairs", "--wait", "0.5")
    assert result.exit_code == 1                 # lone is reachable from nobody
    assert result.output.startswith("all pairs: 12/20 reachable")
    assert "FAIL  pc1 -> lone: ICMP network unreachable from gw" in result.output
    data = json.loads(check("ck-pairs", "--all-pairs", "--wait", "0.5", "--json").output)
    assert data["all_pairs"]["pairs"] == 20 and data["all_pairs"]["reachable"] == 12


def test_not_deployed_and_bad_file(tmp_path):
    assert check("ck-nothere").exit_code == 1
    bad = write(tmp_path, "ck-bad", lab_text("ck-bad", "checks:\n  - {ping: {from: pc1, to: mars}}\n"))
    result = check(bad)
    assert result.exit_code == 2
    assert "checks[0].ping.to: unknown node 'mars'" in result.output
