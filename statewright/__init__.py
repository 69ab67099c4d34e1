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
`suite`, `run_suite` and `replay` (hypothesis suites from a spec) are imported
on first use, so ``import statewright`` does not import hypothesis.
"""

from __future__ import annotations

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
    Verdict,
    always,
    check,
    sometimes,
    step,
    terminal_stable,
    transition,
)

if TYPE_CHECKING:
    from statewright.adapters.testing.stateful import replay, run_suite, suite

__all__ = [
    "Accepted",
    "Action",
    "Authority",
    "Bounds",
    "DefinitionError",
    "Guard",
    "Kind",
    "Machine",
    "Reason",
    "Rejected",
    "Report",
    "Route",
    "Spec",
    "Status",
    "StopReason",
    "System",
    "SystemGuard",
    "TraceStep",
    "Transition",
    "Verdict",
    "always",
    "check",
    "replay",
    "run_suite",
    "sometimes",
    "step",
    "suite",
    "terminal_stable",
    "transition",
]

_LAZY = {"suite", "run_suite", "replay"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from statewright.adapters.testing import stateful

        return getattr(stateful, name)
    raise AttributeError(f"module 'statewright' has no attribute {name!r}")
