"""NAT66 on the real kernel: `nat: {ipv6: true}` makes masquerade, snat and port forwards
translate IPv6 too; without it IPv6 is routed untranslated.

A dual-stack lab: pc on lan, web and peer on dmz, isp on wan plays the internet (lab-only
documentation prefixes, no traffic leaves the lab). Servers are plain sockets made inside
the node namespaces that answer with the peer address they saw (see tests/nft/test_kernel.py).
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from netlab.core import lab as labops
from netlab.core.loader import load_text
from netlab.nft.render import rule_texts
from tests.conftest import module_lab
from tests.nft.test_kernel import counters, expect, servers, tcp, udp  # noqa: F401 (servers: a fixture)

pytestmark = pytest.mark.kernel

ISP4, ISP6 = "198.51.100.1", "2001:db8:63:ff::1"
GW4, GW6 = "198.51.100.2", "2001:db8:63:ff::2"          # gw on wan
PC6, WEB6, GW_DMZ6 = "2001:db8:63:1::10", "2001:db8:63:2::10", "2001:db8:63:2::1"

TOPO = """
name: {name}
dns: false
networks:
  lan: {{subnet: 10.63.1.0/24, subnet6: "2001:db8:63:1::/64"}}
  dmz: {{subnet: 10.63.2.0/24, subnet6: "2001:db8:63:2::/64"}}
  wan: {{subnet: 198.51.100.0/24, subnet6: "2001:db8:63:ff::/64"}}
nodes:
  pc: {{networks: {{lan: [10.63.1.10, "2001:db8:63:1::10"]}}}}
  web: {{networks: {{dmz: [10.63.2.10, "2001:db8:63:2::10"]}}}}
  peer: {{networks: {{dmz: [10.63.2.20, "2001:db8:63:2::20"]}}}}
  isp: {{networks: {{wan: [198.51.100.1, "2001:db8:63:ff::1"]}}}}
  gw:
    kind: router
    networks:
      lan: [10.63.1.1, "2001:db8:63:1::1"]
      dmz: [10.63.2.1, "2001:db8:63:2::1"]
      wan: [198.51.100.2, "2001:db8:63:ff::2"]
    nat:
{nat}
    firewall:
      forward: drop
      allow:
        - {{from: [lan, dmz]}}
        - {{to: web, port: [80/tcp, 53/udp], dnat: true}}
"""

NAT44 = """\
      masquerade: [{out: wan, from: lan}]
      forward: [{port: 8080/tcp, to: "web:80", in: wan}]"""

NAT66 = """\
      ipv6: true
      masquerade: [{out: wan, from: lan}]
      snat: [{out: wan, from: dmz, to: "2001:db8:63:ff::2"}]
      forward:
        - {port: 8080/tcp, to: "web:80", in: wan}
        - {port: 5353/udp, to: "[2001:db8:63:2::10]:53", in: wan}"""


def topology(name: str, nat: str) -> str:
    return TOPO.format(name=name, nat=nat)


lab = module_lab(topology("n6-on", NAT66))


def test_without_ipv6_nat_ipv6_keeps_the_hosts_own_address(deploy, servers):
    topo = deploy(topology("n6-off", NAT44))
    ns = topo.netns
    servers(ns("isp"), ISP4, 9000)
    servers(ns("isp"), ISP6, 9000)
    servers(ns("web"), WEB6, 80)
    expect(tcp, ns("pc"), ISP4, 9000, want=f"seen {GW4}")          # IPv4 is masqueraded
    expect(tcp, ns("pc"), ISP6, 9000, want=f"seen {PC6}")          # IPv6 is routed as it is
    expect(tcp, ns("isp"), GW6, 8080, want="refused")              # no IPv6 port forward
    ruleset = next(s.ruleset for s in _nft_steps(topo.name) if s.node == "gw")
    assert not [origin for _, origin in rule_texts(ruleset) if origin.startswith("nat.") and "/ip6" in origin]
    # asking for NAT66 on the deployed lab re-applies gw's rules only
    changed = labops.up(load_text(topology("n6-off", NAT66)))
    assert (changed.created, changed.deleted) == (1, 1)
    expect(tcp, ns("pc"), ISP6, 9000, want=f"seen {GW6}")


def test_masquerade_and_snat_translate_ipv6(lab, servers):
    ns = lab.netns
    servers(ns("isp"), ISP4, 9000)
    servers(ns("isp"), ISP6, 9000)
    servers(ns("isp"), ISP6, 7, udp=True)
    expect(tcp, ns("pc"), ISP6, 9000, want=f"seen {GW6}")          # masquerade, IPv6
    expect(udp, ns("pc"), ISP6, 7, want=f"seen {GW6}")
    expect(tcp, ns("pc"), ISP4, 9000, want=f"seen {GW4}")          # and IPv4 as before
    expect(tcp, ns("web"), ISP6, 9000, want=f"seen {GW6}")         # snat to a fixed IPv6 address
    seen = counters(lab.name, "gw")
    assert seen[("postrouting", "nat.masquerade[0]/ip6")] >= 2
    assert seen[("postrouting", "nat.snat[0]/ip6")] >= 1


def test_ipv6_port_forward_reaches_the_inside_server(lab, servers):
    ns = lab.netns
    servers(ns("web"), WEB6, 80)
    servers(ns("web"), WEB6, 53, udp=True)
    expect(tcp, ns("isp"), GW6, 8080, want=f"seen {ISP6}")         # to the node's IPv6 address
    expect(udp, ns("isp"), GW6, 5353, want=f"seen {ISP6}")         # to an IPv6 literal
    expect(tcp, ns("isp"), WEB6, 80, want="timeout")               # dnat: true: only via the forward
    expect(tcp, ns("peer"), GW6, 8080, want=f"seen {GW_DMZ6}")     # hairpin: the server's own subnet
    expect(tcp, ns("pc"), GW6, 8080, want=f"seen {PC6}")           # from the lan: the real client


def test_rules_show_the_ip6_nat_rules_with_counters(lab, servers):
    ns = lab.netns
    servers(ns("isp"), ISP6, 9000)
    servers(ns("web"), WEB6, 80)
    expect(tcp, ns("pc"), ISP6, 9000, want=f"seen {GW6}")
    expect(tcp, ns("isp"), GW6, 8080, want=f"seen {ISP6}")
    out = subprocess.run([sys.executable, "-m", "netlab", "rules", lab.name, "gw"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rules = {m.group(3): (m.group(1), m.group(2)) for m in
             re.finditer(r"^\s+(\d+|-)\s+(\d+|-)\s+.*\s\[(\S+)\]$", out.stdout, re.M)}
    for origin in ("nat.masquerade[0]/ip6", "nat.forward[0]/ip6"):
        assert origin in rules, out.stdout
        assert int(rules[origin][0]) >= 1, f"{origin} counted nothing:\n{out.stdout}"
    assert "dnat ip6 to [2001:db8:63:2::10]:80  [nat.forward[0]/ip6]" in out.stdout
    assert rules["nat.forward[1]/ip6"][0].isdigit()


def _nft_steps(lab_name: str):
    from netlab.core.state import LabState
    from netlab.nft.compile import NftRuleset
    return [s for s in LabState.load(lab_name).plan.steps if isinstance(s, NftRuleset)]
