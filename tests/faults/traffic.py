"""Traffic for fault tests: sockets made inside lab namespaces by this process, so the
tests measure what the kernel does to packets without any tool inside the nodes."""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from netlab.core import kernel

HEADER = struct.Struct("!IQ")           # sequence number, send time (ns, CLOCK_MONOTONIC)


def sock_in(ns: str, kind: int = socket.SOCK_DGRAM, family: int = socket.AF_INET) -> socket.socket:
    with kernel.entered(ns):
        return socket.socket(family, kind)


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def backlog_drops() -> int:
    """Packets dropped anywhere on this host because a CPU's input backlog was full
    (/proc/net/softnet_stat, second column): not a fault's doing."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f)


def udp_receive_errors(ns: str) -> int:
    """Datagrams a namespace's UDP layer dropped on receipt (full buffers, bad checksums)."""
    with kernel.entered(ns), open("/proc/thread-self/net/snmp") as f:
        udp = [line.split() for line in f if line.startswith("Udp:")]
    return int(dict(zip(udp[0], udp[1]))["InErrors"])


@dataclass
class Received:
    sent: int
    payloads: list[bytes] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)       # ns, same clock as the sender
    disturbed: int = 0          # drops the host made during the burst, not the fault (see below)

    @property
    def reached_the_fault(self) -> int:
        """Datagrams that met the fault: sent, less those the host dropped elsewhere
        (a full input backlog on a busy machine, a full receive buffer)."""
        return self.sent - self.disturbed

    @property
    def lost_to_the_fault(self) -> int:
        return self.reached_the_fault - len(self.payloads)

    @property
    def seqs(self) -> list[int]:
        return [HEADER.unpack_from(p)[0] for p in self.payloads]

    @property
    def latencies_ms(self) -> list[float]:
        return [(t - HEADER.unpack_from(p)[1]) / 1e6 for p, t in zip(self.payloads, self.arrivals)]


def udp_burst(src_ns: str, dst_ns: str, dst_ip: str, count: int = 2000, port: int = 40000,
              size: int = 64, gap: float = 0.0, settle: float = 0.5, no_check: bool = False) -> Received:
    """Send `count` numbered datagrams from src to dst; return what arrived (each copy)."""
    rx = sock_in(dst_ns, family=family_of(dst_ip))
    tx = sock_in(src_ns, family=family_of(dst_ip))
    try:
        rx.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)       # SO_RCVBUFFORCE: never drop here
        rx.bind((dst_ip, port))
        rx.settimeout(0.05)
        if no_check:
            tx.setsockopt(socket.SOL_SOCKET, 11, 1)            # SO_NO_CHECK: see corrupted payloads
        got = Received(sent=count)
        done = threading.Event()

        def receive() -> None:
            last = None
            while True:
                try:
                    data = rx.recv(65536)
                except socket.timeout:
                    if done.is_set() and (last is None or time.monotonic() - last > settle):
                        return
                    continue
                last = time.monotonic()
                got.arrivals.append(time.monotonic_ns())
                got.payloads.append(data)

        reader = threading.Thread(target=receive)
        before = backlog_drops(), udp_receive_errors(dst_ns)
        reader.start()
        pad = b"x" * max(0, size - HEADER.size)
        try:
            for seq in range(count):
                tx.sendto(HEADER.pack(seq, time.monotonic_ns()) + pad, (dst_ip, port))
                if gap:
                    time.sleep(gap)
        finally:
            done.set()
            reader.join()
        got.disturbed = backlog_drops() - before[0] + udp_receive_errors(dst_ns) - before[1]
        return got
    finally:
        rx.close()
        tx.close()


def primed(src_ns: str, dst_ns: str, dst_ip: str, tries: int = 10) -> str:
    """Resolve the sender's neighbour for dst_ip and see the path clean before a fault goes
    on, so that a count measures the fault and not a dropped ARP request (and the queue
    the kernel drops behind it). A neighbour left failed by an earlier fault may take a
    try or two to resolve again. Returns dst_ip."""
    for _ in range(tries):
        if len(udp_burst(src_ns, dst_ns, dst_ip, count=3, gap=0.01, settle=0.1).payloads) == 3:
            return dst_ip
    raise AssertionError(f"{src_ns} -> {dst_ip}: datagrams do not all arrive with no fault on")


def reachable(src_ns: str, dst_ns: str, dst_ip: str, count: int = 20, port: int = 40001) -> int:
    """How many of `count` datagrams arrive (a quick yes/no for partitions and link state);
    0 also when the sender has no route at all."""
    try:
        return len(udp_burst(src_ns, dst_ns, dst_ip, count=count, port=port, gap=0.002, settle=0.3).payloads)
    except OSError:
        return 0


def tcp_rate(src_ns: str, dst_ns: str, dst_ip: str, seconds: float = 4.0, port: int = 40002) -> float:
    """Steady-state goodput in bit/s of one TCP stream (received bytes after the first 1 s)."""
    srv = sock_in(dst_ns, socket.SOCK_STREAM)
    cli = sock_in(src_ns, socket.SOCK_STREAM)
    marks: list[tuple[float, int]] = []
    try:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((dst_ip, port))
        srv.listen(1)

        def receive() -> None:
            conn, _ = srv.accept()
            total = 0
            with conn:
                while True:
                    data = conn.recv(1 << 16)
                    if not data:
                        return
                    total += len(data)
                    marks.append((time.monotonic(), total))

        reader = threading.Thread(target=receive)
        before = backlog_drops(), udp_receive_errors(dst_ns)
        reader.start()
        cli.connect((dst_ip, port))
        cli.settimeout(0.2)
        chunk = b"x" * 65536
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            try:
                cli.send(chunk)
            except socket.timeout:
                pass
        stop = time.monotonic()
        window = [m for m in marks if start + 1.0 <= m[0] <= stop]
        cli.close()
        reader.join(timeout=30)
        (t0, b0), (t1, b1) = window[0], window[-1]
        return (b1 - b0) * 8 / (t1 - t0)
    finally:
        cli.close()
        srv.close()
