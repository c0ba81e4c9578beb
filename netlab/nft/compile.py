"""The nft plan step (one ruleset per node, applied and replaced whole) and the compile
hook that renders each node's `nat:` and `firewall:` into it.

Pure: no root, no kernel.
"""
from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, ClassVar

from ..core.errors import Problems
from ..core.plan import Step, step

if TYPE_CHECKING:
    from ..core.model import Topology


@step
class NftRuleset(Step):
    """netlab's nftables table in one node: applied whole, replaced whole."""
    type: ClassVar[str] = "nft"
    ns: str
    node: str
    ruleset: str

    key = property(lambda s: ("nft", s.ns))
    parents = property(lambda s: (("netns", s.ns),))

    def describe(self) -> str:
        rules = sum(1 for line in self.ruleset.splitlines() if 'comment "' in line)
        import hashlib                  # here: reading a state (netlab down) needs no digest
        digest = hashlib.sha1(self.ruleset.encode()).hexdigest()[:8]
        return f"nft     {self.ns:<24} table inet netlab: {rules} rules ({digest})"


def dns_servers(plan) -> list[str]:
    """The lab DNS servers' addresses (IPv4 `servers` and IPv6 `servers6`), if the DNS
    feature published them."""
    meta = plan.meta.get("dns") or {}
    found = set()
    for key in ("servers", "servers6"):
        servers = meta.get(key) or {}
        values = servers.values() if isinstance(servers, dict) else servers
        found |= {str(v).split("/")[0] for v in values if v}
    return sorted(found, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))


def compile(topo: Topology, compiled, plan) -> None:  # noqa: A001 (the hook's name)
    from .render import render      # here: reading a state (netlab down) loads the step alone
    from .spec import parse_node
    specs = topo.specs.get("nft")      # parsed by validate; a topology made without the loader has none
    dns = dns_servers(plan)
    for node in topo.nodes.values():
        spec = specs.get(node.name) if specs is not None else parse_node(topo, node, Problems())
        if spec is None:
            continue
        plan.add(NftRuleset(ns=topo.netns(node.name), node=node.name,
                            ruleset=render(spec, compiled, dns)))
