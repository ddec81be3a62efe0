"""Data flows one way: no import circle anywhere in ``steerlab/``.

Every ``import`` statement counts, wherever it stands (module level, inside a function, under
``if TYPE_CHECKING``): an import moved into a function still ties the two files together, it
only hides the tie from whoever reads the top of the file. Two levels are checked: files, and
floors (each top-level module of ``steerlab/`` and each of its folders, taken as one room).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

CORE = Path(__file__).parent.parent / "steerlab"

Graph = dict[str, dict[str, int]]  # module -> {module it imports: line of the first such import}


def module_name(path: Path, root: Path) -> str:
    """``root/run/report.py`` -> ``steerlab.run.report``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool, modules: set[str]) -> list[str]:
    """The modules of the tree that one import statement names (``from a import b``: ``a.b``
    when b is a module, else ``a``); absolute and relative imports alike."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    base = node.module or ""
    if node.level:
        package = here.split(".") if is_package else here.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    return [n for n in names if n in modules]


def import_graph(root: Path) -> Graph:
    """Every import between the modules under ``root`` (the package's own ``__init__`` left out:
    it names its submodules lazily, by string)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: Graph = {}
    for name, path in files.items():
        edges = graph.setdefault(name, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(node, name, path.name == "__init__.py", set(files)):
                    if target not in (name, root.name):
                        edges.setdefault(target, node.lineno)
    return graph


def floor_of(module: str) -> str:
    """The room a module belongs to: ``steerlab.run.report`` -> ``steerlab.run``; ``steerlab.stats`` itself."""
    return ".".join(module.split(".")[:2])


def floor_graph(graph: Graph) -> dict[str, dict[str, str]]:
    """Folders and top-level modules as rooms: room -> {room it imports: one file-level arrow that does it}."""
    rooms: dict[str, dict[str, str]] = {}
    for source, targets in graph.items():
        edges = rooms.setdefault(floor_of(source), {})
        for target, line in targets.items():
            if floor_of(target) != floor_of(source):
                edges.setdefault(floor_of(target), f"{source}:{line} -> {target}")
    return rooms


def cycles(graph: dict[str, dict[str, object]]) -> Iterator[tuple[list[str], list[str]]]:
    """For each group of nodes that reach each other (Tarjan's strongly connected components):
    one closed path through it (first node repeated at the end) and all its members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while not group or group_top != node:
                group_top = stack.pop()
                group.add(group_top)
            if len(group) > 1:
                found.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    for group in found:
        yield closed_path(graph, group), sorted(group)


def closed_path(graph: dict[str, dict[str, object]], group: set[str]) -> list[str]:
    """The shortest way from the group's first node around and back to it, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, {})):
                if nxt == start:
                    return paths[node] + [start]
                if nxt in group and nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no closed path through {sorted(group)}")


def describe(path: list[str], members: list[str], graph: dict[str, dict[str, object]]) -> str:
    """``a -> b -> a`` with, under it, what makes each arrow (a line number, or a file-level
    arrow) and, when more are tied in, every member of the circle."""
    arrows = [f"    {a} -> {b}: {graph[a][b]}" for a, b in zip(path, path[1:])]
    more = [f"    (one circle with: {', '.join(members)})"] if len(members) > len(path) - 1 else []
    return "\n".join([" -> ".join(path), *arrows, *more])


def test_no_file_of_steerlab_imports_itself_through_others():
    graph = import_graph(CORE)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 150  # the whole tree was read
    found = [describe(path, members, graph) for path, members in cycles(graph)]
    assert not found, "import circles between files:\n" + "\n".join(found)


def test_no_floor_of_steerlab_imports_itself_through_others():
    """``run/`` may use ``metrics/`` or be used by it, not both (a folder is one room)."""
    rooms = floor_graph(import_graph(CORE))
    assert {"steerlab.run", "steerlab.model", "steerlab.metrics", "steerlab.stats"} <= set(rooms)
    found = [describe(path, members, rooms) for path, members in cycles(rooms)]
    assert not found, "import circles between floors:\n" + "\n".join(found)


@pytest.fixture()
def tangled(tmp_path: Path) -> Path:
    """A small package with a circle hidden in a function and one through a relative import."""
    root = tmp_path / "pkg"
    (root / "low").mkdir(parents=True)
    files = {"__init__.py": "", "top.py": "from pkg.low import a\n", "low/__init__.py": "",
             "low/a.py": "def f():\n    from pkg.low.b import g\n",
             "low/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\nfrom pkg import top\n"}
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_the_checker_names_circles_made_by_function_level_type_checking_and_relative_imports(tangled):
    graph = import_graph(tangled)
    assert graph["pkg.low.a"] == {"pkg.low.b": 2} and graph["pkg.low.b"] == {"pkg.low.a": 3, "pkg.top": 4}
    assert list(cycles(graph)) == [(["pkg.low.a", "pkg.low.b", "pkg.low.a"], ["pkg.low.a", "pkg.low.b", "pkg.top"])]
    assert "(one circle with: pkg.low.a, pkg.low.b, pkg.top)" in describe(*next(cycles(graph)), graph)
    rooms = floor_graph(graph)
    assert list(cycles(rooms)) == [(["pkg.low", "pkg.top", "pkg.low"], ["pkg.low", "pkg.top"])]
    assert "pkg.low.b:4 -> pkg.top" in describe(*next(cycles(rooms)), rooms)
