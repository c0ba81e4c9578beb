"""Connectivity checks at every layer: the `checks:` section and `netlab check`.

Modules, one per concern: spec (parse and validate declarations), labinfo (the lab as
checks see it), netio (sockets made in node namespaces, ICMP packets), l2 (ARP), l3 (ping,
path, MTU, all-pairs), l4 (TCP, UDP, temporary listeners), l7 (DNS, HTTP, NAT seen_as),
runner (bounded concurrency, wait budget), report (table, JSON, JUnit), defaults, cli,
remote (checks as plain data for other features: the multihost agents run them).

Hooks: validate; check_sources, run_checks and report_checks (provided to other features).

Declared (keys, steps, hooks, commands) in netlab/features.py.
"""
