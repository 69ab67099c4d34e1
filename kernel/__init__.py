"""statewright's pure core: machines as data, a pure `step`, systems and the checker.

Nothing here does IO, reads a clock or draws randomness; the shell
(``adapters``) brings those in. Declare a `Machine`, drive it with `step` or an
`Authority`, compose instances into a `System`, and prove a `Spec` with `check`.

The rooms: the kernel's root modules (`machine`, `step`, `system`,
`authority`, `trace`, `errors`, `boundary`, `values`) know nothing of the
checker; `kernel.checker` is the checker and `kernel.draw` draws -- it may read
the checker, the checker never reads it.
"""

from statewright.kernel.authority import Authority, Committed, Snapshot, Staged, Stale
from statewright.kernel.checker import (
    Bounds,
    Coverage,
    Fair,
    Fairness,
    Kind,
    Options,
    Progress,
    Property,
    PropertyResult,
    Report,
    Simulation,
    Spec,
    Status,
    StopReason,
    Verdict,
    always,
    always_eventually,
    always_step,
    check,
    eventually,
    eventually_always,
    leads_to,
    simulate,
    sometimes,
    strong_fair,
    terminal_stable,
    weak_fair,
)
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.kernel.system import (
    Action,
    Blocked,
    Emitted,
    Route,
    System,
    SystemGuard,
    SystemState,
)
from statewright.kernel.trace import TraceStep

__all__ = [
    "Accepted",
    "Action",
    "Authority",
    "Blocked",
    "Bounds",
    "Committed",
    "Coverage",
    "DefinitionError",
    "Emitted",
    "Fair",
    "Fairness",
    "Guard",
    "Kind",
    "Machine",
    "Options",
    "Progress",
    "Property",
    "PropertyResult",
    "Reason",
    "Rejected",
    "Report",
    "Route",
    "Simulation",
    "Snapshot",
    "Spec",
    "Stale",
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
    "always_step",
    "check",
    "eventually",
    "eventually_always",
    "leads_to",
    "simulate",
    "sometimes",
    "step",
    "strong_fair",
    "terminal_stable",
    "weak_fair",
]

_DEPRECATED = {"transition": "always_step", "Conflict": "Stale"}


def __getattr__(name: str) -> object:
    """Deprecated names, kept for one release (each warns and names its successor)."""
    if name == "transition":
        from statewright.kernel.checker.properties import transition

        return transition
    if name == "Conflict":
        from statewright.kernel import authority

        return authority.Conflict  # warns
    raise AttributeError(f"module 'statewright.kernel' has no attribute {name!r}")
