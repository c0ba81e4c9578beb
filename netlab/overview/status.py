"""`netlab status` beyond nodes: point-to-point links (with their live state), tunnels,
active faults and firewall/NAT rule counters, in the JSON and in the table.

A feature (hooks status and status_lines): `status(entry, state)` adds `links` and `faults` to
a lab's status entry; other features add theirs (`tunnels` by netlab.tunnels, per-node
`nft` counters by netlab.nft). `status_lines(entry)` turns all of them into table lines
(the status command prints what every feature's `status_lines` hook returns).
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..core import hooks
from ..core.plan import Veth

MAX_RULE_LINES = 8


def _node_of(meta: dict, ns: str) -> str:
    for name, info in meta.get("nodes", {}).items():
        if info.get("ns") == ns:
            return name
    return ns


def _addresses(meta: dict, node: str, ifname: str) -> dict[str, str | None]:
    """{"address": IPv4 CIDR, "address6": IPv6 CIDR} of an interface (None where absent)."""
    for iface in meta.get("nodes", {}).get(node, {}).get("interfaces", []):
        if iface["ifname"] == ifname:
            return {"address": iface.get("address"), "address6": iface.get("address6")}
    return {"address": None, "address6": None}


class _LinkStates:
    """Operational state of interfaces, one netlink socket per namespace (root only)."""

    def __init__(self) -> None:
        self.sockets: dict[str, Any] = {}

    def get(self, ns: str, ifname: str) -> str:
        if os.geteuid() != 0:
            return "unknown"
        from pyroute2 import IPRoute

        from ..core import kernel
        try:
            if ns not in self.sockets:
                with kernel.entered(ns):
                    self.sockets[ns] = IPRoute()
            msg = self.sockets[ns].link("get", ifname=ifname)[0]
        except FileNotFoundError:
            return "missing"
        except Exception:               # noqa: BLE001 (no such device, or netlink refused)
            return "missing"
        if not msg["flags"] & 1:        # IFF_UP
            return "down"
        return "up" if msg.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN") else "no-carrier"

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def links(state) -> list[dict]:
    """The lab's point-to-point links (veth pairs between two nodes), endpoints in file
    order, with addresses and each end's state (up, down, no-carrier, missing)."""
    meta = state.plan.meta
    pairs = [s for s in state.plan.steps if isinstance(s, Veth) and not s.master
             and _node_of(meta, s.ns) != s.ns and _node_of(meta, s.peer_ns) != s.peer_ns]
    if not pairs:
        return []
    live = _LinkStates() if state.status == "up" else None
    result = []
    try:
        for s in pairs:
            ends = []
            for ns, ifname in ((s.ns, s.ifname), (s.peer_ns, s.peer)):
                node = _node_of(meta, ns)
                ends.append({"node": node, "ifname": ifname, **_addresses(meta, node, ifname),
                             "state": live.get(ns, ifname) if live else "unknown"})
            result.append({"endpoints": ends, "mtu": s.mtu,
                           "up": all(e["state"] in ("up", "unknown") for e in ends)})
    finally:
        if live:
            live.close()
    return result


def status(entry: dict, state) -> None:
    """Hook: links and active faults of one lab."""
    found = links(state)
    if found:
        entry["links"] = found         # a link that is down shows in the table, health unchanged
    faults = (state.extras or {}).get("faults")
    if faults and "faults" not in hooks.registry().names:
        entry["faults"] = faults        # raw; netlab.faults, when present, writes its own lines


# -- the table -----------------------------------------------------------------------------

def _compact(value: Any, limit: int = 100) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = ", ".join(f"{k} {_compact(v, limit)}" if not isinstance(v, (dict, list))
                         else f"{k} {json.dumps(v, separators=(',', ':'))}" for k, v in value.items())
    else:
        text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _link_lines(entry: dict) -> list[str]:
    lines = []
    for link in entry.get("links", []):
        a, b = link["endpoints"]
        text = " <-> ".join(" ".join([f"{e['node']}:{e['ifname']}"] + [
            e[k] for k in ("address", "address6") if e.get(k)]) for e in (a, b))
        states = {e["state"] for e in (a, b)}
        note = "" if states <= {"up"} else "  " + "/".join(e["state"] for e in (a, b)).upper()
        lines.append(f"    {text}{note}")
    return ["  links:"] + lines if lines else []


def _tunnel_lines(entry: dict) -> list[str]:
    lines = []
    for t in entry.get("tunnels", []):
        ident = f" vni {t['vni']}" if t.get("vni") is not None else (
            f" key {t['key']}" if t.get("key") is not None else "")
        where = f" bridge {t['network']}" if t.get("network") else ""
        remotes = ",".join(t.get("remotes") or [])
        lines.append(f"    {t.get('netns')}:{t.get('ifname')} {t.get('type')}{ident} "
                     f"{t.get('local')} -> {remotes}{where}")
    return ["  tunnels:"] + lines if lines else []


def _fault_lines(entry: dict) -> list[str]:
    faults = entry.get("faults")
    if not faults:
        return []
    if isinstance(faults, dict):
        return ["  faults:"] + [f"    {name}: {_compact(value)}" for name, value in faults.items()]
    if isinstance(faults, list):
        return ["  faults:"] + [f"    {_compact(item)}" for item in faults]
    return [f"  faults: {_compact(faults)}"]


def _counter_lines(entry: dict) -> list[str]:
    """Rules that matched packets (from the nft feature's per-node counters), busiest first."""
    rows = []
    for node in entry.get("nodes", []):
        chains = (node.get("nft") or {}).get("chains") or {}
        for chain, data in chains.items():
            for rule in data.get("rules", []):
                if rule.get("packets"):
                    rows.append((rule["packets"], node["name"], chain, rule.get("rule") or rule.get("from", "")))
    if not rows:
        return []
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    lines = [f"    {p:>9} pkts  {n} {c}: {_compact(r, 80)}" for p, n, c, r in rows[:MAX_RULE_LINES]]
    if len(rows) > MAX_RULE_LINES:
        lines.append(f"    ... {len(rows) - MAX_RULE_LINES} more (netlab rules {entry['lab']})")
    return ["  rule counters:"] + lines


def status_lines(entry: dict) -> list[str]:
    """Hook: table lines for links, tunnels, faults and rule counters."""
    return _link_lines(entry) + _tunnel_lines(entry) + _fault_lines(entry) + _counter_lines(entry)
