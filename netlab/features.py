"""netlab's features: one declaration each, in the order the registry keeps among those
free to go anywhere (so a plan's text is the same on every run); `after` says what must
come first. Each names its modules relative to its package netlab/<name>/ ("spec:validate"
is netlab.<name>.spec:validate); netlab.core.hooks says what each field and hook means.

The declarations are data, kept here rather than in each package's __init__.py, so that
reading them imports no feature: `netlab down` then loads only the packages whose hooks
and steps it uses. A new feature is a package netlab/<name>/ and one entry here.
"""
from __future__ import annotations

from .core.hooks import Feature

FEATURES: list[Feature] = [
    # checks: and netlab check
    Feature(
        name="checks",
        owns={"topology": {"checks": "list"}},
        commands={"check": "cli:check"},
        hooks={"validate": "spec:validate", "check_sources": "remote:check_sources",
               "run_checks": "remote:run_checks", "report_checks": "remote:report_checks"},
    ),
    # services: netlab's responders in nodes
    Feature(
        name="services",
        owns={"node": {"services": "list"}},
        steps={"service": "compile"},
        kernel=("kernel",),
        hooks={"validate": "spec:validate", "compile": "compile:compile", "after_up": "kernel:after_up",
               "teardown": "kernel:teardown", "status": "kernel:status"},
    ),
    # the lab DNS server, zone and resolvers
    Feature(
        name="dns",
        owns={"topology": {"dns": "any"}},
        steps={"dns-listen": "server", "dns-zone": "server", "dns-server": "server",
               "dns-client": "resolv"},
        kernel=("server", "resolv"),
        hooks={"validate": "compile:validate", "compile": "compile:compile",
               "after_up": "lifecycle:after_up", "teardown": "lifecycle:teardown",
               "status": "lifecycle:status"},
    ),
    # nat: and firewall: (nftables)
    Feature(
        name="nft",
        owns={"node": {"nat": "any", "firewall": "any"}},
        after=("dns",),
        steps={"nft": "compile"},
        kernel=("kernel",),
        commands={"rules": "cli:rules"},
        hooks={"validate": "spec:validate", "compile": "compile:compile",
               "after_up": "kernel:after_up", "status": "kernel:status"},
    ),
    # container nodes: the Docker runtime, exec:
    Feature(
        name="containers",
        runtimes={"container": "runtime:RUNTIME"},
        kernel=("runtime",),
        hooks={"validate": "spec:validate", "after_up": "kernel:after_up", "status": "kernel:status"},
    ),
    # tunnels: vxlan, gretap, gre
    Feature(
        name="tunnels",
        owns={"topology": {"tunnels": "list"}},
        steps={"tunnel": "steps", "bridge-port": "steps"},
        kernel=("kernel",),
        hooks={"validate": "spec:validate", "interfaces": "compile:interfaces",
               "compile": "compile:compile", "preflight": "kernel:preflight",
               "status": "kernel:status", "graph_edges": "draw:graph_edges"},
    ),
    # status: links, tunnels, faults, rule counters
    Feature(
        name="overview",
        hooks={"status": "status:status", "status_lines": "status:status_lines"},
    ),
    # faults: and netlab fault
    Feature(
        name="faults",
        owns={"topology": {"faults": "mapping"}},
        commands={"fault": "cli:fault"},
        hooks={"validate": "scenario:validate", "after_up": "ops:after_up", "status": "ops:status"},
    ),
    # hosts: and --etcd, netlab agent
    Feature(
        name="multihost",
        owns={"topology": {"hosts": "any"}},
        steps={"stitch-segment": "stitch", "stitch-link": "stitch"},
        kernel=("stitch",),
        commands={"agent": "cli:agent"},
        hooks={"validate": "placement:validate", "extend_command": "options:extend_command"},
    ),
    # netlab capture
    Feature(
        name="capture",
        commands={"capture": "cli:capture_command"},
    ),
    # netlab graph
    Feature(
        name="graph",
        commands={"graph": "cli:graph_command"},
    ),
]
