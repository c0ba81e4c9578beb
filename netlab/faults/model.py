"""The fault model: impairments, link states and partitions, their parsing and validation.

Pure data, no kernel. A `FaultSet` is what is active on a lab; it is stored in the lab
state as `extras["faults"]` (see `to_dict`/`from_dict`). Scenarios in a topology's
`faults:` section are lists of items that parse into the same objects:

    {link: "gw:eth2", loss: 10%, delay: 50ms, jitter: 5ms, rate: 2mbit, direction: both}
    {node: gw, loss: 5%}                 every interface of a node
    {down: "gw:eth2"}                    link down (a list of links also works)
    {partition: [[pc1, pc2], [isp]]}     no traffic between the groups
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..core.errors import Problems

PERCENT_FIELDS = ("loss", "duplicate", "corrupt", "reorder")
TIME_FIELDS = ("delay", "jitter")
FIELDS = ("loss", "delay", "jitter", "rate", "duplicate", "corrupt", "reorder")
DIRECTIONS = ("egress", "ingress", "both")
ITEM_KEYS = {"link", "node", "direction", *FIELDS}

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_PERCENT = re.compile(rf"^{_NUMBER}\s*%?$")
_TIME = re.compile(rf"^{_NUMBER}\s*(us|ms|s)?$")
_RATE = re.compile(rf"^{_NUMBER}\s*(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)?$", re.I)
TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}
RATE_BITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9,
             "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}
MAX_RATE = 32 * 10**9          # tbf keeps rates in 32 bits of bytes per second
MAX_TIME_MS = 60_000.0


class BadValue(ValueError):
    """A value a person typed is wrong; the message says what is expected."""


def parse_percent(value: Any) -> float:
    """'10%', '0.1%', 10 -> percent (0, 100]."""
    if isinstance(value, bool) or value is None:
        raise BadValue(f"must be a percentage like 5%, not {value!r}")
    m = _PERCENT.match(str(value).strip())
    if not m:
        raise BadValue(f"must be a percentage like 5%, not {value!r}")
    pct = float(m.group(1))
    if not 0 < pct <= 100:
        raise BadValue(f"must be more than 0% and at most 100%, not {value!r}")
    return pct


def parse_time(value: Any) -> float:
    """'50ms', '1s', '200us', 50 (ms) -> milliseconds."""
    if isinstance(value, bool) or value is None:
        raise BadValue(f"must be a time like 50ms, not {value!r}")
    m = _TIME.match(str(value).strip())
    if not m:
        raise BadValue(f"must be a time like 50ms (us, ms or s), not {value!r}")
    ms = float(m.group(1)) * TIME_MS[m.group(2)]
    if not 0 < ms <= MAX_TIME_MS:
        raise BadValue(f"must be more than 0 and at most 60s, not {value!r}")
    return ms


def parse_rate(value: Any) -> int:
    """'10mbit', '500kbit', '1mbps' (bytes), 1000000 (bit/s) -> bits per second."""
    if isinstance(value, bool) or value is None:
        raise BadValue(f"must be a rate like 10mbit, not {value!r}")
    m = _RATE.match(str(value).strip())
    if not m:
        raise BadValue(f"must be a rate like 10mbit (bit, kbit, mbit, gbit; bps... for bytes), not {value!r}")
    bits = int(float(m.group(1)) * RATE_BITS[(m.group(2) or "bit").lower()])
    if not 8000 <= bits <= MAX_RATE:
        raise BadValue(f"must be from 8kbit to 32gbit, not {value!r}")
    return bits


PARSERS: dict[str, Callable[[Any], Any]] = {
    **{f: parse_percent for f in PERCENT_FIELDS}, **{f: parse_time for f in TIME_FIELDS},
    "rate": parse_rate}


def fmt_percent(v: float) -> str:
    return f"{v:g}%"


def fmt_time(ms: float) -> str:
    return f"{ms * 1000:g}us" if ms < 1 else (f"{ms / 1000:g}s" if ms >= 1000 and ms % 1000 == 0 else f"{ms:g}ms")


def fmt_rate(bits: int) -> str:
    for unit, size in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits >= size and (bits * 1000) % size == 0:
            return f"{bits / size:g}{unit}"
    return f"{bits}bit"


@dataclass(frozen=True)
class Impairment:
    """What one direction of one interface suffers. Percentages, milliseconds, bit/s."""
    loss: float | None = None
    delay: float | None = None
    jitter: float | None = None
    rate: int | None = None
    duplicate: float | None = None
    corrupt: float | None = None
    reorder: float | None = None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        out = []
        for name, value in self.fields().items():
            text = fmt_rate(value) if name == "rate" else (
                fmt_time(value) if name in TIME_FIELDS else fmt_percent(value))
            out.append(f"{name} {text}")
        return " ".join(out)

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str, problems: Problems) -> Impairment | None:
        """From the fields of a scenario item or CLI options (strings as typed)."""
        before = len(problems.lines)
        values: dict[str, Any] = {}
        for name in FIELDS:
            if raw.get(name) is None:
                continue
            try:
                values[name] = PARSERS[name](raw[name])
            except BadValue as e:
                problems.add(_at(where, name), str(e))
        if len(problems.lines) == before and not values:
            problems.add(where or "fault", "no impairment given (loss, delay, jitter, rate, "
                                           "duplicate, corrupt or reorder)")
        imp = cls(**values)
        for name in ("jitter", "reorder"):
            if getattr(imp, name) is not None and imp.delay is None:
                problems.add(_at(where, name), f"{name} needs a delay as well")
        return imp if len(problems.lines) == before else None


def _at(where: str, name: str) -> str:
    """Where a field is: 'faults.x[0].loss' in a file, '--loss' on the command line."""
    return f"{where}.{name}" if where else f"--{name}"


def directions(direction: str) -> tuple[str, ...]:
    return ("egress", "ingress") if direction == "both" else (direction,)


@dataclass
class FaultSet:
    """Every fault active on a lab. Links are 'node:ifname' strings."""
    links: dict[str, dict[str, Impairment]] = field(default_factory=dict)   # link -> direction -> imp
    down: list[str] = field(default_factory=list)
    partitions: list[list[list[str]]] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)                       # scenario names

    @property
    def empty(self) -> bool:
        return not (self.links or self.down or self.partitions)

    def set_link(self, link: str, direction: str, imp: Impairment) -> None:
        for d in directions(direction):
            self.links.setdefault(link, {})[d] = imp

    def set_down(self, link: str, down: bool) -> None:
        if down and link not in self.down:
            self.down.append(link)
        if not down and link in self.down:
            self.down.remove(link)

    def add_partition(self, groups: list[list[str]]) -> None:
        groups = [sorted(g) for g in groups]
        if groups not in self.partitions:
            self.partitions.append(groups)

    def clear_link(self, link: str) -> None:
        self.links.pop(link, None)
        self.set_down(link, False)

    def copy(self) -> FaultSet:
        return FaultSet.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"links": {link: {d: imp.fields() for d, imp in dirs.items()}
                          for link, dirs in self.links.items()},
                "down": list(self.down), "partitions": [[list(g) for g in p] for p in self.partitions],
                "applied": list(self.applied)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FaultSet:
        data = data or {}
        return cls(links={link: {d: Impairment(**f) for d, f in dirs.items()}
                          for link, dirs in data.get("links", {}).items()},
                   down=list(data.get("down", [])),
                   partitions=[[list(g) for g in p] for p in data.get("partitions", [])],
                   applied=list(data.get("applied", [])))

    def keep_only(self, ifaces: dict[str, list[str]]) -> list[str]:
        """Drop faults on nodes/interfaces that no longer exist; returns what was dropped."""
        known = {f"{n}:{i}" for n, names in ifaces.items() for i in names}
        dropped = [link for link in list(self.links) + self.down if link not in known]
        for link in dropped:
            self.clear_link(link)
        for p in list(self.partitions):
            if any(n not in ifaces for g in p for n in g):
                self.partitions.remove(p)
                dropped.append("partition " + " | ".join(",".join(g) for g in p))
        return dropped

    def lines(self, mechanisms: dict[str, dict[str, str]] | None = None) -> list[str]:
        out = []
        for link in sorted(self.links):
            for d in ("egress", "ingress"):
                if d in self.links[link]:
                    how = (mechanisms or {}).get(link, {}).get(d)
                    out.append(f"{link} {d} {self.links[link][d].describe()}" + (f"  [{how}]" if how else ""))
        out += [f"{link} down" for link in self.down]
        out += ["partition " + " | ".join(",".join(g) for g in p) for p in self.partitions]
        return out
