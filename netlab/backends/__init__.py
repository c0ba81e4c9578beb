"""Backends: executors that turn plan steps into kernel objects, one module per kind.

`register_all()` imports them all (MODULES is the one place they are listed): apply.run
calls it before it runs a plan. Reading a state file imports the module of each step
type it names (`register`). Importing one backend module (as `netlab down` imports the
DNS server's, to stop it) does not import the others, nor pyroute2.
"""
from __future__ import annotations

import importlib

MODULES = [
    "netlab.backends.netns",       # namespaces
    "netlab.backends.links",       # bridges, veths, addresses, routes
    "netlab.backends.docker",      # container nodes: RUNTIMES["container"]
    "netlab.backends.nft",         # nftables NAT and firewall tables
    "netlab.backends.dns",         # the lab DNS server
    "netlab.backends.resolv",      # node resolvers
    "netlab.backends.services",    # netlab's responders for services:
    "netlab.backends.tunnels",     # vxlan, gretap, gre devices
    "netlab.multihost.stitch",     # VXLAN stitches of labs across hosts
]


# The module that defines each step type of a feature, so that reading a state file
# imports only what that lab uses (tests/test_features.py checks it against MODULES).
STEP_MODULES = {
    "nft": "netlab.nft",
    "dns-listen": "netlab.backends.dns",
    "dns-zone": "netlab.backends.dns",
    "dns-server": "netlab.backends.dns",
    "dns-client": "netlab.backends.resolv",
    "service": "netlab.backends.services",
    "tunnel": "netlab.tunnels",
    "bridge-port": "netlab.tunnels",
    "stitch-segment": "netlab.multihost.stitch",
    "stitch-link": "netlab.multihost.stitch",
}


def register(step_type: str) -> None:
    """Import what defines a step type: its module, or every backend for one not listed."""
    from ..plan import STEP_TYPES
    if step_type in STEP_MODULES:
        importlib.import_module(STEP_MODULES[step_type])
    if step_type not in STEP_TYPES:
        register_all()


def register_all() -> None:
    """Import every backend, registering its step types, executors and runtimes."""
    for name in MODULES:
        importlib.import_module(name)
