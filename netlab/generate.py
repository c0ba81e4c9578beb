"""Topology generators: print ready-to-run topology files."""
from __future__ import annotations

import ipaddress
import math

import yaml


def lan(hosts: int, name: str = "lan") -> str:
    """N hosts on one segment, with a subnet just big enough (at least a /24); one
    address is left for the lab's DNS server (netlab.dns)."""
    bits = max(8, math.ceil(math.log2(hosts + 3)))
    subnet = ipaddress.IPv4Network(f"10.0.0.0/{32 - bits}")
    width = len(str(hosts))
    topo = {
        "name": name,
        "networks": {"lan": {"subnet": str(subnet)}},
        "nodes": {f"h{i:0{width}d}": {"networks": ["lan"]} for i in range(1, hosts + 1)},
    }
    return yaml.safe_dump(topo, sort_keys=False, default_flow_style=None)
