"""L2 probe: ARP on an AF_PACKET socket bound to the source's interface.

On a shared segment the target must answer with its interface's MAC (or `mac:`); between
nodes on different segments (`expect: blocked`) the request goes out of every interface of
the source and no answer may come back.
"""
from __future__ import annotations

import select
import socket
import struct
import time

from . import netio
from .labinfo import LabView, NodeIface
from .result import Outcome
from .spec import CheckSpec

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


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


def _ask(ns: str, iface: NodeIface, target_ip: str, timeout: float) -> str | None:
    """The MAC that answers 'who has target_ip' on this interface, or None."""
    sock = netio.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    with sock:
        sock.bind((iface.ifname, ETH_P_ARP))
        sock.setblocking(False)
        mac = sock.getsockname()[4]
        request = arp_request(mac, iface.address or "0.0.0.0", target_ip)
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                sock.send(request)
                next_send = now + min(0.2, timeout / 3)
            ready, _, _ = select.select([sock], [], [], min(deadline, next_send) - now)
            while ready:
                try:
                    frame = sock.recv(2048)
                except BlockingIOError:
                    break
                reply = parse_reply(frame)
                if reply and reply[0] == target_ip and reply[2] == (iface.address or "0.0.0.0"):
                    return reply[1]


def arp(spec: CheckSpec, view: LabView) -> Outcome:
    target = spec.dst if spec.dst in view.ns else view.owner.get(spec.dst or "")
    mine = [i for i in view.ifaces.get(spec.src, []) if i.address]
    theirs = [i for i in view.ifaces.get(target, []) if i.address] if target else []
    shared = [(m, t) for m in mine for t in theirs if m.segment == t.segment]
    if spec.dst not in view.ns:
        shared = [(m, t) for m, t in shared if t.address == spec.dst] or shared
    if not mine:
        return Outcome.cannot(f"{spec.src} has no IPv4 address to ask from")
    if shared:
        m, t = shared[0]
        expected = spec.opts.get("mac") or netio.hwaddr(view.ns[target], t.ifname)
        answer = _ask(view.ns[spec.src], m, t.address, spec.timeout)
        if answer is None:
            return Outcome.blocked(f"no ARP reply for {t.address} on {m.ifname} in {spec.timeout:g}s")
        good = expected is None or answer == expected
        detail = f"{t.address} is-at {answer} on {m.ifname}"
        return Outcome(True, good, detail + ("" if good else f" (expected {expected})"))
    addresses = [spec.dst] if spec.dst not in view.ns else [t.address for t in theirs]
    for m in mine:
        for address in addresses:
            answer = _ask(view.ns[spec.src], m, address, min(spec.timeout, 0.5))
            if answer is not None:
                return Outcome(True, True, f"{address} is-at {answer}, heard on {m.ifname}")
    return Outcome.blocked(f"no shared segment: no ARP reply for {', '.join(addresses)} "
                           f"on {', '.join(i.ifname for i in mine)}")
