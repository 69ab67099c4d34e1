"""The model checker: declare a `Spec`, call `check`, read the `Report` (or `simulate` for a `Simulation`).

The rooms, one idea each:

* the model -- `spec` (`Spec`), `properties` (`always`, `always_step`,
  `eventually`, ...), `fairness` (`weak_fair`, `strong_fair`);
* how to search -- `options` (`Options`: cut-offs, workers, symmetry, hooks);
* compiling a spec -- `local` (interned local states and memoised steps),
  `space` (tables, views, successors, traces), `symmetry`;
* judging -- `judge` (invariants, witnesses, step properties, constraints,
  findings), `semantics` (what the built-ins mean), `behaviours` and
  `liveness` (temporal properties on the explored graph);
* the engines -- `search` (`Search`, one core), `lane` (the slow lane they
  share), `levels` and `packed` (the level engine and its 64-bit store),
  `workers` (the coordinator and its workers), `simulate` (random
  behaviours), `engine` (`check`, which picks one);
* the answer -- `report` (`Report`), `results` (statuses and coverage);
* `mutants` -- mutation testing of a spec.
"""

from statewright.kernel.checker.engine import check
from statewright.kernel.checker.fairness import Fair, Fairness, strong_fair, weak_fair
from statewright.kernel.checker.options import Options
from statewright.kernel.checker.properties import (
    Kind,
    Property,
    always,
    always_eventually,
    always_step,
    eventually,
    eventually_always,
    leads_to,
    sometimes,
    terminal_stable,
)
from statewright.kernel.checker.report import (
    Coverage,
    Progress,
    PropertyResult,
    Report,
    Status,
    StopReason,
    Verdict,
)
from statewright.kernel.checker.simulate import Simulation, simulate
from statewright.kernel.checker.spec import Bounds, Spec
from statewright.kernel.trace import TraceStep

__all__ = [
    "Bounds",
    "Coverage",
    "Fair",
    "Fairness",
    "Kind",
    "Options",
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
    "always_step",
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


def __getattr__(name: str) -> object:
    """Deprecated names, kept for one release."""
    if name == "transition":
        from statewright.kernel.checker.properties import transition

        return transition
    raise AttributeError(f"module 'statewright.kernel.checker' has no attribute {name!r}")
