"""A run of an execution plan: a DAG of states executed one at a time, with retry and resume.

Theory of operation
-------------------
A *plan* is a set of state ids and dependency edges ``(before, after)``:
``after`` may run only once ``before`` has completed. `validate_plan` checks a
plan before any run starts and raises one typed error per failure, each with a
stable ``code``: an empty plan, a duplicate state id, an edge naming an unknown
state, a cycle.

A *run* carries its plan, so one transition table serves every plan;
`run_machine` validates a plan and returns the machine whose initial state is
a PENDING run of it. The run executes one plan state at a time::

    PENDING --Start--> RUNNING --Enter(x)--> RUNNING (x in flight, attempt 1)
    x in flight --Succeed(x)--> RUNNING (x completed)     or COMPLETED when x was the last
    x in flight --Fail(x)-----> RUNNING (x, attempt + 1)  while retryable and attempts remain, else FAILED
    PENDING|RUNNING --Cancel--> CANCELLED
    RUNNING --Resume--> RUNNING (re-enter after a crash)

COMPLETED, FAILED and CANCELLED are terminal, and entering one emits the run's
single ``RunCompleted(outcome)``; terminal precedence means nothing follows it.

Choices the source leaves open, and why:

* Attempts are numbered from 1 (the source counts from 0) so ``max_attempts``
  reads as "at most this many attempts", including the first.
* A failure with attempts left re-enters the same state at once: the step emits
  ``StateFailed(x, n, will_retry=True)`` and ``StateEntered(x, n + 1)``
  together, so there is never a failed-but-not-retried state to get stuck in.
  Backoff delays belong to the shell that carries out the effects.
* ``Resume`` models an engine restarted from its event log: the outcome of the
  attempt in flight at the crash was lost. If a state was in flight it is
  re-entered with the *same* attempt number (the attempt never reported a
  failure, so it does not use up the retry budget, and ``StateEntered`` is
  idempotent on ``(state_id, attempt)``). Otherwise the run resumes after its
  last completed state: it enters the first state, in plan order, that is not
  completed and whose dependencies all are, at attempt 1. Before ``Start``
  there is nothing to resume (no row); after the end, terminal precedence.
* The completed states are kept in plan order, so a run's state is canonical
  whatever order independent states finished in.
* A failed run keeps the failed state and its attempt; a cancelled run keeps
  whatever was in flight: the terminal state records where the run stopped.

>>> from statewright.kernel.step import step
>>> m = run_machine(Plan(("a", "b"), (("a", "b"),)), max_attempts=2)
>>> s = m.initial
>>> for event in (Start(), Enter("a"), Fail("a"), Succeed("a"), Enter("b")):
...     s = step(m, s, event).state
>>> s.completed, s.current, s.attempt
(('a',), 'b', 1)
>>> step(m, s, Succeed("b")).effects
(StateCompleted(state_id='b'), RunCompleted(outcome=<Outcome.COMPLETED: 'completed'>))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition

__all__ = [
    "RUN_TRANSITIONS",
    "Cancel",
    "CircularDependency",
    "DuplicateStateId",
    "EmptyPlan",
    "Enter",
    "Fail",
    "Outcome",
    "Plan",
    "PlanError",
    "Resume",
    "Run",
    "RunCompleted",
    "RunPhase",
    "RunStarted",
    "Start",
    "StateCompleted",
    "StateEntered",
    "StateFailed",
    "Succeed",
    "UnknownEdgeState",
    "next_ready",
    "run_machine",
    "validate_plan",
]


# -- plans ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """State ids in plan order and dependency edges ``(before, after)``."""

    states: tuple[str, ...]
    edges: tuple[tuple[str, str], ...] = ()

    def dependencies(self, state_id: str) -> tuple[str, ...]:
        """The states that must complete before ``state_id`` may be entered."""
        return tuple(before for before, after in self.edges if after == state_id)


class PlanError(ValueError):
    """A plan that must not be run; ``code`` is stable across versions."""

    code: str = "invalid_plan"


class EmptyPlan(PlanError):
    """The plan has no states."""

    code = "empty_plan"

    def __init__(self) -> None:
        super().__init__("the plan has no states")


class DuplicateStateId(PlanError):
    """A state id appears more than once."""

    code = "duplicate_state_id"

    def __init__(self, state_id: str) -> None:
        super().__init__(f"state id {state_id!r} appears more than once")
        self.state_id = state_id


class UnknownEdgeState(PlanError):
    """An edge names a state the plan does not have."""

    code = "unknown_edge_state"

    def __init__(self, edge: tuple[str, str], missing: str) -> None:
        super().__init__(f"edge {edge[0]!r} -> {edge[1]!r} names unknown state {missing!r}")
        self.edge = edge
        self.missing = missing


class CircularDependency(PlanError):
    """The dependency edges form a cycle; ``cycle`` lists it, first state repeated last."""

    code = "circular_dependency"

    def __init__(self, cycle: tuple[str, ...]) -> None:
        super().__init__(f"dependency cycle: {' -> '.join(cycle)}")
        self.cycle = cycle


def validate_plan(plan: Plan) -> Plan:
    """Return ``plan`` if it can be run; raise the `PlanError` for its first problem.

    Checks run in a fixed order (empty, duplicates, edges, cycles), so a plan
    with several problems always reports the same one.

    >>> validate_plan(Plan(("a", "b"), (("a", "b"),))).states
    ('a', 'b')
    >>> validate_plan(Plan(("a", "b"), (("a", "b"), ("b", "a"))))
    Traceback (most recent call last):
    ...
    statewright.machines.run.CircularDependency: dependency cycle: a -> b -> a
    """
    if not plan.states:
        raise EmptyPlan()
    seen: set[str] = set()
    for sid in plan.states:
        if sid in seen:
            raise DuplicateStateId(sid)
        seen.add(sid)
    for edge in plan.edges:
        for end in edge:
            if end not in seen:
                raise UnknownEdgeState(edge, end)
    after: dict[str, list[str]] = {sid: [] for sid in plan.states}
    for before, nxt in plan.edges:
        after[before].append(nxt)
    # Depth-first search with colours; a grey successor closes a cycle.
    colour = dict.fromkeys(plan.states, 0)  # 0 white, 1 grey (on the path), 2 black
    for root in plan.states:
        if colour[root]:
            continue
        path = [root]
        colour[root] = 1
        todo = [iter(after[root])]
        while todo:
            child = next(todo[-1], None)
            if child is None:
                todo.pop()
                colour[path.pop()] = 2
            elif colour[child] == 1:
                raise CircularDependency((*path[path.index(child):], child))
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                todo.append(iter(after[child]))
    return plan


# -- state ------------------------------------------------------------------------


class RunPhase(Enum):
    """Where a run is in its lifecycle."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({RunPhase.COMPLETED, RunPhase.FAILED, RunPhase.CANCELLED})


class Outcome(Enum):
    """How a run ended, as carried by `RunCompleted`."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Run:
    """One run: its plan, phase, completed states (plan order) and the attempt in flight.

    ``current`` is the state in flight and ``attempt`` its 1-based attempt
    number; both are None/0 when nothing is in flight.
    """

    plan: Plan
    phase: RunPhase = RunPhase.PENDING
    completed: tuple[str, ...] = ()
    current: str | None = None
    attempt: int = 0
    max_attempts: int = 2


def next_ready(run: Run) -> str | None:
    """The first state in plan order that is not completed and whose dependencies all are."""
    done = run.completed
    for state_id in run.plan.states:
        if state_id not in done and all(d in done for d in run.plan.dependencies(state_id)):
            return state_id
    return None


# -- inputs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Begin executing the plan."""


@dataclass(frozen=True, slots=True)
class Enter:
    """Start the first attempt of ``state_id``."""

    state_id: str


@dataclass(frozen=True, slots=True)
class Succeed:
    """The attempt in flight of ``state_id`` succeeded."""

    state_id: str


@dataclass(frozen=True, slots=True)
class Fail:
    """The attempt in flight of ``state_id`` failed; a ``retryable=False`` failure ends the run at once.

    ``retryable`` is the source's ``ErrorInfo.retryable``: a retryable failure
    with attempts left re-enters the state, anything else fails the run.
    """

    state_id: str
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop the run before it completes."""


@dataclass(frozen=True, slots=True)
class Resume:
    """The engine restarted from its log: re-enter the state to run (see the module doc)."""


# -- effects ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStarted:
    pass


@dataclass(frozen=True, slots=True)
class StateEntered:
    state_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class StateCompleted:
    state_id: str


@dataclass(frozen=True, slots=True)
class StateFailed:
    state_id: str
    attempt: int
    will_retry: bool


@dataclass(frozen=True, slots=True)
class RunCompleted:
    outcome: Outcome


# -- guards -----------------------------------------------------------------------


def idle(run: Run, event: Enter) -> bool:
    """No attempt is in flight: the run executes one state at a time."""
    return run.current is None


def planned(run: Run, event: Enter) -> bool:
    """The state is in the plan and not completed yet."""
    return event.state_id in run.plan.states and event.state_id not in run.completed


def dependencies_completed(run: Run, event: Enter) -> bool:
    """Every state ``event.state_id`` depends on has completed."""
    return all(d in run.completed for d in run.plan.dependencies(event.state_id))


def in_flight(run: Run, event: Succeed | Fail) -> bool:
    """The event is about the state whose attempt is in flight."""
    return run.current is not None and event.state_id == run.current


def more_to_do(run: Run, event: Succeed) -> bool:
    """Some other plan state is still not completed."""
    return len(run.completed) + 1 < len(run.plan.states)


def last_state(run: Run, event: Succeed) -> bool:
    """This success completes the plan (complement of ``more_to_do``)."""
    return len(run.completed) + 1 >= len(run.plan.states)


def attempts_left(run: Run, event: Fail) -> bool:
    """The failure is retryable and the attempt that failed was not the last one allowed."""
    return event.retryable and run.attempt < run.max_attempts


def attempts_exhausted(run: Run, event: Fail) -> bool:
    """The run gives up: the failure is not retryable, or no attempt is left (complement of ``attempts_left``)."""
    return not event.retryable or run.attempt >= run.max_attempts


def resumable(run: Run, event: Resume) -> bool:
    """Something is in flight or ready; always true of a reachable RUNNING run."""
    return run.current is not None or next_ready(run) is not None


# -- updates and effects ------------------------------------------------------------


def _enter(run: Run, event: Enter) -> Run:
    return replace(run, current=event.state_id, attempt=1)


def _complete(run: Run, event: Succeed) -> Run:
    done = set(run.completed) | {event.state_id}
    order = tuple(sid for sid in run.plan.states if sid in done)
    return replace(run, completed=order, current=None, attempt=0)


def _retry(run: Run, event: Fail) -> Run:
    return replace(run, attempt=run.attempt + 1)


def _resume(run: Run, event: Resume) -> Run:
    if run.current is not None:
        return run
    return replace(run, current=next_ready(run), attempt=1)


def _resumed(run: Run, event: Resume) -> tuple[StateEntered, ...]:
    assert run.current is not None  # the guard resumable holds, so _resume set it
    return (StateEntered(run.current, run.attempt),)


P = RunPhase
LIVE = (P.PENDING, P.RUNNING)

RUN_TRANSITIONS: tuple[Transition, ...] = (
    Transition(P.PENDING, Start, P.RUNNING, emit=(RunStarted(),)),
    Transition(P.RUNNING, Enter, P.RUNNING, guard=[idle, planned, dependencies_completed], update=_enter,
               emit=lambda s, i: (StateEntered(i.state_id, 1),)),
    Transition(P.RUNNING, Succeed, P.RUNNING, guard=[in_flight, more_to_do], update=_complete,
               emit=lambda s, i: (StateCompleted(i.state_id),)),
    Transition(P.RUNNING, Succeed, P.COMPLETED, guard=[in_flight, last_state], update=_complete,
               emit=lambda s, i: (StateCompleted(i.state_id), RunCompleted(Outcome.COMPLETED))),
    Transition(P.RUNNING, Fail, P.RUNNING, guard=[in_flight, attempts_left], update=_retry,
               emit=lambda s, i: (StateFailed(i.state_id, s.attempt - 1, True),
                                  StateEntered(i.state_id, s.attempt))),
    Transition(P.RUNNING, Fail, P.FAILED, guard=[in_flight, attempts_exhausted],
               emit=lambda s, i: (StateFailed(i.state_id, s.attempt, False), RunCompleted(Outcome.FAILED))),
    Transition(LIVE, Cancel, P.CANCELLED, emit=(RunCompleted(Outcome.CANCELLED),)),
    Transition(P.RUNNING, Resume, P.RUNNING, guard=resumable, update=_resume, emit=_resumed),
)
"""The run's one transition table; every plan shares it (the plan lives in the state)."""

INPUTS = (Start, Enter, Succeed, Fail, Cancel, Resume)
EFFECTS = (RunStarted, StateEntered, StateCompleted, StateFailed, RunCompleted)


def run_machine(plan: Plan, max_attempts: int = 2, *,
                transitions: tuple[Transition, ...] = RUN_TRANSITIONS) -> Machine[Run]:
    """The run machine for ``plan``: validates it, and starts from a PENDING run of it.

    ``transitions`` exists so a spec can check a deliberately broken table
    against the same properties; library users leave it alone.

    >>> run_machine(Plan(("a",)), max_attempts=3).initial.max_attempts
    3
    """
    if max_attempts < 1:
        raise DefinitionError(f"run: max_attempts must be at least 1, got {max_attempts}")
    return Machine(
        "run",
        initial=Run(validate_plan(plan), max_attempts=max_attempts),
        terminal=TERMINAL,
        inputs=INPUTS,
        effects=EFFECTS,
        transitions=transitions,
        doc="A run of an execution plan: one state at a time, with retries, cancel and resume.",
    )
