"""The model checker: declare a `Spec`, call `check`, read the `Report`."""

from statewright.kernel.check.bfs import check
from statewright.kernel.check.report import Coverage, Progress, PropertyResult, Report, Status, StopReason, TraceStep, Verdict
from statewright.kernel.check.spec import Bounds, Kind, Property, Spec, always, sometimes, terminal_stable, transition

__all__ = [
    "Bounds",
    "Coverage",
    "Kind",
    "Progress",
    "Property",
    "PropertyResult",
    "Report",
    "Spec",
    "Status",
    "StopReason",
    "TraceStep",
    "Verdict",
    "always",
    "check",
    "sometimes",
    "terminal_stable",
    "transition",
]
