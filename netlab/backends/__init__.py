"""Backends: executors that turn plan steps into kernel objects, one module per kind.

Importing this package registers them all (the one place they are listed)."""
from . import netns, links            # noqa: F401  namespaces, bridges, veths, addresses, routes
from . import docker                  # noqa: F401  container nodes: RUNTIMES["container"]
from . import nft                     # noqa: F401  nftables NAT and firewall tables
from . import dns, resolv             # noqa: F401  the lab DNS server and node resolvers
from . import services                # noqa: F401  netlab's responders for services:
from . import tunnels                 # noqa: F401  vxlan, gretap, gre devices
from ..multihost import stitch       # noqa: F401  VXLAN stitches of labs across hosts
