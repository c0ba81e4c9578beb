"""Benchmark: `netlab up`/`down` of an N-host LAN beside the bare-netlink floor.

Prints wall time, ms per node, peak RSS and the ratio to the floor for each N, each
command run as its own process (interpreter start-up included on both sides).
Usage (root): python3 bench/lan.py [N ...]      default: 100 300 1000

The lab's DNS server outlives `netlab up`; `netlab down` waits until it has exited, and
collecting it is then its parent's job. This script is that parent (a child subreaper)
and collects it at once, as systemd does as PID 1, so no zombie lingers between runs (the
PID 1 of the Firecracker VMs here collects orphans only 1.0 to 1.4 s after they exit).
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


PR_SET_CHILD_SUBREAPER = 36


def timed(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process. Orphans left to this process (the
    lab's DNS server, once its `netlab up` has exited) are collected as they exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        pid, status, usage = os.wait4(-1, 0)
        if pid == proc.pid:
            break
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 300, 1000]
    py = sys.executable
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0),
                            ctypes.c_ulong(0), ctypes.c_ulong(0))
    print(f"{'N':>5} {'what':<14} {'up s':>7} {'ms/node':>8} {'RSS MB':>7} {'down s':>7} "
          f"{'RSS MB':>7} {'up/floor':>9} {'down/floor':>10}")
    for n in sizes:
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write(subprocess.run([py, "-m", "netlab", "generate", "lan", "--hosts", str(n),
                                    "--name", "bench"], capture_output=True, text=True, check=True).stdout)
        try:
            floor_up = timed([py, os.path.join(HERE, "floor.py"), "up", str(n)])
            floor_down = timed([py, os.path.join(HERE, "floor.py"), "down", str(n)])
            lab_up = timed([py, "-m", "netlab", "up", f.name])
            lab_down = timed([py, "-m", "netlab", "down", "bench"])
        finally:
            os.unlink(f.name)
        for what, u, d in (("floor", floor_up, floor_down), ("netlab", lab_up, lab_down)):
            ratio = f"{u[0] / floor_up[0]:9.2f} {d[0] / floor_down[0]:10.2f}" if what == "netlab" else ""
            print(f"{n:>5} {what:<14} {u[0]:7.2f} {u[0] * 1000 / n:8.2f} {u[1]:7.1f} {d[0]:7.2f} "
                  f"{d[1]:7.1f} {ratio}", flush=True)


if __name__ == "__main__":
    main()
