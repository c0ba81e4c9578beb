"""Benchmark: a 300-node lab spread over 3 hosts (simulated as namespaces, each with an
etcd member and an agent) against the same lab on one host.

Prints, for each run: `netlab up` wall time as a process (controller included: compile,
placement, split, one etcd transaction, waiting for every agent), each agent's own apply
time, `netlab check` (pings across hosts) and `netlab down`; then the ratio to one host.
The generated lab is `netlab generate lan` (one segment, so every host's part is
stitched to the others by VXLAN). Usage (root): python3 bench/multihost.py [N] [HOSTS]
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..")]
import lan  # noqa: E402  (bench/lan.py: timed, the subreaper)

from netlab.multihost.sim import SimCluster  # noqa: E402

SETTLE = 5.0     # seconds for the kernel to finish freeing removed namespaces (it does so
                 # after `down` returns, under the locks that making namespaces needs)


def timed(run) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def lan_file(n: int) -> str:
    text = subprocess.run([sys.executable, "-m", "netlab", "generate", "lan", "--hosts", str(n),
                           "--name", "mhbench"], capture_output=True, text=True, check=True).stdout
    text += "checks:\n" + "".join(f"  - {{ping: {{from: h{1:0{len(str(n))}d}, to: h{i:0{len(str(n))}d}}}}}\n"
                                  for i in (2, n // 2, n))
    f = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    f.write(text)
    f.close()
    return f.name


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    path = lan_file(n)
    ctypes.CDLL(None).prctl(lan.PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0),
                            ctypes.c_ulong(0), ctypes.c_ulong(0))
    py = [sys.executable, "-m", "netlab"]
    try:
        # as bench/lan.py: this script collects the DNS server `up` leaves behind at once, as
        # systemd would as PID 1, so `down` measures netlab, not the host's init
        one_up, _ = lan.timed(py + ["up", path])
        one_check, _ = lan.timed(py + ["check", path])
        one_down, _ = lan.timed(py + ["down", "mhbench"])
        time.sleep(SETTLE)
        print(f"one host:  {n} nodes  up {one_up:6.2f}s  check {one_check:5.2f}s  down {one_down:5.2f}s")
        with SimCluster("mhb", hosts=hosts, ttl=5, net=9) as sim:
            time.sleep(SETTLE)
            up, r = timed(lambda: sim.netlab("up", path, timeout=600))
            agents = {m.group(1): float(m.group(2)) for m in re.finditer(r"(h\d+): \d+ created, \d+ removed in ([\d.]+)s", r.stderr)}
            check, c = timed(lambda: sim.netlab("check", path, check=False))
            status = json.loads(sim.netlab("status", "--json").stdout)
            healthy = status["labs"][0]["healthy"]
            down, _ = timed(lambda: sim.netlab("down", "mhbench", timeout=600))
        print(f"{hosts} hosts:   {n} nodes  up {up:6.2f}s  check {check:5.2f}s  down {down:5.2f}s  "
              f"(agents: {', '.join(f'{h} {s:.2f}s' for h, s in sorted(agents.items()))}; "
              f"healthy {healthy}; checks exit {c.returncode})")
        print(f"ratio {hosts} hosts / one host: up {up / one_up:.2f}x, down {down / one_down:.2f}x "
              f"(this machine has {os.cpu_count()} cores for all {hosts} agents)")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
