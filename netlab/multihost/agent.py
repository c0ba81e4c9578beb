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


def mtu_of(address: str) -> int:
    """MTU of the interface that holds `address` in this namespace (1500 if unknown)."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        for a in ipr.get_addr():
            if a.get_attr("IFA_ADDRESS") == address:
                return int(ipr.link("get", index=a["index"])[0].get_attr("IFLA_MTU") or 1500)
    return 1500


@dataclass
class Agent:
    store: Store
    host: str
    address: str
    mtu: int = 1500
    ttl: int = 10
    lease: int | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    applied: dict[str, int] = field(default_factory=dict)     # lab -> generation made
    checked: dict[str, str] = field(default_factory=dict)     # lab -> check request id done
    failed: set[str] = field(default_factory=set)             # labs whose last apply failed

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
                revision, kvs = self.store.get_prefix(prefix)
                self.converge(kvs, first)
                first = False
                self.store.wait_for_change(prefix, revision, RESYNC)
            except StoreError as err:
                log(str(err))
                self.stopping.wait(1.0)
        try:
            self.store.revoke(self.lease)
        except StoreError:
            pass

    def converge(self, kvs: dict[str, bytes], first: bool = False) -> None:
        from .. import state
        prefix = keys.agent_prefix(self.host)
        plans, checks = {}, {}
        for key, value in kvs.items():
            kind, _, lab = key[len(prefix):].partition("/")
            if kind == "plans":
                plans[lab] = value
            elif kind == "checks":
                checks[lab] = value
        local = set(state.list_labs())
        for lab, value in sorted(plans.items()):
            record = keys.unpack(value)
            made = self.applied.get(lab) == record["generation"]
            vanished = made and lab not in local and lab not in self.failed   # removed by hand
            if first or not made or vanished:
                self.apply(lab, record)
        for lab in state.list_labs():
            if lab not in plans and _ours(lab):
                self.remove(lab)
        for lab in set(self.applied) - set(plans):     # e.g. a first deploy that failed and was undone
            self.remove(lab)
        if first:
            self.drop_stale_statuses(set(plans))
        for lab, value in sorted(checks.items()):
            request = keys.unpack(value)
            if self.checked.get(lab) != request["id"] and lab in plans:
                self.run_checks(lab, request, keys.unpack(plans[lab]))

    # -- what a sub-plan asks for

    def apply(self, lab: str, record: dict) -> None:
        from .. import lab as labops
        from ..errors import ApplyError, TopologyError
        from ..loader import load_text
        from ..plan import Plan
        from ..state import LabState
        generation = record["generation"]
        report = {"host": self.host, "generation": generation, "pid": os.getpid()}
        started = time.monotonic()
        try:
            topo = load_text(record["yaml"], source=record.get("source") or "<etcd>")
            topo.source = record.get("source")
            result = labops.deploy(topo, Plan.from_dict(record["plan"]))
            st = LabState.load(lab)
            st.extras["multihost"] = {"generation": generation, "host": self.host}
            st.save()
            self.failed.discard(lab)
            report.update(state="up", created=result.created, deleted=result.deleted,
                          seconds=round(result.seconds, 3))
            log(f"lab {lab} generation {generation}: {result.created} created, "
                f"{result.deleted} removed in {result.seconds:.2f}s")
        except (ApplyError, TopologyError) as err:
            report.update(state="failed", error=str(err), seconds=round(time.monotonic() - started, 3))
            log(f"lab {lab} generation {generation}: failed: {err}")
        except Exception as err:      # never let one lab stop the agent
            report.update(state="failed", error=f"{type(err).__name__}: {err}",
                          seconds=round(time.monotonic() - started, 3))
            log(f"lab {lab} generation {generation}: failed: {type(err).__name__}: {err}")
        if report["state"] != "up":
            self.failed.add(lab)
        self.applied[lab] = generation
        self.store.put_json(keys.status_key(lab, self.host), report)

    def remove(self, lab: str) -> None:
        from .. import lab as labops
        try:
            labops.down(lab)
            log(f"lab {lab}: removed (its plan is gone from etcd)")
        except Exception as err:
            log(f"lab {lab}: removing failed: {err}")
            return
        self.applied.pop(lab, None)
        self.store.delete(keys.status_key(lab, self.host))

    def drop_stale_statuses(self, planned: set[str]) -> None:
        """After a restart: status reports of this host for labs it no longer has a plan
        for (the agent died between reporting and removing) would hold up `down`."""
        _, kvs = self.store.get_prefix(f"{keys.ROOT}labs/")
        for key in kvs:
            parts = key[len(keys.ROOT):].split("/")       # labs/<lab>/status/<host>
            if len(parts) == 4 and parts[2] == "status" and parts[3] == self.host and parts[1] not in planned:
                self.remove(parts[1])

    def run_checks(self, lab: str, request: dict, record: dict) -> None:
        from .checks import run_local
        results = run_local(lab, request, record["plan"]["meta"], self.host)
        self.store.put_json(keys.check_result_key(lab, self.host),
                            {"id": request["id"], "host": self.host, "results": results})
        self.checked[lab] = request["id"]


def _ours(lab: str) -> bool:
    """A lab in this machine's state that an agent made (single-host labs are left alone)."""
    from ..state import LabState
    st = LabState.load(lab)
    return st is not None and "multihost" in st.extras or (
        st is not None and st.plan.meta.get("multihost") is not None)


def main(endpoints: str, host: str, underlay: str | None, state_dir: str | None, ttl: int) -> None:
    from ..lab import require_root
    require_root("agent")
    if state_dir:
        os.environ["NETLAB_STATE_DIR"] = state_dir
    urls = keys.parse_endpoints(endpoints)
    address = underlay or underlay_towards(urls[0])
    agent = Agent(Store(urls), host, address, mtu_of(address), ttl)

    def stop(signum, _frame):
        log(f"signal {signum}: stopping (labs stay as they are)")
        agent.stopping.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()
