"""NAT and firewall: a node's `nat:` and `firewall:`, one nftables table per node.

  spec     the two sections' syntax (the YAML is in its docstring), hook validate
  syntax   typed specs and the selector, interface and port syntax they share
  compile  the `nft` step and hook compile (reads plan.meta["dns"]: DNS stays allowed)
  render   specs -> ruleset text (pure)
  kernel   applies a ruleset atomically in the node (libnftables, or `nft -f`), reads
           counters; hooks after_up, status
  cli      `netlab rules`

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
