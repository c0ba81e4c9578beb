"""Errors meant for people: a list of located problems, or one failed operation."""
from __future__ import annotations


class TopologyError(Exception):
    """A topology file is bad. `problems` holds one 'where: what' line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class ApplyError(Exception):
    """Building or changing a lab failed; the message names the object and the cause."""


class Problems:
    """Collects located problems so a file reports all of them at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, what: str) -> None:
        line = f"{where}: {what}" if where else what
        if line not in self.lines:          # e.g. a bad default, met once per node
            self.lines.append(line)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def raise_if_any(self) -> None:
        if self.lines:
            raise TopologyError(self.lines)
