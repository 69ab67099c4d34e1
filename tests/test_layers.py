"""Imports point down only: adapters -> specs -> machines -> kernel; the kernel does no IO.

Every module imports the layers as ``statewright.<layer>``; a bare ``kernel``
or ``adapters`` import would claim a name users' own projects use. Inside the
kernel, its root modules (machine, step, system, trace, ...) know nothing of
the checker, and the checker nothing of drawing. Inside adapters, the runtime
never imports the test harnesses (nor hypothesis), and checking on worker
processes needs only the kernel; the command (``adapters/cli``) and the
pytest plugin (``adapters/testing``) share the project room
(``adapters/project``), and the harnesses never import the command. Nothing
inside imports the facade, and no module imports another that imports it
back, however indirectly: there are no import circles.

The circle check builds the import graph of every module with `ast` -- each
``import``, at the top or nested in a function or an ``if TYPE_CHECKING:``
block -- and looks for a strongly connected component of more than one
module. An import names the deepest module it reaches (``from
statewright.kernel.checker import report`` reaches ``kernel.checker.report``;
``from statewright.kernel.checker import Spec`` reaches ``kernel.checker``), not
the packages on the way. The only imports allowed to reach *up* are listed in
`DEFERRED_UP`, each with its reason, and must sit inside a function.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "kernel": {"kernel"},
    "machines": {"kernel", "machines"},
    "specs": {"kernel", "machines", "specs"},
    "adapters": {"kernel", "machines", "specs", "adapters"},
}
LAYERS = set(ALLOWED)
NO_IO = {"os", "io", "sys", "time", "random", "asyncio", "socket", "sqlite3", "aiosqlite", "asyncpg", "pathlib", "subprocess", "threading"}
SOURCES = [p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")] + list((ROOT / "statewright").glob("*.py"))


@functools.cache
def tree(path: Path) -> ast.Module:
    """``path`` parsed, once for every test of this module."""
    return ast.parse(path.read_text())


@functools.cache
def imports(path: Path) -> frozenset[str]:
    """Dotted names of every absolute import in ``path`` (nested ones and ``TYPE_CHECKING`` ones included)."""
    out: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return frozenset(out)


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "statewright" and len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down(layer: str) -> None:
    for path in (ROOT / layer).rglob("*.py"):
        wrong = {layer_of(n) for n in imports(path)} - ALLOWED[layer] - {None}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"  # type: ignore[type-var]


def test_no_bare_layer_imports() -> None:
    for path in SOURCES + list((ROOT / "tests").rglob("*.py")):
        bare = {n for n in imports(path) if n.split(".")[0] in LAYERS}
        assert not bare, f"{path.relative_to(ROOT)} imports {sorted(bare)} outside statewright"


def test_the_kernel_does_no_io() -> None:
    for path in (ROOT / "kernel").rglob("*.py"):
        io = {n.split(".")[0] for n in imports(path)} & NO_IO
        assert not io, f"{path.relative_to(ROOT)} imports {sorted(io)}"


def test_the_runtime_does_not_import_test_harnesses() -> None:
    for path in (ROOT / "adapters" / "runtime").rglob("*.py"):
        bad = {n for n in imports(path) if n.split(".")[0] in {"hypothesis", "pytest"}
               or n.startswith(("statewright.adapters.testing", "statewright.adapters.cli"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_package_links_the_layers() -> None:
    for layer in LAYERS:
        link = ROOT / "statewright" / layer
        assert link.is_symlink() and link.resolve() == ROOT / layer


def test_the_kernel_root_knows_nothing_of_the_checker_or_drawing() -> None:
    for path in (ROOT / "kernel").glob("*.py"):
        if path.name == "__init__.py":  # the package hands on the checker's public names
            continue
        wrong = {n for n in imports(path) if n.startswith(("statewright.kernel.checker", "statewright.kernel.draw"))}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_checker_does_not_draw() -> None:
    for path in (ROOT / "kernel" / "check").rglob("*.py"):
        wrong = {n for n in imports(path) if n.startswith("statewright.kernel.draw")}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_checking_on_workers_needs_only_the_kernel() -> None:
    for path in (ROOT / "adapters" / "checking").rglob("*.py"):
        wrong = {n for n in imports(path) if n.startswith("statewright.") and not n.startswith(
            ("statewright.kernel", "statewright.adapters.checking"))}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


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
    for node in ast.walk(tree(path)):
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


DEFERRED_UP = {
    ("statewright.kernel.checker.report", "statewright.kernel.checker.text"):
        "a Report renders itself (str(report)) with the renderer that reads reports",
    ("statewright.kernel.checker.report", "statewright.kernel.checker.html"):
        "a Report renders itself in a notebook (_repr_html_) with the renderer that reads reports",
}
"""The only imports that reach *up*: made inside a function, so that no module needs the other to load."""


def graph() -> nx.DiGraph:
    """Every import between statewright modules, but the deliberate `DEFERRED_UP` ones."""
    g = nx.DiGraph()
    for module, path in MODULES.items():
        g.add_node(module)
        g.add_edges_from((module, t) for t in targets(path, module) if t != module and (module, t) not in DEFERRED_UP)
    return g


def deferred(path: Path) -> set[str]:
    """The modules ``path`` imports only inside function bodies."""
    parsed = tree(path)
    inside: set[str] = set()
    for fn in ast.walk(parsed):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.module:
                    inside.add(node.module)
    top = {node.module for node in parsed.body if isinstance(node, ast.ImportFrom) and node.module}
    return inside - top


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


def test_the_imports_that_reach_up_are_deferred() -> None:
    for (module, target), why in DEFERRED_UP.items():
        assert target in deferred(MODULES[module]), f"{module} must import {target} inside a function: {why}"


def test_no_import_circles_at_all() -> None:
    found = circles(graph())
    assert not found, f"import circles: {_shown(found)}"


def test_circles_are_found() -> None:
    """The circle finder on a made-up graph: one circle of three, a self-free chain left alone."""
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    assert circles(g) == [["a", "b", "c", "a"]]
