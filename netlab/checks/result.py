"""What a probe found (Outcome) and what a check concluded (Result)."""
from __future__ import annotations

from dataclasses import dataclass

from .spec import CheckSpec


@dataclass
class Outcome:
    """reached: the target answered at all; good: it answered the way the check wants
    (thresholds, addresses, status). detail says what happened, or how it was blocked."""
    reached: bool
    good: bool
    detail: str
    error: bool = False                  # the probe could not run at all: fails either way

    @classmethod
    def cannot(cls, why: str) -> Outcome:
        return cls(False, False, why, error=True)

    @classmethod
    def blocked(cls, how: str) -> Outcome:
        return cls(False, False, f"blocked: {how}")


@dataclass
class Result:
    spec: CheckSpec
    ok: bool
    detail: str
    seconds: float
    attempts: int

    def to_dict(self) -> dict:
        s = self.spec
        return {"layer": s.layer, "type": s.kind, "name": s.label, "where": s.where,
                "from": s.src, "to": s.dst, "expect": "blocked" if s.blocked else (s.expect or "reachable"),
                "ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4),
                "attempts": self.attempts}


def judge(spec: CheckSpec, outcome: Outcome) -> tuple[bool, str]:
    if outcome.error:
        return False, outcome.detail
    if spec.blocked:
        if outcome.reached:
            return False, f"expected blocked, but it got through: {outcome.detail}"
        return True, outcome.detail
    return outcome.reached and outcome.good, outcome.detail
