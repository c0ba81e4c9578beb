"""The `service` step (one per node with `services:`) and the compile hook that adds it.

Pure: no root, no kernel.
"""
from __future__ import annotations

from typing import ClassVar

from ..core.plan import Step, step


@step
class Service(Step):
    """Responders for one node: `services` like ("http:80", "udp:7")."""
    type: ClassVar[str] = "service"
    ns: str
    node: str
    services: tuple = ()

    key = property(lambda s: ("service", s.ns))
    parents = property(lambda s: (("netns", s.ns),))

    def describe(self) -> str:
        return f"service {self.ns:<24} responders {' '.join(self.services)}"


def compile(topo, compiled, plan) -> None:
    for node in topo.nodes.values():
        if node.sections.get("services"):
            plan.add(Service(ns=topo.netns(node.name), node=node.name,
                             services=tuple(str(s) for s in node.sections["services"])))
