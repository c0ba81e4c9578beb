"""The one list of netlab's features, by package name (netlab/<name>/, each declaring
itself in its __init__.py). The registry (netlab.core.hooks) orders them by what each
says it runs `after`; among those free to go anywhere this order is kept, so a plan's
text is the same on every run. A new feature is one more name here."""
from __future__ import annotations

FEATURES: list[str] = [
    "checks",       # checks: and netlab check
    "services",     # services: netlab's responders in nodes
    "dns",          # the lab DNS server, zone and resolvers
    "nft",          # nat: and firewall: (nftables)
    "containers",   # container nodes: the Docker runtime, exec:
    "tunnels",      # tunnels: vxlan, gretap, gre
    "overview",     # status: links, tunnels, faults, rule counters
    "faults",       # faults: and netlab fault
    "multihost",    # hosts: and --etcd, netlab agent
    "capture",      # netlab capture
    "graph",        # netlab graph
]
