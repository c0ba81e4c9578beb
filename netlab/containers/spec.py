"""Container node fields (image, cmd, env, binds, exec, privileged, cap_add): their
validation. Pure: no root, no Docker.

`exec:` entries are split like a shell does (no shell runs them: write `sh -c '...'` for
pipes); kernel.py runs them after wiring.
"""
from __future__ import annotations

import re
import shlex

from ..core.errors import Problems
from ..core.model import Topology

IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
CAPABILITY = re.compile(r"^(CAP_)?[A-Z_]+$", re.IGNORECASE)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BIND_MODES = {"ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate",
              "nocopy"}
EXEC_TIMEOUT = 120


def validate(topo: Topology, problems: Problems) -> None:
    for node in topo.nodes.values():
        where = f"nodes.{node.name}"
        for i, command in enumerate(node.exec):
            _check_exec(f"{where}.exec[{i}]", command, problems)
        if node.image is None:
            for name, value in (("cmd", node.cmd), ("env", node.env), ("binds", node.binds),
                                ("privileged", node.privileged), ("cap_add", node.cap_add)):
                if value:
                    problems.add(f"{where}.{name}", f"only container nodes use {name} (give the node an image)")
            continue
        if not IMAGE.match(node.image):
            problems.add(f"{where}.image", f"{node.image!r} is not an image name like nginx:alpine")
        for i, bind in enumerate(node.binds):
            _check_bind(f"{where}.binds[{i}]", bind, problems)
        for i, cap in enumerate(node.cap_add):
            if not CAPABILITY.match(cap):
                problems.add(f"{where}.cap_add[{i}]", f"{cap!r} is not a capability name like NET_ADMIN")
        for key in node.env:
            if not ENV_NAME.match(key):
                problems.add(f"{where}.env.{key}", "an environment variable name is letters, digits and _")


def _check_exec(where: str, command: str, problems: Problems) -> None:
    try:
        argv = shlex.split(command)
    except ValueError as err:
        problems.add(where, f"cannot split {command!r} into words: {err}")
        return
    if not argv:
        problems.add(where, "empty command")


def _check_bind(where: str, bind: str, problems: Problems) -> None:
    parts = bind.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        problems.add(where, f"{bind!r} must be SOURCE:TARGET or SOURCE:TARGET:ro")
        return
    source, target = parts[0], parts[1]
    if not target.startswith("/"):
        problems.add(where, f"target {target!r} must be an absolute path in the container")
    elif "/" in source and not source.startswith("/"):
        problems.add(where, f"source {source!r} must be an absolute host path (or a volume name)")
    elif len(parts) == 3 and not set(parts[2].split(",")) <= BIND_MODES:
        problems.add(where, f"mode {parts[2]!r} is not ro or rw")
