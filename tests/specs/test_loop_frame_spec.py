"""The registered ``loop_frame`` spec: exact figures, every row fired, and a torn grant caught.

Why 57 states without cancel and without failures (``fail=False``): the run PENDING (1); RUNNING with the root frame
PENDING (1); with the root frame RUNNING, root step ``a`` is in one of 3
positions (free, granted, done) independently of the loop node's 17 (slot
free, granted, loop registered; then per iteration: requested, body frame
registered, running, step granted, step done, body completed -- 5 + 5 +
requested twice; then loop completed after 1 or after 2 iterations), 3 x 17 =
51; the root frame COMPLETED after 1 or 2 iterations (2); the run COMPLETED
(2). Cancelling copies every live state but the first two, which cancel to the
same state: 57 + 54 = 111. The deepest state is the run completed after two
iterations: 21 steps, depth 22.

Failures (on by default) add 81 states: a granted step that fails leaves its
frame open for good, so from there the run can only fail or be canceled
while the frame's other nodes go on: 111 + 81 = 192, the depth unchanged (a
failed run is never the deepest).
"""

from __future__ import annotations

import time

import pytest

from statewright.kernel.checker import Status, Verdict, check
from statewright.kernel.system import Action, System
from statewright.machines.loop_frame import (
    FlowFailed,
    FramePhase,
    GrantBody,
    LoopPhase,
    Register,
    RequestBody,
    RunPhase,
)
from statewright.specs.loop_frame import loop_frame as build

WITNESSES = ("run_completed_after_full_loop", "run_completed_after_early_exit", "loop_completed_at_limit",
             "loop_completed_early", "last_body_completed", "run_canceled", "run_failed_at_the_root",
             "run_failed_in_a_body")


def test_the_flow_run_is_checked_completely() -> None:
    report = check(build(), clock=time.perf_counter)
    assert report.verdict is Verdict.OK and report.complete and report.stopped_by is None
    assert (report.distinct_states, report.generated, report.depth) == (192, 346, 22)
    assert report.never_fired == ()
    assert all(r.status is Status.HOLDS for r in report.properties)
    assert {r.name for r in report.properties} >= set(WITNESSES)


def test_witnesses_are_shortest() -> None:
    report = check(build())
    lengths = {name: len(report.result(name).trace or ()) for name in WITNESSES}
    assert lengths == {"run_completed_after_full_loop": 22, "run_completed_after_early_exit": 16,
                       "loop_completed_at_limit": 18, "loop_completed_early": 12, "last_body_completed": 17,
                       "run_canceled": 2, "run_failed_at_the_root": 6, "run_failed_in_a_body": 11}
    full = report.result("run_completed_after_full_loop").trace
    assert full is not None
    last = full[-1].state
    assert last.run.phase is RunPhase.COMPLETED and last.loop.phase is LoopPhase.COMPLETED
    assert last.loop.ledger == ((1, "b1"), (2, "b2"))


def test_without_cancel_nothing_deadlocks() -> None:
    report = check(build(cancel=False))
    assert report.verdict is Verdict.OK and report.complete
    assert report.result("deadlock").status is Status.HOLDS
    assert (report.distinct_states, report.depth) == (111, 22)
    assert [c.label for c in report.never_fired] == ["PENDING|RUNNING --CancelRun--> CANCELED"]
    bare = check(build(cancel=False, fail=False))
    assert bare.verdict is Verdict.OK and (bare.distinct_states, bare.generated, bare.depth) == (57, 112, 22)


def test_a_failed_run_says_why_and_nothing_moves_after() -> None:
    report = check(build())
    trace = report.result("run_failed_in_a_body").trace
    assert trace is not None
    last = trace[-1]
    assert last.state.run.phase is RunPhase.FAILED and last.state.run.failures == ((1, "s"),)
    assert last.state.b1.failed == {"s"} and last.state.b1.phase is FramePhase.RUNNING
    assert [e.effect for e in last.effects] == [FlowFailed(((1, "s"),))]
    for name in ("failed_run_has_ledger_entry", "nothing_leaves_failed", "fails_by_its_own_cas",
                 "failure_ledger_only_grows"):
        assert report.result(name).status is Status.HOLDS
    # without failures the model is the one before the FAILED phase: 111 states, as pinned before
    before = check(build(fail=False))
    assert (before.distinct_states, before.generated, before.depth) == (111, 191, 22)
    assert [c.label for c in before.never_fired] == [
        "RUNNING --NoteFailure--> RUNNING", "RUNNING --FailRun[has_failure]--> FAILED",
        "RUNNING --FailStep[step_in_flight]--> RUNNING"]


def test_other_limits() -> None:
    one = check(build(limit=1))
    assert one.verdict is Verdict.OK and (one.distinct_states, one.depth) == (111, 16)
    # a loop of one iteration never asks for a second body frame
    assert [c.label for c in one.never_fired] == ["ITERATING --RequestBody[body_idle, below_limit]--> ITERATING"]
    three = check(build(limit=3))
    assert three.verdict is Verdict.OK and (three.distinct_states, three.depth) == (273, 28)
    assert three.never_fired == ()


def test_the_registry_knows_it() -> None:
    from statewright.specs.registry import REGISTRY

    entry = REGISTRY.get("loop_frame")
    assert entry.params == {"limit": 2, "cancel": True, "torn_grant": False, "fail": True}


def test_a_torn_body_frame_grant_is_caught_in_seven_states() -> None:
    report = check(build(torn_grant=True))
    assert report.verdict is Verdict.VIOLATED and report.stopped_by == "violation"
    result = report.result("all_or_nothing")
    assert result.status is Status.VIOLATED
    assert result.trace is not None and len(result.trace) == 7
    assert [s.input for s in result.trace[-2:]] == [Action("loop", RequestBody()), Action("loop", GrantBody())]
    torn = result.trace[-1].state
    assert torn.loop.ledger == ((1, "b1"),) and torn.run.body == "b1" and torn.b1.iteration == 0


def test_every_property_that_sees_the_tear_sees_it_at_once() -> None:
    report = check(build(torn_grant=True), keep_going=True)
    violated = {r.name: len(r.trace or ()) for r in report.properties if r.status is Status.VIOLATED}
    assert violated == {"all_or_nothing": 7, "iteration_advances_with_frame": 7, "one_iteration_per_body": 7,
                        "nothing_leaves_failed": 11}
    # the late one: step a fails while the torn grant is pending, the run fails, then the body frame registers
    late = report.result("nothing_leaves_failed").trace
    assert late is not None and isinstance(late[-1].input.input, Register)
    assert late[-2].state.run.phase is RunPhase.FAILED
    assert report.complete and report.distinct_states == 210


@pytest.mark.slow
def test_the_spec_kills_the_mutants_of_its_machines() -> None:
    from statewright.kernel.checker.mutants import score

    spec = build()
    assert isinstance(spec.model, System)
    scores = {m.name: score(spec, m) for m in spec.model.machines[:3]}
    assert {n: (s.killed, s.total) for n, s in scores.items()} == {
        "flow_run": (50, 50), "flow_frame": (41, 41), "flow_loop": (32, 35)}
    # its_body is an equivalent mutant: only the active body frame can ever complete; without body_running,
    # Replay's update meets a body that is not running and raises before any property fails
    assert scores["flow_loop"].survivors == (
        "#4 ITERATING --Replay[body_running]--> ITERATING: drop guard body_running",
        "#4 ITERATING --Replay[body_running]--> ITERATING: negate guard body_running",
        "#5 ITERATING --CloseIteration[its_body]--> ITERATING: drop guard its_body",
    )
