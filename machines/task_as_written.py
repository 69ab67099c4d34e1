"""The swarm engine's task, modelled from its status writes exactly as they stand.

This is `machines.task` without the corrections: the same phases, inputs and
effects, but each row below is one status write of the engine source
(``mlua-swarm-engine.rs.txt``), with the conditions the source checks and no
others. Where the source writes over a terminal status the row says
``from_terminal=True``; that is the defect the checker is meant to find, and
`specs.task` (spec ``task_as_written``) lists every property it breaks.

Where each row comes from
-------------------------
``cancel_task``
    Looks the task up and sets its status to Cancelled, whatever the status
    was; the pending question (``suspended_on``) is left in place.
    -> ``Cancel`` from every phase to CANCELLED.
``dispatch_attempt_with``, first locked section ("prep")
    Bumps the attempt number and sets the status to Running, with no look at
    the current status and no attempt budget; the question is left in place.
    The worker then runs outside the lock.
    -> ``Dispatch`` from every phase to RUNNING; the attempt joins ``in_flight``.
``dispatch_attempt_with``, last locked section ("apply")
    Once the worker has joined, writes Pass or Blocked from its last final
    output, or Blocked when there is none or the worker errored -- again
    whatever the status is by then, and whichever attempt is current.
    -> ``WorkerPassed`` to PASSED, ``WorkerBlocked`` and ``WorkerFailed`` to
    BLOCKED, from every phase, for any attempt still in flight.
``query_senior``
    Sets the status to Suspended, records the question's resume key and opens
    a fresh pending answer, whatever the status was.
    -> ``Ask`` from every phase to SUSPENDED.
``resume``
    Needs a pending answer for the key (some question was asked); stores the
    answer, and only if the task still records that it is suspended on the
    key, clears that and sets the status to Running -- whatever the status is.
    -> ``Answer`` with ``suspended_on_set`` from every phase to RUNNING; with
    ``answer_pending_only`` a data-only row that keeps the phase.
``start_task`` (the spawn depth gate, for completeness)
    A worker token of the task may start a child while the child's depth stays
    below the limit; the token outlives the attempt, and nothing looks at the
    parent's status.
    -> ``Spawn`` keeps the phase, once a worker token exists (after a dispatch).

What the model leaves out: ids, timestamps, events and wake-ups (they write
no status), and the prompt table. A spawn error after "prep" returns before
"apply", leaving the task Running with no worker; the model does not count
workers beyond ``in_flight`` and does not chase that path.

>>> from statewright.kernel.step import step
>>> s = WrittenTask()
>>> for event in (Dispatch(), Cancel(), WorkerPassed(1)):
...     s = step(TASK_AS_WRITTEN, s, event).state
>>> s.phase
<TaskPhase.PASSED: 'passed'>
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from statewright.kernel.machine import Machine, Transition
from statewright.machines.task import (
    TASK_INPUTS,
    TERMINAL,
    Answer,
    Ask,
    Cancel,
    ChildSpawned,
    Dispatch,
    Spawn,
    TaskBlocked,
    TaskCancelled,
    TaskDispatched,
    TaskPassed,
    TaskPhase,
    TaskResumed,
    TaskSuspended,
    WorkerBlocked,
    WorkerFailed,
    WorkerPassed,
    below_spawn_limit,
)

__all__ = [
    "ALL_PHASES",
    "TASK_AS_WRITTEN",
    "AnswerStored",
    "WrittenTask",
    "task_as_written_machine",
]

ALL_PHASES = tuple(TaskPhase)


@dataclass(frozen=True, slots=True)
class WrittenTask:
    """The engine's task record, as far as status writes go.

    ``question`` is the key the task is suspended on (``suspended_on``),
    ``asked`` whether a pending answer slot exists for it, ``answer`` that
    slot's answer, and ``in_flight`` the attempts whose worker has not been
    applied yet.
    """

    phase: TaskPhase = TaskPhase.CREATED
    attempt: int = 0
    max_attempts: int = 2
    depth: int = 0
    max_depth: int = 3
    question: str | None = None
    answer: str | None = None
    asked: bool = False
    in_flight: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class AnswerStored:
    """``resume`` stored an answer but found no task suspended on the key."""

    answer: str


# -- guards ---------------------------------------------------------------------


def worker_in_flight(state: WrittenTask, event: WorkerPassed | WorkerBlocked | WorkerFailed) -> bool:
    """A dispatch call for this attempt is between "prep" and "apply"."""
    return event.attempt in state.in_flight


def suspended_on_set(state: WrittenTask, event: Answer) -> bool:
    """``resume`` finds the task still suspended on the key."""
    return state.question is not None


def answer_pending_only(state: WrittenTask, event: Answer) -> bool:
    """The key has a pending answer slot but no task is suspended on it."""
    return state.asked and state.question is None


def has_worker_token(state: WrittenTask, event: Spawn) -> bool:
    """Some dispatch minted a worker token bound to this task."""
    return state.attempt >= 1


# -- updates --------------------------------------------------------------------


def _prep(state: WrittenTask, event: Dispatch) -> WrittenTask:
    attempt = state.attempt + 1
    return replace(state, attempt=attempt, in_flight=state.in_flight | {attempt})


def _apply(state: WrittenTask, event: WorkerPassed | WorkerBlocked | WorkerFailed) -> WrittenTask:
    return replace(state, in_flight=state.in_flight - {event.attempt})


def _query(state: WrittenTask, event: Ask) -> WrittenTask:
    return replace(state, question=event.question, answer=None, asked=True)


def _resume(state: WrittenTask, event: Answer) -> WrittenTask:
    return replace(state, question=None, answer=event.answer)


def _store_answer(state: WrittenTask, event: Answer) -> WrittenTask:
    return replace(state, answer=event.answer)


P = TaskPhase


def task_as_written_machine(*, max_attempts: int = 2, depth: int = 0, max_depth: int = 3) -> Machine[WrittenTask]:
    """The engine's task as written, for one attempt budget (the engine never reads it) and depth."""
    # Phase-keeping rows, one per phase in which they can happen: nothing
    # re-enters CREATED, so no answer slot or worker token exists there, and a
    # SUSPENDED task is always suspended on its key.
    keep_phase = [
        *(Transition(p, Answer, p, guard=answer_pending_only, update=_store_answer,
                     emit=lambda s, i: (AnswerStored(i.answer),), from_terminal=True)
          for p in ALL_PHASES if p not in (P.CREATED, P.SUSPENDED)),
        *(Transition(p, Spawn, p, guard=[has_worker_token, below_spawn_limit],
                     emit=lambda s, i: (ChildSpawned(s.depth + 1),), from_terminal=True)
          for p in ALL_PHASES if p is not P.CREATED),
    ]
    return Machine(
        "task_as_written",
        initial=WrittenTask(max_attempts=max_attempts, depth=depth, max_depth=max_depth),
        terminal=TERMINAL,
        inputs=TASK_INPUTS,
        effects=(
            TaskDispatched, TaskPassed, TaskBlocked, TaskSuspended, TaskResumed, TaskCancelled,
            ChildSpawned, AnswerStored,
        ),
        transitions=[
            # cancel_task
            Transition(ALL_PHASES, Cancel, P.CANCELLED, emit=(TaskCancelled(),), from_terminal=True),
            # dispatch_attempt_with, "prep"
            Transition(ALL_PHASES, Dispatch, P.RUNNING, update=_prep,
                       emit=lambda s, i: (TaskDispatched(s.attempt),), from_terminal=True),
            # dispatch_attempt_with, "apply"
            Transition(ALL_PHASES, WorkerPassed, P.PASSED, guard=worker_in_flight, update=_apply,
                       emit=lambda s, i: (TaskPassed(i.attempt),), from_terminal=True),
            Transition(ALL_PHASES, WorkerBlocked, P.BLOCKED, guard=worker_in_flight, update=_apply,
                       emit=lambda s, i: (TaskBlocked(i.attempt),), from_terminal=True),
            Transition(ALL_PHASES, WorkerFailed, P.BLOCKED, guard=worker_in_flight, update=_apply,
                       emit=lambda s, i: (TaskBlocked(i.attempt),), from_terminal=True),
            # query_senior
            Transition(ALL_PHASES, Ask, P.SUSPENDED, update=_query,
                       emit=lambda s, i: (TaskSuspended(i.question),), from_terminal=True),
            # resume
            Transition(ALL_PHASES, Answer, P.RUNNING, guard=suspended_on_set, update=_resume,
                       emit=lambda s, i: (TaskResumed(i.answer),), from_terminal=True),
            # resume (no task suspended on the key) and start_task, one row per phase
            *keep_phase,
        ],
        doc="The swarm engine's task, status writes exactly as the source has them.",
    )


TASK_AS_WRITTEN: Machine[WrittenTask] = task_as_written_machine()
