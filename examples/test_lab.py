"""Gate a project's CI on a netlab lab, with the pytest plugin that ships with netlab.

    sudo python3 -m pytest examples/ -q

`pytest.mark.netlab(FILE)` names the topology; the `netlab_lab` fixture deploys it once
for this module and removes it afterwards, also when a test fails or the run is
interrupted (Ctrl-C, or SIGTERM from a cancelled CI job).
"""
import pytest

from netlab.testing import has_command

pytestmark = pytest.mark.netlab("lab.yml")          # found next to this file


def test_declared_checks_pass(netlab_lab):
    """Every check of the file's `checks:` section (a failure prints the table)."""
    netlab_lab.assert_checks()


def test_client_pings_server(netlab_lab):
    """Run any command inside a node; a non-zero exit fails with its output."""
    out = netlab_lab.exec("client", "ping", "-c", "2", "-i", "0.2", "-W", "2", netlab_lab.address("server"))
    assert "2 received" in out.stdout


def test_ad_hoc_checks(netlab_lab):
    """Checks written as in the file, from the test."""
    report = netlab_lab.check({"udp": {"from": "client", "to": "server:53", "expect": "blocked"}},
                              {"ping": {"from": "server", "to": "gw"}})
    assert report.ok, str(report)


def test_capture_counts_icmp(netlab_lab, tmp_path):
    """A pcap of the server's interface while the client pings it."""
    with netlab_lab.capture("server:eth0", str(tmp_path / "server.pcap"), filter="icmp") as cap:
        netlab_lab.exec("client", "ping", "-c", "3", "-i", "0.2", netlab_lab.address("server"))
    assert len(cap.packets()) == 6                    # 3 requests, 3 replies


def test_partition_blocks_and_heals(netlab_lab):
    """A fault scenario of the file, active inside the block only."""
    if not has_command("fault"):
        pytest.skip("this netlab has no `netlab fault`")
    with netlab_lab.fault("split"):
        netlab_lab.assert_checks({"ping": {"from": "client", "to": "server", "expect": "blocked"}})
    netlab_lab.assert_checks({"ping": {"from": "client", "to": "server"}})
