"""The model checker: declare a `Spec`, call `check`, read the `Report` (or `simulate` for a `Simulation`)."""

from statewright.kernel.check.report import Coverage, Progress, PropertyResult, Report, Status, StopReason, TraceStep, Verdict
from statewright.kernel.check.search import check
from statewright.kernel.check.simulate import Simulation, simulate
from statewright.kernel.check.spec import Bounds, Kind, Property, Spec, always, sometimes, terminal_stable, transition
from statewright.kernel.check.temporal import (
    Fair,
    always_eventually,
    eventually,
    eventually_always,
    leads_to,
    strong_fair,
    weak_fair,
)

__all__ = [
    "Bounds",
    "Coverage",
    "Fair",
    "Kind",
    "Progress",
    "Property",
    "PropertyResult",
    "Report",
    "Simulation",
    "Spec",
    "Status",
    "StopReason",
    "TraceStep",
    "Verdict",
    "always",
    "always_eventually",
    "check",
    "eventually",
    "eventually_always",
    "leads_to",
    "simulate",
    "sometimes",
    "strong_fair",
    "terminal_stable",
    "transition",
    "weak_fair",
]
