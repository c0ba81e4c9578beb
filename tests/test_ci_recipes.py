"""The CI recipes people copy: the Vagrantfile (Ruby syntax, and the provisioning script
it builds, checked with `bash -n`) and the GitHub Actions workflow (its shape, and that
the lab it deploys exists). Pure: no root."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

from netlab.core.loader import load_file
from tests.conftest import unavailable

ROOT = pathlib.Path(__file__).parent.parent
VAGRANTFILE = ROOT / "Vagrantfile"
WORKFLOW = ROOT / ".github" / "workflows" / "lab.yml"

# A stand-in for Vagrant: evaluates the Vagrantfile, prints the inline provisioning
# script on stdout and the configuration calls on stderr.
STUB = """
class Recorder
  def initialize(calls) = @calls = calls
  def method_missing(name, *args, **kw, &blk)
    @calls << [name, args, kw]
    blk&.call(Recorder.new(@calls))
    Recorder.new(@calls)
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(version)
    calls = []
    yield Recorder.new(calls)
    $stdout.print(calls.select { |c| c[0] == :provision }.map { |c| c[2][:inline] }.join)
    $stderr.puts(calls.map { |c| ([c[0]] + c[1]).join(" ") }.join("\\n"))
  end
end
load ARGV[0]
"""


def ruby() -> str:
    exe = shutil.which("ruby")
    if exe is None:
        unavailable("ruby is not installed (apt-get install ruby)")
    return exe


def test_vagrantfile_is_valid_ruby():
    done = subprocess.run([ruby(), "-c", str(VAGRANTFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


def test_vagrantfile_provisions_what_netlab_needs(tmp_path):
    stub = tmp_path / "stub.rb"
    stub.write_text(STUB)
    done = subprocess.run([ruby(), str(stub), str(VAGRANTFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    script, calls = done.stdout, done.stderr
    assert "box= debian/bookworm64" in calls and "provision shell" in calls
    for package in ("linux-image-amd64", "nftables", "dnsmasq-base", "docker.io", "iproute2"):
        assert f" {package}" in script
    for module in ("sch_netem", "ip_gre"):
        assert module in script
    assert "pip install" in script and "/vagrant" in script
    (tmp_path / "provision.sh").write_text(script)
    syntax = subprocess.run(["bash", "-n", str(tmp_path / "provision.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed (optional)")
def test_vagrant_validates_it(tmp_path):
    shutil.copy(VAGRANTFILE, tmp_path / "Vagrantfile")
    env = dict(os.environ, VAGRANT_CWD=str(tmp_path), VAGRANT_HOME=str(tmp_path / ".vagrant.d"),
               VAGRANT_CHECKPOINT_DISABLE="1")
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path, env=env)
    assert done.returncode == 0 and "validated successfully" in done.stdout, done.stdout + done.stderr


def test_ci_installs_ruby_for_these_tests():
    words = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ").split()
    assert "ruby" in words[words.index("install"):]


def test_ci_installs_traceroute_for_tests_test_traceroute():
    words = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ").split()
    assert "traceroute" in words[words.index("install"):]


def test_workflow_deploys_checks_uploads_and_always_tears_down():
    flow = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["lab"]
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "up \"$TOPOLOGY\"" in runs and "check \"$TOPOLOGY\" --junit report.xml" in runs
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "report.xml" in upload["with"]["path"]
    assert steps[-1]["if"] == "always()" and "down \"$LAB\"" in steps[-1]["run"]
    topo = load_file(str(ROOT / job["env"]["TOPOLOGY"]))
    assert topo.name == job["env"]["LAB"]


@pytest.mark.kernel
def test_workflow_steps_run_here(tmp_path):
    """The workflow's own shell steps (draw, deploy, check, capture, tear down), run as
    root here with this netlab, leave a JUnit report and a pcap, and remove the lab."""
    import sys
    import xml.etree.ElementTree as ET

    from netlab.capture.sniff import read_pcap
    from netlab.core.state import LabState
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["lab"]
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = dict(os.environ, **job["env"], NETLAB=f"{sys.executable} -m netlab",
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    drawn = shutil.which("dot") is not None           # the workflow installs Graphviz
    wanted = ["Draw the lab"] * drawn + ["Deploy", "Check", "Capture a ping", "Tear down"]
    steps = {s["name"]: s["run"] for s in job["steps"] if s.get("name") in wanted}
    try:
        for name in wanted:
            done = subprocess.run(["bash", "-e", "-c", steps[name]], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    finally:
        subprocess.run([sys.executable, "-m", "netlab", "down", job["env"]["LAB"]], capture_output=True)
    suite = ET.parse(tmp_path / "report.xml").getroot()
    assert suite.iter("testcase") and not list(suite.iter("failure"))
    assert len(read_pcap(str(tmp_path / "server.pcap"))[1]) == 6
    if drawn:
        assert "```mermaid" in (tmp_path / "summary.md").read_text()
        assert "<svg" in (tmp_path / "lab.svg").read_text()
    assert LabState.load(job["env"]["LAB"]) is None
