"""The checks over IPv6 on the real kernel: mtu (ICMPv6 Packet Too Big names the router and
its MTU), path (hop limit), arp as NDP, and tcp, udp, http and nat against netlab's
dual-stack responders and the checker's temporary listeners; each passes where it should
and fails, or reports how it was blocked, where it should.

One module-scoped lab, topologies/dualstack.yml renamed:
    pc1 --lan-a-- r1 ==p2p== r2 --lan-b-- pc2 (responders http:80 tcp:9000 udp:7)
                              \\--v6only-- sensor
Tests that change it (an MTU, a route, an nft table, a sysctl) undo the change in a
`finally`, also when they fail.
"""
from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess

import pytest
import yaml

from netlab.checks import l2, netio
from netlab.checks.spec import parse_checks
from netlab.core import responder
from netlab.core.errors import Problems

from ..conftest import module_lab, nsexec
from .conftest import one, run

pytestmark = pytest.mark.kernel

EXAMPLE = pathlib.Path(__file__).parent.parent.parent / "topologies" / "dualstack.yml"
NAME = "c6-chk"
PC1_6, PC2_6, SENSOR_6 = "2001:db8:71:1::2", "2001:db8:71:2::2", "2001:db8:71:3::2"

dual = module_lab(EXAMPLE.read_text().replace("name: dual\n", f"name: {NAME}\n"))


def ns(node: str) -> str:
    return f"{NAME}-{node}"


def ok(check: dict, **kw):
    """A check that should pass: retried for up to 3 s, like `netlab check` does."""
    result = one(NAME, check, wait=3.0, timeout=1.0, **kw)
    assert result.ok, (result.spec.label, result.detail)
    return result


def fails(check: dict, **kw):
    result = one(NAME, check, timeout=kw.pop("timeout", 1.0), **kw)
    assert not result.ok, (result.spec.label, result.detail)
    return result


def mac_of(node: str, ifname: str) -> str:
    """The interface's MAC as iproute2 reports it (not through netlab's own code)."""
    out = nsexec(ns(node), "ip", "-j", "link", "show", "dev", ifname, check=True).stdout
    return json.loads(out)[0]["address"]


@contextlib.contextmanager
def changed(node: str, change: list[str], undo: list[str]):
    """Run `change` in a node, and always `undo` afterwards."""
    nsexec(ns(node), *change, check=True)
    try:
        yield
    finally:
        nsexec(ns(node), *undo, check=True)


@contextlib.contextmanager
def mtu(node: str, ifname: str, value: int):
    """An interface MTU for the duration; then 1500 again, and no learned path MTU left."""
    with changed(node, ["ip", "link", "set", ifname, "mtu", str(value)],
                 ["ip", "link", "set", ifname, "mtu", "1500"]):
        try:
            yield
        finally:
            for node_ in ("pc1", "pc2", "sensor"):
                nsexec(ns(node_), "ip", "-6", "route", "flush", "cache")
                nsexec(ns(node_), "ip", "route", "flush", "cache")


@contextlib.contextmanager
def nft_table(node: str, family: str, body: str):
    """An nft table of the test's own (`table FAMILY c6test`) in a node, always deleted."""
    script = f"table {family} c6test {{\n{body}\n}}\n"
    proc = subprocess.run(["ip", "netns", "exec", ns(node), "nft", "-f", "-"], input=script,
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    try:
        yield
    finally:
        nsexec(ns(node), "nft", "delete", "table", family, "c6test", check=True)


# ---------------------------------------------------------------- the example itself

def test_the_example_passes_every_check_in_both_families(dual):
    checks = yaml.safe_load(EXAMPLE.read_text())["checks"]
    results = run(NAME, checks, wait=3.0, timeout=1.0)
    assert [(r.spec.label, r.detail) for r in results if not r.ok] == []
    every = {"arp", "ping", "path", "mtu", "tcp", "udp", "http", "nat", "dns"}
    assert {r.spec.kind for r in results if "2001:" in r.detail} == every          # over IPv6
    assert {r.spec.kind for r in results if "2001:" not in r.detail} == every      # over IPv4
    details = {r.spec.label: r.detail for r in results}
    assert details["path pc1 -> pc2 via r1,r2 over IPv6"] == f"{PC2_6} reached via r1, r2"
    assert details["mtu pc1 -> pc2 size 1500 over IPv6"] == f"{PC2_6}: largest packet through is 1500 bytes"
    assert details["arp pc1 -> r1 over IPv6"] == f"2001:db8:71:1::1 is-at {mac_of('r1', 'eth0')} on eth0"
    assert details[f"nat pc1 -> pc2:7/udp seen as {PC1_6}"] == f"pc2:7/udp saw {PC1_6} (service)"


# ---------------------------------------------------------------- mtu

def test_mtu_bottleneck_reports_packet_too_big_from_the_router(dual):
    with mtu("r2", "eth0", 1400):          # r2 -> lan-b takes 1400 bytes: r2 answers Packet Too Big
        v6 = fails({"mtu": {"from": "pc1", "to": "pc2", "size": 1500, "ip": 6}})
        assert v6.detail == (f"{PC2_6}: largest packet through is 1400 bytes "
                             f"(ICMP packet too big (v6), mtu 1400 from r2); 1500 expected")
        # the same size in both families: sizes are IP packet sizes, headers included
        v4 = fails({"mtu": {"from": "pc1", "to": "pc2", "size": 1500}})
        assert v4.detail == ("10.71.2.2: largest packet with DF through is 1400 bytes "
                             "(ICMP fragmentation needed, mtu 1400 from r2); 1500 expected")
        ok({"mtu": {"from": "pc1", "to": "pc2", "size": 1400, "ip": 6}})
        fails({"mtu": {"from": "pc1", "to": "pc2", "size": 1401, "ip": 6}})
        blocked = fails({"mtu": {"from": "pc1", "to": "pc2", "size": 1400, "ip": 6, "expect": "blocked"}})
        assert "got through" in blocked.detail
        ok({"ping": {"from": "pc1", "to": "pc2", "ip": 6}})            # small packets still pass
    ok({"mtu": {"from": "pc1", "to": "pc2", "size": 1500, "ip": 6}})    # and the path heals


def test_mtu_black_hole_and_the_sources_own_limit(dual):
    with mtu("sensor", "eth0", 1400):      # bigger frames die in sensor's veth: no ICMPv6 at all
        hole = fails({"mtu": {"from": "pc1", "to": "sensor", "size": 1500}}, timeout=0.5)
        # (a veth lets 4 bytes more through: room for a VLAN tag)
        assert hole.detail.startswith(f"{SENSOR_6}: largest packet through is 1404 bytes")
        assert "an MTU black hole" in hole.detail and hole.detail.endswith("; 1500 expected")
    big = fails({"mtu": {"from": "pc1", "to": "sensor", "size": 9000}})
    assert big.detail == (f"{SENSOR_6}: largest packet through is 1500 bytes "
                          f"(limited by the source's interface MTU); 9000 expected")


# ---------------------------------------------------------------- path

def test_path_names_the_routers_over_ipv6(dual):
    assert ok({"path": {"from": "pc1", "to": "sensor", "via": ["r1", "r2"]}}).detail == \
        f"{SENSOR_6} reached via r1, r2"
    assert ok({"path": {"from": "sensor", "to": "pc1", "via": ["r2", "r1"]}}).detail == \
        f"{PC1_6} reached via r2, r1"
    assert ok({"path": {"from": "pc1", "to": PC2_6, "via": ["r1", "r2"]}}).detail == \
        f"{PC2_6} reached via r1, r2"
    ok({"path": {"from": "pc2", "to": "sensor", "via": ["r2"]}})
    wrong = fails({"path": {"from": "pc1", "to": "sensor", "via": ["r1"]}})
    assert wrong.detail == f"{SENSOR_6} reached via r1, r2; expected via r1"
    # an IPv6 literal written the long way is the same address
    ok({"path": {"from": "pc1", "to": "2001:0db8:0071:0003:0000:0000:0000:0002", "via": ["r1", "r2"]}})


# ---------------------------------------------------------------- arp is NDP over IPv6

def test_ndp_answers_with_the_targets_mac(dual):
    r1_mac = mac_of("r1", "eth0")
    assert ok({"arp": {"from": "pc1", "to": "r1", "ip": 6}}).detail == \
        f"2001:db8:71:1::1 is-at {r1_mac} on eth0"
    assert ok({"arp": {"from": "pc1", "to": "2001:db8:71:1::1"}}).detail.endswith(f"is-at {r1_mac} on eth0")
    ok({"arp": {"from": "pc1", "to": "r1", "ip": 6, "mac": r1_mac.upper()}})
    assert ok({"arp": {"from": "sensor", "to": "r2"}}).detail == \
        f"2001:db8:71:3::1 is-at {mac_of('r2', 'eth1')} on eth0"     # sensor has only IPv6
    ok({"arp": {"from": "r2", "to": "pc2", "ip": 6}})
    wrong = fails({"arp": {"from": "pc1", "to": "r1", "ip": 6, "mac": "02:00:00:00:00:99"}})
    assert wrong.detail.endswith("(expected 02:00:00:00:00:99)")


def test_ndp_isolation_across_segments(dual):
    across = fails({"arp": {"from": "pc1", "to": "pc2", "ip": 6}})
    assert across.detail == f"blocked: no shared segment: no NDP reply for {PC2_6} on eth0"
    ok({"arp": {"from": "pc1", "to": "sensor", "expect": "blocked"}})
    ok({"arp": {"from": "sensor", "to": PC1_6, "expect": "blocked"}})
    shared = fails({"arp": {"from": "pc1", "to": "r1", "ip": 6, "expect": "blocked"}})
    assert "got through" in shared.detail


def test_ndp_is_really_neighbor_discovery(dual):
    """r1 stops answering Neighbor Solicitations: the IPv6 check fails, ARP still passes."""
    with nft_table("r1", "ip6", "chain input { type filter hook input priority 0; policy accept;"
                                " icmpv6 type nd-neighbor-solicit drop; }"):
        silent = fails({"arp": {"from": "pc1", "to": "r1", "ip": 6}}, timeout=0.5)
        assert silent.detail == "blocked: no NDP reply for 2001:db8:71:1::1 on eth0 in 0.5s"
        ok({"arp": {"from": "pc1", "to": "r1"}})


def test_ipv6_checks_on_an_ipv4_only_lab_say_why_not(deploy):
    topo = deploy("""
name: c6-v4
networks: {lan: {subnet: 10.72.0.0/24}}
nodes: {a: {networks: [lan]}, b: {networks: [lan]}}
dns: false
""")
    for check in ({"arp": {"from": "a", "to": "b", "ip": 6}}, {"mtu": {"from": "a", "to": "b", "size": 1500, "ip": 6}},
                  {"http": {"from": "a", "url": "http://b/", "ip": 6}}):
        result = one(topo.name, check)
        assert not result.ok and result.detail == "b has no IPv6 address"
    assert one(topo.name, {"arp": {"from": "a", "to": "b"}}).ok


# ---------------------------------------------------------------- tcp, udp, http, nat

def test_services_answer_over_both_families(dual):
    assert ok({"tcp": {"from": "pc1", "to": "pc2:9000", "ip": 6}}).detail == \
        f"connected to [{PC2_6}]:9000 (service)"
    assert ok({"tcp": {"from": "pc1", "to": "pc2:9000"}}).detail == "connected to 10.71.2.2:9000 (service)"
    assert ok({"udp": {"from": "sensor", "to": "pc2:7"}}).detail == f"[{PC2_6}]:7 answered (service)"
    assert ok({"udp": {"from": "pc1", "to": "pc2:7"}}).detail == "10.71.2.2:7 answered (service)"
    # the responder shows each peer as it is: IPv6 in brackets, IPv4 without ::ffff:
    ok({"http": {"from": "pc1", "url": f"http://[{PC2_6}]/", "body": f"seen [{PC1_6}]:"}})
    ok({"http": {"from": "sensor", "url": "http://pc2/", "body": f"seen [{SENSOR_6}]:"}})
    ok({"http": {"from": "pc1", "url": "http://pc2/", "body": "seen 10.71.1.2:"}})
    for to in ("pc2:9000", "pc2:7/udp"):
        assert ok({"nat": {"from": "pc1", "to": to, "seen_as": "pc1", "ip": 6}}).detail.endswith(
            f"saw {PC1_6} (service)")
        assert ok({"nat": {"from": "pc1", "to": to, "seen_as": "pc1"}}).detail.endswith("saw 10.71.1.2 (service)")
        ok({"nat": {"from": "sensor", "to": to, "seen_as": "sensor"}})
    wrong = fails({"nat": {"from": "pc1", "to": "pc2:9000", "seen_as": "2001:db8:71:1::99"}})
    assert wrong.detail == f"pc2:9000/tcp saw {PC1_6} (service); expected 2001:db8:71:1::99"


def test_temporary_listeners_take_both_families(dual):
    assert ok({"tcp": {"from": "pc1", "to": "sensor:22"}}).detail == f"connected to [{SENSOR_6}]:22 (temporary listener)"
    assert ok({"tcp": {"from": "sensor", "to": f"[{PC1_6}]:22"}}).detail.endswith("(temporary listener)")
    assert ok({"udp": {"from": "sensor", "to": "pc1:5353"}}).detail == f"[{PC1_6}]:5353 answered (temporary listener)"
    assert ok({"http": {"from": "pc1", "url": "http://pc2:8080/x", "ip": 6}}).detail == \
        "http://pc2:8080/x -> 200 (temporary listener)"
    ok({"http": {"from": "sensor", "url": f"http://[{PC1_6}]:8080/", "body": f"seen [{SENSOR_6}]:"}})
    for to in ("pc2:4444", "pc2:4445/udp"):
        assert ok({"nat": {"from": "pc1", "to": to, "seen_as": "pc1", "ip": 6}}).detail.endswith(
            f"saw {PC1_6} (temporary listener)")
        # an IPv4 peer of the dual-stack listener is shown as plain IPv4
        assert ok({"nat": {"from": "pc1", "to": to, "seen_as": "10.71.1.2"}}).detail.endswith(
            "saw 10.71.1.2 (temporary listener)")


def blocked_both_ways(checks: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """Run each check from pc1 over IPv6 twice, plainly and with `expect: blocked`, all at
    once; returns (type, detail) of the blocked ones after asserting the verdicts."""
    specs = [{kind: dict(body, **{"from": "pc1", "ip": 6}, **extra)}
             for kind, body in checks for extra in ({}, {"expect": "blocked"})]
    results = run(NAME, specs, timeout=0.5)
    plain, blocked = results[0::2], results[1::2]
    assert [r.spec.label for r in plain if r.ok] == []
    assert [(r.spec.label, r.detail) for r in blocked if not r.ok] == []
    return [(r.spec.kind, r.detail) for r in blocked]


def test_a_firewall_blocks_ipv6_and_says_how(dual):
    with nft_table("r2", "ip6", f"""chain forward {{ type filter hook forward priority 0; policy accept;
    ip6 daddr {PC2_6} tcp dport 9000 drop
    ip6 daddr {PC2_6} udp dport 7 drop
    ip6 daddr {PC2_6} tcp dport 80 reject with icmpv6 type admin-prohibited
    ip6 daddr {PC2_6} icmpv6 type echo-request drop
}}"""):
        found = blocked_both_ways([("tcp", {"to": "pc2:9000"}), ("udp", {"to": "pc2:7"}),
                                   ("http", {"url": f"http://[{PC2_6}]/"}), ("ping", {"to": "pc2"}),
                                   ("path", {"to": "pc2", "via": ["r1", "r2"]}),
                                   ("nat", {"to": "pc2:9000", "seen_as": "pc1"})])
        assert found == [("tcp", "blocked: timeout (no answer in 0.5s)"),
                         ("udp", "blocked: timeout (no answer in 0.5s)"),
                         ("http", "blocked: ICMP administratively prohibited (v6) from r2"),
                         ("ping", "blocked: timeout (no reply in 0.5s)"),
                         ("path", "blocked: timeout (no reply in 0.5s) after r1, r2"),
                         ("nat", "blocked: timeout (no answer in 0.5s)")]
        # IPv4 to the same ports is untouched, and so is what the rules do not name
        ok({"tcp": {"from": "pc1", "to": "pc2:9000"}})
        ok({"http": {"from": "pc1", "url": "http://pc2/"}})
        ok({"tcp": {"from": "pc1", "to": "pc2:9001", "ip": 6}})
    with nft_table("pc2", "ip6", "chain input { type filter hook input priority 0; policy accept;"
                                 " tcp dport 9002 reject with tcp reset; }"):
        refused = ok({"tcp": {"from": "pc1", "to": "pc2:9002", "ip": 6, "expect": "blocked"}})
        assert refused.detail == "blocked: refused"


def test_a_missing_route_blocks_ipv6_and_names_the_router(dual):
    """r1 loses its route to lan-b: every probe from pc1 gets ICMPv6 'no route' from r1
    (whose ICMPv6 rate limits leave out Destination Unreachable for the test, so that
    every one of the probes sent at once is answered)."""
    route = nsexec(ns("r1"), "ip", "-6", "route", "show", "2001:db8:71:2::/64", check=True).stdout.split()
    assert route[:2] == ["2001:db8:71:2::/64", "via"]
    mask = nsexec(ns("r1"), "sysctl", "-n", "net.ipv6.icmp.ratemask", check=True).stdout.strip()
    with changed("r1", ["sysctl", "-qw", "net.ipv6.icmp.ratemask=0,3-127"],
                 ["sysctl", "-qw", f"net.ipv6.icmp.ratemask={mask}"]), \
            changed("r1", ["ip", "-6", "route", "del", "2001:db8:71:2::/64"],
                    ["ip", "-6", "route", "replace", *route]):
        found = blocked_both_ways([("ping", {"to": "pc2"}), ("path", {"to": "pc2", "via": ["r1", "r2"]}),
                                   ("mtu", {"to": "pc2", "size": 1500}), ("tcp", {"to": "pc2:9000"}),
                                   ("udp", {"to": "pc2:7"}), ("http", {"url": f"http://[{PC2_6}]/"}),
                                   ("nat", {"to": "pc2:9000", "seen_as": "pc1"})])
        assert [(kind, detail) for kind, detail in found
                if detail != "blocked: ICMP no route (v6) from r1"] == []
        ok({"ping": {"from": "pc1", "to": "pc2"}})          # IPv4 still routed
    ok({"tcp": {"from": "pc1", "to": "pc2:9000", "ip": 6}})


# ---------------------------------------------------------------- parsing (no kernel needed)

def test_every_type_but_dns_takes_ip_and_ipv6_literals_are_canonical():
    problems = Problems()
    specs = parse_checks([
        {"arp": {"from": "a", "to": "b", "ip": 6}},
        {"path": {"from": "a", "to": "2001:DB8:0::0001", "via": ["b"]}},
        {"mtu": {"from": "a", "to": "b", "size": 1280, "ip": 6}},
        {"http": {"from": "a", "url": "http://[2001:db8::1]:8080/", "ip": 6}},
        {"nat": {"from": "a", "to": "[2001:db8::1]:80", "seen_as": "2001:DB8::2"}},
    ], {"a", "b"}, problems)
    assert problems.lines == []
    assert [s.label for s in specs] == [
        "arp a -> b over IPv6", "path a -> 2001:db8::1 via b", "mtu a -> b size 1280 over IPv6",
        "http a -> http://[2001:db8::1]:8080/", "nat a -> [2001:db8::1]:80 seen as 2001:db8::2"]


def test_ipv6_wire_formats():
    # a Packet Too Big quoting one of our echoes, as a raw ICMPv6 socket receives it
    inner = bytes(6) + bytes([58, 64]) + bytes(16) + bytes.fromhex("20010db8000000000000000000000002")
    echo = netio.echo_request6(7, 1400, b"x" * 8)
    msg = netio.parse6(bytes([2, 0, 0, 0]) + (1400).to_bytes(4, "big") + inner + echo, "2001:db8::1")
    assert (msg.too_big, msg.mtu, msg.ident, msg.seq, msg.inner_dst, msg.v6) == (True, 1400, 7, 1400, "2001:db8::2", True)
    assert len(netio.echo_of_size(True, 1, 1, 1280)) + 40 == 1280
    assert len(netio.echo_of_size(False, 1, 1, 1280)) + 20 == 1280
    assert l2.solicited_node("2001:db8:71:1::abcd:1234") == "ff02::1:ffcd:1234"
    ns_msg = l2.neighbor_solicitation("2001:db8::1", bytes.fromhex("020000000001"))
    assert ns_msg[0] == 135 and ns_msg[-8:] == bytes.fromhex("0101020000000001")
    advert = bytes([136, 0, 0, 0, 0x60, 0, 0, 0]) + bytes.fromhex("20010db8000000000000000000000001") + \
        bytes.fromhex("0201020000000002")
    assert l2.parse_advert(advert) == ("2001:db8::1", "02:00:00:00:00:02")
    assert responder.seen_reply(("::ffff:10.0.0.1", 5, 0, 0)) == b"NETLAB seen=10.0.0.1:5\n"
    assert responder.parse_seen(responder.seen_reply(("2001:db8::1", 5, 0, 0))) == "2001:db8::1"
    assert responder.parse_seen(b"NETLAB seen=10.0.0.1:5\n") == "10.0.0.1"
