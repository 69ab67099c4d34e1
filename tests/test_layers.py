"""Imports point down only: adapters -> specs -> machines -> kernel; the kernel does no IO."""

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
NO_IO = {"os", "io", "sys", "time", "random", "asyncio", "socket", "sqlite3", "aiosqlite", "pathlib", "subprocess", "threading"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down(layer: str) -> None:
    for path in (ROOT / layer).rglob("*.py"):
        wrong = (imports(path) & LAYERS) - ALLOWED[layer]
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_kernel_does_no_io() -> None:
    for path in (ROOT / "kernel").rglob("*.py"):
        io = imports(path) & NO_IO
        assert not io, f"{path.relative_to(ROOT)} imports {sorted(io)}"
