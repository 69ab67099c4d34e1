"""Arrows inside adapters, and no import circles anywhere in statewright.

The command (``adapters/cli``) and the pytest plugin (``adapters/testing``)
share what finds and loads a project's specs through one room both import,
``adapters/project``; the command may run the test harnesses, the harnesses
never import the command. Nothing inside statewright imports the facade
(``statewright/__init__.py``): it sits on top and imports them.

The circle check builds the import graph of every module with `ast` -- each
``import``, at the top or nested in a function or an ``if TYPE_CHECKING:``
block -- and looks for a strongly connected component of more than one
module. An import names the deepest module it reaches (``from
statewright.kernel.check import report`` reaches ``kernel.check.report``;
``from statewright.kernel.check import Spec`` reaches ``kernel.check``), not
the packages on the way, whose ``__init__`` files importing their own
submodules would otherwise make every package a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("kernel", "machines", "specs", "adapters")
SUBPACKAGES = {"statewright." + layer for layer in LAYERS}


def _module_name(path: Path) -> str:
    """``adapters/cli/text.py`` -> ``statewright.adapters.cli.text``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "statewright":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["statewright", *parts])


def _sources() -> dict[str, Path]:
    found = {_module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}
    found.update({_module_name(p): p for p in (ROOT / "statewright").glob("*.py")})
    return found


MODULES = _sources()


def _imported(path: Path, module: str) -> Iterator[tuple[str, str | None]]:
    """``(module, name)`` for every import in ``path`` (``name`` is what a ``from`` import takes)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield base, alias.name


def targets(path: Path, module: str) -> set[str]:
    """The statewright modules ``path`` imports (each import's deepest module)."""
    out: set[str] = set()
    for base, name in _imported(path, module):
        if not (base == "statewright" or base.startswith("statewright.")):
            continue
        if name is not None and f"{base}.{name}" in MODULES:
            out.add(f"{base}.{name}")
        elif base in MODULES:
            out.add(base)
    return out


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for module, path in MODULES.items():
        g.add_node(module)
        g.add_edges_from((module, t) for t in targets(path, module) if t != module)
    return g


def circles(g: nx.DiGraph) -> list[list[str]]:
    """Each strongly connected component of more than one module, as one circle through it."""
    out = []
    for component in nx.strongly_connected_components(g):
        if len(component) > 1:
            sub = g.subgraph(component)
            cycle = nx.find_cycle(sub, source=min(component))
            out.append([a for a, _ in cycle] + [cycle[0][0]])
    return sorted(out)


def _shown(found: list[list[str]]) -> str:
    return "; ".join(" -> ".join(m.removeprefix("statewright.") for m in c) for c in found)


def _under(module: str, folder: str) -> bool:
    return module == f"statewright.{folder}" or module.startswith(f"statewright.{folder}.")


def test_the_graph_sees_every_kind_of_import() -> None:
    """Relative, nested and TYPE_CHECKING imports all count (a graph that saw none would pass anything)."""
    g = graph()
    assert g.has_edge("statewright.adapters.cli.command", "statewright.adapters.project.targets")
    assert g.has_edge("statewright.adapters.cli.commands", "statewright.adapters.testing.stateful")  # nested
    assert g.has_edge("statewright", "statewright.adapters.cli")  # under TYPE_CHECKING
    assert len(MODULES) > 80 and g.number_of_edges() > 300


def test_testing_never_imports_the_command() -> None:
    bad = {
        (m, t)
        for m, path in MODULES.items()
        if _under(m, "adapters.testing")
        for t in targets(path, m)
        if _under(t, "adapters.cli")
    }
    assert not bad, f"adapters/testing imports the command: {sorted(bad)}"


@pytest.mark.parametrize("side", ["adapters.cli", "adapters.testing"])
def test_the_command_and_the_plugin_share_the_project_room(side: str) -> None:
    users = {
        m for m, path in MODULES.items()
        if _under(m, side) and any(_under(t, "adapters.project") for t in targets(path, m))
    }
    assert users, f"nothing in {side} imports adapters.project"


def test_the_project_room_imports_neither_the_command_nor_the_harnesses() -> None:
    bad = {
        (m, t)
        for m, path in MODULES.items()
        if _under(m, "adapters.project")
        for t in targets(path, m)
        if _under(t, "adapters.cli") or _under(t, "adapters.testing")
    }
    assert not bad, f"adapters/project imports what imports it: {sorted(bad)}"


def test_nothing_inside_imports_the_facade() -> None:
    bad = []
    for module, path in MODULES.items():
        if module == "statewright" or module == "statewright.__main__":
            continue
        for base, name in _imported(path, module):
            if base == "statewright" and (name is None or f"statewright.{name}" not in SUBPACKAGES):
                bad.append(f"{module} imports statewright" + (f".{name}" if name else ""))
    assert not bad, "; ".join(bad)


def test_no_import_circles_outside_the_kernel() -> None:
    """A circle through any module outside kernel/ (adapters, specs, machines, the facade) fails now."""
    found = [c for c in circles(graph()) if any(not _under(m, "kernel") for m in c)]
    assert not found, f"import circles: {_shown(found)}"


@pytest.mark.xfail(strict=True, reason="kernel circles: the lead's part")
def test_no_import_circles_at_all() -> None:
    found = circles(graph())
    assert not found, f"import circles: {_shown(found)}"


def test_circles_are_found() -> None:
    """The circle finder on a made-up graph: one circle of three, a self-free chain left alone."""
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    assert circles(g) == [["a", "b", "c", "a"]]
