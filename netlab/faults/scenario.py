"""Scenarios: the `faults:` section of a topology file, parsed into actions on a FaultSet.

The same parser serves the `validate` hook (at load time, against the topology) and
`netlab fault apply` (against the deployed lab), so a scenario means one thing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

from ..core.errors import Problems
from ..core.model import Topology
from .model import DIRECTIONS, FIELDS, ITEM_KEYS, FaultSet, Impairment

SCENARIO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Impair:
    links: tuple[str, ...]
    direction: str
    imp: Impairment


@dataclass(frozen=True)
class Down:
    links: tuple[str, ...]


@dataclass(frozen=True)
class Partition:
    groups: tuple[tuple[str, ...], ...]


Action = Union[Impair, Down, Partition]


def topology_ifaces(topo: Topology) -> dict[str, list[str]]:
    """Interface names per node, as the file defines them (networks, then links)."""
    ifaces = {name: [a.ifname for a in node.attachments] for name, node in topo.nodes.items()}
    for link in topo.links:
        for end in link.endpoints:
            if end.node in ifaces and end.ifname not in ifaces[end.node]:
                ifaces[end.node].append(end.ifname)
    return ifaces


def resolve_link(text: Any, where: str, ifaces: dict[str, list[str]], problems: Problems) -> str | None:
    """'node:ifname' naming an interface of the lab."""
    if not isinstance(text, str) or text.count(":") != 1:
        problems.add(where, f"a link is NODE:INTERFACE like gw:eth0, not {text!r}")
        return None
    node, ifname = text.split(":")
    if node not in ifaces:
        problems.add(where, f"unknown node {node!r}")
        return None
    if ifname not in ifaces[node]:
        known = ", ".join(ifaces[node]) or "none"
        problems.add(where, f"node {node} has no interface {ifname!r} (it has: {known})")
        return None
    return text


def node_links(node: Any, where: str, ifaces: dict[str, list[str]], problems: Problems) -> tuple[str, ...]:
    """Every interface of a node, as links."""
    if not isinstance(node, str) or node not in ifaces:
        problems.add(where, f"unknown node {node!r}")
        return ()
    if not ifaces[node]:
        problems.add(where, f"node {node} has no interfaces")
    return tuple(f"{node}:{i}" for i in ifaces[node])


def parse_groups(raw: Any, where: str, ifaces: dict[str, list[str]], problems: Problems) -> Partition | None:
    """[[a, b], [c]]: two or more disjoint, non-empty groups of known nodes."""
    if not isinstance(raw, list) or len(raw) < 2:
        problems.add(where, "a partition is a list of two or more node groups, like [[pc1, pc2], [isp]]")
        return None
    seen: dict[str, int] = {}
    groups = []
    before = len(problems.lines)
    for i, group in enumerate(raw):
        group = [group] if isinstance(group, str) else group
        if not isinstance(group, list) or not group:
            problems.add(f"{where}[{i}]", "a group is a non-empty list of nodes")
            continue
        for node in group:
            if not isinstance(node, str) or node not in ifaces:
                problems.add(f"{where}[{i}]", f"unknown node {node!r}")
                continue
            elif node in seen and seen[node] != i:
                problems.add(f"{where}[{i}]", f"node {node} is in two groups")
            seen[node] = i
        groups.append(tuple(str(n) for n in group))
    return Partition(tuple(groups)) if len(problems.lines) == before else None


def parse_item(item: Any, where: str, ifaces: dict[str, list[str]], problems: Problems) -> Action | None:
    if not isinstance(item, dict):
        problems.add(where, "a fault is a mapping like {link: gw:eth0, loss: 5%}, "
                            "{down: gw:eth0} or {partition: [[a], [b]]}")
        return None
    if "partition" in item:
        if len(item) > 1:
            problems.add(where, "a partition item has only the partition field")
        return parse_groups(item["partition"], f"{where}.partition", ifaces, problems)
    if "down" in item:
        if len(item) > 1:
            problems.add(where, "a down item has only the down field")
        raw = item["down"] if isinstance(item["down"], list) else [item["down"]]
        links = [resolve_link(x, f"{where}.down", ifaces, problems) for x in raw]
        return Down(tuple(links)) if all(links) and links else None
    before = len(problems.lines)
    for key in item:
        if key not in ITEM_KEYS:
            problems.add(f"{where}.{key}", "unknown field (expected one of: "
                         f"{', '.join(sorted(ITEM_KEYS | {'down', 'partition'}))})")
    if ("link" in item) == ("node" in item):
        problems.add(where, "name either a link (NODE:IF) or a node")
        return None
    if "link" in item:
        link = resolve_link(item["link"], f"{where}.link", ifaces, problems)
        links = (link,) if link else ()
    else:
        links = node_links(item["node"], f"{where}.node", ifaces, problems)
    direction = item.get("direction", "egress")
    if direction not in DIRECTIONS:
        problems.add(f"{where}.direction", f"must be egress, ingress or both, not {direction!r}")
    imp = Impairment.parse({k: item.get(k) for k in FIELDS}, where, problems)
    if len(problems.lines) != before or imp is None:
        return None
    return Impair(links, direction, imp)


def parse_scenario(name: str, items: Any, ifaces: dict[str, list[str]], problems: Problems,
                   prefix: str = "faults") -> list[Action]:
    where = f"{prefix}.{name}"
    if not isinstance(name, str) or not SCENARIO_NAME.match(name):
        problems.add(where, "a scenario name is letters, digits, '-', '_' or '.'")
    if not isinstance(items, list) or not items:
        problems.add(where, "a scenario is a non-empty list of faults")
        return []
    actions = [parse_item(item, f"{where}[{i}]", ifaces, problems) for i, item in enumerate(items)]
    return [a for a in actions if a is not None]


def undo(faults: FaultSet, actions: list[Action]) -> None:
    """Remove from a fault set what these actions put there (`fault clear LAB SCENARIO`)."""
    for action in actions:
        if isinstance(action, Impair):
            for link in action.links:
                faults.clear_link(link)
        elif isinstance(action, Down):
            for link in action.links:
                faults.set_down(link, False)
        else:
            groups = [list(g) for g in action.groups]
            faults.partitions[:] = [p for p in faults.partitions if p != groups]


def perform(faults: FaultSet, actions: list[Action]) -> None:
    """Add actions to a fault set: an impairment replaces the link's in that direction."""
    for action in actions:
        if isinstance(action, Impair):
            for link in action.links:
                faults.set_link(link, action.direction, action.imp)
        elif isinstance(action, Down):
            for link in action.links:
                faults.set_down(link, True)
        else:
            faults.add_partition([list(g) for g in action.groups])


def validate(topo: Topology, problems: Problems) -> None:
    """The validate hook: every scenario of the file, against the file's nodes."""
    ifaces = topology_ifaces(topo)
    for name, items in (topo.sections.get("faults") or {}).items():
        parse_scenario(name, items, ifaces, problems)
