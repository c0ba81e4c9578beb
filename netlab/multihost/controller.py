"""The controller side of multi-host labs: `up`, `down`, `status` and `check` with --etcd.

up: place the nodes on the live hosts, compile, split, and write every host's sub-plan
and the lab's record in one etcd transaction; then wait until each host's agent reports
the plan of that transaction's revision (or fails, or its lease runs out). Generations
are for people; revisions, which etcd never repeats, say which plan an agent made. A
first deploy that fails (or is interrupted) is removed again from every living host. A
node moved to another host is first removed where it was (phase one), then made where it
goes, so the two never hold the same names at once.
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import ApplyError
from ..core.model import Topology
from ..core.plan import Plan
from . import store as keys
from .partition import Underlay, split
from .placement import place
from .store import Store

POLL = 0.5


@dataclass
class UpReport:
    lab: str
    generation: int
    placement: dict[str, str]
    hosts: dict[str, dict] = field(default_factory=dict)      # host -> its status report
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(r.get("created", 0) for r in self.hosts.values())

    @property
    def deleted(self) -> int:
        return sum(r.get("deleted", 0) for r in self.hosts.values())


def live_hosts(store: Store) -> dict[str, dict]:
    _, kvs = store.get_prefix(f"{keys.ROOT}hosts/")
    return {k.rsplit("/", 1)[1]: json.loads(v) for k, v in kvs.items()}


def read_spec(store: Store, lab: str) -> dict | None:
    raw = store.get(keys.spec_key(lab))
    return keys.unpack(raw) if raw else None


def _all_specs(store: Store) -> dict[str, dict]:
    """Every lab's record, with the etcd revision it (and its plans) was written at."""
    _, entries = store.entries(f"{keys.ROOT}labs/")
    return {k.split("/")[3]: dict(keys.unpack(v), revision=rev)
            for k, (v, rev) in entries.items() if k.endswith("/spec")}


def _hosts_holding(store: Store, lab: str) -> set[str]:
    """Hosts that have a plan for the lab, or still report a status for it."""
    held = {k.split("/")[3] for k in store.keys(f"{keys.ROOT}agents/") if k.endswith(f"/plans/{lab}")}
    return held | {k.rsplit("/", 1)[1] for k in store.keys(f"{keys.ROOT}labs/{lab}/status/")}


def say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def up(store: Store, topo: Topology, timeout: float = 300.0, progress: Callable = say) -> UpReport:
    from ..core.compiler import compile_topology
    started = time.monotonic()
    hosts = live_hosts(store)
    old = read_spec(store, topo.name)
    placement = place(topo, list(hosts), (old or {}).get("placement"))
    plan, _ = compile_topology(topo)
    used = sorted(set(placement.values()))
    underlay = {h: Underlay(hosts[h]["address"], int(hosts[h].get("mtu") or 1500)) for h in used}
    _check_underlay(underlay)
    taken = {v for lab, s in _all_specs(store).items() if lab != topo.name for v in s.get("vnis", {}).values()}
    parts = split(plan, placement, underlay, (old or {}).get("vnis"), taken, (old or {}).get("dns_host"))
    generation = (old or {}).get("generation", 0) + 1
    source_text = _source_text(topo)
    moved = sorted(n for n, h in placement.items() if old and old["placement"].get(n) not in (None, h))
    if moved:
        generation = _phase_one(store, topo.name, old, moved, generation, timeout, progress)
    gone = sorted(_hosts_holding(store, topo.name) - set(used))
    record = {"generation": generation, "placement": placement, "vnis": parts.vnis,
              "dns_host": parts.dns_host, "hosts": used, "meta": parts.plans[used[0]].meta,
              "source": topo.source, "yaml": source_text, "checks": topo.sections.get("checks")}
    puts = {keys.plan_key(h, topo.name): keys.pack({"generation": generation, "plan": p.to_dict(),
                                                    "yaml": source_text, "source": topo.source})
            for h, p in parts.plans.items()}
    puts[keys.spec_key(topo.name)] = keys.pack(record)
    revision = store.transaction(puts, deletes=[keys.plan_key(h, topo.name) for h in gone]
                                 + [keys.check_request_key(h, topo.name) for h in gone])
    progress(f"lab {topo.name}: generation {generation} written for "
             f"{', '.join(f'{h} ({sum(1 for n in placement.values() if n == h)} nodes)' for h in used)}")
    report = UpReport(topo.name, generation, placement, seconds=0.0, warnings=parts.warnings)
    try:
        report.hosts = wait_for(store, topo.name, set(used), revision, timeout, progress)
        wait_removed(store, topo.name, set(gone), timeout, progress)
    except (ApplyError, KeyboardInterrupt) as err:
        if old is None:                  # a first deploy leaves nothing half-built
            progress(f"lab {topo.name}: removing what the hosts made")
            try:
                down(store, topo.name, timeout, progress=lambda _m: None)
            except Exception as undo:
                raise ApplyError(f"{err or 'interrupted'} (and removing it failed: {undo})") from None
        if isinstance(err, KeyboardInterrupt):
            raise ApplyError("interrupted" + ("; removed what the hosts had made" if old is None else "")) from None
        raise
    report.seconds = time.monotonic() - started
    return report


def _check_underlay(underlay: dict[str, Underlay]) -> None:
    """The hosts of one lab must reach each other: one address family, no loopback."""
    import ipaddress
    addresses = {h: ipaddress.ip_address(u.address) for h, u in underlay.items()}
    local = sorted(h for h, a in addresses.items() if a.is_loopback or a.is_link_local or a.is_unspecified)
    if local:
        raise ApplyError(f"host {local[0]} registered underlay address {underlay[local[0]].address}, which "
                         f"other hosts cannot reach: restart its agent with --underlay ADDRESS")
    if len({a.version for a in addresses.values()}) > 1:
        raise ApplyError("the lab's hosts mix IPv4 and IPv6 underlay addresses ("
                         + ", ".join(f"{h} {u.address}" for h, u in sorted(underlay.items()))
                         + "): give every agent an --underlay of one family")


def _source_text(topo: Topology) -> str:
    if not topo.source:
        raise ApplyError("a lab across hosts needs its topology file")
    with open(topo.source) as f:
        return f.read()


def _phase_one(store: Store, lab: str, old: dict, moved: list[str], generation: int,
               timeout: float, progress: Callable) -> int:
    """Hosts that lose nodes drop them (and what lives in their namespaces) first."""
    leaving = {old["meta"]["nodes"][n]["ns"]: old["placement"][n] for n in moved}
    puts = {}
    for host in sorted(set(leaving.values())):
        raw = store.get(keys.plan_key(host, lab))
        if not raw:
            continue
        record = keys.unpack(raw)
        plan = without_namespaces(Plan.from_dict(record["plan"]), set(leaving))
        record.update(generation=generation, plan=plan.to_dict())
        puts[keys.plan_key(host, lab)] = keys.pack(record)
    if not puts:
        return generation
    revision = store.transaction(puts)
    hosts = {k.split("/")[3] for k in puts}
    progress(f"lab {lab}: moving {', '.join(moved)}: removing from {', '.join(sorted(hosts))} first")
    wait_for(store, lab, hosts, revision, timeout, progress)
    return generation + 1


def without_namespaces(plan: Plan, gone: set[str]) -> Plan:
    """The plan less every step in (or joined to) these namespaces, and less what lived
    on those steps (the address of a staying node on a link to a leaving one)."""
    from .partition import NS_FIELDS
    provided: set[tuple] = set()
    kept = []
    for s in plan.steps:
        if any(getattr(s, f, None) in gone for f in NS_FIELDS):
            continue
        if any(p not in provided for p in s.parents):
            continue
        kept.append(s)
        provided.add(s.key)
        provided.update(plan.iface_key(s))
    return Plan(lab=plan.lab, steps=kept, warnings=plan.warnings, meta=plan.meta)


def wait_for(store: Store, lab: str, hosts: set[str], written: int, timeout: float,
             progress: Callable) -> dict[str, dict]:
    """Every host's status for the plans written at revision `written` (or later); ApplyError
    naming the hosts that failed, lost their agent, or did not answer in time."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    prefix = f"{keys.ROOT}labs/{lab}/status/"
    while True:
        revision, kvs = store.get_prefix(prefix)
        for key, value in kvs.items():
            host, report = key.rsplit("/", 1)[1], json.loads(value)
            if host in hosts and host not in done and report.get("revision", 0) >= written:
                done[host] = report
                if report.get("state") == "up":
                    progress(f"  {host}: {report.get('created', 0)} created, "
                             f"{report.get('deleted', 0)} removed in {report.get('seconds', 0):.2f}s")
                else:
                    progress(f"  {host}: FAILED: {report.get('error')}")
        failed = {h: r["error"] for h, r in done.items() if r.get("state") != "up"}
        waiting = hosts - set(done)
        if not waiting:
            if failed:
                raise ApplyError("; ".join(f"host {h}: {e}" for h, e in sorted(failed.items())))
            return done
        dead = waiting - set(live_hosts(store))
        if dead:
            raise ApplyError("; ".join(f"host {h}: its agent is gone (lease expired) before it "
                                       f"reported its part" for h in sorted(dead)))
        if time.monotonic() > deadline:
            raise ApplyError(f"timed out after {timeout:.0f}s waiting for host(s) "
                             f"{', '.join(sorted(waiting))} to report their part")
        store.wait_for_change(prefix, revision, POLL)


def wait_removed(store: Store, lab: str, hosts: set[str], timeout: float, progress: Callable) -> set[str]:
    """Wait until the living ones among `hosts` have removed the lab; returns the dead ones."""
    deadline = time.monotonic() + timeout
    prefix = f"{keys.ROOT}labs/{lab}/status/"
    while hosts:
        revision, kvs = store.get_prefix(prefix)
        present = {k.rsplit("/", 1)[1] for k in kvs}
        alive = set(live_hosts(store))
        pending = {h for h in hosts if h in present and h in alive}
        if not pending:
            return {h for h in hosts if h not in alive and h in present}
        if time.monotonic() > deadline:
            raise ApplyError(f"timed out after {timeout:.0f}s waiting for host(s) "
                             f"{', '.join(sorted(pending))} to remove lab {lab}")
        store.wait_for_change(prefix, revision, POLL)
    return set()


def down(store: Store, lab: str, timeout: float = 120.0, progress: Callable = say) -> tuple[bool, set[str]]:
    """Remove a lab from every living host. (anything was there, dead hosts)"""
    holding = _hosts_holding(store, lab)
    spec = store.get(keys.spec_key(lab))
    if not holding and spec is None:
        return False, set()
    store.transaction(deletes=[keys.plan_key(h, lab) for h in holding]
                      + [keys.check_request_key(h, lab) for h in holding] + [keys.spec_key(lab)])
    dead = wait_removed(store, lab, holding, timeout, progress)
    for host in sorted(dead):
        progress(f"netlab: host {host} has no agent running: its part of lab {lab} is removed "
                 f"when its agent starts again")
    store.delete_prefix(f"{keys.ROOT}labs/{lab}/")
    return True, dead


def status(store: Store, lab: str | None = None) -> dict:
    """Registered hosts and, per lab, each host's state: JSON for `status --etcd --json`."""
    hosts = live_hosts(store)
    labs = []
    for name, spec in sorted(_all_specs(store).items()):
        if lab and name != lab:
            continue
        _, kvs = store.get_prefix(f"{keys.ROOT}labs/{name}/status/")
        reports = {k.rsplit("/", 1)[1]: json.loads(v) for k, v in kvs.items()}
        parts = {}
        for host in spec["hosts"]:
            r = reports.get(host, {})
            alive = host in hosts
            state = r.get("state", "pending") if r.get("revision", 0) >= spec["revision"] else "pending"
            parts[host] = {"alive": alive, "state": state if alive else "dead",
                           "generation": r.get("generation"), "error": r.get("error"),
                           "nodes": sorted(n for n, h in spec["placement"].items() if h == host)}
        labs.append({"lab": name, "generation": spec["generation"], "source": spec.get("source"),
                     "healthy": all(p["alive"] and p["state"] == "up" for p in parts.values()),
                     "hosts": parts, "dns_host": spec.get("dns_host"), "vnis": spec.get("vnis", {}),
                     "nodes": spec.get("meta", {}).get("nodes", {})})
    return {"hosts": {h: dict(info, alive=True) for h, info in sorted(hosts.items())}, "labs": labs}


def check(store: Store, lab: str, declared: list | None, wait: float, parallel: int,
          timeout: float = 120.0):
    """Ask every host of the lab to run its share: (results in order as dicts, seconds,
    the lab's meta, the checks run: the declared ones, or None for the defaults)."""
    from .checks import merge, sources
    spec_raw, spec_revision = store.get_with_revision(keys.spec_key(lab))
    if spec_raw is None:
        raise ApplyError(f"lab {lab} is not deployed across hosts (no record in etcd)")
    spec = keys.unpack(spec_raw)
    declared = declared if declared is not None else spec.get("checks")
    srcs = sources(lab, spec["meta"], declared)
    started = time.monotonic()
    request = {"id": uuid.uuid4().hex, "checks": declared, "wait": wait, "parallel": parallel,
               "revision": spec_revision}
    hosts = sorted({spec["placement"][s] for s in srcs})
    store.transaction({keys.check_request_key(h, lab): keys.pack(request) for h in hosts})
    replies: dict[str, list[dict]] = {}
    missing: dict[str, str] = {}
    deadline = time.monotonic() + timeout + wait * max(1, len(srcs))
    prefix = f"{keys.ROOT}labs/{lab}/checks/"
    while len(replies) < len(hosts):
        revision, kvs = store.get_prefix(prefix)
        for key, value in kvs.items():
            reply = json.loads(value)
            if reply.get("id") == request["id"]:
                replies[reply["host"]] = reply["results"]
                for r in reply["results"]:
                    if r["index"] < 0:            # the host could not run its share at all
                        missing.update({n: r["detail"] for n, h in spec["placement"].items()
                                        if h == reply["host"]})
        waiting = set(hosts) - set(replies)
        dead = waiting - set(live_hosts(store))
        if dead or (waiting and time.monotonic() > deadline):
            for node, host in spec["placement"].items():
                if host in dead:
                    missing[node] = f"host {host} has no agent running"
                elif host in waiting:
                    missing[node] = f"host {host} did not answer in time"
            break
        if waiting:
            store.wait_for_change(prefix, revision, POLL)
    return merge(srcs, replies, missing), time.monotonic() - started, spec["meta"], declared
