"""`netlab destroy --all` removes every lab, also after kill -9 during `up` and after the
state directory is gone.

Each scenario runs in a private mount namespace with its own /run/netns and state
directory (and no Docker engine), so it sees only the labs it makes and can never touch
another lab on this machine.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.kernel

PRELUDE = """
set -eu
mkdir -p /run/netns
mount -t tmpfs netlab-test /run/netns
export NETLAB_STATE_DIR=$(mktemp -d)
export DOCKER_HOST=unix:///nonexistent/docker.sock
netlab() { "$PYTHON" -m netlab "$@"; }
leftovers() { ls /run/netns | wc -l; ls "$NETLAB_STATE_DIR" | wc -l; }
"""


def isolated(script: str) -> subprocess.CompletedProcess:
    body = PRELUDE + textwrap.dedent(script)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", body],
                          capture_output=True, text=True, timeout=240,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": sys.executable})


def test_destroy_all_after_kill_9_during_up():
    result = isolated("""
        netlab generate lan --hosts 300 --name core-kill > /tmp/core-kill.$$.yml
        "$PYTHON" -m netlab up /tmp/core-kill.$$.yml >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 1 400); do
          [ "$(ls /run/netns | wc -l)" -ge 60 ] && break
          sleep 0.02
        done
        kill -9 $pid; wait $pid || true
        rm -f /tmp/core-kill.$$.yml
        echo "before: $(ls /run/netns | wc -l) namespaces"
        netlab destroy --all
        echo "after: $(leftovers | tr '\\n' ' ')"
    """)
    assert result.returncode == 0, result.stderr
    before = int(result.stdout.split("before: ")[1].split()[0])
    assert 0 < before < 301, result.stdout
    assert "removed 1 lab(s): core-kill" in result.stdout
    assert "after: 0 0 " in result.stdout, result.stdout


def test_destroy_all_after_the_state_directory_is_gone():
    result = isolated("""
        netlab generate lan --hosts 5 --name core-lost > /tmp/core-lost.$$.yml
        netlab up /tmp/core-lost.$$.yml >/dev/null
        rm -f /tmp/core-lost.$$.yml
        rm -rf "$NETLAB_STATE_DIR"/*
        netlab destroy --all
        echo "after: $(leftovers | tr '\\n' ' ')"
    """)
    assert result.returncode == 0, result.stderr
    assert "removed 1 lab(s): core-lost" in result.stdout
    assert "after: 0 0 " in result.stdout, result.stdout
