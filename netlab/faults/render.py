"""Render a FaultSet into kernel configuration: qdiscs, nft rules, link states. Pure.

Mechanisms, chosen per fault from what the kernel has (`has(capability)`):
- netem (where present) does delay, jitter, corruption, reordering, loss and duplication:
  the root qdisc of the interface for egress, of an ifb device for ingress.
- rate is a tbf qdisc (under netem when both are asked for); ingress goes through an
  ifb device that the interface's ingress qdisc redirects to (u32 + mirred).
- Without netem, loss is an nft `numgen random` drop where the packet *arrives*: at the
  veth peer's ingress for egress loss, at the interface's ingress for ingress loss. (A
  drop at the sender's own egress returns ENOBUFS to the sending socket, which then
  resends: ping shows 0% loss. Real loss is silent.) Duplication is an nft `dup` at the
  sending side's egress, marked so the copy is not copied again.
- Partitions drop, at the input hook of every node of each group, what comes from the
  addresses of the other groups: both ways blocked, senders just see silence.
- All nft rules live in tables named `netlab_fault` (netdev and inet families), never in
  the firewall's `inet netlab`.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.plan import Plan, Route, Veth
from .model import FaultSet, Impairment
from .probe import MISSING

TABLE = "netlab_fault"
DUP_MARK = "0x4e4c0001"
NETEM_ONLY = ("delay", "jitter", "corrupt", "reorder")
PPM = 1_000_000


def _plain(interfaces: list[dict], key: str) -> list[str]:
    """The addresses under `key` of a node's interfaces, without prefix lengths."""
    return [i[key].split("/")[0] for i in interfaces if i.get(key)]


@dataclass
class LabFacts:
    """What faults need to know about a deployed lab, read from its plan."""
    ns: dict[str, str] = field(default_factory=dict)                   # node -> netns
    ifaces: dict[str, list[str]] = field(default_factory=dict)         # node -> ifnames
    addresses: dict[str, list[str]] = field(default_factory=dict)      # node -> IPv4 addresses
    addresses6: dict[str, list[str]] = field(default_factory=dict)     # node -> IPv6 addresses
    peers: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    routes: dict[tuple[str, str], list[Route]] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Plan) -> LabFacts:
        facts = cls()
        for node, info in plan.meta.get("nodes", {}).items():
            facts.ns[node] = info["ns"]
            facts.ifaces[node] = [i["ifname"] for i in info["interfaces"]]
            facts.addresses[node] = _plain(info["interfaces"], "address")
            facts.addresses6[node] = _plain(info["interfaces"], "address6")
        for s in plan.steps:
            if isinstance(s, Veth):
                facts.peers[(s.ns, s.ifname)] = (s.peer_ns, s.peer)
                facts.peers[(s.peer_ns, s.peer)] = (s.ns, s.ifname)
            elif isinstance(s, Route):
                facts.routes.setdefault((s.ns, s.dev), []).append(s)
        return facts

    def where(self, link: str) -> tuple[str, str]:
        node, ifname = link.split(":")
        return self.ns[node], ifname


@dataclass(frozen=True)
class TcSpec:
    """Qdiscs for one direction of one interface; ingress ones sit on `ifb`."""
    netem: tuple[tuple[str, Any], ...] = ()     # pyroute2 netem arguments
    rate: int | None = None                     # bit/s, a tbf
    ifb: str | None = None

    def describe(self) -> str:
        parts = (["netem"] if self.netem else []) + (["tbf"] if self.rate else [])
        return ("ifb " if self.ifb else "") + "+".join(parts)


@dataclass
class Desired:
    """The whole kernel configuration of a fault set."""
    tc: dict[tuple[str, str, str], TcSpec] = field(default_factory=dict)  # (ns, dev, side)
    nft: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)  # ns -> (dev, hook) -> rules
    down: set[tuple[str, str]] = field(default_factory=set)
    mechanisms: dict[str, dict[str, str]] = field(default_factory=dict)  # link -> direction -> text
    refusals: list[str] = field(default_factory=list)

    def rules(self, ns: str, dev: str, hook: str) -> list[str]:
        return self.nft.setdefault(ns, {}).setdefault((dev, hook), [])


def ifb_name(dev: str) -> str:
    name = f"nlf-{dev}"
    return name if len(name) <= 15 else f"nlf-{zlib.crc32(dev.encode()):08x}"


def _need(names: list[str]) -> str:
    return " and ".join(names) + (" needs " if len(names) == 1 else " need ")


def netem_args(imp: Impairment, with_loss: bool) -> tuple[tuple[str, Any], ...]:
    args: dict[str, Any] = {}
    if imp.delay:
        args["delay"] = int(imp.delay * 1000)
    if imp.jitter:
        args["jitter"] = int(imp.jitter * 1000)
    if imp.corrupt:
        args["prob_corrupt"] = imp.corrupt
    if imp.reorder:
        args["prob_reorder"] = imp.reorder
    if with_loss and imp.loss:
        args["loss"] = imp.loss
    if with_loss and imp.duplicate:
        args["duplicate"] = imp.duplicate
    return tuple(sorted(args.items()))


def _chance(pct: float) -> str:
    """The nft condition that holds for pct% of packets ('' for all of them)."""
    ppm = max(1, round(pct * PPM / 100))
    return "" if ppm >= PPM else f"numgen random mod {PPM} < {ppm} "


def _impair(desired: Desired, facts: LabFacts, link: str, direction: str, imp: Impairment,
            has: Callable[[str], bool]) -> None:
    ns, dev = facts.where(link)
    netem = has("netem")
    problems = []
    needs_netem = [f for f in NETEM_ONLY if getattr(imp, f) is not None]
    if needs_netem and not netem:
        problems.append(f"{link}: {_need(needs_netem)}{MISSING['netem']}")
    if imp.rate and not has("tbf"):
        problems.append(f"{link}: rate needs {MISSING['tbf']}")
    via_nft = [f for f in ("loss", "duplicate") if getattr(imp, f) is not None and not netem]
    if via_nft and not has("nft"):
        problems.append(f"{link}: {_need(via_nft)}{MISSING['nft']} (and sch_netem is absent too)")
    spec = TcSpec(netem=netem_args(imp, with_loss=netem), rate=imp.rate)
    uses_tc = bool(spec.netem or spec.rate)
    if direction == "ingress" and uses_tc and not problems and not has("ifb"):
        problems.append(f"{link}: ingress shaping needs {MISSING['ifb']}")
    peer = facts.peers.get((ns, dev))
    if via_nft and peer is None and ((direction == "egress" and imp.loss is not None) or
                                     (direction == "ingress" and imp.duplicate is not None)):
        problems.append(f"{link}: {' and '.join(via_nft)} without sch_netem needs a veth interface "
                        f"(this one has no peer)")
    if problems:
        desired.refusals += problems
        return
    used = []
    if uses_tc:
        if direction == "ingress":
            spec = TcSpec(spec.netem, spec.rate, ifb_name(dev))
        desired.tc[(ns, dev, direction)] = spec
        used.append(spec.describe())
    if "loss" in via_nft:
        at = peer if direction == "egress" else (ns, dev)
        desired.rules(at[0], at[1], "ingress").append(
            f"{_chance(imp.loss)}drop")
        used.append("nft drop at " + ("the peer's ingress" if direction == "egress" else "ingress"))
    if "duplicate" in via_nft:
        at = (ns, dev) if direction == "egress" else peer
        desired.rules(at[0], at[1], "egress").append(
            f"{_chance(imp.duplicate)}meta mark set {DUP_MARK} "
            f'dup to "{at[1]}" meta mark set 0')
        used.append("nft dup at " + ("egress" if direction == "egress" else "the peer's egress"))
    desired.mechanisms.setdefault(link, {})[direction] = ", ".join(used)


def _partition(desired: Desired, facts: LabFacts, groups: list[list[str]],
               has: Callable[[str], bool]) -> None:
    label = " | ".join(",".join(g) for g in groups)
    if not has("nft"):
        desired.refusals.append(f"partition {label}: needs {MISSING['nft']}")
        return
    for i, group in enumerate(groups):
        for match, addresses in (("ip saddr", facts.addresses), ("ip6 saddr", facts.addresses6)):
            others = sorted({a for j, g in enumerate(groups) if j != i for n in g
                             for a in addresses.get(n, [])})
            if not others:
                continue
            for node in group:
                desired.rules(facts.ns[node], "", "input").append(f"{match} {{ {', '.join(others)} }} drop")


def render(faults: FaultSet, facts: LabFacts, has: Callable[[str], bool]) -> Desired:
    desired = Desired()
    for link, dirs in sorted(faults.links.items()):
        for direction, imp in sorted(dirs.items()):
            _impair(desired, facts, link, direction, imp, has)
    for link in faults.down:
        desired.down.add(facts.where(link))
    for groups in faults.partitions:
        _partition(desired, facts, groups, has)
    desired.refusals = list(dict.fromkeys(desired.refusals))   # both directions say it once
    return desired


def _chain_name(dev: str, hook: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() else "_" for c in dev) + "_" + hook
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    taken.add(name)
    return name


def nft_script(chains: dict[tuple[str, str], list[str]]) -> str:
    """One nft transaction that replaces netlab's fault tables of a namespace."""
    lines = [f"table netdev {TABLE} {{}}", f"delete table netdev {TABLE}",
             f"table inet {TABLE} {{}}", f"delete table inet {TABLE}"]
    netdev = {k: v for k, v in chains.items() if k[1] in ("ingress", "egress") and v}
    inet = {k: v for k, v in chains.items() if k[1] == "input" and v}
    taken: set[str] = set()
    if netdev:
        lines.append(f"table netdev {TABLE} {{")
        for (dev, hook), rules in sorted(netdev.items()):
            lines.append(f"  chain {_chain_name(dev, hook, taken)} {{")
            lines.append(f'    type filter hook {hook} device "{dev}" priority -10;')
            if hook == "egress" and any("dup to" in r for r in rules):
                lines.append(f"    meta mark {DUP_MARK} meta mark set 0 accept")
            lines += [f"    {r}" for r in rules]
            lines.append("  }")
        lines.append("}")
    if inet:
        lines.append(f"table inet {TABLE} {{")
        lines.append("  chain input {")
        lines.append("    type filter hook input priority -10;")
        lines += [f"    {r}" for rules in inet.values() for r in rules]
        lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n"
