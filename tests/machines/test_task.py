"""The swarm-engine task: the corrected table, and the engine's status writes as written."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.machines.task import (
    TASK,
    TERMINAL,
    Answer,
    Ask,
    AttemptFailed,
    Cancel,
    ChildSpawned,
    Dispatch,
    DispatchRolledBack,
    Spawn,
    SpawnFailed,
    Task,
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
    Worker,
    WorkerSpawned,
    task_machine,
)
from statewright.machines.task_as_written import TASK_AS_WRITTEN, AnswerStored, WrittenTask, task_as_written_machine

P = TaskPhase


def run(events: list[Any], state: Any = None, machine: Any = TASK) -> tuple[Any, list[Any]]:
    """Feed events in order, insisting each is accepted; return the end state and all effects."""
    s = machine.initial if state is None else state
    effects: list[Any] = []
    for e in events:
        r = step(machine, s, e)
        assert isinstance(r, Accepted), f"{e!r} rejected in {s!r}: {r}"
        s = r.state
        effects.extend(r.effects)
    return s, effects


def rejected(state: Any, event: Any, machine: Any = TASK) -> Rejected:
    r = step(machine, state, event)
    assert isinstance(r, Rejected), f"{event!r} accepted in {state!r}"
    return r


# -- the corrected task ---------------------------------------------------------


def test_pass_on_first_attempt() -> None:
    s, effects = run([Dispatch(), WorkerSpawned(1), WorkerPassed(1)])
    assert s == Task(P.PASSED, attempt=1)
    assert effects == [TaskDispatched(1), TaskPassed(1)]


def test_blocked_by_the_final_output() -> None:
    s, effects = run([Dispatch(), WorkerSpawned(1), WorkerBlocked(1)])
    assert s.phase is P.BLOCKED and effects[-1] == TaskBlocked(1)


def test_failed_attempt_retries_then_blocks_when_exhausted() -> None:
    s, effects = run([Dispatch(), WorkerSpawned(1), WorkerFailed(1)])
    assert (s.phase, s.attempt, effects[-1]) == (P.CREATED, 1, AttemptFailed(1))
    s, effects = run([Dispatch(), WorkerSpawned(2), WorkerFailed(2)], s)
    assert (s.phase, s.attempt) == (P.BLOCKED, 2)
    assert effects == [TaskDispatched(2), TaskBlocked(2)]


def test_dispatch_refused_once_the_budget_is_spent() -> None:
    r = rejected(Task(P.CREATED, attempt=2), Dispatch())
    assert r.reason is Reason.GUARD_FAILED and r.guards == ("attempts_left",)


def test_outcome_of_an_older_attempt_is_refused() -> None:
    s, _ = run([Dispatch(), WorkerSpawned(1), WorkerFailed(1), Dispatch(), WorkerSpawned(2)])
    for late in (WorkerPassed(1), WorkerBlocked(1), WorkerFailed(1)):
        assert rejected(s, late).guards[0] == "current_attempt"


def test_suspend_and_resume_record_question_and_answer() -> None:
    s, effects = run([Dispatch(), WorkerSpawned(1), Ask("q")])
    assert (s.phase, s.question) == (P.SUSPENDED, "q")
    s, more = run([Answer("a")], s)
    assert s == Task(P.RUNNING, attempt=1, question=None, answer="a", worker=Worker.LIVE)
    assert effects[-1] == TaskSuspended("q") and more == [TaskResumed("a")]


def test_a_suspended_task_takes_no_outcome_and_no_second_question() -> None:
    s, _ = run([Dispatch(), WorkerSpawned(1), Ask("q")])
    for e in (WorkerPassed(1), WorkerBlocked(1), WorkerFailed(1), Ask("q"), Spawn(), Dispatch()):
        assert rejected(s, e).reason is Reason.NO_TRANSITION


def test_answer_without_a_question_is_refused() -> None:
    s, _ = run([Dispatch(), WorkerSpawned(1)])
    assert rejected(s, Answer("a")).reason is Reason.NO_TRANSITION


@pytest.mark.parametrize("prefix", [[], [Dispatch()], [Dispatch(), WorkerSpawned(1)], [Dispatch(), WorkerSpawned(1), Ask("q")],
                                    [Dispatch(), WorkerSpawned(1), WorkerFailed(1)]])
def test_cancel_from_every_live_phase_clears_the_question(prefix: list[Any]) -> None:
    s, effects = run([*prefix, Cancel()])
    assert (s.phase, s.question, s.worker, effects[-1]) == (P.CANCELLED, None, Worker.NONE, TaskCancelled())


@pytest.mark.parametrize("terminal", [[WorkerPassed(1)], [WorkerBlocked(1)], [Cancel()]])
@pytest.mark.parametrize(
    "late", [Dispatch(), WorkerPassed(1), WorkerBlocked(1), WorkerFailed(1), Ask("q"), Answer("a"), Cancel(), Spawn()]
)
def test_terminal_tasks_reject_every_input(terminal: list[Any], late: Any) -> None:
    s, _ = run([Dispatch(), WorkerSpawned(1), *terminal])
    assert s.phase in TERMINAL
    assert rejected(s, late).reason is Reason.TERMINAL


def test_spawn_only_while_running_and_below_the_depth_limit() -> None:
    s, effects = run([Dispatch(), WorkerSpawned(1), Spawn()], machine=task_machine(depth=1, max_depth=3))
    assert s.phase is P.RUNNING and effects[-1] == ChildSpawned(2)
    deep = task_machine(depth=2, max_depth=3)
    s, _ = run([Dispatch(), WorkerSpawned(1)], machine=deep)
    assert rejected(s, Spawn(), deep).guards == ("below_spawn_limit",)
    assert rejected(deep.initial, Spawn(), deep).reason is Reason.NO_TRANSITION


def test_the_worker_is_spawned_before_it_reports_asks_or_spawns() -> None:
    s, effects = run([Dispatch()])
    assert (s.phase, s.attempt, s.worker, effects) == (P.RUNNING, 1, Worker.SPAWNING, [TaskDispatched(1)])
    for e in (WorkerPassed(1), WorkerBlocked(1), WorkerFailed(1), Ask("q"), Spawn()):
        assert "worker_live" in rejected(s, e).guards
    assert rejected(s, WorkerSpawned(2)).guards == ("spawn_pending",)
    live, _ = run([WorkerSpawned(1)], s)
    assert live.worker is Worker.LIVE
    assert rejected(live, WorkerSpawned(1)).guards == ("spawn_pending",)
    assert rejected(live, SpawnFailed(1, "late")).guards[0] == "spawn_pending"


def test_a_failed_spawn_rolls_the_dispatch_back() -> None:
    """The source's fix: back to the status the flip moved from, the attempt uncounted, the reason logged."""
    s, effects = run([Dispatch(), WorkerSpawned(1), WorkerFailed(1), Dispatch(), SpawnFailed(2, "store fault")])
    assert s == Task(P.CREATED, attempt=1)
    assert effects[-1] == DispatchRolledBack(2, "store fault")
    s, _ = run([Dispatch(), WorkerSpawned(2), WorkerPassed(2)], s)
    assert (s.phase, s.attempt) == (P.PASSED, 2)
    assert rejected(run([Dispatch()])[0], SpawnFailed(1, "")).guards == ("names_reason",)


def test_the_engine_before_its_fix_strands_the_task() -> None:
    before = task_machine(fault_rolls_back=False)
    s, effects = run([Dispatch(), SpawnFailed(1, "store fault")], machine=before)
    assert (s.phase, s.worker, effects) == (P.RUNNING, Worker.LOST, [TaskDispatched(1)])
    for e in (WorkerPassed(1), WorkerFailed(1), WorkerSpawned(1), Ask("q"), Spawn(), Dispatch()):
        assert isinstance(step(before, s, e), Rejected)
    assert run([Cancel()], s, before)[0].phase is P.CANCELLED


def test_table_shape() -> None:
    assert len(TASK.labels) == 11 and TASK.terminal_phases == TERMINAL
    assert TASK.initial == Task()


# -- the engine as written ------------------------------------------------------

W = TASK_AS_WRITTEN


def written(events: list[Any], state: WrittenTask | None = None) -> WrittenTask:
    s, _ = run(events, state, W)
    assert isinstance(s, WrittenTask)
    return s


def test_as_written_table_has_one_row_per_status_write() -> None:
    # cancel, prep, three applies, query, resume + 4 answer-only + 5 spawn rows
    assert len(W.labels) == 16 and W.terminal_phases == TERMINAL


def test_as_written_happy_path_matches_the_corrected_one() -> None:
    s, effects = run([Dispatch(), Ask("q"), Answer("a"), WorkerPassed(1)], machine=W)
    assert s == WrittenTask(P.PASSED, attempt=1, answer="a", asked=True)
    assert effects == [TaskDispatched(1), TaskSuspended("q"), TaskResumed("a"), TaskPassed(1)]


def test_cancel_task_overwrites_a_passed_task() -> None:
    s = written([Dispatch(), WorkerPassed(1), Cancel()])
    assert s.phase is P.CANCELLED


def test_cancel_task_leaves_the_question_in_place() -> None:
    s = written([Ask("q"), Cancel()])
    assert (s.phase, s.question) == (P.CANCELLED, "q")


def test_dispatch_prep_revives_a_terminal_task_with_no_budget() -> None:
    s = written([Cancel(), Dispatch(), Dispatch(), Dispatch()])
    assert (s.phase, s.attempt, s.in_flight) == (P.RUNNING, 3, frozenset({1, 2, 3}))


@pytest.mark.parametrize(("outcome", "phase"), [(WorkerPassed(1), P.PASSED), (WorkerBlocked(1), P.BLOCKED),
                                                (WorkerFailed(1), P.BLOCKED)])
def test_dispatch_apply_overwrites_cancelled(outcome: Any, phase: TaskPhase) -> None:
    s = written([Dispatch(), Cancel(), outcome])
    assert (s.phase, s.in_flight) == (phase, frozenset())


def test_dispatch_apply_takes_a_stale_attempt_and_needs_one_in_flight() -> None:
    s = written([Dispatch(), Dispatch(), WorkerPassed(1)])
    assert (s.phase, s.attempt, s.in_flight) == (P.PASSED, 2, frozenset({2}))
    r = rejected(s, WorkerPassed(1), W)
    assert r.guards == ("worker_in_flight",)
    assert rejected(W.initial, WorkerBlocked(1), W).guards == ("worker_in_flight",)


def test_query_senior_suspends_a_terminal_task() -> None:
    s = written([Dispatch(), WorkerBlocked(1), Ask("q")])
    assert (s.phase, s.question, s.asked, s.answer) == (P.SUSPENDED, "q", True, None)


def test_resume_revives_a_cancelled_task_still_marked_suspended() -> None:
    s, effects = run([Ask("q"), Cancel(), Answer("a")], machine=W)
    assert (s.phase, s.question, s.answer) == (P.RUNNING, None, "a")
    assert effects[-1] == TaskResumed("a")


def test_resume_without_suspension_only_stores_the_answer() -> None:
    s, effects = run([Dispatch(), Ask("q"), Answer("a"), WorkerPassed(1), Answer("b")], machine=W)
    assert (s.phase, s.answer) == (P.PASSED, "b") and effects[-1] == AnswerStored("b")
    assert rejected(written([Dispatch()]), Answer("a"), W).guards == ("suspended_on_set", "answer_pending_only")


def test_spawn_needs_a_worker_token_and_outlives_the_attempt() -> None:
    assert rejected(W.initial, Spawn(), W).reason is Reason.NO_TRANSITION
    s, effects = run([Dispatch(), Cancel(), Spawn()], machine=W)
    assert s.phase is P.CANCELLED and effects[-1] == ChildSpawned(1)
    deep = task_as_written_machine(depth=2, max_depth=3)
    s, _ = run([Dispatch()], machine=deep)
    assert rejected(s, Spawn(), deep).guards == ("below_spawn_limit",)


def test_both_machines_share_phases_and_inputs() -> None:
    assert TASK.phase_type is W.phase_type
    # the corrected task also takes the spawner's answer, a window the as-written model does not chase
    assert TASK.input_types == (*W.input_types, WorkerSpawned, SpawnFailed)
    assert replace(WrittenTask(), asked=True).asked
