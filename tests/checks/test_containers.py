"""Checks and services on a container node behave as on a namespace node: the probes and
the responder enter the container's named namespace; nothing runs inside the image."""
from __future__ import annotations

import pytest

from tests.conftest import unavailable
from tests.containers.busybox_image import IMAGE, build_image, find_busybox

from .conftest import run

pytestmark = [pytest.mark.kernel, pytest.mark.docker]

LAB = f"""
name: ck-box
networks:
  lan: {{subnet: 10.40.0.0/24, subnet6: "2001:db8:40::/64"}}
  dmz: {{subnet: 10.41.0.0/24, subnet6: "2001:db8:41::/64"}}
nodes:
  pc1: {{networks: [lan]}}
  gw: {{kind: router, networks: [lan, dmz]}}
  box:
    image: {IMAGE}
    networks: {{dmz: 10.41.0.10}}
    services: [tcp:9000, udp:7]
    exec: ["httpd -p 8080 -h /etc"]
"""


@pytest.fixture(scope="module")
def image():
    if find_busybox() is None:
        unavailable("needs Debian's busybox-static to build the test image")
    return build_image(IMAGE)


def test_every_layer_to_and_from_a_container(image, deploy):
    deploy(LAB)
    results = run("ck-box", [
        {"ping": {"from": "pc1", "to": "box"}},
        {"path": {"from": "pc1", "to": "box", "via": ["gw"]}},
        {"arp": {"from": "gw", "to": "box"}},
        {"tcp": {"from": "pc1", "to": "box:9000"}},
        {"udp": {"from": "pc1", "to": "box:7"}},
        {"nat": {"from": "pc1", "to": "box:9000", "seen_as": "pc1"}},
        {"http": {"from": "pc1", "url": "http://box:8080/", "expect": 404}},   # busybox httpd's own
        {"http": {"from": "pc1", "url": "http://box:81/"}},                    # a temporary listener
        {"tcp": {"from": "box", "to": "pc1:22"}},
        {"mtu": {"from": "box", "to": "pc1", "size": 1500}},
    ], timeout=1.0, wait=3.0)
    assert [(r.spec.label, r.detail) for r in results if not r.ok] == []
    details = {r.spec.label: r.detail for r in results}
    assert details["tcp pc1 -> box:9000"].endswith("(service)")
    assert details["http pc1 -> http://box:81/"].endswith("(temporary listener)")


def test_ipv6_and_all_pairs_in_rounds_reach_into_a_container(image, deploy, monkeypatch):
    from netlab.checks import matrix, neigh
    from netlab.checks.labinfo import LabView
    from netlab.core.state import LabState
    deploy(LAB)
    results = run("ck-box", [
        {"ping": {"from": "pc1", "to": "box", "ip": 6}},
        {"path": {"from": "pc1", "to": "box", "via": ["gw"], "ip": 6}},
        {"arp": {"from": "gw", "to": "box", "ip": 6}},                       # NDP
        {"nat": {"from": "pc1", "to": "box:9000", "seen_as": "2001:db8:40::1"}},
        {"dns": {"from": "box", "name": "pc1", "type": "AAAA", "expect": "2001:db8:40::1", "ip": 6}},
    ], timeout=1.0, wait=3.0)
    assert [(r.spec.label, r.detail) for r in results if not r.ok] == []
    # rounds forget what they learnt inside the container's namespace as well
    monkeypatch.setattr(neigh.TableUse, "room", lambda self: 4)
    monkeypatch.setattr(matrix, "MIN_ROOM", 4)
    m = matrix.all_pairs(LabView.from_meta("ck-box", LabState.load("ck-box").plan.meta))
    assert not m.failed and m.rounds > 1 and m.families() == {4: (6, 6), 6: (6, 6)}
