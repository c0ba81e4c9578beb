"""Split one lab plan into a sub-plan per host, stitched together by VXLAN. Pure.

A step goes to the host of the node namespace(s) it names. The lab namespace (bridges,
the DNS server) exists once per host that needs it, renamed `<lab>--<host>` so the parts
of one lab never share a name (simulated hosts share one /run/netns). A network whose
ports are on several hosts gets a StitchSegment on each of them; a veth link whose ends
are on two hosts becomes a StitchLink at each end. The DNS server (and what has no
namespace, like its zone) runs on the host of the lab's first node.

Stitched networks and links without an `mtu` get the largest MTU the underlay carries
(underlay MTU less the VXLAN overhead), so big frames fail loudly at the sender (EMSGSIZE,
Packet Too Big) instead of vanishing between hosts; a larger `mtu` in the file is kept
and warned about.
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field

from ..core.plan import Bridge, Namespace, Plan, Step, Veth
from .stitch import StitchLink, StitchSegment, overhead

NS_FIELDS = ("ns", "peer_ns", "lab_ns", "netns")
VNI_MAX = (1 << 24) - 1
VNI_FIRST = 4096


@dataclass
class Underlay:
    address: str
    mtu: int = 1500


@dataclass
class Split:
    plans: dict[str, Plan]                           # host -> sub-plan
    vnis: dict[str, int] = field(default_factory=dict)   # "net:<name>" / "link:<node>:<if>" -> VNI
    dns_host: str | None = None
    warnings: list[str] = field(default_factory=list)


def host_lab_ns(lab: str, host: str) -> str:
    return f"{lab}--{host}"


def _namespaces(s: Step) -> list[str]:
    return [v for v in (getattr(s, f, None) for f in NS_FIELDS) if isinstance(v, str)]


def _vni_allocator(lab: str, old: dict[str, int], taken: set[int]):
    """Keeps a segment's VNI across reconciles; new ones come after a per-lab start
    point, skipping those other labs on the same etcd use."""
    used = set(taken) | set(old.values())
    start = VNI_FIRST + zlib.crc32(lab.encode()) % (VNI_MAX - VNI_FIRST - 65536)
    state = {"next": start}
    vnis: dict[str, int] = {}

    def vni(key: str) -> int:
        if key in vnis:
            return vnis[key]
        if key in old and old[key] not in taken:
            vnis[key] = old[key]
            return old[key]
        while state["next"] in used:
            state["next"] += 1
        vnis[key] = state["next"]
        used.add(state["next"])
        return vnis[key]
    return vni, vnis


def split(plan: Plan, placement: dict[str, str], underlay: dict[str, Underlay],
          old_vnis: dict[str, int] | None = None, taken_vnis: set[int] = frozenset(),
          dns_host: str | None = None) -> Split:
    """dns_host: where the DNS server ran before; it stays there while that host runs
    nodes of the lab (moving it would leave its fixed MAC on the old host's bridges)."""
    lab = plan.lab
    nodes = plan.meta.get("nodes", {})
    host_of = {info["ns"]: placement[name] for name, info in nodes.items()}
    node_of = {info["ns"]: name for name, info in nodes.items()}
    lab_ns = next((s.ns for s in plan.steps if isinstance(s, Namespace) and s.node is None), None)
    if dns_host not in set(placement.values()):
        dns_host = placement[next(iter(nodes))]
    vni, vnis = _vni_allocator(lab, old_vnis or {}, set(taken_vnis))
    warnings: list[str] = []

    # Which hosts have ports on each network's bridge (the DNS host listens on its own).
    members: dict[str, set[str]] = {}
    for s in plan.steps:
        if isinstance(s, Veth) and s.peer_ns == lab_ns and s.master and s.ns in host_of:
            members.setdefault(s.master, set()).add(host_of[s.ns])
        elif lab_ns in _namespaces(s) and getattr(s, "network", None):
            members.setdefault(s.network, set()).add(dns_host)
    lab_users = set().union(*members.values()) if members else set()
    if any(lab_ns in _namespaces(s) and not isinstance(s, (Namespace, Bridge, Veth)) for s in plan.steps):
        lab_users.add(dns_host)

    def carry(hosts) -> int:
        return min(underlay[h].mtu - overhead(underlay[h].address) for h in hosts)

    stretched = {net: carry(hs) for net, hs in members.items() if len(hs) > 1}
    for net, limit in stretched.items():
        given = plan.meta.get("networks", {}).get(net, {}).get("mtu")
        if given and given > limit:
            warnings.append(f"networks.{net}: mtu {given} is more than VXLAN between hosts "
                            f"carries ({limit}); larger frames are dropped")

    plans = {h: Plan(lab=lab, warnings=list(plan.warnings)) for h in sorted(set(placement.values()))}

    def rename(s: Step, host: str) -> Step:
        changes = {f: host_lab_ns(lab, host) for f in NS_FIELDS if getattr(s, f, None) == lab_ns and lab_ns}
        return dataclasses.replace(s, **changes) if changes else s

    for s in plan.steps:
        spaces = _namespaces(s)
        owners = {host_of[n] for n in spaces if n in host_of}
        if isinstance(s, Veth) and s.ns in host_of and s.peer_ns in host_of and len(owners) == 2:
            _stitch_link(s, plans, host_of, node_of, underlay, vni, warnings)
            continue
        if isinstance(s, Veth) and s.master in stretched and s.mtu is None:
            s = dataclasses.replace(s, mtu=stretched[s.master])
        if owners:
            host = owners.pop()
            plans[host].add(rename(s, host))
        elif lab_ns and lab_ns in spaces:
            if isinstance(s, Namespace):
                targets = lab_users
            elif isinstance(s, Bridge):
                targets = members.get(s.name, set())
            else:
                targets = {dns_host}
            for host in sorted(targets):
                t = rename(s, host)
                if isinstance(t, Bridge) and t.name in stretched and t.mtu is None:
                    t = dataclasses.replace(t, mtu=stretched[t.name])
                plans[host].add(t)
                if isinstance(t, Bridge) and t.name in stretched:
                    plans[host].add(_segment(lab, t, host, members[t.name], underlay,
                                             vni(f"net:{t.name}"), stretched[t.name]))
        else:
            plans[dns_host].add(s)

    meta = _meta(plan.meta, placement, dns_host, stretched)
    for host, sub in plans.items():
        sub.meta = dict(meta, multihost={**meta["multihost"], "host": host})
        sub.warnings += warnings
    return Split(plans, vnis, dns_host, warnings)


def _segment(lab: str, bridge: Bridge, host: str, hosts: set[str], underlay: dict[str, Underlay],
             vni: int, mtu: int) -> StitchSegment:
    others = tuple(underlay[h].address for h in sorted(hosts) if h != host)
    return StitchSegment(ns=bridge.ns, bridge=bridge.name, ifname=f"vxl{vni:x}"[:15], vni=vni,
                         local=underlay[host].address, remotes=others, mtu=mtu)


def _stitch_link(v: Veth, plans, host_of, node_of, underlay, vni, warnings) -> None:
    a, b = host_of[v.ns], host_of[v.peer_ns]
    limit = min(underlay[h].mtu - overhead(underlay[h].address) for h in (a, b))
    if v.mtu and v.mtu > limit:
        warnings.append(f"link {node_of[v.ns]}:{v.ifname} <-> {node_of[v.peer_ns]}:{v.peer}: mtu {v.mtu} "
                        f"is more than VXLAN between hosts carries ({limit}); larger frames are dropped")
    mtu = v.mtu or limit
    number = vni(f"link:{node_of[v.ns]}:{v.ifname}")
    plans[a].add(StitchLink(ns=v.ns, ifname=v.ifname, vni=number, local=underlay[a].address,
                            remote=underlay[b].address, peer=f"{node_of[v.peer_ns]}:{v.peer}", mtu=mtu))
    plans[b].add(StitchLink(ns=v.peer_ns, ifname=v.peer, vni=number, local=underlay[b].address,
                            remote=underlay[a].address, peer=f"{node_of[v.ns]}:{v.ifname}", mtu=mtu,
                            master=v.master))


def _meta(meta: dict, placement: dict[str, str], dns_host: str, stretched: dict[str, int]) -> dict:
    out = dict(meta)
    out["nodes"] = {n: dict(info, host=placement[n]) for n, info in meta.get("nodes", {}).items()}
    out["networks"] = {n: dict(info, mtu=info.get("mtu") or stretched.get(n))
                       for n, info in meta.get("networks", {}).items()}
    out["multihost"] = {"placement": dict(placement), "dns_host": dns_host,
                        "hosts": sorted(set(placement.values())), "stretched": sorted(stretched)}
    return out
