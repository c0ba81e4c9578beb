"""Traffic for fault tests: sockets made inside lab namespaces by this process, so the
tests measure what the kernel does to packets without any tool inside the nodes."""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from netlab import kernel

HEADER = struct.Struct("!IQ")           # sequence number, send time (ns, CLOCK_MONOTONIC)


def sock_in(ns: str, kind: int = socket.SOCK_DGRAM, family: int = socket.AF_INET) -> socket.socket:
    with kernel.entered(ns):
        return socket.socket(family, kind)


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


@dataclass
class Received:
    sent: int
    payloads: list[bytes] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)       # ns, same clock as the sender

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
        return got
    finally:
        rx.close()
        tx.close()


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
