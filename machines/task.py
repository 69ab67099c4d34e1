"""A task of the swarm engine: dispatched in attempts, suspended on questions, one outcome.

Theory of operation
-------------------
An operator *creates* a task; a dispatch starts one *attempt* of a worker on it
(the attempt number counts up from 1, within ``max_attempts``). The dispatch
first flips the task to RUNNING and counts the attempt ("prep"), then spawns
the worker outside the engine's lock: the spawn either starts the worker
(`WorkerSpawned`) or fails (`SpawnFailed`, with its reason), and a failed
spawn rolls the dispatch back -- the task returns to CREATED with the
attempt uncounted, as if the dispatch had never happened. The worker
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
* A spawn failure rolls back to where the dispatch found the task (CREATED,
  the attempt number restored) rather than blocking it: the source's fix for
  the same window returns the record to the status the compare-and-swap moved
  it from, because no worker ever ran and nothing failed but the spawn. The
  reason travels in the `DispatchRolledBack` effect. An attempt that never
  spawned does not spend the budget; a spawner that always fails keeps the
  task dispatchable, and the operator's cancel still ends it.
* ``worker`` says what runs the attempt: ``SPAWNING`` between prep and spawn,
  ``LIVE`` once spawned; only a live worker reports, asks or spawns children.

`machines.task_as_written` is the same engine modelled from its status writes
as they stand; `specs.task` checks both against the same properties.

>>> from statewright.kernel.step import step
>>> s = Task()
>>> for event in (Dispatch(), WorkerSpawned(1), Ask("q"), Answer("a"), WorkerPassed(1)):
...     s = step(TASK, s, event).state
>>> s.phase, s.attempt, s.answer
(<TaskPhase.PASSED: 'passed'>, 1, 'a')
>>> rolled = step(TASK, step(TASK, Task(), Dispatch()).state, SpawnFailed(1, "store fault"))
>>> rolled.state == Task(), rolled.effects
(True, (DispatchRolledBack(attempt=1, reason='store fault'),))
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
    "DispatchRolledBack",
    "SPAWN_INPUTS",
    "SpawnFailed",
    "Worker",
    "WorkerSpawned",
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


class Worker(Enum):
    """What runs the current attempt."""

    NONE = "none"
    """No attempt in flight (CREATED, or a terminal phase)."""
    SPAWNING = "spawning"
    """The dispatch flipped the task to RUNNING; the worker's spawn has not answered yet."""
    LIVE = "live"
    """The worker runs (or waits on its question)."""
    LOST = "lost"
    """The spawn failed and nothing runs the attempt. Only the engine before its fix
    (``task_machine(fault_rolls_back=False)``) leaves a task so."""


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
    worker: Worker = Worker.NONE


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
class WorkerSpawned:
    """The spawner started the worker of ``attempt``."""

    attempt: int


@dataclass(frozen=True, slots=True)
class SpawnFailed:
    """The worker of ``attempt`` was never started: a store fault between the flip to RUNNING and
    the spawn (minting its token, registering its handle), or the spawner's own error."""

    attempt: int
    reason: str


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


@dataclass(frozen=True, slots=True)
class DispatchRolledBack:
    """The spawn of ``attempt`` failed for ``reason``; the task is dispatchable again."""

    attempt: int
    reason: str


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


def worker_live(state: Task, event: object) -> bool:
    """A spawned worker runs the attempt: only it reports, asks or spawns children."""
    return state.worker is Worker.LIVE


def spawn_pending(state: Task, event: WorkerSpawned | SpawnFailed) -> bool:
    """The dispatch's spawn has not answered yet, and this answer is for the attempt it prepared."""
    return state.worker is Worker.SPAWNING and event.attempt == state.attempt


def names_reason(state: Task, event: SpawnFailed) -> bool:
    return bool(event.reason)


def names_question(state: Task, event: Ask) -> bool:
    return bool(event.question)


def names_answer(state: Task, event: Answer) -> bool:
    return bool(event.answer)


def below_spawn_limit(state: Task, event: Spawn) -> bool:
    """The child, one level deeper, stays below ``max_depth`` (the engine's depth gate)."""
    return state.depth + 1 < state.max_depth


# -- updates --------------------------------------------------------------------


def _dispatch(state: Task, event: Dispatch) -> Task:
    return replace(state, attempt=state.attempt + 1, worker=Worker.SPAWNING)


def _spawned(state: Task, event: WorkerSpawned) -> Task:
    return replace(state, worker=Worker.LIVE)


def _roll_back(state: Task, event: SpawnFailed) -> Task:
    return replace(state, attempt=state.attempt - 1, worker=Worker.NONE)


def _lose_worker(state: Task, event: SpawnFailed) -> Task:
    return replace(state, worker=Worker.LOST)


def _attempt_over(state: Task, event: object) -> Task:
    return replace(state, worker=Worker.NONE)


def _ask(state: Task, event: Ask) -> Task:
    return replace(state, question=event.question)


def _answer(state: Task, event: Answer) -> Task:
    return replace(state, question=None, answer=event.answer)


def _cancel(state: Task, event: Cancel) -> Task:
    return replace(state, question=None, worker=Worker.NONE)


P = TaskPhase

TASK_INPUTS = (Dispatch, WorkerPassed, WorkerBlocked, WorkerFailed, Ask, Answer, Cancel, Spawn)
"""The task engine's inputs shared with the as-written model (which does not chase the spawn)."""

SPAWN_INPUTS = (WorkerSpawned, SpawnFailed)
"""The spawner's answer to a dispatch; the corrected task's closed union is ``TASK_INPUTS + SPAWN_INPUTS``."""


def task_machine(*, max_attempts: int = 2, depth: int = 0, max_depth: int = 3,
                 fault_rolls_back: bool = True) -> Machine[Task]:
    """The task machine for one attempt budget and spawn depth (``TASK`` is the default).

    ``fault_rolls_back=False`` is the engine before its fix: the compare-and-swap
    that flips a task to RUNNING is followed by store calls before the worker is
    spawned, and a fault there returned the error to the caller and left the
    task RUNNING with nothing behind it (``Worker.LOST``): no worker reports,
    asks or spawns for it, and only ``Cancel`` still moves it. The corrected
    engine rolls the dispatch back to CREATED.
    """
    spawn_failed = (
        Transition(P.RUNNING, SpawnFailed, P.CREATED, guard=[spawn_pending, names_reason], update=_roll_back,
                   emit=lambda s, i: (DispatchRolledBack(i.attempt, i.reason),))
        if fault_rolls_back else
        Transition(P.RUNNING, SpawnFailed, P.RUNNING, guard=[spawn_pending, names_reason], update=_lose_worker)
    )
    live = [worker_live, current_attempt]
    transitions = [
        Transition(P.CREATED, Dispatch, P.RUNNING, guard=attempts_left, update=_dispatch,
                   emit=lambda s, i: (TaskDispatched(s.attempt),)),
        Transition(P.RUNNING, WorkerSpawned, P.RUNNING, guard=spawn_pending, update=_spawned),
        spawn_failed,
        Transition(P.RUNNING, WorkerPassed, P.PASSED, guard=live, update=_attempt_over,
                   emit=lambda s, i: (TaskPassed(i.attempt),)),
        Transition(P.RUNNING, WorkerBlocked, P.BLOCKED, guard=live, update=_attempt_over,
                   emit=lambda s, i: (TaskBlocked(i.attempt),)),
        Transition(P.RUNNING, WorkerFailed, P.CREATED, guard=[*live, attempts_left], update=_attempt_over,
                   emit=lambda s, i: (AttemptFailed(i.attempt),)),
        Transition(P.RUNNING, WorkerFailed, P.BLOCKED, guard=[*live, attempts_exhausted], update=_attempt_over,
                   emit=lambda s, i: (TaskBlocked(i.attempt),)),
        Transition(P.RUNNING, Ask, P.SUSPENDED, guard=[worker_live, names_question], update=_ask,
                   emit=lambda s, i: (TaskSuspended(i.question),)),
        Transition(P.SUSPENDED, Answer, P.RUNNING, guard=names_answer, update=_answer,
                   emit=lambda s, i: (TaskResumed(i.answer),)),
        Transition(LIVE, Cancel, P.CANCELLED, update=_cancel, emit=(TaskCancelled(),)),
        Transition(P.RUNNING, Spawn, P.RUNNING, guard=[worker_live, below_spawn_limit],
                   emit=lambda s, i: (ChildSpawned(s.depth + 1),)),
    ]
    return Machine(
        "task",
        initial=Task(max_attempts=max_attempts, depth=depth, max_depth=max_depth),
        terminal=TERMINAL,
        inputs=(*TASK_INPUTS, *SPAWN_INPUTS),
        effects=(
            TaskDispatched, TaskPassed, TaskBlocked, AttemptFailed, TaskSuspended, TaskResumed,
            TaskCancelled, ChildSpawned, DispatchRolledBack,
        ),
        transitions=transitions,
        doc="One task of the swarm engine, from creation to its one outcome.",
    )


TASK: Machine[Task] = task_machine()
