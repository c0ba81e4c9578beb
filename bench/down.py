"""Benchmark: what `netlab down` of a small lab costs in imports and time.

Deploys examples/lab.yml (DNS server, responders, a firewall) under the name `benchdown`,
then runs `netlab down` as its own process and counts the modules it had loaded at exit
(sys.modules: every module, the standard library's included) and its wall time; N rounds,
the median printed. The layout keeps `down` light: it loads the core, the steps of the
lab's state and the teardown hooks, no compiler, loader, pyroute2 or Docker client.
Usage (root): python3 bench/down.py [ROUNDS]      default: 9
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..")]
from lan import timed  # noqa: E402  (bench/lan.py: timed, the subreaper)

LAB = "benchdown"
DOWN = """
import atexit, json, sys
atexit.register(lambda: open({out!r}, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["netlab", "down", {lab!r}]
from netlab.cli import main
main()
"""


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    root = os.path.join(HERE, "..")
    with open(os.path.join(root, "examples", "lab.yml")) as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        topology = os.path.join(tmp, "lab.yml")
        with open(topology, "w") as f:
            f.write("\n".join(f"name: {LAB}" if line.startswith("name:") else line for line in text.splitlines()))
        out = os.path.join(tmp, "modules.json")
        seconds, counts, modules = [], [], []
        for _ in range(rounds):
            timed([sys.executable, "-m", "netlab", "up", topology])
            took, _rss = timed([sys.executable, "-c", DOWN.format(out=out, lab=LAB)])
            with open(out) as f:
                modules = json.load(f)
            seconds.append(took)
            counts.append(len(modules))
    ours = [m for m in modules if m == "netlab" or m.startswith("netlab.")]
    print(f"netlab down of examples/lab.yml: {statistics.median(counts):.0f} modules loaded "
          f"({len(ours)} of netlab), median {statistics.median(seconds):.3f} s over {rounds} rounds")
    print("netlab modules: " + " ".join(ours))
    subprocess.run([sys.executable, "-m", "netlab", "down", LAB], capture_output=True)


if __name__ == "__main__":
    main()
