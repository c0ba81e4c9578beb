"""Lab state on disk: what exists for each lab, so teardown never guesses from names.

One directory per lab under /run/netlab (tmpfs: gone after a reboot, like the namespaces
it describes); NETLAB_STATE_DIR moves it. Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .plan import Plan

LAB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")     # also names its state directory


def state_root() -> str:
    return os.environ.get("NETLAB_STATE_DIR", "/run/netlab")


def lab_dir(lab: str) -> str:
    return os.path.join(state_root(), lab)


@dataclass
class LabState:
    lab: str
    status: str                          # deploying | up
    plan: Plan                           # what exists (or is being made, while deploying)
    source: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)   # feature state (pids, faults...)
    updated: float = 0.0

    def save(self) -> None:
        os.makedirs(lab_dir(self.lab), exist_ok=True)
        self.updated = time.time()
        data = {"lab": self.lab, "status": self.status, "source": self.source,
                "updated": self.updated, "extras": self.extras, "plan": self.plan.to_dict()}
        path = os.path.join(lab_dir(self.lab), "state.json")
        tmp = path + ".tmp"
        text = json.dumps(data, separators=(",", ":"))   # dumps uses the C encoder; dump does not
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    @classmethod
    def load(cls, lab: str) -> LabState | None:
        path = os.path.join(lab_dir(lab), "state.json")
        try:
            with open(path) as f:
                data = json.load(f)
            return cls(lab=data["lab"], status=data["status"], plan=Plan.from_dict(data["plan"]),
                       source=data.get("source"), extras=data.get("extras", {}),
                       updated=data.get("updated", 0.0))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # unreadable or from another version: callers fall back to ownership marks
            return None


def list_labs() -> list[str]:
    root = state_root()
    try:
        return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "state.json")))
    except FileNotFoundError:
        return []


def remove(lab: str) -> None:
    directory = lab_dir(lab)
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)
