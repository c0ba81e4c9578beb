"""Topology generators: print ready-to-run topology files."""
from __future__ import annotations

import ipaddress
import math

import yaml


def lan(hosts: int, name: str = "lan", ipv6: bool = False) -> str:
    """N hosts on one segment, with a subnet just big enough (at least a /24); one
    address is left for the lab's DNS server (netlab.dns). ipv6: dual stack, with a /64
    from the documentation prefix as well."""
    bits = max(8, math.ceil(math.log2(hosts + 3)))
    subnet = ipaddress.IPv4Network(f"10.0.0.0/{32 - bits}")
    width = len(str(hosts))
    network = {"subnet": str(subnet)} | ({"subnet6": "2001:db8:1::/64"} if ipv6 else {})
    topo = {
        "name": name,
        "networks": {"lan": network},
        "nodes": {f"h{i:0{width}d}": {"networks": ["lan"]} for i in range(1, hosts + 1)},
    }
    return yaml.safe_dump(topo, sort_keys=False, default_flow_style=None)
