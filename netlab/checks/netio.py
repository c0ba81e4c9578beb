"""Sockets made inside node namespaces, and ICMP packets built and parsed by hand.

A socket keeps the namespace it was created in (DESIGN.md), so every probe opens its
sockets here while the calling thread is inside the node's namespace and then uses them
from anywhere. Nothing runs inside the node; nothing is needed in its image.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import itertools
import os
import socket
import struct
from typing import Iterable

from ..core import kernel

ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_ECHO, ICMP_TIME_EXCEEDED = 0, 3, 8, 11
ICMP6_UNREACH, ICMP6_TOO_BIG, ICMP6_TIME_EXCEEDED, ICMP6_ECHO, ICMP6_ECHO_REPLY = 1, 2, 3, 128, 129
IP_MTU_DISCOVER, IP_PMTUDISC_DONT, IP_PMTUDISC_PROBE = 10, 0, 3
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, IPV6_DONTFRAG = 23, 3, 62
ECHO_HEADERS = {False: 20 + 8, True: 40 + 8}      # IP + ICMP echo header bytes, by "is IPv6"
SIOCGIFHWADDR = 0x8927

UNREACH_CODES = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
                 3: "port unreachable", 4: "fragmentation needed", 9: "network prohibited",
                 10: "host prohibited", 13: "administratively prohibited",
                 100: "no route (v6)", 101: "administratively prohibited (v6)",
                 102: "beyond scope of source address (v6)",
                 103: "address unreachable (v6)", 104: "port unreachable (v6)",
                 105: "source address failed policy (v6)", 106: "reject route (v6)"}

HOW = {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "ICMP host unreachable",
       errno.ENETUNREACH: "ICMP network unreachable", errno.ETIMEDOUT: "timeout",
       errno.EACCES: "ICMP administratively prohibited", errno.EPERM: "blocked locally",
       errno.EMSGSIZE: "message too long"}


def how(err: int) -> str:
    """How a socket error says a probe was blocked, in words."""
    return HOW.get(err, os.strerror(err))


def socket_in(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket living in namespace `ns` (entered only for the creation)."""
    with kernel.entered(ns):
        return socket.socket(family, kind, proto)


def sockets_in(ns: str, count: int, family: int, kind: int, proto: int = 0) -> list[socket.socket]:
    with kernel.entered(ns):
        return [socket.socket(family, kind, proto) for _ in range(count)]


def icmp_socket(ns: str) -> socket.socket:
    sock = socket_in(ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return sock


def icmp6_socket(ns: str) -> socket.socket:
    """A raw ICMPv6 socket (the kernel fills in the checksum; no IP header on receive)."""
    sock = socket_in(ns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def hwaddr(ns: str, ifname: str) -> str | None:
    """The MAC address of an interface in a namespace (ioctl on a socket made there)."""
    try:
        with kernel.entered(ns):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                raw = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))
    except OSError:
        return None
    return ":".join(f"{b:02x}" for b in raw[18:24])


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = b"netlab") -> bytes:
    """An ICMP echo request; the checksum adds the header's words to the payload's sum,
    kept from the last payloads (the all-pairs matrix sends thousands with one payload)."""
    total = (ICMP_ECHO << 8) + ident + seq + _word_sum(payload)
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return struct.pack("!BBHHH", ICMP_ECHO, 0, ~total & 0xFFFF, ident, seq) + payload


@functools.lru_cache(maxsize=64)
def _word_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def padded(size: int, stamp: bytes = b"netlab", v6: bool = False) -> bytes:
    """An echo payload such that the IP packet is `size` bytes: 20 IPv4 (40 IPv6) and 8
    ICMP header bytes, then this payload."""
    n = max(0, size - ECHO_HEADERS[v6])
    return (stamp * (n // len(stamp) + 1))[:n]


def solicited_node(address: str) -> str:
    """ff02::1:ffXX:XXXX, the multicast group a Neighbor Solicitation for `address` goes to."""
    low24 = socket.inet_pton(socket.AF_INET6, address)[13:]
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex("ff0200000000000000000001ff") + low24)


def echo_request6(ident: int, seq: int, payload: bytes = b"netlab") -> bytes:
    """An ICMPv6 echo request; the kernel fills in the checksum."""
    return struct.pack("!BBHHH", ICMP6_ECHO, 0, 0, ident, seq) + payload


def echo_of_size(v6: bool, ident: int, seq: int, size: int) -> bytes:
    """An echo request (ICMP or ICMPv6) whose IP packet is `size` bytes on the wire."""
    payload = padded(size, v6=v6)
    return echo_request6(ident, seq, payload) if v6 else echo_request(ident, seq, payload)


def set_hop_limit(sock: socket.socket, hops: int) -> None:
    """The TTL (IPv4) or unicast hop limit (IPv6) of what `sock` sends."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)


def never_fragment(sock: socket.socket) -> None:
    """Send packets whole up to the interface MTU, ignoring any learned path MTU, and
    fail with EMSGSIZE above it: DF set (IPv4); no local fragmentation (IPv6, where
    routers never fragment and answer Packet Too Big)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)


UNREACH6_CODES = {0: "no route", 1: "administratively prohibited", 3: "address unreachable",
                  4: "port unreachable", 5: "source address failed policy", 6: "reject route"}


def parse6(data: bytes, src: str):
    """Like parse() for an ICMPv6 message (no IP header): echo replies, and errors
    quoting one of our echoes (40-byte IPv6 header, then the echo, after the 8-byte
    ICMPv6 header), mapped onto the IPv4 types and codes: Packet Too Big is
    'fragmentation needed' (code 4) with its MTU, unreachable codes are 100 + code."""
    if len(data) < 8:
        return None
    type_, code = data[0], data[1]
    if type_ == ICMP6_ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", data, 4)
        return Icmp(src, ICMP_ECHO_REPLY, code, ident, seq, size=len(data) + 40)
    errors = (ICMP6_UNREACH, ICMP6_TOO_BIG, ICMP6_TIME_EXCEEDED)
    if type_ in errors and len(data) >= 8 + 40 + 8 and data[8 + 6] == 58 and data[48] == ICMP6_ECHO:
        ident, seq = struct.unpack_from("!HH", data, 52)
        inner_dst = socket.inet_ntop(socket.AF_INET6, data[8 + 24:8 + 40])
        if type_ == ICMP6_TIME_EXCEEDED:
            return Icmp(src, ICMP_TIME_EXCEEDED, code, ident, seq, inner_dst)
        if type_ == ICMP6_TOO_BIG:
            return Icmp(src, ICMP_UNREACH, 4, ident, seq, inner_dst, struct.unpack_from("!I", data, 4)[0])
        return Icmp(src, ICMP_UNREACH, 100 + code, ident, seq, inner_dst)
    return None


class Icmp:
    """One parsed ICMP message received on a raw socket (IP header included)."""
    __slots__ = ("src", "type", "code", "ident", "seq", "inner_dst", "mtu", "size")

    def __init__(self, src, type_, code, ident, seq, inner_dst=None, mtu=0, size=0):
        self.src, self.type, self.code, self.ident, self.seq = src, type_, code, ident, seq
        self.inner_dst, self.mtu, self.size = inner_dst, mtu, size

    @property
    def v6(self) -> bool:
        return ":" in self.src

    @property
    def too_big(self) -> bool:
        """ICMP fragmentation needed, or ICMPv6 Packet Too Big: `mtu` says the limit."""
        return self.type == ICMP_UNREACH and self.code == 4


def parse(packet: bytes) -> Icmp | None:
    """Echo replies, and errors (unreachable, time exceeded) quoting one of our echoes."""
    if len(packet) < 28:
        return None
    ihl = (packet[0] & 0x0F) * 4
    src = socket.inet_ntoa(packet[12:16])
    type_, code = packet[ihl], packet[ihl + 1]
    if type_ == ICMP_ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", packet, ihl + 4)
        return Icmp(src, type_, code, ident, seq, size=len(packet))
    if type_ in (ICMP_UNREACH, ICMP_TIME_EXCEEDED):
        inner = ihl + 8
        if len(packet) < inner + 28:
            return None
        inner_ihl = (packet[inner] & 0x0F) * 4
        if packet[inner + 9] != socket.IPPROTO_ICMP or packet[inner + inner_ihl] != ICMP_ECHO:
            return None
        ident, seq = struct.unpack_from("!HH", packet, inner + inner_ihl + 4)
        mtu = struct.unpack_from("!H", packet, ihl + 6)[0] if type_ == ICMP_UNREACH and code == 4 else 0
        return Icmp(src, type_, code, ident, seq, socket.inet_ntoa(packet[inner + 16:inner + 20]), mtu)
    return None


def packets(sock: socket.socket) -> Iterable[tuple[bytes, str | None]]:
    """Every packet waiting on a non-blocking raw ICMP (or ICMPv6) socket, with its source
    for ICMPv6 (whose packets come without the IP header; None for ICMP)."""
    v6 = sock.family == socket.AF_INET6
    while True:
        try:
            if v6:
                packet, peer = sock.recvfrom(65535)
                yield packet, peer[0].split("%")[0]
            else:
                yield sock.recv(65535), None
        except (BlockingIOError, InterruptedError):
            return


def drain(sock: socket.socket) -> Iterable[Icmp]:
    """Every message waiting on a non-blocking raw ICMP (or ICMPv6) socket."""
    for packet, src6 in packets(sock):
        msg = parse6(packet, src6) if src6 is not None else parse(packet)
        if msg is not None:
            yield msg


SOL_RAW, ICMP_FILTER, ICMP6_FILTER = 255, 1, 1


def only_replies_and_errors(sock: socket.socket) -> None:
    """Have the kernel keep from a raw ICMP/ICMPv6 socket every message but echo replies,
    unreachable, too big and time exceeded: in a busy namespace it also sees every echo
    request the node answers."""
    if sock.family == socket.AF_INET6:
        blocked = [0xFFFFFFFF] * 8                      # ICMP6_FILTER: a set bit blocks
        for t in (ICMP6_UNREACH, ICMP6_TOO_BIG, ICMP6_TIME_EXCEEDED, ICMP6_ECHO_REPLY):
            blocked[t >> 5] &= ~(1 << (t & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))
    else:
        passed = (1 << ICMP_ECHO_REPLY) | (1 << ICMP_UNREACH) | (1 << ICMP_TIME_EXCEEDED)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~passed & 0xFFFFFFFF))


def drain_replies(sock: socket.socket) -> Iterable[tuple[int, int, str | None, Icmp | None]]:
    """Like drain, for the all-pairs matrix that reads thousands of replies a round: an
    echo reply comes as (ident, seq, source, None) without building an Icmp, an error
    quoting one of our echoes as (ident, seq, None, Icmp)."""
    for packet, src6 in packets(sock):
        if src6 is not None:
            if len(packet) >= 8 and packet[0] == ICMP6_ECHO_REPLY:
                yield (*struct.unpack_from("!HH", packet, 4), src6, None)
                continue
            msg = parse6(packet, src6)
        else:
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) >= ihl + 8 and packet[ihl] == ICMP_ECHO_REPLY:
                yield (*struct.unpack_from("!HH", packet, ihl + 4), socket.inet_ntoa(packet[12:16]), None)
                continue
            msg = parse(packet)
        if msg is not None and msg.type != ICMP_ECHO_REPLY:
            yield msg.ident, msg.seq, None, msg


_idents = itertools.count(os.getpid() * 7919)


def new_ident() -> int:
    """An ICMP identifier distinct for each probe of this process (raw sockets see every
    ICMP message of their namespace, so replies are told apart by it)."""
    return next(_idents) % 0xFFFF + 1


class UnreachWatch:
    """A raw ICMP (ICMPv6 with v6) socket in the source node that keeps the unreachable
    messages quoting our TCP/UDP packets, so 'host unreachable' from the socket can be told
    apart from 'administratively prohibited' (the kernel maps both to EHOSTUNREACH), and a
    timeout from an ICMP error the kernel took as a soft one."""

    def __init__(self, ns: str, v6: bool = False):
        self.sock = icmp6_socket(ns) if v6 else icmp_socket(ns)
        self.quoted = _quoted6 if v6 else _quoted4

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UnreachWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def why(self, dst: str, dport: int, who=lambda a: a) -> str | None:
        """'ICMP <reason> from <node>' for the newest unreachable about dst:dport."""
        found = None
        while True:
            try:
                packet, peer = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            quoted = self.quoted(packet, peer[0].split("%")[0])
            if quoted is not None and quoted[2:] == (dst, dport):
                src, code = quoted[:2]
                found = f"ICMP {UNREACH_CODES.get(code, f'unreachable code {code}')} from {who(src)}"
        return found


L4 = (socket.IPPROTO_TCP, socket.IPPROTO_UDP)


def _quoted4(packet: bytes, _peer: str) -> tuple[str, int, str, int] | None:
    """(sender, code, quoted destination, quoted port) of an ICMP unreachable about TCP/UDP."""
    ihl = (packet[0] & 0x0F) * 4 if packet else 0
    if len(packet) < ihl + 8 + 24 or packet[ihl] != ICMP_UNREACH:
        return None
    inner = ihl + 8
    inner_ihl = (packet[inner] & 0x0F) * 4
    if packet[inner + 9] not in L4 or len(packet) < inner + inner_ihl + 4:
        return None
    return (socket.inet_ntoa(packet[12:16]), packet[ihl + 1], socket.inet_ntoa(packet[inner + 16:inner + 20]),
            struct.unpack_from("!H", packet, inner + inner_ihl + 2)[0])


def _quoted6(data: bytes, peer: str) -> tuple[str, int, str, int] | None:
    """The same for an ICMPv6 unreachable (no IP header; codes as 100 + code)."""
    if len(data) < 8 + 40 + 4 or data[0] != ICMP6_UNREACH or data[8 + 6] not in L4:
        return None
    return (peer, 100 + data[1], socket.inet_ntop(socket.AF_INET6, data[8 + 24:8 + 40]),
            struct.unpack_from("!H", data, 8 + 40 + 2)[0])
