"""`netlab capture LAB NODE:IF [-w FILE.pcap] [--count N] [--filter EXPR] [--timeout S]`:
the command line of netlab.capture. Exit status: 0 done, 1 the lab is not there, 2 bad
arguments (an unknown node or interface, a filter that does not compile)."""
from __future__ import annotations

import os
import time

from .sniff import SUBSET_HELP, Capture, CaptureError, own_pcap, resolve, run, summary


def _command():
    import sys

    import click

    @click.command(name="capture")
    @click.argument("lab")
    @click.argument("where", metavar="NODE:IF")
    @click.option("-w", "--write", "path", type=click.Path(dir_okay=False, allow_dash=True),
                  help="Write a pcap here ('-' for stdout: | wireshark -k -i -); "
                       "without it, print one line per packet.")
    @click.option("-c", "--count", type=click.IntRange(1), help="Stop after N packets.")
    @click.option("-f", "--filter", "expr", help="A tcpdump filter expression (" + SUBSET_HELP + ").")
    @click.option("-t", "--timeout", type=click.FloatRange(0, min_open=True), help="Stop after S seconds.")
    def capture(lab, where, path, count, expr, timeout):
        """Record packets on a lab interface (NODE:IF, a network's bridge, or a node's only
        interface) to a pcap that Wireshark opens. Ctrl-C stops."""
        from ..core.cli import lab_name
        if os.geteuid() != 0:
            click.echo("netlab: netlab capture needs root (it opens a packet socket in the lab)", err=True)
            sys.exit(1)
        lab = lab_name(lab)
        try:
            ns, ifname = resolve(lab, where)
            cap = Capture(ns, ifname, expr).open()
        except CaptureError as e:
            click.echo(f"netlab: {e}", err=True)
            sys.exit(e.code)
        to_stdout = path == "-"
        out = sys.stdout.buffer if to_stdout else (open(path, "wb") if path else None)
        def line(ts: int, frame: bytes, outgoing: bool) -> None:
            stamp = time.strftime("%H:%M:%S", time.localtime(ts // 1_000_000_000))
            click.echo(f"{stamp}.{ts % 1_000_000_000 // 1000:06d} {ifname} "
                       f"{summary(frame, cap.linktype, outgoing)}")
        printer = line if out is None else None
        click.echo(f"capturing on {ns}:{ifname}" + (f" (filter {expr!r})" if expr else "")
                   + (f" to {path}" if path and not to_stdout else "") + "; Ctrl-C stops", err=True)
        try:
            seen = run(cap, out, count, timeout, printer)
        except BrokenPipeError:
            seen = -1
        finally:
            dropped = cap.drops()
            cap.close()
            if out is not None and not to_stdout:
                out.close()
                own_pcap(path)
        if seen >= 0:
            click.echo(f"{seen} packet(s) captured" + (f", {dropped} dropped by the kernel (the reader fell behind)"
                                                       if dropped else ""), err=True)

    return capture


capture_command = _command()
