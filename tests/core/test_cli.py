"""The command line contract: exit codes, one-line errors, JSON, exec, generate."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from netlab.core import kernel
from netlab.core.cli import main
from netlab.core.loader import load_text


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_plan_prints_steps_and_needs_no_kernel(monkeypatch, tmp_path):
    def forbidden(*a, **k):
        raise AssertionError("plan touched the kernel")
    for name in ("created", "entered", "attach", "delete"):
        monkeypatch.setattr(kernel, name, forbidden)
    f = tmp_path / "t.yml"
    f.write_text("name: t\nnetworks: {lan: {subnet: 10.0.0.0/24}}\nnodes:\n  a: {networks: [lan]}\n")
    result = run("plan", str(f))
    assert result.exit_code == 0
    assert "addr    t-a:eth0 10.0.0.1/24" in result.output
    data = json.loads(run("plan", str(f), "--json").output)
    assert data["lab"] == "t" and data["steps"][0]["type"] == "netns"


def test_bad_file_exits_2_with_located_lines_and_no_traceback(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text("name: t\nnodes:\n  a: {networks: [nope]}\nlinks:\n  - endpoints: [a:eth1, b:eth1]\n")
    for command in ("plan", "up"):
        proc = subprocess.run([sys.executable, "-m", "netlab", command, str(f)], capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == ["nodes.a.networks[0]: unknown network 'nope'",
                                            "links[0].endpoints[1]: unknown node 'b'"]
        assert "Traceback" not in proc.stderr
    assert not kernel.netns_exists("t-a")


def test_missing_file_exits_2():
    proc = subprocess.run([sys.executable, "-m", "netlab", "plan", "/nonexistent.yml"], capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_generate_lan_prints_a_valid_topology():
    result = run("generate", "lan", "--hosts", "300", "--name", "big")
    topo = load_text(result.output)
    assert topo.name == "big" and len(topo.nodes) == 300
    assert topo.networks["lan"].subnet.prefixlen == 23
    assert run("generate", "lan", "--hosts", "3", "--name", "Bad_Name").exit_code == 2
    dual = load_text(run("generate", "lan", "--hosts", "3", "--ipv6").output)
    assert str(dual.networks["lan"].subnet6) == "2001:db8:1::/64"


@pytest.mark.kernel
def test_up_status_exec_down_through_the_cli(tmp_path):
    f = tmp_path / "lab.yml"
    f.write_text("name: core-cli\nnetworks: {lan: {subnet: 10.62.0.0/24}}\n"
                 "nodes:\n  a: {networks: [lan]}\n  b: {networks: [lan]}\n")
    cli = [sys.executable, "-m", "netlab"]
    try:
        up = subprocess.run(cli + ["up", str(f)], capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        again = subprocess.run(cli + ["up", str(f)], capture_output=True, text=True)
        assert "nothing changed" in again.stdout
        status = json.loads(subprocess.run(cli + ["status", "core-cli", "--json"],
                                           capture_output=True, text=True).stdout)
        assert status[0]["healthy"] and {n["name"] for n in status[0]["nodes"]} == {"a", "b"}
        text = subprocess.run(cli + ["status", "core-cli"], capture_output=True, text=True).stdout
        assert "eth0=10.62.0.2/24" in text
        ex = subprocess.run(cli + ["exec", "core-cli", "a", "--", "ping", "-c", "1", "-W", "1", "10.62.0.2"],
                            capture_output=True, text=True)
        assert ex.returncode == 0, ex.stderr
        fail = subprocess.run(cli + ["exec", "core-cli", "a", "--", "sh", "-c", "exit 7"])
        assert fail.returncode == 7
        assert subprocess.run(cli + ["exec", "core-cli", "zz", "--", "true"]).returncode == 2
    finally:
        down = subprocess.run(cli + ["down", str(f)], capture_output=True, text=True)
    assert down.returncode == 0 and "removed" in down.stdout
    assert not kernel.netns_exists("core-cli-a")


@pytest.mark.kernel
def test_progress_on_a_terminal_and_quiet_in_a_pipe(tmp_path):
    import os
    import pty
    f = tmp_path / "big.yml"
    f.write_text(run("generate", "lan", "--hosts", "25", "--name", "core-prog").output)
    cli = [sys.executable, "-m", "netlab"]
    try:
        piped = subprocess.run(cli + ["up", str(f)], capture_output=True, text=True)
        assert piped.returncode == 0 and "/25" not in piped.stderr
        subprocess.run(cli + ["down", "core-prog"], capture_output=True, check=True)
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.executable, cli + ["up", str(f)])
        output = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert b"nodes 25/25" in output, output
    finally:
        subprocess.run(cli + ["down", "core-prog"], capture_output=True)


def test_a_closed_pipe_is_not_an_error():
    # `netlab ... | head`: the reader leaves early; no "BrokenPipeError" line on stderr
    proc = subprocess.run(f"{sys.executable} -m netlab generate lan --hosts 5000 | true",
                          shell=True, capture_output=True, text=True)
    assert proc.stderr == ""
