"""up / down / reconcile on the real kernel: namespaces, veths, bridges and routes that exist."""
from __future__ import annotations

import itertools
import os
import subprocess
import time

import pytest

from netlab.core import apply, kernel
from netlab.core import lab as labops
from netlab.core.errors import ApplyError
from netlab.core.loader import load_text
from netlab.core.state import LabState, lab_dir
from tests.conftest import nsexec

pytestmark = pytest.mark.kernel

ROUTED = """
name: core-rt
networks:
  lan-a: {subnet: 10.61.1.0/24}
  lan-b: {subnet: 10.61.2.0/24}
  lan-c: {subnet: 10.61.3.0/24}
nodes:
  r1: {kind: router, networks: [lan-a]}
  r2: {kind: router, networks: [lan-b]}
  r3: {kind: router, networks: [lan-c]}
  pc1: {networks: [lan-a]}
  pc2: {networks: [lan-b]}
  pc3: {networks: [lan-c]}
links:
  - {endpoints: ["r1:eth1", "r2:eth1"], subnet: 10.61.12.0/30}
  - {endpoints: ["r2:eth2", "r3:eth1"], subnet: 10.61.23.0/31}
"""


# ROUTED with pc3 removed, a network lan-d added and a node pc4 on lan-a and lan-d
CHANGED = ROUTED.replace("  pc3: {networks: [lan-c]}\n", "  pc4: {networks: [lan-a, lan-d]}\n").replace(
    "  lan-c: {subnet: 10.61.3.0/24}\n", "  lan-c: {subnet: 10.61.3.0/24}\n  lan-d: {subnet: 10.61.4.0/24}\n")


def addresses(lab: str) -> dict[str, list[str]]:
    st = LabState.load(lab)
    return {n: [i["address"].split("/")[0] for i in info["interfaces"] if i["address"]]
            for n, info in st.plan.meta["nodes"].items()}


def ping(ns: str, address: str, count: int = 1) -> bool:
    return nsexec(ns, "ping", "-c", str(count), "-W", "1", "-i", "0.2", address).returncode == 0


def root_snapshot() -> tuple:
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return sorted(l.split()[0] for l in links.splitlines()), routes, tables


def inode(ns: str) -> int | None:
    return kernel.netns_inode(ns)


def test_every_node_reaches_every_other_across_routers(deploy):
    before = root_snapshot()
    deploy(ROUTED)
    addrs = addresses("core-rt")
    for a, b in itertools.permutations(addrs, 2):
        assert ping(f"core-rt-{a}", addrs[b][0]), f"{a} -> {b} ({addrs[b][0]})"
    assert root_snapshot() == before, "a lab must leave the host's root namespace alone"


def test_bridges_live_in_the_lab_namespace_and_sockets_in_theirs(deploy):
    deploy(ROUTED)
    ctx = apply.Context("core-rt")
    try:
        lab_links = {l.get_attr("IFLA_IFNAME") for l in ctx.ipr("core-rt--lab").get_links()}
        assert {"lan-a", "lan-b", "lan-c"} <= lab_links
        pc_links = {l.get_attr("IFLA_IFNAME") for l in ctx.ipr("core-rt-pc1").get_links()}
        assert pc_links == {"lo", "eth0"}
    finally:
        ctx.close()
    out = nsexec("core-rt-r1", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
    assert out == "1"
    assert nsexec("core-rt-pc1", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def test_up_again_changes_nothing(deploy):
    topo = deploy(ROUTED)
    inodes = {n: inode(topo.netns(n)) for n in topo.nodes}
    result = labops.up(load_text(ROUTED))
    assert (result.created, result.deleted) == (0, 0)
    assert {n: inode(topo.netns(n)) for n in topo.nodes} == inodes


def test_reconcile_touches_only_what_changed_and_keeps_traffic_flowing(deploy):
    topo = deploy(ROUTED)
    inodes = {n: inode(topo.netns(n)) for n in topo.nodes}
    addrs = addresses("core-rt")
    # a ping across the unchanged part runs through the whole reconcile
    pinger = subprocess.Popen(["ip", "netns", "exec", "core-rt-pc1", "ping", "-c", "40", "-i", "0.05",
                               "-W", "1", addrs["pc2"][0]], stdout=subprocess.PIPE, text=True)
    try:
        result = labops.up(load_text(CHANGED))
        out, _ = pinger.communicate(timeout=30)
    finally:
        if pinger.poll() is None:
            pinger.kill()
    assert " 0% packet loss" in out, out
    assert result.created and result.deleted
    assert not kernel.netns_exists("core-rt-pc3")
    for n in ("r1", "r2", "r3", "pc1", "pc2"):
        assert inode(topo.netns(n)) == inodes[n], f"{n} was re-created"
    new_addrs = addresses("core-rt")
    assert ping("core-rt-pc4", new_addrs["pc2"][0])
    assert ping("core-rt-pc2", new_addrs["pc4"][0])


def test_failed_up_undoes_everything_it_made(monkeypatch):
    calls = {"n": 0}
    real = apply.EXECUTORS["route"].create

    def failing(ctx, step):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(22, "Invalid argument")
        return real(ctx, step)

    monkeypatch.setattr(apply.EXECUTORS["route"], "create", failing)
    with pytest.raises(ApplyError) as info:
        labops.up(load_text(ROUTED))
    assert "route" in str(info.value) and "Invalid argument" in str(info.value)
    assert not [n for n in kernel.list_netns() if n.startswith("core-rt-") or n == "core-rt--lab"]
    assert not os.path.exists(lab_dir("core-rt"))


def test_up_refuses_a_namespace_it_does_not_own():
    with kernel.created("core-rt-pc2"):
        pass
    try:
        with pytest.raises(ApplyError, match="core-rt-pc2 already exists"):
            labops.up(load_text(ROUTED))
        assert kernel.netns_exists("core-rt-pc2"), "a foreign namespace must survive"
        assert not kernel.netns_exists("core-rt-pc1")
    finally:
        kernel.delete("core-rt-pc2")


def test_down_removes_every_object_and_processes_inside():
    labops.up(load_text(ROUTED))
    sleeper = subprocess.Popen(["ip", "netns", "exec", "core-rt-pc1", "sleep", "300"])
    try:
        assert labops.down("core-rt")
        sleeper.wait(timeout=10)
        assert not [n for n in kernel.list_netns() if n.startswith("core-rt-") or n == "core-rt--lab"]
        assert not os.path.exists(lab_dir("core-rt"))
        assert labops.down("core-rt") is False
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        labops.down("core-rt")


def test_down_command_of_a_lab_with_dns_and_responders_imports_no_netlink_library():
    """`netlab down` reads the state (its firewall step's type included), stops the DNS
    server and the responders, removes the namespaces: no pyroute2, no Docker client, no
    compiler, no YAML loader, no tunnel, check or fault code."""
    import sys

    from netlab.testing import load
    topo = load(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "lab.yml"), name="core-imp")
    code = ("import sys\nfrom netlab.cli import main\nsys.argv = ['netlab', 'down', 'core-imp']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(' '.join(sorted(sys.modules)))")
    try:
        labops.up(topo)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        loaded = set(done.stdout.split())
        assert "lab core-imp: removed" in done.stdout and LabState.load("core-imp") is None
        unwanted = {"pyroute2", "docker", "yaml", "netlab.core.compiler", "netlab.core.loader",
                    "netlab.tunnels.spec", "netlab.checks", "netlab.faults", "netlab.core.netns"}
        assert not loaded & unwanted, sorted(loaded & unwanted)
    finally:
        labops.down("core-imp")


def test_down_finds_a_lab_by_its_marks_when_state_is_lost():
    labops.up(load_text(ROUTED))
    try:
        for name in os.listdir(lab_dir("core-rt")):
            os.unlink(os.path.join(lab_dir("core-rt"), name))
        os.rmdir(lab_dir("core-rt"))
        assert labops.down("core-rt")
        assert not [n for n in kernel.list_netns() if n.startswith("core-rt")]
    finally:
        labops.down("core-rt")


def test_reconcile_of_a_changed_address_keeps_the_routes_on_that_interface(deploy):
    """The kernel flushes an interface's routes with its last address; reconcile must
    put them back even though the routes themselves did not change."""
    deploy(ROUTED)
    moved = ROUTED.replace("  pc1: {networks: [lan-a]}", "  pc1: {networks: {lan-a: 10.61.1.77}}")
    labops.up(load_text(moved))
    routes = nsexec("core-rt-pc1", "ip", "route").stdout
    assert "default via" in routes, routes
    assert ping("core-rt-pc1", addresses("core-rt")["pc3"][0])
    again = labops.up(load_text(moved))
    assert (again.created, again.deleted) == (0, 0)


def test_a_failing_after_up_hook_leaves_state_that_matches_the_kernel(deploy, monkeypatch):
    from netlab.core import hooks
    deploy(ROUTED)
    grown = ROUTED.replace("  pc3: {networks: [lan-c]}", "  pc3: {networks: [lan-c]}\n  pc9: {networks: [lan-c]}")

    def broken(ctx, plan, topo):
        raise ApplyError("hook failed")
    registry = hooks.registry()
    real = registry.hooks
    monkeypatch.setattr(registry, "hooks", lambda name: real(name) + ([broken] if name == "after_up" else []))
    with pytest.raises(ApplyError):
        labops.up(load_text(grown))
    monkeypatch.setattr(registry, "hooks", real)
    assert kernel.netns_exists("core-rt-pc9")
    st = LabState.load("core-rt")
    assert ("netns", "core-rt-pc9") in {s.key for s in st.plan.steps}
    labops.down("core-rt")
    assert not kernel.netns_exists("core-rt-pc9")


def test_up_rebuilds_a_node_whose_namespace_vanished_while_a_process_held_it(deploy):
    topo = deploy(ROUTED)
    holder = subprocess.Popen(["ip", "netns", "exec", "core-rt-pc1", "sleep", "60"])
    try:
        time.sleep(0.3)
        kernel.delete("core-rt-pc1")          # unnamed, but alive through the process
        result = labops.up(load_text(ROUTED))
        assert result.created
        assert ping("core-rt-pc1", addresses("core-rt")["pc2"][0])
    finally:
        holder.kill()
        holder.wait()
