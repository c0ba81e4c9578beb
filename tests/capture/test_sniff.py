"""`netlab capture`: the pcap format, frame decoding and the filter subset (pure), and
captures of real pings between two lab hosts (kernel)."""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import time

import pytest

from netlab.capture import sniff as capture
from netlab.capture.sniff import CaptureError, decode, read_pcap, subset_filter
from tests.conftest import nsexec

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return header + payload


def ether(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return MAC_B + MAC_A + struct.pack("!H", ethertype) + payload


def icmp_echo(src: str, dst: str, seq: int = 1) -> bytes:
    return ether(ipv4(src, dst, 1, struct.pack("!BBHHH", 8, 0, 0, 77, seq) + b"x" * 8))


def tcp_syn(src: str, dst: str, sport: int, dport: int) -> bytes:
    return ether(ipv4(src, dst, 6, struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 1024, 0, 0)))


def arp_request(src: str, dst: str) -> bytes:
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + bytes(map(int, src.split("."))) \
        + b"\0" * 6 + bytes(map(int, dst.split(".")))
    return ether(body, 0x0806)


# -- pure ----------------------------------------------------------------------------------

def test_pcap_round_trip(tmp_path):
    frames = [icmp_echo("10.0.0.1", "10.0.0.2", i) for i in range(3)]
    path = tmp_path / "x.pcap"
    with open(path, "wb") as f:
        f.write(capture.pcap_header(capture.LINKTYPE_ETHERNET))
        for i, frame in enumerate(frames):
            f.write(capture.pcap_record(1_700_000_000_000_000_000 + i * 1000, frame))
    linktype, packets = read_pcap(str(path))
    assert linktype == 1 and [p[1] for p in packets] == frames
    assert packets[1][0] == pytest.approx(1_700_000_000.000001)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_our_pcap(tmp_path):
    """tcpdump (libpcap, as Wireshark) opens the file and decodes the frames."""
    path = tmp_path / "x.pcap"
    with open(path, "wb") as f:
        f.write(capture.pcap_header(capture.LINKTYPE_ETHERNET))
        f.write(capture.pcap_record(time.time_ns(), icmp_echo("10.0.0.1", "10.0.0.2")))
    done = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "10.0.0.1 > 10.0.0.2: ICMP echo request" in done.stdout


def test_decode_and_summary():
    d = decode(icmp_echo("10.0.0.1", "10.0.0.2", 5))
    assert (d.proto, d.src, d.dst, d.detail) == ("icmp", "10.0.0.1", "10.0.0.2", "echo request id 77 seq 5")
    d = decode(tcp_syn("10.0.0.1", "10.0.0.2", 40000, 80))
    assert (d.proto, d.sport, d.dport, d.detail) == ("tcp", 40000, 80, "S")
    assert decode(arp_request("10.0.0.1", "10.0.0.2")).detail == "who-has 10.0.0.2 tell 10.0.0.1"
    assert capture.summary(tcp_syn("10.0.0.1", "10.0.0.2", 1, 80), 1, True) == \
        "out 10.0.0.1:1 > 10.0.0.2:80 TCP S, 54 bytes"


@pytest.mark.parametrize("expr,frame,match", [
    ("icmp", icmp_echo("10.0.0.1", "10.0.0.2"), True),
    ("icmp", tcp_syn("10.0.0.1", "10.0.0.2", 1, 80), False),
    ("tcp port 80", tcp_syn("10.0.0.1", "10.0.0.2", 1, 80), True),
    ("udp port 80", tcp_syn("10.0.0.1", "10.0.0.2", 1, 80), False),
    ("port 1 and src 10.0.0.1", tcp_syn("10.0.0.1", "10.0.0.2", 1, 80), True),
    ("icmp and host 10.0.0.9", icmp_echo("10.0.0.1", "10.0.0.2"), False),
    ("not arp", icmp_echo("10.0.0.1", "10.0.0.2"), True),
    ("not arp", arp_request("10.0.0.1", "10.0.0.2"), False),
    ("ip and dst 10.0.0.2", icmp_echo("10.0.0.1", "10.0.0.2"), True),
])
def test_filter_subset(expr, frame, match):
    assert subset_filter(expr)(decode(frame)) is match


@pytest.mark.parametrize("expr,why", [
    ("icmp or arp", "only 'and' joins"), ("host 10.0.0", "not an IPv4 address"),
    ("port 99999", "not a port"), ("icmp and", "nothing after 'and'"), ("vlan 5", "cannot read"),
])
def test_filter_subset_errors_name_the_problem(expr, why):
    with pytest.raises(CaptureError, match=why):
        subset_filter(expr)


def test_capture_unknown_lab_exits_1():
    done = subprocess.run([sys.executable, "-m", "netlab", "capture", "plnolab", "h1:eth0"],
                          capture_output=True, text=True, timeout=60)
    if done.returncode == 1 and "needs root" in done.stderr:
        return
    assert done.returncode == 1 and "plnolab is not deployed" in done.stderr


# -- kernel --------------------------------------------------------------------------------

LAB = """
name: plcap
networks:
  lan: {subnet: 10.77.0.0/24}
nodes:
  h1: {networks: [lan]}
  h2: {networks: [lan]}
  h3: {networks: [lan]}
"""


def _icmp(path) -> tuple[int, int]:
    kinds = [decode(f).detail.split(" id")[0] for _, f in read_pcap(str(path))[1] if decode(f).proto == "icmp"]
    return kinds.count("echo request"), kinds.count("echo reply")


@pytest.mark.kernel
@pytest.mark.parametrize("use_tcpdump", [True, False], ids=["bpf", "subset"])
def test_capture_pings_between_two_hosts(deploy, tmp_path, use_tcpdump):
    if use_tcpdump and shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    deploy(LAB)
    path = tmp_path / "h2.pcap"
    cap = capture.Capture("plcap-h2", "eth0", "icmp and host 10.77.0.1", use_tcpdump=use_tcpdump)
    with capture.Background(cap, str(path)):
        nsexec("plcap-h3", "ping", "-c", "2", "-i", "0.2", "10.77.0.2", check=True)   # filtered out
        nsexec("plcap-h1", "ping", "-c", "5", "-i", "0.2", "10.77.0.2", check=True)
    assert _icmp(path) == (5, 5)
    assert len(read_pcap(str(path))[1]) == 10            # nothing else passed the filter


@pytest.mark.kernel
def test_capture_on_the_network_bridge_sees_the_segment(deploy, tmp_path):
    deploy(LAB)
    path = tmp_path / "lan.pcap"
    ns, ifname = capture.resolve("plcap", "lan")
    assert (ns, ifname) == ("plcap--lab", "lan")
    with capture.Background(capture.Capture(ns, ifname, "icmp"), str(path)):
        nsexec("plcap-h1", "ping", "-c", "3", "-i", "0.2", "10.77.0.3", check=True)
    assert _icmp(path) == (3, 3)


@pytest.mark.kernel
def test_capture_cli_writes_pcap_and_stops_at_count(deploy, tmp_path):
    deploy(LAB)
    path = tmp_path / "cli.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "netlab", "capture", "plcap", "h1:eth0", "-w", str(path),
                             "--count", "4", "--filter", "icmp", "--timeout", "60"],
                            stderr=subprocess.PIPE, text=True)
    try:
        started = [proc.stderr.readline() for _ in range(1)]
        while "capturing on" not in started[-1] and started[-1]:   # warnings may come first
            started.append(proc.stderr.readline())
        assert "capturing on plcap-h1:eth0" in started[-1], started
        nsexec("plcap-h1", "ping", "-c", "2", "-i", "0.2", "10.77.0.2", check=True)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _icmp(path) == (2, 2)
    assert "4 packet(s) captured" in proc.stderr.read()


@pytest.mark.kernel
def test_capture_cli_errors(deploy):
    deploy(LAB)
    run = lambda *a: subprocess.run([sys.executable, "-m", "netlab", "capture", "plcap", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    done = run("h1:eth7")
    assert done.returncode == 2 and "no interface 'eth7'" in done.stderr
    done = run("h9:eth0")
    assert done.returncode == 2 and "no node 'h9'" in done.stderr
    done = run("h1:eth0", "--filter", "icmp((")
    assert done.returncode == 2 and "--filter" in done.stderr and "Traceback" not in done.stderr
