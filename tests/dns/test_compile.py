"""The DNS feature's pure side, no root: where the server sits, what nodes are told, what
the zone and dnsmasq configuration say. Whole plans are golden files
(tests/dns/golden/dns_*.yml); error messages are tests/dns/errors/dns_*.yml.
"""
from __future__ import annotations

import json

import pytest

from netlab.core.compiler import compile_topology
from netlab.core.errors import TopologyError
from netlab.core.loader import load_text
from netlab.dns import compile as dns
from netlab.dns import spec as dns_spec
from netlab.dns.resolv import DnsClient, client_files
from netlab.dns.server import DnsListen, DnsServer, DnsZone, server_conf


def compiled(text: str):
    plan, _ = compile_topology(load_text(text))
    return plan, {type(s).__name__: [x for x in plan.steps if type(x) is type(s)] for s in plan.steps}


LAN = """
name: dn-p1
networks:
  lan: {subnet: 10.0.0.0/29}
nodes:
  a: {networks: [lan]}
  b: {networks: {lan: 10.0.0.6}}
"""


def test_the_server_takes_the_highest_free_address():
    plan, steps = compiled(LAN)
    assert [s.cidr for s in steps["DnsListen"]] == ["10.0.0.5/29"]     # .6 is b's
    assert plan.meta["dns"]["servers"] == {"lan": "10.0.0.5"}
    assert plan.meta["dns"]["clients"] == {"a": ["10.0.0.5"], "b": ["10.0.0.5"]}


def test_a_full_subnet_is_a_located_error():
    text = LAN.replace("b: {networks: {lan: 10.0.0.6}}", "\n".join(
        f"  n{i}: {{networks: [lan]}}" for i in range(5)).lstrip())
    with pytest.raises(TopologyError) as err:
        load_text(text)
    assert err.value.problems == ["networks.lan.subnet: 10.0.0.0/29 is full (6 nodes): the lab's DNS "
                                  "server needs one free address on it; use a larger subnet, or `dns: false`"]


def test_dns_false_adds_nothing():
    plan, steps = compiled(LAN + "dns: false\n")
    assert not any(t.startswith("Dns") for t in steps)
    assert plan.meta["dns"]["enabled"] is False and plan.meta["dns"]["servers"] == {}


def test_never_forwards_and_answers_for_everything_locally():
    plan, steps = compiled(LAN)
    conf = server_conf(steps["DnsServer"][0])
    lines = conf.splitlines()
    assert "no-resolv" in lines and "local=/#/" in lines and "local=/dn-p1.lab/" in lines
    assert not [line for line in lines if line.startswith(("server=", "rev-server="))]
    assert "listen-address=10.0.0.5" in lines and "bind-interfaces" in lines


def test_zone_lines_put_the_node_name_first_for_ptr():
    plan, steps = compiled(LAN + "dns: {records: [{name: alias, a: 10.0.0.6}]}\n")
    assert steps["DnsZone"][0].lines == ("10.0.0.1 a.dn-p1.lab a.lan.dn-p1.lab",
                                         "10.0.0.6 b.dn-p1.lab b.lan.dn-p1.lab",
                                         "10.0.0.6 alias.dn-p1.lab")


def test_records_become_dnsmasq_lines():
    text = LAN + """dns:
  ttl: 5
  records:
    - {name: api, cname: a}
    - {name: _x._udp, srv: {target: b, port: 53, priority: 1, weight: 2}}
    - {name: "@", txt: [one, "two words"]}
    - {name: vip.dn-p1.lab., a: 10.9.9.9}
"""
    plan, steps = compiled(text)
    options = steps["DnsServer"][0].options
    assert "local-ttl=5" in options
    assert "cname=api.dn-p1.lab,a.dn-p1.lab" in options
    assert "srv-host=_x._udp.dn-p1.lab,b.dn-p1.lab,53,1,2" in options
    assert 'txt-record=dn-p1.lab,"one","two words"' in options
    assert "10.9.9.9 vip.dn-p1.lab" in steps["DnsZone"][0].lines


def test_client_files_name_the_server_and_search_the_domain():
    plan, steps = compiled(LAN)
    a = next(s for s in steps["DnsClient"] if s.node == "a")
    files = client_files(a)
    assert files["resolv.conf"].splitlines()[1:3] == ["nameserver 10.0.0.5", "search dn-p1.lab"]
    assert all(text.startswith("# netlab lab=dn-p1 node=a:") for text in files.values())
    assert not a.container and a.hosts == ()            # namespace nodes share a directory


def test_a_container_gets_its_own_names_in_its_hosts_file():
    plan, steps = compiled(LAN.replace("a: {networks: [lan]}", "a: {image: img, networks: [lan]}"))
    a = next(s for s in steps["DnsClient"] if s.node == "a")
    assert a.container
    assert "10.0.0.1\ta.dn-p1.lab a" in client_files(a)["hosts"].splitlines()


def test_a_link_only_node_asks_through_a_router_and_the_lab_gets_a_route_back():
    text = """
name: dn-p2
networks:
  core: {subnet: 10.1.0.0/24}
nodes:
  r: {kind: router, networks: [core]}
  h: {networks: [core]}
  leaf: {}
links:
  - endpoints: [r:eth9, leaf:eth0]
    subnet: 10.2.0.0/30
"""
    plan, steps = compiled(text)
    listen = steps["DnsListen"][0]
    assert listen.routes == ("10.2.0.0/30 10.1.0.1",)
    assert plan.meta["dns"]["clients"]["leaf"] == ["10.1.0.254"]


def test_a_node_with_no_way_to_a_server_is_warned_about():
    text = """
name: dn-p3
networks:
  core: {subnet: 10.1.0.0/24}
nodes:
  h: {networks: [core]}
  x: {}
  y: {}
links:
  - endpoints: [x:eth0, y:eth0]
    subnet: 10.2.0.0/30
"""
    plan, steps = compiled(text)
    assert plan.meta["dns"]["clients"]["x"] == []
    assert "dns: nodes x, y reach no DNS server (no network with a subnet, and no route to one)" \
        in plan.warnings


def test_bridge_mac_is_stable_and_locally_administered():
    mac = dns.bridge_mac("lab--lab", "lan")
    assert mac == dns.bridge_mac("lab--lab", "lan") != dns.bridge_mac("lab--lab", "wan")
    assert mac.startswith("02:") and len(mac.split(":")) == 6


@pytest.mark.parametrize("name, expected", [
    ("api", "api.x.lab"), ("_http._tcp.web", "_http._tcp.web.x.lab"), ("@", "x.lab"),
    ("API", "api.x.lab"), ("a.x.lab.", "a.x.lab"), ("x.lab.", "x.lab"),
    ("a.other.", None), ("bad name", None), ("-a", None), ("a..b", None)])
def test_qualify(name, expected):
    assert dns_spec.qualify(name, "x.lab") == expected


def test_steps_survive_the_state_file_unchanged():
    """Reconcile compares to_dict() of saved and new steps: a round trip must be equal."""
    from netlab.core.plan import Plan
    plan, _ = compiled(LAN + "dns: {records: [{name: t, txt: [a, b]}]}\n")
    again = Plan.from_dict(json.loads(plan.to_json()))
    mine = (DnsListen, DnsZone, DnsServer, DnsClient)
    assert [s.to_dict() for s in again.steps if isinstance(s, mine)] == \
        [s.to_dict() for s in plan.steps if isinstance(s, mine)]


# --- IPv6: dual-stack and IPv6-only networks --------------------------------------------

DUAL = """
name: dn-p6
networks:
  lan: {subnet: 10.0.0.0/24, subnet6: "2001:db8:1::/64"}
  dmz: {subnet: 10.0.1.0/24, subnet6: "2001:db8:2::/64"}
  v6: {subnet6: "2001:db8:3::/64"}
nodes:
  a: {networks: [lan]}
  b: {networks: {lan: [10.0.0.254, "2001:db8:1::ffff:ffff:ffff:ffff"]}}
  s: {networks: [v6]}
  r: {kind: router, networks: [lan, dmz, v6]}
  leaf: {}
links:
  - {endpoints: [r:eth9, leaf:eth0], subnet: 10.0.9.0/30, subnet6: "2001:db8:9::/127"}
"""


def test_a_dual_stack_network_gets_the_highest_free_address_of_each_family():
    plan, steps = compiled(DUAL)
    listen = {s.network: (s.cidr, s.cidr6) for s in steps["DnsListen"]}
    assert listen == {"lan": ("10.0.0.253/24", "2001:db8:1:0:ffff:ffff:ffff:fffe/64"),   # b has the tops
                      "dmz": ("10.0.1.254/24", "2001:db8:2:0:ffff:ffff:ffff:ffff/64"),
                      "v6": ("2001:db8:3:0:ffff:ffff:ffff:ffff/64", None)}
    assert plan.meta["dns"]["servers"] == {"lan": "10.0.0.253", "dmz": "10.0.1.254"}
    assert plan.meta["dns"]["servers6"] == {"lan": "2001:db8:1:0:ffff:ffff:ffff:fffe",
                                            "dmz": "2001:db8:2:0:ffff:ffff:ffff:ffff",
                                            "v6": "2001:db8:3:0:ffff:ffff:ffff:ffff"}
    lines = server_conf(steps["DnsServer"][0]).splitlines()
    assert "listen-address=2001:db8:1:0:ffff:ffff:ffff:fffe" in lines and "listen-address=10.0.0.253" in lines


def test_resolvers_one_per_network_first_ipv4_before_ipv6_at_most_three():
    plan, _ = compiled(DUAL)
    clients = plan.meta["dns"]["clients"]
    assert clients["a"] == ["10.0.0.253", "2001:db8:1:0:ffff:ffff:ffff:fffe"]
    assert clients["s"] == ["2001:db8:3:0:ffff:ffff:ffff:ffff"]
    assert clients["r"] == ["10.0.0.253", "10.0.1.254", "2001:db8:3:0:ffff:ffff:ffff:ffff"]


def test_a_node_on_links_only_asks_through_a_router_in_both_families():
    plan, steps = compiled(DUAL)
    assert plan.meta["dns"]["clients"]["leaf"] == ["10.0.1.254", "2001:db8:2:0:ffff:ffff:ffff:ffff"]
    dmz = next(s for s in steps["DnsListen"] if s.network == "dmz")
    assert dmz.routes == ("10.0.9.0/30 10.0.1.1", "2001:db8:9::/127 2001:db8:2::1")
    v6_only_link = DUAL.replace("subnet: 10.0.9.0/30, ", "")
    plan, _ = compiled(v6_only_link)
    assert plan.meta["dns"]["clients"]["leaf"] == ["2001:db8:2:0:ffff:ffff:ffff:ffff"]


def test_a_full_subnet6_is_a_located_error():
    text = """
name: dn-p7
networks:
  lan: {subnet: 10.0.0.0/24, subnet6: "2001:db8::/126"}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan]}
  c: {networks: [lan]}
"""
    with pytest.raises(TopologyError) as err:
        load_text(text)
    assert err.value.problems == ["networks.lan.subnet6: 2001:db8::/126 is full (3 nodes): the lab's DNS "
                                  "server needs one free address on it; use a larger subnet6, or `dns: false`"]


def test_a_dual_stack_container_names_itself_in_both_families():
    plan, steps = compiled(DUAL.replace("a: {networks: [lan]}", "a: {image: img, networks: [lan]}"))
    a = next(s for s in steps["DnsClient"] if s.node == "a")
    hosts = client_files(a)["hosts"].splitlines()
    assert "10.0.0.1\ta.dn-p6.lab a" in hosts and "2001:db8:1::1\ta.dn-p6.lab a" in hosts
    assert client_files(a)["resolv.conf"].splitlines()[1:3] == [
        "nameserver 10.0.0.253", "nameserver 2001:db8:1:0:ffff:ffff:ffff:fffe"]


def test_dual_stack_listen_steps_survive_the_state_file_unchanged():
    from netlab.core.plan import Plan
    plan, _ = compiled(DUAL)
    again = Plan.from_dict(json.loads(plan.to_json()))
    assert [s.to_dict() for s in again.steps if isinstance(s, DnsListen)] == \
        [s.to_dict() for s in plan.steps if isinstance(s, DnsListen)]


def test_checks_pick_the_server_of_the_family_asked_for():
    from netlab.checks.labinfo import LabView
    plan, _ = compiled(DUAL)
    view = LabView.from_meta("dn-p6", plan.meta)
    assert view.dns_server("a") == "10.0.0.253"
    assert view.dns_server("a", 6) == "2001:db8:1:0:ffff:ffff:ffff:fffe"
    assert view.dns_server("a", 4) == "10.0.0.253"
    assert view.dns_server("s") == view.dns_server("s", 6) == "2001:db8:3:0:ffff:ffff:ffff:ffff"
    assert view.dns_server("r", 6) == "2001:db8:3:0:ffff:ffff:ffff:ffff"      # r's own resolvers
    plan, _ = compiled(DUAL + "dns: false\n")
    assert LabView.from_meta("dn-p6", plan.meta).dns_server("a", 6) is None
