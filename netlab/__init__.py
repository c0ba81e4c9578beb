"""netlab: container network labs from a YAML topology.

The package composes itself: the core (netlab.core) runs the pipeline, and the features
declared in netlab.features plug into it through the registry (netlab.core.hooks), which
imports a feature's modules only when they are used.
"""
from .core import hooks as _hooks
from .features import FEATURES as _FEATURES

_hooks.use(_FEATURES)
