"""Processes netlab ends are gone when it returns, not zombies: its own children it reaps
(the lab's DNS server included, adopted when it daemonizes), others it waits for until
their parent has collected them. Every process is identified by the PID (and start time)
netlab recorded, never by name."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

from netlab.core import lab as labops
from netlab.core import processes
from netlab.core.state import LabState
from netlab.testing import load
from tests.conftest import unavailable

ROOT = pathlib.Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "lab.yml"          # DNS server and responders


def gone(rec: dict) -> bool:
    """No process has this record's PID and start time: not running, not a zombie."""
    st = processes._stat(rec["pid"])
    return st is None or st[2] != rec["start"]


def test_stop_reaps_our_own_child():
    child = subprocess.Popen(["sleep", "30"])
    child.returncode = 0                 # as netlab's responders: not the Popen's to wait for
    rec = processes.record(child.pid)
    processes.stop(rec)
    assert gone(rec)


def test_a_zombie_counts_as_there_until_its_parent_collects_it():
    """A process whose parent is not netlab: wait() returns when the parent has reaped it
    (here after 0.5 s), not when it exited; dead_only=True returns once it has exited."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\n"
         "pid = os.fork()\n"
         "if pid == 0:\n    time.sleep(0.2); os._exit(0)\n"
         "print(pid, flush=True); time.sleep(0.7); os.waitpid(pid, 0); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        rec = processes.record(int(parent.stdout.readline()))
        started = time.monotonic()
        assert processes.wait([rec], timeout=5, dead_only=True) == []
        dead = time.monotonic() - started
        assert processes._stat(rec["pid"])[0] == "Z"          # exited, not collected yet
        assert processes.wait([rec], timeout=5) == []
        collected = time.monotonic() - started
        assert gone(rec) and dead < 0.5 < collected < 2.0, (dead, collected)
    finally:
        parent.kill()
        parent.wait()


def test_wait_is_bounded():
    parent = subprocess.Popen([sys.executable, "-c", "import os, time\n"
                               "pid = os.fork()\n"
                               "if pid == 0:\n    os._exit(0)\n"
                               "print(pid, flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        rec = processes.record(int(parent.stdout.readline()))
        started = time.monotonic()
        assert processes.wait([rec], timeout=0.3) == [rec]     # its parent never collects it
        assert time.monotonic() - started < 1.0
    finally:
        parent.kill()
        parent.wait()


def test_a_callers_own_child_is_left_for_the_caller_to_collect():
    """kill() + wait(reap=False), as `down` does for what runs in a lab's namespaces: a
    child this process started (a test's Popen) has exited when wait returns, and its
    exit status is still the Popen's."""
    child = subprocess.Popen(["sleep", "30"])
    ended = processes.kill([child.pid])
    assert processes.wait(ended, reap=False) == []
    assert processes._stat(child.pid)[0] == "Z"
    assert child.wait(timeout=5) == -9


def test_a_daemon_started_while_adopting_is_our_child_and_its_middle_process_is_reaped():
    """A daemon's double fork, as dnsmasq does it: the middle process is a session leader
    that exits at once; the daemon is left to this process, which stops and reaps it."""
    script = "setsid sh -c 'sleep 30 >/dev/null 2>&1 & echo $!' "
    with processes.adopting():
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    pid = int(out)
    rec = processes.record(pid)
    try:
        assert processes._stat(pid)[1] == os.getpid()
        leader = processes._stat(pid)[3]
        processes.reap_daemon_parent(pid)
        assert processes._stat(leader) is None or processes._stat(leader)[1] != os.getpid()
    finally:
        processes.stop(rec)
    assert gone(rec)


def test_a_watched_child_is_reaped_as_it_exits_whoever_ends_it():
    child = subprocess.Popen(["sleep", "30"])
    child.returncode = 0                 # as netlab's servers: not the Popen's to wait for
    rec = processes.record(child.pid)
    processes.watch(child.pid)
    subprocess.run(["kill", "-TERM", str(child.pid)], check=True)     # another process ends it
    deadline = time.monotonic() + 2
    while not gone(rec) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert gone(rec)


@pytest.fixture
def example_lab():
    """The example lab under its own name; always removed."""
    if os.geteuid() != 0:
        unavailable("needs root")
    topo = load(str(EXAMPLE), name="pl-reap")
    try:
        yield topo
    finally:
        labops.down(topo.name)


def recorded(lab: str) -> list[dict]:
    """The processes the lab's state records: its DNS server and its responders."""
    extras = LabState.load(lab).extras
    return [extras["dns"]] + list(extras.get("services", {}).values())


@pytest.mark.kernel
def test_example_down_in_one_process_leaves_no_process_not_even_a_zombie(example_lab):
    labops.up(example_lab)
    records = recorded(example_lab.name)
    assert len(records) == 2 and all(processes.alive(r) for r in records)
    assert processes._stat(records[0]["pid"])[1] == os.getpid()     # dnsmasq: adopted
    sleeper = subprocess.Popen(["ip", "netns", "exec", "pl-reap-client", "sleep", "300"])
    try:
        started = time.monotonic()
        assert labops.down(example_lab.name)
        assert time.monotonic() - started < 1.0          # nothing waited for PID 1
        assert [r for r in records if not gone(r)] == []
        assert processes._stat(sleeper.pid)[0] == "Z"     # ended; the test's own to collect
        assert sleeper.wait(timeout=5) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


@pytest.mark.kernel
def test_example_down_by_another_process_returns_once_the_dns_server_has_exited(example_lab, tmp_path):
    """`netlab up` and `netlab down` as commands: the DNS server's parent is PID 1 once
    `up` has exited; `down` returns when it has exited, without waiting for PID 1 to
    collect it (about a second on some machines), and PID 1 then does."""
    netlab = [sys.executable, "-m", "netlab"]
    path = tmp_path / "lab.yml"
    path.write_text(EXAMPLE.read_text().replace("name: pl-demo", "name: pl-reap\ndomain: pl-demo.lab"))
    subprocess.run(netlab + ["up", str(path)], check=True, capture_output=True, timeout=60)
    records = recorded(example_lab.name)
    assert processes._stat(records[0]["pid"])[1] != os.getpid()
    started = time.monotonic()
    subprocess.run(netlab + ["down", example_lab.name], check=True, capture_output=True, timeout=60)
    assert time.monotonic() - started < 1.0
    assert all(processes._stat(r["pid"]) is None or processes._stat(r["pid"])[0] in "ZX" for r in records)
    assert processes.wait(records, timeout=10) == []            # collected by PID 1 in the end


@pytest.mark.kernel
def test_example_up_here_and_down_by_the_command_leaves_no_zombie_here(example_lab):
    """A test (or an agent) brings the lab up in its own process and `netlab down` runs
    as a command: the servers are this process's children, reaped here as they exit, so
    `down` need not wait and nothing lingers."""
    labops.up(example_lab)
    records = recorded(example_lab.name)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "netlab", "down", example_lab.name], check=True,
                   capture_output=True, timeout=60)
    assert time.monotonic() - started < 2.0          # not REAP_TIMEOUT (3 s)
    assert [r for r in records if not gone(r)] == []
