"""The ``statewright`` command and what it prints: spec loading, text and JSON reports, diagrams.

`main` and `run` (from `adapters.cli.command`) are imported on first use, so
the pytest plugin can read a project's settings (`adapters.cli.project`)
without importing the whole command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.adapters.cli.command import main, run

__all__ = ["main", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from statewright.adapters.cli import command

        return getattr(command, name)
    raise AttributeError(f"module 'statewright.adapters.cli' has no attribute {name!r}")
