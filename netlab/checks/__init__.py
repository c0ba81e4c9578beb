"""Connectivity checks at every layer (issue 6): the `checks:` section and `netlab check`.

Modules, one per concern: spec (parse and validate declarations), labinfo (the lab as
checks see it), netio (sockets made in node namespaces, ICMP packets), l2 (ARP), l3 (ping,
path, MTU, all-pairs), l4 (TCP, UDP, temporary listeners), l7 (DNS, HTTP, NAT seen_as),
runner (bounded concurrency, wait budget), report (table, JSON, JUnit), defaults, cli.

This package is a feature module (netlab.features): its `validate` hook checks the
`checks:` section of a topology with located errors.
"""
from __future__ import annotations


def validate(topo, problems) -> None:
    from .spec import parse_checks
    parse_checks(topo.checks, set(topo.nodes), problems)
