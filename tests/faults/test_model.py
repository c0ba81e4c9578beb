"""Pure tests of fault values, scenarios and their validation (no root needed)."""
from __future__ import annotations

import pytest

from netlab.core.errors import Problems, TopologyError
from netlab.core.loader import load_text
from netlab.faults.model import (
    BadValue,
    FaultSet,
    Impairment,
    fmt_rate,
    fmt_time,
    parse_percent,
    parse_rate,
    parse_time,
)
from netlab.faults.scenario import Down, Impair, Partition, parse_scenario, perform

LAB = """
name: ftm
networks: {lan: {subnet: 10.70.0.0/24}}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan]}
links:
  - endpoints: [a:p0, b:p0]
faults:
%s
"""
IFACES = {"a": ["eth0", "p0"], "b": ["eth0", "p0"], "c": []}


@pytest.mark.parametrize("text,value", [("10%", 10.0), ("0.1%", 0.1), (5, 5.0), ("100%", 100.0), (".5%", 0.5)])
def test_percent(text, value):
    assert parse_percent(text) == value


@pytest.mark.parametrize("text", ["0%", "101%", "-1%", "ten", True, None, "5%%"])
def test_bad_percent(text):
    with pytest.raises(BadValue):
        parse_percent(text)


@pytest.mark.parametrize("text,ms", [("50ms", 50.0), ("1s", 1000.0), ("200us", 0.2), (20, 20.0), ("1.5ms", 1.5)])
def test_time(text, ms):
    assert parse_time(text) == ms


@pytest.mark.parametrize("text,bits", [("10mbit", 10_000_000), ("500kbit", 500_000), ("1gbit", 10**9),
                                       ("1mbps", 8_000_000), ("2Mbit", 2_000_000), (64000, 64000)])
def test_rate(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["10", "100gbit", "fast", "10 parsecs"])
def test_bad_rate(text):
    with pytest.raises(BadValue):
        parse_rate(text)


def test_formats_round_trip():
    assert fmt_rate(2_000_000) == "2mbit" and fmt_rate(1_500_000) == "1.5mbit" and fmt_rate(8000) == "8kbit"
    assert fmt_time(50.0) == "50ms" and fmt_time(0.2) == "200us" and fmt_time(2000.0) == "2s"
    imp = Impairment(loss=10.0, delay=50.0, rate=2_000_000)
    assert imp.describe() == "loss 10% delay 50ms rate 2mbit"


def test_impairment_parse_errors_name_the_option():
    problems = Problems()
    assert Impairment.parse({"loss": "lots", "jitter": "5ms"}, "", problems) is None
    assert problems.lines == ["--loss: must be a percentage like 5%, not 'lots'",
                              "--jitter: jitter needs a delay as well"]
    problems = Problems()
    assert Impairment.parse({}, "", problems) is None
    assert "no impairment given" in problems.lines[0]


def test_scenario_actions_and_perform():
    problems = Problems()
    actions = parse_scenario("mix", [
        {"link": "a:eth0", "loss": "5%", "direction": "both"},
        {"node": "b", "rate": "1mbit"},
        {"down": ["a:p0"]},
        {"partition": [["a"], ["b"]]},
    ], IFACES, problems)
    assert not problems, problems.lines
    assert actions[0] == Impair(("a:eth0",), "both", Impairment(loss=5.0))
    assert actions[1] == Impair(("b:eth0", "b:p0"), "egress", Impairment(rate=1_000_000))
    assert actions[2] == Down(("a:p0",))
    assert actions[3] == Partition((("a",), ("b",)))
    faults = FaultSet()
    perform(faults, actions)
    assert set(faults.links["a:eth0"]) == {"egress", "ingress"}
    assert faults.down == ["a:p0"] and faults.partitions == [[["a"], ["b"]]]
    again = FaultSet.from_dict(faults.to_dict())
    assert again.to_dict() == faults.to_dict()
    assert again.lines()[0] == "a:eth0 egress loss 5%"


def test_keep_only_drops_faults_on_vanished_interfaces():
    faults = FaultSet()
    faults.set_link("a:p0", "egress", Impairment(loss=1.0))
    faults.set_down("b:p0", True)
    faults.add_partition([["a"], ["c"]])
    dropped = faults.keep_only({"a": ["eth0"], "b": ["eth0", "p0"]})
    assert dropped == ["a:p0", "partition a | c"]
    assert faults.down == ["b:p0"] and not faults.links and not faults.partitions


def test_file_scenarios_load():
    topo = load_text(LAB % "  wan:\n    - {link: 'a:p0', loss: 10%, delay: 50ms, jitter: 5ms, rate: 2mbit}\n"
                           "  split:\n    - {partition: [[a], [b]]}\n")
    assert set(topo.sections["faults"]) == {"wan", "split"}


@pytest.mark.parametrize("body,message", [
    ("  x:\n    - {link: 'a:eth7', loss: 5%}", "faults.x[0].link: node a has no interface 'eth7' (it has: eth0, p0)"),
    ("  x:\n    - {link: 'z:eth0', loss: 5%}", "faults.x[0].link: unknown node 'z'"),
    ("  x:\n    - {link: 'a:eth0', loss: 500%}", "faults.x[0].loss: must be more than 0% and at most 100%, not '500%'"),
    ("  x:\n    - {link: 'a:eth0', jitter: 5ms}", "faults.x[0].jitter: jitter needs a delay as well"),
    ("  x:\n    - {link: 'a:eth0', loss: 5%, direction: up}", "faults.x[0].direction: must be egress, ingress or both, not 'up'"),
    ("  x:\n    - {link: 'a:eth0', los: 5%}", "faults.x[0].los: unknown field"),
    ("  x:\n    - {partition: [[a], [a, b]]}", "faults.x[0].partition[1]: node a is in two groups"),
    ("  x:\n    - {partition: [[a]]}", "faults.x[0].partition: a partition is a list of two or more node groups"),
    ("  x:\n    - {down: 'b:eth9'}", "faults.x[0].down: node b has no interface 'eth9'"),
    ("  x: []", "faults.x: a scenario is a non-empty list of faults"),
    ("  x:\n    - {node: a, link: 'a:eth0', loss: 1%}", "faults.x[0]: name either a link (NODE:IF) or a node"),
])
def test_bad_scenarios_are_located(body, message):
    with pytest.raises(TopologyError) as err:
        load_text(LAB % body)
    assert any(line.startswith(message) for line in err.value.problems), err.value.problems
