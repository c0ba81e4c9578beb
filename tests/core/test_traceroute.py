"""The plain `traceroute` tool inside a lab shows every router hop, UDP and ICMP, IPv4 and
IPv6, also when run again and again: lab namespaces do not rate-limit ICMP errors (the
kernel's default, a burst of 6 per destination and then one a second, silenced the
time-exceeded and port-unreachable replies from the second run on: `* * *`)."""
from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import module_lab, nsexec, unavailable

pytestmark = pytest.mark.kernel

# pc1 --lan-a-- r1 ==== r2 ==== r3 --lan-c-- pc3: three routers between pc1 and pc3
TOPO = """
name: trace
networks:
  lan-a: {subnet: 10.63.1.0/24, subnet6: "2001:db8:63:1::/64"}
  lan-c: {subnet: 10.63.3.0/24, subnet6: "2001:db8:63:3::/64"}
nodes:
  r1: {kind: router, networks: {lan-a: [10.63.1.1, "2001:db8:63:1::1"]}}
  r2: {kind: router}
  r3: {kind: router, networks: {lan-c: [10.63.3.1, "2001:db8:63:3::1"]}}
  pc1: {networks: {lan-a: [10.63.1.10, "2001:db8:63:1::10"]}}
  pc3: {networks: {lan-c: [10.63.3.10, "2001:db8:63:3::10"]}}
links:
  - {endpoints: ["r1:eth1", "r2:eth1"], subnet: 10.63.12.0/30, subnet6: "2001:db8:63:12::/127"}
  - {endpoints: ["r2:eth2", "r3:eth1"], subnet: 10.63.23.0/30, subnet6: "2001:db8:63:23::/127"}
"""

# What each hop answers from: a router's address on the way back to pc1, then pc3
HOPS = {4: ["10.63.1.1", "10.63.12.2", "10.63.23.2", "10.63.3.10"],
        6: ["2001:db8:63:1::1", "2001:db8:63:12::1", "2001:db8:63:23::1", "2001:db8:63:3::10"]}

lab = module_lab(TOPO)

HOP_LINE = re.compile(r"^\s*(\d+)\s+(.*)$")


def traceroute(*args: str) -> list[tuple[int, list[str], int]]:
    """Run traceroute in pc1: (hop, addresses that answered, probes unanswered) per line."""
    if shutil.which("traceroute") is None:
        unavailable("traceroute is not installed (apt-get install traceroute)")
    done = nsexec("trace-pc1", "traceroute", "-n", "-w", "2", "-m", "6", *args, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    hops = []
    for line in done.stdout.splitlines()[1:]:
        match = HOP_LINE.match(line)
        assert match, f"unexpected line {line!r} in\n{done.stdout}"
        words = match.group(2).split()
        # "10.63.1.1  0.301 ms  0.007 ms  *": an address, then a time (or *) per probe;
        # anything else (!H, !N, ...) is kept, so that it fails the comparison
        answered = [w for i, w in enumerate(words) if w not in ("*", "ms")
                    and words[i + 1:i + 2] != ["ms"]]
        hops.append((int(match.group(1)), answered, words.count("*")))
    return hops


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("method", ["udp", "icmp"])
def test_traceroute_shows_every_router_hop_run_after_run(lab, version, method):
    want = HOPS[version]
    args = (["-6"] if version == 6 else []) + (["-I"] if method == "icmp" else []) + [want[-1]]
    for run in range(3):             # the second and third runs are what rate limits broke
        hops = traceroute(*args)
        seen = [(hop, sorted(set(addresses))) for hop, addresses, _ in hops]
        assert seen == [(i + 1, [a]) for i, a in enumerate(want)], f"run {run + 1}: {hops}"
        assert [missing for _, _, missing in hops] == [0] * len(want), f"run {run + 1}: {hops}"


def test_lab_namespaces_do_not_rate_limit_icmp_errors(lab):
    for node in ("r1", "r2", "r3", "pc1", "pc3"):
        for key in ("net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"):
            value = nsexec(f"trace-{node}", "sysctl", "-n", key, check=True).stdout.strip()
            assert value == "0", f"{node}: {key} = {value}"
