"""The pure compiler: determinism, reachability, interface naming. Its golden cases
(tests/core/golden/<case>.yml -> <case>.plan) run in tests/core/test_golden.py."""
from __future__ import annotations

import pathlib

from netlab.core.compiler import compile_topology, interface_index, port_name
from netlab.core.loader import load_file, load_text

GOLDEN = pathlib.Path(__file__).parent / "golden"


def test_compile_is_deterministic():
    text = (GOLDEN / "two_routers.yml").read_text()
    a, _ = compile_topology(load_text(text))
    b, _ = compile_topology(load_text(text))
    assert a.to_dict() == b.to_dict()


def test_every_subnet_reachable_from_every_node_in_chain():
    """Walk the compiled routes hop by hop from each node to each subnet."""
    plan, compiled = compile_topology(load_file(str(GOLDEN / "chain.yml")))
    import ipaddress
    owner = {}
    for node, ifaces in compiled.ifaces.items():
        for i in ifaces:
            if i.address:
                owner[i.address] = node
    subnets = {i.subnet for ifs in compiled.ifaces.values() for i in ifs if i.subnet}
    for start in compiled.ifaces:
        for subnet in subnets:
            node, hops = start, 0
            while not any(i.subnet == subnet for i in compiled.ifaces[node]):
                routes = compiled.routes[node]
                match = [r for r in routes if r[0] != "default" and ipaddress.ip_network(r[0]) == subnet]
                route = match[0] if match else next((r for r in routes if r[0] == "default"), None)
                assert route, f"{start}: no route to {subnet} at {node}"
                node = owner[ipaddress.ip_address(route[1])]
                hops += 1
                assert hops < 10, f"{start} -> {subnet}: loop"


def test_interface_indexes_are_stable_and_unique():
    taken = set()
    assert interface_index("eth0", taken) == 1000
    assert interface_index("eth3", taken) == 1003
    other = interface_index("wan", taken)
    assert other >= 2000 and interface_index("wan", set()) == other


def test_port_names_fit_in_15_characters():
    assert port_name("pc1", "eth0") == "pc1.eth0"
    long = port_name("a-very-long-node-name", "eth0")
    assert len(long) <= 15 and long != port_name("a-very-long-node-name", "eth1")


def test_routers_naming_each_other_as_gateway_get_no_looping_defaults():
    plan, compiled = compile_topology(load_text("""
name: t
networks:
  n1: {subnet: 10.0.1.0/24, gateway: x1}
  n2: {subnet: 10.0.2.0/24, gateway: x4}
nodes:
  x1: {kind: router, networks: [n1, n2]}
  x4: {kind: router, networks: [n1, n2]}
"""))
    assert not [r for n in ("x1", "x4") for r in compiled.routes[n] if r[0] == "default"]
    assert plan.warnings == ["routers x1, x4 name each other as gateway: their default routes would loop, so they get none"]


def test_subnets_that_routing_cannot_reach_are_named():
    plan, _ = compile_topology(load_text("""
name: t
networks: {a: {subnet: 10.0.1.0/24}, b: {subnet: 10.0.2.0/24}, c: {subnet: 10.0.3.0/24}}
nodes:
  r1: {kind: router, networks: [a, b]}
  h: {networks: [b, c]}
  hc: {networks: [c]}
"""))
    assert "10.0.1.0/24 is not reachable from hc" in plan.warnings
