"""The all-pairs matrix: L3 reachability between every ordered pair of nodes, one raw
socket per source node, echoes to every target at once, replies gathered with epoll.
"""
from __future__ import annotations

import errno
import select
import socket
import time
from dataclasses import dataclass

from . import netio
from .l3 import describe_error
from .labinfo import LabView


@dataclass
class Matrix:
    nodes: list[str]
    ok: dict[tuple[str, str], float]                 # (src, dst) -> rtt seconds
    failed: dict[tuple[str, str], str]               # (src, dst) -> why
    seconds: float = 0.0

    @property
    def pairs(self) -> int:
        return len(self.ok) + len(self.failed)


def all_pairs(view: LabView, nodes: list[str] | None = None, timeout: float = 2.0,
              resend: float = 0.25) -> Matrix:
    """L3 reachability between every ordered pair: one raw socket per source (plus an
    ICMPv6 one where a pair is IPv6-only), echoes to every target at once, replies
    gathered with epoll; unanswered ones are resent."""
    started = time.monotonic()
    nodes = nodes or sorted(view.ns)
    addressed = {s: [(d, *view.target(s, d)) for d in nodes if d != s] for s in nodes}
    targets = {s: [(d, a, v6) for d, a, v6 in pairs if a] for s, pairs in addressed.items()}
    socks: dict[int, tuple[str, socket.socket]] = {}
    by_source: dict[tuple[str, bool], socket.socket] = {}
    idents = {}
    poller = select.epoll()
    try:
        for s in nodes:
            idents[s] = netio.new_ident()
            for v6 in sorted({v6 for _, _, v6 in targets[s]}):
                sock = (netio.icmp6_socket if v6 else netio.icmp_socket)(view.ns[s])
                socks[sock.fileno()] = (s, sock)
                by_source[(s, v6)] = sock
                poller.register(sock.fileno(), select.EPOLLIN)
        sent_at: dict[tuple[str, int], float] = {}
        ok: dict[tuple[str, str], float] = {}
        errors: dict[tuple[str, str], str] = {}
        # first one direction of every pair: the target learns the asker's MAC from its
        # ARP request, so the other direction needs no broadcast of its own (half the ARP)
        forward = {(s, d) for s in nodes for d, _, _ in targets[s] if d > s}
        total = sum(len(t) for t in targets.values())
        deadline = started + timeout
        next_send, phase_one, sent_once, sends = 0.0, True, False, 0
        while True:
            now = time.monotonic()
            if phase_one and (len(ok) >= len(forward) or (sent_once and now >= next_send)):
                phase_one, next_send = False, now
            if now >= next_send:
                _send_missing(by_source, targets, idents, ok, sent_at, errors, forward if phase_one else None)
                next_send = time.monotonic() + resend
                if sends < 2:
                    # sending can take long on a busy host (the kernel delivers inside
                    # sendto): both directions get sent once and a resend period to answer
                    deadline = max(deadline, next_send + resend)
                sends, sent_once = sends + 1, True
            if len(ok) == total or now >= deadline:
                break
            for fd, _ in poller.poll(max(0.0, min(next_send, deadline) - now)):
                s, sock = socks[fd]
                tl = targets[s]
                t = time.monotonic()
                for msg in netio.drain(sock):
                    if msg.ident != idents[s] or msg.seq >= len(tl):
                        continue
                    d, addr, _ = tl[msg.seq]
                    if msg.type == netio.ICMP_ECHO_REPLY and msg.src == addr:
                        ok.setdefault((s, d), t - sent_at.get((s, msg.seq), started))
                    elif msg.type != netio.ICMP_ECHO_REPLY and msg.inner_dst == addr:
                        errors[(s, d)] = describe_error(msg, view)
    finally:
        poller.close()
        for _, sock in socks.values():
            sock.close()
    failed = {(s, d): errors.get((s, d), "timeout") for s in nodes for d, _, _ in targets[s]
              if (s, d) not in ok}
    failed.update({(s, d): "no address" for s in nodes for d, a, _ in addressed[s] if not a})
    return Matrix(nodes, ok, failed, time.monotonic() - started)


def _send_missing(by_source, targets, idents, ok, sent_at, errors, only=None) -> None:
    """Send every unanswered echo (or only those in `only`). The kernel delivers inside
    sendto; one thread is fastest (threads measured slower: they contend for the bridge)."""
    now = time.monotonic()
    for s, pairs in targets.items():
        ident = idents[s]
        for seq, (d, addr, v6) in enumerate(pairs):
            if (s, d) in ok or (only is not None and (s, d) not in only):
                continue
            packet = netio.echo_request6(ident, seq) if v6 else netio.echo_request(ident, seq)
            try:
                by_source[(s, v6)].sendto(packet, (addr, 0))
                sent_at.setdefault((s, seq), now)
            except BlockingIOError:
                pass
            except OSError as err:
                errors[(s, d)] = "no route" if err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) \
                    else netio.how(err.errno)
