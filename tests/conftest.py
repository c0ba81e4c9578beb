"""Shared test fixtures.

Tests that need root, Docker or a full kernel skip on a user's machine when those are
missing; with NETLAB_REQUIRE_ALL=1 (set by .ci/run) such a skip fails the run instead.
Every lab a test deploys is removed by a finalizer, also when the test fails.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from netlab.core import lab as labops
from netlab.core.loader import load_file, load_text

REQUIRE_ALL = os.environ.get("NETLAB_REQUIRE_ALL") == "1"


def unavailable(reason: str):
    """Skip, or fail when CI demands that everything runs."""
    if REQUIRE_ALL:
        pytest.fail(f"required but unavailable (NETLAB_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)


def have_root() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def have_docker() -> bool:
    try:
        import docker
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") and not have_root():
        unavailable("needs root and iproute2")
    if item.get_closest_marker("docker") and not have_docker():
        unavailable("needs a running Docker engine")
    if item.get_closest_marker("fullkernel") and os.environ.get("NETLAB_FULL_KERNEL") != "1":
        pytest.skip("needs the full-kernel VM (tests/vm/run)")


@pytest.fixture
def deploy():
    """deploy(text_or_path) -> Topology: brings a lab up and always takes it down."""
    deployed = []

    def _deploy(source: str):
        topo = load_file(source) if os.path.isfile(source) else load_text(source)
        deployed.append(topo.name)
        labops.up(topo)
        return topo

    yield _deploy
    for name in reversed(deployed):
        labops.down(name)


def module_lab(text: str):
    """A module-scoped fixture that deploys YAML text, yields its Topology, and always
    removes the lab afterwards: `lab = module_lab(TOPO)` in a test module."""
    @pytest.fixture(scope="module")
    def lab():
        topo = load_text(text)
        try:
            labops.up(topo)
            yield topo
        finally:
            labops.down(topo.name)
    return lab


def nsexec(ns: str, *cmd: str, timeout: float = 20, check: bool = False) -> subprocess.CompletedProcess:
    """Run a plain tool inside a lab namespace."""
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          timeout=timeout, check=check)
