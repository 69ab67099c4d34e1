"""Tasks of the swarm engine: the corrected lifecycle, and the engine as written.

Both specs state the same properties. ``task`` checks `machines.task` and
verifies. ``task_as_written`` checks `machines.task_as_written` -- the status
writes of ``cancel_task``, ``dispatch_attempt_with``, ``query_senior`` and
``resume`` exactly as the source has them -- and declares each property the
engine breaks as an expected violation, so the report carries the shortest
trace of every bug.

Inputs: one dispatch at a time, worker outcomes for every attempt number up
to ``max_attempts + 1``, one question, one answer, cancel and spawn. The
corrected task is also offered an empty question and an empty answer, which
it must refuse (``questions_named``, ``answers_named``); the engine as written
checks neither, and the model of it does not chase that. The engine as written
has no attempt budget, so its dispatches are offered only while
``attempt <= max_attempts``: the caller may dispatch once past the budget,
which is enough to show the engine does not stop it and keeps the model
finite (and the check complete).

Besides the bugs, the properties state what the engine's rows do guarantee,
as written and corrected alike: a dispatch starts the next attempt, a
worker's report decides the outcome it reports, only a dispatched attempt
reports, a stray answer moves nothing, and spawning needs a worker and never
changes the parent's phase. The engine as written is pinned by the exact
shortest trace of each violation (`AS_WRITTEN_VIOLATES`): a change to its
table that removes a bug, or makes one reachable sooner or later, fails the
check.

Liveness. Both specs are ``recoverable``: an operator can cancel any live
task, so a final state is always reachable. Neither turns on ``terminates``:
under weak fairness of the task's own rows a spawner may fail forever, each
failure rolling the dispatch back (a 2-state lasso, Dispatch, SpawnFailed),
and a worker may put a question to a senior and get an answer forever (as
written, 3 states without a dispatch: Ask, Answer) -- the engine bounds
neither spawn retries, nor questions, nor an attempt's time in the lifecycle. What must
hold is stated under `FAIRNESS` instead: a worker that can report infinitely
often does (strongly: its questions disable that while suspended) and a
pending question is answered; the operator's ``Cancel`` is never assumed.
``running_ends`` (RUNNING leads to neither RUNNING nor SUSPENDED) then holds
for the corrected task. As written it does not: answering a question asked
before any dispatch makes a RUNNING task with no attempt in flight, which no
worker reports for (3 states: Ask, Answer, forever).

The corrected task adds the spawner's answer to a dispatch (`WorkerSpawned`,
`SpawnFailed`) and states more properties of the spawn window:
``worker_behind_running`` (a RUNNING or SUSPENDED task has a worker spawning
or live, and no other task has one), ``only_a_live_worker_acts``,
``spawner_answers_its_dispatch`` (once, for the attempt prepared),
``spawn_failure_has_reason``, ``spawn_failure_rolls_back`` (a failed spawn
returns the task to CREATED with the attempt uncounted) and
``running_gets_a_worker`` (a RUNNING task without a live worker gets one or
leaves RUNNING and SUSPENDED) under `TASK_FAIRNESS`: the spawner answers a
pending spawn.

``task --set fault_rolls_back=false`` (`FAULT_STRANDS`) is the engine before
it rolled a dispatch back: the compare-and-swap that flips the task to
RUNNING was followed by store calls before the worker was spawned, and a fault
there returned the error and left the task RUNNING with nothing behind it;
only a manual cancel got it out. The shortest counterexample of each finding
is Dispatch, SpawnFailed (3 states): the two safety properties see the step
itself, and the two liveness properties the 3-state lasso stuttering there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from statewright.kernel.checker import Property, Spec, always, always_step, leads_to, sometimes, strong_fair, weak_fair
from statewright.machines.task import (
    OUTCOMES,
    TERMINAL,
    Answer,
    Ask,
    Cancel,
    Dispatch,
    Spawn,
    SpawnFailed,
    TaskPhase,
    WorkerBlocked,
    WorkerFailed,
    WorkerPassed,
    WorkerSpawned,
    task_machine,
)
from statewright.machines.task import Worker as W
from statewright.machines.task_as_written import task_as_written_machine
from statewright.specs.registry import REGISTRY

P = TaskPhase

AS_WRITTEN_VIOLATES: Mapping[str, int] = {
    "terminal_stable": 3,  # Cancel, Dispatch
    "first_terminal_wins": 4,  # Dispatch, Cancel, WorkerPassed(1)
    "outcome_survives_cancel": 4,  # Dispatch, WorkerPassed(1), Cancel
    "no_redispatch_after_terminal": 3,  # Cancel, Dispatch
    "no_suspend_after_terminal": 3,  # Cancel, Ask
    "no_resume_after_terminal": 4,  # Ask, Cancel, Answer
    "stale_outcome_ignored": 4,  # Dispatch, Dispatch, WorkerPassed(1)
    "attempts_within_max": 4,  # Dispatch x 3
    "question_only_while_suspended": 3,  # Ask, Dispatch
    "spawn_only_while_running": 4,  # Dispatch, WorkerPassed(1), Spawn
    "running_ends": 3,  # Ask, Answer: RUNNING with no attempt in flight, which no worker reports for
    "terminal_precedence": 3,  # Cancel, Dispatch
}
"""Every property the engine as written breaks, with the length (in states) of its shortest trace.

The last one is the kernel's built-in. Pinning the lengths makes the findings
the model's fingerprint: the check fails if a bug disappears or moves.
"""


def _stays_if_terminal(kinds: tuple[type, ...]) -> Any:
    """A step test: an input of ``kinds`` never moves a terminal task."""

    def test(before: Any, event: Any, after: Any) -> bool:
        return not (before.phase in TERMINAL and isinstance(event, kinds)) or after.phase is before.phase

    return test


def terminal_stable(before: Any, event: Any, after: Any) -> bool:
    """A terminal task never changes phase, whatever the input."""
    return before.phase not in TERMINAL or after.phase is before.phase


def first_terminal_wins(before: Any, event: Any, after: Any) -> bool:
    """Once cancelled, a late worker outcome does not overwrite the cancellation."""
    return not (before.phase is P.CANCELLED and isinstance(event, OUTCOMES)) or after.phase is P.CANCELLED


def outcome_survives_cancel(before: Any, event: Any, after: Any) -> bool:
    """Cancelling a passed or blocked task does not overwrite its outcome."""
    decided = before.phase in (P.PASSED, P.BLOCKED)
    return not (decided and isinstance(event, Cancel)) or after.phase is before.phase


def stale_outcome_ignored(before: Any, event: Any, after: Any) -> bool:
    """The outcome of an older attempt does not decide the attempt now running."""
    stale = isinstance(event, OUTCOMES) and event.attempt != before.attempt
    return not stale or after.phase is before.phase


def dispatch_starts_attempt(before: Any, event: Any, after: Any) -> bool:
    """A dispatch starts the next attempt: the task is RUNNING under an attempt number one higher."""
    return not isinstance(event, Dispatch) or (after.phase is P.RUNNING and after.attempt == before.attempt + 1)


def report_decides_outcome(before: Any, event: Any, after: Any) -> bool:
    """A worker's report decides the outcome it reports.

    An ok final output passes the task, one that is not ok blocks it, and a
    worker that ended without one leaves the task waiting for the next
    dispatch or blocked -- never running, passed or cancelled.
    """
    if isinstance(event, WorkerPassed):
        return after.phase is P.PASSED
    if isinstance(event, WorkerBlocked):
        return after.phase is P.BLOCKED
    if isinstance(event, WorkerFailed):
        return after.phase in (P.CREATED, P.BLOCKED)
    return True


def last_failure_blocks(before: Any, event: Any, after: Any) -> bool:
    """When the attempt that fails is the last one the budget allows, the task is blocked."""
    last = isinstance(event, WorkerFailed) and before.attempt >= before.max_attempts
    return not last or after.phase is P.BLOCKED


def outcome_of_dispatched_attempt(before: Any, event: Any, after: Any) -> bool:
    """Only an attempt that was dispatched reports an outcome (numbers 1 .. the current attempt)."""
    return not isinstance(event, OUTCOMES) or 1 <= event.attempt <= before.attempt


def stray_answer_keeps_phase(before: Any, event: Any, after: Any) -> bool:
    """An answer when no question is pending moves nothing: the task keeps its phase."""
    return not (isinstance(event, Answer) and before.question is None) or after.phase is before.phase


def spawn_keeps_phase(before: Any, event: Any, after: Any) -> bool:
    """Spawning a child never changes the parent's phase."""
    return not isinstance(event, Spawn) or after.phase is before.phase


def spawn_needs_a_worker(before: Any, event: Any, after: Any) -> bool:
    """Only a worker spawns, so a task spawns only once some attempt was dispatched."""
    return not isinstance(event, Spawn) or before.attempt >= 1


def resume_returns_to_running(before: Any, event: Any, after: Any) -> bool:
    """Answering a suspended task resumes it: RUNNING, question cleared, answer recorded."""
    if not (before.phase is P.SUSPENDED and isinstance(event, Answer)):
        return True
    return after.phase is P.RUNNING and after.question is None and after.answer == event.answer


def spawn_depth_within_limit(before: Any, event: Any, after: Any) -> bool:
    """A child is only started below the depth limit."""
    return not isinstance(event, Spawn) or before.depth + 1 < before.max_depth


def spawn_only_while_running(before: Any, event: Any, after: Any) -> bool:
    """Only a running task's worker starts children."""
    return not isinstance(event, Spawn) or before.phase is P.RUNNING


def running_ends(s: Any) -> bool:
    """The attempt is over: the task is no longer RUNNING nor SUSPENDED on a question."""
    return s.phase not in (P.RUNNING, P.SUSPENDED)


FAIRNESS = (strong_fair(WorkerPassed, WorkerBlocked, WorkerFailed), weak_fair(Answer))
"""A worker that can report infinitely often reports (strong: its questions disable that while
suspended), and a question kept open is answered. The operator's ``Cancel`` is never assumed."""


def properties() -> list[Property]:
    """The properties both specs state, in report order."""
    return [
        always_step("terminal_stable", terminal_stable),
        always_step("first_terminal_wins", first_terminal_wins),
        always_step("outcome_survives_cancel", outcome_survives_cancel),
        always_step("no_redispatch_after_terminal", _stays_if_terminal((Dispatch,))),
        always_step("no_suspend_after_terminal", _stays_if_terminal((Ask,))),
        always_step("no_resume_after_terminal", _stays_if_terminal((Answer,))),
        always_step("stale_outcome_ignored", stale_outcome_ignored),
        always("attempts_within_max", lambda s: 0 <= s.attempt <= s.max_attempts),
        always("suspended_has_question", lambda s: s.phase is not P.SUSPENDED or s.question is not None),
        always("question_only_while_suspended", lambda s: s.question is None or s.phase is P.SUSPENDED),
        always("questions_named", lambda s: s.question is None or s.question != ""),
        always("answers_named", lambda s: s.answer is None or s.answer != ""),
        always_step("resume_returns_to_running", resume_returns_to_running),
        always_step("stray_answer_keeps_phase", stray_answer_keeps_phase),
        always_step("dispatch_starts_attempt", dispatch_starts_attempt),
        always_step("report_decides_outcome", report_decides_outcome),
        always_step("last_failure_blocks", last_failure_blocks),
        always_step("outcome_of_dispatched_attempt", outcome_of_dispatched_attempt),
        always_step("spawn_depth_within_limit", spawn_depth_within_limit),
        always_step("spawn_only_while_running", spawn_only_while_running),
        always_step("spawn_keeps_phase", spawn_keeps_phase),
        always_step("spawn_needs_a_worker", spawn_needs_a_worker),
        always("depth_within_limit", lambda s: 0 <= s.depth < s.max_depth),
        sometimes("reach_passed", lambda s: s.phase is P.PASSED),
        sometimes("reach_blocked", lambda s: s.phase is P.BLOCKED),
        sometimes("reach_cancelled", lambda s: s.phase is P.CANCELLED),
        sometimes("reach_resumed", lambda s: s.phase is P.RUNNING and s.answer is not None),
        sometimes("reach_last_attempt", lambda s: s.phase is P.RUNNING and s.attempt == s.max_attempts),
        leads_to("running_ends", lambda s: s.phase is P.RUNNING, running_ends),
    ]


def inputs(max_attempts: int, *, blank: bool = False) -> tuple[Any, ...]:
    """The environment's inputs: every outcome for attempts 1 .. max_attempts + 1.

    ``blank`` adds an empty question and an empty answer, which a task must refuse.
    """
    outcomes = tuple(kind(n) for n in range(1, max_attempts + 2) for kind in (WorkerPassed, WorkerBlocked, WorkerFailed))
    asks = (Ask("q"), Ask("")) if blank else (Ask("q"),)
    answers = (Answer("a"), Answer("")) if blank else (Answer("a"),)
    return (Dispatch(), *outcomes, *asks, *answers, Cancel(), Spawn())


def worker_behind_running(s: Any) -> bool:
    """A RUNNING or SUSPENDED task has a worker spawning or live; a task in any other phase has none."""
    if s.phase in (P.RUNNING, P.SUSPENDED):
        return bool(s.worker in (W.SPAWNING, W.LIVE))
    return bool(s.worker is W.NONE)


def spawn_failure_rolls_back(before: Any, event: Any, after: Any) -> bool:
    """A failed spawn returns the task to where the dispatch found it: CREATED, the attempt uncounted."""
    if not isinstance(event, SpawnFailed):
        return True
    return after.phase is P.CREATED and after.attempt == before.attempt - 1 and after.worker is W.NONE


def only_a_live_worker_acts(before: Any, event: Any, after: Any) -> bool:
    """Outcomes, questions and child spawns come from a spawned worker only."""
    return not isinstance(event, (*OUTCOMES, Ask, Spawn)) or before.worker is W.LIVE


def spawner_answers_its_dispatch(before: Any, event: Any, after: Any) -> bool:
    """The spawner answers once, for the attempt the dispatch prepared; a started worker is live."""
    if not isinstance(event, (WorkerSpawned, SpawnFailed)):
        return True
    pending = before.phase is P.RUNNING and before.worker is W.SPAWNING and event.attempt == before.attempt
    started = not isinstance(event, WorkerSpawned) or (after.phase is P.RUNNING and after.worker is W.LIVE)
    return bool(pending and started)


def spawn_failure_has_reason(before: Any, event: Any, after: Any) -> bool:
    """A failed spawn is taken only with its reason, which the rollback's effect carries."""
    return not isinstance(event, SpawnFailed) or event.reason != ""


def spawn_properties() -> list[Property]:
    """What the corrected task states about the spawn window, besides `properties`."""
    return [
        always("worker_behind_running", worker_behind_running),
        always_step("only_a_live_worker_acts", only_a_live_worker_acts),
        always_step("spawner_answers_its_dispatch", spawner_answers_its_dispatch),
        always_step("spawn_failure_has_reason", spawn_failure_has_reason),
        always_step("spawn_failure_rolls_back", spawn_failure_rolls_back),
        leads_to("running_gets_a_worker",
                 lambda s: s.phase is P.RUNNING and s.worker is not W.LIVE,
                 lambda s: s.worker is W.LIVE or s.phase not in (P.RUNNING, P.SUSPENDED)),
    ]


TASK_FAIRNESS = (*FAIRNESS, weak_fair(WorkerSpawned, SpawnFailed))
"""`FAIRNESS`, and the spawner answers a spawn it keeps pending (the engine awaits it)."""


def spawn_inputs(max_attempts: int) -> tuple[Any, ...]:
    """The spawner's answers for attempts 1 .. max_attempts + 1, and a failure with no reason (refused)."""
    return (*(kind for n in range(1, max_attempts + 2)
              for kind in (WorkerSpawned(n), SpawnFailed(n, "store fault"))), SpawnFailed(1, ""))


FAULT_STRANDS: Mapping[str, int] = {
    "worker_behind_running": 3,  # Dispatch, SpawnFailed: RUNNING with nothing behind it
    "spawn_failure_rolls_back": 3,  # the same step: the engine returned the error and kept RUNNING
    "running_ends": 3,  # ... and stutters there forever: nothing but a cancel moves it
    "running_gets_a_worker": 3,  # the same lasso
}
"""What ``fault_rolls_back=False`` (the engine before its fix) breaks, with the shortest trace."""


@REGISTRY.spec
def task(max_attempts: int = 2, depth: int = 1, max_depth: int = 3, fault_rolls_back: bool = True) -> Spec:
    """One swarm-engine task, corrected: every outcome is final and attempts stay in budget."""
    machine = task_machine(max_attempts=max_attempts, depth=depth, max_depth=max_depth,
                           fault_rolls_back=fault_rolls_back)
    return Spec(
        "task",
        machine,
        inputs=(*inputs(max_attempts, blank=True), *spawn_inputs(max_attempts)),
        properties=[*properties(), *spawn_properties()],
        expect={} if fault_rolls_back else FAULT_STRANDS,
        fairness=TASK_FAIRNESS,
        recoverable=True,
        doc=__doc__ or "",
    )


@REGISTRY.spec
def task_as_written(max_attempts: int = 2, depth: int = 1, max_depth: int = 3) -> Spec:
    """The swarm engine's task as written: late writes overwrite terminal outcomes (expected)."""
    domain = inputs(max_attempts)
    without_dispatch = domain[1:]

    def offered(state: Any) -> Sequence[Any]:
        return domain if state.attempt <= state.max_attempts else without_dispatch

    return Spec(
        "task_as_written",
        task_as_written_machine(max_attempts=max_attempts, depth=depth, max_depth=max_depth),
        inputs=offered,
        properties=properties(),
        expect=AS_WRITTEN_VIOLATES,
        fairness=FAIRNESS,
        recoverable=True,
        doc=__doc__ or "",
    )
