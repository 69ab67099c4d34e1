"""The ``session`` and ``session_inputs`` specs: exact figures, witnesses, and the seeded bug caught.

``session`` explores the session alone over inputs in1, in2, runs r1, r2 and a
budget of 2 attempts: 644 states, depth 13, and every one of its 29 rows fires.
``session_inputs`` composes it with three input machines over one run id and a
budget of 2: 23,976 states, depth 22; stray messages sent straight to the
inputs (a stale run's reports, unnamed requests) are all refused, so they add
no state. Only the input rows the session never
routes stay unfired (AwaitConsumption, Supersede, Coalesce: nothing in the
session asks for them).
"""

from __future__ import annotations

import pytest

from statewright.kernel.checker import Status, Verdict, check
from statewright.kernel.system import Action, Blocked, System
from statewright.machines.input import InputPhase, Queue
from statewright.machines.session import AcceptInput, ApplyRun, AttachExecutor, CommitRun, StageInput, StartRun
from statewright.specs.session import STRAYS, one_staged, session, session_inputs
from tests.specs.reports import report as cached

WITNESSES = ("reach_stopped", "reach_destroyed", "reach_retired", "reach_stop_deferred", "reach_draining",
             "reach_running_retired")
SYSTEM_WITNESSES = ("session_stopped", "session_destroyed", "session_retired", "input_consumed",
                    "input_exhausted", "all_consumed")


def test_the_session_alone_is_checked_completely() -> None:
    report = check(session())
    assert report.verdict is Verdict.OK and report.complete and report.stopped_by is None
    assert (report.distinct_states, report.generated, report.depth) == (644, 3514, 13)
    assert report.never_fired == ()
    assert all(r.status is Status.HOLDS for r in report.properties)
    lengths = {name: len(report.result(name).trace or ()) for name in WITNESSES}
    assert lengths == {"reach_stopped": 2, "reach_destroyed": 2, "reach_retired": 2, "reach_stop_deferred": 5,
                       "reach_draining": 5, "reach_running_retired": 5}


@pytest.mark.slow
def test_the_session_with_three_inputs_is_checked_completely() -> None:
    report = cached("session_inputs")  # shared with test_liveness_findings
    assert report.verdict is Verdict.OK and report.complete and report.stopped_by is None
    assert (report.distinct_states, report.generated, report.depth) == (23976, 115632, 22)
    assert all(r.status is Status.HOLDS for r in report.properties)
    assert [c.label for c in report.never_fired] == [
        "APPLIED --AwaitConsumption[same_run]--> APPLIED_PENDING_CONSUMPTION",
        "QUEUED --Supersede[names_superseder]--> SUPERSEDED",
        "QUEUED --Coalesce[names_aggregate]--> COALESCED",
    ]
    lengths = {name: len(report.result(name).trace or ()) for name in SYSTEM_WITNESSES}
    assert lengths == {"session_stopped": 2, "session_destroyed": 2, "session_retired": 2, "input_consumed": 6,
                       "input_exhausted": 7, "all_consumed": 14}
    consumed = report.result("input_consumed").trace
    assert consumed is not None
    assert [s.input.input for s in consumed[1:]] == [
        AttachExecutor(), AcceptInput("in1"), StartRun("r1", "in1"), ApplyRun("r1"), CommitRun("r1", "in1")]
    assert consumed[-1].state.in1.phase is InputPhase.CONSUMED


def test_a_routed_rejection_refuses_the_whole_step() -> None:
    system = session_inputs().model
    assert isinstance(system, System)
    s = system.initial
    for event in (AttachExecutor(), AcceptInput("in1"), StartRun("r1", "in1"), ApplyRun("r1"),
                  CommitRun("r1", "in1")):
        out = system.step(s, Action("session", event))
        assert not isinstance(out, Blocked), out.message
        s = out.state
    again = system.step(s, Action("session", AcceptInput("in1")))
    assert isinstance(again, Blocked) and again.routed and again.instance == "in1"
    assert again.input == Queue()
    staged = system.step(system.initial, Action("session", AttachExecutor()))
    assert not isinstance(staged, Blocked)
    assert isinstance(system.step(staged.state, Action("session", StartRun("r1", "in1"))), Blocked)


def test_the_registry_knows_both() -> None:
    from statewright.specs.registry import REGISTRY

    assert REGISTRY.get("session").params == {"inputs": 2, "runs": 2, "max_attempts": 2,
                                              "stage_only_when_idle": True, "recover_settles_drain": True,
                                              "stopped": "final"}
    assert REGISTRY.get("session_inputs").params == {"runs": 1, "max_attempts": 2, "stage_only_when_idle": True,
                                                     "defer_total": True}


def test_staging_over_a_run_in_flight_loses_an_input_of_the_session() -> None:
    report = check(session(stage_only_when_idle=False))
    result = report.result("ledger_accounted")
    assert report.verdict is Verdict.VIOLATED and report.stopped_by == "violation"
    assert result.status is Status.VIOLATED and result.trace is not None and len(result.trace) == 6
    assert [s.input for s in result.trace[1:]] == [
        AttachExecutor(), AcceptInput("in1"), AcceptInput("in2"), StartRun("r1", "in1"), StartRun("r1", "in2")]
    assert result.trace[-1].state.input_id == "in2" and result.trace[-1].state.queued == ()


def test_staging_over_a_run_in_flight_stages_two_inputs() -> None:
    report = check(session_inputs(stage_only_when_idle=False))
    assert report.verdict is Verdict.VIOLATED and report.stopped_by == "violation"
    broken = {r.name for r in report.properties if r.status is Status.VIOLATED}
    assert broken == {"ledger_accounted", "run_starts_from_the_queue"}, "the session's own step is refused first"
    result = report.result("run_starts_from_the_queue")
    assert result.trace is not None and len(result.trace) == 6
    last = result.trace[-1]
    assert (last.state.in1.phase, last.state.in2.phase) == (InputPhase.STAGED, InputPhase.STAGED)
    assert last.effects[0].effect == StageInput("in2", "r1")
    assert not one_staged(last.state), "the state it reaches breaks the system invariant too"


def test_every_stray_message_is_refused_by_every_input() -> None:
    system = session_inputs().model
    assert isinstance(system, System)
    s = system.initial
    for event in (AttachExecutor(), AcceptInput("in1"), AcceptInput("in2"), StartRun("r1", "in1"), ApplyRun("r1")):
        out = system.step(s, Action("session", event))
        assert not isinstance(out, Blocked), out.message
        s = out.state
    assert (s.in1.phase, s.in2.phase, s.in3.phase) == (InputPhase.APPLIED, InputPhase.QUEUED, InputPhase.ACCEPTED)
    for name in ("in1", "in2", "in3"):
        for stray in STRAYS:
            assert isinstance(system.step(s, Action(name, stray)), Blocked), (name, stray)
