"""The plan: ordered, typed steps that say what a lab is made of. Pure data.

Every step has a `key` (its identity across plans, used by reconcile), `parents` (keys
of the steps it lives in or on: when a parent is re-created, so is the child) and a
one-line description for `netlab plan`. Feature modules add step types with @step.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

STEP_TYPES: dict[str, type[Step]] = {}
_FIELDS: dict[type, frozenset[str]] = {}      # field names per step class, for step_from_dict


def step(cls):
    """Register a step dataclass under its `type` name (for state files and JSON)."""
    cls = dataclass(frozen=True)(cls)
    STEP_TYPES[cls.type] = cls
    return cls


class Step:
    type: ClassVar[str] = "step"

    @property
    def key(self) -> tuple:
        raise NotImplementedError

    @property
    def parents(self) -> tuple[tuple, ...]:
        return ()

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **{k: _plain(v) for k, v in vars(self).items()}}


def _plain(value: Any) -> Any:
    """JSON's shape of a value (tuples become lists), so a step compares equal to itself
    after a round trip through the state file."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def step_from_dict(data: dict[str, Any]) -> Step:
    cls = STEP_TYPES.get(data["type"])
    if cls is None:                   # a feature's step type, not imported yet
        cls = _feature_step(data["type"])
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return cls(**{k: v for k, v in data.items() if k in names})


def _feature_step(step_type: str) -> type[Step]:
    """Import the module that defines a feature's step type (only that feature's)."""
    import importlib

    from . import hooks
    module = hooks.registry().step_module(step_type)
    if module is not None:
        importlib.import_module(module)
    if step_type not in STEP_TYPES:
        raise ValueError(f"unknown step type {step_type!r} (no feature defines it)")
    return STEP_TYPES[step_type]


@step
class Namespace(Step):
    """A network namespace: one per node, plus the lab's own for bridges."""
    type: ClassVar[str] = "netns"
    ns: str
    node: str | None = None             # None: the lab's bridge namespace
    role: str = "host"                  # host | router | lab
    image: str | None = None            # a container node when set
    container: Any = None               # container settings (a dict) for the runtime

    key = property(lambda s: ("netns", s.ns))

    def describe(self) -> str:
        what = "bridges of the lab" if self.node is None else f"node {self.node} ({self.role})"
        if self.image:
            what += f", container {self.image}"
        return f"netns   {self.ns:<24} {what}"


@step
class Bridge(Step):
    """An L2 segment: a Linux bridge inside the lab namespace."""
    type: ClassVar[str] = "bridge"
    ns: str
    name: str
    mtu: int | None = None

    key = property(lambda s: ("bridge", s.ns, s.name))
    parents = property(lambda s: (("netns", s.ns),))

    def describe(self) -> str:
        return f"bridge  {self.ns}/{self.name}" + (f" mtu {self.mtu}" if self.mtu else "")


@step
class Veth(Step):
    """A veth pair: `ifname` (index `index`) in `ns`, `peer` in `peer_ns`, the peer
    optionally a port of bridge `master` there."""
    type: ClassVar[str] = "veth"
    ns: str
    ifname: str
    index: int
    peer_ns: str
    peer: str
    master: str | None = None
    mtu: int | None = None
    alias: str | None = None            # set on the peer for people reading the lab

    key = property(lambda s: ("veth", s.ns, s.ifname))

    @property
    def parents(self):
        parents = [("netns", self.ns), ("netns", self.peer_ns)]
        if self.master:
            parents.append(("bridge", self.peer_ns, self.master))
        return tuple(parents)

    def describe(self) -> str:
        text = f"veth    {self.ns}:{self.ifname} <-> {self.peer_ns}:{self.peer}"
        if self.master:
            text += f" (port of {self.master})"
        return text + (f" mtu {self.mtu}" if self.mtu else "")


@step
class Address(Step):
    type: ClassVar[str] = "addr"
    ns: str
    ifname: str
    cidr: str

    key = property(lambda s: ("addr", s.ns, s.ifname, s.cidr))
    parents = property(lambda s: (("iface", s.ns, s.ifname),))

    def describe(self) -> str:
        return f"addr    {self.ns}:{self.ifname} {self.cidr}"


@step
class Route(Step):
    type: ClassVar[str] = "route"
    ns: str
    dst: str                            # a CIDR or 'default'
    via: str
    dev: str

    key = property(lambda s: ("route", s.ns, s.dst))
    parents = property(lambda s: (("iface", s.ns, s.dev),))

    def describe(self) -> str:
        return f"route   {self.ns} {self.dst} via {self.via} dev {self.dev}"


@dataclass
class Plan:
    lab: str
    steps: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)   # lab facts for status/checks/DNS

    def add(self, s: Step) -> None:
        self.steps.append(s)

    def iface_key(self, s: Step) -> list[tuple]:
        """The ('iface', ns, name) aliases a step provides, so children can name either
        end of a veth without knowing which side created it."""
        if isinstance(s, Veth):
            return [("iface", s.ns, s.ifname), ("iface", s.peer_ns, s.peer)]
        if isinstance(s, Bridge):
            return [("iface", s.ns, s.name)]
        return list(getattr(s, "provides", ()))

    def render(self) -> str:
        lines = [f"lab {self.lab}: {len(self.steps)} steps"]
        lines += ["  " + s.describe() for s in self.steps]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "steps": [s.to_dict() for s in self.steps],
                "warnings": self.warnings, "meta": self.meta}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(lab=data["lab"], steps=[step_from_dict(s) for s in data["steps"]],
                   warnings=data.get("warnings", []), meta=data.get("meta", {}))
