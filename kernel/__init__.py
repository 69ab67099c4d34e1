"""statewright's pure core: machines as data, a pure `step`, systems and the checker.

Nothing here does IO, reads a clock or draws randomness; the shell
(``adapters``) brings those in. Declare a `Machine`, drive it with `step` or an
`Authority`, compose instances into a `System`, and prove a `Spec` with `check`.
"""

from statewright.kernel.authority import Authority, Committed, Conflict, Snapshot, Staged
from statewright.kernel.check import (
    Bounds,
    Coverage,
    Kind,
    Progress,
    Property,
    PropertyResult,
    Report,
    Spec,
    Status,
    StopReason,
    TraceStep,
    Verdict,
    always,
    always_eventually,
    eventually,
    eventually_always,
    leads_to,
    check,
    sometimes,
    strong_fair,
    terminal_stable,
    transition,
    weak_fair,
)
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.kernel.system import Action, Blocked, Emitted, Route, System, SystemGuard, SystemState

__all__ = [
    "Accepted",
    "Action",
    "Authority",
    "Blocked",
    "Bounds",
    "Committed",
    "Conflict",
    "Coverage",
    "DefinitionError",
    "Emitted",
    "Guard",
    "Kind",
    "Machine",
    "Progress",
    "Property",
    "PropertyResult",
    "Reason",
    "Rejected",
    "Report",
    "Route",
    "Snapshot",
    "Spec",
    "Staged",
    "Status",
    "StopReason",
    "System",
    "SystemGuard",
    "SystemState",
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
    "sometimes",
    "strong_fair",
    "step",
    "terminal_stable",
    "transition",
    "weak_fair",
]
