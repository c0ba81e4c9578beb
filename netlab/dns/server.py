"""The lab DNS server's steps and executors: the server's addresses on the bridges
(`dns-listen`), its zone file (`dns-zone`) and the dnsmasq process (`dns-server`). What
nodes are told (`dns-client`) lives in resolv.py.

dnsmasq runs inside the lab namespace `<lab>--lab` (the one holding every bridge), so it
is on-link on every segment. Its files live in the lab's state directory: dns.conf,
dns.hosts (re-read on SIGHUP, so nodes come and go without a restart) and dns.pid. It is
started and stopped by PID; the PID and its start time (so a recycled PID is never
signalled) are kept in the lab state extras under "dns".
"""
from __future__ import annotations

import errno
import grp
import os
import shutil
import signal
import time
from typing import ClassVar

from ..core import kernel, state
from ..core.apply import Context, Executor, executor
from ..core.errors import ApplyError
from ..core.plan import Step, step
from ..core.processes import (
    adopting,
    alive,
    reap_daemon_parent,
    record,
    start_time,
    stop,
    wait,
    watch,
)

START_TIMEOUT = 10.0
IFA_F_NODAD = 0x02


@step
class DnsListen(Step):
    """The DNS server's address(es) on one bridge, plus the routes it needs to answer
    nodes that reach it only through routers (from point-to-point links)."""
    type: ClassVar[str] = "dns-listen"
    lab_ns: str
    network: str
    cidr: str                           # IPv4, or IPv6 on an IPv6-only network
    cidr6: str | None = None            # IPv6 beside the IPv4 one, on a dual-stack network
    routes: tuple = ()                  # "dst via" strings (either family), out of this bridge
    mac: str | None = None              # fixed on the bridge: else it follows its lowest
                                        # port's MAC and changes when nodes come and go,
                                        # leaving the server's old MAC in nodes' ARP caches

    key = property(lambda s: ("dns-listen", s.lab_ns, s.network))
    parents = property(lambda s: (("iface", s.lab_ns, s.network),))

    @property
    def cidrs(self) -> tuple[str, ...]:
        return (self.cidr, self.cidr6) if self.cidr6 else (self.cidr,)

    def describe(self) -> str:
        text = f"dns     {self.lab_ns}:{self.network} server address {' '.join(self.cidrs)}"
        return text + "".join(f", route {r.replace(' ', ' via ')}" for r in self.routes)


@step
class DnsZone(Step):
    """The lab's names and addresses (a hosts file dnsmasq reads, first name = PTR)."""
    type: ClassVar[str] = "dns-zone"
    lab: str
    domain: str
    lines: tuple = ()

    key = property(lambda s: ("dns-zone", s.lab))

    def describe(self) -> str:
        return f"dns     zone {self.domain}: {len(self.lines)} addresses"


@step
class DnsServer(Step):
    """dnsmasq in the lab namespace, authoritative for the lab domain, never forwarding."""
    type: ClassVar[str] = "dns-server"
    lab: str
    lab_ns: str
    domain: str
    listen: tuple = ()                  # (network, address) as "net=addr" strings
    options: tuple = ()                 # further dnsmasq config lines (records, ttl, zones)

    key = property(lambda s: ("dns-server", s.lab))

    @property
    def parents(self):
        networks = dict.fromkeys(item.split("=", 1)[0] for item in self.listen)
        return (("netns", self.lab_ns),) + tuple(("dns-listen", self.lab_ns, net) for net in networks)

    def describe(self) -> str:
        addresses = " ".join(item.split("=", 1)[1] for item in self.listen)
        return f"dns     server {self.lab_ns} for {self.domain} on {addresses}"


# --- the process ------------------------------------------------------------------

def files(lab: str) -> dict[str, str]:
    base = state.lab_dir(lab)
    return {k: os.path.join(base, f"dns.{k}") for k in ("conf", "hosts", "pid", "log")}






def server_conf(s: DnsServer) -> str:
    paths = files(s.lab)
    lines = [f"# netlab lab={s.lab}: the lab's DNS server (dnsmasq), authoritative for {s.domain}",
             "no-resolv", "no-hosts", "no-poll", "domain-needed", "bogus-priv",
             "bind-interfaces", "localise-queries",
             f"addn-hosts={paths['hosts']}", f"pid-file={paths['pid']}",
             f"log-facility={paths['log']}", "user=nobody", f"group={_nobody_group()}"]
    lines += [f"listen-address={item.split('=', 1)[1]}" for item in s.listen]
    lines += list(s.options)
    return "\n".join(line for line in lines if line) + "\n"


def _nobody_group() -> str:
    """The unprivileged group dnsmasq drops to: Debian's nogroup, else nobody."""
    try:
        grp.getgrnam("nogroup")
        return "nogroup"
    except KeyError:
        return "nobody"


def dnsmasq_binary() -> str | None:
    return shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)


def start(s: DnsServer) -> dict:
    """Start dnsmasq inside the lab namespace; it returns once it serves (or failed)."""
    binary = dnsmasq_binary()
    if binary is None:
        raise ApplyError("dns server: dnsmasq is not installed (apt-get install dnsmasq-base), "
                         "or turn the lab's DNS off with `dns: false`")
    paths = files(s.lab)
    os.makedirs(state.lab_dir(s.lab), exist_ok=True)
    os.chmod(state.lab_dir(s.lab), 0o755)
    if not os.path.exists(paths["hosts"]):
        _write(paths["hosts"], "")
    _write(paths["conf"], server_conf(s))
    _remove(paths["pid"])
    # dnsmasq daemonizes: adopted, it is this process's child (not PID 1's) while this
    # process lives, so a lab brought up and down in one process reaps it at once
    import subprocess                   # here: `netlab down` starts nothing
    with kernel.entered(s.lab_ns), adopting():
        try:
            done = subprocess.run([binary, f"--conf-file={paths['conf']}"], capture_output=True,
                                  text=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ApplyError(f"dns server in {s.lab_ns}: dnsmasq did not start in {START_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ApplyError(f"dns server in {s.lab_ns}: {why.removeprefix('dnsmasq: ')}")
    pid = _read_pid(paths["pid"])
    if pid is not None:
        reap_daemon_parent(pid)
        watch(pid)                      # reaped when it exits, whoever stops it
    if pid is None or start_time(pid) is None:
        if pid is not None and record(pid):
            wait([record(pid)], 0)      # reaped, if it was adopted and has exited
        raise ApplyError(f"dns server in {s.lab_ns}: dnsmasq exited right after starting "
                         f"(log: {paths['log']})")
    return {"pid": pid, "start": start_time(pid), "ns": s.lab_ns, "conf": paths["conf"]}


def _read_pid(path: str) -> int | None:
    deadline = time.monotonic() + 2.0
    while True:
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def record_from_pidfile(lab: str) -> dict | None:
    """The running server found by its PID file, if that process runs our config."""
    paths = files(lab)
    pid = _read_pid_now(paths["pid"])
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return None
    if paths["conf"] not in cmdline:
        return None
    return {"pid": pid, "start": start_time(pid)}


def _read_pid_now(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None




def reload(record: dict | None) -> None:
    """Make a running server re-read its zone file (SIGHUP)."""
    if alive(record):
        os.kill(record["pid"], signal.SIGHUP)


# --- executors --------------------------------------------------------------------

@executor("dns-listen")
class DnsListenExecutor(Executor):
    def create(self, ctx: Context, s: DnsListen) -> None:
        ipr = ctx.ipr(s.lab_ns)
        index = ctx.index(s.lab_ns, s.network)
        if s.mac:
            ipr.link("set", index=index, address=s.mac)
        for cidr in s.cidrs:
            address, prefix = cidr.split("/")
            extra = {}
            if ":" in address:          # the lab namespace has IPv6 off: on for this bridge only
                with kernel.entered(s.lab_ns):
                    kernel.write_sysctl(f"net.ipv6.conf.{s.network}.accept_dad", "0")   # link-local too
                    kernel.write_sysctl(f"net.ipv6.conf.{s.network}.disable_ipv6", "0")
                extra["flags"] = IFA_F_NODAD     # usable at once, for dnsmasq to bind
            ipr.addr("add", index=index, address=address, prefixlen=int(prefix), **extra)
        for route in s.routes:
            dst, via = route.split()
            ipr.route("add", dst=dst, gateway=via, oif=index)

    def delete(self, ctx: Context, s: DnsListen) -> None:
        if not kernel.netns_exists(s.lab_ns):
            return
        ipr = ctx.ipr(s.lab_ns)
        index = ctx.index(s.lab_ns, s.network)
        for route in s.routes:
            dst, via = route.split()
            try:
                ipr.route("del", dst=dst, gateway=via, oif=index)
            except OSError as err:
                if getattr(err, "code", None) not in (errno.ESRCH, errno.ENOENT):
                    raise
        for cidr in s.cidrs:
            address, prefix = cidr.split("/")
            ipr.addr("del", index=index, address=address, prefixlen=int(prefix))


@executor("dns-zone")
class DnsZoneExecutor(Executor):
    def create(self, ctx: Context, s: DnsZone) -> None:
        os.makedirs(state.lab_dir(s.lab), exist_ok=True)
        _write(files(s.lab)["hosts"], "".join(line + "\n" for line in s.lines))
        reload(ctx.extras.get("dns"))

    def delete(self, ctx: Context, s: DnsZone) -> None:
        _remove(files(s.lab)["hosts"])


@executor("dns-server")
class DnsServerExecutor(Executor):
    def create(self, ctx: Context, s: DnsServer) -> None:
        stop(ctx.extras.get("dns"))
        ctx.extras["dns"] = start(s)

    def delete(self, ctx: Context, s: DnsServer) -> None:
        stop(ctx.extras.pop("dns", None) or record_from_pidfile(s.lab))
        for key in ("conf", "pid", "log"):
            _remove(files(s.lab)[key])


def _write(path: str, text: str) -> None:
    tmp = path + ".netlab-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
