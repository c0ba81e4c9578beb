"""Lab operations: up (deploy or reconcile), down, destroy --all, status.

These tie the stages together: compile -> diff against state -> apply -> save state.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import hooks, kernel, processes, state
from .errors import ApplyError
from .plan import Namespace, Plan
from .state import LabState

# `netlab down` imports this module: what only `up`, reconcile or containers need
# (the compiler, pyroute2, the executors, the Docker runtime) is imported where used.
if TYPE_CHECKING:
    from . import apply
    from .model import Topology


@dataclass
class UpResult:
    lab: str
    created: int
    deleted: int
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.created or self.deleted)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise ApplyError(f"netlab {what} needs root (it creates network namespaces); run it with sudo")


def _namespaces(plan: Plan) -> list[Namespace]:
    return [s for s in plan.steps if isinstance(s, Namespace)]


def _container_runtime():
    """The container runtime (a feature's, found through the registry), or None."""
    return hooks.registry().runtime("container")


def _missing(plan: Plan) -> set[tuple]:
    """Keys of namespaces the state lists that are no longer there (or whose container
    was restarted): reconcile re-creates them and what lives in them."""
    missing = set()
    runtime = _container_runtime() if any(s.image for s in _namespaces(plan)) else None
    for s in _namespaces(plan):
        present = kernel.netns_exists(s.ns)
        if present and s.image and runtime is not None:
            present = runtime.present(s)
        if not present:
            missing.add(s.key)
    return missing


def _refuse_foreign_namespaces(lab: str, plan: Plan) -> None:
    """Before a fresh deploy: every namespace the plan names must be free, so a failed
    deploy can remove what it planned without touching anything it did not make."""
    taken = [s.ns for s in _namespaces(plan) if kernel.netns_exists(s.ns)]
    if taken:
        raise ApplyError(f"namespace {taken[0]} already exists and is not part of lab {lab} "
                         f"(remove it, or rename the lab)")


def _uses_ipv6(topo: Topology) -> str | None:
    """Where the topology first asks for IPv6, or None."""
    for net in topo.networks.values():
        if net.subnet6 is not None:
            return f"networks.{net.name}.subnet6"
    for link in topo.links:
        if link.subnet6 is not None:
            return f"links[{link.position}].subnet6"
    return None


def refuse_ipv6_if_disabled(where: str | None) -> None:
    """Refuse a lab that asks for IPv6 (first at `where`) on a host without it; features
    call it from `preflight` for IPv6 of their own (a gre tunnel's subnet6)."""
    if where and not kernel.ipv6_available():
        raise ApplyError(f"{where}: this lab uses IPv6, but IPv6 is disabled on this host "
                         f"(net.ipv6.conf.all.disable_ipv6=1); enable it or remove the IPv6 subnets")


def up(topo: Topology) -> UpResult:
    require_root("up")
    started = time.monotonic()
    from .compiler import compile_topology
    plan, _ = compile_topology(topo)
    return deploy(topo, plan, started)


def deploy(topo: Topology, plan: Plan, started: float | None = None, agent: bool = False) -> UpResult:
    """Make this host match `plan` (the whole lab's, or one host's share of a lab that
    spans hosts): a fresh deploy, or a reconcile against the saved state. A lab whose part
    here an agent keeps is changed only by that agent (`agent=True`)."""
    from . import apply, reconcile
    started = time.monotonic() if started is None else started
    refuse_ipv6_if_disabled(_uses_ipv6(topo))
    for hook in hooks.registry().hooks("preflight"):
        hook(topo, plan)
    old = LabState.load(topo.name)
    if not agent and old is not None and old.plan.meta.get("multihost"):
        host = old.plan.meta["multihost"].get("host")
        raise ApplyError(f"lab {topo.name} runs across hosts (this machine holds its part for host "
                         f"{host}, kept by netlab agent): use netlab up --etcd")
    if old is not None and old.status == "up":
        deletes, creates = reconcile.diff(old.plan, plan, _missing(old.plan))
        extras = old.extras
    else:
        if old is not None:          # a deploy that died part-way: clear it first
            down(topo.name)
        _refuse_foreign_namespaces(topo.name, plan)
        deletes, creates = [], list(plan.steps)
        extras = {}
        LabState(topo.name, "deploying", plan, topo.source).save()
    fresh = old is None or old.status != "up"
    ctx = apply.Context(topo.name, extras)
    ctx.progress = apply.Progress(sum(1 for s in creates if isinstance(s, Namespace) and s.node))
    try:
        try:
            apply.run(ctx, deletes, creates)
        except BaseException:
            if fresh:
                _remove_everything(topo.name, plan, ctx)
            elif ctx.deleted:
                # a failed reconcile undid its creations; what it deleted is gone, so the
                # state keeps only what still exists (the next `up` builds the rest)
                gone = {s.key for s in ctx.deleted}
                old.plan.steps = [s for s in old.plan.steps if s.key not in gone]
                old.save()
            raise
        # from here the plan's objects exist: the state says so before hooks run
        done = LabState(topo.name, "up", plan, topo.source, extras=ctx.extras)
        done.save()
        extras_before = json.dumps(ctx.extras, sort_keys=True, default=str)
        try:
            for hook in hooks.registry().hooks("after_up"):
                hook(ctx, plan, topo)
        except BaseException:
            if fresh:
                _remove_everything(topo.name, plan, ctx)
            else:
                done.save()
            raise
        if json.dumps(ctx.extras, sort_keys=True, default=str) != extras_before:
            done.save()
    finally:
        ctx.close()
    return UpResult(topo.name, len(creates), len(deletes), time.monotonic() - started)


def _may_have_containers(plan: Plan | None) -> bool:
    """Whether the Docker engine must be asked about a lab: when its plan has container
    nodes, or when there is no plan (lost state), to find containers by label."""
    return plan is None or any(s.image for s in _namespaces(plan))


def _remove_everything(lab: str, plan: Plan | None, ctx: apply.Context | None = None,
                       marked: list[str] = (), saved: LabState | None = None) -> None:
    """Remove a lab's objects: feature teardown, processes inside its namespaces,
    containers, namespaces, then its state. Uses the plan, plus ownership marks.
    Processes it ends it waits for (bounded) until they are gone."""
    saved = saved or LabState.load(lab)
    extras = saved.extras if saved else {}
    with processes.collecting():        # servers stopped by teardown hooks: waited for at the end
        for hook in hooks.registry().hooks("teardown"):
            hook(lab, plan, extras)
        names = {s.ns for s in _namespaces(plan)} if plan else set()
        names |= set(marked)
        inodes = {i for i in (kernel.netns_inode(n) for n in names) if i is not None}
        ended = processes.kill(kernel.pids_in_netns(inodes))
        runtime = _container_runtime() if _may_have_containers(plan) else None
        if runtime is not None:
            runtime.remove_lab(lab)
        for name in sorted(names):
            if ctx is not None:
                ctx.forget(name)
            kernel.delete(name)
        state.remove(lab)
    # what else ran in the lab's namespaces (`ip netns exec` from a shell, a test's
    # Popen): waited for until it has exited; its exit status is left to its parent
    processes.wait(ended, reap=False, dead_only=True)


def down(lab: str, marked: list[str] | None = None) -> bool:
    """Remove every object of a lab. True if there was anything to remove.

    With state, the plan names every namespace the lab has (also while deploying);
    without it, namespaces are found by their ownership marks (`marked`, or a scan)."""
    require_root("down")
    st = LabState.load(lab)
    if st is None and marked is None:
        marked = find_marked_namespaces().get(lab, [])
    runtime = _container_runtime() if _may_have_containers(st.plan if st else None) else None
    containers = runtime.lab_containers(lab) if runtime is not None else []
    if st is None and not marked and not containers:
        return False
    _remove_everything(lab, st.plan if st else None, marked=marked or [], saved=st)
    return True


def find_marked_namespaces() -> dict[str, list[str]]:
    """Namespaces whose `lo` carries netlab's mark, by lab: found without any state."""
    from pyroute2 import IPRoute

    from . import apply
    found: dict[str, list[str]] = {}
    for name in kernel.list_netns():
        if "-" not in name or kernel.netns_inode(name) is None:
            continue
        try:
            with kernel.entered(name):
                ipr = IPRoute()
            try:
                alias = ipr.link("get", index=1)[0].get_attr("IFLA_IFALIAS") or ""
            finally:
                ipr.close()
        except OSError:
            continue
        if alias.startswith(apply.MARK_PREFIX):
            lab = alias[len(apply.MARK_PREFIX):].split(":", 1)[0]
            found.setdefault(lab, []).append(name)
    return found


def destroy_all() -> list[str]:
    """Remove every lab on the host: from state, marks and container labels."""
    require_root("destroy")
    marks = find_marked_namespaces()
    labs = set(state.list_labs()) | set(marks)
    runtime = _container_runtime()
    if runtime is not None:
        labs |= set(runtime.all_labs())
    failed = []
    for lab in sorted(labs):
        try:
            down(lab, marks.get(lab, []))
        except Exception as err:      # one broken lab must not keep the others on the host
            from . import apply
            failed.append(f"{lab}: {apply.describe_error(err)}")
    # state directories of labs that left nothing else behind
    for lab in state.list_labs():
        state.remove(lab)
    if failed:
        raise ApplyError("could not remove " + "; ".join(failed))
    return sorted(labs)


def status(lab: str | None = None) -> list[dict]:
    """Labs with their nodes, addresses and health (namespace present, container running)."""
    labs = [lab] if lab else state.list_labs()
    result = []
    for name in labs:
        st = LabState.load(name)
        if st is None:
            continue
        missing = _missing(st.plan)
        nodes = []
        for node, info in st.plan.meta.get("nodes", {}).items():
            healthy = ("netns", info["ns"]) not in missing
            nodes.append({"name": node, "kind": info["kind"], "image": info.get("image"),
                          "netns": info["ns"], "healthy": healthy,
                          "interfaces": info["interfaces"]})
        entry = {"lab": name, "status": st.status, "source": st.source,
                 "healthy": st.status == "up" and not missing, "nodes": nodes,
                 "networks": st.plan.meta.get("networks", {})}
        for hook in hooks.registry().hooks("status"):
            hook(entry, st)
        result.append(entry)
    return result
