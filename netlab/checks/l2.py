"""L2 probe: who answers for an address on a segment the source shares with the target.

IPv4: ARP on an AF_PACKET socket bound to the source's interface. IPv6: NDP, a Neighbor
Solicitation (hop limit 255, to the target's solicited-node multicast address, with the
source's link-layer address) from a raw ICMPv6 socket bound to that interface, answered
by a Neighbor Advertisement carrying the target's link-layer address. IPv6 is used as in
the other checks: `ip: 6`, an IPv6 literal target, or an IPv6-only node.

On a shared segment the target must answer with its interface's MAC (or `mac:`); between
nodes on different segments (`expect: blocked`) the request goes out of every interface of
the source and no answer may come back.
"""
from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable

from . import netio
from .labinfo import LabView, NodeIface
from .netio import solicited_node
from .result import Outcome
from .spec import CheckSpec

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
ND_SOLICIT, ND_ADVERT = 135, 136
OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR = 1, 2


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def arp_request(src_mac: bytes, src_ip: str, dst_ip: str) -> bytes:
    eth = BROADCAST + src_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src_mac, socket.inet_aton(src_ip),
                      b"\0" * 6, socket.inet_aton(dst_ip))
    return eth + arp


def parse_reply(frame: bytes) -> tuple[str, str, str] | None:
    """(sender ip, sender mac, target ip) of an ARP reply frame."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op = struct.unpack_from("!H", frame, 20)[0]
    if op != 2:
        return None
    return socket.inet_ntoa(frame[28:32]), _mac_text(frame[22:28]), socket.inet_ntoa(frame[38:42])


def neighbor_solicitation(target: str, src_mac: bytes) -> bytes:
    """An ICMPv6 Neighbor Solicitation with the source link-layer address option (the
    kernel fills in the checksum)."""
    return (struct.pack("!BBHI", ND_SOLICIT, 0, 0, 0) + socket.inet_pton(socket.AF_INET6, target)
            + struct.pack("!BB6s", OPT_SOURCE_LLADDR, 1, src_mac))


def parse_advert(data: bytes) -> tuple[str, str | None] | None:
    """(target address, target link-layer address if given) of a Neighbor Advertisement
    (an ICMPv6 message, no IP header)."""
    if len(data) < 24 or data[0] != ND_ADVERT:
        return None
    target = socket.inet_ntop(socket.AF_INET6, data[8:24])
    at = 24
    while at + 8 <= len(data) and data[at + 1]:
        if data[at] == OPT_TARGET_LLADDR:
            return target, _mac_text(data[at + 2:at + 8])
        at += data[at + 1] * 8
    return target, None


@dataclass
class Solicit:
    """A socket that asks 'who has' an address on one interface: `send` asks again,
    `answer` is the MAC a received packet gives for that address (None if it is not one)."""
    sock: socket.socket
    send: Callable[[], object]
    answer: Callable[[bytes], str | None]


def _arp(ns: str, ifname: str, source: str | None, target: str) -> Solicit:
    sock = netio.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    source = source or "0.0.0.0"
    try:
        sock.bind((ifname, ETH_P_ARP))
        sock.setblocking(False)
        request = arp_request(sock.getsockname()[4], source, target)
    except OSError:
        sock.close()
        raise

    def answer(frame: bytes) -> str | None:
        reply = parse_reply(frame)
        return reply[1] if reply and reply[0] == target and reply[2] == source else None
    return Solicit(sock, lambda: sock.send(request), answer)


def _ndp(ns: str, ifname: str, source: str | None, target: str) -> Solicit:
    sock = netio.icmp6_socket(ns)
    group = solicited_node(target)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        if source:
            sock.bind((source, 0))
        request = neighbor_solicitation(target, bytes.fromhex((netio.hwaddr(ns, ifname) or "").replace(":", "")))
    except (OSError, ValueError) as err:
        sock.close()
        raise OSError(f"cannot solicit {target} on {ifname}: {err}") from err

    def answer(data: bytes) -> str | None:
        advert = parse_advert(data)
        return advert[1] if advert and advert[0] == target else None
    return Solicit(sock, lambda: sock.sendto(request, (group, 0)), answer)


def _ask(ns: str, iface: NodeIface, target_ip: str, timeout: float) -> str | None:
    """The MAC that answers 'who has target_ip' (ARP, or NDP for IPv6) on this interface."""
    v6 = ":" in target_ip
    asker = (_ndp if v6 else _arp)(ns, iface.ifname, iface.address6 if v6 else iface.address, target_ip)
    with asker.sock:
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                asker.send()
                next_send = now + min(0.2, timeout / 3)
            ready, _, _ = select.select([asker.sock], [], [], min(deadline, next_send) - now)
            while ready:
                try:
                    packet = asker.sock.recv(2048)
                except BlockingIOError:
                    break
                mac = asker.answer(packet)
                if mac:
                    return mac


def arp(spec: CheckSpec, view: LabView) -> Outcome:
    _, v6 = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    ip, protocol = ("IPv6", "NDP") if v6 else ("IPv4", "ARP")

    def addr(i: NodeIface) -> str | None:
        return i.address6 if v6 else i.address
    target = spec.dst if spec.dst in view.ns else view.owner.get(spec.dst or "")
    mine = [i for i in view.ifaces.get(spec.src, []) if addr(i)]
    theirs = [i for i in view.ifaces.get(target, []) if addr(i)] if target else []
    shared = [(m, t) for m in mine for t in theirs if m.segment == t.segment]
    if spec.dst not in view.ns:
        shared = [(m, t) for m, t in shared if addr(t) == spec.dst] or shared
    if not mine:
        return Outcome.cannot(f"{spec.src} has no {ip} address to ask from")
    if shared:
        m, t = shared[0]
        expected = spec.opts.get("mac") or (None if target in view.remote
                                            else netio.hwaddr(view.ns[target], t.ifname))
        answer = _ask(view.ns[spec.src], m, addr(t), spec.timeout)
        if answer is None:
            return Outcome.blocked(f"no {protocol} reply for {addr(t)} on {m.ifname} in {spec.timeout:g}s")
        good = expected is None or answer == expected
        detail = f"{addr(t)} is-at {answer} on {m.ifname}"
        return Outcome(True, good, detail + ("" if good else f" (expected {expected})"))
    addresses = [spec.dst] if spec.dst not in view.ns else [addr(t) for t in theirs]
    for m in mine:
        for address in addresses:
            answer = _ask(view.ns[spec.src], m, address, min(spec.timeout, 0.5))
            if answer is not None:
                return Outcome(True, True, f"{address} is-at {answer}, heard on {m.ifname}")
    return Outcome.blocked(f"no shared segment: no {protocol} reply for {', '.join(addresses)} "
                           f"on {', '.join(i.ifname for i in mine)}")
