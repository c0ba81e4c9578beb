"""The loader reports every problem of a bad file, one located line each (no root needed).
The error cases (tests/<feature>/errors/<case>.yml -> <case>.txt) run in test_golden.py."""
from __future__ import annotations

import pathlib

import pytest

from netlab.core.errors import TopologyError
from netlab.core.loader import load_text

ROOT = pathlib.Path(__file__).parents[2]


def test_defaults_merge_and_node_fields_win():
    topo = load_text("""
name: t
defaults: {kind: router}
networks: {lan: {subnet: 10.0.0.0/24}}
nodes:
  r: {networks: [lan]}
  h: {kind: host, networks: [lan]}
""")
    assert topo.nodes["r"].kind == "router"
    assert topo.nodes["h"].kind == "host"
    assert topo.domain == "t.lab"


def test_networks_as_map_fix_addresses_and_name_interfaces_in_order():
    topo = load_text("""
name: t
networks: {a: {subnet: 10.0.0.0/24}, b: {subnet: 10.1.0.0/24}}
nodes:
  n: {networks: {b: 10.1.0.9, a: null}}
""")
    atts = topo.nodes["n"].attachments
    assert [(a.network, a.ifname, str(a.address) if a.address else None) for a in atts] == [
        ("b", "eth0", "10.1.0.9"), ("a", "eth1", None)]


def test_image_makes_a_container_node_and_kind_container_needs_one():
    topo = load_text("name: t\nnodes:\n  web: {image: 'nginx:alpine'}\n  r: {kind: router, image: frr}\n")
    assert topo.nodes["web"].is_container and topo.nodes["web"].kind == "host"
    assert topo.nodes["r"].is_container and topo.nodes["r"].is_router
    with pytest.raises(TopologyError) as info:
        load_text("name: t\nnodes:\n  c: {kind: container}\n")
    assert info.value.problems == ["nodes.c.image: a container node needs an image"]


def test_topology_md_example_loads():
    """The file in TOPOLOGY.md's contract section (core parts) is accepted as written."""
    topo = load_text("""
name: branch
domain: branch.lab
networks:
  lan:
    subnet: 10.10.0.0/24
    gateway: gw
    mtu: 1500
  dmz: {subnet: 10.20.0.0/24}
  wan: {subnet: 198.51.100.0/24}
nodes:
  pc1:
    networks: [lan]
  pc2:
    networks: {lan: 10.10.0.50}
  web:
    image: nginx:alpine
    cmd: ["nginx", "-g", "daemon off;"]
    networks: {dmz: 10.20.0.2}
  gw:
    kind: router
    networks: [lan, dmz, wan]
  isp:
    networks: {wan: 198.51.100.1}
links:
  - endpoints: [gw:eth9, isp:eth9]
    subnet: 192.0.2.0/30
    mtu: 1500
""")
    assert set(topo.nodes) == {"pc1", "pc2", "web", "gw", "isp"}
    assert topo.links[0].endpoints[1].ifname == "eth9"


def test_no_mutation_of_an_example_crashes_the_loader():
    """Replace leaves of every example with values of the wrong shape: the answer is
    always located problems (TopologyError), never a traceback from any validator."""
    import copy
    import random

    import yaml
    odd = [{}, [], [[1]], None, 5, "x", {"a": []}, True, -1, "10.0.0.1/99"]
    rnd = random.Random(20261123)
    examples = sorted((ROOT / "topologies").glob("*.yml"))
    assert examples

    def leaves(o, path=()):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from leaves(v, path + (k,))
        elif isinstance(o, list):
            for i, v in enumerate(o):
                yield from leaves(v, path + (i,))
        if path:
            yield path

    for example in examples:
        base = yaml.safe_load(example.read_text())
        paths = list(leaves(base))
        for _ in range(150):
            data = copy.deepcopy(base)
            path = rnd.choice(paths)
            cursor = data
            for key in path[:-1]:
                cursor = cursor[key]
            cursor[path[-1]] = rnd.choice(odd)
            try:
                load_text(yaml.safe_dump(data))
            except TopologyError:
                pass
