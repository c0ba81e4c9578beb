"""Container nodes on a real Docker engine and kernel: wiring, exec, restart, cleanup.

The image is built locally from Debian's busybox-static with `docker import` (no registry).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from netlab.containers.runtime import LABEL_LAB, LABEL_NODE, RUNTIME
from netlab.core import kernel
from netlab.core import lab as labops
from netlab.core.compiler import compile_topology
from netlab.core.errors import ApplyError
from netlab.core.loader import load_text
from netlab.core.state import LabState, lab_dir
from tests.conftest import nsexec, unavailable
from tests.containers.busybox_image import IMAGE, build_image, find_busybox

pytestmark = [pytest.mark.kernel, pytest.mark.docker]


MIXED = f"""
name: ctmix
networks:
  lan: {{subnet: 10.81.1.0/24}}
  dmz: {{subnet: 10.81.2.0/24}}
nodes:
  pc1: {{networks: [lan]}}
  gw:
    kind: router
    image: {IMAGE}
    networks: [lan, dmz]
  web:
    image: {IMAGE}
    env: {{ROLE: web}}
    networks: {{dmz: 10.81.2.80}}
  pc2: {{networks: {{dmz: 10.81.2.9}}}}
"""


def _docker_api():
    import docker
    return docker.APIClient(**docker.utils.kwargs_from_env())


@pytest.fixture(scope="session")
def image():
    """netlab/busybox:test: busybox-static and its applets, `sleep infinity` as CMD."""
    if find_busybox() is None:
        unavailable("needs Debian's busybox-static to build the test image")
    return build_image(IMAGE)


def containers(lab: str) -> list[dict]:
    return _docker_api().containers(all=True, filters={"label": f"{LABEL_LAB}={lab}"})


def steps_in(topo, node: str) -> int:
    """Steps that live in a node's namespace (core ones, plus any a feature adds there)."""
    plan, _ = compile_topology(topo)
    return sum(1 for s in plan.steps if topo.netns(node) in s.key)


def ping(ns: str, address: str) -> bool:
    return nsexec(ns, "ping", "-c", "1", "-W", "2", address).returncode == 0


def docker_exec(container: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True, timeout=30)


def netlab_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from netlab.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_mixed_lab_reaches_both_ways(image, deploy):
    topo = deploy(MIXED)
    names = {c["Labels"][LABEL_NODE]: c for c in containers("ctmix")}
    assert set(names) == {"gw", "web"}
    assert all(c["Names"] == [f"/ctmix-{n}"] for n, c in names.items())
    assert all(c["HostConfig"]["NetworkMode"] == "none" for c in names.values())
    # ip netns exec works on containers exactly as on namespace nodes
    assert ping("ctmix-pc1", "10.81.2.80")          # host -> router container -> web container
    assert ping("ctmix-web", "10.81.1.1")           # and back, from the container's namespace
    assert ping("ctmix-pc2", "10.81.1.1")
    inside = docker_exec("ctmix-web", "ping", "-c", "1", "-W", "2", "10.81.1.1")
    assert inside.returncode == 0, inside.stderr    # from inside the container itself
    assert docker_exec("ctmix-gw", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert docker_exec("ctmix-web", "sh", "-c", "echo $ROLE").stdout.strip() == "web"
    # the container has no Docker network: only lo and the lab's interface
    links = docker_exec("ctmix-web", "ls", "/sys/class/net").stdout.split()
    assert sorted(links) == ["eth0", "lo"]
    # its namespace is the named one
    pid = _docker_api().inspect_container("ctmix-web")["State"]["Pid"]
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == kernel.netns_inode("ctmix-web")
    ids = {c["Id"] for c in containers("ctmix")}
    inodes = {n: kernel.netns_inode(topo.netns(n)) for n in topo.nodes}
    labops.up(topo)                                  # re-running up leaves the nodes alone
    assert {c["Id"] for c in containers("ctmix")} == ids
    assert {n: kernel.netns_inode(topo.netns(n)) for n in topo.nodes} == inodes
    status = labops.status("ctmix")[0]
    assert status["healthy"]
    web = next(n for n in status["nodes"] if n["name"] == "web")
    assert web["container"]["state"] == "running"


def test_netlab_exec_uses_docker_exec(image, deploy):
    deploy(MIXED)
    done = netlab_cli("exec", "ctmix", "web", "--", "cat", "/etc/hostname")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "web"
    assert netlab_cli("exec", "ctmix", "web", "--", "sh", "-c", "exit 3").returncode == 3


def test_exec_commands_run_after_wiring(image, deploy):
    deploy(f"""
name: ctexec
networks: {{lan: {{subnet: 10.82.0.0/24}}}}
nodes:
  a:
    image: {image}
    networks: [lan]
    cap_add: [NET_ADMIN]
    exec: ["sh -c 'ip -4 addr show eth0 > /tmp/wired'", "touch /tmp/second",
           "ip route add 10.82.7.0/24 via 10.82.0.2"]
  b:
    networks: [lan]
    exec: ["ip addr add 10.82.9.9/32 dev lo"]
""")
    assert "10.82.0.1/24" in docker_exec("ctexec-a", "cat", "/tmp/wired").stdout
    assert docker_exec("ctexec-a", "ls", "/tmp/second").returncode == 0
    assert "10.82.7.0/24 via 10.82.0.2" in nsexec("ctexec-a", "ip", "route").stdout   # cap_add
    assert "10.82.9.9" in nsexec("ctexec-b", "ip", "-4", "addr", "show", "lo").stdout


def test_failing_exec_fails_up_and_leaves_nothing(image):
    topo = load_text(f"""
name: ctexecf
networks: {{lan: {{subnet: 10.83.0.0/24}}}}
nodes:
  a: {{image: {image}, networks: [lan], exec: ["sh -c 'echo broken >&2; exit 4'"]}}
""")
    try:
        with pytest.raises(ApplyError, match=r"nodes.a.exec\[0\]: .* exited 4: broken"):
            labops.up(topo)
        assert containers("ctexecf") == []
        assert not kernel.netns_exists("ctexecf-a")
        assert LabState.load("ctexecf") is None
    finally:
        labops.down("ctexecf")


def test_restart_then_up_rewires_only_that_node(image, deploy):
    topo = deploy(MIXED)
    before = {n: kernel.netns_inode(topo.netns(n)) for n in topo.nodes}
    web_id = _docker_api().inspect_container("ctmix-web")["Id"]
    subprocess.run(["docker", "restart", "-t", "0", "ctmix-web"], check=True, capture_output=True)
    assert not labops.status("ctmix")[0]["healthy"]
    result = labops.up(topo)
    # the web node: its namespace and what lives in it (veth, address, route...); nothing else
    assert (result.created, result.deleted) == (steps_in(topo, "web"),) * 2
    after = {n: kernel.netns_inode(topo.netns(n)) for n in topo.nodes}
    assert {n for n in topo.nodes if before[n] != after[n]} == {"web"}
    assert _docker_api().inspect_container("ctmix-web")["Id"] == web_id   # the same container
    assert labops.status("ctmix")[0]["healthy"]
    assert ping("ctmix-pc1", "10.81.2.80")
    assert ping("ctmix-web", "10.81.1.1")
    # a restarted router too
    subprocess.run(["docker", "restart", "-t", "0", "ctmix-gw"], check=True, capture_output=True)
    assert labops.up(topo).created == steps_in(topo, "gw")
    assert ping("ctmix-pc1", "10.81.2.80")
    assert labops.status("ctmix")[0]["healthy"]


def test_removed_container_is_recreated(image, deploy):
    topo = deploy(MIXED)
    subprocess.run(["docker", "rm", "-f", "ctmix-web"], check=True, capture_output=True)
    labops.up(topo)
    assert ping("ctmix-pc1", "10.81.2.80")


def test_down_removes_containers_when_state_is_lost(image, deploy):
    deploy(MIXED.replace("name: ctmix", "name: ctlost"))
    assert len(containers("ctlost")) == 2
    shutil.rmtree(lab_dir("ctlost"))
    assert "ctlost" in RUNTIME.all_labs()             # destroy --all finds it by label
    assert labops.down("ctlost") is True
    assert containers("ctlost") == []
    assert not [n for n in kernel.list_netns() if n.startswith("ctlost-")]


def test_missing_image_is_one_line_and_leaves_nothing(image, tmp_path):
    path = tmp_path / "ctimg.yml"
    path.write_text(MIXED.replace("name: ctmix", "name: ctimg")
                    .replace(f"image: {IMAGE}\n    env", "image: netlab/no-such-image:none\n    env"))
    done = netlab_cli("up", str(path))
    try:
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "netlab/no-such-image:none" in lines[0] and "docker pull" in lines[0]
        assert containers("ctimg") == []
        assert not [n for n in kernel.list_netns() if n.startswith("ctimg-")]
        assert LabState.load("ctimg") is None
    finally:
        labops.down("ctimg")


def test_foreign_container_name_is_refused(image):
    api = _docker_api()
    foreign = api.create_container(image, name="ctfor-web", labels={"test": "foreign"})
    topo = load_text(f"""
name: ctfor
nodes:
  web: {{image: {image}}}
""")
    try:
        with pytest.raises(ApplyError, match="a container named ctfor-web already exists and is not part of lab ctfor"):
            labops.up(topo)
        assert api.inspect_container("ctfor-web")["Id"] == foreign["Id"]   # untouched
    finally:
        labops.down("ctfor")
        api.remove_container(foreign["Id"], force=True)


def http_get(ns: str, address: str, port: int = 80) -> str:
    """A plain HTTP GET from inside a lab namespace (the socket stays in it)."""
    import socket
    with kernel.entered(ns):
        sock = socket.create_connection((address, port), timeout=5)
    with sock:
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def test_web_example_with_a_local_image(image, deploy, tmp_path):
    """topologies/web.yml with busybox httpd standing in for nginx (no registry here)."""
    example = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "web.yml")
    with open(example) as f:
        text = f.read()
    httpd = ('image: ' + image + '\n    cmd: ["sh", "-c", "mkdir -p /usr/share/nginx/html'
             ' && exec httpd -f -p 80 -h /usr/share/nginx/html"]')
    text = text.replace("name: web\n", "name: ctweb\n").replace("image: nginx:alpine", httpd)
    path = tmp_path / "ctweb.yml"
    path.write_text(text)
    deploy(str(path))
    reply = http_get("ctweb-pc1", "10.30.2.80")
    assert reply.split(None, 2)[1] == "200" and "hello from netlab" in reply
    done = netlab_cli("check", "ctweb")
    assert done.returncode == 0, done.stdout + done.stderr


def test_lab_own_orphan_container_is_replaced(image, deploy):
    """A container of this lab left behind (state and namespaces lost) does not block up."""
    api = _docker_api()
    orphan = api.create_container(image, name="ctorph-web", labels={LABEL_LAB: "ctorph", LABEL_NODE: "web"})
    try:
        deploy(f"""
name: ctorph
networks: {{lan: {{subnet: 10.87.0.0/24}}}}
nodes:
  pc: {{networks: [lan]}}
  web: {{image: {image}, networks: [lan]}}
""")
        assert [c["Id"] for c in containers("ctorph")] != [orphan["Id"]]
        assert ping("ctorph-pc", "10.87.0.2")
    finally:
        subprocess.run(["docker", "rm", "-f", orphan["Id"]], capture_output=True)


def test_container_that_exits_at_once_is_one_line(image):
    topo = load_text(f"""
name: ctexit
networks: {{lan: {{subnet: 10.88.0.0/24}}}}
nodes:
  web: {{image: {image}, cmd: ["false"], networks: [lan]}}
""")
    try:
        with pytest.raises(ApplyError, match=r"node web: container ctexit-web (exited right after it started|stopped)"):
            labops.up(topo)
        assert containers("ctexit") == []
        assert not [n for n in kernel.list_netns() if n.startswith("ctexit-")]
    finally:
        labops.down("ctexit")
