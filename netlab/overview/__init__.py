"""What `netlab status` shows beyond nodes: links with their live state, tunnels,
faults and nftables rule counters (hooks status and status_lines).

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
