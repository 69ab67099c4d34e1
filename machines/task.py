"""A task of the swarm engine: dispatched in attempts, suspended on questions, one outcome.

Theory of operation
-------------------
An operator *creates* a task; a dispatch starts one *attempt* of a worker on it
(the attempt number counts up from 1, within ``max_attempts``). The worker
ends its attempt with a final output that either *passes* the task or
*blocks* it; a worker that dies without a final output fails the attempt,
and the task waits for the next dispatch while attempts remain (it is blocked
once the last one fails). While running, the worker may put a question to a
senior: the task is *suspended* with the question pending, and the answer
resumes it, recorded, in the same attempt. An operator may cancel any live
task. A running worker may spawn a child task one level deeper, and only while
the child's depth stays below ``max_depth`` (depths run 0 .. max_depth - 1).

Three phases are terminal and nothing moves them::

    PASSED      the worker's final output was ok
    BLOCKED     the final output was not ok, or the last attempt failed
    CANCELLED   an operator cancelled the live task

Choices the engine leaves open, and why:

* Every worker outcome names its attempt (guard ``current_attempt``), so the
  output of an older attempt cannot decide the task a newer one is running.
* A suspended worker is waiting on its answer; it has no outcome to report,
  so outcomes are only taken while RUNNING. Cancel clears the question.
* CREATED doubles as "waiting for the next dispatch": a failed attempt with
  budget left goes back there, so a dispatch only ever leaves CREATED.

`machines.task_as_written` is the same engine modelled from its status writes
as they stand; `specs.task` checks both against the same properties.

>>> from statewright.kernel.step import step
>>> s = Task()
>>> for event in (Dispatch(), Ask("q"), Answer("a"), WorkerPassed(1)):
...     s = step(TASK, s, event).state
>>> s.phase, s.attempt, s.answer
(<TaskPhase.PASSED: 'passed'>, 1, 'a')
>>> step(TASK, s, Cancel()).message
"can't take Cancel in PASSED: the state is terminal"
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from statewright.kernel.machine import Machine, Transition

__all__ = [
    "TASK_INPUTS",
    "LIVE",
    "OUTCOMES",
    "TASK",
    "TERMINAL",
    "Answer",
    "Ask",
    "AttemptFailed",
    "Cancel",
    "ChildSpawned",
    "Dispatch",
    "DispatchFault",
    "Spawn",
    "Task",
    "TaskBlocked",
    "TaskCancelled",
    "TaskDispatched",
    "TaskPassed",
    "TaskPhase",
    "TaskResumed",
    "TaskSuspended",
    "WorkerBlocked",
    "WorkerFailed",
    "WorkerPassed",
    "task_machine",
]


class TaskPhase(Enum):
    """Where a task is in its lifecycle."""

    CREATED = "created"
    RUNNING = "running"
    SUSPENDED = "suspended"
    PASSED = "passed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


TERMINAL = frozenset({TaskPhase.PASSED, TaskPhase.BLOCKED, TaskPhase.CANCELLED})
LIVE = tuple(p for p in TaskPhase if p not in TERMINAL)


@dataclass(frozen=True, slots=True)
class Task:
    """One task; ``question`` is the question pending a senior's answer, ``answer`` the last one."""

    phase: TaskPhase = TaskPhase.CREATED
    attempt: int = 0
    max_attempts: int = 2
    depth: int = 0
    max_depth: int = 3
    question: str | None = None
    answer: str | None = None
    orphaned: bool = False
    """RUNNING with no worker behind it, which nothing reports for. Only the engine before its fix
    (``task_machine(fault_rolls_back=False)``) leaves a task so."""


# -- inputs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Start the next attempt of a worker on the task."""


@dataclass(frozen=True, slots=True)
class WorkerPassed:
    """The worker of ``attempt`` ended with an ok final output."""

    attempt: int


@dataclass(frozen=True, slots=True)
class WorkerBlocked:
    """The worker of ``attempt`` ended with a final output that is not ok."""

    attempt: int


@dataclass(frozen=True, slots=True)
class WorkerFailed:
    """The worker of ``attempt`` ended without a final output (crashed, or never wrote one)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class Ask:
    """The worker puts ``question`` to a senior and waits for the answer."""

    question: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The senior's ``answer`` to the pending question."""

    answer: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """An operator cancels the task."""


@dataclass(frozen=True, slots=True)
class Spawn:
    """The task's worker starts a child task one level deeper."""


@dataclass(frozen=True, slots=True)
class DispatchFault:
    """The dispatch flipped the task to RUNNING, but no worker runs it: a store fault before the
    worker was spawned, a worker panic or a client disconnect that dropped it.

    Only the engine before its fix takes it (``task_machine(fault_rolls_back=False)``); the corrected
    engine rolls the attempt back, which this table writes as the ``WorkerFailed`` of that attempt.
    """


OUTCOMES = (WorkerPassed, WorkerBlocked, WorkerFailed)
"""The inputs that carry a worker's end of an attempt."""


# -- effects --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskDispatched:
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskPassed:
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskBlocked:
    attempt: int


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed and the task waits for the next dispatch."""

    attempt: int


@dataclass(frozen=True, slots=True)
class TaskSuspended:
    question: str


@dataclass(frozen=True, slots=True)
class TaskResumed:
    answer: str


@dataclass(frozen=True, slots=True)
class TaskCancelled:
    pass


@dataclass(frozen=True, slots=True)
class ChildSpawned:
    depth: int


# -- guards ---------------------------------------------------------------------


def attempts_left(state: Task, event: Dispatch | WorkerFailed) -> bool:
    """Another attempt stays within the budget."""
    return state.attempt < state.max_attempts


def attempts_exhausted(state: Task, event: WorkerFailed) -> bool:
    """The attempt that ended was the last one (complement of ``attempts_left``)."""
    return state.attempt >= state.max_attempts


def current_attempt(state: Task, event: WorkerPassed | WorkerBlocked | WorkerFailed) -> bool:
    """The outcome belongs to the attempt now running, not an older one."""
    return event.attempt == state.attempt


def has_worker(state: Task, event: object) -> bool:
    """A worker runs the attempt (only the engine before its fix can lose one: `DispatchFault`)."""
    return not state.orphaned


def names_question(state: Task, event: Ask) -> bool:
    return bool(event.question)


def names_answer(state: Task, event: Answer) -> bool:
    return bool(event.answer)


def below_spawn_limit(state: Task, event: Spawn) -> bool:
    """The child, one level deeper, stays below ``max_depth`` (the engine's depth gate)."""
    return state.depth + 1 < state.max_depth


# -- updates --------------------------------------------------------------------


def _dispatch(state: Task, event: Dispatch) -> Task:
    return replace(state, attempt=state.attempt + 1)


def _ask(state: Task, event: Ask) -> Task:
    return replace(state, question=event.question)


def _answer(state: Task, event: Answer) -> Task:
    return replace(state, question=None, answer=event.answer)


def _cancel(state: Task, event: Cancel) -> Task:
    return replace(state, question=None)


P = TaskPhase

TASK_INPUTS = (Dispatch, WorkerPassed, WorkerBlocked, WorkerFailed, Ask, Answer, Cancel, Spawn)
"""The task engine's closed input union, shared with the as-written model."""


def task_machine(*, max_attempts: int = 2, depth: int = 0, max_depth: int = 3,
                 fault_rolls_back: bool = True) -> Machine[Task]:
    """The task machine for one attempt budget and spawn depth (``TASK`` is the default).

    ``fault_rolls_back=False`` is the engine before its fix: the compare-and-swap
    that flips a task to RUNNING is followed by store calls before the worker is
    spawned, and a fault there (or a worker panic, or a disconnect that drops
    it) left the task RUNNING with nothing behind it. It adds the input
    `DispatchFault`, which orphans a RUNNING task, and the guard ``has_worker``
    on every row a worker takes; only ``Cancel`` still moves an orphaned task.
    The corrected engine rolls the attempt back: in this table that is the
    attempt's ``WorkerFailed``, which the engine reports itself.
    """
    worker: list[Any] = [] if fault_rolls_back else [has_worker]
    inputs: tuple[type, ...] = TASK_INPUTS if fault_rolls_back else (*TASK_INPUTS, DispatchFault)
    transitions = [
        Transition(P.CREATED, Dispatch, P.RUNNING, guard=attempts_left, update=_dispatch,
                   emit=lambda s, i: (TaskDispatched(s.attempt),)),
        Transition(P.RUNNING, WorkerPassed, P.PASSED, guard=[*worker, current_attempt],
                   emit=lambda s, i: (TaskPassed(i.attempt),)),
        Transition(P.RUNNING, WorkerBlocked, P.BLOCKED, guard=[*worker, current_attempt],
                   emit=lambda s, i: (TaskBlocked(i.attempt),)),
        Transition(P.RUNNING, WorkerFailed, P.CREATED, guard=[*worker, current_attempt, attempts_left],
                   emit=lambda s, i: (AttemptFailed(i.attempt),)),
        Transition(P.RUNNING, WorkerFailed, P.BLOCKED, guard=[*worker, current_attempt, attempts_exhausted],
                   emit=lambda s, i: (TaskBlocked(i.attempt),)),
        Transition(P.RUNNING, Ask, P.SUSPENDED, guard=[*worker, names_question], update=_ask,
                   emit=lambda s, i: (TaskSuspended(i.question),)),
        Transition(P.SUSPENDED, Answer, P.RUNNING, guard=names_answer, update=_answer,
                   emit=lambda s, i: (TaskResumed(i.answer),)),
        Transition(LIVE, Cancel, P.CANCELLED, update=_cancel, emit=(TaskCancelled(),)),
        Transition(P.RUNNING, Spawn, P.RUNNING, guard=[*worker, below_spawn_limit],
                   emit=lambda s, i: (ChildSpawned(s.depth + 1),)),
    ]
    if not fault_rolls_back:
        transitions.append(Transition(P.RUNNING, DispatchFault, P.RUNNING, guard=has_worker,
                                      update=lambda s, i: replace(s, orphaned=True)))
    return Machine(
        "task",
        initial=Task(max_attempts=max_attempts, depth=depth, max_depth=max_depth),
        terminal=TERMINAL,
        inputs=inputs,
        effects=(
            TaskDispatched, TaskPassed, TaskBlocked, AttemptFailed, TaskSuspended, TaskResumed,
            TaskCancelled, ChildSpawned,
        ),
        transitions=transitions,
        doc="One task of the swarm engine, from creation to its one outcome.",
    )


TASK: Machine[Task] = task_machine()
