"""The `netlab` console script: the core's commands (netlab.core.cli) and every feature's,
which the group finds through the registry when one is first asked for."""
from __future__ import annotations

from .core.cli import main

__all__ = ["main"]
