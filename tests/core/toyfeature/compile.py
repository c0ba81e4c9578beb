"""The toy feature's step, validation and compile hook."""
from __future__ import annotations

from typing import ClassVar

from netlab.core.plan import Step, step


@step
class ToyStep(Step):
    type: ClassVar[str] = "toy"
    ns: str
    words: tuple = ()
    banner: str = ""

    key = property(lambda s: ("toy", s.ns))
    parents = property(lambda s: (("netns", s.ns),))

    def describe(self) -> str:
        return f"toy     {self.ns} {', '.join(self.words)} ({self.banner})"


def validate(topo, problems) -> dict:
    """The spec compile uses (kept by the core in topo.specs["toy"]): words by node."""
    banner = topo.sections.get("banner")
    if banner is not None and not isinstance(banner, str):
        problems.add("banner", f"must be text, not a {type(banner).__name__}")
    return {n.name: tuple(n.sections["toy"]) for n in topo.nodes.values() if n.sections.get("toy")}


def compile(topo, compiled, plan) -> None:
    words = topo.specs["toy"]
    for node, said in words.items():
        plan.add(ToyStep(ns=topo.netns(node), words=said, banner=topo.sections.get("banner") or ""))
    plan.meta["toy"] = {"nodes": list(words)}
