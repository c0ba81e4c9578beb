"""A deployed lab as tests see it: deploy and remove it, run commands in its nodes, run
its checks, apply and clear faults, capture packets. Used by the pytest plugin
(netlab.pytest_plugin) and usable from any Python test runner.

    with deployed("topologies/lan.yml", name="ci-lan") as lab:
        lab.exec("h1", "ping", "-c1", lab.address("h2"))
        lab.assert_checks()

The helpers are thin: checks go through netlab.checks, faults through the `netlab fault`
command (the contract in TOPOLOGY.md), removal through netlab.lab.down.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml

from .core import lab as labops
from .core.errors import TopologyError
from .core.loader import build
from .core.model import Topology


class LabCommandError(AssertionError):
    """A command inside a node, or a netlab command, that failed: shows its output."""


def load(path: str, name: str | None = None) -> Topology:
    """A topology file, optionally deployed under another lab name (so one file can be
    deployed by parallel test runs). TopologyError (one line per problem) if it is bad."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise TopologyError([f"{path}: cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise TopologyError([f"{path}: invalid YAML: {getattr(e, 'problem', None) or e}"]) from None
    if not isinstance(raw, dict):
        raise TopologyError([f"{path}: a topology is a mapping with name, networks and nodes"])
    if name is not None:
        if raw.get("domain") is None and raw.get("name"):
            raw["domain"] = f"{raw['name']}.lab"       # keep the file's DNS zone
        raw["name"] = name
    topo = build(raw)
    topo.source = os.path.abspath(path)
    return topo


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold off Ctrl-C and SIGTERM while a lab is removed (the main thread only), so a
    second Ctrl-C cannot leave half a lab behind; the signal is delivered afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {sig: signal.signal(sig, lambda s, _f: pending.append(s))
             for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if pending:
            os.kill(os.getpid(), pending[0])


@dataclass
class CheckReport:
    """Results of a lab's checks; falsy when one failed, str() is the table."""
    lab: str
    results: list[Any]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[Any]:
        return [r for r in self.results if not r.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        from .checks.report import table
        return table(self.lab, self.results, self.seconds)


@dataclass
class Lab:
    """A deployed lab (by name), with its topology."""
    name: str
    topo: Topology
    meta: dict = field(default_factory=dict)

    # -- facts -------------------------------------------------------------------------
    def ns(self, node: str) -> str:
        """The network namespace of a node (`<lab>-<node>`)."""
        return self._node(node)["ns"]

    def address(self, node: str, network: str | None = None, ip: int | None = None) -> str:
        """A node's address (no prefix): on a network, or its first one; IPv4 unless
        ip=6 (or the node has IPv6 addresses only)."""
        ifaces = [i for i in self._node(node)["interfaces"] if network is None or i["segment"] == network]
        for key in {4: ["address"], 6: ["address6"], None: ["address", "address6"]}[ip]:
            for iface in ifaces:
                if iface.get(key):
                    return iface[key].split("/")[0]
        family = f" IPv{ip}" if ip else ""
        raise KeyError(f"node {node} has no{family} address" + (f" on {network}" if network else ""))

    def _node(self, node: str) -> dict:
        try:
            return self.meta["nodes"][node]
        except KeyError:
            raise KeyError(f"lab {self.name} has no node {node!r}") from None

    def status(self) -> dict:
        """This lab's `netlab status --json` entry."""
        found = labops.status(self.name)
        return found[0] if found else {}

    # -- commands ----------------------------------------------------------------------
    def exec(self, node: str, *cmd: str, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command inside a node (`ip netns exec`, or `docker exec` for a container
        node). With check (the default), a non-zero exit raises LabCommandError with the
        command's output."""
        info = self._node(node)
        if info.get("image"):
            argv = ["docker", "exec", "-i", info["ns"], *cmd]
        else:
            argv = ["ip", "netns", "exec", info["ns"], *cmd]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise LabCommandError(f"{node}: {' '.join(cmd)} exited {done.returncode}\n"
                                  f"{done.stdout}{done.stderr}".rstrip())
        return done

    def netlab(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a netlab command (`netlab ARGS...`) in a child process."""
        done = subprocess.run([sys.executable, "-m", "netlab", *args], capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise LabCommandError(f"netlab {' '.join(args)} exited {done.returncode}\n"
                                  f"{done.stdout}{done.stderr}".rstrip())
        return done

    # -- checks ------------------------------------------------------------------------
    def check(self, *checks: dict, wait: float = 5.0, parallel: int = 16) -> CheckReport:
        """Run checks written as in the file's `checks:` ({"ping": {"from": "h1", "to": "h2"}}),
        or, without arguments, the topology's own checks (the defaults if it has none)."""
        import time

        from .checks.defaults import default_checks
        from .checks.labinfo import LabView
        from .checks.runner import run_checks
        from .checks.spec import parse_checks
        from .core.errors import Problems
        view = LabView.from_meta(self.name, self.meta)
        declared = list(checks) or self.topo.sections.get("checks") or []
        problems = Problems()
        specs = parse_checks(declared, set(view.ns), problems) if declared else default_checks(view)
        problems.raise_if_any()
        started = time.monotonic()
        results = run_checks(specs, view, wait=wait, parallel=parallel)
        return CheckReport(self.name, results, time.monotonic() - started)

    def assert_checks(self, *checks: dict, wait: float = 5.0) -> CheckReport:
        """check(), raising AssertionError with the table when one fails."""
        report = self.check(*checks, wait=wait)
        if not report.ok:
            raise AssertionError(f"{len(report.failed)} of {len(report.results)} checks failed\n{report}")
        return report

    # -- faults ------------------------------------------------------------------------
    def apply_fault(self, scenario: str) -> None:
        """Apply a named scenario of the topology's `faults:` (`netlab fault apply`)."""
        self.netlab("fault", "apply", self.name, scenario)

    def clear_faults(self) -> None:
        """Clear every fault of the lab (`netlab fault clear LAB`)."""
        self.netlab("fault", "clear", self.name)

    def set_fault(self, link: str, **params: str) -> None:
        """An ad-hoc fault on a live link: set_fault("gw:eth2", loss="5%", delay="20ms")."""
        args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
        self.netlab("fault", "set", self.name, "--link", link, *args)

    @contextlib.contextmanager
    def fault(self, scenario: str) -> Iterator[Lab]:
        """`with lab.fault("lossy-wan"):` the scenario is active inside the block; every
        fault of the lab is cleared when it ends."""
        self.apply_fault(scenario)
        try:
            yield self
        finally:
            self.clear_faults()

    # -- packets -----------------------------------------------------------------------
    @contextlib.contextmanager
    def capture(self, where: str, path: str, filter: str | None = None,
                count: int | None = None) -> Iterator[Any]:
        """Record packets on NODE:IF (or a network's bridge) into a pcap at path while the
        block runs; yields the capture, whose .packets() after the block are the frames."""
        from .capture.sniff import Background, Capture, read_pcap, resolve
        ns, ifname = resolve(self.name, where)
        bg = Background(Capture(ns, ifname, filter), path, count)
        bg.packets = lambda: read_pcap(path)[1]
        with bg:
            yield bg


def has_command(name: str) -> bool:
    """Whether this netlab has a command (e.g. "fault"), for tests that need one."""
    from .core.cli import main
    return main.get_command(None, name) is not None     # feature commands load lazily


def deploy(topo: Topology) -> Lab:
    """Bring a lab up (or reconcile it) and describe it."""
    labops.up(topo)
    from .core.state import LabState
    st = LabState.load(topo.name)
    return Lab(topo.name, topo, st.plan.meta if st else {})


def remove(name: str) -> None:
    """Remove a lab completely; Ctrl-C waits until it is gone."""
    with uninterrupted():
        labops.down(name)


@contextlib.contextmanager
def deployed(path: str, name: str | None = None) -> Iterator[Lab]:
    """The lab of a topology file, up inside the block and removed after it, also when
    the block fails or is interrupted."""
    topo = load(path, name)
    try:
        yield deploy(topo)
    finally:
        remove(topo.name)
