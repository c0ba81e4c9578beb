"""Which host runs which node: the `hosts:` section of a topology, and automatic placement.

```yaml
hosts:            # host name (the agent's --host) -> the nodes it runs
  h1: [pc1, gw]
  h2: [pc2]
```

Nodes the section does not name are placed automatically: a node keeps the host it had
(a reconcile moves nothing by itself), otherwise it goes to the live host with the fewest
nodes. Pure: no etcd, no kernel.
"""
from __future__ import annotations

import re

from ..core.errors import ApplyError, Problems
from ..core.model import Topology

# Kubernetes node names are DNS subdomains; a host's lab namespace `<lab>--<host>` must
# stay within a file name's 255 bytes.
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,238}[a-z0-9])?$")


def parse_hosts(topo: Topology, problems: Problems) -> dict[str, str]:
    """{node: host} from the file's `hosts:` section; problems are located lines."""
    raw = topo.sections.get("hosts")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add("hosts", f"must be a mapping of host name to a list of nodes, not {type(raw).__name__}")
        return {}
    placed: dict[str, str] = {}
    for host, nodes in raw.items():
        where = f"hosts.{host}"
        if not isinstance(host, str) or not HOST_NAME.match(host):
            problems.add(where, f"{host!r} is not a host name (lowercase letters, digits, '.', '-'; "
                                f"at most 240 characters)")
            continue
        if nodes is None:
            continue
        if not isinstance(nodes, list):
            problems.add(where, f"must be a list of node names, not {type(nodes).__name__}")
            continue
        for i, node in enumerate(nodes):
            if not isinstance(node, str) or node not in topo.nodes:
                problems.add(f"{where}[{i}]", f"unknown node {node!r}")
            elif node in placed:
                problems.add(f"{where}[{i}]", f"node {node} is already placed on host {placed[node]}")
            else:
                placed[node] = host
    return placed


def place(topo: Topology, live_hosts: list[str], previous: dict[str, str] | None = None) -> dict[str, str]:
    """{node: host} for every node: the file's choice, else where it was, else the live
    host with the fewest nodes (ties by name). A node never moves by itself: when the file
    or the lab's history puts it on a host with no live agent, ApplyError says so (exit 1:
    the machines, not the file, are wrong); a bad `hosts:` section is a TopologyError."""
    problems = Problems()
    fixed = parse_hosts(topo, problems)
    problems.raise_if_any()
    live = sorted(set(live_hosts))
    if not live:
        raise ApplyError("no agent is registered in etcd: start `netlab agent --host NAME` on each machine")
    previous = {n: h for n, h in (previous or {}).items() if n in topo.nodes and n not in fixed}
    wanted: dict[str, list[str]] = {}
    for node, host in list(fixed.items()) + list(previous.items()):
        if host not in live:
            wanted.setdefault(host, []).append(node)
    if wanted:
        raise ApplyError("; ".join(
            f"host {h} has no agent running (it should run {', '.join(sorted(nodes))}): start its "
            f"agent, or place {'it' if len(nodes) == 1 else 'them'} on another host under hosts:"
            for h, nodes in sorted(wanted.items())) + f" (live hosts: {', '.join(live)})")
    placement = dict(fixed)
    load = {h: 0 for h in live}
    for host in placement.values():
        load[host] += 1
    for node in topo.nodes:
        if node in placement:
            continue
        host = previous.get(node) or min(load, key=lambda h: (load[h], h))
        placement[node] = host
        load[host] += 1
    return {node: placement[node] for node in topo.nodes}


def validate(topo, problems) -> None:
    """Hook: a bad `hosts:` section is a located error even for a one-host `up`."""
    if topo.sections.get("hosts") is not None:
        parse_hosts(topo, problems)
