"""Imports only point down (ARCHITECTURE.md's layers), and no package or module imports itself
back through others. Every import counts: lazy ones inside functions and ``TYPE_CHECKING`` ones
are dependencies too. There is no allow-list: fix the import, or move what sits in the wrong
place."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import modelloop

ROOT = Path(modelloop.__file__).parent

# Top to bottom. Within a layer packages may import each other, as long as no cycle forms.
LAYERS: list[set[str]] = [
    {"cli", "__main__"},  # the command line: translates
    {"examples"},  # programs written against the SDK
    {
        "modelloop",
        "client",
        "server",
        "ui",
        "mlflow_import",
        "mlflow_store",
    },  # the SDK and the web edges
    {"automation"},  # policies, the loop, the scheduler
    {
        "monitoring",
        "serving",
        "pipelines",
        "registry",
        "datasets",
        "tracking",
        "store_clock",
        "ranking",
    },
    {"flavors", "explain", "audit", "auth", "configs", "web"},
    {"store", "artifacts", "transport"},
    {"settings", "errors", "clock", "_version"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported modelloop module: line}."""
    files = {_module(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]  # fmt: skip
            for target in targets:
                while target and target not in files:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target.startswith("modelloop") and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def _unit(module: str) -> str:
    """The package (or top-level module) a module belongs to; the SDK root is ``modelloop``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "modelloop"


def _layer(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS (and ARCHITECTURE.md)")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer() -> None:
    units = {_unit(m) for m in _graph()} | {_unit(t) for ts in _graph().values() for t in ts}
    for unit in units:
        _layer(unit)


def test_imports_only_point_down() -> None:
    upward = [
        f"{module}:{line} imports {target} (layer {_layer(_unit(target))} above "
        f"{_layer(_unit(module))})"
        for module, targets in sorted(_graph().items())
        for target, line in sorted(targets.items())
        if _layer(_unit(target)) < _layer(_unit(module))
    ]
    assert upward == [], "\n".join(upward)


def test_no_package_imports_itself_back() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if _unit(module) != _unit(target):
                packages[_unit(module)].add(_unit(target))
    assert _cycles(packages) == []


def test_no_module_imports_itself_back() -> None:
    """A module importing its own package's ``__init__`` (for what it re-exports) is not counted:
    the package is the module's parent, not a peer."""
    modules = {
        module: {t for t in targets if not module.startswith(f"{t}.")}
        for module, targets in _graph().items()
    }
    assert _cycles(modules) == []
