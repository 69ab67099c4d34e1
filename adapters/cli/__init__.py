"""The ``statewright`` command and what it prints: spec loading, text and JSON reports, diagrams."""

from statewright.adapters.cli.main import main, run

__all__ = ["main", "run"]
