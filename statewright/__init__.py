"""statewright: lifecycle state machines you can prove.

Declare a lifecycle as a `Machine` (a frozen state, closed unions of inputs
and effects, one table of guarded `Transition` rows), drive it with the pure
`step`, compose instances into a `System`, and prove a `Spec` with `check`.
Everything a user's own machines and specs need comes from here::

    >>> from dataclasses import dataclass
    >>> from enum import Enum
    >>> import statewright as sw
    >>> class Light(Enum):
    ...     OFF = "off"
    ...     ON = "on"
    >>> @dataclass(frozen=True, slots=True)
    ... class Flip: ...
    >>> toggle = sw.Machine("toggle", initial=Light.OFF, transitions=[
    ...     sw.Transition(Light.OFF, Flip, Light.ON), sw.Transition(Light.ON, Flip, Light.OFF)])
    >>> sw.step(toggle, Light.OFF, Flip()).state
    <Light.ON: 'on'>
    >>> sw.check(sw.Spec("toggle", toggle, [Flip()], [sw.always("known", lambda s: s in Light)])).distinct_states
    2

The layers live under this name too: `statewright.kernel` (pure core),
`statewright.machines` (the lifecycle library), `statewright.specs` (bundled
specs), `statewright.adapters` (stores, driver, command line, test harnesses).
The shell's entry points are here too, imported on first use so that
``import statewright`` stays light: `suite`, `run_suite` and `replay`
(hypothesis suites from a spec), `Driver`, `Catalog`, `MemoryStore`,
`SqliteStore` and `PostgresStore` (running machines against a store; the
last needs the ``postgres`` extra, asyncpg), `from_transitions` and
`to_transitions` (the pytransitions bridge) and `cli` (the ``statewright``
command as a function returning its exit code).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from statewright.kernel import (
    Accepted,
    Action,
    Authority,
    Bounds,
    DefinitionError,
    Guard,
    Kind,
    Machine,
    Reason,
    Rejected,
    Report,
    Route,
    Spec,
    Status,
    StopReason,
    System,
    SystemGuard,
    TraceStep,
    Transition,
    UserCodeError,
    Verdict,
    always,
    always_eventually,
    eventually,
    eventually_always,
    leads_to,
    check,
    sometimes,
    strong_fair,
    step,
    terminal_stable,
    transition,
    weak_fair,
)
from statewright.kernel.check import Simulation, simulate

if TYPE_CHECKING:
    from statewright.adapters.cli import run as cli
    from statewright.adapters.interop.transitions_bridge import from_transitions, to_transitions
    from statewright.adapters.runtime.driver import Driver
    from statewright.adapters.runtime.memory import MemoryStore
    from statewright.adapters.runtime.postgres import PostgresStore
    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.adapters.runtime.store import Catalog
    from statewright.adapters.runtime.workers import check_parallel
    from statewright.adapters.testing.stateful import replay, run_suite, suite

__all__ = [
    "Accepted",
    "Action",
    "Authority",
    "Bounds",
    "Catalog",
    "DefinitionError",
    "Driver",
    "Guard",
    "Kind",
    "Machine",
    "MemoryStore",
    "PostgresStore",
    "Reason",
    "Rejected",
    "Report",
    "Route",
    "Simulation",
    "Spec",
    "SqliteStore",
    "Status",
    "StopReason",
    "System",
    "SystemGuard",
    "TraceStep",
    "Transition",
    "UserCodeError",
    "Verdict",
    "always",
    "always_eventually",
    "eventually",
    "eventually_always",
    "leads_to",
    "check",
    "check_parallel",
    "cli",
    "from_transitions",
    "replay",
    "run_suite",
    "simulate",
    "sometimes",
    "strong_fair",
    "step",
    "suite",
    "terminal_stable",
    "to_transitions",
    "transition",
    "weak_fair",
]

_LAZY = {
    "suite": ("statewright.adapters.testing.stateful", "suite"),
    "run_suite": ("statewright.adapters.testing.stateful", "run_suite"),
    "replay": ("statewright.adapters.testing.stateful", "replay"),
    "Driver": ("statewright.adapters.runtime.driver", "Driver"),
    "Catalog": ("statewright.adapters.runtime.store", "Catalog"),
    "MemoryStore": ("statewright.adapters.runtime.memory", "MemoryStore"),
    "SqliteStore": ("statewright.adapters.runtime.sqlite", "SqliteStore"),
    "PostgresStore": ("statewright.adapters.runtime.postgres", "PostgresStore"),
    "from_transitions": ("statewright.adapters.interop.transitions_bridge", "from_transitions"),
    "to_transitions": ("statewright.adapters.interop.transitions_bridge", "to_transitions"),
    "cli": ("statewright.adapters.cli", "run"),
    "check_parallel": ("statewright.adapters.runtime.workers", "check_parallel"),
}


def __getattr__(name: str) -> Any:
    """Import the shell's entry points on first use (PEP 562)."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'statewright' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
