"""Each check type passes where it should and fails where it should, on real namespaces:
a missing route, a firewall drop (a plain nft rule added here), an MTU black hole, a
wrong DNS answer (a tiny DNS responder of the test's own), NAT seen by the far end."""
from __future__ import annotations

import socket
import subprocess
import threading

import dns.message
import dns.rcode
import dns.rrset
import pytest

from netlab.core import kernel
from netlab.core.errors import TopologyError
from netlab.core.state import LabState
from tests.conftest import nsexec

from .conftest import one, run

pytestmark = pytest.mark.kernel


def nft(ns: str, script: str) -> None:
    """A plain nft ruleset added by the test inside a lab node."""
    proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script,
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr


def test_everything_passes_on_a_healthy_lab(lab):
    name = lab("ck-ok")
    results = run(name, [
        {"arp": {"from": "pc1", "to": "pc2"}},
        {"arp": {"from": "pc1", "to": "isp", "expect": "blocked"}},
        {"ping": {"from": "pc1", "to": "isp"}},
        {"ping": {"from": "pc1", "to": "isp", "max_loss": "0%", "max_rtt": "100ms"}},
        {"ping": {"from": "pc1", "to": "lone", "expect": "blocked"}},
        {"path": {"from": "pc1", "to": "isp", "via": ["gw"]}},
        {"path": {"from": "pc1", "to": "pc2", "via": []}},
        {"mtu": {"from": "pc1", "to": "isp", "size": 1500}},
        {"tcp": {"from": "pc1", "to": "isp:9000"}},
        {"tcp": {"from": "isp", "to": "pc1:22"}},
        {"udp": {"from": "pc1", "to": "isp:7"}},
        {"udp": {"from": "isp", "to": "pc2:5353"}},
        {"http": {"from": "pc1", "url": "http://isp/", "body": "responder on isp"}},
        {"http": {"from": "pc1", "url": "http://pc2:8080/x"}},
        {"nat": {"from": "pc1", "to": "isp:9000", "seen_as": "pc1"}},
        {"nat": {"from": "pc1", "to": "isp:7/udp", "seen_as": "10.10.0.11"}},
        {"nat": {"from": "pc2", "to": "isp:4444", "seen_as": "pc2"}},
    ], timeout=1.0)
    failed = [(r.spec.label, r.detail) for r in results if not r.ok]
    assert not failed
    by_label = {r.spec.label: r.detail for r in results}
    assert "reached via gw" in by_label["path pc1 -> isp via gw"]
    assert "(temporary listener)" in by_label["tcp isp -> pc1:22"]
    assert "(service)" in by_label["tcp pc1 -> isp:9000"]
    assert by_label["http pc1 -> http://pc2:8080/x"].endswith("-> 200 (temporary listener)")
    assert by_label["http pc1 -> http://isp/"] == "http://isp/ -> 200"
    assert "(temporary listener)" in by_label["udp isp -> pc2:5353"]


def test_arp_wrong_mac_and_isolation(lab):
    name = lab("ck-arp")
    wrong = one(name, {"arp": {"from": "pc1", "to": "pc2", "mac": "02:00:00:00:00:99"}})
    assert not wrong.ok and "expected 02:00:00:00:00:99" in wrong.detail
    isolated = one(name, {"arp": {"from": "pc1", "to": "isp"}})
    assert not isolated.ok and "no shared segment" in isolated.detail
    shared = one(name, {"arp": {"from": "pc1", "to": "pc2", "expect": "blocked"}})
    assert not shared.ok and "got through" in shared.detail


def test_missing_route(lab):
    name = lab("ck-route")
    nsexec(f"{name}-pc1", "ip", "route", "del", "default", check=True)
    for check in ({"ping": {"from": "pc1", "to": "isp"}}, {"path": {"from": "pc1", "to": "isp", "via": ["gw"]}},
                  {"tcp": {"from": "pc1", "to": "isp:9000"}}, {"udp": {"from": "pc1", "to": "isp:7"}},
                  {"http": {"from": "pc1", "url": "http://isp/"}}):
        result = one(name, check)
        assert not result.ok, result.detail
        assert "unreachable" in result.detail or "no route" in result.detail, result.detail
    blocked = one(name, {"ping": {"from": "pc1", "to": "isp", "expect": "blocked"}})
    assert blocked.ok and blocked.detail == "blocked: no route"
    # the far side has no route back: requests arrive, replies cannot leave
    nsexec(f"{name}-isp", "ip", "route", "del", "default", check=True)
    assert not one(name, {"ping": {"from": "pc2", "to": "isp"}}).ok


def test_firewall_drop_and_reject(lab):
    name = lab("ck-fw")
    nft(f"{name}-gw", """
table inet cktest {
  chain forward {
    type filter hook forward priority 0; policy accept;
    tcp dport 9000 drop
    udp dport 7 drop
    tcp dport 80 reject with icmp type admin-prohibited
    ip daddr 198.51.100.1 icmp type echo-request drop
  }
}
""")
    tcp = one(name, {"tcp": {"from": "pc1", "to": "isp:9000"}})
    assert not tcp.ok and tcp.detail.startswith("blocked: timeout")
    tcp_blocked = one(name, {"tcp": {"from": "pc1", "to": "isp:9000", "expect": "blocked"}})
    assert tcp_blocked.ok and "timeout" in tcp_blocked.detail
    udp = one(name, {"udp": {"from": "pc1", "to": "isp:7", "expect": "blocked"}})
    assert udp.ok and "timeout" in udp.detail
    http = one(name, {"http": {"from": "pc1", "url": "http://isp/", "expect": "blocked"}})
    assert http.ok and "prohibited" in http.detail
    ping = one(name, {"ping": {"from": "pc1", "to": "isp"}})
    assert not ping.ok and "timeout" in ping.detail
    nat = one(name, {"nat": {"from": "pc1", "to": "isp:9000", "seen_as": "pc1", "expect": "blocked"}})
    assert nat.ok
    # what the rules do not touch still passes
    assert one(name, {"tcp": {"from": "pc1", "to": "isp:9001"}}).ok
    # a reject on the target itself: refused
    nft(f"{name}-isp", """
table inet cktest {
  chain input { type filter hook input priority 0; policy accept; tcp dport 9001 reject with tcp reset; }
}
""")
    refused = one(name, {"tcp": {"from": "pc1", "to": "isp:9001", "expect": "blocked"}})
    assert refused.ok and refused.detail == "blocked: refused"


def test_blocked_expectation_fails_when_reachable(lab):
    name = lab("ck-open")
    results = run(name, [{t: dict(body, expect="blocked")} for t, body in [
        ("ping", {"from": "pc1", "to": "isp"}), ("tcp", {"from": "pc1", "to": "isp:9000"}),
        ("udp", {"from": "pc1", "to": "isp:7"}), ("http", {"from": "pc1", "url": "http://isp/"}),
        ("mtu", {"from": "pc1", "to": "isp", "size": 1400}), ("path", {"from": "pc1", "to": "isp", "via": ["gw"]}),
        ("nat", {"from": "pc1", "to": "isp:9000", "seen_as": "pc1"})]])
    assert all(not r.ok and "got through" in r.detail for r in results), [r.detail for r in results]


def test_path_through_the_wrong_router(lab):
    name = lab("ck-path")
    result = one(name, {"path": {"from": "pc1", "to": "isp", "via": []}})
    assert not result.ok and "reached via gw; expected via (direct)" in result.detail


def test_mtu_black_hole(lab):
    name = lab("ck-mtu")
    # isp's interface takes at most 1400 bytes: bigger frames die in the veth, no ICMP
    nsexec(f"{name}-isp", "ip", "link", "set", "eth0", "mtu", "1400", check=True)
    result = one(name, {"mtu": {"from": "pc1", "to": "isp", "size": 1500}})
    assert not result.ok
    # (a veth lets 4 bytes more through: room for a VLAN tag)
    assert "largest packet with DF through is 140" in result.detail and "black hole" in result.detail
    assert one(name, {"mtu": {"from": "pc1", "to": "isp", "size": 1400}}).ok
    assert one(name, {"ping": {"from": "pc1", "to": "isp"}}).ok     # small packets still pass
    # a router that knows the smaller MTU says so (ICMP fragmentation needed)
    nsexec(f"{name}-gw", "ip", "link", "set", "eth1", "mtu", "1300", check=True)
    told = one(name, {"mtu": {"from": "pc1", "to": "isp", "size": 1500}})
    assert not told.ok and "1300" in told.detail and "fragmentation needed" in told.detail


def test_ping_thresholds(lab):
    name = lab("ck-loss")
    rtt = one(name, {"ping": {"from": "pc1", "to": "isp", "max_rtt": "0.0001ms", "count": 3}})
    assert not rtt.ok and "rtt above" in rtt.detail
    nft(f"{name}-isp", """
table inet cktest {
  chain input { type filter hook input priority 0; policy accept; icmp type echo-request numgen random mod 100 < 60 drop; }
}
""")
    lossy = one(name, {"ping": {"from": "pc1", "to": "isp", "max_loss": "20%", "count": 30}})
    assert not lossy.ok and "loss above 20%" in lossy.detail
    assert one(name, {"ping": {"from": "pc1", "to": "isp", "count": 30}}).ok   # some replies: reachable


class TinyDns:
    """A DNS responder of the test's own, in a node: fixed A records, NXDOMAIN otherwise,
    or silence."""

    def __init__(self, ns: str, records: dict[str, str]):
        with kernel.entered(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 53))
        self.sock.settimeout(0.2)
        self.records, self.silent, self.stopped = records, False, False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            if self.silent:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name.to_text()
            if name in self.records:
                reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", self.records[name]))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def stop(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()


def test_dns_answers(lab):
    name = lab("ck-dns")
    server = TinyDns(f"{name}-isp", {"web.ck-dns.lab.": "10.20.0.2", "wrong.ck-dns.lab.": "10.20.0.9"})
    try:
        base = {"from": "pc1", "server": "isp"}
        assert one(name, {"dns": dict(base, name="web", expect="10.20.0.2")}).ok
        wrong = one(name, {"dns": dict(base, name="wrong", expect="10.20.0.2")})
        assert not wrong.ok and "-> 10.20.0.9" in wrong.detail and "expected 10.20.0.2" in wrong.detail
        assert one(name, {"dns": dict(base, name="nothere", expect="nxdomain")}).ok
        missing = one(name, {"dns": dict(base, name="nothere")})
        assert not missing.ok and "NXDOMAIN" in missing.detail
        assert one(name, {"dns": dict(base, name="web.ck-dns.lab")}).ok
        server.silent = True
        silent = one(name, {"dns": dict(base, name="web", expect="blocked")})
        assert silent.ok and "timeout" in silent.detail
    finally:
        server.stop()
    refused = one(name, {"dns": {"from": "pc1", "server": "pc2", "name": "web", "expect": "blocked"}})
    assert refused.ok and "refused" in refused.detail



def test_dns_of_the_lab(lab):
    """The lab's own DNS (netlab.dns) when it is there; a clear failure when it is off."""
    records = """dns:
  records:
    - {name: www, cname: isp}
    - {name: _web._tcp, srv: "isp:80"}
    - {name: info, txt: ["a=1", "b=2"]}
"""
    try:
        name = lab("ck-labdns", records)
    except TopologyError:
        pytest.skip("the lab DNS feature (dns: records) is not present")
    if not (LabState.load(name).plan.meta.get("dns") or {}).get("enabled"):
        pytest.skip("the lab DNS feature is not present")
    base = {"from": "pc1"}
    assert one(name, {"dns": dict(base, name="www", type="CNAME", expect="isp")}, timeout=1.0).ok
    assert one(name, {"dns": dict(base, name="www", expect="198.51.100.1")}, timeout=1.0).ok
    assert one(name, {"dns": dict(base, name="_web._tcp", type="srv", expect="isp:80")}, timeout=1.0).ok
    srv = one(name, {"dns": dict(base, name="_web._tcp", type="SRV", expect="isp:8080")}, timeout=1.0)
    assert not srv.ok and "SRV -> isp.ck-labdns.lab:80" in srv.detail
    assert one(name, {"dns": dict(base, name="info", type="TXT", expect=["a=1", "b=2"])}, timeout=1.0).ok
    assert one(name, {"dns": {"from": "pc1", "name": "isp", "expect": "198.51.100.1"}}, timeout=1.0).ok
    wrong = one(name, {"dns": {"from": "pc1", "name": "isp", "expect": "198.51.100.9"}}, timeout=1.0)
    assert not wrong.ok and "expected 198.51.100.9" in wrong.detail
    assert one(name, {"dns": {"from": "pc1", "name": "nobody", "expect": "nxdomain"}}, timeout=1.0).ok


def test_dns_off(lab):
    name = lab("ck-nodns", "dns: false\n")
    nodns = one(name, {"dns": {"from": "pc1", "name": "web", "expect": "blocked"}})
    assert not nodns.ok and "no DNS server" in nodns.detail


def test_nat_seen_as_after_masquerade(lab):
    name = lab("ck-nat")
    nft(f"{name}-gw", """
table ip cktest {
  chain post { type nat hook postrouting priority 100; oifname "eth1" masquerade; }
}
""")
    for to in ("isp:9000", "isp:7/udp", "isp:4444", "isp:4445/udp"):
        result = one(name, {"nat": {"from": "pc1", "to": to, "seen_as": "198.51.100.2"}})
        assert result.ok, (to, result.detail)
        wrong = one(name, {"nat": {"from": "pc1", "to": to, "seen_as": "pc1"}})
        assert not wrong.ok and "saw 198.51.100.2" in wrong.detail


V6 = """
name: {name}
networks:
  lan-a: {{subnet: 10.71.1.0/24, subnet6: "2001:db8:71:1::/64"}}
  v6only: {{subnet6: "2001:db8:71:3::/64"}}
nodes:
  r1: {{kind: router, networks: [lan-a, v6only]}}
  pc1: {{networks: [lan-a]}}
  sensor: {{networks: [v6only]}}
dns: false
"""


def test_ipv6_ping_tcp_udp(deploy):
    name = deploy(V6.format(name="ck-v6")).name
    results = run(name, [
        {"ping": {"from": "pc1", "to": "sensor"}},                    # sensor has only IPv6
        {"ping": {"from": "sensor", "to": "pc1"}},
        {"ping": {"from": "pc1", "to": "r1", "ip": 6}},
        {"tcp": {"from": "pc1", "to": "sensor:22"}},
        {"udp": {"from": "sensor", "to": "pc1:5000"}},
        {"tcp": {"from": "sensor", "to": "[2001:db8:71:1::2]:80"}},
        {"ping": {"from": "pc1", "to": "2001:db8:99::1", "expect": "blocked"}},
    ], timeout=1.0)
    assert [(r.spec.label, r.detail) for r in results if not r.ok] == []
    assert results[0].detail.startswith("2001:db8:71:3::2: 3/3 replies")
    assert "no route (v6) from r1" in results[-1].detail
    from netlab.checks.labinfo import LabView
    from netlab.checks.matrix import all_pairs
    matrix = all_pairs(LabView.from_meta(name, LabState.load(name).plan.meta))
    assert matrix.reachable == 6 and not matrix.failed
    assert matrix.families() == {4: (2, 2), 6: (6, 6)}       # pc1 <-> r1 in both, sensor v6 only
    nft(f"{name}-r1", """
table ip6 cktest {
  chain forward { type filter hook forward priority 0; policy accept; tcp dport 22 drop; icmpv6 type echo-request drop; }
}
""")
    assert one(name, {"tcp": {"from": "pc1", "to": "sensor:22", "expect": "blocked"}}).detail.startswith("blocked: timeout")
    assert one(name, {"ping": {"from": "pc1", "to": "sensor", "expect": "blocked"}}).ok
