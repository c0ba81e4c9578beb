"""Several hosts on one machine, for tests, benchmarks and trying multi-host labs out:
each simulated host is a network namespace with an underlay address on a shared bridge
(in a namespace of its own: Docker's br_netfilter never sees it), runs one member of a
3-member etcd cluster and one `netlab agent` with its own state directory.

    with SimCluster("mhs", hosts=3) as sim:
        sim.netlab("up", "topologies/multihost.yml")      # the controller, from host 1

Everything it starts is stopped by PID and everything it makes is removed on exit,
also when the block fails. Addresses live only inside these namespaces.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from ..core import kernel

SUBNET = "10.88.{}.{}"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: str

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def output(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


@dataclass
class SimCluster:
    prefix: str = "mhs"
    hosts: int = 3
    etcd_members: int = 3
    ttl: int = 3
    net: int = 0                                  # third octet (IPv4) or group (IPv6) of the underlay
    family: int = 4                               # the underlay's IP version
    workdir: str = ""
    agents: dict[str, Proc] = field(default_factory=dict)
    etcd: dict[str, Proc] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    # -- names

    @property
    def names(self) -> list[str]:
        return [f"h{i}" for i in range(1, self.hosts + 1)]

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        if self.family == 6:
            return f"fd00:88:{self.net}::{int(host[1:])}"
        return SUBNET.format(self.net, int(host[1:]))

    def url(self, host: str, port: int) -> str:
        address = self.address(host)
        return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"

    def state_dir(self, host: str) -> str:
        return os.path.join(self.workdir, "state", host)

    @property
    def endpoints(self) -> str:
        return ",".join(self.url(h, 2379) for h in self.names[:self.etcd_members])

    # -- life cycle

    def __enter__(self) -> SimCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.workdir = self.workdir or tempfile.mkdtemp(prefix=f"netlab-{self.prefix}-")
        os.chmod(self.workdir, 0o755)         # dnsmasq reads its files here as nobody
        self._underlay()
        for host in self.names[:self.etcd_members]:
            self.start_etcd(host, new=True)
        self.wait_etcd()
        for host in self.names:
            self.start_agent(host)
        self.wait_agents(self.names)

    def _underlay(self) -> None:
        from pyroute2 import IPRoute
        switch = f"{self.prefix}-ul"
        with kernel.created(switch):
            with IPRoute() as ipr:
                ipr.link("set", index=1, state="up")
                ipr.link("add", ifname="br0", kind="bridge", state="up")
        self.made.append(switch)
        for host in self.names:
            name = self.ns(host)
            with kernel.created(name):
                with IPRoute() as ipr:
                    ipr.link("set", index=1, state="up")
            self.made.append(name)
            with kernel.entered(switch):
                with IPRoute() as ipr:
                    fd = os.open(kernel.netns_path(name), os.O_RDONLY)
                    try:
                        ipr.link("add", ifname=f"p{host}", kind="veth",
                                 peer={"ifname": "ul0", "net_ns_fd": fd})
                    finally:
                        os.close(fd)
                    ipr.link("set", ifname=f"p{host}", master=ipr.link_lookup(ifname="br0")[0], state="up")
            with kernel.entered(name):
                if self.family == 6:           # usable at once: no duplicate address detection
                    kernel.write_sysctl("net.ipv6.conf.ul0.accept_dad", "0")
                with IPRoute() as ipr:
                    index = ipr.link_lookup(ifname="ul0")[0]
                    ipr.addr("add", index=index, address=self.address(host),
                             prefixlen=64 if self.family == 6 else 24)
                    ipr.link("set", index=index, state="up")

    def _spawn(self, name: str, host: str, argv: list[str], env: dict | None = None) -> Proc:
        log = os.path.join(self.workdir, f"{name}.log")
        out = open(log, "ab")
        popen = subprocess.Popen(["nsenter", f"--net={kernel.netns_path(self.ns(host))}", "--", *argv],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})})
        out.close()
        return Proc(name, popen, log)

    def start_etcd(self, host: str, new: bool = False) -> None:
        cluster = ",".join(f"{h}={self.url(h, 2380)}" for h in self.names[:self.etcd_members])
        client, peer = self.url(host, 2379), self.url(host, 2380)
        argv = ["etcd", "--name", host, "--data-dir", os.path.join(self.workdir, f"etcd-{host}"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, "--initial-cluster-token", self.prefix,
                "--initial-cluster-state", "new", "--heartbeat-interval", "100",
                "--election-timeout", "1000", "--log-level", "warn"]
        self.etcd[host] = self._spawn(f"etcd-{host}", host, argv)

    def start_agent(self, host: str) -> None:
        argv = [sys.executable, "-m", "netlab", "agent", "--etcd", self.endpoints, "--host", host,
                "--state-dir", self.state_dir(host), "--ttl", str(self.ttl)]
        self.agents[host] = self._spawn(f"agent-{host}", host, argv)

    def wait_etcd(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            probe = self.run_in("h1", ["etcdctl", "--endpoints", self.endpoints, "endpoint", "health"],
                                env={"ETCDCTL_API": "3"}, check=False)
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("etcd cluster did not become healthy:\n" + probe.stdout + probe.stderr
                                   + "".join(p.output()[-2000:] for p in self.etcd.values()))
            time.sleep(0.3)

    def wait_agents(self, hosts: list[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            listed = self.run_in("h1", ["etcdctl", "--endpoints", self.endpoints, "get", "--prefix",
                                        "--keys-only", "/netlab/hosts/"], env={"ETCDCTL_API": "3"}, check=False)
            have = {line.rsplit("/", 1)[1] for line in listed.stdout.split() if line.strip()}
            if set(hosts) <= have:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"agents {sorted(set(hosts) - have)} did not register:\n"
                                   + "".join(self.agents[h].output()[-2000:] for h in hosts))
            time.sleep(0.2)

    def run_in(self, host: str, argv: list[str], env: dict | None = None, check: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(["nsenter", f"--net={kernel.netns_path(self.ns(host))}", "--", *argv],
                                capture_output=True, text=True, env={**os.environ, **(env or {})},
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def netlab(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """`netlab ARGS --etcd ...` as the controller, from host 1."""
        return self.run_in("h1", [sys.executable, "-m", "netlab", *args, "--etcd", self.endpoints],
                           check=check, timeout=timeout)

    def local_labs(self, host: str) -> list[str]:
        path = os.path.join(self.state_dir(host))
        try:
            return sorted(d for d in os.listdir(path) if not d.startswith("."))
        except FileNotFoundError:
            return []

    def close(self) -> None:
        for proc in self.agents.values():
            proc.stop()
        for host in self.names:               # what agents left (a test that failed mid-way)
            if self.local_labs(host):
                subprocess.run([sys.executable, "-c", "from netlab import lab, state\n"
                                "for name in state.list_labs(): lab.down(name)"],
                               env={**os.environ, "NETLAB_STATE_DIR": self.state_dir(host)},
                               capture_output=True, timeout=120)
        for proc in self.etcd.values():
            proc.stop()
        for name in reversed(self.made):
            kernel.delete(name)
        self.made.clear()
        if self.workdir and os.path.isdir(self.workdir) and not os.environ.get("NETLAB_KEEP_SIM"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    """python3 -m netlab.multihost.sim FILE [HOSTS]: a demo on one machine: start the
    simulated hosts, bring FILE up across them, check it, show status, take it down."""
    if not argv:
        print("usage: python3 -m netlab.multihost.sim FILE [HOSTS]", file=sys.stderr)
        return 2
    path, hosts = argv[0], int(argv[1]) if len(argv) > 1 else 3
    with SimCluster("mhdemo", hosts=hosts, net=5) as sim:
        print(f"{hosts} hosts up: etcd at {sim.endpoints}", flush=True)
        code = 0
        for args in (("up", path), ("check", path), ("status",), ("down", path)):
            print(f"$ netlab {' '.join(args)} --etcd {sim.endpoints}", flush=True)
            result = sim.netlab(*args, check=False)
            sys.stdout.write(result.stderr + result.stdout)
            code = code or result.returncode
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
