"""Container nodes after the steps: `exec:` commands in every node (re)wired by this `up`,
gratuitous ARP from re-wired nodes, and container state in `netlab status` (hooks after_up
and status). The Docker runtime itself is runtime.py.

`exec:` entries run in order in every node (re)wired by this `up`, containers through
`docker exec`, namespace nodes through `ip netns exec`, nodes in parallel. Re-running `up`
on an unchanged lab runs nothing.
"""
from __future__ import annotations

import shlex
import socket
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ..core import kernel
from ..core.errors import ApplyError
from ..core.model import Topology

EXEC_TIMEOUT = 120


def after_up(ctx, plan, topo: Topology) -> None:
    from .runtime import RUNTIME
    run = RUNTIME.finish(ctx)
    if run is None:
        return
    wired = run.wired
    if not run.fresh:                  # re-wired nodes among old neighbours
        announce(topo, plan, wired)
    jobs = [topo.nodes[n] for n in wired if n in topo.nodes and topo.nodes[n].exec]
    if not jobs:
        return
    failures: list[str] = []
    with ThreadPoolExecutor(min(8, len(jobs))) as pool:
        for failure in pool.map(lambda node: _exec_node(topo, node), jobs):
            if failure:
                failures.append(failure)
    if failures:
        raise ApplyError(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))


def announce(topo: Topology, plan, nodes: list[str]) -> None:
    """Gratuitous ARP from every address of re-wired nodes: their interfaces have new MAC
    addresses, and neighbours would otherwise keep the old ones for up to a minute."""
    meta = plan.meta.get("nodes", {})
    for node in nodes:
        ifaces = [(i["ifname"], i["address"].split("/")[0])
                  for i in meta.get(node, {}).get("interfaces", []) if i.get("address")]
        if not ifaces or not kernel.netns_exists(topo.netns(node)):
            continue
        with kernel.entered(topo.netns(node)):
            for ifname, address in ifaces:
                try:
                    _garp(ifname, address)
                except OSError:
                    pass          # an interface that is not there: nothing to announce


def _garp(ifname: str, address: str) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as sock:
        sock.bind((ifname, 0))
        mac = sock.getsockname()[4]
        ip = socket.inet_aton(address)
        frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x0806)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip)
        sock.send(frame)


def _exec_node(topo: Topology, node) -> str | None:
    """Run a node's exec commands in order; the first failure as one line, or None."""
    for i, command in enumerate(node.exec):
        argv = shlex.split(command)
        try:
            code, output = (_docker_exec(topo.netns(node.name), argv) if node.is_container
                            else _ns_exec(topo.netns(node.name), argv))
        except ApplyError as err:
            return f"nodes.{node.name}.exec[{i}]: {err}"
        if code != 0:
            last = output.strip().splitlines()[-1:] or [""]
            detail = f": {last[0]}" if last[0] else ""
            return f"nodes.{node.name}.exec[{i}]: {command!r} exited {code}{detail}"
    return None


def _docker_exec(container: str, argv: list[str]) -> tuple[int, str]:
    from .runtime import RUNTIME, explain
    api = RUNTIME.api()
    try:
        exec_id = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
        output = api.exec_start(exec_id).decode(errors="replace")
        return api.exec_inspect(exec_id)["ExitCode"] or 0, output
    except Exception as err:
        raise ApplyError(f"cannot run {argv[0]!r} in {container}: {explain(err)}") from None


def _ns_exec(ns: str, argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                              timeout=EXEC_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ApplyError(f"{argv[0]!r} did not finish within {EXEC_TIMEOUT}s") from None
    return done.returncode, done.stdout + done.stderr


# -- status --------------------------------------------------------------------------------

def status(entry: dict, state) -> None:
    """Add each container node's container id and state ("missing" when gone)."""
    nodes = [n for n in entry.get("nodes", []) if n.get("image")]
    if not nodes:
        return
    from .runtime import LABEL_NODE, RUNTIME
    found = {c["Labels"].get(LABEL_NODE): c for c in RUNTIME.lab_containers(entry["lab"])}
    for node in nodes:
        c = found.get(node["name"])
        node["container"] = ({"id": c["Id"][:12], "state": c.get("State", "unknown")} if c
                             else {"id": None, "state": "missing"})
