"""Responders of `services:`: started inside the node, tracked by PID in the lab state,
restarted by `up` if they died, stopped at `down`; a taken port fails `up` clearly."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from netlab.core import apply, kernel
from netlab.core import lab as labops
from netlab.core.errors import ApplyError
from netlab.core.loader import load_text
from netlab.core.state import LabState
from netlab.services.kernel import alive
from tests.checks.conftest import lab_text, one

pytestmark = pytest.mark.kernel


def record(lab: str) -> dict:
    return LabState.load(lab).extras["services"]["isp"]


def test_responder_lives_in_the_node_and_stops_at_down(deploy):
    topo = deploy(lab_text("ck-svc"))
    rec = record(topo.name)
    assert alive(rec)
    assert os.stat(f"/proc/{rec['pid']}/ns/net").st_ino == kernel.netns_inode("ck-svc-isp")
    assert one(topo.name, {"udp": {"from": "pc1", "to": "isp:7"}}).detail.endswith("(service)")
    status = labops.status(topo.name)[0]
    assert status["services"]["isp"]["running"] is True
    labops.down(topo.name)
    assert not alive(rec)


def test_up_restarts_a_dead_responder_and_leaves_a_live_one(deploy):
    topo = deploy(lab_text("ck-svc2"))
    first = record(topo.name)
    result = labops.up(topo)                       # unchanged: nothing touched
    assert not result.changed and record(topo.name) == first
    os.kill(first["pid"], signal.SIGKILL)
    time.sleep(0.05)
    assert not alive(first)
    labops.up(topo)
    second = record(topo.name)
    assert second["pid"] != first["pid"] and alive(second)
    assert one(topo.name, {"tcp": {"from": "pc1", "to": "isp:9000"}}).ok


def test_changed_services_replace_the_responder(deploy):
    topo = deploy(lab_text("ck-svc3"))
    first = record(topo.name)
    labops.up(load_text(lab_text("ck-svc3").replace("udp:7]", "udp:7, tcp:7000]")))
    second = record(topo.name)
    assert not alive(first) and alive(second) and "tcp:7000" in second["services"]
    assert one(topo.name, {"nat": {"from": "pc1", "to": "isp:7000", "seen_as": "pc1"}}).detail.endswith("(service)")


def test_a_taken_port_fails_up_and_leaves_nothing(deploy):
    text = lab_text("ck-svc4").replace("[http:80, tcp:9000, udp:7]", "[tcp:9000]")
    topo = load_text(text)
    # something else already listens on the port inside the node: our socket, made there
    holder = {}

    original = apply.EXECUTORS["service"].create

    def create(ctx, s):
        with kernel.entered(s.ns):
            sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        sock.bind(("0.0.0.0", 9000))
        sock.listen(1)
        holder["sock"] = sock
        return original(ctx, s)

    apply.EXECUTORS["service"].create = create
    try:
        with pytest.raises(ApplyError, match=r"node isp: services tcp:9000: cannot listen on tcp:9000: Address already in use"):
            deploy(text)
    finally:
        apply.EXECUTORS["service"].create = original
        if "sock" in holder:
            holder["sock"].close()
    assert LabState.load(topo.name) is None and not kernel.netns_exists("ck-svc4-isp")
