"""Labs across hosts on the real kernel: three hosts simulated as namespaces on an
underlay bridge, a 3-member etcd cluster (one member per host) and one agent per host,
each with its own state directory (netlab.multihost.sim).

Every test leaves the cluster as it found it: labs down, killed agents and members back.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from netlab.core import kernel
from netlab.multihost.sim import SimCluster
from tests.conftest import unavailable

pytestmark = pytest.mark.kernel
TOPO = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "multihost.yml")


@pytest.fixture(scope="module")
def sim():
    if os.geteuid() != 0:
        unavailable("needs root")
    for tool in ("etcd", "etcdctl", "nsenter"):
        if shutil.which(tool) is None:
            unavailable(f"needs {tool} (Debian: etcd-server, etcd-client, util-linux)")
    with SimCluster("mht", hosts=3, ttl=3, net=0) as cluster:
        yield cluster


def lab_namespaces(lab: str) -> list[str]:
    return [n for n in kernel.list_netns() if n.startswith(f"{lab}-")]


def links_in(sim: SimCluster, host: str) -> list[str]:
    out = sim.run_in(host, ["ip", "-br", "link"]).stdout
    return sorted(line.split()[0].split("@")[0] for line in out.splitlines())


def assert_no_leftovers(sim: SimCluster, lab: str) -> None:
    assert lab_namespaces(lab) == []
    for host in sim.names:
        assert links_in(sim, host) == ["lo", "ul0"], f"{host} keeps links of the lab"
        assert sim.local_labs(host) == [], f"{host} keeps state of the lab"
        out = sim.run_in(host, ["etcdctl", "--endpoints", sim.endpoints, "get", "--prefix", "--keys-only",
                                f"/netlab/labs/{lab}/"], env={"ETCDCTL_API": "3"}).stdout
        assert out.strip() == ""


def write(tmp_path, text: str, name: str = "lab.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def lab_down(sim):
    """Takes the named labs down through the controller after the test, whatever happened."""
    labs: list[str] = []
    yield labs
    for lab in labs:
        sim.netlab("down", lab, check=False)


def test_up_check_status_down_across_three_hosts(sim, lab_down, tmp_path):
    lab_down.append("mh")
    up = sim.netlab("up", TOPO)
    assert "5 nodes up on 3 hosts" in up.stdout
    check = sim.netlab("check", TOPO, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "10 passed, 0 failed" in check.stdout
    # only a declared service answers on another host: no temporary listener there
    extra = sim.netlab("check", write(tmp_path, open(TOPO).read().replace(
        "checks:\n", "checks:\n  - {tcp: {from: pc1, to: \"web:9001\"}}\n  - {tcp: {from: web, to: \"pc2:22\"}}\n")),
        "--wait", "0.5", check=False)
    assert "FAIL  tcp pc1 -> web:9001" in extra.stdout and "PASS  tcp web -> pc2:22" in extra.stdout
    # each host made only its own nodes, in namespaces named as on one host
    assert sorted(lab_namespaces("mh")) == ["mh--h1", "mh--h2", "mh-gw", "mh-isp", "mh-pc1", "mh-pc2", "mh-web"]
    # the VXLAN devices live in the lab's namespaces: nothing in the hosts' own
    for host in sim.names:
        assert links_in(sim, host) == ["lo", "ul0"]
    vx = subprocess.run(["ip", "-d", "-n", "mh-isp", "link", "show", "eth0"], capture_output=True, text=True).stdout
    assert "vxlan id" in vx and "remote 10.88.0.1" in vx and "mtu 1450" in vx
    status = json.loads(sim.netlab("status", "--json").stdout)
    (entry,) = status["labs"]
    assert entry["healthy"] and {h: p["nodes"] for h, p in entry["hosts"].items()} == {
        "h1": ["gw", "pc1"], "h2": ["pc2", "web"], "h3": ["isp"]}
    again = sim.netlab("up", TOPO)
    assert "0 created, 0 removed" in again.stdout
    down = sim.netlab("down", TOPO)
    assert "lab mh: removed" in down.stdout
    assert_no_leftovers(sim, "mh")


def test_a_node_moved_between_hosts_by_editing_the_file(sim, lab_down, tmp_path):
    lab_down.append("mh")
    text = open(TOPO).read()
    sim.netlab("up", write(tmp_path, text))
    moved = text.replace("h2: [pc2, web]", "h2: [pc2]").replace("h3: [isp]", "h3: [isp, web]")
    assert moved != text
    up = sim.netlab("up", write(tmp_path, moved))
    assert "moving web" in up.stderr
    status = json.loads(sim.netlab("status", "mh", "--json").stdout)
    assert status["labs"][0]["hosts"]["h3"]["nodes"] == ["isp", "web"]
    # web now lives beside isp on h3: its dmz port is stitched back to h1's gw
    check = sim.netlab("check", TOPO, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    sim.netlab("down", "mh")
    assert_no_leftovers(sim, "mh")


BIG = """
name: mhbig
hosts: {h1: [r], h2: [%s]}
networks:
  lan: {subnet: 10.60.0.0/22}
nodes:
  r: {kind: router, networks: [lan]}
%s
checks:
  - {ping: {from: n1, to: r}}
"""


def big_lab(tmp_path, nodes: int = 80) -> str:
    names = [f"n{i}" for i in range(1, nodes + 1)]
    return write(tmp_path, BIG % (", ".join(names), "\n".join(f"  {n}: {{networks: [lan]}}" for n in names)),
                 "big.yml")


def wait_for(predicate, timeout: float = 30.0, pause: float = 0.002):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(pause)


def controller(sim: SimCluster, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["nsenter", f"--net={kernel.netns_path(sim.ns('h1'))}", "--", sys.executable,
                             "-m", "netlab", *args, "--etcd", sim.endpoints],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_agent_killed_mid_up_leaves_nothing_after_down(sim, lab_down, tmp_path):
    lab_down.append("mhbig")
    path = big_lab(tmp_path)
    up = controller(sim, "up", path, "--timeout", "60")
    try:
        wait_for(lambda: kernel.netns_exists("mhbig-n5"))      # h2's agent is building
        sim.agents["h2"].popen.send_signal(signal.SIGKILL)
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 1, out + err
    assert "host h2: its agent is gone" in err
    # the first deploy failed: the living host removed its part already
    assert not kernel.netns_exists("mhbig-r")
    down = sim.netlab("down", "mhbig")
    assert down.returncode == 0
    # h2's leftovers go when its agent comes back (as a DaemonSet restarts it)
    assert lab_namespaces("mhbig")
    sim.start_agent("h2")
    wait_for(lambda: not lab_namespaces("mhbig") and not sim.local_labs("h2"), timeout=30, pause=0.1)
    assert_no_leftovers(sim, "mhbig")


def test_etcd_member_killed_mid_up_the_lab_still_comes_up(sim, lab_down, tmp_path):
    lab_down.append("mhbig")
    path = big_lab(tmp_path, 40)
    up = controller(sim, "up", path, "--timeout", "60")
    try:
        wait_for(lambda: kernel.netns_exists("mhbig-n2"))
        sim.etcd["h1"].popen.send_signal(signal.SIGKILL)     # the first endpoint everyone uses
        out, err = up.communicate(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    try:
        assert up.returncode == 0, out + err
        check = sim.netlab("check", path, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        sim.netlab("down", "mhbig")
        assert_no_leftovers(sim, "mhbig")
    finally:
        sim.etcd["h1"].popen.wait(10)
        sim.start_etcd("h1")
        sim.wait_etcd()


def test_a_dead_host_is_reported_and_down_removes_the_living_parts(sim, lab_down):
    lab_down.append("mh")
    sim.netlab("up", TOPO)
    sim.agents["h3"].popen.send_signal(signal.SIGKILL)
    sim.agents["h3"].popen.wait(10)
    wait_for(lambda: '"h3"' not in sim.netlab("status", "--json").stdout.split('"labs"')[0],
             timeout=sim.ttl + 10, pause=0.2)
    status = sim.netlab("status", "mh")
    assert "DEGRADED" in status.stdout and "h3               DEAD" in status.stdout
    check = sim.netlab("check", TOPO, check=False)
    assert check.returncode == 1 and "host h3 has no agent running" in check.stdout
    down = sim.netlab("down", "mh")
    assert "dead: h3" in down.stdout and "h3 has no agent running" in down.stderr
    assert lab_namespaces("mh") == ["mh-isp"]                   # only the dead host's part
    sim.start_agent("h3")
    wait_for(lambda: not lab_namespaces("mh"), timeout=30, pause=0.1)
    sim.wait_agents(sim.names)
    assert_no_leftovers(sim, "mh")


def test_a_failed_first_up_names_the_host_and_leaves_nothing(sim, lab_down):
    lab_down.append("mh")
    with kernel.created("mh-web"):            # someone else's namespace, on h2's machine
        pass
    try:
        started = time.monotonic()
        up = sim.netlab("up", TOPO, check=False)
        assert up.returncode == 1
        assert "host h2: namespace mh-web already exists and is not part of lab mh" in up.stderr
        assert time.monotonic() - started < 30
        assert lab_namespaces("mh") == ["mh-web"]            # only the one netlab did not make
    finally:
        kernel.delete("mh-web")
    assert_no_leftovers(sim, "mh")


def test_a_part_removed_by_hand_is_made_again_by_its_agent(sim, lab_down):
    lab_down.append("mh")
    sim.netlab("up", TOPO)
    subprocess.run([sys.executable, "-m", "netlab", "down", "mh"], check=True, capture_output=True,
                   env={**os.environ, "NETLAB_STATE_DIR": sim.state_dir("h2")})
    assert not kernel.netns_exists("mh-pc2") and kernel.netns_exists("mh-pc1")
    wait_for(lambda: kernel.netns_exists("mh-web") and sim.local_labs("h2") == ["mh"], timeout=15, pause=0.1)
    check = sim.netlab("check", TOPO, "--wait", "10", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    sim.netlab("down", "mh")
    assert_no_leftovers(sim, "mh")


def test_a_one_host_up_of_a_lab_an_agent_holds_is_refused(sim, lab_down):
    lab_down.append("mh")
    sim.netlab("up", TOPO)
    up = subprocess.run([sys.executable, "-m", "netlab", "up", TOPO], capture_output=True, text=True,
                        env={**os.environ, "NETLAB_STATE_DIR": sim.state_dir("h1")})
    assert up.returncode == 1
    assert "lab mh runs across hosts (this machine holds its part for host h1" in up.stderr
    sim.netlab("down", "mh")
    assert_no_leftovers(sim, "mh")


@pytest.fixture(scope="module")
def sim6(sim):
    """Three more hosts whose underlay (and etcd) speaks only IPv6. Depends on `sim` for
    its checks of tools, and runs after it (one cluster at a time)."""
    sim.close()
    with SimCluster("mh6", hosts=3, etcd_members=1, ttl=3, net=2, family=6) as cluster:
        yield cluster


def test_an_ipv6_underlay_stitches_with_vxlan_over_ipv6(sim6):
    try:
        sim6.netlab("up", TOPO)
        vx = subprocess.run(["ip", "-d", "-n", "mh-isp", "link", "show", "eth0"], capture_output=True, text=True).stdout
        assert "remote fd00:88:2::1 local fd00:88:2::3" in vx and "mtu 1430" in vx    # 70 bytes of VXLAN over IPv6
        check = sim6.netlab("check", TOPO, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        sim6.netlab("down", "mh", check=False)
    assert_no_leftovers(sim6, "mh")
