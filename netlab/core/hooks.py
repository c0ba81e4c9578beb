"""The hooks a feature may implement, each written once here with its contract, and the
registry that finds them.

A feature is a package `netlab/<name>/` declared by a `Feature(...)`: the topology keys it
owns, the features whose facts it reads (`after`), its step types, kernel modules, node
runtimes, commands and hooks, each named as "module:function" inside the package. The
declarations are data (netlab/features.py holds netlab's): the registry checks them when
it is built (unknown hooks, keys, step types or commands claimed twice, `after` naming an
unknown feature, cycles), orders the features, and imports a feature's module only when
one of its hooks, steps, commands or runtimes is first used. A hook's parameters are
checked against its spec when it is resolved (for every hook at once by
`Registry.verify`, which the tests run).

The core imports no feature: the declarations are installed with `use()` (the netlab
package installs `netlab.features.FEATURES` when it is imported).

Pure: standard library only.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable


@dataclass(frozen=True)
class HookSpec:
    name: str
    params: tuple[str, ...]
    contract: str
    provided: bool = False      # one feature provides it; the core or others call it


HOOKS: dict[str, HookSpec] = {h.name: h for h in (
    HookSpec("validate", ("topo", "problems"),
             "load: check the sections the feature owns, adding located problems; what it returns "
             "(its typed spec, or None) is kept in topo.specs[<feature>] for its compile (parse once)"),
    HookSpec("interfaces", ("topo", "compiled"),
             "compile, before routes: add interfaces routing must see (gre)"),
    HookSpec("compile", ("topo", "compiled", "plan"),
             "compile: add steps; publish facts in plan.meta[<feature>] only"),
    HookSpec("preflight", ("topo", "plan"),
             "up, before anything is made: refuse what this host cannot do, naming the missing kernel feature"),
    HookSpec("after_up", ("ctx", "plan", "topo"),
             "up, after the steps: start processes, run exec, re-apply faults"),
    HookSpec("teardown", ("lab", "plan", "extras"),
             "down: stop what the feature started outside steps (plan may be None: state lost)"),
    HookSpec("status", ("entry", "state"),
             "status: add the feature's live facts to a lab's JSON entry"),
    HookSpec("status_lines", ("entry",),
             "status: lines for the table, from what `status` added"),
    HookSpec("extend_command", ("name", "command"),
             "cli: add options to a command (core or another feature's) and wrap its callback"),
    HookSpec("graph_edges", ("topo", "compiled"),
             "graph: extra edges as (from node, to node, label lines, style) tuples"),
    HookSpec("check_sources", ("lab", "meta", "declared"),
             "checks: the source node of each check (declared, or the defaults when None), in order",
             provided=True),
    HookSpec("run_checks", ("lab", "meta", "declared", "indexes", "wait", "parallel"),
             "checks: run the checks at `indexes`; results as dicts (index, ok, detail, seconds, attempts)",
             provided=True),
    HookSpec("report_checks", ("lab", "meta", "declared", "results", "seconds", "as_json", "junit"),
             "checks: print results given as dicts in check order (table or JSON, JUnit file); True if all passed",
             provided=True),
)}

# The core's own executors (namespaces; bridges, veths, addresses, routes), imported with
# the features' before a plan runs.
CORE_KERNEL = ("netlab.core.netns", "netlab.core.links")

SHAPES = ("any", "list", "mapping")     # what the loader checks of an owned key's value
PLACES = ("topology", "node")           # where an owned key sits in the file


@dataclass(frozen=True)
class Feature:
    """A feature's declaration. Module paths are relative to the feature's package,
    netlab.<name> unless `package` says otherwise ("spec:validate" of nft is
    netlab.nft.spec:validate)."""
    name: str
    owns: dict[str, dict[str, str]] = field(default_factory=dict)   # place -> key -> shape
    after: tuple[str, ...] = ()
    steps: dict[str, str] = field(default_factory=dict)    # step type -> module
    kernel: tuple[str, ...] = ()                            # modules of executors
    runtimes: dict[str, str] = field(default_factory=dict)  # node runtime -> "module:attr"
    commands: dict[str, str] = field(default_factory=dict)  # command -> "module:attr"
    hooks: dict[str, str] = field(default_factory=dict)     # hook -> "module:function"
    package: str = ""                                       # default: netlab.<name>


class RegistryError(Exception):
    """A feature declaration that does not fit; the message names the feature(s)."""


def _choices(names) -> str:
    return ", ".join(sorted(names))


def _absolute(package: str, ref: str) -> str:
    return ref if ref.startswith("netlab.") or not package else f"{package}.{ref}"


def _load(package: str, ref: str) -> Any:
    module, _, attr = _absolute(package, ref).partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry:
    """The features of this run, ordered by `after` (ties keep the list's order, so a
    plan's text is the same on every run)."""

    def __init__(self, features: list[Feature]):
        features = [f if f.package else replace(f, package=f"netlab.{f.name}") for f in features]
        self.features = _ordered(_checked(features))
        self.by_name = {f.name: f for f in self.features}
        self._resolved: dict[str, list[tuple[str, Callable]]] = {}
        self._owned = {place: {key: shape for f in self.features for key, shape in f.owns.get(place, {}).items()}
                       for place in PLACES}

    # -- hooks ---------------------------------------------------------------------------
    def hooks(self, name: str) -> list[Callable]:
        """The implementations of a hook, in feature order, imported on first use."""
        return [fn for _, fn in self.named_hooks(name)]

    def named_hooks(self, name: str) -> list[tuple[str, Callable]]:
        """(feature, implementation) of a hook, in feature order."""
        found = self._resolved.get(name)
        if found is None:
            spec = _spec(name)
            found = [(f.name, _verified(f, spec, _load(f.package, f.hooks[name])))
                     for f in self.features if name in f.hooks]
            self._resolved[name] = found
        return found

    def provider(self, name: str) -> Callable:
        """The one implementation of a provided hook (e.g. run_checks)."""
        found = self.hooks(name)
        if not found:
            raise RegistryError(f"no feature provides the {name} hook (is its feature listed in netlab.features?)")
        return found[0]

    def verify(self) -> None:
        """Resolve every hook, command, runtime and step module (imports every feature)."""
        for name in HOOKS:
            self.hooks(name)
        for f in self.features:
            for ref in list(f.commands.values()) + list(f.runtimes.values()):
                _load(f.package, ref)
            for module in list(f.steps.values()) + list(f.kernel):
                importlib.import_module(_absolute(f.package, module))

    # -- steps, kernel modules, runtimes, commands, owned keys ---------------------------
    def step_module(self, step_type: str) -> str | None:
        for f in self.features:
            if step_type in f.steps:
                return _absolute(f.package, f.steps[step_type])
        return None

    def kernel_modules(self) -> list[str]:
        return list(CORE_KERNEL) + [_absolute(f.package, m) for f in self.features for m in f.kernel]

    def import_kernels(self) -> None:
        """Import the core's and every feature's executors (they register their step types
        and phases)."""
        for module in self.kernel_modules():
            importlib.import_module(module)

    def runtime(self, kind: str) -> Any:
        """The node runtime of that kind ("container"), or None if no feature has one."""
        for f in self.features:
            if kind in f.runtimes:
                return _load(f.package, f.runtimes[kind])
        return None

    def command_names(self) -> list[str]:
        return [c for f in self.features for c in f.commands]

    def command(self, name: str) -> Any:
        for f in self.features:
            if name in f.commands:
                return _load(f.package, f.commands[name])
        return None

    def owned(self, place: str) -> dict[str, str]:
        """Keys the features own at a place of the file, with the shape each must have."""
        return self._owned[place]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


def _spec(name: str) -> HookSpec:
    spec = HOOKS.get(name)
    if spec is None:
        raise RegistryError(f"unknown hook {name!r} (hooks: {_choices(HOOKS)})")
    return spec


def _verified(feature: Feature, spec: HookSpec, fn: Callable) -> Callable:
    code = getattr(fn, "__code__", None)
    if code is not None:
        params = code.co_varnames[:code.co_argcount]
        if tuple(params) != spec.params:
            raise RegistryError(f"feature {feature.name}: hook {spec.name}{tuple(params)} must take "
                                f"({', '.join(spec.params)})")
    return fn


def _checked(features: list[Feature]) -> list[Feature]:
    names = [f.name for f in features]
    seen: dict[tuple[str, str], str] = {}
    for f in features:
        if names.count(f.name) > 1:
            raise RegistryError(f"feature {f.name} is listed twice")
        for hook in f.hooks:
            if hook not in HOOKS:
                raise RegistryError(f"feature {f.name}: unknown hook {hook!r} (hooks: {_choices(HOOKS)})")
        for other in f.after:
            if other not in names:
                raise RegistryError(f"feature {f.name}: after names unknown feature {other!r} "
                                    f"(features: {_choices(names)})")
        for place, keys in f.owns.items():
            if place not in PLACES:
                raise RegistryError(f"feature {f.name}: owns keys at unknown place {place!r} "
                                    f"(places: {_choices(PLACES)})")
            for key, shape in keys.items():
                if shape not in SHAPES:
                    raise RegistryError(f"feature {f.name}: key {place}.{key} has unknown shape "
                                        f"{shape!r} (shapes: {_choices(SHAPES)})")
        claims = [("key", f"{p}.{k}") for p, keys in f.owns.items() for k in keys]
        claims += [("step type", t) for t in f.steps] + [("command", c) for c in f.commands]
        claims += [("runtime", r) for r in f.runtimes]
        claims += [("hook", h) for h in f.hooks if HOOKS[h].provided]
        for claim in claims:
            if claim in seen:
                raise RegistryError(f"features {seen[claim]} and {f.name} both claim {claim[0]} {claim[1]!r}")
            seen[claim] = f.name
    return features


def _ordered(features: list[Feature]) -> list[Feature]:
    """Each feature after those it names in `after`; otherwise in list order."""
    done: list[Feature] = []
    placed: set[str] = set()
    waiting = list(features)
    while waiting:
        ready = next((f for f in waiting if set(f.after) <= placed), None)
        if ready is None:
            cycle = " -> ".join(f.name for f in waiting)
            raise RegistryError(f"features wait for each other in a cycle through `after`: {cycle}")
        done.append(ready)
        placed.add(ready.name)
        waiting.remove(ready)
    return done


_declared: list[Feature] = []
_registry: Registry | None = None


def use(features: list[Feature]) -> None:
    """Install the features of this run; the registry is built on first use."""
    global _declared, _registry
    _declared, _registry = list(features), None


def install(registry: Registry | None) -> Registry | None:
    """Install a registry as it is (tests with a toy feature); returns the previous one."""
    global _registry
    previous, _registry = _registry, registry
    return previous


def registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = Registry(_declared)
    return _registry
