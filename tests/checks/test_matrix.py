"""The all-pairs matrix: rounds that fit the kernel's shared neighbour tables, both
families in one run, learnt entries forgotten and configured ones kept."""
from __future__ import annotations

import pytest

from netlab.checks import matrix as M
from netlab.checks import neigh
from netlab.checks.labinfo import LabView
from netlab.checks.neigh import Entry
from netlab.core.generate import lan
from netlab.core.state import LabState

from ..conftest import module_lab, nsexec


def probe(s: str, d: str, *entries: Entry) -> M.Probe:
    return M.Probe(s, d, 4, "10.0.0.1", frozenset(entries))


def e(ns: str, addr: str, ip: int = 4) -> Entry:
    return Entry(ns, "eth0", addr, ip)


def test_a_round_takes_the_longest_prefix_whose_new_entries_fit():
    shared = (e("a", "b"), e("b", "a"))
    queue = [probe("a", "b", *shared), probe("b", "a", *shared),      # the same two entries
             probe("a", "c", e("a", "c"), e("c", "a")), probe("c", "a", e("c", "a"), e("a", "c"))]
    batch, rest = M.next_round(queue, {4: 3, 6: 0})
    assert [p.key[:2] for p in batch] == [("a", "b"), ("b", "a")] and len(rest) == 2
    batch, rest = M.next_round(rest, {4: 3, 6: 0})
    assert len(batch) == 2 and rest == []
    # a probe bigger than the room still goes alone, so the queue always moves
    assert M.next_round(queue, {4: 0, 6: 0})[0] == queue[:1]
    # families have rooms of their own
    six = [M.Probe("a", "b", 6, "2001:db8::2", frozenset({e("a", "x", 6), e("b", "y", 6)}))]
    assert M.next_round(queue[:2] + six, {4: 2, 6: 2})[0] == queue[:2] + six


def test_blocks_of_nodes_go_together():
    nodes = ["a", "b", "c", "d"]
    probes = [probe(s, d) for s in nodes for d in nodes if s != d]
    ordered = [p.key[:2] for p in M.block_order(probes, nodes, 2)]
    # (a, b) within the first block, then the first block against the second, then the second
    assert ordered[:2] == [("a", "b"), ("b", "a")]
    assert set(ordered[2:10]) == {(x, y) for x in "ab" for y in "cd"} | {(y, x) for x in "ab" for y in "cd"}
    assert ordered[10:] == [("c", "d"), ("d", "c")]


def test_room_keeps_a_reserve_and_a_floor():
    assert neigh.TableUse(1024, 0, 0).room() == 1024 - 128
    assert neigh.TableUse(1024, 1000, 0).room() == neigh.MIN_ROOM      # crowded: small rounds
    assert neigh.TableUse(1024, 1000, 0).crowded() and not neigh.TableUse(1024, 0, 0).crowded()


def test_solicited_node_groups():
    assert M.solicited_node("2001:db8:71:1::1") == "ff02::1:ff00:1"
    assert M.solicited_node("2001:db8::ab:cdef:1234") == "ff02::1:ffef:1234"


def test_ipv6_probes_count_the_solicited_node_entry_and_gateways_per_family():
    view = LabView.from_meta("t", {"nodes": {
        "a": {"ns": "t-a", "interfaces": [{"ifname": "eth0", "segment": "lan", "address": None,
                                            "address6": "2001:db8::1/64"}]},
        "b": {"ns": "t-b", "interfaces": [{"ifname": "eth0", "segment": "lan", "address": None,
                                            "address6": "2001:db8::2/64"}]},
        "r": {"ns": "t-r", "kind": "router", "interfaces": [
            {"ifname": "eth0", "segment": "lan", "address": None, "address6": "2001:db8::ff/64"},
            {"ifname": "eth1", "segment": "far", "address": None, "address6": "2001:db8:1::ff/64"}]},
        "c": {"ns": "t-c", "interfaces": [{"ifname": "eth0", "segment": "far", "address": None,
                                            "address6": "2001:db8:1::1/64"}]}},
        "networks": {"lan": {"gateway": "r"}, "far": {"gateway": "r"}}})
    probes = {p.key: p for p in M.probes_of(view, ["a", "b", "c", "r"])[0]}
    assert set(probes[("a", "b", 6)].entries) == {
        Entry("t-a", "eth0", "2001:db8::2", 6), Entry("t-b", "eth0", "2001:db8::1", 6),
        Entry("t-a", "eth0", "ff02::1:ff00:2", 6)}
    routed = probes[("a", "c", 6)].entries         # a and c with their (IPv6-only) gateway
    assert Entry("t-a", "eth0", "2001:db8::ff", 6) in routed and Entry("t-r", "eth1", "2001:db8:1::1", 6) in routed


# ---- on the real kernel -----------------------------------------------------------------

BIG = 50                         # 2,450 ordered pairs: more entries than the default cap
big_lab = module_lab(lan(BIG, "mx-big"))

DUAL = """
name: mx-dual
networks:
  lan: {subnet: 10.72.0.0/24, subnet6: "2001:db8:72::/64"}
  far: {subnet: 10.72.1.0/24, subnet6: "2001:db8:72:1::/64"}
  v6: {subnet6: "2001:db8:72:2::/64"}
nodes:
  r: {kind: router, networks: [lan, far, v6]}
  a: {networks: [lan]}
  b: {networks: [lan]}
  c: {networks: [lan]}
  d: {networks: [far]}
  e: {networks: [far]}
  s: {networks: [v6]}
dns: false
"""
dual_lab = module_lab(DUAL)


def view_of(name: str) -> LabView:
    return LabView.from_meta(name, LabState.load(name).plan.meta)


def learnt(ns: str) -> list[str]:
    """Neighbour entries the kernel learnt in a namespace for lab addresses and their
    solicited-node groups (not permanent ones; not link-local ones, which routers use to
    ask for the hosts they forward to: a few per router, not counted)."""
    out = nsexec(ns, "ip", "neigh", "show", "nud", "all").stdout.splitlines()
    return [line for line in out if line.strip() and "PERMANENT" not in line
            and not line.startswith(("fe80:", "ff02::1 ", "ff02::2 ", "ff02::16 "))]


@pytest.mark.kernel
def test_fifty_hosts_all_pairs_without_touching_the_hosts_cap(big_lab):
    before = neigh.table_use(4)
    m = M.all_pairs(view_of("mx-big"))
    assert not m.failed and m.reachable == BIG * (BIG - 1)
    if BIG * (BIG - 1) > before.room():
        assert m.rounds > 1
    after = neigh.table_use(4)
    assert after.cap == before.cap                    # the host's setting is left alone
    assert after.overflows == before.overflows        # and its table never overflowed
    # a lab probed in rounds leaves no learnt entries behind (the table is the host's)
    if m.rounds > 1:
        assert learnt("mx-big-h01") == [] and learnt("mx-big-h50") == []


@pytest.mark.kernel
def test_rounds_cover_both_families_and_keep_configured_entries(dual_lab, monkeypatch):
    view = view_of("mx-dual")
    mac = nsexec("mx-dual-b", "cat", "/sys/class/net/eth0/address").stdout.strip()
    nsexec("mx-dual-a", "ip", "neigh", "replace", "10.72.0.3", "lladdr", mac, "dev", "eth0",
           "nud", "permanent", check=True)
    small = neigh.TableUse(16, 0, 0)                  # rounds of a few entries each
    monkeypatch.setattr(M, "table_use", lambda ip: small._replace(overflows=neigh.table_use(ip).overflows))
    monkeypatch.setattr(neigh.TableUse, "room", lambda self: 4)
    monkeypatch.setattr(M, "MIN_ROOM", 4)
    m = M.all_pairs(view)
    assert not m.failed and m.rounds > 5
    assert m.families() == {4: (30, 30), 6: (42, 42)}     # s speaks IPv6 only
    assert m.reachable == 42
    perm = nsexec("mx-dual-a", "ip", "neigh", "show", "10.72.0.3").stdout
    assert "PERMANENT" in perm and mac in perm
    assert learnt("mx-dual-c") == []


@pytest.mark.kernel
def test_a_dead_host_fails_its_pairs_only_and_in_bounded_time(dual_lab, monkeypatch):
    monkeypatch.setattr(neigh.TableUse, "room", lambda self: 6)
    monkeypatch.setattr(M, "MIN_ROOM", 6)
    rules = "add table inet mxtest; add chain inet mxtest in { type filter hook input priority 0; policy drop; }"
    nsexec("mx-dual-e", "nft", rules, check=True)
    try:
        m = M.all_pairs(view_of("mx-dual"), timeout=1.0)
    finally:
        nsexec("mx-dual-e", "nft", "delete table inet mxtest", check=True)
    bad = {k[:2] for k in m.failed}
    assert bad and all("e" in pair for pair in bad)
    assert m.reachable == 42 - 12 and m.seconds < 8
    assert m.failed[("e", "a", 4)] == "timeout" and m.failed[("a", "e", 6)] == "timeout"


@pytest.mark.kernel
def test_one_family_on_request(dual_lab):
    m = M.all_pairs(view_of("mx-dual"), families=(4,))
    assert set(m.families()) == {4} and m.failed[("s", "a", 0)] == "no IPv4 address in common"
