"""No import cycles between modules of ``ssmrl``, ``agents`` and ``envs``: every module's import statements (top
level and inside functions, as in tests/project/test_import_contract.py) are edges, and the graph must be acyclic.

An edge goes to the module an import names: ``from a.b import c`` is an edge to ``a.b.c`` when that is a module,
else to ``a.b``; ``import a.b.c`` is an edge to ``a.b.c``. The parent packages Python runs on the way
(``a/__init__``, ``a/b/__init__``) are not edges: a package re-exporting its submodules is not a cycle.
Only statically named imports count (``importlib.import_module(name)`` with a computed name does not). C
extension modules (``envs/_frame_ops.c`` builds ``envs._frame_ops``) are modules too, with no imports.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from tests import ROOT
PACKAGES = ("ssmrl", "agents", "envs")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """{dotted name: source file} of every Python module and C extension source (``*.c``, built by setup.py)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")) + sorted((ROOT / package).rglob("*.c")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is one of ``modules`` (None outside the three packages)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def import_edges(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """{imported module: line of its first import} for module ``name`` at ``path``."""
    is_package = path.name == "__init__.py"
    edges: dict[str, int] = {}
    if path.suffix != ".py":  # a C extension
        return edges

    def add(target: str | None, line: int) -> None:
        if target is not None and target != name:
            edges.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_known(alias.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, one level up per extra dot
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in modules else _known(base, modules), node.lineno)
    return edges


def import_graph() -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    modules = _modules()
    return {name: import_edges(name, path, modules) for name, path in modules.items()}, modules


def find_cycles(graph: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One cycle ``[m0, m1, ..., m0]`` per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (a few hundred)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, dict[str, Any]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first search back to it)."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w in component and w not in parent and w != start:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")  # pragma: no cover


def describe(cycle: list[str], graph: dict[str, dict[str, int]], modules: dict[str, Path]) -> str:
    steps = [f"{a} -> {b} ({modules[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n    " + "\n    ".join(steps)


def test_no_import_cycles_between_modules():
    graph, modules = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n  " + "\n  ".join(describe(c, graph, modules) for c in cycles)


def test_no_import_cycles_between_agent_packages():
    """The learners under ``agents/`` depend on each other one way at most (``agents.sac``'s dataset command reads
    files with ``agents.offline``'s loader, never the reverse): modules collapsed to their ``agents.<x>`` package."""
    graph, modules = import_graph()
    package = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    collapsed: dict[str, dict[str, str]] = {}  # package -> {imported package: the first module import behind it}
    for a, edges in sorted(graph.items()):
        if a.startswith("agents."):
            targets = collapsed.setdefault(package(a), {})
            for b, line in edges.items():
                if b.startswith("agents.") and package(b) != package(a):
                    targets.setdefault(package(b), f"{a} -> {b} ({modules[a].relative_to(ROOT)}:{line})")
    cycles = find_cycles(collapsed)
    assert not cycles, "import cycles between agent packages:\n  " + "\n  ".join(
        " -> ".join(c) + "".join(f"\n    {collapsed[x][y]}" for x, y in zip(c, c[1:])) for c in cycles)


def test_the_cycle_finder_sees_imports_inside_functions_and_relative_imports(tmp_path):
    """The checker itself: a cycle made by a function-level import and a relative import is found and printed."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from pkg.a import f\n    return f\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py", "pkg.c": pkg / "c.py"}
    graph = {name: import_edges(name, path, modules) for name, path in modules.items()}
    assert graph == {"pkg": {}, "pkg.a": {"pkg.b": 1}, "pkg.b": {"pkg.a": 2}, "pkg.c": {"pkg.a": 1}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert find_cycles({**graph, "pkg.b": {}}) == []
