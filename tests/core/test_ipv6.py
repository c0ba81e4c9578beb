"""Dual-stack labs on the real kernel: IPv6 addressing, forwarding and routes, no DAD
delay, and a clear refusal when IPv6 is disabled."""
from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys

import pytest

from netlab.core.state import LabState
from tests.conftest import nsexec

pytestmark = pytest.mark.kernel
EXAMPLE = pathlib.Path(__file__).parents[2] / "topologies" / "dualstack.yml"


def lab_text() -> str:
    return EXAMPLE.read_text().replace("name: dual\n", "name: core-v6\n")


def test_every_node_reaches_every_other_over_ipv6_right_after_up(deploy):
    deploy(lab_text())
    nodes = LabState.load("core-v6").plan.meta["nodes"]
    v6 = {n: [i["address6"].split("/")[0] for i in info["interfaces"] if i.get("address6")]
          for n, info in nodes.items()}
    failures = []
    for a, b in itertools.permutations(v6, 2):
        # -w 1 with no retry: an address still doing DAD would fail this at once
        r = nsexec(f"core-v6-{a}", "ping", "-6", "-c", "1", "-w", "2", v6[b][0])
        if r.returncode != 0:
            failures.append(f"{a} -> {b} {v6[b][0]}")
    assert not failures
    out = nsexec("core-v6-pc1", "ip", "-6", "addr", "show", "dev", "eth0").stdout
    assert "tentative" not in out and "2001:db8:71:1::2/64" in out
    assert nsexec("core-v6-r1", "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"


def test_ipv4_still_works_beside_ipv6(deploy):
    deploy(lab_text())
    assert nsexec("core-v6-pc1", "ping", "-c", "1", "-W", "1", "10.71.2.2").returncode == 0


def test_status_shows_both_families(deploy):
    deploy(lab_text())
    text = subprocess.run([sys.executable, "-m", "netlab", "status", "core-v6"],
                          capture_output=True, text=True).stdout
    assert "eth0=10.71.1.2/24+2001:db8:71:1::2/64" in text          # pc1, dual stack
    assert "eth0=2001:db8:71:3::2/64" in text                        # sensor, IPv6 only
    assert "r1:eth1 10.71.12.1/30 2001:db8:71:12::/127 <-> r2:eth2 10.71.12.2/30 2001:db8:71:12::1/127" in text


SCRIPT = """
set -eu
mkdir -p /run/netns
mount -t tmpfs netlab-test /run/netns
export NETLAB_STATE_DIR=$(mktemp -d)
sysctl -qw net.ipv6.conf.all.disable_ipv6=1
"$PYTHON" -m netlab up "$V6" && echo "v6 deployed" || echo "v6 refused rc=$?"
"$PYTHON" -m netlab generate lan --hosts 3 --name core-v4 > "$NETLAB_STATE_DIR/v4.yml"
"$PYTHON" -m netlab up "$NETLAB_STATE_DIR/v4.yml" >/dev/null && echo "v4 deployed"
ip netns exec core-v4-h1 ping -c 1 -W 1 10.0.0.2 >/dev/null && echo "v4 pings"
"$PYTHON" -m netlab destroy --all >/dev/null
"""


def test_host_with_ipv6_disabled_deploys_ipv4_and_refuses_ipv6(tmp_path):
    """Runs in a fresh network and mount namespace playing the host, so the real
    host's sysctls are never touched."""
    v6 = tmp_path / "v6.yml"
    v6.write_text(lab_text())
    r = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", SCRIPT],
                       capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": sys.executable, "V6": str(v6)})
    assert "v6 refused rc=1" in r.stdout, r.stdout + r.stderr
    assert r.stderr.splitlines()[0] == (
        "netlab: networks.lan-a.subnet6: this lab uses IPv6, but IPv6 is disabled on this host "
        "(net.ipv6.conf.all.disable_ipv6=1); enable it or remove the IPv6 subnets")
    assert "v4 deployed" in r.stdout and "v4 pings" in r.stdout, r.stdout + r.stderr


def test_every_place_that_asks_for_ipv6_is_named_for_the_refusal():
    from netlab.core.lab import _uses_ipv6
    from netlab.core.loader import load_text
    assert _uses_ipv6(load_text(lab_text())) == "networks.lan-a.subnet6"
    gre = """
name: core-v6gre
networks: {wan: {subnet: 10.74.0.0/24}}
nodes:
  a: {kind: router, networks: [wan]}
  b: {kind: router, networks: [wan]}
tunnels:
  - {type: gre, endpoints: [a, b], subnet: 172.16.74.0/30, subnet6: "2001:db8:74::/127"}
"""
    from netlab.tunnels.spec import (
        uses_ipv6,  # the tunnels feature names its own (preflight)
    )
    assert _uses_ipv6(load_text(gre)) is None and uses_ipv6(load_text(gre)) == "tunnels[0].subnet6"
    assert uses_ipv6(load_text(gre.replace(', subnet6: "2001:db8:74::/127"', ""))) is None
