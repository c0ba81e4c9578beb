"""The checks: and services: sections: parsing and located errors (pure, no root)."""
from __future__ import annotations

import pytest

from netlab.checks.spec import millis, parse_checks, percent, split_target
from netlab.core.compiler import compile_topology
from netlab.core.errors import Problems, TopologyError
from netlab.core.loader import load_text

from .conftest import lab_text

NODES = {"pc1", "pc2", "isp", "gw"}


def errors(checks) -> list[str]:
    problems = Problems()
    parse_checks(checks, NODES, problems)
    return problems.lines


def test_every_type_parses():
    checks = [
        {"arp": {"from": "pc1", "to": "pc2", "mac": "02:00:00:00:00:01"}},
        {"ping": {"from": "pc1", "to": "isp", "max_loss": "20%", "max_rtt": "50ms"}},
        {"path": {"from": "pc1", "to": "isp", "via": ["gw"]}},
        {"mtu": {"from": "pc1", "to": "isp", "size": 1450}},
        {"tcp": {"from": "pc1", "to": "isp:9000"}},
        {"tcp": {"from": "isp", "to": "pc1:22", "expect": "blocked"}},
        {"udp": {"from": "pc1", "to": "isp:7"}},
        {"dns": {"from": "pc1", "name": "web", "expect": "10.20.0.2"}},
        {"dns": {"from": "pc1", "name": "nope", "expect": "nxdomain"}},
        {"dns": {"from": "pc1", "name": "_rdzv._tcp", "type": "srv", "expect": "master:29500"}},
        {"http": {"from": "pc1", "url": "http://isp/", "expect": 200}},
        {"nat": {"from": "pc1", "to": "isp:9000", "seen_as": "198.51.100.2"}},
        {"nat": {"from": "pc1", "to": "isp:7/udp", "seen_as": "gw"}},
    ]
    problems = Problems()
    specs = parse_checks(checks, NODES, problems)
    assert not problems.lines
    specs.pop(9)
    assert [s.layer for s in specs] == ["L2", "L3", "L3", "L3", "L4", "L4", "L4", "L7", "L7", "L7", "NAT", "NAT"]
    ping = specs[1]
    assert ping.opts["max_loss"] == pytest.approx(0.2) and ping.opts["max_rtt"] == 50
    assert ping.opts["count"] == 20
    assert specs[5].blocked and specs[5].port == 22
    assert specs[7].expect == ["10.20.0.2"]
    assert specs[9].port == 80 and specs[9].opts["path"] == "/"
    assert specs[11].proto == "udp"
    assert specs[4].label == "tcp pc1 -> isp:9000"


@pytest.mark.parametrize("check, message", [
    ({"ping": {"from": "pc9", "to": "isp"}}, "checks[0].ping.from: unknown node 'pc9'"),
    ({"ping": {"from": "pc1"}}, "checks[0].ping.to: required"),
    ({"ping": {"from": "pc1", "to": "isp", "max_loss": "lots"}},
     "checks[0].ping.max_loss: must be a percentage like 20%, not 'lots'"),
    ({"ping": {"from": "pc1", "to": "isp", "colour": 1}}, "checks[0].ping.colour: unknown field"),
    ({"tcp": {"from": "pc1", "to": "isp"}}, "checks[0].tcp.to: 'isp' needs a port, like \"isp:80\""),
    ({"tcp": {"from": "pc1", "to": "isp:99999"}}, "checks[0].tcp.to: '99999' is not a port (1-65535)"),
    ({"tcp": {"from": "pc1", "to": "web2:80"}}, "checks[0].tcp.to: unknown node 'web2'"),
    ({"udp": {"from": "pc1", "to": "isp:7", "expect": "maybe"}},
     "checks[0].udp.expect: must be reachable or blocked, not 'maybe'"),
    ({"dns": {"from": "pc1", "name": "web", "expect": "ten"}},
     "checks[0].dns.expect: must be an IPv4 address, a list of them, nxdomain or blocked, not 'ten'"),
    ({"http": {"from": "pc1", "url": "ftp://isp/"}},
     "checks[0].http.url: 'ftp://isp/' must be an http:// URL naming a node or an address"),
    ({"mtu": {"from": "pc1", "to": "isp", "size": 20}},
     "checks[0].mtu.size: must be a packet size from 68 to 65535, not 20"),
    ({"path": {"from": "pc1", "to": "isp", "via": ["gw", "r9"]}}, "checks[0].path.via[1]: unknown node 'r9'"),
    ({"nat": {"from": "pc1", "to": "isp:9000"}}, "checks[0].nat.seen_as: required"),
    ({"traceroute": {"from": "pc1"}}, "checks[0].traceroute: unknown check type"),
    ({"dns": {"from": "pc1", "name": "x", "type": "HINFO"}}, "checks[0].dns.type: 'HINFO' is not one of A, AAAA"),
    ({"dns": {"from": "pc1", "name": "x", "type": "SRV", "expect": {"a": 1}}},
     "checks[0].dns.expect: must be the SRV record's value (or a list), nxdomain or blocked"),
    ("ping pc1 isp", "checks[0]: a check is one mapping like {ping: {from: a, to: b}}"),
])
def test_located_errors(check, message):
    lines = errors([check])
    assert any(line.startswith(message) for line in lines), lines


def test_units():
    assert percent("20%") == pytest.approx(0.2) and percent(5) == pytest.approx(0.05)
    assert percent("150%") is None
    assert millis("50ms") == 50 and millis("1s") == 1000 and millis(3) == 3 and millis("x") is None
    assert split_target("isp:7/udp") == ("isp", 7, "udp")
    assert split_target("[2001:db8::1]:80") == ("2001:db8::1", 80, None)


def test_file_errors_through_the_loader():
    text = lab_text("ck-bad", "checks:\n  - {ping: {from: pc1, to: nowhere}}\n")
    text = text.replace("services: [http:80, tcp:9000, udp:7]", "services: [http:80, ftp:21, tcp:80]")
    with pytest.raises(TopologyError) as e:
        load_text(text)
    assert sorted(e.value.problems) == [
        "checks[0].ping.to: unknown node 'nowhere'",
        "nodes.isp.services[1]: 'ftp:21' must be proto:port with proto http, tcp or udp and port 1-65535 (like http:80)",
        "nodes.isp.services[2]: port 80/tcp is already served by services[0]",
    ]


def test_services_compile_to_one_step_per_node():
    plan, _ = compile_topology(load_text(lab_text("ck-plan")))
    lines = [line.strip() for line in plan.render().splitlines() if line.strip().startswith("service")]
    assert lines == ["service ck-plan-isp              responders http:80 tcp:9000 udp:7"]


def test_default_checks_from_the_plan():
    from netlab.checks.defaults import default_checks
    from netlab.checks.labinfo import LabView
    text = lab_text("ck-dfl") + "links:\n  - endpoints: [gw:eth9, isp:eth9]\n    subnet: 192.0.2.0/30\n"
    plan, _ = compile_topology(load_text(text))
    view = LabView.from_meta("ck-dfl", plan.meta)
    labels = [s.label for s in default_checks(view)]
    pings = [label for label in labels if label.startswith("ping")]
    assert pings == ["ping gw -> isp", "ping isp -> gw", "ping pc1 -> gw", "ping pc2 -> gw"]
    if view.dns_server("pc1"):                 # the lab DNS feature is on by default
        assert "dns pc1 -> pc2" in labels
    assert view.address("pc1", "isp") == "198.51.100.1" and view.address("gw", "isp") == "198.51.100.1"
    assert view.name_of("10.10.0.1") == "gw"
