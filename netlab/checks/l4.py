"""L4 probes: TCP connect and UDP echo to node:port over IPv4 or IPv6, and the temporary
listeners the checker opens in the target when nobody serves the port there.

A temporary listener is a socket made in the target's namespace that takes IPv4 and IPv6
alike (netlab.core.responder.listening_socket); if the port is taken (a declared service, or the
node's own server), the probe talks to that instead. Probes that need the same temporary
port on the same node take turns (a lock per port).
"""
from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from ..core import responder
from . import netio
from .labinfo import LabView
from .result import Outcome
from .spec import CheckSpec

_locks: dict[tuple[str, str, int], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(ns: str, proto: str, port: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((ns, proto, port), threading.Lock())


@dataclass
class Listener:
    sock: socket.socket | None          # None: the port is served by someone else
    ns: str | None


@contextlib.contextmanager
def temporary_listener(view: LabView, node: str | None, proto: str, port: int):
    """Yields a Listener: our own socket (IPv4 and IPv6) on the port in `node`, or None in
    it if the port is already served (or the target is not a lab node, or runs on another
    host: there only a declared service answers)."""
    ns = view.ns.get(node) if node and node not in view.remote else None
    if ns is None:
        yield Listener(None, None)
        return
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with _lock(ns, proto, port):
        try:
            sock = responder.listening_socket(kind, port, lambda family, k: netio.socket_in(ns, family, k))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            yield Listener(None, ns)
            return
        try:
            yield Listener(sock, ns)
        finally:
            sock.close()


def target_node(view: LabView, spec: CheckSpec) -> str | None:
    return spec.dst if spec.dst in view.ns else view.owner.get(spec.dst or "")


def family(dst: str) -> int:
    return socket.AF_INET6 if ":" in dst else socket.AF_INET


def tcp_connect(ns: str, dst: str, port: int, timeout: float,
                view: LabView | None = None) -> tuple[socket.socket | None, str]:
    """A connected socket, or None and how the connection was blocked (the ICMP error
    and who sent it, when one came back)."""
    with netio.UnreachWatch(ns, v6=":" in dst) as watch:
        sock = netio.socket_in(ns, family(dst), socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex((dst, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            _, ready, _ = select.select([], [sock], [], timeout)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if ready else errno.ETIMEDOUT
        if err:
            sock.close()
            waited = f"timeout (no answer in {timeout:g}s)" if err == errno.ETIMEDOUT else netio.how(err)
            return None, watch.why(dst, port, view.name_of if view else str) or waited
    return sock, "connected"


def accept_from(listener: socket.socket, timeout: float) -> tuple[socket.socket, tuple] | None:
    ready, _, _ = select.select([listener], [], [], timeout)
    if not ready:
        return None
    try:
        return listener.accept()
    except BlockingIOError:
        return None


def tcp(spec: CheckSpec, view: LabView) -> Outcome:
    dst, _ = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    with temporary_listener(view, target_node(view, spec), "tcp", spec.port) as lis:
        sock, how = tcp_connect(view.ns[spec.src], dst, spec.port, spec.timeout, view)
        if sock is None:
            return Outcome.blocked(how)
        sock.close()
        served = "service"
        if lis.sock:
            accepted = accept_from(lis.sock, 0.05)
            if accepted:
                accepted[0].close()
                served = "temporary listener"
    return Outcome(True, True, f"connected to {responder.host_port(dst, spec.port)} ({served})")


def udp_exchange(ns: str, dst: str, port: int, payload: bytes, timeout: float,
                 listener: socket.socket | None, who=str) -> tuple[bytes | None, str, str | None]:
    """Send `payload` (up to 3 times) and wait for the answer. Our own listener, if any,
    echoes from the same loop. Returns (reply, how, address the listener saw)."""
    sock = netio.socket_in(ns, family(dst), socket.SOCK_DGRAM)
    seen = None
    with sock, netio.UnreachWatch(ns, v6=":" in dst) as watch:
        sock.setblocking(False)
        try:
            sock.connect((dst, port))
        except OSError as err:
            return None, netio.how(err.errno), None
        deadline = time.monotonic() + timeout
        sends, next_send = 0, 0.0
        readable = [sock] + ([listener] if listener else [])
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None, watch.why(dst, port, who) or f"timeout (no answer in {timeout:g}s)", seen
            if now >= next_send and sends < 3:
                try:
                    sock.send(payload)
                except OSError as err:
                    return None, netio.how(err.errno), seen
                sends += 1
                next_send = now + timeout / 3
            ready, _, _ = select.select(readable, [], [], max(0.0, min(deadline, next_send if sends < 3 else deadline) - now))
            if listener in ready:
                try:
                    data, peer = listener.recvfrom(65536)
                    seen = responder.peer_host(peer)
                    listener.sendto(data, peer)
                except BlockingIOError:
                    pass
            if sock in ready:
                try:
                    return sock.recv(65536), "answered", seen
                except BlockingIOError:
                    pass
                except OSError as err:
                    how = watch.why(dst, port, who) or (
                        "refused (ICMP port unreachable)" if err.errno == errno.ECONNREFUSED else netio.how(err.errno))
                    return None, how, seen


def udp(spec: CheckSpec, view: LabView) -> Outcome:
    dst, _ = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    nonce = b"netlab-probe " + os.urandom(6).hex().encode()
    with temporary_listener(view, target_node(view, spec), "udp", spec.port) as lis:
        reply, how, seen = udp_exchange(view.ns[spec.src], dst, spec.port, nonce, spec.timeout, lis.sock,
                                        view.name_of)
    if reply is None:
        return Outcome.blocked(how)
    served = "temporary listener" if seen else "service"
    good = reply == nonce
    return Outcome(True, good, f"{responder.host_port(dst, spec.port)} answered ({served})" +
                   ("" if good else f", but not with our datagram: {reply[:40]!r}"))


def seen_from(spec: CheckSpec, view: LabView, dst: str) -> tuple[str | None, str]:
    """The source address the target saw for a connection from spec.src: (address, how);
    None when blocked, "" when whoever answered cannot tell. Our temporary listener sees
    the peer itself; netlab's responders answer NETLAB? with it."""
    ns = view.ns[spec.src]
    with temporary_listener(view, target_node(view, spec), spec.proto, spec.port) as lis:
        if spec.proto == "udp":
            reply, how, peer = udp_exchange(ns, dst, spec.port, responder.QUERY, spec.timeout, lis.sock,
                                            view.name_of)
            if reply is None:
                return None, f"blocked: {how}"
            if peer:
                return peer, "temporary listener"
            return responder.parse_seen(reply) or "", "service"
        sock, how = tcp_connect(ns, dst, spec.port, spec.timeout, view)
        if sock is None:
            return None, f"blocked: {how}"
        with sock:
            accepted = accept_from(lis.sock, 0.05) if lis.sock is not None else None
            if accepted is not None:
                accepted[0].close()
                return responder.peer_host(accepted[1]), "temporary listener"
            sock.setblocking(True)
            sock.settimeout(spec.timeout)
            try:
                sock.sendall(responder.QUERY + b"\n")
                return responder.parse_seen(sock.recv(4096)) or "", "service"
            except OSError as err:
                return "", f"the service did not answer NETLAB? ({netio.how(err.errno or errno.ETIMEDOUT)})"
