"""The task specs: the corrected task verifies, the engine as written breaks exactly what it should."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statewright.kernel.checker import Status, Verdict, check
from statewright.kernel.step import Accepted, Rejected, step
from statewright.machines.task import (
    Answer,
    Ask,
    Cancel,
    Dispatch,
    Spawn,
    TaskPhase,
    WorkerPassed,
    WorkerSpawned,
    task_machine,
)
from statewright.specs.task import AS_WRITTEN_VIOLATES, task, task_as_written

P = TaskPhase


def test_task_verifies_completely_with_exact_figures() -> None:
    r = check(task())
    assert (r.verdict, r.complete, r.stopped_by) == (Verdict.OK, True, None)
    assert (r.distinct_states, r.generated, r.depth) == (27, 47, 9)
    assert all(p.status is Status.HOLDS for p in r.properties)
    assert r.never_fired == ()


def test_task_witnesses_every_terminal_outcome() -> None:
    r = check(task())
    lengths = {n: len(r.result(n).trace or ()) for n in
               ("reach_passed", "reach_blocked", "reach_cancelled", "reach_resumed", "reach_last_attempt")}
    # the worker's spawn is a step of its own (Dispatch, WorkerSpawned, ...)
    assert lengths == {"reach_passed": 4, "reach_blocked": 4, "reach_cancelled": 2,
                       "reach_resumed": 5, "reach_last_attempt": 5}


def test_task_as_written_finds_every_expected_violation_completely() -> None:
    r = check(task_as_written())
    assert (r.verdict, r.complete, r.stopped_by) == (Verdict.OK, True, None)
    assert (r.distinct_states, r.generated, r.depth) == (156, 1164, 10)
    expected = {p.name for p in r.properties if p.status is Status.EXPECTED}
    assert expected == set(AS_WRITTEN_VIOLATES)
    holds = {p.name for p in r.properties if p.status is Status.HOLDS}
    assert holds == {
        "suspended_has_question", "questions_named", "answers_named", "resume_returns_to_running",
        "stray_answer_keeps_phase", "dispatch_starts_attempt", "report_decides_outcome",
        "last_failure_blocks", "outcome_of_dispatched_attempt", "spawn_depth_within_limit",
        "spawn_keeps_phase", "spawn_needs_a_worker", "depth_within_limit", "reach_passed",
        "reach_blocked", "reach_cancelled", "reach_resumed", "reach_last_attempt", "deadlock",
        "determinism", "recoverable",
    }
    assert r.never_fired == ()


def _name(event: Any) -> str:
    attempt = getattr(event, "attempt", None)
    return type(event).__name__ + ("" if attempt is None else f"({attempt})")


# property -> (trace length in states, inputs taken, phase reached by the last step)
SHORTEST = {
    "terminal_precedence": (3, ["Cancel", "Dispatch"], P.RUNNING),
    "terminal_stable": (3, ["Cancel", "Dispatch"], P.RUNNING),
    "no_redispatch_after_terminal": (3, ["Cancel", "Dispatch"], P.RUNNING),
    "no_suspend_after_terminal": (3, ["Cancel", "Ask"], P.SUSPENDED),
    "question_only_while_suspended": (3, ["Ask", "Dispatch"], P.RUNNING),
    "first_terminal_wins": (4, ["Dispatch", "Cancel", "WorkerPassed(1)"], P.PASSED),
    "outcome_survives_cancel": (4, ["Dispatch", "WorkerPassed(1)", "Cancel"], P.CANCELLED),
    "no_resume_after_terminal": (4, ["Ask", "Cancel", "Answer"], P.RUNNING),
    "stale_outcome_ignored": (4, ["Dispatch", "Dispatch", "WorkerPassed(1)"], P.PASSED),
    "attempts_within_max": (4, ["Dispatch", "Dispatch", "Dispatch"], P.RUNNING),
    "spawn_only_while_running": (4, ["Dispatch", "WorkerPassed(1)", "Spawn"], P.PASSED),
    "running_ends": (3, ["Ask", "Answer"], P.RUNNING),  # a lasso: it stutters there, no attempt in flight
}


def test_shortest_traces_cover_every_expected_violation() -> None:
    assert set(SHORTEST) == set(AS_WRITTEN_VIOLATES)
    assert {name: length for name, (length, _, _) in SHORTEST.items()} == dict(AS_WRITTEN_VIOLATES)


def test_a_finding_that_moves_is_a_mismatch() -> None:
    # the pinned lengths are the model's fingerprint: one off, and the check fails
    pins = {**AS_WRITTEN_VIOLATES, "stale_outcome_ignored": 5}
    r = check(replace(task_as_written(), expect=pins))
    assert r.verdict is Verdict.VIOLATED
    assert [p.name for p in r.properties if p.failed] == ["stale_outcome_ignored"]
    assert r.result("stale_outcome_ignored").status is Status.MISMATCH


def test_task_refuses_an_empty_question_or_answer() -> None:
    spec = task()
    assert isinstance(spec.inputs, tuple) and Ask("") in spec.inputs and Answer("") in spec.inputs
    machine = task_machine(depth=1)
    running = step(machine, step(machine, machine.initial, Dispatch()).state, WorkerSpawned(1))
    assert isinstance(running, Accepted)
    refused = step(machine, running.state, Ask(""))
    assert isinstance(refused, Rejected) and refused.guards == ("names_question",)
    suspended = step(machine, running.state, Ask("q"))
    assert isinstance(suspended, Accepted)
    refused = step(machine, suspended.state, Answer(""))
    assert isinstance(refused, Rejected) and refused.guards == ("names_answer",)


@pytest.mark.parametrize("name", sorted(SHORTEST))
def test_task_as_written_shortest_trace(name: str) -> None:
    spec = task_as_written()
    res = check(spec).result(name)
    length, inputs, last_phase = SHORTEST[name]
    assert res.status is Status.EXPECTED and res.trace is not None
    assert len(res.trace) == length
    assert [_name(s.input) for s in res.trace[1:]] == inputs
    assert res.trace[-1].state.phase is last_phase
    # the counterexample replays through the machine as written
    machine, state = spec.model, spec.model.initial
    for s in res.trace[1:]:
        out = step(machine, state, s.input)
        assert isinstance(out, Accepted) and out.state == s.state and out.effects == s.effects
        state = out.state


def test_late_pass_overwrites_cancelled() -> None:
    trace = check(task_as_written()).result("first_terminal_wins").trace
    assert trace is not None
    before, last = trace[-2], trace[-1]
    assert before.state.phase is P.CANCELLED and isinstance(before.input, Cancel)
    assert last.input == WorkerPassed(1) and last.state.phase is P.PASSED


def test_resume_revives_a_cancelled_task() -> None:
    trace = check(task_as_written()).result("no_resume_after_terminal").trace
    assert trace is not None
    assert [type(s.input) for s in trace[1:]] == [Ask, Cancel, Answer]
    assert trace[-2].state.question == "q" and trace[-1].state.question is None


def test_spawn_from_a_finished_task() -> None:
    trace = check(task_as_written()).result("spawn_only_while_running").trace
    assert trace is not None and isinstance(trace[-1].input, Spawn)
    assert isinstance(trace[1].input, Dispatch)


def test_task_as_written_without_expectations_is_violated() -> None:
    r = check(replace(task_as_written(), expect=()))
    assert r.verdict is Verdict.VIOLATED and r.stopped_by == "violation"
    assert not r.complete


def test_task_as_written_without_expectations_keep_going_violates_exactly_those() -> None:
    r = check(replace(task_as_written(), expect=()), keep_going=True)
    violated = {p.name for p in r.properties if p.status is Status.VIOLATED}
    assert r.verdict is Verdict.VIOLATED and violated == set(AS_WRITTEN_VIOLATES)


def test_corrected_task_expecting_the_bugs_reports_them_missing() -> None:
    r = check(replace(task(), expect=AS_WRITTEN_VIOLATES))
    assert r.verdict is Verdict.VIOLATED
    assert {p.name for p in r.properties if p.status is Status.MISSING} == set(AS_WRITTEN_VIOLATES)


def test_task_spec_parameters() -> None:
    r = check(task(max_attempts=3))
    assert r.verdict is Verdict.OK and r.result("reach_last_attempt").trace is not None
    deep = check(task(depth=2, max_depth=3))
    assert deep.verdict is Verdict.OK
    assert [c.fired for c in deep.coverage if "--Spawn[" in c.label] == [0]
