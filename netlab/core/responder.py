"""netlab's own responders, run as one small process inside a node for its `services:`.

    python3 -m netlab.core.responder --netns NS --node NAME http:80 tcp:9000 udp:7

- http:PORT answers every GET/HEAD with 200, a body naming the node and the peer address
  it saw, and the header X-Netlab-Seen.
- tcp:PORT echoes what it receives; the line `NETLAB?` gets `NETLAB seen=IP:PORT` back.
- udp:PORT echoes each datagram; the datagram `NETLAB?` gets `NETLAB seen=IP:PORT` back.
The peer address is what the node saw, so NAT checks (`seen_as`) can compare it. Each port
takes IPv4 and IPv6 alike (one IPv6 socket with IPV6_V6ONLY off); an IPv4 peer is shown as
IPv4 (no ::ffff: prefix), an IPv6 one as [IP]:PORT.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import ipaddress
import os
import signal
import socket

QUERY = b"NETLAB?"
SEEN_PREFIX = b"NETLAB seen="


def peer_host(peer: tuple) -> str:
    """The address of a socket peer as the node saw it: IPv4 peers of a dual-stack socket
    lose their ::ffff: prefix, IPv6 ones their %scope."""
    host = peer[0].split("%")[0]
    if ":" in host:
        mapped = ipaddress.IPv6Address(host).ipv4_mapped
        return str(mapped) if mapped else host
    return host


def host_port(host: str, port: int) -> str:
    """IP:PORT, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def seen_reply(peer: tuple) -> bytes:
    return SEEN_PREFIX + host_port(peer_host(peer), peer[1]).encode() + b"\n"


def parse_seen(data: bytes) -> str | None:
    """The address from a `NETLAB seen=IP:PORT` (or `[IPv6]:PORT`) reply, or None."""
    line = data.split(b"\n", 1)[0].strip()
    if not line.startswith(SEEN_PREFIX):
        return None
    return line[len(SEEN_PREFIX):].decode(errors="replace").rsplit(":", 1)[0].strip("[]")


def http_response(node: str, peer: tuple, head: bool = False) -> bytes:
    host = peer_host(peer)
    body = f"netlab http responder on {node}\nseen {host_port(host, peer[1])}\n".encode()
    headers = (f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
               f"X-Netlab-Seen: {host}\r\nX-Netlab-Node: {node}\r\nConnection: close\r\n\r\n")
    return headers.encode() + (b"" if head else body)


async def _http(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    try:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(http_response(node, peer, request.startswith(b"HEAD")))
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
        pass
    finally:
        writer.close()


async def _tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    try:
        while data := await reader.read(65536):
            if data.strip() == QUERY:
                writer.write(seen_reply(peer))
            else:
                writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(seen_reply(addr) if data.strip() == QUERY else data, addr)


def listening_socket(kind: int, port: int, make=socket.socket) -> socket.socket:
    """A non-blocking socket on `port` for IPv4 and IPv6 peers alike: one IPv6 socket with
    IPV6_V6ONLY off, or an IPv4 one where the kernel has no IPv6. `make(family, kind)`
    creates the socket (in the right namespace). EADDRINUSE if either family's port is
    taken."""
    try:
        sock, any_address = make(socket.AF_INET6, kind), "::"
    except OSError as err:
        if err.errno != errno.EAFNOSUPPORT:
            raise
        sock, any_address = make(socket.AF_INET, kind), "0.0.0.0"
    try:
        if kind == socket.SOCK_STREAM:       # past TIME_WAIT (for UDP it would share the port)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((any_address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _ready(fd: int | None, message: str) -> None:
    if fd is not None:
        os.write(fd, message.encode() + b"\n")
        os.close(fd)


async def serve(node: str, services: list[tuple[str, int]], ready_fd: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    for proto, port in services:
        try:
            sock = listening_socket(socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM, port)
        except OSError as err:
            _ready(ready_fd, f"cannot listen on {proto}:{port}: {err.strerror}")
            raise SystemExit(1)
        if proto == "udp":
            await loop.create_datagram_endpoint(_UdpEcho, sock=sock)
        elif proto == "http":
            await asyncio.start_server(lambda r, w: _http(node, r, w), sock=sock)
        else:
            await asyncio.start_server(_tcp_echo, sock=sock)
    _ready(ready_fd, "ready")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, 0x40000000) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="netlab.core.responder")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--ready-fd", type=int, help="write 'ready' (or why not) here once listening")
    parser.add_argument("services", nargs="+", help="proto:port (http, tcp or udp)")
    args = parser.parse_args(argv)
    try:
        enter_netns(args.netns)
    except OSError as err:
        _ready(args.ready_fd, f"cannot enter namespace {args.netns}: {err.strerror}")
        raise SystemExit(1)
    services = []
    for item in args.services:
        proto, _, port = item.partition(":")
        services.append((proto, int(port)))
    asyncio.run(serve(args.node, services, args.ready_fd))


if __name__ == "__main__":
    main()
