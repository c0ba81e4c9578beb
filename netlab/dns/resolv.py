"""What each node is told about DNS: the `dns-client` step and its executor.

Namespace nodes: `ip netns exec NS` bind-mounts every file of /etc/netns/NS over /etc, so
/etc/netns/<lab>-<node> is made a symlink to a directory shared by all nodes told the same
thing (resolv.conf: the lab server(s), `search <domain>`; hosts: localhost), under
<state root>/.dns/<lab>/<group>/. One symlink per node is one file-system operation, where
a directory with two files was five (about 1 ms each on this machine's disk).

Containers: their own /etc/resolv.conf and /etc/hosts (Docker's bind mounts) are rewritten
in place through /proc/<pid>/root once the container is wired (and they get the
/etc/netns link too, for host tools run with `ip netns exec`); `client_files(step)` gives
the texts to a runtime that would rather mount them at creation.
"""
from __future__ import annotations

import os
import shutil
from typing import ClassVar

from ..core import kernel, state
from ..core.apply import Context, Executor, executor
from ..core.errors import ApplyError
from ..core.plan import Step, step
from .server import _write

NETNS_ETC = "/etc/netns"


@step
class DnsClient(Step):
    """A node's resolver settings: resolv.conf (lab server, lab domain as search) and hosts."""
    type: ClassVar[str] = "dns-client"
    netns: str
    lab: str
    node: str
    domain: str
    nameservers: tuple = ()
    hosts: tuple = ()                   # "address name..." lines for the node itself (containers)
    container: bool = False

    key = property(lambda s: ("dns-client", s.netns))
    parents = property(lambda s: (("netns", s.netns),))

    def describe(self) -> str:
        servers = " ".join(self.nameservers) or "none reachable"
        return f"dns     {self.netns:<24} resolver {servers} search {self.domain}"


# --- texts -------------------------------------------------------------------------

def mark_line(lab: str, node: str | None = None) -> str:
    """The first line of every file netlab writes for nodes: its ownership mark."""
    who = f" node={node}" if node else ""
    return f"# netlab lab={lab}{who}: written by netlab up, removed by netlab down"


def resolv_conf(lab: str, node: str | None, nameservers, domain: str) -> str:
    lines = [mark_line(lab, node)]
    lines += [f"nameserver {ns}" for ns in nameservers]
    lines += [f"search {domain}", "options timeout:1 attempts:2"]
    return "\n".join(lines) + "\n"


def hosts_file(lab: str, node: str | None, own_lines=()) -> str:
    lines = [mark_line(lab, node), "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [line.replace(" ", "\t", 1) for line in own_lines]
    return "\n".join(lines) + "\n"


def client_files(s: DnsClient) -> dict[str, str]:
    """{'resolv.conf': text, 'hosts': text} for one node (what a container gets)."""
    return {"resolv.conf": resolv_conf(s.lab, s.node, s.nameservers, s.domain),
            "hosts": hosts_file(s.lab, s.node, s.hosts)}


# --- shared directories and links for namespace nodes ---------------------------------

def shared_root(lab: str) -> str:
    return os.path.join(state.state_root(), ".dns", lab)


def group_dir(s: DnsClient) -> str:
    """The shared directory for every node of the lab told what this node is told."""
    import hashlib                      # here: `netlab down` imports this module
    digest = hashlib.sha1(f"{s.domain}|{' '.join(s.nameservers)}".encode()).hexdigest()[:12]
    return os.path.join(shared_root(s.lab), digest)


def ensure_group(s: DnsClient) -> str:
    directory = group_dir(s)
    if not os.path.exists(os.path.join(directory, "resolv.conf")):
        os.makedirs(directory, mode=0o755, exist_ok=True)
        _write(os.path.join(directory, "hosts"), hosts_file(s.lab, None))
        _write(os.path.join(directory, "resolv.conf"), resolv_conf(s.lab, None, s.nameservers, s.domain))
    return directory


def is_our_link(path: str, lab: str) -> bool:
    return os.path.islink(path) and os.readlink(path).startswith(shared_root(lab) + os.sep)


def link_node(s: DnsClient) -> None:
    target = ensure_group(s)
    link = os.path.join(NETNS_ETC, s.netns)
    if os.path.islink(link):
        if os.readlink(link) == target:
            return
        if not is_our_link(link, s.lab):
            raise ApplyError(f"node {s.node}: {link} exists and was not made by netlab; remove it")
        os.unlink(link)
    elif os.path.exists(link):
        raise ApplyError(f"node {s.node}: {link} exists and was not made by netlab; remove it")
    os.makedirs(NETNS_ETC, exist_ok=True)
    os.symlink(target, link)


def unlink_node(netns: str, lab: str) -> None:
    link = os.path.join(NETNS_ETC, netns)
    if is_our_link(link, lab):
        os.unlink(link)


def our_links(lab: str) -> list[str]:
    """Namespace names whose /etc/netns entry is one of this lab's links (found without state)."""
    try:
        names = os.listdir(NETNS_ETC)
    except FileNotFoundError:
        return []
    return [n for n in names if n.startswith(f"{lab}-") and is_our_link(os.path.join(NETNS_ETC, n), lab)]


def prune_groups(lab: str, keep: set[str]) -> None:
    """Remove the lab's shared directories not in `keep` (all of them when it is empty)."""
    root = shared_root(lab)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(root, name)
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)
    for directory in (root, os.path.dirname(root)):
        try:
            os.rmdir(directory)
        except OSError:
            break


# --- containers ------------------------------------------------------------------------

def container_root(netns: str) -> str | None:
    """/proc/<pid>/root of the container whose network namespace is `netns`: its init
    process as the container runtime reports it, checked to live in that namespace and
    in a root file system other than the host's (a host tool run with `ip netns exec`
    shares the namespace but not the container's /etc). None if not found."""
    from ..core import hooks
    runtime = hooks.registry().runtime("container")
    info = runtime.inspect(netns) if runtime is not None else None
    pid = ((info or {}).get("State") or {}).get("Pid")
    inode = kernel.netns_inode(netns)
    if not pid or inode is None:
        return None
    root = f"/proc/{pid}/root"
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino != inode or os.path.samefile(root, "/"):
            return None
    except OSError:
        return None
    return root


def write_container_files(s: DnsClient) -> None:
    root = container_root(s.netns)
    if root is None:
        raise ApplyError(f"node {s.node}: no container process found to write its resolv.conf")
    for name, text in client_files(s).items():
        with open(os.path.join(root, "etc", name), "w") as f:    # in place: a bind mount
            f.write(text)


@executor("dns-client")
class DnsClientExecutor(Executor):
    def create(self, ctx: Context, s: DnsClient) -> None:
        if s.container:
            write_container_files(s)
        link_node(s)                    # containers too: `ip netns exec` runs host tools

    def delete(self, ctx: Context, s: DnsClient) -> None:
        unlink_node(s.netns, s.lab)
