"""netlab's import graph, read from the source, and the layer rules of STYLE.md
checked on it.

    python3 -m tests.core.import_graph     # prints the layers; exit 1 on a cycle or a breach

Every import statement counts, function-level ones and those under `if TYPE_CHECKING:`
included.

Rules: netlab.core.* imports only netlab.core.*; a feature package netlab.<f> imports
netlab.core.* and itself, never another feature; no module takes part in a cycle. The
modules at netlab's top (cli, features, testing, pytest_plugin, __main__, __init__) put
the core and the features together and may import both.
"""
from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "netlab"


def modules() -> dict[str, pathlib.Path]:
    """Every module of netlab by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(name: str, path: pathlib.Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_of(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The netlab modules one module imports (a name imported from a package counts as
    the submodule when there is one of that name)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, path, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def layer(module: str) -> str:
    """"core", a feature's name, or "top" for the modules that compose them."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not (PACKAGE / parts[1]).is_dir()):
        return "top"
    return parts[1]


def breaches(g: dict[str, set[str]]) -> list[str]:
    found = []
    for module, deps in sorted(g.items()):
        mine = layer(module)
        if mine == "top":
            continue
        for dep in sorted(deps):
            theirs = layer(dep)
            if theirs == mine or (theirs == "core" and mine != "core"):
                continue
            found.append(f"{module} imports {dep} ({mine} may import "
                         f"{'only netlab.core' if mine == 'core' else 'netlab.core and itself'})")
    return found


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    g = graph()
    layers: dict[str, set[str]] = {}
    for module, deps in g.items():
        layers.setdefault(layer(module), set()).update(layer(d) for d in deps if layer(d) != layer(module))
    for name in sorted(layers):
        print(f"{name:<12} -> {', '.join(sorted(layers[name])) or '(nothing)'}")
    problems = breaches(g) + [f"cycle: {' <-> '.join(c)}" for c in cycles(g)]
    for line in problems:
        print(line)
    print(f"{len(g)} modules, {sum(len(d) for d in g.values())} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
