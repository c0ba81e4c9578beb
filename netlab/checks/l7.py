"""L7 probes and the NAT probe: DNS (dnspython messages over a UDP socket made in the
source node), HTTP (a plain HTTP/1.0 request on a TCP socket made there), and `seen_as`
(the source address the far end saw). HTTP and NAT go over IPv6 like the other checks
(`ip: 6`, an IPv6 literal, an IPv6-only node; for NAT also an IPv6 `seen_as`)."""
from __future__ import annotations

import errno
import select
import socket
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename

from ..core import responder
from . import netio
from .l4 import accept_from, seen_from, target_node, tcp_connect, temporary_listener
from .labinfo import LabView, is_ip, is_ip6
from .result import Outcome
from .spec import CheckSpec


def qualified(name: str, domain: str) -> str:
    """Names are relative to the lab's domain ('web', 'pc1.lan', '_rdzv._tcp', '@' for the
    domain itself) unless they end with a dot or with the domain; an IPv4 or IPv6 address
    becomes its in-addr.arpa or ip6.arpa name."""
    if name.endswith("."):
        return name
    if is_ip(name) or is_ip6(name):      # a PTR question asked by address
        return dns.reversename.from_address(name).to_text()
    if name == "@":
        return f"{domain}."
    return f"{name}." if name == domain or name.endswith("." + domain) else f"{name}.{domain}."


def dns_check(spec: CheckSpec, view: LabView) -> Outcome:
    ip = spec.opts.get("ip")
    server = (view.target(spec.src, spec.opts["server"], ip)[0] if spec.opts.get("server")
              else view.dns_server(spec.src, ip))
    if not server:
        return Outcome.cannot("the lab has no DNS server (deploy one, or give server:)")
    name = qualified(spec.opts["name"], view.domain)
    rdtype = dns.rdatatype.from_text(spec.opts.get("type", "A"))
    query = dns.message.make_query(name, rdtype)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    sock = netio.socket_in(view.ns[spec.src], family, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        reply, how = _exchange(sock, server, query, spec.timeout)
    if reply is None:
        return Outcome.blocked(how)
    rcode = reply.rcode()
    answers = answer_texts(reply, rdtype, view.domain)
    shown = sorted({forms[0] for forms in answers})
    got = "NXDOMAIN" if rcode == dns.rcode.NXDOMAIN else (", ".join(shown) or dns.rcode.to_text(rcode) + ", no answer")
    what = "" if rdtype == dns.rdatatype.A else f" {dns.rdatatype.to_text(rdtype)}"
    detail = f"{name}{what} -> {got} (server {server})"
    expect, any_of = spec.expect, spec.opts.get("any_of")
    known = {form for forms in answers for form in forms}
    if expect == "nxdomain":
        good = rcode == dns.rcode.NXDOMAIN
    elif any_of:
        good = bool(set(any_of) & known)
        expect = [" or ".join(any_of)]
    elif expect:
        good = rcode == dns.rcode.NOERROR and all(e.rstrip(".") in known for e in expect)
    else:
        good = rcode == dns.rcode.NOERROR and bool(answers)
    if not good:
        detail += f"; expected {expect if expect == 'nxdomain' else ', '.join(expect) if expect else 'an answer'}"
    return Outcome(True, good, detail)


def _names(name, domain: str) -> tuple[str, ...]:
    """A name as written in expectations: full (no trailing dot), and short in the lab domain."""
    full = name.to_text().rstrip(".")
    short = full[:-len(domain) - 1] if full.endswith("." + domain) else None
    return (full, short) if short else (full,)


def answer_texts(reply, rdtype, domain: str) -> list[tuple[str, ...]]:
    """Each answer of the asked type in the forms an `expect:` may use: an address;
    a name, full or short; SRV as target:port; TXT as its text; MX as its host."""
    out = []
    for rrset in reply.answer:
        if rrset.rdtype != rdtype:
            continue
        for r in rrset:
            if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                out.append((r.address,))
            elif rdtype == dns.rdatatype.SRV:
                out.append(tuple(f"{n}:{r.port}" for n in _names(r.target, domain)))
            elif rdtype == dns.rdatatype.MX:
                out.append(_names(r.exchange, domain))
            elif rdtype == dns.rdatatype.TXT:
                parts = [part.decode(errors="replace") for part in r.strings]
                out.append((" ".join(f'"{p}"' for p in parts), "".join(parts), *parts))
            else:
                out.append(_names(r.target, domain))
    return out


def _exchange(sock: socket.socket, server: str, query, timeout: float):
    wire = query.to_wire()
    try:
        sock.connect((server, 53))          # connected: ICMP port unreachable is reported
    except OSError as err:
        return None, netio.how(err.errno)
    deadline = time.monotonic() + timeout
    sends, next_send = 0, 0.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None, f"timeout (no answer in {timeout:g}s)"
        if now >= next_send and sends < 3:
            try:
                sock.send(wire)
            except OSError as err:
                return None, netio.how(err.errno)
            sends += 1
            next_send = now + timeout / 3
        ready, _, _ = select.select([sock], [], [], max(0.0, min(deadline, next_send) - now))
        if not ready:
            continue
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            continue
        except OSError as err:
            how = "refused (ICMP port unreachable)" if err.errno == errno.ECONNREFUSED else netio.how(err.errno)
            return None, how
        try:
            reply = dns.message.from_wire(data)
        except Exception:
            continue
        if reply.id == query.id:
            return reply, "answered"


TEMPORARY = "netlab temporary listener"


def _serve(listener: socket.socket, stop: threading.Event, timeout: float) -> None:
    """Answer HTTP requests on our temporary listener until told to stop."""
    while not stop.is_set():
        accepted = accept_from(listener, 0.02)
        if accepted is None:
            continue
        conn, peer = accepted
        with conn:
            conn.settimeout(timeout)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(responder.http_response(TEMPORARY, peer, data.startswith(b"HEAD")))
            except OSError:
                pass


def http(spec: CheckSpec, view: LabView) -> Outcome:
    dst, _ = view.target(spec.src, spec.dst, spec.opts.get("ip"))
    with temporary_listener(view, target_node(view, spec), "tcp", spec.port) as lis:
        stop = threading.Event()
        server = None
        if lis.sock is not None:
            server = threading.Thread(target=_serve, args=(lis.sock, stop, spec.timeout), daemon=True)
            server.start()
        try:
            status, body, how = _get(view.ns[spec.src], dst, spec, view)
        finally:
            stop.set()
            if server is not None:
                server.join()
    if status is None:
        return Outcome.blocked(how)
    ours = status == 200 and f"responder on {TEMPORARY}" in body
    detail = f"{spec.opts['url']} -> {status}" + (" (temporary listener)" if ours else "")
    good = status == spec.expect
    if not good:
        detail += f"; expected {spec.expect}"
    want = spec.opts.get("body")
    if want is not None and want not in body:
        good = False
        detail += f"; body lacks {want!r}"
    return Outcome(True, good, detail)


def _get(ns: str, dst: str, spec: CheckSpec, view: LabView) -> tuple[int | None, str, str]:
    sock, how = tcp_connect(ns, dst, spec.port, spec.timeout, view)
    if sock is None:
        return None, "", how
    with sock:
        sock.setblocking(True)
        sock.settimeout(spec.timeout)
        request = (f"GET {spec.opts['path']} HTTP/1.0\r\nHost: {host_header(spec.opts['host'], spec.port)}\r\n"
                   f"User-Agent: netlab-check\r\nConnection: close\r\n\r\n").encode()
        data = b""
        try:
            sock.sendall(request)
            while len(data) < (1 << 20):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as err:
            if not data:
                return None, "", f"connected, but no HTTP answer ({netio.how(err.errno or errno.ETIMEDOUT)})"
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None, "", f"connected, but the answer is not HTTP: {data[:40]!r}"
    return int(parts[1]), body.decode(errors="replace"), "answered"


def host_header(host: str, port: int) -> str:
    """The Host header for a URL's host: brackets around an IPv6 literal, and the port
    unless it is 80."""
    if port != 80:
        return responder.host_port(host, port)
    return f"[{host}]" if ":" in host else host


def nat(spec: CheckSpec, view: LabView) -> Outcome:
    seen_as = spec.opts["seen_as"]
    ip = spec.opts.get("ip") or (6 if is_ip6(seen_as) else None)   # seen with an IPv6 source: over IPv6
    dst, _ = view.target(spec.src, spec.dst, ip)
    if seen_as in view.ns:           # any of the node's addresses, IPv4 or IPv6
        want_set = {a for i in view.ifaces.get(seen_as, []) for a in (i.address, i.address6) if a}
    else:
        want_set = {seen_as}
    seen, how = seen_from(spec, view, dst)
    if seen is None:
        return Outcome.blocked(how.removeprefix("blocked: "))
    if not seen:
        return Outcome.cannot(f"{responder.host_port(dst, spec.port)}/{spec.proto} answered, but cannot tell "
                              f"the peer address it saw ({how}; declare the port in services:)")
    good = seen in want_set
    return Outcome(True, good, f"{responder.host_port(spec.dst, spec.port)}/{spec.proto} saw {seen} ({how})" +
                   ("" if good else f"; expected {spec.opts['seen_as']}"))
