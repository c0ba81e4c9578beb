"""Capture and the test helpers on a container node: the packet socket enters the
container's named namespace (nothing runs in the image), and Lab.exec goes through
`docker exec`."""
from __future__ import annotations

import pytest

from netlab import testing
from netlab.capture import sniff as capture
from tests.conftest import unavailable
from tests.containers.busybox_image import IMAGE, build_image, find_busybox

pytestmark = [pytest.mark.kernel, pytest.mark.docker]

LAB = f"""
name: plbox
networks:
  lan: {{subnet: 10.78.0.0/24}}
nodes:
  h1: {{networks: [lan]}}
  box:
    image: {IMAGE}
    networks: {{lan: 10.78.0.10}}
"""


@pytest.fixture(scope="module")
def image():
    if find_busybox() is None:
        unavailable("needs Debian's busybox-static to build the test image")
    return build_image(IMAGE)


def test_capture_and_exec_on_a_container_node(image, tmp_path):
    path = tmp_path / "lab.yml"
    path.write_text(LAB)
    with testing.deployed(str(path)) as lab:
        assert lab.exec("box", "echo", "hello").stdout.strip() == "hello"     # docker exec
        with lab.capture("box:eth0", str(tmp_path / "box.pcap"), filter="icmp") as cap:
            lab.exec("h1", "ping", "-c", "3", "-i", "0.2", "10.78.0.10")
        kinds = [capture.decode(f).detail.split(" id")[0] for _, f in cap.packets()]
        assert kinds.count("echo request") == 3 and kinds.count("echo reply") == 3
        with pytest.raises(testing.LabCommandError, match="box: false exited 1"):
            lab.exec("box", "false")
    assert testing.labops.status("plbox") == []
