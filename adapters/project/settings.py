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

`statewright_version` reads statewright's own version: from the installed
distribution, else from the pyproject.toml beside the package in a checkout.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statewright.adapters.project.errors import UsageError, shown_path

__all__ = ["Project", "find_project", "statewright_version"]

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


def statewright_version() -> str:
    """statewright's version: the installed distribution's, else the ``[project] version`` of a checkout.

    >>> statewright_version().count(".") >= 1
    True
    """
    try:
        return importlib.metadata.version("statewright")
    except importlib.metadata.PackageNotFoundError:
        pass
    found = importlib.util.find_spec("statewright")
    for folder in found.submodule_search_locations or () if found is not None else ():
        try:
            data = tomllib.loads((Path(folder).parent / "pyproject.toml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        version = data.get("project", {}).get("version")
        if isinstance(version, str) and data["project"].get("name") == "statewright":
            return version
    return "unknown (not installed, and no pyproject.toml beside the package)"
