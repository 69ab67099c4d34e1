"""What a check found: `Report`, per-property results, traces and coverage.

Every trace is a shortest one (the search is breadth-first). Its first step is
the initial state with no input; each later step is the input taken, the state
it led to and the effects emitted on the way, so a trace of n states has n
steps and replays through `step` from the model's initial state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from statewright.kernel.checker.properties import Kind
from statewright.kernel.trace import TraceStep

__all__ = ["Coverage", "Progress", "PropertyResult", "Report", "Status", "StopReason", "TraceStep", "Verdict"]
# TraceStep lives in `kernel.trace` (the errors and the shell use it too); it is re-exported here.


class Verdict(Enum):
    """The outcome of a whole check."""

    OK = "ok"
    """Every property holds (expected violations were found) and the search was complete."""
    VIOLATED = "violated"
    """A property failed, or an expected violation was not found."""
    BOUNDED = "bounded"
    """Nothing failed, but a bound cut the search short, so some claims are undecided."""


class StopReason(StrEnum):
    """What cut a search short (a `StrEnum`: each member equals its JSON string)."""

    MAX_DEPTH = "max_depth"
    MAX_STATES = "max_states"
    CONSTRAINT = "constraint"
    TIME_LIMIT = "time_limit"
    VIOLATION = "violation"
    """Stopped at the first unexpected violation (``keep_going=False``)."""
    INTERRUPTED = "interrupted"
    """The caller's ``should_stop`` asked for it (Ctrl-C, SIGTERM)."""
    MEMORY = "memory"
    """The caller's ``should_stop`` found the memory budget spent."""


class Status(Enum):
    """The outcome for one property."""

    HOLDS = "holds"
    VIOLATED = "violated"
    EXPECTED = "expected"
    """Violated, as the spec said it would be."""
    MISSING = "missing"
    """The spec expected a violation that the search did not find."""
    MISMATCH = "mismatch"
    """Violated as expected, but the shortest trace has a different length than the spec pins."""
    UNKNOWN = "unknown"
    """The search was bounded before the property was decided."""


@dataclass(frozen=True, slots=True)
class PropertyResult:
    """The verdict on one property; ``trace`` is a counterexample or a ``sometimes`` witness."""

    name: str
    kind: Kind
    status: Status
    trace: tuple[TraceStep, ...] | None = None
    detail: str | None = None
    loop: int | None = None
    """For a lasso (a temporal counterexample): the behaviour goes on from the
    trace's last state back to step ``loop`` forever (``loop`` equal to the last
    step means it stutters there forever)."""

    @property
    def holds(self) -> bool | None:
        """True/False when decided, None when a bound left it undecided."""
        if self.status in (Status.VIOLATED, Status.EXPECTED, Status.MISMATCH):
            return False
        if self.status is Status.UNKNOWN:
            return None
        return True

    @property
    def expected(self) -> bool:
        return self.status in (Status.EXPECTED, Status.MISSING, Status.MISMATCH)

    @property
    def failed(self) -> bool:
        """Whether this result makes the check fail."""
        return self.status in (Status.VIOLATED, Status.MISSING, Status.MISMATCH)


@dataclass(frozen=True, slots=True)
class Coverage:
    """How often one table row fired over all generated steps (0: never enabled).

    ``effects`` names the effect types the row was seen to emit.
    """

    machine: str
    index: int
    label: str
    fired: int
    effects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running search, handed to the progress callback."""

    distinct_states: int
    generated: int
    depth: int
    queued: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a check found.

    ``stopped_by`` is the `StopReason` that cut the search when it is not
    complete, None when it is.
    """

    spec: str
    verdict: Verdict
    complete: bool
    stopped_by: StopReason | None
    distinct_states: int
    generated: int
    depth: int
    seconds: float
    properties: tuple[PropertyResult, ...]
    coverage: tuple[Coverage, ...]
    pruned: int = 0
    """Successors generated but left out of the model by the spec's (action) constraint."""
    symmetric: tuple[tuple[str, ...], ...] = ()
    """The groups of interchangeable instances the search was reduced by (``check(symmetry=True)``)."""

    @property
    def ok(self) -> bool:
        """True unless the verdict is VIOLATED (a bounded search that found nothing is ok)."""
        return self.verdict is not Verdict.VIOLATED

    def result(self, name: str) -> PropertyResult:
        """The result for the property called ``name``."""
        for r in self.properties:
            if r.name == name:
                return r
        raise KeyError(f"no property {name!r} in the report of {self.spec!r}")

    @property
    def never_fired(self) -> tuple[Coverage, ...]:
        """Rows that never fired in any reachable state."""
        return tuple(c for c in self.coverage if c.fired == 0)

    def __str__(self) -> str:
        """The report as the command line prints it: the summary, one line per property, the traces."""
        from statewright.kernel.checker.text import (
            render_report,  # the renderer reads reports: it sits above
        )

        return render_report(self)

    def _repr_html_(self) -> str:
        """The report as an HTML table, for notebooks."""
        from statewright.kernel.checker.html import html_report

        return html_report(self)
