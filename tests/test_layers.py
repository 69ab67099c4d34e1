"""Imports point down only: adapters -> specs -> machines -> kernel; the kernel does no IO.

Every module imports the layers as ``statewright.<layer>``; a bare ``kernel``
or ``adapters`` import would claim a name users' own projects use. Inside the
kernel, its root modules (machine, step, system, trace, ...) know nothing of
the checker, and the checker nothing of drawing. Inside adapters, the runtime
never imports the test harnesses (nor hypothesis), and checking on worker
processes needs only the kernel. Nothing inside imports the facade, and no
module imports another that imports it back, however indirectly (imports under
``TYPE_CHECKING`` included): there are no import circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

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


def imports(path: Path) -> set[str]:
    """Dotted names of every absolute import in ``path`` (nested ones and ``TYPE_CHECKING`` ones included)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def module_name(path: Path) -> str:
    """The dotted name a source file is imported as (``statewright.kernel.check.search``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "statewright":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["statewright", *parts])


def import_graph() -> dict[str, set[str]]:
    """Module -> the statewright modules it imports (``from m import name`` counts ``m.name`` when that is a module)."""
    modules = {module_name(p): p for p in SOURCES if p.name != "__main__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


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
        wrong = {n for n in imports(path) if n.startswith(("statewright.kernel.check", "statewright.kernel.draw"))}
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


def test_nothing_inside_imports_the_facade() -> None:
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            assert "statewright" not in imports(path), f"{path.relative_to(ROOT)} imports the statewright facade"


def test_there_are_no_import_circles() -> None:
    graph = import_graph()
    assert len(graph) > 90 and "statewright.kernel.check.search" in graph["statewright.kernel.check.engine"]
    for start in sorted(graph):
        path = _circle(graph, start)
        assert path is None, "import circle: " + " -> ".join(path or ())


def _circle(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one (depth-first, iterative)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph[node]):
            if nxt == start:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}, "a") is None


def test_importing_statewright_stays_light() -> None:
    import subprocess
    import sys

    heavy = ["numpy", "multiprocessing", "hypothesis", "aiosqlite", "asyncpg", "networkx", "pydantic"]
    probe = f"import statewright, sys; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
