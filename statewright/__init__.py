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
    >>> sw.__version__ == sw.version()
    True

The layers live under this name too: `statewright.kernel` (pure core),
`statewright.machines` (the lifecycle library), `statewright.specs` (bundled
specs), `statewright.adapters` (stores, driver, command line, test harnesses).
`check` is the one entry point for every engine: ``check(spec)`` on one
core, ``check(spec, workers=4)`` on four processes, the same report either
way. The shell's entry points are here too, imported on first use so that
``import statewright`` stays light: `suite`, `run_suite` and `replay`
(hypothesis suites from a spec), `Driver`, `Catalog`, `MemoryStore`,
`SqliteStore` and `PostgresStore` (running machines against a store; the
last needs the ``postgres`` extra, asyncpg), `Dispatcher`, `Delivery` and
`Retry` (carrying committed effects out), `SyncDriver` and `SyncDispatcher`
(the same without async code), `from_transitions` and
`to_transitions` (the pytransitions bridge) and `cli` (the ``statewright``
command as a function returning its exit code). Every type those functions
return is here as well, and ``dir(statewright)`` lists them all.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from statewright.adapters.checking import check
from statewright.kernel import (
    Accepted,
    Action,
    Authority,
    Blocked,
    Committed,
    Coverage,
    DefinitionError,
    Emitted,
    Fair,
    Fairness,
    Guard,
    Kind,
    Machine,
    Options,
    Progress,
    Property,
    PropertyResult,
    Reason,
    Rejected,
    Report,
    Route,
    Simulation,
    Snapshot,
    Spec,
    Staged,
    Stale,
    Status,
    StopReason,
    System,
    SystemGuard,
    SystemState,
    TraceStep,
    Transition,
    UserCodeError,
    Verdict,
    always,
    always_eventually,
    always_step,
    eventually,
    eventually_always,
    leads_to,
    simulate,
    sometimes,
    step,
    strong_fair,
    terminal_stable,
    weak_fair,
)

if TYPE_CHECKING:
    from statewright.adapters.cli import run as cli
    from statewright.adapters.interop.transitions_bridge import (
        Bridged,
        from_transitions,
        to_transitions,
    )
    from statewright.adapters.runtime.blocking import SyncDispatcher, SyncDriver
    from statewright.adapters.runtime.dispatch import Delivery, Dispatcher, Retry
    from statewright.adapters.runtime.driver import (
        Acted,
        ActedAccepted,
        ActedBlocked,
        Driver,
        Fed,
        FedAccepted,
        FedRejected,
    )
    from statewright.adapters.runtime.memory import MemoryStore
    from statewright.adapters.runtime.postgres import PostgresStore
    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.adapters.runtime.store import Catalog, Record, StoreError
    from statewright.adapters.testing.stateful import Replayed, replay, run_suite, suite

    # deprecated, for one release (see _DEPRECATED)
    from statewright.adapters.checking import check_parallel
    from statewright.kernel.checker.properties import transition
    from statewright.kernel.checker.spec import Bounds

    Conflict = Stale


def version() -> str:
    """The installed distribution's version (the project's own when it runs from a source tree)."""
    from importlib import metadata

    try:
        return metadata.version("statewright")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree never installed
        return "0+unknown"


__version__ = version()

__all__ = [
    "Accepted",
    "Acted",
    "ActedAccepted",
    "ActedBlocked",
    "Action",
    "Authority",
    "Blocked",
    "Bridged",
    "Catalog",
    "Committed",
    "Coverage",
    "DefinitionError",
    "Driver",
    "Delivery",
    "Dispatcher",
    "Emitted",
    "Fair",
    "Fairness",
    "Fed",
    "FedAccepted",
    "FedRejected",
    "Guard",
    "Kind",
    "Machine",
    "MemoryStore",
    "Options",
    "PostgresStore",
    "Progress",
    "Property",
    "PropertyResult",
    "Reason",
    "Record",
    "Rejected",
    "Replayed",
    "Report",
    "Retry",
    "Route",
    "Simulation",
    "Snapshot",
    "Spec",
    "SqliteStore",
    "Stale",
    "Staged",
    "Status",
    "StopReason",
    "StoreError",
    "SyncDispatcher",
    "SyncDriver",
    "System",
    "SystemGuard",
    "SystemState",
    "TraceStep",
    "Transition",
    "UserCodeError",
    "Verdict",
    "__version__",
    "always",
    "always_eventually",
    "always_step",
    "check",
    "cli",
    "eventually",
    "eventually_always",
    "from_transitions",
    "leads_to",
    "replay",
    "run_suite",
    "simulate",
    "sometimes",
    "step",
    "strong_fair",
    "suite",
    "terminal_stable",
    "to_transitions",
    "version",
    "weak_fair",
]

_LAZY = {
    "suite": ("statewright.adapters.testing.stateful", "suite"),
    "run_suite": ("statewright.adapters.testing.stateful", "run_suite"),
    "replay": ("statewright.adapters.testing.stateful", "replay"),
    "Replayed": ("statewright.adapters.testing.stateful", "Replayed"),
    "Driver": ("statewright.adapters.runtime.driver", "Driver"),
    "Fed": ("statewright.adapters.runtime.driver", "Fed"),
    "Acted": ("statewright.adapters.runtime.driver", "Acted"),
    "ActedAccepted": ("statewright.adapters.runtime.driver", "ActedAccepted"),
    "ActedBlocked": ("statewright.adapters.runtime.driver", "ActedBlocked"),
    "FedAccepted": ("statewright.adapters.runtime.driver", "FedAccepted"),
    "FedRejected": ("statewright.adapters.runtime.driver", "FedRejected"),
    "Catalog": ("statewright.adapters.runtime.store", "Catalog"),
    "Record": ("statewright.adapters.runtime.store", "Record"),
    "StoreError": ("statewright.adapters.runtime.store", "StoreError"),
    "MemoryStore": ("statewright.adapters.runtime.memory", "MemoryStore"),
    "SqliteStore": ("statewright.adapters.runtime.sqlite", "SqliteStore"),
    "PostgresStore": ("statewright.adapters.runtime.postgres", "PostgresStore"),
    "Dispatcher": ("statewright.adapters.runtime.dispatch", "Dispatcher"),
    "Delivery": ("statewright.adapters.runtime.dispatch", "Delivery"),
    "Retry": ("statewright.adapters.runtime.dispatch", "Retry"),
    "SyncDriver": ("statewright.adapters.runtime.blocking", "SyncDriver"),
    "SyncDispatcher": ("statewright.adapters.runtime.blocking", "SyncDispatcher"),
    "from_transitions": ("statewright.adapters.interop.transitions_bridge", "from_transitions"),
    "to_transitions": ("statewright.adapters.interop.transitions_bridge", "to_transitions"),
    "Bridged": ("statewright.adapters.interop.transitions_bridge", "Bridged"),
    "cli": ("statewright.adapters.cli", "run"),
}
"""The shell's names, imported on first use: name -> (module, attribute)."""

_DEPRECATED = {
    "transition": ("statewright.kernel.checker.properties", "transition", None),
    "check_parallel": ("statewright.adapters.checking", "check_parallel", None),
    "Bounds": ("statewright.kernel.checker.spec", "Bounds",
               "statewright.Bounds is deprecated: give constraint= and action_constraint= to the Spec and the "
               "cut-offs (max_depth, max_states, time_limit) to check()"),
    "Conflict": ("statewright.kernel.authority", "Stale",
                 "statewright.Conflict (the Authority's) is now statewright.Stale"),
}
"""Old names kept for one release: name -> (module, attribute, warning; None when calling it warns)."""


if not TYPE_CHECKING:  # for type checkers every name is imported above, so a typo is an error

    def __getattr__(name: str) -> Any:
        """Import the shell's entry points on first use (PEP 562); old names warn and still work."""
        if name in _DEPRECATED:
            module, attr, message = _DEPRECATED[name]
            if message is not None:
                warnings.warn(message, DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(module), attr)
        try:
            module, attr = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module 'statewright' has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """Every public name, the ones imported on first use included."""
    return sorted(set(globals()) | set(__all__))
