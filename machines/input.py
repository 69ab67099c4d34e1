"""The input lifecycle of the session kernel: from acceptance to one terminal outcome.

Theory of operation
-------------------
An input (a user message, a tool result, a signal) is *accepted* by the
session, *queued* for the runtime, *staged* into a run, *applied* to the
conversation by that run and finally *consumed* when the run commits. Only
one run owns a staged input at a time; its id is recorded when the input is
staged, and every later step of that run (apply, await consumption, consume,
fail) must name the same run id -- a late message from an older run that
lost the input is rejected by the guard ``same_run`` instead of moving the
input on.

Four phases are terminal and each carries its outcome as data::

    CONSUMED    Consumed()                       the run committed the input
    SUPERSEDED  Superseded(by)                   a newer queued input replaced it
    COALESCED   Coalesced(aggregate_id)          it was merged into an aggregate
    ABANDONED   Abandoned(reason, attempts)      it will never be processed

Every stage counts an attempt. When the run holding the input fails, the
input rolls back to QUEUED while attempts remain, and is abandoned with
``MAX_ATTEMPTS_EXHAUSTED`` once the failed attempt was the last one: two rows
for ``RunFailed`` with the complementary guards ``attempts_left`` and
``attempts_exhausted``, so at most one of them is ever enabled. Any live
input can be abandoned for a lifecycle reason (the runtime retired, was
reset, stopped or destroyed, or the caller cancelled); the exhaustion reason
is reserved for the retry rule and an ``Abandon`` naming it is refused.

Choices the source leaves open, and why:

* A rollback keeps the failed run's id as the input's *last* run id: it is
  history, and a fresh ``Stage`` overwrites it. No run can touch a QUEUED
  input, because no run-scoped row leaves QUEUED.
* ``Stage`` is guarded by ``attempts_left`` too. Reachable queued inputs
  always have an attempt left, but a restored seed may not; staging it would
  exceed the budget, so it must be abandoned or superseded instead.
* A run may fail after applying the input (APPLIED, or while waiting for
  consumption): the run's boundary was not committed, so the input goes back
  to the queue like a staged one.
* ``Abandoned`` records the attempt count for every reason, not just
  exhaustion, so a stored outcome says how much work was lost.
* Ids are checked for emptiness by guards (``names_run``, ``names_superseder``,
  ``names_aggregate``) so every reachable state passes `authorize_seed`.

`authorize_seed` is the other half: what a store adapter calls before it
writes a state it did not get from `kernel.step.step` (a recovered or
imported record).

Example: the happy path through `INPUT`, then a stale run being refused.

>>> from statewright.kernel.step import step
>>> s = Input()
>>> for event in (Queue(), Stage("r1"), Apply("r1")):
...     s = step(INPUT, s, event).state
>>> s.phase, s.attempts, s.run_id
(<InputPhase.APPLIED: 'applied'>, 1, 'r1')
>>> step(INPUT, s, Consume("r0")).guards
('same_run',)
>>> done = step(INPUT, s, Consume("r1"))
>>> done.state.outcome, done.effects
(Consumed(), (InputConsumed(run_id='r1'),))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.machine import Machine, Transition

__all__ = [
    "INPUT",
    "Abandon",
    "AbandonReason",
    "Abandoned",
    "Apply",
    "AwaitConsumption",
    "Coalesce",
    "Coalesced",
    "Consume",
    "Consumed",
    "Effect",
    "Event",
    "Input",
    "InputAbandoned",
    "InputApplied",
    "InputCoalesced",
    "InputConsumed",
    "InputPendingConsumption",
    "InputPhase",
    "InputQueued",
    "InputRolledBack",
    "InputStaged",
    "InputSuperseded",
    "Outcome",
    "Queue",
    "RunFailed",
    "Stage",
    "Supersede",
    "Superseded",
    "authorize_seed",
]


class InputPhase(Enum):
    """Where an input is in its lifecycle."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    STAGED = "staged"
    APPLIED = "applied"
    APPLIED_PENDING_CONSUMPTION = "applied_pending_consumption"
    CONSUMED = "consumed"
    SUPERSEDED = "superseded"
    COALESCED = "coalesced"
    ABANDONED = "abandoned"


TERMINAL = frozenset({InputPhase.CONSUMED, InputPhase.SUPERSEDED, InputPhase.COALESCED, InputPhase.ABANDONED})
LIVE = tuple(p for p in InputPhase if p not in TERMINAL)
RUNNING = (InputPhase.STAGED, InputPhase.APPLIED, InputPhase.APPLIED_PENDING_CONSUMPTION)
"""Phases in which a run holds the input (it has a run id and at least one attempt)."""


class AbandonReason(Enum):
    """Why an input was given up."""

    RETIRED = "retired"
    RESET = "reset"
    STOPPED = "stopped"
    DESTROYED = "destroyed"
    CANCELLED = "cancelled"
    MAX_ATTEMPTS_EXHAUSTED = "max_attempts_exhausted"


# -- terminal outcomes --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consumed:
    """The run that applied the input committed."""


@dataclass(frozen=True, slots=True)
class Superseded:
    """A newer input, ``by``, replaced this one while it was queued."""

    by: str


@dataclass(frozen=True, slots=True)
class Coalesced:
    """The input was merged into the aggregate input ``aggregate_id``."""

    aggregate_id: str


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The input will never be processed; ``attempts`` is how many stages it had."""

    reason: AbandonReason
    attempts: int


Outcome = Consumed | Superseded | Coalesced | Abandoned

_OUTCOME_OF: dict[InputPhase, type] = {
    InputPhase.CONSUMED: Consumed,
    InputPhase.SUPERSEDED: Superseded,
    InputPhase.COALESCED: Coalesced,
    InputPhase.ABANDONED: Abandoned,
}


# -- state ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    """One input's lifecycle state; ``run_id`` is the last run that staged it."""

    phase: InputPhase = InputPhase.ACCEPTED
    attempts: int = 0
    max_attempts: int = 3
    run_id: str | None = None
    outcome: Outcome | None = None


# -- inputs (events) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queue:
    """Hand the accepted input to the runtime's queue."""


@dataclass(frozen=True, slots=True)
class Stage:
    """Run ``run_id`` takes the queued input; counts one attempt."""

    run_id: str


@dataclass(frozen=True, slots=True)
class Apply:
    """Run ``run_id`` applied the staged input to the conversation."""

    run_id: str


@dataclass(frozen=True, slots=True)
class AwaitConsumption:
    """Run ``run_id`` applied the input but its boundary has not committed yet."""

    run_id: str


@dataclass(frozen=True, slots=True)
class Consume:
    """Run ``run_id`` committed: the input is done."""

    run_id: str


@dataclass(frozen=True, slots=True)
class RunFailed:
    """Run ``run_id`` failed while holding the input: retry it or give up."""

    run_id: str


@dataclass(frozen=True, slots=True)
class Supersede:
    """The newer queued input ``by`` replaces this one."""

    by: str


@dataclass(frozen=True, slots=True)
class Coalesce:
    """Merge this queued input into the aggregate ``aggregate_id``."""

    aggregate_id: str


@dataclass(frozen=True, slots=True)
class Abandon:
    """Give the live input up for a lifecycle ``reason`` (never exhaustion)."""

    reason: AbandonReason


Event = Queue | Stage | Apply | AwaitConsumption | Consume | RunFailed | Supersede | Coalesce | Abandon


# -- effects --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputQueued:
    pass


@dataclass(frozen=True, slots=True)
class InputStaged:
    run_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class InputApplied:
    run_id: str


@dataclass(frozen=True, slots=True)
class InputPendingConsumption:
    run_id: str


@dataclass(frozen=True, slots=True)
class InputConsumed:
    run_id: str


@dataclass(frozen=True, slots=True)
class InputRolledBack:
    run_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class InputSuperseded:
    by: str


@dataclass(frozen=True, slots=True)
class InputCoalesced:
    aggregate_id: str


@dataclass(frozen=True, slots=True)
class InputAbandoned:
    reason: AbandonReason
    attempts: int


Effect = (
    InputQueued | InputStaged | InputApplied | InputPendingConsumption | InputConsumed
    | InputRolledBack | InputSuperseded | InputCoalesced | InputAbandoned
)


# -- guards ---------------------------------------------------------------------


def same_run(state: Input, event: Apply | AwaitConsumption | Consume | RunFailed) -> bool:
    """The event comes from the run that staged the input."""
    return event.run_id == state.run_id


def names_run(state: Input, event: Stage) -> bool:
    return bool(event.run_id)


def attempts_left(state: Input, event: Stage | RunFailed) -> bool:
    """Another stage would stay within the attempt budget."""
    return state.attempts < state.max_attempts


def attempts_exhausted(state: Input, event: RunFailed) -> bool:
    """The attempt that just failed was the last one allowed (complement of ``attempts_left``)."""
    return state.attempts >= state.max_attempts


def names_superseder(state: Input, event: Supersede) -> bool:
    return bool(event.by)


def names_aggregate(state: Input, event: Coalesce) -> bool:
    return bool(event.aggregate_id)


def lifecycle_reason(state: Input, event: Abandon) -> bool:
    """Exhaustion is decided by the retry rule, never asked for."""
    return event.reason is not AbandonReason.MAX_ATTEMPTS_EXHAUSTED


# -- updates --------------------------------------------------------------------


def _stage(state: Input, event: Stage) -> Input:
    return replace(state, attempts=state.attempts + 1, run_id=event.run_id)


def _exhaust(state: Input, event: RunFailed) -> Input:
    return replace(state, outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, state.attempts))


def _abandon(state: Input, event: Abandon) -> Input:
    return replace(state, outcome=Abandoned(event.reason, state.attempts))


P = InputPhase
INPUT: Machine[Input] = Machine(
    "input",
    initial=Input(),
    terminal=TERMINAL,
    inputs=(Queue, Stage, Apply, AwaitConsumption, Consume, RunFailed, Supersede, Coalesce, Abandon),
    effects=(
        InputQueued, InputStaged, InputApplied, InputPendingConsumption, InputConsumed,
        InputRolledBack, InputSuperseded, InputCoalesced, InputAbandoned,
    ),
    transitions=[
        Transition(P.ACCEPTED, Queue, P.QUEUED, emit=(InputQueued(),)),
        Transition(P.QUEUED, Stage, P.STAGED, guard=[names_run, attempts_left], update=_stage,
                   emit=lambda s, i: (InputStaged(i.run_id, s.attempts),)),
        Transition(P.STAGED, Apply, P.APPLIED, guard=same_run,
                   emit=lambda s, i: (InputApplied(i.run_id),)),
        Transition(P.APPLIED, AwaitConsumption, P.APPLIED_PENDING_CONSUMPTION, guard=same_run,
                   emit=lambda s, i: (InputPendingConsumption(i.run_id),)),
        Transition((P.APPLIED, P.APPLIED_PENDING_CONSUMPTION), Consume, P.CONSUMED, guard=same_run,
                   update=lambda s, i: replace(s, outcome=Consumed()),
                   emit=lambda s, i: (InputConsumed(i.run_id),)),
        Transition(RUNNING, RunFailed, P.QUEUED, guard=[same_run, attempts_left],
                   emit=lambda s, i: (InputRolledBack(i.run_id, s.attempts),)),
        Transition(RUNNING, RunFailed, P.ABANDONED, guard=[same_run, attempts_exhausted], update=_exhaust,
                   emit=lambda s, i: (InputAbandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, s.attempts),)),
        Transition(P.QUEUED, Supersede, P.SUPERSEDED, guard=names_superseder,
                   update=lambda s, i: replace(s, outcome=Superseded(i.by)),
                   emit=lambda s, i: (InputSuperseded(i.by),)),
        Transition(P.QUEUED, Coalesce, P.COALESCED, guard=names_aggregate,
                   update=lambda s, i: replace(s, outcome=Coalesced(i.aggregate_id)),
                   emit=lambda s, i: (InputCoalesced(i.aggregate_id),)),
        Transition(LIVE, Abandon, P.ABANDONED, guard=lifecycle_reason, update=_abandon,
                   emit=lambda s, i: (InputAbandoned(i.reason, s.attempts),)),
    ],
    doc="One input of the session kernel, from acceptance to its terminal outcome.",
)


def authorize_seed(state: Input) -> tuple[str, ...]:
    """Problems with a stored input state; an empty tuple means it may be written.

    Store adapters call this before writing a state that did not come out of
    `kernel.step.step` (a recovered, imported or hand-built record), so the
    store never holds an input the machine could not have produced or cannot
    safely continue from. Every state reachable through `INPUT` passes.

    >>> authorize_seed(Input(InputPhase.QUEUED))
    ()
    >>> authorize_seed(Input(InputPhase.SUPERSEDED, outcome=Superseded("")))
    ('SUPERSEDED needs the id of the superseding input',)
    >>> authorize_seed(Input(InputPhase.STAGED))
    ('STAGED needs a run id', 'STAGED needs at least one attempt')
    """
    problems: list[str] = []
    phase, outcome = state.phase, state.outcome
    name = phase.name
    if state.max_attempts < 1:
        problems.append(f"max_attempts must be at least 1, got {state.max_attempts}")
    if not 0 <= state.attempts <= state.max_attempts:
        problems.append(f"attempts {state.attempts} outside 0..{state.max_attempts}")

    if phase in TERMINAL:
        expected = _OUTCOME_OF[phase]
        if type(outcome) is not expected:
            got = "no outcome" if outcome is None else type(outcome).__name__
            problems.append(f"{name} needs a {expected.__name__} outcome, got {got}")
        elif isinstance(outcome, Superseded) and not outcome.by:
            problems.append(f"{name} needs the id of the superseding input")
        elif isinstance(outcome, Coalesced) and not outcome.aggregate_id:
            problems.append(f"{name} needs the aggregate id")
        elif isinstance(outcome, Abandoned):
            if outcome.attempts != state.attempts:
                problems.append(f"{name} records {outcome.attempts} attempts but the input has {state.attempts}")
            if outcome.reason is AbandonReason.MAX_ATTEMPTS_EXHAUSTED and state.attempts < state.max_attempts:
                problems.append(
                    f"{name} for exhausted attempts with {state.attempts} of {state.max_attempts} used"
                )
    elif outcome is not None:
        problems.append(f"{name} is not terminal but carries the outcome {outcome!r}")

    if phase is InputPhase.ACCEPTED and (state.attempts or state.run_id is not None):
        problems.append("ACCEPTED has never been staged: no attempts and no run id")
    if phase in RUNNING:
        if not state.run_id:
            problems.append(f"{name} needs a run id")
        if state.attempts < 1:
            problems.append(f"{name} needs at least one attempt")
    return tuple(problems)
