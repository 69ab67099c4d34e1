"""A project's ``[tool.statewright]`` table: which specs are the project's own.

Found by walking up from the current directory to the nearest
``pyproject.toml`` that has a ``[tool.statewright]`` table::

    [tool.statewright]
    specs = ["orders.py", "myapp.lifecycles", "myapp.billing:invoice_spec"]
    pytest = true        # the pytest plugin collects a check and a suite item per spec
    examples = 100       # programs per generated suite under pytest

``specs`` are targets as the command line takes them (files relative to the
pyproject's folder, or modules importable from it). Inside such a project
``statewright check --all`` checks exactly these specs, and ``inspect``
decodes records through their machines.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statewright.adapters.project.errors import UsageError, shown_path

__all__ = ["Project", "find_project"]

KEYS = ("specs", "pytest", "examples")


@dataclass(frozen=True, slots=True)
class Project:
    """A project's statewright settings; ``root`` is the folder holding its pyproject.toml."""

    root: Path
    specs: tuple[str, ...]
    pytest: bool = True
    examples: int = 100

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"


def find_project(start: Path | None = None) -> Project | None:
    """The project around ``start`` (default: the current directory), or None outside one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            table = _table(candidate)
            if table is not None:
                return _project(folder, candidate, table)
    return None


def _table(path: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {shown_path(path)}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{shown_path(path)}: {exc}") from None
    tool = data.get("tool")
    table = tool.get("statewright") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else None


def _project(root: Path, path: Path, table: dict[str, Any]) -> Project:
    where = f"{shown_path(path)}: [tool.statewright]"
    for key in table:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KEYS)})"
            raise UsageError(f"{where} has an unknown key {key!r}{hint}")
    specs = table.get("specs", [])
    if not isinstance(specs, list) or not all(isinstance(s, str) and s.strip() for s in specs):
        raise UsageError(f"{where} specs must be a list of module names or file paths")
    pytest = table.get("pytest", True)
    if not isinstance(pytest, bool):
        raise UsageError(f"{where} pytest must be true or false")
    examples = table.get("examples", 100)
    if not isinstance(examples, int) or isinstance(examples, bool) or examples < 1:
        raise UsageError(f"{where} examples must be a positive integer")
    return Project(root, tuple(s.strip() for s in specs), pytest, examples)
