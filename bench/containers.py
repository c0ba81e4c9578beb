#!/usr/bin/env python3
"""Container nodes: what netlab adds on top of Docker's own cost (issue 3).

For N in (20, 50) by default, in the same run and with the same image and worker count:
  docker   create + start N containers with no networking (`network_mode=none`), in
           parallel on the same bounded worker pool netlab uses; then remove them.
  netlab   `up` of a lab of N container nodes on one LAN (containers + naming their
           namespaces + veths, bridge ports, addresses, and whatever the enabled
           features add), then `down`.
Prints both wall times, netlab's overhead over Docker's (goal: <= 20%), and netlab's own
work during up (up minus the time spent waiting for Docker to finish a container).

    python3 bench/containers.py [--sizes 20,50] [--repeat 4] [--image netlab/busybox:test]

Run as root with the Docker engine up. Lab name: ctbench; baseline containers: ctbase-<i>.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from statistics import fmean

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from netlab.containers.runtime import RUNTIME, workers  # noqa: E402
from netlab.core import lab as labops  # noqa: E402
from netlab.core.loader import load_text  # noqa: E402
from tests.containers.busybox_image import IMAGE, build_image  # noqa: E402

LAB = "ctbench"
BASE_LABEL = "netlab.bench"


def topology(n: int, image: str) -> str:
    lines = [f"name: {LAB}", "networks:", "  lan: {subnet: 10.90.0.0/16}", "nodes:"]
    lines += [f"  c{i}: {{image: \"{image}\", networks: [lan]}}" for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


def docker_only(api, n: int, image: str) -> tuple[float, float]:
    """Seconds to create+start n containers with no networking, and to remove them."""
    def start(i: int) -> None:
        host_config = api.create_host_config(network_mode="none")
        c = api.create_container(image, name=f"ctbase-{i}", hostname=f"c{i}", labels={BASE_LABEL: "1"},
                                 detach=True, tty=True, stdin_open=True, host_config=host_config,
                                 use_config_proxy=False)
        api.start(c["Id"])
        api.inspect_container(c["Id"])          # netlab needs the PID too: same work
    t0 = time.monotonic()
    with ThreadPoolExecutor(workers()) as pool:
        list(pool.map(start, range(1, n + 1)))
    made = time.monotonic() - t0
    t0 = time.monotonic()
    remove_baseline(api)
    return made, time.monotonic() - t0


def remove_baseline(api) -> None:
    ids = [c["Id"] for c in api.containers(all=True, filters={"label": BASE_LABEL})]
    with ThreadPoolExecutor(workers()) as pool:
        list(pool.map(lambda cid: api.remove_container(cid, force=True), ids))


WAITED = [0.0]


def _timed_wait(wait):
    """Wrap the runtime's wait for a container, to tell netlab's own work from Docker's."""
    def timed(*args, **kwargs):
        t0 = time.monotonic()
        try:
            return wait(*args, **kwargs)
        finally:
            WAITED[0] += time.monotonic() - t0
    return timed


def netlab_lab(n: int, image: str) -> tuple[float, float, float]:
    """Seconds for up, for down, and netlab's own work during up (up minus waiting for
    Docker to finish containers)."""
    topo = load_text(topology(n, image))
    WAITED[0] = 0.0
    t0 = time.monotonic()
    try:
        labops.up(topo)
        made = time.monotonic() - t0
    finally:
        t1 = time.monotonic()
        labops.down(LAB)
    return made, time.monotonic() - t1, made - WAITED[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,50")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--image", default=IMAGE)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    image = build_image(args.image) if args.image == IMAGE else args.image
    api = RUNTIME.api()
    remove_baseline(api)
    labops.down(LAB)
    print(f"image {image}, {workers()} parallel Docker calls, mean of {args.repeat} alternating runs each")
    RUNTIME._wait = _timed_wait(RUNTIME._wait)
    print(f"{'N':>4} {'docker up':>10} {'netlab up':>10} {'overhead':>9} {'own work':>9} "
          f"{'docker rm':>10} {'netlab down':>12}")
    for n in (int(s) for s in args.sizes.split(",")):
        runs = []
        for _ in range(args.repeat):      # alternate, so drift hits both alike
            base = docker_only(api, n, image)
            lab = netlab_lab(n, image)
            runs.append((base, lab))
        base_up = fmean(r[0][0] for r in runs)     # means of alternating runs: drift in the
        base_rm = fmean(r[0][1] for r in runs)     # machine's load hits both sides alike
        lab_up = fmean(r[1][0] for r in runs)
        lab_down = fmean(r[1][1] for r in runs)
        own = fmean(r[1][2] for r in runs)
        overhead = 100.0 * (lab_up - base_up) / base_up
        print(f"{n:>4} {base_up:>9.2f}s {lab_up:>9.2f}s {overhead:>8.1f}% {own:>8.2f}s "
              f"{base_rm:>9.2f}s {lab_down:>11.2f}s")
    print(f"load average now: {os.getloadavg()[0]:.1f} (Docker's cost moves with it; compare "
          f"columns of one row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
