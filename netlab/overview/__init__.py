"""What `netlab status` shows beyond nodes: links with their live state, tunnels,
faults and nftables rule counters (hooks status and status_lines).
"""
from __future__ import annotations

from ..core.hooks import Feature

FEATURE = Feature(
    name="overview",
    hooks={"status": "status:status", "status_lines": "status:status_lines"},
)
