"""The lab DNS server over IPv6 on the real kernel: on a dual-stack network it has an IPv6
address beside the IPv4 one and answers on both; an IPv6-only network's nodes ask it over
IPv6; resolv.conf lists IPv4 first, then IPv6; a node on IPv6 links only asks through its
router; `dns` checks ask the IPv6 server from IPv6-only nodes and with `ip: 6`; a live
network gains and loses its IPv6 server; `down` leaves nothing behind.

Queries are dnspython messages from sockets made inside the node's namespace (tests.test_dns
`ask`), or `getent` through `ip netns exec`, which reads the node's resolv.conf.
"""
from __future__ import annotations

import os
import subprocess

import dns.rcode
import dns.reversename
import pytest

from netlab.checks.l7 import dns_check
from netlab.checks.labinfo import LabView
from netlab.checks.spec import parse_checks
from netlab.core import kernel
from netlab.core import lab as labops
from netlab.core.errors import Problems
from netlab.core.loader import load_text
from netlab.core.state import LabState, lab_dir
from netlab.dns.resolv import shared_root
from tests.conftest import module_lab, nsexec
from tests.dns.test_kernel import ask, dns_pids, eventually, getent, values

pytestmark = pytest.mark.kernel

LAB = "d6-ds"
TOPO = f"""
name: {LAB}
domain: d6.test
networks:
  lan: {{subnet: 10.246.1.0/24, subnet6: "2001:db8:246:1::/64"}}
  dmz: {{subnet: 10.246.2.0/24, subnet6: "2001:db8:246:2::/64"}}
  v6net: {{subnet6: "2001:db8:246:3::/64"}}
nodes:
  r: {{kind: router, networks: [lan, dmz, v6net]}}
  pc: {{networks: [lan]}}
  web: {{networks: {{dmz: [10.246.2.10, "2001:db8:246:2::10"]}}}}
  sensor: {{networks: [v6net]}}
  far: {{}}
links:
  - endpoints: [r:eth5, far:eth0]
    subnet6: "2001:db8:246:12::/127"
dns:
  records:
    - {{name: api, cname: web}}
    - {{name: _http._tcp, srv: "web:80"}}
"""
LAN4, DMZ4 = "10.246.1.254", "10.246.2.254"
LAN6, DMZ6, V6NET = (f"2001:db8:246:{n}:ffff:ffff:ffff:ffff" for n in (1, 2, 3))
WEB6 = "2001:db8:246:2::10"

lab = module_lab(TOPO)


def nameservers(ns: str) -> list[str]:
    """Every nameserver of the node's resolv.conf, in order."""
    with open(f"/etc/netns/{ns}/resolv.conf") as f:
        return [line.split()[1] for line in f if line.startswith("nameserver")]


def global_addresses(ns: str, dev: str) -> list[str]:
    out = subprocess.run(["ip", "-n", ns, "-o", "addr", "show", "dev", dev, "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines()]


def listening(ns: str) -> set[str]:
    """'proto address:port' of every UDP and TCP socket listening in a namespace."""
    out = nsexec(ns, "ss", "-Hlnut", check=True).stdout
    return {f"{line.split()[0]} {line.split()[4]}" for line in out.splitlines()}


def ptr_name(address: str) -> str:
    return dns.reversename.from_address(address).to_text()


def check(lab_name: str, yaml_checks: str, ip: int | None = None):
    """Outcomes of `dns` checks written as in a topology file (ip: as `ip: 6` would set)."""
    import yaml
    meta = LabState.load(lab_name).plan.meta
    view = LabView.from_meta(lab_name, meta)
    problems = Problems()
    specs = parse_checks(yaml.safe_load(yaml_checks), set(view.ns), problems)
    assert not problems.lines, problems.lines
    for spec in specs:
        if ip:
            spec.opts["ip"] = ip
    return [dns_check(spec, view) for spec in specs]


# --- the server ------------------------------------------------------------------------

def test_the_server_has_and_listens_on_an_ipv6_address_beside_the_ipv4_one(lab):
    assert global_addresses(f"{LAB}--lab", "lan") == [f"{LAN4}/24", f"{LAN6}/64"]
    assert global_addresses(f"{LAB}--lab", "dmz") == [f"{DMZ4}/24", f"{DMZ6}/64"]
    assert global_addresses(f"{LAB}--lab", "v6net") == [f"{V6NET}/64"]
    sockets = listening(f"{LAB}--lab")
    for address in (f"[{LAN6}]", f"[{DMZ6}]", f"[{V6NET}]", LAN4, DMZ4):
        assert {f"udp {address}:53", f"tcp {address}:53"} <= sockets, address
    meta = LabState.load(LAB).plan.meta["dns"]
    assert meta["servers"] == {"lan": LAN4, "dmz": DMZ4}
    assert meta["servers6"] == {"lan": LAN6, "dmz": DMZ6, "v6net": V6NET}


def test_a_dual_stack_node_resolves_a_aaaa_and_ip6_ptr_over_ipv6(lab):
    ns = f"{LAB}-pc"
    assert values(ask(ns, "web.d6.test", "A", server=LAN6), "A") == ["10.246.2.10"]
    assert values(ask(ns, "web.d6.test", "AAAA", server=LAN6), "AAAA") == [WEB6]
    assert values(ask(ns, ptr_name(WEB6), "PTR", server=LAN6), "PTR") == ["web.d6.test."]
    assert values(ask(ns, ptr_name("2001:db8:246:3::2"), "PTR", server=LAN6), "PTR") == ["sensor.d6.test."]
    assert values(ask(ns, "api.d6.test", "AAAA", server=LAN6), "CNAME") == ["web.d6.test."]
    assert values(ask(ns, "_http._tcp.d6.test", "SRV", server=LAN6), "SRV") == ["0 0 80 web.d6.test."]
    assert values(ask(ns, "web.d6.test", "AAAA", tcp=True, server=LAN6), "AAAA") == [WEB6]
    for name in ("nosuch.d6.test", "example.com"):
        assert ask(ns, name, "AAAA", server=LAN6).rcode() == dns.rcode.NXDOMAIN, name


def test_resolv_conf_lists_the_ipv4_server_first_then_the_ipv6_one(lab):
    assert nameservers(f"{LAB}-pc") == [LAN4, LAN6]
    assert nameservers(f"{LAB}-web") == [DMZ4, DMZ6]
    assert nameservers(f"{LAB}-sensor") == [V6NET]
    assert nameservers(f"{LAB}-r") == [LAN4, DMZ4, V6NET]        # one per network, three at most
    assert LabState.load(LAB).plan.meta["dns"]["clients"]["pc"] == [LAN4, LAN6]


def test_a_dual_stack_node_falls_back_to_the_ipv6_server(lab):
    ns = f"{LAB}-pc"
    try:
        nsexec(ns, "ip", "route", "add", "prohibit", f"{LAN4}/32", check=True)
        assert nsexec(ns, "getent", "ahostsv4", "web").stdout.split()[:1] == ["10.246.2.10"]
        nsexec(ns, "ip", "-6", "route", "add", "prohibit", f"{LAN6}/128", check=True)
        assert nsexec(ns, "getent", "ahostsv4", "web").returncode != 0      # the IPv6 server answered
    finally:
        nsexec(ns, "ip", "route", "del", "prohibit", f"{LAN4}/32")
        nsexec(ns, "ip", "-6", "route", "del", "prohibit", f"{LAN6}/128")
    assert getent(ns, "web")["web"][0] == WEB6


def test_an_ipv6_only_node_resolves_through_its_resolv_conf(lab):
    ns = f"{LAB}-sensor"
    assert nameservers(ns) == [V6NET]
    assert getent(ns, "web")["web"][:2] == [WEB6, "web.d6.test"]
    assert getent(ns, "api")["api"][0] == WEB6
    assert values(ask(ns, "web.d6.test", "A"), "A") == ["10.246.2.10"]    # over IPv6 too
    assert nsexec(ns, "getent", "hosts", WEB6).stdout.split()[1] == "web.d6.test"
    assert values(ask(ns, "pc.d6.test", "AAAA"), "AAAA") == ["2001:db8:246:1::2"]


def test_a_node_on_ipv6_links_only_asks_through_its_router(lab):
    ns = f"{LAB}-far"
    assert nameservers(ns) == [DMZ6]
    route = subprocess.run(["ip", "-n", f"{LAB}--lab", "-6", "route", "show", "2001:db8:246:12::/127"],
                           capture_output=True, text=True, check=True).stdout
    assert "via 2001:db8:246:2::1 dev dmz" in route
    assert getent(ns, "web")["web"][0] == WEB6
    assert values(ask(ns, "sensor.d6.test", "AAAA"), "AAAA") == ["2001:db8:246:3::2"]


def test_dns_checks_ask_the_ipv6_server(lab):
    from_v6 = check(LAB, f"""
- {{dns: {{from: sensor, name: web, type: AAAA, expect: "{WEB6}"}}}}
- {{dns: {{from: far, name: sensor, type: AAAA}}}}
- {{dns: {{from: sensor, name: "{ptr_name(WEB6)}", type: PTR, expect: web}}}}
""")
    assert [o.good for o in from_v6] == [True, True, True], from_v6
    assert [o.detail.rsplit("(server ", 1)[1] for o in from_v6] == [f"{V6NET})", f"{DMZ6})", f"{V6NET})"]
    dual = "- {dns: {from: pc, name: web, expect: 10.246.2.10}}\n"
    assert check(LAB, dual)[0].detail.endswith(f"(server {LAN4})")
    over6 = check(LAB, dual, ip=6)[0]
    assert over6.good and over6.detail.endswith(f"(server {LAN6})"), over6
    assert check(LAB, dual, ip=4)[0].detail.endswith(f"(server {LAN4})")


# --- lifecycle -------------------------------------------------------------------------

SMALL = """
name: {name}
networks:
  lan: {{subnet: 10.247.1.0/24{lan6}}}
  v6: {{subnet6: "2001:db8:247:2::/64"}}
nodes:
  a: {{networks: [lan]}}
  b: {{networks: [v6]}}
"""
LAN6_SMALL = ', subnet6: "2001:db8:247:1::/64"'
SERVER6 = "2001:db8:247:1:ffff:ffff:ffff:ffff"


def test_a_live_network_gains_and_loses_its_ipv6_server(deploy):
    deploy(SMALL.format(name="d6-rc", lan6=""))
    assert nameservers("d6-rc-a") == ["10.247.1.254"]
    labops.up(load_text(SMALL.format(name="d6-rc", lan6=LAN6_SMALL)))
    assert global_addresses("d6-rc--lab", "lan") == ["10.247.1.254/24", f"{SERVER6}/64"]
    assert nameservers("d6-rc-a") == ["10.247.1.254", SERVER6]
    assert eventually(lambda: values(ask("d6-rc-a", "b.d6-rc.lab", "AAAA", server=SERVER6), "AAAA"))
    assert values(ask("d6-rc-b", "a.d6-rc.lab", "AAAA"), "AAAA") == ["2001:db8:247:1::1"]
    labops.up(load_text(SMALL.format(name="d6-rc", lan6="")))
    assert global_addresses("d6-rc--lab", "lan") == ["10.247.1.254/24"]
    assert nameservers("d6-rc-a") == ["10.247.1.254"]
    assert values(ask("d6-rc-b", "a.d6-rc.lab", "A"), "A") == ["10.247.1.1"]


def test_down_leaves_no_process_no_address_and_no_file():
    topo = load_text(SMALL.format(name="d6-dn", lan6=LAN6_SMALL))
    try:
        labops.up(topo)
        pid = LabState.load("d6-dn").extras["dns"]["pid"]
        assert dns_pids("d6-dn") == [pid]
        assert global_addresses("d6-dn--lab", "v6") == ["2001:db8:247:2:ffff:ffff:ffff:ffff/64"]
        assert nameservers("d6-dn-b") == ["2001:db8:247:2:ffff:ffff:ffff:ffff"]
    finally:
        labops.down("d6-dn")
    assert eventually(lambda: not dns_pids("d6-dn"))
    assert not [n for n in kernel.list_netns() if n.startswith("d6-dn-")]
    assert "2001:db8:247:" not in subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert not any(os.path.lexists(f"/etc/netns/d6-dn-{n}") for n in ("a", "b"))
    assert not os.path.exists(lab_dir("d6-dn"))
    assert not os.path.exists(shared_root("d6-dn"))
