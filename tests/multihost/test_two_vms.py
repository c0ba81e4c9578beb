"""A lab across two real kernels: two QEMU VMs (tests/vm/run) joined by one Ethernet wire.

VM1's qemu listens on a free 127.0.0.1 port and VM2's connects to it (NETLAB_VM_NET): each
guest has one virtio-net NIC and nothing else, so the underlay 10.77.0.0/24 exists only
between the two VMs. tests/multihost/vm_guest.sh runs in each: vm1 runs etcd, its agent
and the controller (up, check, down of topologies/multihost-vm.yml); vm2 runs its agent.

It runs on the host (`python3 -m pytest -m "not fullkernel"`), never inside the VM stage.
Without root, qemu, etcd or a working tests/vm/setup it skips; with NETLAB_REQUIRE_ALL=1
that skip is a failure. NETLAB_VM_TIMEOUT bounds each VM (default 1200 s here).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests" / "vm" / "run"
SETUP = ROOT / "tests" / "vm" / "setup"
GUEST = ROOT / "tests" / "multihost" / "vm_guest.sh"
TOPOLOGY = ROOT / "topologies" / "multihost-vm.yml"
TAIL = 300  # lines of each VM's output shown on failure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_children(pid: int) -> set[int]:
    """qemu processes started by the tests/vm/run process `pid`."""
    found = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if is_qemu(child):
                found.add(child)
    return found


def is_qemu(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().startswith("qemu-system")
    except OSError:
        return False


def term_with_parent() -> None:
    """In the runner's child: SIGTERM if pytest dies (even by SIGKILL), so the runner
    kills its qemu rather than running on to its own timeout."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class VM:
    """One `tests/vm/run -- vm_guest.sh ROLE` process, output into a file."""

    def __init__(self, role: str, net: str, log: Path, timeout: float):
        self.role, self.log = role, log
        env = dict(os.environ, NETLAB_VM_NET=net, NETLAB_VM_TIMEOUT=f"{timeout:g}")
        env.pop("NETLAB_VM_MAC", None)
        self.out = open(log, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(RUN), "--", str(GUEST), role], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=term_with_parent)
        self.qemu: set[int] = set()
        self.seconds: float | None = None

    def poll(self) -> int | None:
        if self.proc.poll() is None:
            self.qemu |= qemu_children(self.proc.pid)
        elif self.seconds is None:
            self.seconds = time.monotonic() - self.started
        return self.proc.returncode

    def output(self, tail: int | None = None) -> str:
        self.out.flush()
        lines = self.log.read_text(errors="replace").splitlines()
        if tail is not None and len(lines) > tail:
            lines = [f"... ({len(lines) - tail} lines before)"] + lines[-tail:]
        return "\n".join(lines)

    def stop(self) -> None:
        """The runner kills its qemu on SIGTERM; then SIGKILL whatever is left, by pid."""
        if self.proc.poll() is None:
            self.qemu |= qemu_children(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.qemu:
            if is_qemu(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.out.close()


@pytest.fixture
def vms():
    started: list[VM] = []
    yield started
    for vm in started:
        vm.stop()


def require_environment() -> None:
    if os.environ.get("NETLAB_VM") == "1":
        pytest.skip("already inside a VM: this test boots its own two")
    if os.geteuid() != 0:
        unavailable("two-VM test: needs root (qemu, and apt-get in tests/vm/setup)")
    for tool in ("etcd", "etcdctl", "ip"):
        if shutil.which(tool) is None:
            unavailable(f"two-VM test: {tool} not found (Debian: etcd-server, etcd-client, iproute2)")
    try:
        setup = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        unavailable(f"two-VM test: tests/vm/setup did not finish: {err}")
    if setup.returncode != 0:
        unavailable(f"two-VM test: tests/vm/setup failed:\n{setup.stderr[-3000:]}")
    if shutil.which("qemu-system-x86_64") is None:
        unavailable("two-VM test: qemu-system-x86_64 not found")


def test_lab_across_two_vms(vms, tmp_path):
    require_environment()
    assert TOPOLOGY.is_file(), f"{TOPOLOGY.relative_to(ROOT)} is missing"
    timeout = float(os.environ.get("NETLAB_VM_TIMEOUT", "1200"))
    port = free_port()
    vm1 = VM("vm1", f"listen:{port}", tmp_path / "vm1.log", timeout)
    vms.append(vm1)
    vm2 = VM("vm2", f"connect:{port}", tmp_path / "vm2.log", timeout)  # waits for vm1's listener
    vms.append(vm2)

    deadline = time.monotonic() + timeout + 90
    while time.monotonic() < deadline:
        if vm1.poll() is not None and vm2.poll() is not None:
            break
        # One side failing early leaves the other waiting on its bounded steps: give it
        # time to report, but not the whole timeout.
        if any(vm.poll() not in (None, 0) for vm in (vm1, vm2)):
            deadline = min(deadline, time.monotonic() + 240)
        time.sleep(1)
    codes = {vm.role: vm.poll() for vm in (vm1, vm2)}

    report = []
    for vm in (vm1, vm2):
        took = f"{vm.seconds:.0f}s" if vm.seconds is not None else "still running"
        report.append(f"===== {vm.role}: exit {codes[vm.role]} ({took}; {vm.log}) =====\n"
                      f"{vm.output(TAIL)}")
    assert codes == {"vm1": 0, "vm2": 0}, f"two-VM run failed: {codes}\n" + "\n".join(report)
    print(f"two VMs: vm1 {vm1.seconds:.0f}s, vm2 {vm2.seconds:.0f}s")
