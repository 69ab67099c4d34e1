"""Flow frames, node slots and loops: each record's rows, and each store operation as one atomic step."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statewright.kernel.errors import DefinitionError
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.kernel.system import Action, Blocked, Emitted
from statewright.machines.loop_frame import (
    FRAME,
    RUN,
    RUN_TRANSITIONS,
    BodyCompleted,
    BodyGranted,
    BodyRequested,
    CancelRun,
    CloseIteration,
    CompleteBody,
    CompleteLoop,
    CompleteStep,
    EnterLoop,
    FailRun,
    FailStep,
    FinishFrame,
    FinishRun,
    FlowFailed,
    FlowRun,
    FrameKind,
    FramePhase,
    GrantBody,
    GrantSlot,
    LeaveLoop,
    Loop,
    LoopCompleted,
    LoopPhase,
    LoopStarted,
    NoteBody,
    NoteBodyDone,
    NoteFailure,
    NoteGrant,
    NoteLoop,
    NoteLoopDone,
    NoteOutput,
    NoteRequest,
    Register,
    Replay,
    RequestBody,
    RunPhase,
    SlotGranted,
    StartFrame,
    StartLoop,
    StartRun,
    StepCompleted,
    StepFailed,
    body_frame,
    flow_system,
    ledger_add,
    loop_machine,
    root_frame,
)

LOOP = loop_machine(("b1", "b2"))
SYSTEM = flow_system(limit=2)


def accepted(machine: Any, state: Any, event: Any) -> Accepted[Any]:
    out = step(machine, state, event)
    assert isinstance(out, Accepted), f"{event!r} rejected in {state!r}: {out}"
    return out


def refused(machine: Any, state: Any, event: Any) -> Rejected:
    out = step(machine, state, event)
    assert isinstance(out, Rejected), f"{event!r} accepted in {state!r}"
    return out


# -- the run record ------------------------------------------------------------------------


def test_run_status_moves_by_cas_and_ends() -> None:
    running = accepted(RUN, FlowRun(), StartRun()).state
    assert running.phase is RunPhase.RUNNING
    assert accepted(RUN, running, FinishRun()).state.phase is RunPhase.COMPLETED
    assert accepted(RUN, FlowRun(), CancelRun()).state.phase is RunPhase.CANCELED
    assert accepted(RUN, running, CancelRun()).state.phase is RunPhase.CANCELED


def test_run_takes_no_notes_unless_running() -> None:
    assert refused(RUN, FlowRun(), NoteGrant("root", "a")).reason is Reason.NO_TRANSITION
    done = replace(FlowRun(), phase=RunPhase.CANCELED)
    assert refused(RUN, done, NoteGrant("root", "a")).reason is Reason.TERMINAL
    assert refused(RUN, done, StartRun()).reason is Reason.TERMINAL


def test_run_mirrors_slots_and_outputs() -> None:
    r = accepted(RUN, FlowRun(RunPhase.RUNNING), NoteGrant("b1", "s")).state
    assert r.granted == {("b1", "s")}
    r = accepted(RUN, r, NoteOutput("b1", "s", 1)).state
    assert (r.granted, r.completed, r.outputs) == (frozenset(), {("b1", "s")}, {(1, "s")})


def test_run_mirrors_the_loop_without_guards_of_its_own() -> None:
    # the frame and the loop own these facts and guard them; the run only refuses when not RUNNING.
    # Its one guard is on a fact it owns: FailRun needs an entry in its own failure ledger.
    assert [t.input for t in RUN_TRANSITIONS if t.guard] == [FailRun]
    r = FlowRun(RunPhase.RUNNING, granted=frozenset({("root", "loop")}))
    r = accepted(RUN, r, NoteLoop("loop")).state
    r = accepted(RUN, r, NoteRequest("loop", 1)).state
    assert r.requested
    r = accepted(RUN, r, NoteBody("b1", 1)).state
    assert (r.requested, r.body, r.iteration) == (False, "b1", 1)
    r = accepted(RUN, r, NoteBodyDone("b1")).state
    r = accepted(RUN, r, NoteLoopDone("loop", "root", "loop")).state
    assert (r.loops, r.loops_done, r.granted, r.completed) == ({"loop"}, {"loop"}, frozenset(), {("root", "loop")})
    assert accepted(RUN, r, FinishRun()).state.phase is RunPhase.COMPLETED


def test_a_run_fails_only_with_a_ledger_entry_and_the_ledger_only_grows() -> None:
    running = FlowRun(RunPhase.RUNNING, granted=frozenset({("root", "a"), ("b1", "s")}))
    assert refused(RUN, running, FailRun()).guards == ("has_failure",)
    r = accepted(RUN, running, NoteFailure("b1", "s", 1)).state
    r = accepted(RUN, r, NoteFailure("root", "a", 0)).state
    assert (r.granted, r.failures) == (frozenset(), ((1, "s"), (0, "a")))
    out = accepted(RUN, r, FailRun())
    assert out.state.phase is RunPhase.FAILED and out.effects == (FlowFailed(((1, "s"), (0, "a"))),)
    for late in (StartRun(), FinishRun(), CancelRun(), FailRun(), NoteFailure("root", "a", 0)):
        assert refused(RUN, out.state, late).reason is Reason.TERMINAL
    assert refused(RUN, FlowRun(), FailRun()).reason is Reason.NO_TRANSITION


# -- frames --------------------------------------------------------------------------------


def test_a_body_frame_is_registered_for_one_iteration() -> None:
    f = accepted(FRAME, body_frame(), Register(2)).state
    assert (f.phase, f.iteration) == (FramePhase.PENDING, 2)
    assert refused(FRAME, f, Register(1)).reason is Reason.NO_TRANSITION


def test_frame_grants_and_completes_steps() -> None:
    f = accepted(FRAME, root_frame(), StartFrame()).state
    assert refused(FRAME, f, GrantSlot("zzz")).guards == ("node_ready",)
    out = accepted(FRAME, f, GrantSlot("a"))
    assert out.effects == (SlotGranted("a"),) and out.state.granted == {"a"}
    assert refused(FRAME, out.state, GrantSlot("a")).guards == ("node_ready",)
    out = accepted(FRAME, out.state, CompleteStep("a"))
    assert out.effects == (StepCompleted("a", 0),)
    assert (out.state.granted, out.state.done) == (frozenset(), {"a"})
    assert refused(FRAME, out.state, CompleteStep("a")).guards == ("step_in_flight",)
    assert refused(FRAME, out.state, FinishFrame()).guards == ("all_done",)


def test_a_failed_step_releases_its_slot_and_keeps_the_frame_open() -> None:
    f = accepted(FRAME, accepted(FRAME, root_frame(), StartFrame()).state, GrantSlot("a")).state
    out = accepted(FRAME, f, FailStep("a"))
    assert out.effects == (StepFailed("a", 0),)
    assert (out.state.granted, out.state.done, out.state.failed) == (frozenset(), frozenset(), {"a"})
    assert refused(FRAME, out.state, GrantSlot("a")).guards == ("node_ready",)  # not retried
    assert refused(FRAME, out.state, FailStep("a")).guards == ("step_in_flight",)
    assert refused(FRAME, f, FailStep("loop")).guards == ("step_in_flight",)  # a loop node fails by its steps


def test_frame_waits_on_its_loop_node() -> None:
    f = replace(root_frame(), phase=FramePhase.RUNNING, done=frozenset({"a"}))
    assert refused(FRAME, f, EnterLoop("loop")).guards == ("loop_slot_granted",)
    f = accepted(FRAME, f, GrantSlot("loop")).state
    assert refused(FRAME, f, CompleteStep("loop")).guards == ("step_in_flight",)  # a loop node is no step
    f = accepted(FRAME, f, EnterLoop("loop")).state
    assert refused(FRAME, f, EnterLoop("loop")).guards == ("loop_slot_granted",)
    f = accepted(FRAME, f, LeaveLoop("loop")).state
    assert (f.looping, f.granted, f.done) == (frozenset(), frozenset(), {"a", "loop"})
    done = accepted(FRAME, f, FinishFrame())
    assert done.state.phase is FramePhase.COMPLETED and done.effects == ()
    assert refused(FRAME, done.state, StartFrame()).reason is Reason.TERMINAL


def test_body_frame_completes_with_its_iteration() -> None:
    f = replace(body_frame(), phase=FramePhase.RUNNING, iteration=2)
    assert refused(FRAME, f, CompleteBody()).guards == ("all_done",)
    f = accepted(FRAME, f, GrantSlot("s")).state
    out = accepted(FRAME, f, CompleteStep("s"))
    assert out.effects == (StepCompleted("s", 2),)
    assert refused(FRAME, out.state, FinishFrame()).guards == ("root_kind",)
    end = accepted(FRAME, out.state, CompleteBody())
    assert end.state.phase is FramePhase.COMPLETED and end.effects == (BodyCompleted(2),)
    assert end.state.kind is FrameKind.BODY


# -- the loop ------------------------------------------------------------------------------


def test_loop_iterates_up_to_its_limit() -> None:
    out = accepted(LOOP, LOOP.initial, StartLoop())
    assert out.effects == (LoopStarted("root", "loop"),)
    lp = out.state
    assert refused(LOOP, lp, GrantBody()).guards == ("requested",)
    assert refused(LOOP, lp, CompleteLoop()).reason is Reason.NO_TRANSITION
    for n, frame in ((1, "b1"), (2, "b2")):
        out = accepted(LOOP, lp, RequestBody())
        assert out.effects == (BodyRequested(n),)
        assert refused(LOOP, out.state, RequestBody()).guards == ("body_idle",)
        out = accepted(LOOP, out.state, GrantBody())
        assert out.effects == (BodyGranted(frame, n),)
        lp = out.state
        assert (lp.phase, lp.iteration, lp.active) == (LoopPhase.ITERATING, n, frame)
        assert refused(LOOP, lp, CompleteLoop()).guards == ("body_idle",)
        assert refused(LOOP, lp, CloseIteration(frame, n + 1)).guards == ("its_body",)
        lp = accepted(LOOP, lp, CloseIteration(frame, n)).state
    assert lp.ledger == ((1, "b1"), (2, "b2")) and lp.closed == 2
    assert refused(LOOP, lp, RequestBody()).guards == ("below_limit",)
    out = accepted(LOOP, lp, CompleteLoop())
    assert out.state.phase is LoopPhase.COMPLETED and out.effects == (LoopCompleted("root", "loop"),)
    assert refused(LOOP, out.state, RequestBody()).reason is Reason.TERMINAL


def test_loop_may_stop_early_but_not_before_one_iteration() -> None:
    lp = Loop(LoopPhase.ITERATING, iteration=1, closed=1, ledger=((1, "b1"),))
    assert accepted(LOOP, lp, CompleteLoop()).state.phase is LoopPhase.COMPLETED
    registered = Loop(LoopPhase.REGISTERED)
    assert refused(LOOP, registered, CompleteLoop()).reason is Reason.NO_TRANSITION


def test_the_ledger_is_idempotent_by_iteration() -> None:
    assert ledger_add(((1, "b1"),), 1, "b1") == ((1, "b1"),)
    assert ledger_add(((1, "b1"),), 2, "b2") == ((1, "b1"), (2, "b2"))
    lp = Loop(LoopPhase.ITERATING, iteration=1, active="b1", ledger=((1, "b1"),))
    out = accepted(LOOP, lp, Replay())
    assert out.state == lp and out.effects == ()
    assert refused(LOOP, replace(lp, active=None), Replay()).guards == ("body_running",)


def test_loop_machine_needs_a_body_frame() -> None:
    with pytest.raises(DefinitionError, match="at least one body frame"):
        loop_machine(())
    with pytest.raises(DefinitionError, match="limit must be at least 1"):
        flow_system(limit=0)
    with pytest.raises(DefinitionError, match="body frames"):
        flow_system(limit=2, loop=loop_machine(("x",)))


# -- the eight operations, each one atomic step of the system --------------------------------


def run_actions(actions: list[tuple[str, Any]], state: Any = None) -> tuple[Any, list[Emitted]]:
    s = SYSTEM.initial if state is None else state
    emitted: list[Emitted] = []
    for instance, event in actions:
        out = SYSTEM.step(s, Action(instance, event))
        assert isinstance(out, Accepted), f"{instance}:{event!r} blocked: {out}"
        s = out.state
        emitted.extend(out.effects)
    return s, emitted


def blocked(state: Any, instance: str, event: Any) -> Blocked:
    out = SYSTEM.step(state, Action(instance, event))
    assert isinstance(out, Blocked), f"{instance}:{event!r} taken"
    return out


STARTED = [("run", StartRun()), ("root", StartFrame())]
IN_LOOP = [*STARTED, ("root", GrantSlot("loop")), ("loop", StartLoop())]


def test_cas_frame_state_needs_a_running_run() -> None:
    out = blocked(SYSTEM.initial, "root", StartFrame())
    assert out.why == "run_running"
    s, _ = run_actions(STARTED)
    assert s.root.phase is FramePhase.RUNNING and s.run.phase is RunPhase.RUNNING


def test_grant_node_slot_commits_frame_and_run() -> None:
    s, _ = run_actions([*STARTED, ("root", GrantSlot("a"))])
    assert s.root.granted == {"a"} and s.run.granted == {("root", "a")}
    s, _ = run_actions([("root", CompleteStep("a"))], s)
    assert s.root.done == {"a"} and s.run.completed == {("root", "a")} and s.run.outputs == {(0, "a")}


def test_fail_step_appends_the_failure_entry_and_the_run_fails() -> None:
    s, _ = run_actions([*STARTED, ("root", GrantSlot("a")), ("root", FailStep("a"))])
    assert s.root.failed == {"a"} and s.run.granted == frozenset() and s.run.failures == ((0, "a"),)
    assert blocked(s, "run", FinishRun()).why == "root_completed"
    s, emitted = run_actions([("run", FailRun())], s)
    assert s.run.phase is RunPhase.FAILED and [e.effect for e in emitted] == [FlowFailed(((0, "a"),))]
    assert blocked(s, "root", GrantSlot("loop")).routed  # the failed run takes no more notes


def test_an_operation_the_run_refuses_changes_nothing() -> None:
    s, _ = run_actions([*STARTED, ("run", CancelRun())])
    out = blocked(s, "root", GrantSlot("a"))
    assert out.routed and out.instance == "run" and isinstance(out.why, Rejected)
    assert out.why.reason is Reason.TERMINAL


def test_start_loop_registers_loop_run_and_parent() -> None:
    s, _ = run_actions(STARTED)
    out = blocked(s, "loop", StartLoop())  # the parent has not granted the loop node's slot
    assert out.instance == "root" and out.routed
    s, _ = run_actions(IN_LOOP)
    assert s.loop.phase is LoopPhase.REGISTERED and s.root.looping == {"loop"} and s.run.loops == {"loop"}


def test_grant_body_frame_start_commits_four_things() -> None:
    s, _ = run_actions([*IN_LOOP, ("loop", RequestBody())])
    assert s.loop.requested and s.run.requested
    s, emitted = run_actions([("loop", GrantBody())], s)
    assert emitted == [Emitted("loop", BodyGranted("b1", 1))]
    assert (s.loop.iteration, s.loop.ledger, s.loop.active) == (1, ((1, "b1"),), "b1")
    assert (s.b1.phase, s.b1.iteration) == (FramePhase.PENDING, 1)
    assert (s.run.body, s.run.iteration, s.run.requested) == ("b1", 1, False)
    assert s.b2 == body_frame()


def test_complete_body_frame_and_loop() -> None:
    s, _ = run_actions([*IN_LOOP, ("loop", RequestBody()), ("loop", GrantBody()), ("b1", StartFrame()),
                        ("b1", GrantSlot("s")), ("b1", CompleteStep("s"))])
    assert s.run.outputs == {(1, "s")}
    assert blocked(s, "loop", CompleteLoop()).why.guards == ("body_idle",)  # type: ignore[union-attr]
    s, _ = run_actions([("b1", CompleteBody())], s)
    assert s.b1.phase is FramePhase.COMPLETED and s.loop.active is None and s.loop.closed == 1
    assert s.run.body is None
    assert blocked(s, "root", FinishFrame()).why.guards == ("all_done",)  # type: ignore[union-attr]
    s, _ = run_actions([("loop", CompleteLoop())], s)
    assert s.loop.phase is LoopPhase.COMPLETED and s.root.done == {"loop"} and s.run.loops_done == {"loop"}
    assert blocked(s, "run", FinishRun()).why == "root_completed"
    s, _ = run_actions([("root", GrantSlot("a")), ("root", CompleteStep("a")), ("root", FinishFrame()),
                        ("run", FinishRun())], s)
    assert s.run.phase is RunPhase.COMPLETED and SYSTEM.is_terminal(s) is False  # b2 was never needed
    assert s.b2.phase is FramePhase.ABSENT


def test_a_peer_refusal_rejects_the_whole_operation() -> None:
    # a body frame that is not the loop's active one cannot complete: the loop refuses its part
    s, _ = run_actions([*IN_LOOP, ("loop", RequestBody()), ("loop", GrantBody())])
    out = blocked(s, "b2", CompleteBody())  # b2 is not registered: its own table refuses
    assert not out.routed and out.instance == "b2"
    hacked = s.replace(b2=replace(body_frame(), phase=FramePhase.RUNNING, iteration=2, done=frozenset({"s"})))
    out = blocked(hacked, "b2", CompleteBody())
    assert out.routed and out.instance == "loop" and out.why.guards == ("its_body",)  # type: ignore[union-attr]
