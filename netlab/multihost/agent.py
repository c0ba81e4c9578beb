"""`netlab agent`: one per machine. It registers the host in etcd on a lease, watches its
share of every lab (agents/<host>/), makes this machine match it with the ordinary apply
engine (lab.deploy) and state, and reports what it did under labs/<lab>/status/<host>.

Level-triggered: after every change (and every few seconds anyway) the agent re-reads its
whole share and converges, so a missed event, a restart or an etcd member going away
costs a delay, never a wrong lab; a lab part removed by hand (`netlab down` on this
machine) is made again within seconds. Labs this agent made whose plan has gone from etcd are
removed (also labs left from before a crash: they are found in the local state).
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

from . import store as keys
from .store import Store, StoreError

RESYNC = 5.0                 # seconds between full re-reads when nothing changes


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} netlab agent: {message}\n")
    sys.stderr.flush()


def underlay_towards(url: str) -> str:
    """The source address this host uses towards an etcd endpoint (no packet is sent)."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    infos = socket.getaddrinfo(parts.hostname, parts.port or 2379, type=socket.SOCK_DGRAM)
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(address)
        return s.getsockname()[0]


def mtu_of(address: str) -> int | None:
    """MTU of the interface that holds `address` in this namespace; None if none does."""
    import ipaddress

    from pyroute2 import IPRoute
    wanted = ipaddress.ip_address(address)
    with IPRoute() as ipr:
        for a in ipr.get_addr():
            if ipaddress.ip_address(a.get_attr("IFA_ADDRESS")) == wanted:
                return int(ipr.link("get", index=a["index"])[0].get_attr("IFLA_MTU") or 1500)
    return None


def check_underlay(address: str, given: bool) -> int:
    """The underlay MTU, or ApplyError when the address cannot carry a lab between hosts."""
    import ipaddress

    from ..core.errors import ApplyError
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ApplyError(f"--underlay {address!r} is not an IP address") from None
    if ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast:
        how = "--underlay" if given else "the address towards etcd"
        raise ApplyError(f"{how} is {address}, which other hosts cannot reach: give --underlay "
                         f"with this machine's address on the network between the hosts")
    mtu = mtu_of(address)
    if mtu is None:
        raise ApplyError(f"--underlay {address} is not an address of this machine")
    return mtu


@dataclass
class Agent:
    store: Store
    host: str
    address: str
    mtu: int = 1500
    ttl: int = 10
    lease: int | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    applied: dict[str, int] = field(default_factory=dict)     # lab -> plan revision made
    reported: dict[str, int] = field(default_factory=dict)    # lab -> plan revision reported
    checked: dict[str, str] = field(default_factory=dict)     # lab -> check request id done
    failed: set[str] = field(default_factory=set)             # labs whose last apply failed
    pending: dict[str, dict] = field(default_factory=dict)    # lab -> a report not yet written

    # -- registration

    def register(self) -> None:
        self.lease = self.store.grant(self.ttl)
        self.store.put_json(keys.host_key(self.host),
                            {"address": self.address, "mtu": self.mtu, "pid": os.getpid(),
                             "since": time.time()}, lease=self.lease)
        log(f"registered host {self.host} (underlay {self.address}, mtu {self.mtu}, lease {self.ttl}s)")

    def _keepalive(self) -> None:
        while not self.stopping.wait(self.ttl / 3):
            try:
                if not self.store.keepalive(self.lease):
                    log("lease expired; registering again")
                    self.register()
            except StoreError as err:
                log(f"keepalive: {err}")

    # -- the loop

    def run(self) -> None:
        self.register()
        threading.Thread(target=self._keepalive, name="keepalive", daemon=True).start()
        prefix = keys.agent_prefix(self.host)
        first = True
        while not self.stopping.is_set():
            try:
                revision, entries = self.store.entries(prefix)
                self.converge(entries, first)
                first = False
                self.store.wait_for_change(prefix, revision, RESYNC)
            except StoreError as err:
                log(str(err))
                self.stopping.wait(1.0)
            except Exception as err:        # a bad record must not stop the agent: log, go on
                log(f"{type(err).__name__}: {err}")
                self.stopping.wait(1.0)
        try:
            self.store.revoke(self.lease)
        except StoreError:
            pass

    def converge(self, entries: dict[str, tuple[bytes, int]], first: bool = False) -> None:
        """Make this machine match its share. A plan is known by its key's etcd revision
        (`generation` numbers restart after a `down`; revisions never repeat)."""
        from ..core import state
        prefix = keys.agent_prefix(self.host)
        plans, checks = {}, {}
        for key, entry in entries.items():
            kind, _, lab = key[len(prefix):].partition("/")
            (plans if kind == "plans" else checks if kind == "checks" else {})[lab] = entry
        local = set(state.list_labs())
        # what has no plan any more goes first: its names and VNIs may be wanted again
        for lab in sorted(local - set(plans)):
            if _ours(lab):
                self.remove(lab)
        for lab in sorted(set(self.applied) - set(plans)):   # e.g. a failed first deploy, undone
            self.remove(lab)
        if first:
            self.drop_stale_statuses(set(plans))
        for lab, (value, revision) in sorted(plans.items()):
            made = self.applied.get(lab) == revision
            vanished = made and lab not in local and lab not in self.failed   # removed by hand
            if first or not made or vanished:
                self.apply(lab, keys.unpack(value), revision)
            elif self.reported.get(lab) != revision:
                self.report(lab)                   # the last report did not reach etcd
        for lab, (value, _) in sorted(checks.items()):
            request = keys.unpack(value)
            if self.checked.get(lab) != request["id"] and lab in plans:
                self.run_checks(lab, request, keys.unpack(plans[lab][0]), plans[lab][1])

    # -- what a sub-plan asks for

    def apply(self, lab: str, record: dict, revision: int) -> None:
        from ..core import lab as labops
        from ..core.errors import ApplyError, TopologyError
        from ..core.loader import load_text
        from ..core.plan import Plan
        from ..core.state import LabState
        generation = record["generation"]
        report = {"host": self.host, "generation": generation, "revision": revision, "pid": os.getpid()}
        started = time.monotonic()
        try:
            topo = load_text(record["yaml"], source=record.get("source") or "<etcd>")
            topo.source = record.get("source")
            plan = Plan.from_dict(record["plan"])
            _refuse_foreign(lab, topo.name, plan)
            result = labops.deploy(topo, plan, agent=True)
            st = LabState.load(lab)
            st.extras["multihost"] = {"generation": generation, "revision": revision, "host": self.host}
            st.save()
            self.failed.discard(lab)
            report.update(state="up", created=result.created, deleted=result.deleted,
                          seconds=round(result.seconds, 3))
            log(f"lab {lab} generation {generation}: {result.created} created, "
                f"{result.deleted} removed in {result.seconds:.2f}s")
        except Exception as err:          # never let one lab stop the agent
            text = str(err) if isinstance(err, (ApplyError, TopologyError)) else f"{type(err).__name__}: {err}"
            report.update(state="failed", error=text, seconds=round(time.monotonic() - started, 3))
            self.failed.add(lab)
            log(f"lab {lab} generation {generation}: failed: {text}")
        self.applied[lab] = revision
        self.pending[lab] = report
        self.report(lab)

    def report(self, lab: str) -> None:
        """Write the lab's pending report; kept for the next pass if etcd does not take it."""
        report = self.pending.get(lab)
        if report is None:
            return
        self.store.put_json(keys.status_key(lab, self.host), report)
        self.reported[lab] = report["revision"]
        del self.pending[lab]

    def remove(self, lab: str) -> None:
        from ..core import lab as labops
        try:
            labops.down(lab, marked=[])     # by this machine's state only, never by marks:
            log(f"lab {lab}: removed (its plan is gone from etcd)")   # hosts may share /run/netns
        except Exception as err:
            log(f"lab {lab}: removing failed: {err}")
            return
        self.store.delete(keys.status_key(lab, self.host))   # on failure: tried again next pass
        for table in (self.applied, self.reported, self.pending, self.checked):
            table.pop(lab, None)
        self.failed.discard(lab)

    def drop_stale_statuses(self, planned: set[str]) -> None:
        """After a restart: status reports of this host for labs it no longer has a plan
        for (the agent died between reporting and removing) would hold up `down`."""
        for key in self.store.keys(f"{keys.ROOT}labs/"):
            parts = key[len(keys.ROOT):].split("/")       # labs/<lab>/status/<host>
            if len(parts) == 4 and parts[2] == "status" and parts[3] == self.host and parts[1] not in planned:
                self.remove(parts[1])

    def run_checks(self, lab: str, request: dict, record: dict, revision: int) -> None:
        from .checks import run_local
        if request.get("revision", revision) != revision or self.applied.get(lab) != revision:
            results = [{"index": -1, "ok": False, "detail": f"host {self.host} has not made the "
                        f"lab's latest plan (its revision {self.applied.get(lab)}, "
                        f"the lab's {request.get('revision')})"}]
        else:
            try:
                results = run_local(lab, request, record["plan"]["meta"], self.host)
            except Exception as err:
                results = [{"index": -1, "ok": False, "detail": f"{type(err).__name__}: {err}"}]
        self.store.put_json(keys.check_result_key(lab, self.host),
                            {"id": request["id"], "host": self.host, "results": results})
        self.checked[lab] = request["id"]


def _refuse_foreign(lab: str, name: str, plan) -> None:
    """A plan from etcd touches only its own lab's namespaces (etcd is an input, not a
    source of trust: a step naming another namespace is refused, not applied)."""
    from ..core.errors import ApplyError
    from .partition import NS_FIELDS
    if not (lab == name == plan.lab):
        raise ApplyError(f"plan for lab {lab} names lab {plan.lab} / {name}")
    for s in plan.steps:
        for f in NS_FIELDS:
            value = getattr(s, f, None)
            if isinstance(value, str) and not value.startswith(f"{lab}-"):
                raise ApplyError(f"plan step {s.describe()} names namespace {value}, not one of lab {lab}")


def _ours(lab: str) -> bool:
    """A lab in this machine's state that an agent made (single-host labs are left alone)."""
    from ..core.state import LabState
    st = LabState.load(lab)
    return st is not None and "multihost" in st.extras or (
        st is not None and st.plan.meta.get("multihost") is not None)


def main(endpoints: str, host: str, underlay: str | None, state_dir: str | None, ttl: int) -> None:
    from ..core.lab import require_root
    require_root("agent")
    if state_dir:
        os.environ["NETLAB_STATE_DIR"] = state_dir
    urls = keys.parse_endpoints(endpoints)
    address = underlay or underlay_towards(urls[0])
    agent = Agent(Store(urls), host, address, check_underlay(address, bool(underlay)), ttl)

    def stop(signum, _frame):
        log(f"signal {signum}: stopping (labs stay as they are)")
        agent.stopping.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()
