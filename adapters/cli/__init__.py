"""The ``statewright`` command and what it prints: text and JSON reports, diagrams.

Which specs a command means (a project's settings, files, modules, names) is
`adapters.project`'s business, shared with the pytest plugin. `main` and `run`
(from `adapters.cli.command`) are imported on first use, so importing this
package stays cheap.
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
