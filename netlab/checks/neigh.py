"""The kernel's neighbour tables (ARP and NDP) as the all-pairs matrix sees them: how much
room they have, and forgetting lab entries in bulk.

The tables are shared by every namespace on the host and capped by the host's
`net.ipv4.neigh.default.gc_thresh3` / `net.ipv6.neigh.default.gc_thresh3` (1024 by
default); a probe that needs one more entry than that is dropped ("neighbour table
overflow"). The matrix therefore works in rounds that fit in the room left, and forgets
the entries of a round before the next one.

Forgetting speaks rtnetlink directly: one socket per namespace, every RTM_DELNEIGH of a
round packed into a few sendmsg calls, no acknowledgements asked (the kernel reports only
errors). Building the same messages through pyroute2 costs about 30 us each, and a
100-node round trip forgets ~10,000 entries (bench/checks.py).
"""
from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from ..core import kernel

RTM_DELNEIGH, RTM_GETNEIGH = 29, 30
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NDA_DST = 1
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
CHUNK = 64 << 10                     # bytes per sendmsg at most (and half the socket's sndbuf)
MIN_ROOM = 16
STAT = {4: "/proc/net/stat/arp_cache", 6: "/proc/net/stat/ndisc_cache"}
CAP = {4: "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
       6: "/proc/sys/net/ipv6/neigh/default/gc_thresh3"}
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


class TableUse(NamedTuple):
    """One neighbour table, host-wide: its cap, the entries in it now, overflows so far."""
    cap: int
    entries: int
    overflows: int

    def room(self) -> int:
        """Entries the matrix may add: the cap less what is there and a reserve, so the
        host's own neighbours (its uplink, other labs) never find the table full (a few
        at least, so a crowded host makes rounds small, not impossible)."""
        reserve = max(64, self.cap // 8)
        return max(MIN_ROOM, self.cap - self.entries - reserve)

    def crowded(self) -> bool:
        return self.cap - self.entries - max(64, self.cap // 8) < MIN_ROOM * 4


def table_use(ip: int) -> TableUse:
    """Read /proc/net/stat/{arp,ndisc}_cache: hex columns, a line per CPU; `entries` is
    the table's, `table_fulls` counts per CPU."""
    try:
        with open(CAP[ip]) as f:
            cap = int(f.read())
        with open(STAT[ip]) as f:
            head, *rows = f.read().split("\n")
    except (OSError, ValueError):
        return TableUse(1 << 30, 0, 0)
    names = head.split()
    values = [[int(v, 16) for v in row.split()] for row in rows if row.strip()]
    entries = values[0][names.index("entries")] if values else 0
    fulls = sum(v[names.index("table_fulls")] for v in values) if "table_fulls" in names else 0
    return TableUse(cap, entries, fulls)


class Entry(NamedTuple):
    """A neighbour entry: in namespace `ns`, on interface `ifname`, for `address` (a tuple:
    the matrix makes ~20,000 of them for 100 nodes, and hashes each many times)."""
    ns: str
    ifname: str
    address: str
    ip: int


@dataclass
class Forgetter:
    """rtnetlink sockets inside lab namespaces that delete neighbour entries in bulk,
    sparing the ones that were configured (not learnt) when it first looked."""
    socks: dict[str, socket.socket] = field(default_factory=dict)
    ifindex: dict[tuple[str, str], int] = field(default_factory=dict)
    keep: set[tuple[str, int, bytes]] = field(default_factory=set)     # (ns, ifindex, addr)
    chunk: int = CHUNK

    def open(self, ns: str, ifnames: set[str]) -> None:
        """A socket in `ns`, the indexes of its interfaces, and its permanent entries."""
        if ns in self.socks:
            return
        with kernel.entered(ns):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            for name in ifnames:
                try:
                    self.ifindex[(ns, name)] = socket.if_nametoindex(name)
                except OSError:
                    pass
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * CHUNK)
            sock.bind((0, 0))
            keep = _permanent(sock)
        except OSError:
            sock.close()             # fail closed: nothing is forgotten in this namespace
            return
        self.chunk = min(CHUNK, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 - 64)
        self.socks[ns] = sock
        self.keep |= {(ns, idx, addr) for idx, addr in keep}

    def forget(self, entries: set[Entry]) -> int:
        """Delete these entries (absent ones are fine); returns how many were asked."""
        batches: dict[str, list[bytes]] = {}
        for e in entries:
            idx = self.ifindex.get((e.ns, e.ifname))
            if idx is None or e.ns not in self.socks:
                continue
            addr = socket.inet_pton(FAMILY[e.ip], e.address)
            if (e.ns, idx, addr) in self.keep:
                continue
            batches.setdefault(e.ns, []).append(_delneigh(FAMILY[e.ip], idx, addr))
        for ns, messages in batches.items():
            _send_all(self.socks[ns], messages, self.chunk)
        return sum(len(m) for m in batches.values())

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        self.socks.clear()


def _delneigh(family: int, ifindex: int, addr: bytes) -> bytes:
    attr = struct.pack("HH", 4 + len(addr), NDA_DST) + addr
    body = struct.pack("BBHiHBB", family, 0, 0, ifindex, 0, 0, 0) + attr
    return struct.pack("IHHII", 16 + len(body), RTM_DELNEIGH, NLM_F_REQUEST, 0, 0) + body


def _send_all(sock: socket.socket, messages: list[bytes], limit: int) -> None:
    """Send in chunks; the kernel handles each chunk inside sendmsg. Its error replies
    (ENOENT for entries already gone) are read and dropped."""
    chunk, size = [], 0
    for m in messages + [b""]:
        if chunk and (not m or size + len(m) > limit):
            sock.send(b"".join(chunk))
            _drain(sock)
            chunk, size = [], 0
        if m:
            chunk.append(m)
            size += len(m)


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:   # ENOBUFS: error replies we would drop anyway overflowed
            if err.errno != errno.ENOBUFS:
                return


def _permanent(sock: socket.socket) -> list[tuple[int, bytes]]:
    """(ifindex, address) of the namespace's configured entries (permanent, or NOARP for a
    unicast address), from one dump of both families."""
    body = struct.pack("BBHiHBB", socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0)
    sock.send(struct.pack("IHHII", 16 + len(body), RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    return [(ifindex, addr) for ifindex, state, addr in _dump_replies(sock)
            if addr and (state & NUD_PERMANENT or (state & NUD_NOARP and not _multicast(addr)))]


def _multicast(addr: bytes) -> bool:
    """The kernel makes NOARP entries of its own for multicast destinations (the
    solicited-node group of every IPv6 neighbour asked): those are not configuration."""
    return addr[0] == 0xFF if len(addr) == 16 else 224 <= addr[0] <= 239


def _dump_replies(sock: socket.socket):
    """(ifindex, state, NDA_DST) of each reply of a neighbour dump, until NLMSG_DONE; an
    error reply raises (the caller then forgets nothing there: fail closed)."""
    while True:
        data = sock.recv(1 << 20)
        at = 0
        while at + 16 <= len(data):
            length, kind = struct.unpack_from("IH", data, at)
            if kind == NLMSG_ERROR:
                raise OSError(-struct.unpack_from("i", data, at + 16)[0], "neighbour dump refused")
            if kind == NLMSG_DONE or length < 16:
                return
            _, _, _, ifindex, state, _, _ = struct.unpack_from("BBHiHBB", data, at + 16)
            yield ifindex, state, _attr(data, at + 28, at + length, NDA_DST)
            at += (length + 3) & ~3


def _attr(data: bytes, start: int, end: int, want: int) -> bytes | None:
    while start + 4 <= end:
        length, kind = struct.unpack_from("HH", data, start)
        if length < 4:
            return None
        if kind == want:
            return data[start + 4:start + length]
        start += (length + 3) & ~3
    return None
