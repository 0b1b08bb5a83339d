"""The code's layers point one way: no import circles between modules, and none between the folders
of a package (``resources`` must not import ``io_managers`` when ``io_managers`` imports ``resources``).

A circle makes a module impossible to read, test or move alone, and a folder that imports one that
imports it back has no place in the layering a newcomer reads (ingest -> lake -> warehouse -> app).
The graph is read from the source with ``ast``, so the test needs no import of the code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spotify_assets", "spotify_sandbox", "app")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` counts ``a.b`` when it is a module)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in out if m in known and m != name}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative enough for ~200 nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _folders(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between each package's first-level folders (a top-level module is its own)."""

    def folder(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            if folder(module) != folder(target):
                edges.setdefault(folder(module), set()).add(folder(target))
    return edges


def _names(circles: Iterable[list[str]]) -> list[str]:
    return [" <-> ".join(c) for c in circles]


def test_no_module_imports_itself_back() -> None:
    assert _names(_circles(_graph())) == []


def test_no_folder_imports_one_that_imports_it() -> None:
    assert _names(_circles(_folders(_graph()))) == []


def test_the_reader_sees_the_imports() -> None:
    """The graph is not empty by mistake: a known edge is in it (else both tests above pass vacuously)."""
    graph = _graph()
    assert "spotify_assets.settings" in graph["spotify_assets.definitions"] or any(
        m.startswith("spotify_assets.") for m in graph["spotify_assets.definitions"]
    )
    assert len(graph) > 100
