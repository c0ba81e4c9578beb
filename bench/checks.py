"""Benchmark: `netlab check --all-pairs` against Mininet's pingAll on the same LAN, in the
same run, and all-pairs on 100 hosts (9,900 pairs).

    sudo python3 bench/checks.py [--hosts 40] [--big 100] [--no-mininet]

Mininet (Debian's `mininet` + `bridge-utils`, run by /usr/bin/python3) is started inside
a namespace of its own (`ck-mnbench`), so its bridge never meets Docker's FORWARD DROP in
the host namespace and nothing of it lands in the host's root namespace.

All-pairs needs one ARP entry per ordered pair, and the kernel's ARP table is shared by
every namespace, capped by the host's net.ipv4.neigh.default.gc_thresh3 (1024 by
default): 40 hosts need 1,560 entries, 100 hosts 9,900. netlab works under the cap as
it is (in rounds that fit, forgetting each round's entries: netlab/checks/neigh.py).
Mininet cannot: above the cap the kernel drops its packets ("neighbour table overflow"),
so the bench raises the cap for Mininet's run only and restores it before netlab's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netlab.checks.labinfo import LabView  # noqa: E402
from netlab.checks.matrix import all_pairs  # noqa: E402
from netlab.core import kernel  # noqa: E402
from netlab.core import lab as labops  # noqa: E402
from netlab.core.generate import lan  # noqa: E402
from netlab.core.loader import load_text  # noqa: E402
from netlab.core.state import LabState  # noqa: E402

GC = "/proc/sys/net/ipv4/neigh/default/gc_thresh"
MININET_PY = "/usr/bin/python3"
MININET_NS = "ck-mnbench"
MININET_SCRIPT = r"""
import json, sys, time
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import SingleSwitchTopo
setLogLevel("warning")
n = int(sys.argv[1])
t0 = time.time()
net = Mininet(topo=SingleSwitchTopo(n), switch=LinuxBridge, controller=None, autoSetMacs=True)
net.start()
t1 = time.time()
loss = net.pingAll(timeout=1)
t2 = time.time()
net.stop()
t3 = time.time()
print(json.dumps({"hosts": n, "setup": t1 - t0, "pingall": t2 - t1, "loss": loss, "stop": t3 - t2}))
"""


def read_gc() -> list[int]:
    return [int(open(f"{GC}{i}").read()) for i in (1, 2, 3)]


def write_gc(values: list[int]) -> None:
    for i, v in zip((1, 2, 3), values):
        with open(f"{GC}{i}", "w") as f:
            f.write(str(v))


def _deploy(hosts: int, name: str) -> tuple[LabView, float]:
    t0 = time.monotonic()
    labops.up(load_text(lan(hosts, name)))
    return LabView.from_meta(name, LabState.load(name).plan.meta), time.monotonic() - t0


def netlab_all_pairs(hosts: int, name: str, runs: int = 3) -> dict:
    """Cold (a fresh lab: every ARP entry still to be made) in-process, then on another
    fresh lab the CLI cold (`netlab check LAB --all-pairs`, start-up included), then warm."""
    view, setup = _deploy(hosts, name)
    try:
        cold = all_pairs(view)
    finally:
        labops.down(name)
    view, _ = _deploy(hosts, name)
    try:
        t0 = time.monotonic()
        cli = subprocess.run([sys.executable, "-c", "from netlab.cli import main; main()", "check", name, "--all-pairs"],
                             capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        cli_wall = time.monotonic() - t0
        warm = [all_pairs(view) for _ in range(runs)]
    finally:
        labops.down(name)
    pairs = hosts * (hosts - 1)
    return {"hosts": hosts, "pairs": pairs, "setup": setup, "cold": cold.seconds,
            "warm": min(m.seconds for m in warm), "reachable": [m.reachable for m in [cold, *warm]],
            "rounds": [m.rounds for m in [cold, *warm]],
            "cli_wall": cli_wall, "cli_exit": cli.returncode, "cli_first_line": cli.stdout.split("\n")[0]}


def mininet_pingall(hosts: int) -> dict:
    if not os.path.exists(MININET_PY) or subprocess.run(
            [MININET_PY, "-c", "import mininet.net"], capture_output=True).returncode != 0:
        return {"error": "Mininet is not installed for /usr/bin/python3 (apt-get install mininet bridge-utils)"}
    with kernel.created(MININET_NS):
        pass
    try:
        proc = subprocess.run(["ip", "netns", "exec", MININET_NS, MININET_PY, "-c", MININET_SCRIPT, str(hosts)],
                              capture_output=True, text=True, timeout=600)
    finally:
        kernel.delete(MININET_NS)
    if proc.returncode != 0:
        return {"error": f"Mininet failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def with_raised_cap(hosts: int, run):
    """Run Mininet with the ARP cap raised enough for its pingAll; restore it after."""
    need = hosts * (hosts - 1) * 2 + 4096
    saved = read_gc()
    if saved[2] < need:
        print(f"raising net.ipv4.neigh.default.gc_thresh3 {saved[2]} -> {need} for Mininet's run "
              f"(pingAll needs an ARP entry per ordered pair; restored right after)")
        write_gc([saved[0], max(saved[1], need // 2), need])
    try:
        return run(hosts)
    finally:
        write_gc(saved)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--big", type=int, default=100)
    parser.add_argument("--no-mininet", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/checks.py needs root")
    small = netlab_all_pairs(args.hosts, "ck-b40")
    mn = {"error": "skipped (--no-mininet)"} if args.no_mininet else with_raised_cap(args.hosts, mininet_pingall)
    big = netlab_all_pairs(args.big, "ck-b100")
    print(f"\nall-pairs reachability, {args.hosts} hosts on one LAN ({small['pairs']} ordered pairs)")
    print(f"  netlab all-pairs   cold {small['cold']:.3f}s  warm {small['warm']:.3f}s  "
          f"(reachable {small['reachable']})  `netlab check --all-pairs` cold, wall {small['cli_wall']:.2f}s")
    if "error" in mn:
        print(f"  Mininet pingAll    {mn['error']}")
    else:
        print(f"  Mininet pingAll    {mn['pingall']:.3f}s  (loss {mn['loss']}%, "
              f"{mn['pingall'] / small['pairs'] * 1000:.2f} ms/pair)")
        print(f"  speed-up           {mn['pingall'] / small['cold']:.0f}x cold, "
              f"{mn['pingall'] / small['warm']:.0f}x warm (goal >= 20x)")
    print(f"\nall-pairs, {args.big} hosts ({big['pairs']} pairs): cold {big['cold']:.3f}s, warm {big['warm']:.3f}s, "
          f"reachable {big['reachable']}, rounds {big['rounds']}; `netlab check --all-pairs` cold, wall {big['cli_wall']:.2f}s "
          f"(goal: within 2 s)")
    print(json.dumps({"netlab_small": small, "mininet": mn, "netlab_big": big}, indent=1))


if __name__ == "__main__":
    main()
