"""Record packets on any lab interface to a classic pcap file that Wireshark opens.

`netlab capture LAB NODE:IF [-w FILE.pcap] [--count N] [--filter EXPR] [--timeout S]`

An AF_PACKET socket is opened inside the node's namespace by this process (no tool is
needed in the node, containers included) and each frame is written as a pcap record with
its kernel timestamp. A bare name captures on a network's bridge in the lab namespace
(every frame of that segment) or on a node's only interface.

Filters: with tcpdump installed, any tcpdump expression, compiled by `tcpdump -ddd` for
the interface and attached to the socket as classic BPF (the kernel drops the rest).
Without tcpdump, a documented subset is matched in Python (see `SUBSET_HELP`).
"""
from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable

from ..core import kernel

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, PACKET_STATISTICS = 263, 1, 1, 6
SO_RCVBUFFORCE = 33
RCVBUF = 32 << 20
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
LINKTYPE_ETHERNET, LINKTYPE_RAW = 1, 101
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_MAGIC_US = 0xA1B2C3D4
SNAPLEN = 262144
PACKET_OUTGOING = 4

SUBSET_HELP = ("without tcpdump, --filter accepts primitives joined by 'and', each "
               "optionally preceded by 'not': arp, ip, icmp, tcp, udp, host ADDR, src ADDR, "
               "dst ADDR, port N, tcp port N, udp port N")


class CaptureError(Exception):
    """A capture that cannot start: one line for people; code is the exit status
    (2 bad arguments, 1 the lab is not there)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# -- pcap files ----------------------------------------------------------------------------

def pcap_header(linktype: int, snaplen: int = SNAPLEN) -> bytes:
    """The classic pcap global header, nanosecond timestamps, native byte order."""
    return struct.pack("=IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(ts_ns: int, data: bytes, orig_len: int | None = None) -> bytes:
    sec, nsec = divmod(ts_ns, 1_000_000_000)
    return struct.pack("=IIII", sec, nsec, len(data), orig_len or len(data)) + data


def read_pcap(path: str) -> tuple[int, list[tuple[float, bytes]]]:
    """(linktype, [(timestamp, frame)]) of a classic pcap file (either byte order,
    micro- or nanosecond timestamps)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file (too short)")
    for order in ("<", ">"):
        magic = struct.unpack(order + "I", data[:4])[0]
        if magic in (PCAP_MAGIC_NS, PCAP_MAGIC_US):
            break
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
    linktype = struct.unpack(order + "I", data[20:24])[0]
    packets, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(order + "IIII", data[pos:pos + 16])
        packets.append((sec + frac * scale, data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, packets


# -- decoding (summaries and the Python filter subset) -------------------------------------

@dataclass
class Decoded:
    proto: str = "other"                 # arp | icmp | tcp | udp | ip | ip6 | other
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    detail: str = ""


ICMP_TYPES = {0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded"}


def decode(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> Decoded:
    """Enough of Ethernet/ARP/IPv4/ICMP/TCP/UDP for a summary line and the filter subset."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return Decoded()
        ethertype, payload = struct.unpack("!H", frame[12:14])[0], frame[14:]
        if ethertype == 0x8100 and len(frame) >= 18:
            ethertype, payload = struct.unpack("!H", frame[16:18])[0], frame[18:]
    else:
        ethertype, payload = (0x0800 if frame[:1] and frame[0] >> 4 == 4 else 0), frame
    if ethertype == 0x0806 and len(payload) >= 28:
        op = struct.unpack("!H", payload[6:8])[0]
        src, dst = str(ipaddress.IPv4Address(payload[14:18])), str(ipaddress.IPv4Address(payload[24:28]))
        what = f"who-has {dst} tell {src}" if op == 1 else f"{src} is-at {payload[8:14].hex(':')}"
        return Decoded("arp", src, dst, detail=what)
    if ethertype == 0x86DD and len(payload) >= 40:
        src, dst = (str(ipaddress.IPv6Address(payload[a:a + 16])) for a in (8, 24))
        return Decoded("ip6", src, dst, detail=f"IPv6 next header {payload[6]}")
    if ethertype != 0x0800 or len(payload) < 20:
        return Decoded(detail=f"ethertype 0x{ethertype:04x}")
    ihl = (payload[0] & 0x0F) * 4
    proto = payload[9]
    d = Decoded("ip", str(ipaddress.IPv4Address(payload[12:16])), str(ipaddress.IPv4Address(payload[16:20])))
    l4 = payload[ihl:]
    if proto == 1 and len(l4) >= 4:
        d.proto = "icmp"
        d.detail = ICMP_TYPES.get(l4[0], f"type {l4[0]}")
        if l4[0] in (0, 8) and len(l4) >= 8:
            ident, seq = struct.unpack("!HH", l4[4:8])
            d.detail += f" id {ident} seq {seq}"
    elif proto in (6, 17) and len(l4) >= 4:
        d.proto = "tcp" if proto == 6 else "udp"
        d.sport, d.dport = struct.unpack("!HH", l4[:4])
        if proto == 6 and len(l4) >= 14:
            flags = l4[13]
            d.detail = "".join(c for bit, c in zip((1, 2, 4, 8, 16), "FSRPA") if flags & bit)
    else:
        d.detail = f"proto {proto}"
    return d


def summary(frame: bytes, linktype: int, outgoing: bool | None = None) -> str:
    d = decode(frame, linktype)
    arrow = {True: "out", False: "in ", None: ""}[outgoing]
    if d.proto == "arp":
        text = f"ARP {d.detail}"
    elif d.proto in ("tcp", "udp"):
        text = f"{d.src}:{d.sport} > {d.dst}:{d.dport} {d.proto.upper()} {d.detail}".rstrip()
    elif d.proto == "ip6":
        text = f"{d.src} > {d.dst} {d.detail}"
    elif d.proto in ("icmp", "ip"):
        text = f"{d.src} > {d.dst} {d.proto.upper() if d.proto == 'icmp' else 'IP'} {d.detail}".rstrip()
    else:
        text = d.detail or "unknown"
    return f"{arrow} {text}, {len(frame)} bytes".strip()


def _primitive(words: list[str], expr: str) -> tuple[Callable[[Decoded], bool], int]:
    """One primitive of the subset at the front of words: (predicate, words used)."""
    def bad(why: str):
        raise CaptureError(f"--filter {expr!r}: {why}; {SUBSET_HELP}")
    w = words[0]
    if w in ("tcp", "udp") and len(words) >= 3 and words[1] == "port":
        port = _port(words[2], bad)
        return (lambda d, p=w: d.proto == p and port in (d.sport, d.dport)), 3
    if w in ("arp", "icmp", "tcp", "udp"):
        return (lambda d, p=w: d.proto == p), 1
    if w == "ip":
        return (lambda d: d.proto in ("ip", "icmp", "tcp", "udp")), 1
    if w == "port" and len(words) >= 2:
        port = _port(words[1], bad)
        return (lambda d: port in (d.sport, d.dport)), 2
    if w in ("host", "src", "dst") and len(words) >= 2:
        try:
            addr = str(ipaddress.IPv4Address(words[1]))
        except ValueError:
            bad(f"{words[1]!r} is not an IPv4 address")
        test = {"host": lambda d: addr in (d.src, d.dst), "src": lambda d: d.src == addr,
                "dst": lambda d: d.dst == addr}[w]
        return test, 2
    bad(f"cannot read {' '.join(words[:3])!r}")
    raise AssertionError


def _port(text: str, bad) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        bad(f"{text!r} is not a port")
    return int(text)


def subset_filter(expr: str) -> Callable[[Decoded], bool]:
    """Compile the documented subset to a predicate on decoded frames."""
    words = expr.replace("&&", " and ").replace("!", " not ").split()
    tests: list[tuple[bool, Callable[[Decoded], bool]]] = []
    while words:
        negate = False
        while words and words[0] == "not":
            negate, words = not negate, words[1:]
        if not words:
            raise CaptureError(f"--filter {expr!r}: 'not' needs a primitive; {SUBSET_HELP}")
        test, used = _primitive(words, expr)
        tests.append((negate, test))
        words = words[used:]
        if words:
            if words[0] != "and":
                raise CaptureError(f"--filter {expr!r}: only 'and' joins primitives here; {SUBSET_HELP}")
            words = words[1:]
            if not words:
                raise CaptureError(f"--filter {expr!r}: nothing after 'and'")
    return lambda d: all(test(d) != negate for negate, test in tests)


# -- BPF through tcpdump --------------------------------------------------------------------

def tcpdump_bpf(ns: str, ifname: str, expr: str) -> list[tuple[int, int, int, int]]:
    """Classic BPF for expr, compiled by tcpdump for this interface (run in its ns)."""
    done = subprocess.run(["ip", "netns", "exec", ns, "tcpdump", "-ddd", "-i", ifname, expr],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        lines = [x for x in done.stderr.splitlines() if x.startswith("tcpdump:")]
        why = (lines[0] if lines else done.stderr.strip() or "failed").removeprefix("tcpdump: ")
        raise CaptureError(f"--filter {expr!r}: {why}")
    numbers = done.stdout.split("\n")
    count = int(numbers[0])
    return [tuple(int(x) for x in line.split()) for line in numbers[1:1 + count]]


def attach_bpf(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    insns = b"".join(struct.pack("=HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(insns)
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buf))   # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# -- the capture ----------------------------------------------------------------------------

def _linktype(sock: socket.socket, ifname: str) -> int:
    import fcntl
    req = struct.pack("16s16s", ifname.encode(), b"")
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, req)
    except OSError:
        return LINKTYPE_ETHERNET
    family = struct.unpack("H", res[16:18])[0]
    return LINKTYPE_ETHERNET if family in (ARPHRD_ETHER, ARPHRD_LOOPBACK) else LINKTYPE_RAW


def _promiscuous(sock: socket.socket, ifname: str) -> None:
    """Promiscuous while the socket lives (the kernel drops it with the socket), as tcpdump
    does: frames for other hosts, and everything a bridge forwards between its ports."""
    import fcntl
    res = fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, struct.pack("16s16s", ifname.encode(), b""))
    index = struct.unpack("i", res[16:20])[0]
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b""))


@dataclass
class Capture:
    """A packet socket on one interface of a lab namespace. open() on the thread that
    may enter namespaces; read from any thread."""
    ns: str
    ifname: str
    expr: str | None = None
    use_tcpdump: bool | None = None      # None: when installed
    linktype: int = LINKTYPE_ETHERNET
    sock: socket.socket | None = None
    _match: Callable[[Decoded], bool] | None = None

    def open(self) -> Capture:
        if not kernel.netns_exists(self.ns):
            raise CaptureError(f"namespace {self.ns} does not exist: is the lab up?", 1)
        with kernel.entered(self.ns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # receives nothing yet
        try:
            try:
                sock.bind((self.ifname, 0))          # the interface exists? (still receives nothing)
            except OSError as e:
                if e.errno == errno.ENODEV:
                    raise CaptureError(f"{self.ns}: no interface {self.ifname!r}") from None
                raise CaptureError(f"{self.ns}:{self.ifname}: {e.strerror or e}") from None
            tcpdump = self.use_tcpdump if self.use_tcpdump is not None else bool(shutil.which("tcpdump"))
            if self.expr and tcpdump:
                attach_bpf(sock, tcpdump_bpf(self.ns, self.ifname, self.expr))
            elif self.expr:
                self._match = subset_filter(self.expr)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)   # root: above rmem_max
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((self.ifname, ETH_P_ALL))      # from here on, filtered frames arrive
            _promiscuous(sock, self.ifname)           # a bridge then shows what it forwards
        except BaseException:
            sock.close()
            raise
        self.linktype = _linktype(sock, self.ifname)
        self.sock = sock
        return self

    def next(self, timeout: float) -> tuple[int, bytes, bool] | None:
        """(timestamp ns, frame, outgoing) of the next matching frame, or None."""
        deadline = time.monotonic() + timeout
        anc_size = socket.CMSG_SPACE(16)
        while True:
            try:
                data, anc, _, addr = self.sock.recvmsg(SNAPLEN, anc_size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
                continue
            ts = time.time_ns()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("=qq", value[:16])
                    ts = sec * 1_000_000_000 + nsec
            if self._match is None or self._match(decode(data, self.linktype)):
                return ts, data, addr[2] == PACKET_OUTGOING

    def drops(self) -> int:
        """Frames the kernel dropped because this reader fell behind (since the last call)."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except (OSError, AttributeError):
            return 0
        return struct.unpack("II", raw)[1]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Capture:
        return self.open() if self.sock is None else self

    def __exit__(self, *exc) -> None:
        self.close()


def run(cap: Capture, out: BinaryIO | None, count: int | None, timeout: float | None,
        on_packet: Callable[[int, bytes, bool], None] | None = None,
        stop: threading.Event | None = None) -> int:
    """Capture until count frames, timeout seconds, stop is set or Ctrl-C; returns the
    number of frames. Writes a pcap to out, flushed whenever the socket is drained (so a
    live reader such as Wireshark sees frames within a fraction of a second)."""
    if out is not None:
        out.write(pcap_header(cap.linktype))
        out.flush()
    seen, dirty = 0, False
    end = time.monotonic() + timeout if timeout else None
    try:
        while count is None or seen < count:
            if stop is not None and stop.is_set():
                got = cap.next(0)             # stopped: take what is already queued
                if got is None:
                    break
                seen += 1
                if out is not None:
                    out.write(pcap_record(got[0], got[1]))
                if on_packet is not None:
                    on_packet(*got)
                continue
            left = 0.2 if end is None else min(0.2, end - time.monotonic())
            if left <= 0:
                break
            got = cap.next(0) if dirty else None
            if got is None:
                if dirty:
                    out.flush()
                    dirty = False
                got = cap.next(left)
                if got is None:
                    continue
            seen += 1
            if out is not None:
                out.write(pcap_record(got[0], got[1]))
                dirty = True
            if on_packet is not None:
                on_packet(*got)
    except KeyboardInterrupt:
        pass
    finally:
        if out is not None:
            out.flush()
    return seen


class Background:
    """Capture in a thread while a test makes traffic: `with Background(cap, path): ...`;
    the pcap is complete when the block ends."""

    def __init__(self, cap: Capture, path: str, count: int | None = None):
        self.cap, self.path, self.count = cap, path, count
        self.stop = threading.Event()
        self.seen = 0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Background:
        if self.cap.sock is None:
            self.cap.open()
        self._file = open(self.path, "wb")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        self.seen = run(self.cap, self._file, self.count, None, stop=self.stop)

    def __exit__(self, *exc) -> None:
        time.sleep(0.05)            # frames still in flight on the veth
        self.stop.set()
        self._thread.join(5)
        self._file.close()
        self.cap.close()


def resolve(lab: str, where: str) -> tuple[str, str]:
    """(namespace, interface) for NODE:IF, a network name (its bridge) or a node with one
    interface, from the lab's state. CaptureError naming what exists otherwise."""
    from ..core.state import LabState
    st = LabState.load(lab)
    if st is None:
        raise CaptureError(f"lab {lab} is not deployed", 1)
    meta = st.plan.meta
    nodes, networks = meta.get("nodes", {}), meta.get("networks", {})
    if ":" in where:
        node, ifname = where.split(":", 1)
        if node not in nodes:
            raise CaptureError(f"{where}: lab {lab} has no node {node!r} (nodes: {', '.join(nodes)})")
        if not ifname:
            raise CaptureError(f"{where}: name an interface after the colon")
        return nodes[node]["ns"], ifname
    if where in networks:
        return f"{lab}--lab", where
    if where in nodes:
        ifaces = nodes[where].get("interfaces", [])
        if len(ifaces) == 1:
            return nodes[where]["ns"], ifaces[0]["ifname"]
        names = ", ".join(f"{where}:{i['ifname']}" for i in ifaces) or "none"
        raise CaptureError(f"{where}: node has {len(ifaces)} interfaces; name one ({names})")
    raise CaptureError(f"{where}: not a node, NODE:IF or network of lab {lab}")


def own_pcap(path: str) -> None:
    """A pcap written as root under sudo belongs to the user who ran sudo."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if uid and gid and os.geteuid() == 0:
        try:
            os.chown(path, int(uid), int(gid))
        except OSError:
            pass
