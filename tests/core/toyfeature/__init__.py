"""A toy feature for tests/core/test_hooks.py: a node key `toy` (a list of words), a lab
key `banner` (text), and one `toy` step per node that has words. It lives outside netlab
and needs no change to the core."""
from __future__ import annotations

from netlab.core.hooks import Feature

FEATURE = Feature(
    name="toy",
    package="tests.core.toyfeature",
    owns={"node": {"toy": "list"}, "topology": {"banner": "any"}},
    steps={"toy": "compile"},
    hooks={"validate": "compile:validate", "compile": "compile:compile"},
)
