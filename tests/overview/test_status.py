"""`netlab status` with links, tunnels, faults and rule counters (netlab.overview)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netlab.overview import status as overview
from tests.conftest import nsexec

ENTRY = {
    "lab": "plx", "nodes": [
        {"name": "gw", "nft": {"chains": {"forward": {"rules": [
            {"from": "firewall.allow[0]", "rule": "iifname eth0 accept", "packets": 12, "bytes": 900},
            {"from": "firewall.allow[1]", "rule": "tcp dport 80 accept", "packets": 0, "bytes": 0}]},
            "postrouting": {"rules": [{"from": "nat.masquerade[0]", "rule": "oifname eth2 masquerade",
                                       "packets": 3, "bytes": 180}]}}}},
        {"name": "pc1"}],
    "links": [{"endpoints": [{"node": "r1", "ifname": "eth1", "address": "192.0.2.1/30", "state": "up"},
                             {"node": "r2", "ifname": "eth1", "address": "192.0.2.2/30", "state": "down"}],
               "mtu": None, "up": False}],
    "tunnels": [{"netns": "plx-a", "ifname": "vx42", "type": "vxlan", "local": "10.0.0.1",
                 "remotes": ["10.0.0.2"], "vni": 42, "key": None, "network": "stretched", "mtu": 1450}],
    "faults": ["gw:eth2 egress loss 10%", "partition pc1 | isp"],
}


def test_table_lines_show_links_tunnels_faults_and_counters():
    assert overview.status_lines(ENTRY) == [
        "  links:",
        "    r1:eth1 192.0.2.1/30 <-> r2:eth1 192.0.2.2/30  UP/DOWN",
        "  tunnels:",
        "    plx-a:vx42 vxlan vni 42 10.0.0.1 -> 10.0.0.2 bridge stretched",
        "  faults:",
        "    gw:eth2 egress loss 10%",
        "    partition pc1 | isp",
        "  rule counters:",
        "           12 pkts  gw forward: iifname eth0 accept",
        "            3 pkts  gw postrouting: oifname eth2 masquerade",
    ]


def test_table_lines_empty_for_a_plain_lab():
    assert overview.status_lines({"lab": "plx", "nodes": [{"name": "a"}]}) == []


LAB = """
name: plstat
networks:
  lan-a: {subnet: 10.81.0.0/24}
nodes:
  r1: {kind: router, networks: [lan-a]}
  r2: {kind: router}
  pc1: {networks: [lan-a]}
links:
  - endpoints: [r1:eth5, r2:eth5]
    subnet: 192.0.2.8/30
"""


def _status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netlab", "status", "plstat", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.kernel
def test_status_shows_links_and_their_state(deploy):
    deploy(LAB)
    entry = json.loads(_status("--json").stdout)[0]
    assert entry["links"] == [{"endpoints": [
        {"node": "r1", "ifname": "eth5", "address": "192.0.2.9/30", "address6": None, "state": "up"},
        {"node": "r2", "ifname": "eth5", "address": "192.0.2.10/30", "address6": None, "state": "up"}],
        "mtu": None, "up": True}]
    assert "    r1:eth5 192.0.2.9/30 <-> r2:eth5 192.0.2.10/30\n" in _status().stdout
    nsexec("plstat-r2", "ip", "link", "set", "eth5", "down", check=True)
    entry = json.loads(_status("--json").stdout)[0]
    assert [e["state"] for e in entry["links"][0]["endpoints"]] == ["no-carrier", "down"]
    assert entry["links"][0]["up"] is False
    assert "NO-CARRIER/DOWN" in _status().stdout
