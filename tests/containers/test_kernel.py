"""Container node fields without an engine: validation, the container spec in the plan,
and labs that must keep working when Docker is not there."""
from __future__ import annotations

import pytest

from netlab.containers.runtime import RUNTIME, spec_hash
from netlab.core import kernel
from netlab.core import lab as labops
from netlab.core.compiler import compile_topology
from netlab.core.errors import ApplyError, TopologyError
from netlab.core.loader import load_text
from netlab.core.plan import Namespace

WEB = """
name: ctpure
networks: {dmz: {subnet: 10.84.0.0/24}}
nodes:
  gw: {kind: router, image: "frrouting/frr:v8.4.0", privileged: true, networks: [dmz]}
  web:
    image: nginx:alpine
    cmd: "nginx -g 'daemon off;'"
    env: {A: "1"}
    binds: ["/srv/www:/usr/share/nginx/html:ro", "data:/data"]
    cap_add: [NET_ADMIN, sys_admin]
    exec: ["ip route add 10.9.0.0/16 via 10.84.0.1", "sh -c 'echo ok | tee /tmp/ok'"]
    networks: [dmz]
"""


def _namespaces(text: str) -> dict[str, Namespace]:
    plan, _ = compile_topology(load_text(text))
    return {s.node: s for s in plan.steps if isinstance(s, Namespace) and s.node}


def test_container_fields_reach_the_plan():
    steps = _namespaces(WEB)
    web = steps["web"]
    assert web.image == "nginx:alpine"
    assert web.container["env"] == {"A": "1"}
    assert web.container["binds"] == ["/srv/www:/usr/share/nginx/html:ro", "data:/data"]
    assert web.container["exec"][1] == "sh -c 'echo ok | tee /tmp/ok'"
    assert steps["gw"].role == "router" and steps["gw"].container["privileged"] is True


def test_spec_hash_follows_what_the_container_is_made_from():
    same = _namespaces(WEB)["web"]
    assert spec_hash(same) == spec_hash(_namespaces(WEB)["web"])
    changed = _namespaces(WEB.replace('env: {A: "1"}', 'env: {A: "2"}'))["web"]
    assert spec_hash(changed) != spec_hash(same)


def test_defaults_image_makes_every_node_a_container():
    steps = _namespaces("""
name: ctdef
defaults: {image: "netlab/busybox:test"}
networks: {lan: {subnet: 10.85.0.0/24}}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan], image: "alpine:3"}
""")
    assert steps["a"].image == "netlab/busybox:test" and steps["b"].image == "alpine:3"


def test_container_only_fields_on_a_namespace_node_are_named():
    with pytest.raises(TopologyError) as info:
        load_text("name: ctbad\nnodes:\n  pc: {binds: ['/a:/b']}\n")
    assert info.value.problems == ["nodes.pc.binds: only container nodes use binds (give the node an image)"]


@pytest.fixture
def no_engine(monkeypatch):
    """The Docker engine is unreachable for the runtime during the test."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/netlab-test.sock")
    monkeypatch.setattr(RUNTIME, "_api", None)


@pytest.mark.kernel
def test_without_an_engine_namespace_labs_work_and_container_labs_fail_cleanly(no_engine, deploy):
    topo = deploy("""
name: ctnoeng
networks: {lan: {subnet: 10.86.0.0/24}}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan], exec: ["ip link set lo mtu 9000"]}
""")
    assert labops.status("ctnoeng")[0]["healthy"]
    assert "mtu 9000" in __import__("subprocess").run(
        ["ip", "netns", "exec", topo.netns("b"), "ip", "link", "show", "lo"],
        capture_output=True, text=True).stdout
    assert labops.down("ctnoeng") is True
    containers = load_text("""
name: ctnoeng2
networks: {lan: {subnet: 10.86.0.0/24}}
nodes:
  a: {networks: [lan]}
  web: {image: "netlab/busybox:test", networks: [lan]}
""")
    try:
        with pytest.raises(ApplyError, match="container nodes need the Docker engine, which is not reachable"):
            labops.up(containers)
        assert not [n for n in kernel.list_netns() if n.startswith("ctnoeng2-")]
        assert labops.down("ctnoeng2") is False       # nothing left, and no crash
    finally:
        labops.down("ctnoeng2")
