"""The all-pairs matrix: L3 reachability between every ordered pair of nodes, over IPv4
and IPv6 alike, one raw socket per source node and family, echoes to every target at
once, replies gathered with epoll.

Every pair on a shared segment costs two neighbour entries (one in each namespace), and
the kernel's neighbour tables are shared by all namespaces and capped (neigh.py). When a
lab needs more entries than the tables have room for, the pairs go in rounds that fit,
blocks of nodes against blocks of nodes, and each round's entries are forgotten before
the next one; a round ends early once its replies stop coming, and whatever is still
unanswered gets one last try at the end with the rest of the time.
"""
from __future__ import annotations

import errno
import math
import resource
import select
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from . import netio
from .l3 import describe_error
from .labinfo import LabView
from .neigh import MIN_ROOM, Entry, Forgetter, TableUse, table_use
from .netio import solicited_node

QUIET = 0.05                # a round (of several) moves on when no reply came for this
                            # long; the kernel answers inside sendto on an idle host, and
                            # whatever is still unanswered gets the last pass


class Probe(NamedTuple):
    """One ordered pair in one family, and the neighbour entries it makes the kernel learn."""
    src: str
    dst: str
    ip: int
    addr: str
    entries: frozenset[Entry] = frozenset()

    @property
    def key(self) -> tuple[str, str, int]:
        return self.src, self.dst, self.ip


@dataclass
class Matrix:
    """Results keyed by (src, dst, ip); ip 0 marks a pair with no address in common."""
    nodes: list[str]
    ok: dict[tuple[str, str, int], float]            # -> rtt seconds
    failed: dict[tuple[str, str, int], str]          # -> why
    seconds: float = 0.0
    rounds: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        """Ordered node pairs probed (in one family or more)."""
        return len({k[:2] for k in self.ok} | {k[:2] for k in self.failed})

    @property
    def reachable(self) -> int:
        """Ordered node pairs that answered in every family they were probed in."""
        bad = {k[:2] for k in self.failed}
        return len({k[:2] for k in self.ok} - bad)

    def families(self) -> dict[int, tuple[int, int]]:
        """ip -> (pairs that answered, pairs probed)."""
        out = {}
        for ip in sorted({k[2] for k in self.ok} | {k[2] for k in self.failed} - {0}):
            good = sum(1 for k in self.ok if k[2] == ip)
            out[ip] = (good, good + sum(1 for k in self.failed if k[2] == ip))
        return out


def probes_of(view: LabView, nodes: list[str], families: tuple[int, ...] = (4, 6)) -> tuple[list[Probe], list[tuple[str, str]]]:
    """Every (src, dst, family) to probe, and the pairs with no address in common. A target
    is probed at its address on a segment it shares with the source, else its first one."""
    probes, found = [], set()
    for ip in families:
        ifs = {n: [(i.segment, i.ifname, a) for i in view.ifaces.get(n, [])
                   if (a := i.address6 if ip == 6 else i.address)] for n in nodes}
        first_on = {n: {seg: (ifname, a) for seg, ifname, a in reversed(ifs[n])} for n in nodes}
        via_gateway = {n: frozenset(_gateway_entries(view, n, ip)) for n in nodes}
        for s in nodes:
            if not ifs[s]:
                continue
            mine, ns_s = first_on[s], view.ns[s]
            for d in nodes:
                if d == s or not ifs[d]:
                    continue
                for seg, ifname, a in ifs[d]:
                    if seg in mine:
                        my_if, my_addr = mine[seg]
                        entries = (Entry(ns_s, my_if, a, ip), Entry(view.ns[d], ifname, my_addr, ip))
                        if ip == 6:
                            entries += (Entry(ns_s, my_if, solicited_node(a), 6),)
                        probes.append(Probe(s, d, ip, a, frozenset(entries)))
                        break
                else:
                    probes.append(Probe(s, d, ip, ifs[d][0][2], via_gateway[s] | via_gateway[d]))
                found.add((s, d))
    none = [(s, d) for s in nodes for d in nodes if s != d and (s, d) not in found]
    return probes, none


def _gateway_entries(view: LabView, node: str, ip: int) -> list[Entry]:
    """The entries a node and its gateway hold about each other in one family (for routed
    probes; the routers further on are not counted)."""
    for ni in view.ifaces.get(node, []):
        gw = view.gateways.get(ni.segment)
        if not gw or gw == node:
            continue
        for gi in view.ifaces.get(gw, []):
            na, ga = (ni.address6, gi.address6) if ip == 6 else (ni.address, gi.address)
            if ni.segment == gi.segment and na and ga:
                entries = [Entry(view.ns[node], ni.ifname, ga, ip), Entry(view.ns[gw], gi.ifname, na, ip)]
                if ip == 6:
                    entries.append(Entry(view.ns[node], ni.ifname, solicited_node(ga), 6))
                return entries
    return []


# ---- rounds -----------------------------------------------------------------------------

def block_order(probes: list[Probe], nodes: list[str], block: int) -> list[Probe]:
    """Probes ordered block of nodes against block of nodes (the nodes of a block are
    sorted), so that a prefix of the list touches few namespaces and few entries."""
    where = {n: i // block for i, n in enumerate(nodes)}

    def rank(p: Probe):            # both directions of a pair side by side
        a, b = sorted((where[p.src], where[p.dst]))
        return a, b, min(p.src, p.dst), max(p.src, p.dst), p.ip, p.src
    return sorted(probes, key=rank)


def next_round(queue: list[Probe], room: dict[int, int]) -> tuple[list[Probe], list[Probe]]:
    """(a round, the rest): the longest prefix of the queue whose new entries fit in the
    room of each family's table (at least one probe, so the queue always moves)."""
    taken: set[Entry] = set()
    used = {4: 0, 6: 0}
    for i, p in enumerate(queue):
        grow = {4: 0, 6: 0}
        for e in p.entries:
            if e not in taken:
                grow[e.ip] += 1
        if i and (used[4] + grow[4] > room.get(4, 0) or used[6] + grow[6] > room.get(6, 0)):
            return queue[:i], queue[i:]
        taken.update(p.entries)
        used[4] += grow[4]
        used[6] += grow[6]
    return queue, []


def _entries_of(probes: list[Probe]) -> set[Entry]:
    return set().union(*(p.entries for p in probes)) if probes else set()


# ---- the run ----------------------------------------------------------------------------

@dataclass
class Run:
    """Sockets, identifiers and results shared by every round of one matrix."""
    view: LabView
    socks: dict[tuple[str, int], socket.socket] = field(default_factory=dict)
    by_fd: dict[int, tuple[str, int]] = field(default_factory=dict)
    idents: dict[str, int] = field(default_factory=dict)
    seq: dict[tuple[str, str, int], int] = field(default_factory=dict)
    next_seq: dict[tuple[str, int], int] = field(default_factory=dict)
    by_seq: dict[tuple[str, int, int], Probe] = field(default_factory=dict)
    ok: dict[tuple[str, str, int], float] = field(default_factory=dict)
    errors: dict[tuple[str, str, int], str] = field(default_factory=dict)
    sent_at: dict[tuple[str, str, int], float] = field(default_factory=dict)
    poller: select.epoll = field(default_factory=select.epoll)

    def open(self, probes: list[Probe]) -> None:
        for p in probes:
            if p.src not in self.idents:
                self.idents[p.src] = netio.new_ident()
            if (p.src, p.ip) not in self.socks:
                sock = (netio.icmp6_socket if p.ip == 6 else netio.icmp_socket)(self.view.ns[p.src])
                netio.only_replies_and_errors(sock)
                self.socks[(p.src, p.ip)] = sock
                self.by_fd[sock.fileno()] = (p.src, p.ip)
                self.poller.register(sock.fileno(), select.EPOLLIN)
            if p.key not in self.seq:
                n = self.next_seq.get((p.src, p.ip), 0)
                self.next_seq[(p.src, p.ip)] = n + 1
                self.seq[p.key] = n
                self.by_seq[(p.src, p.ip, n)] = p

    def close(self) -> None:
        self.poller.close()
        for sock in self.socks.values():
            sock.close()

    def send(self, probes) -> None:
        """Send an echo for each unanswered probe. The kernel delivers inside sendto; one
        thread is fastest (threads measured slower: they contend for the bridge)."""
        now = time.monotonic()
        for p in probes:
            if p.key in self.ok:
                continue
            ident, seq = self.idents[p.src], self.seq[p.key]
            packet = netio.echo_request6(ident, seq) if p.ip == 6 else netio.echo_request(ident, seq)
            try:
                self.socks[(p.src, p.ip)].sendto(packet, (p.addr, 0))
                self.sent_at.setdefault(p.key, now)
            except BlockingIOError:
                pass
            except OSError as err:
                self.errors[p.key] = "no route" if err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) \
                    else netio.how(err.errno)

    def receive(self, wait: float) -> list[tuple[str, str, int]]:
        """Gather replies for up to `wait` seconds; returns the probes newly answered."""
        got = []
        for fd, _ in self.poller.poll(max(0.0, wait)):
            src, ip = self.by_fd[fd]
            ident = self.idents[src]
            t = time.monotonic()
            for their_ident, seq, source, error in netio.drain_replies(self.socks[(src, ip)]):
                p = self.by_seq.get((src, ip, seq)) if their_ident == ident else None
                if p is None:
                    continue
                if error is None:
                    if source == p.addr and p.key not in self.ok:
                        self.ok[p.key] = t - self.sent_at.get(p.key, t)
                        got.append(p.key)
                elif error.inner_dst == p.addr:
                    self.errors[p.key] = describe_error(error, self.view)
        return got

    def round(self, probes: list[Probe], deadline: float, resend: float, quiet: float | None) -> None:
        """Probe until every probe answered, the deadline, or (with `quiet`) no answer
        for that long once everything was sent. One direction of each pair goes
        first: the target learns the asker's MAC from its ARP request, so the other
        direction needs no broadcast of its own (half the ARP)."""
        self.open(probes)
        todo = [p for p in probes if p.key not in self.ok]
        forward = [p for p in todo if p.dst > p.src]
        pending, pending_forward = {p.key for p in todo}, {p.key for p in forward}
        next_send, phase_one, sends = 0.0, True, 0
        last_news = time.monotonic()
        while pending:
            now = time.monotonic()
            silent = quiet is not None and now - last_news >= quiet
            if now >= deadline or (silent and sends >= 2):
                return
            if phase_one and sends and (now >= next_send or not pending_forward or silent):
                phase_one, next_send = False, now
            if now >= next_send:
                self.send(forward if phase_one else todo)
                last_news = time.monotonic()          # silence counts from the last send
                next_send = last_news + resend
                if sends < 2:
                    # sending can take long on a busy host (the kernel delivers inside
                    # sendto): both directions get sent once and a resend period to answer
                    deadline = max(deadline, next_send + resend)
                sends += 1
            wake = min(next_send, deadline, last_news + quiet if quiet is not None else deadline)
            news = self.receive(wake - time.monotonic())
            if news:
                last_news = time.monotonic()
                pending.difference_update(news)
                pending_forward.difference_update(news)


def all_pairs(view: LabView, nodes: list[str] | None = None, timeout: float = 2.0,
              resend: float = 0.25, families: tuple[int, ...] = (4, 6)) -> Matrix:
    """L3 reachability between every ordered pair of nodes in every family both speak.
    In one round when the neighbour tables have room for every entry, else in rounds."""
    started = time.monotonic()
    nodes = sorted(nodes or view.ns)
    probes, no_address = probes_of(view, nodes, families)
    need = _entries_of(probes)
    _enough_files(len({(p.src, p.ip) for p in probes}) + len(nodes))
    run, forgetter = Run(view), Forgetter()
    notes: list[str] = []
    rounds = 0
    want = Counter(e.ip for e in need)
    try:
        tables = _tables()
        if not _fits(want, tables) and (_fits(want, tables, empty=True)
                                        or any(t.entries > t.cap // 2 for t in tables.values())):
            # forget the lab's own entries first (learnt ones only): left from an earlier
            # run, they may be what takes the room
            _open_forgetter(forgetter, view, nodes)
            forgetter.forget(need)
            tables = _tables()
        if _fits(want, tables):
            run.round(probes, started + timeout, resend, None)
            rounds = 1
        else:
            rounds = _in_rounds(run, forgetter, view, nodes, probes, tables, started + timeout, resend, notes)
    finally:
        run.close()
        forgetter.close()
    failed = {p.key: run.errors.get(p.key, "timeout") for p in probes if p.key not in run.ok}
    what = "no address" if len(families) > 1 else f"no IPv{families[0]} address"
    failed.update({(s, d, 0): f"{what} in common" for s, d in no_address})
    return Matrix(nodes, dict(run.ok), failed, time.monotonic() - started, rounds, notes)


def _tables() -> dict[int, TableUse]:
    return {ip: table_use(ip) for ip in (4, 6)}


def _fits(want: Counter, tables: dict[int, TableUse], empty: bool = False) -> bool:
    """Entries wanted per family fit the room of each table (with empty: if it held
    nothing else)."""
    return all(want[ip] <= (t._replace(entries=0) if empty else t).room() for ip, t in tables.items())


def _open_forgetter(forgetter: Forgetter, view: LabView, nodes: list[str]) -> None:
    for n in nodes:
        forgetter.open(view.ns[n], {i.ifname for i in view.ifaces.get(n, [])})


def _in_rounds(run: Run, forgetter: Forgetter, view: LabView, nodes: list[str], probes: list[Probe],
               tables: dict[int, TableUse], deadline: float, resend: float, notes: list[str]) -> int:
    """Rounds that fit the tables' room (read again after each: the table is shared),
    each one's entries forgotten after it; then one more pass over what is unanswered,
    until the deadline (its first round may wait for the lab to converge)."""
    _open_forgetter(forgetter, view, nodes)
    families = {p.ip for p in probes}
    smallest = min(tables[ip].room() for ip in families)
    block = max(1, math.isqrt(max(1, smallest) // 2))
    rounds, shrink, said = 0, {4: 1, 6: 1}, set()
    for last_pass in (False, True):
        queue = block_order([p for p in probes if p.key not in run.ok], nodes, block)
        first = True
        while queue:
            if last_pass and not first and time.monotonic() >= deadline:
                break            # the wait is spent: what is left keeps its verdict
            batch, queue = next_round(queue, {ip: max(MIN_ROOM, t.room() // shrink[ip]) for ip, t in tables.items()})
            if last_pass:
                run.round(batch, max(deadline, time.monotonic() + QUIET), resend, None)
            else:
                run.round(batch, time.monotonic() + 3600, resend, QUIET)
            forgetter.forget(_entries_of(batch))    # the last one's too: the table is the host's
            rounds, first = rounds + 1, False
            before, tables = tables, _tables()
            for ip in families:
                if before[ip].crowded() and ("crowded", ip) not in said:
                    said.add(("crowded", ip))
                    notes.append(f"the host's IPv{ip} neighbour table is nearly full ({before[ip].entries} of "
                                 f"{before[ip].cap} entries): rounds are small and slow")
                if tables[ip].overflows > before[ip].overflows:
                    notes.append(f"the kernel's IPv{ip} neighbour table overflowed during round {rounds} "
                                 f"(it is shared with the whole host); its rounds are now smaller")
                    shrink[ip] *= 2
    return rounds


def _enough_files(sockets: int) -> None:
    """Raise the soft limit on open files (to at most the hard one) so that a socket per
    node, family and namespace fits: 1,000 nodes need 2,000 or more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = sockets + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        top = want if hard == resource.RLIM_INFINITY else min(hard, want)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, top), hard))
