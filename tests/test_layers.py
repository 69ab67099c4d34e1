"""Imports point down only: adapters -> specs -> machines -> kernel; the kernel does no IO.

Every module imports the layers as ``statewright.<layer>``; a bare ``kernel``
or ``adapters`` import would claim a name users' own projects use. Inside
adapters, the runtime never imports the test harnesses (nor hypothesis).
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
    """Dotted names of every absolute import in ``path``."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


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
