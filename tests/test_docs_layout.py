"""docs/layout.md names every package and module of the tree, and only those.

A module is named by its path from the repository root in backticks
(`kernel/checker/search.py`), a package by its folder with a trailing slash
(`kernel/checker/`, which stands for its ``__init__.py``). The tree is walked
under the four layers and ``statewright/`` itself (whose links to the layers
are not followed again); ``__pycache__`` and non-Python files are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "layout.md"
TOPS = ("kernel", "machines", "specs", "adapters", "statewright")
NAMED = re.compile(r"`((?:" + "|".join(TOPS) + r")/(?:[\w]+/)*(?:\w+\.py)?)`")


def on_disk() -> set[str]:
    """Every package (``folder/``) and module (``folder/name.py``) under the tops, as paths from the root."""
    found: set[str] = set()
    for top in TOPS:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT)
            if "__pycache__" in rel.parts or any((ROOT / Path(*rel.parts[:i])).is_symlink()
                                                  for i in range(1, len(rel.parts) + 1)):
                continue
            if path.is_dir() and (path / "__init__.py").exists():
                found.add(f"{rel.as_posix()}/")
            elif path.suffix == ".py" and path.name != "__init__.py":
                found.add(rel.as_posix())
        found.add(f"{top}/")
    return found


def named() -> set[str]:
    """Every package and module path the page names."""
    return set(NAMED.findall(PAGE.read_text()))


def test_the_walk_finds_the_tree() -> None:
    """The walk itself sees what is there (a walk that finds nothing would pass everything)."""
    tree = on_disk()
    assert {"kernel/checker/", "kernel/checker/search.py", "adapters/runtime/driver.py", "statewright/__main__.py"} <= tree
    assert not any(p.startswith("statewright/kernel") for p in tree), "links into the layers are not walked twice"


def test_every_module_is_on_the_page() -> None:
    missing = sorted(on_disk() - named())
    assert not missing, f"docs/layout.md does not mention: {', '.join(missing)}"


def test_every_module_on_the_page_exists() -> None:
    stale = sorted(named() - on_disk())
    assert not stale, f"docs/layout.md names what does not exist: {', '.join(stale)}"
