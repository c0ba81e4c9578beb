"""`netlab capture LAB NODE:IF`: packets of a lab interface as pcap, with no tool
inside the node.

  sniff  AF_PACKET capture inside the node's namespace, the pcap format, decoding and a
         small filter when tcpdump is absent
  cli    the command
"""
from __future__ import annotations

from ..core.hooks import Feature

FEATURE = Feature(
    name="capture",
    commands={"capture": "cli:capture_command"},
)
