"""Faults on a real lab, measured by traffic: loss and duplication counted over thousands
of datagrams, rate by a TCP transfer, partitions and link state by reachability; plus
refusals, state, reconcile, clear and down. Uses whatever this kernel has (netem or the
nftables/tbf fallbacks); the same tests pass in the full-kernel VM."""
from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from netlab.core import kernel
from netlab.core import lab as labops
from netlab.core.errors import ApplyError
from netlab.core.loader import load_text
from netlab.core.state import lab_dir
from netlab.faults import driver, ops, probe
from tests.conftest import module_lab

from ..conftest import nsexec
from . import traffic
from .traffic import reachable, tcp_rate, udp_burst

pytestmark = pytest.mark.kernel

TOPO = """
name: ftk
networks:
  lan: {subnet: 10.71.0.0/24, subnet6: "2001:db8:71::/64"}
  wan: {subnet: 10.72.0.0/24, subnet6: "2001:db8:72::/64"}
nodes:
  a: {networks: [lan]}
  b: {networks: [lan]}
  c: {networks: [lan]}
  r: {kind: router, networks: [lan, wan]}
  d: {networks: [wan]}
links:
  - endpoints: [a:p0, b:p0]
    subnet: 10.71.9.0/30
faults:
  flaky:
    - {link: "a:eth0", loss: 20%}
    - {node: d, rate: 5mbit}
  cut:
    - {partition: [[a], [b, d]]}
"""
A, B, C, R, D = "10.71.0.1", "10.71.0.2", "10.71.0.3", "10.71.0.4", "10.72.0.2"
B6, D6 = "2001:db8:71::2", "2001:db8:72::2"
NS = {n: f"ftk-{n}" for n in "abcrd"}
ALL_NS = list(NS.values()) + ["ftk--lab"]


lab = module_lab(TOPO)


@pytest.fixture(autouse=True)
def clean(lab):
    """Every test starts and ends with no faults, and the kernel as netlab made it."""
    pristine = snapshot()
    yield
    ops.clear("ftk")
    assert snapshot() == pristine


def snapshot() -> dict[str, str]:
    """What faults could leave behind: qdiscs, filters, nft tables, links, routes."""
    out = {}
    for ns in ALL_NS:
        links = [line.split() for line in nsexec(ns, "ip", "-br", "link").stdout.splitlines()]
        lines = [line for cmd in (("tc", "qdisc", "show"), ("nft", "list", "ruleset"), ("ip", "route"))
                 for line in nsexec(ns, *cmd).stdout.splitlines()]
        lines += [f"{p[0].split('@')[0]} {p[-1]}" for p in links]   # name, flags: state and peer index vary
        out[ns] = "\n".join(sorted(lines))             # order follows ifindexes, which reconcile changes
    return out


def netlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["netlab", *args], capture_output=True, text=True, timeout=60)


def within(observed: float, n: int, p: float, sigmas: float = 5.0) -> bool:
    """Observed count of a Binomial(n, p) within `sigmas` standard deviations."""
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def lost_about(got, p: float) -> bool:
    """The fault dropped about p of what reached it (drops the busy host made elsewhere,
    counted by the kernel during the burst, are not the fault's)."""
    return within(got.lost_to_the_fault, got.reached_the_fault, p)


def primed(dst: str) -> str:
    return traffic.primed(NS["a"], NS["b"], dst)


# -- loss and duplication, counted

@pytest.mark.parametrize("link,direction", [("a:eth0", "egress"), ("b:eth0", "ingress"),
                                            ("a:p0", "egress"), ("b:p0", "both")])
def test_loss_is_within_tolerance(lab, link, direction):
    dst = primed(B if "eth0" in link else "10.71.9.2")
    ops.set_impairment("ftk", [link], [], direction, {"loss": "20%"})
    got = udp_burst(NS["a"], NS["b"], dst, count=2000)
    assert lost_about(got, 0.2), (f"lost {got.lost_to_the_fault} of {got.reached_the_fault} with 20% "
                                  f"loss on {link} {direction} ({got.disturbed} dropped elsewhere)")
    ops.clear("ftk")
    assert len(udp_burst(NS["a"], NS["b"], dst, count=500).payloads) == 500


def test_loss_is_silent_to_the_sender(lab):
    """Real loss does not tell the sender: every send succeeds (no ENOBUFS to retry on)."""
    primed(B)
    ops.set_impairment("ftk", ["a:eth0"], [], "egress", {"loss": "50%"})
    got = udp_burst(NS["a"], NS["b"], B, count=1000)     # raises if any sendto fails
    assert lost_about(got, 0.5)


@pytest.mark.parametrize("link,direction", [("a:eth0", "egress"), ("b:eth0", "ingress")])
def test_duplicates_are_counted(lab, link, direction):
    primed(B)
    ops.set_impairment("ftk", [link], [], direction, {"duplicate": "10%"})
    got = udp_burst(NS["a"], NS["b"], B, count=2000)
    extra = len(got.payloads) - len(set(got.seqs))
    assert len(set(got.seqs)) == 2000
    assert within(extra, 2000, 0.1), f"{extra} duplicates of 2000 with 10% on {link} {direction}"


# -- rate, by TCP

@pytest.mark.parametrize("link,direction,rate", [("a:eth0", "egress", 10), ("b:eth0", "ingress", 10),
                                                 ("a:p0", "egress", 20)])
def test_rate_by_tcp_transfer(lab, link, direction, rate):
    dst = B if "eth0" in link else "10.71.9.2"
    ops.set_impairment("ftk", [link], [], direction, {"rate": f"{rate}mbit"})
    measured = tcp_rate(NS["a"], NS["b"], dst, seconds=4)
    assert abs(measured - rate * 1e6) <= 0.15 * rate * 1e6, f"{measured / 1e6:.2f} Mbit/s for {rate}mbit"


def test_rate_and_loss_together(lab):
    primed(B)
    ops.set_impairment("ftk", ["a:eth0"], [], "egress", {"rate": "10mbit", "loss": "10%"})
    got = udp_burst(NS["a"], NS["b"], B, count=400, gap=0.001)
    assert lost_about(got, 0.1)


# -- partitions and link state

def test_partition_blocks_both_ways_and_clear_restores(lab):
    ops.partition("ftk", [["a"], ["b", "d"]])
    assert reachable(NS["a"], NS["b"], B) == 0
    assert reachable(NS["b"], NS["a"], A) == 0
    assert reachable(NS["d"], NS["a"], A) == 0
    assert reachable(NS["a"], NS["c"], C) == 20        # outside the partition: untouched
    assert reachable(NS["c"], NS["b"], B) == 20
    assert reachable(NS["b"], NS["d"], D) == 20        # same side
    assert reachable(NS["a"], NS["b"], B6) == 0         # over IPv6 as well
    assert reachable(NS["a"], NS["d"], D6) == 0
    assert reachable(NS["c"], NS["b"], B6) == 20
    ops.clear("ftk")
    assert reachable(NS["a"], NS["b"], B) == 20
    assert reachable(NS["b"], NS["a"], A) == 20
    assert reachable(NS["a"], NS["d"], D6) == 20


def test_link_down_and_up_restores_routes(lab):
    routes = nsexec(NS["a"], "ip", "route").stdout
    routes6 = nsexec(NS["a"], "ip", "-6", "route", "show", "proto", "static").stdout
    addresses6 = nsexec(NS["a"], "ip", "-6", "addr", "show", "eth0", "scope", "global").stdout
    assert "default via 10.71.0.4" in routes and "default via 2001:db8:71::4" in routes6
    ops.set_state("ftk", ["a:eth0"], [], True)
    assert "state DOWN" in nsexec(NS["a"], "ip", "link", "show", "eth0").stdout
    assert reachable(NS["a"], NS["d"], D) == 0
    assert reachable(NS["b"], NS["a"], A) == 0
    ops.set_state("ftk", ["a:eth0"], [], False)
    assert nsexec(NS["a"], "ip", "route").stdout == routes
    # IPv6 addresses survive the link going down (keep_addr_on_down), routes come back
    assert nsexec(NS["a"], "ip", "-6", "addr", "show", "eth0", "scope", "global").stdout == addresses6
    assert nsexec(NS["a"], "ip", "-6", "route", "show", "proto", "static").stdout == routes6
    assert reachable(NS["a"], NS["d"], D) == 20
    assert reachable(NS["a"], NS["d"], D6) == 20


def test_whole_node_form(lab):
    ops.set_impairment("ftk", [], ["a"], "egress", {"loss": "100%"})
    assert reachable(NS["a"], NS["b"], B) == 0
    assert reachable(NS["a"], NS["b"], "10.71.9.2") == 0
    assert reachable(NS["b"], NS["c"], C) == 20


def test_scenario_apply_and_show_after_restart(lab):
    primed(B)
    result = netlab("fault", "apply", "ftk", "flaky")
    assert result.returncode == 0, result.stderr
    shown = json.loads(netlab("fault", "show", "ftk", "--json").stdout)   # a fresh process
    assert shown["links"]["a:eth0"]["egress"] == {"loss": 20.0}
    assert shown["links"]["d:eth0"]["egress"] == {"rate": 5_000_000}
    assert shown["applied"] == ["flaky"] and "cut" in shown["scenarios"]
    text = netlab("fault", "show", "ftk").stdout
    assert "a:eth0 egress loss 20%" in text and "d:eth0 egress rate 5mbit  [tbf]" in text
    status = json.loads(netlab("status", "ftk", "--json").stdout)[0]
    assert "a:eth0 egress loss 20%" in status["faults"]
    got = udp_burst(NS["a"], NS["b"], B, count=2000)
    assert lost_about(got, 0.2)
    assert netlab("fault", "apply", "ftk", "cut").returncode == 0
    assert reachable(NS["d"], NS["a"], A) == 0
    # `fault clear LAB SCENARIO` (TOPOLOGY.md) removes that scenario's faults only
    assert netlab("fault", "clear", "ftk", "cut").returncode == 0
    shown = json.loads(netlab("fault", "show", "ftk", "--json").stdout)
    assert shown["partitions"] == [] and shown["applied"] == ["flaky"]
    assert shown["links"]["a:eth0"]["egress"] == {"loss": 20.0}
    assert reachable(NS["d"], NS["a"], A) > 0
    assert netlab("fault", "clear", "ftk", "nosuch").returncode == 2
    assert netlab("fault", "clear", "ftk").returncode == 0
    assert json.loads(netlab("fault", "show", "ftk", "--json").stdout)["links"] == {}


# -- refusals and failures leave nothing half-applied

def test_missing_netem_is_refused_and_nothing_is_applied(lab, monkeypatch):
    monkeypatch.setenv("NETLAB_FAULTS_WITHOUT", "netem")
    before = snapshot()
    result = netlab("fault", "set", "ftk", "--link", "a:eth0", "--link", "b:eth0", "--loss", "5%",
                    "--delay", "50ms")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "netlab: a:eth0: delay needs the sch_netem kernel module, absent on this kernel",
        "netlab: b:eth0: delay needs the sch_netem kernel module, absent on this kernel"]
    assert snapshot() == before
    assert json.loads(netlab("fault", "show", "ftk", "--json").stdout)["links"] == {}


def test_this_kernel_is_probed_not_guessed():
    full = os.environ.get("NETLAB_FULL_KERNEL") == "1"
    assert probe.has("netem") is full              # DESIGN.md: absent here, present in the VM
    assert probe.has("tbf") and probe.has("ifb") and probe.has("nft")


@pytest.mark.parametrize("args,message", [
    (["--link", "a:eth9", "--loss", "5%"], "netlab: --link: node a has no interface 'eth9' (it has: eth0, p0)"),
    (["--link", "zz:eth0", "--loss", "5%"], "netlab: --link: unknown node 'zz'"),
    (["--link", "a:eth0", "--loss", "500%"], "netlab: --loss: must be more than 0% and at most 100%, not '500%'"),
    (["--link", "a:eth0"], "netlab: fault: no impairment given"),
    (["--loss", "5%"], "netlab: name a link (--link NODE:IF) or a node (--node NODE)"),
])
def test_bad_input_exits_2(lab, args, message):
    result = netlab("fault", "set", "ftk", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr


def test_cli_errors(lab):
    assert netlab("fault", "show", "ftnotalab").returncode == 1
    assert netlab("fault", "set", "ftnotalab", "--link", "a:eth0", "--loss", "1%").returncode == 1
    assert not os.path.exists(lab_dir("ftnotalab"))
    result = netlab("fault", "apply", "ftk", "nosuch")
    assert result.returncode == 2 and "has no fault scenario 'nosuch' (it has: cut, flaky)" in result.stderr
    result = netlab("fault", "partition", "ftk", "--between", "a", "--and", "a,b")
    assert result.returncode == 2 and "node a is in two groups" in result.stderr


def test_a_failure_part_way_puts_the_old_faults_back(lab, monkeypatch):
    ops.set_impairment("ftk", ["a:eth0"], [], "egress", {"rate": "10mbit"})
    before = snapshot()
    real = driver.Driver._replace_tc
    calls = []

    def flaky(self, key, was, want):
        calls.append(key)
        if len(calls) == 2:
            raise OSError(5, "injected failure")
        return real(self, key, was, want)

    monkeypatch.setattr(driver.Driver, "_replace_tc", flaky)
    with pytest.raises(ApplyError, match="injected failure"):
        ops.set_impairment("ftk", ["a:eth0", "b:eth0"], [], "egress", {"rate": "1mbit"})
    monkeypatch.setattr(driver.Driver, "_replace_tc", real)
    assert snapshot() == before
    assert ops.load("ftk").faults.links["a:eth0"]["egress"].rate == 10_000_000


# -- reconcile and down

RECONCILED = TOPO.replace("lan: {subnet: 10.71.0.0/24,", "lan: {subnet: 10.71.0.0/24, mtu: 1400,")


def test_reconcile_keeps_faults_on_recreated_interfaces(lab):
    ops.set_impairment("ftk", ["a:eth0"], [], "both", {"loss": "20%", "rate": "10mbit"})
    ops.partition("ftk", [["a"], ["b"]])
    with_faults = snapshot()
    try:
        labops.up(load_text(RECONCILED))           # re-creates every veth on lan
        assert "mtu 1400" in nsexec(NS["a"], "ip", "link", "show", "eth0").stdout
        after = snapshot()
        for ns in (NS["a"], NS["b"], "ftk--lab"):
            assert after[ns].replace("1400", "1500") == with_faults[ns], ns
        assert reachable(NS["a"], NS["b"], B) == 0
        assert len(ops.load("ftk").faults.links) == 1
    finally:
        labops.up(load_text(TOPO))
        ops.clear("ftk")


def test_unchanged_up_keeps_faults(lab):
    ops.set_impairment("ftk", ["b:p0"], [], "ingress", {"rate": "10mbit"})
    with_faults = snapshot()
    labops.up(load_text(TOPO))
    assert snapshot() == with_faults


def test_down_with_faults_leaves_nothing(deploy):
    deploy("name: ftk2\nnetworks: {lan: {subnet: 10.73.0.0/24}}\n"
           "nodes: {x: {networks: [lan]}, y: {networks: [lan]}}\n")
    ops.set_impairment("ftk2", ["x:eth0"], [], "both", {"loss": "1%", "rate": "10mbit", "duplicate": "1%"})
    ops.partition("ftk2", [["x"], ["y"]])
    assert "nlf-eth0" in nsexec("ftk2-x", "ip", "-br", "link").stdout
    assert labops.down("ftk2")
    assert not kernel.netns_exists("ftk2-x") and not kernel.netns_exists("ftk2--lab")
    assert "nlf-" not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
