"""L3 probes with raw ICMP (or ICMPv6) sockets made in the source node: ping (loss, RTT),
path (TTL / hop limit probing, compared with `via:`) and MTU (the largest packet that makes
the round trip unfragmented: DF set over IPv4; over IPv6 routers never fragment). Sizes are
IP packet sizes, headers included, in both families. The all-pairs matrix lives in matrix.py.
"""
from __future__ import annotations

import errno
import select
import socket
import time
from dataclasses import dataclass, field

from . import netio
from .labinfo import LabView
from .result import Outcome
from .spec import CheckSpec


@dataclass
class Echoes:
    """Echo requests sent with distinct sequence numbers and what came back for each."""
    sent: dict[int, float] = field(default_factory=dict)          # seq -> send time
    rtt: dict[int, float] = field(default_factory=dict)           # seq -> seconds
    errors: dict[int, netio.Icmp] = field(default_factory=dict)   # seq -> ICMP error
    local: dict[int, int] = field(default_factory=dict)           # seq -> errno from sendto


def _send(sock: socket.socket, dst: str, ident: int, seq: int, size: int, e: Echoes) -> None:
    """One echo request whose IP packet is `size` bytes."""
    try:
        sock.sendto(netio.echo_of_size(sock.family == socket.AF_INET6, ident, seq, size), (dst, 0))
        e.sent[seq] = time.monotonic()
    except OSError as err:
        e.local[seq] = err.errno


def _collect(sock: socket.socket, dst: str, ident: int, e: Echoes, until: float,
             done=lambda e: False) -> None:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while not done(e):
        left = until - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return
        now = time.monotonic()
        for msg in netio.drain(sock):
            if msg.ident != ident or msg.seq not in e.sent:
                continue
            if msg.type == netio.ICMP_ECHO_REPLY and msg.src == dst:
                e.rtt.setdefault(msg.seq, now - e.sent[msg.seq])
            elif msg.type != netio.ICMP_ECHO_REPLY and msg.inner_dst == dst:
                e.errors.setdefault(msg.seq, msg)


def describe_error(msg: netio.Icmp, view: LabView) -> str:
    where = view.name_of(msg.src)
    if msg.type == netio.ICMP_TIME_EXCEEDED:
        return f"{'hop limit' if msg.v6 else 'TTL'} exceeded at {where} (a routing loop?)"
    what = netio.UNREACH_CODES.get(msg.code, f"unreachable code {msg.code}")
    if msg.too_big:
        what = f"{'packet too big (v6)' if msg.v6 else what}, mtu {msg.mtu}"
    return f"ICMP {what} from {where}"


def _opener(v6: bool):
    return netio.icmp6_socket if v6 else netio.icmp_socket


def _why_not(e: Echoes, view: LabView, timeout: float) -> str:
    if e.errors:
        return describe_error(next(iter(e.errors.values())), view)
    if e.local:
        err = next(iter(e.local.values()))
        return "no route" if err in (errno.ENETUNREACH, errno.EHOSTUNREACH) else netio.how(err)
    return f"timeout (no reply in {timeout:g}s)"


def ping(spec: CheckSpec, view: LabView) -> Outcome:
    dst, v6 = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    count, timeout = spec.opts.get("count", 3), spec.timeout
    interval = 0.01 if count <= 5 else 0.02
    ident = netio.new_ident()
    e = Echoes()
    with _opener(v6)(view.ns[spec.src]) as sock:
        for seq in range(1, count + 1):
            _send(sock, dst, ident, seq, 64, e)
            _collect(sock, dst, ident, e, time.monotonic() + interval)
        # the stragglers: up to the timeout while nothing came back, else a few round trips
        linger = timeout if not e.rtt else min(timeout, max(0.2, 4 * max(e.rtt.values())))
        _collect(sock, dst, ident, e, time.monotonic() + linger, lambda e: len(e.rtt) >= len(e.sent))
    if not e.rtt:
        return Outcome.blocked(_why_not(e, view, timeout))
    loss = 1 - len(e.rtt) / count
    rtts = sorted(e.rtt.values())
    avg = sum(rtts) / len(rtts) * 1000
    detail = f"{dst}: {len(e.rtt)}/{count} replies, loss {loss:.0%}, rtt avg {avg:.2f} ms max {rtts[-1] * 1000:.2f} ms"
    good, why = True, []
    max_loss, max_rtt = spec.opts.get("max_loss"), spec.opts.get("max_rtt")
    if max_loss is not None and loss > max_loss + 1e-9:
        good = False
        why.append(f"loss above {max_loss:.0%}")
    if max_rtt is not None and avg > max_rtt:
        good = False
        why.append(f"rtt above {max_rtt:g} ms")
    return Outcome(True, good, detail + (f" ({'; '.join(why)})" if why else ""))


def path(spec: CheckSpec, view: LabView) -> Outcome:
    """Echoes with TTL (IPv6: hop limit) 1..N at once: the sources of time exceeded
    name the routers crossed."""
    dst, v6 = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    via = [view.name_of(v) for v in spec.opts.get("via", [])]
    max_ttl = min(30, len(via) + 3)
    ident = netio.new_ident()
    e = Echoes()
    with _opener(v6)(view.ns[spec.src]) as sock:
        for attempt in range(2):
            for ttl in range(1, max_ttl + 1):
                if ttl in e.rtt or ttl in e.errors:
                    continue
                netio.set_hop_limit(sock, ttl)
                _send(sock, dst, ident, ttl, 64, e)
            _collect(sock, dst, ident, e, time.monotonic() + spec.timeout,
                     lambda e: _path_known(e, max_ttl))
            if _path_known(e, max_ttl):
                break
    if not e.rtt:
        exceeded = [t for t, m in e.errors.items() if m.type == netio.ICMP_TIME_EXCEEDED]
        hops = _hops(e, view, max(exceeded, default=0))
        crossed = f" after {', '.join(hops)}" if hops else ""
        if exceeded and max(exceeded) == max_ttl:
            return Outcome(True, False, f"{dst} not reached in {max_ttl} hops: {', '.join(hops)}; "
                           f"expected via {', '.join(via) or '(direct)'}")
        reasons = {s: m for s, m in e.errors.items() if m.type == netio.ICMP_UNREACH}
        if reasons:
            return Outcome.blocked(describe_error(next(iter(reasons.values())), view) + crossed)
        return Outcome.blocked(_why_not(Echoes(local=e.local), view, spec.timeout) + crossed)
    final = min(e.rtt)
    hops = _hops(e, view, final - 1)
    got = ", ".join(hops) or "(direct)"
    return Outcome(True, hops == via, f"{dst} reached via {got}" +
                   ("" if hops == via else f"; expected via {', '.join(via) or '(direct)'}"))


def _path_known(e: Echoes, max_ttl: int) -> bool:
    if not e.rtt:
        return False
    final = min(e.rtt)
    return all(t in e.errors for t in range(1, final))


def _hops(e: Echoes, view: LabView, last: int) -> list[str]:
    """Names of the routers that sent time-exceeded for TTL 1..last ('*': silent)."""
    hops = []
    for ttl in range(1, last + 1):
        msg = e.errors.get(ttl)
        ok = msg is not None and msg.type == netio.ICMP_TIME_EXCEEDED
        hops.append(view.name_of(msg.src) if ok else "*")
    return hops


MIN_MTU = {False: 68, True: 1280}      # the smallest MTU a link may have, by "is IPv6"


def mtu(spec: CheckSpec, view: LabView) -> Outcome:
    """The largest IP packet that goes there and back unfragmented (DF set over IPv4;
    IPv6 routers never fragment): coarse sizes at once, then every size in the gap."""
    dst, v6 = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    want = spec.opts["size"]
    top = max(want, 1500)
    ident = netio.new_ident()
    e = Echoes()
    with _opener(v6)(view.ns[spec.src]) as sock:
        netio.never_fragment(sock)
        floor = MIN_MTU[v6]
        coarse = sorted(set(range(floor, top + 1, 64)) | {MIN_MTU[False], want, top, 1280})
        _probe_sizes(sock, dst, ident, coarse, e, spec.timeout)
        if not e.rtt:
            return Outcome.blocked(_why_not(e, view, spec.timeout))
        low = max(e.rtt)
        above = [s for s in coarse if s > low]
        if above and low >= floor:
            _probe_sizes(sock, dst, ident, list(range(low + 1, above[0])), e, spec.timeout)
    largest = max(e.rtt)
    detail = f"{dst}: largest packet {'' if v6 else 'with DF '}through is {largest} bytes"
    too_big = [m for m in e.errors.values() if m.too_big]
    if too_big:
        detail += f" ({describe_error(too_big[0], view)})"
    elif any(err == errno.EMSGSIZE for err in e.local.values()):
        detail += " (limited by the source's interface MTU)"
    elif largest < top:
        detail += " (bigger packets vanish silently: an MTU black hole)"
    if largest < floor:
        detail += f"; every IPv6 link must carry {floor}"
    return Outcome(True, largest >= want, detail + ("" if largest >= want else f"; {want} expected"))


def _probe_sizes(sock, dst, ident, sizes, e: Echoes, timeout: float) -> None:
    for size in sizes:
        _send(sock, dst, ident, size, size, e)
    pending = set(e.sent) - set(e.local)
    _collect(sock, dst, ident, e, time.monotonic() + min(timeout, 1.0),
             lambda e: pending <= set(e.rtt) | set(e.errors))
