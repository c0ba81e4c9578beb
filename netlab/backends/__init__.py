"""Backends: executors that turn plan steps into kernel objects, one module per kind.

Importing this package registers them all (the one place they are listed)."""
from . import netns, links  # noqa: F401
