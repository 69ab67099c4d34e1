"""The session kernel: rows, rejections, the admission facts and the visible phase."""

from __future__ import annotations

from typing import Any

import pytest

from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.machines.session import (
    SESSION,
    AbandonInput,
    Abandonment,
    AcceptInput,
    ApplyInput,
    ApplyRun,
    AttachExecutor,
    CancelRun,
    CommitRun,
    ConsumeInput,
    Destroy,
    DetachExecutor,
    FailRun,
    QueueInput,
    Recover,
    Recycle,
    Registration,
    Reset,
    Retire,
    RollBackInput,
    Session,
    SessionPhase,
    StageInput,
    StartRun,
    Stop,
    accepts_input,
    can_prepare_run,
    held,
    is_terminal,
    processes_queue,
    session_machine,
    visible_phase,
)

P = SessionPhase
A = Abandonment


def run(events: list[Any], state: Session | None = None, machine: Any = SESSION) -> tuple[Session, list[Any]]:
    """Feed events in order, insisting each is accepted; return the end state and all effects."""
    s = machine.initial if state is None else state
    effects: list[Any] = []
    for e in events:
        r = step(machine, s, e)
        assert isinstance(r, Accepted), f"{e!r} rejected in {s!r}: {r}"
        s = r.state
        effects.extend(r.effects)
    return s, effects


def rejected(state: Session, event: Any) -> Rejected:
    r = step(SESSION, state, event)
    assert isinstance(r, Rejected), f"{event!r} accepted in {state!r}"
    return r


READY = [AttachExecutor(), AcceptInput("a"), AcceptInput("b")]
RUNNING_A = [*READY, StartRun("r1", "a")]


def test_happy_path_effects_name_the_input() -> None:
    s, effects = run([*RUNNING_A, ApplyRun("r1"), CommitRun("r1", "a")])
    assert effects == [QueueInput("a"), QueueInput("b"), StageInput("a", "r1"), ApplyInput("a", "r1"),
                       ConsumeInput("a", "r1")]
    assert s == Session(P.IDLE, Registration.ACTIVE, queued=(("b", 0),))


def test_start_records_the_run_and_the_pre_run_phase() -> None:
    s, _ = run(RUNNING_A)
    assert (s.phase, s.run_id, s.input_id, s.attempt, s.pre_run) == (P.RUNNING, "r1", "a", 1, P.IDLE)
    assert s.queued == (("b", 0),) and held(s) == ("a", "b")


@pytest.mark.parametrize(
    ("events", "event", "reason", "guards"),
    [
        ([AcceptInput("a")], StartRun("r1", "a"), Reason.GUARD_FAILED, ("attached",)),
        (READY, AcceptInput("a"), Reason.GUARD_FAILED, ("new_input",)),
        (READY, StartRun("r1", "z"), Reason.GUARD_FAILED, ("queued",)),
        (RUNNING_A, StartRun("r2", "b"), Reason.GUARD_FAILED, ("no_run_in_flight",)),
        (RUNNING_A, CommitRun("r1", "a"), Reason.GUARD_FAILED, ("applied",)),
        (RUNNING_A, FailRun("r2", "a"), Reason.GUARD_FAILED, ("same_run",)),
        (RUNNING_A, CancelRun("r1", "b"), Reason.GUARD_FAILED, ("same_run",)),
        (RUNNING_A, ApplyRun("r2"), Reason.GUARD_FAILED, ("same_run",)),
        ([*RUNNING_A, ApplyRun("r1")], ApplyRun("r1"), Reason.GUARD_FAILED, ("not_applied",)),
        ([*RUNNING_A, Stop()], Stop(), Reason.GUARD_FAILED, ("no_stop_pending",)),
        ([*RUNNING_A, Retire()], AcceptInput("c"), Reason.GUARD_FAILED, ("accepting",)),
        ([*RUNNING_A, Retire()], Retire(), Reason.GUARD_FAILED, ("resumes_idle",)),
        (READY, AttachExecutor(), Reason.GUARD_FAILED, ("detached",)),
        ([], DetachExecutor(), Reason.GUARD_FAILED, ("attached",)),
        (RUNNING_A, Reset(), Reason.NO_TRANSITION, ()),
        (READY, Recycle(), Reason.NO_TRANSITION, ()),
        ([Retire()], AcceptInput("a"), Reason.NO_TRANSITION, ()),
        ([Recover()], AcceptInput("a"), Reason.NO_TRANSITION, ()),
        ([Recover()], Recover(), Reason.NO_TRANSITION, ()),
        ([Stop()], AttachExecutor(), Reason.TERMINAL, ()),
        ([Destroy()], AcceptInput("a"), Reason.TERMINAL, ()),
        ([Destroy()], Destroy(), Reason.TERMINAL, ()),
    ],
)
def test_rejections_say_why(events: list[Any], event: Any, reason: Reason, guards: tuple[str, ...]) -> None:
    s, _ = run(events)
    r = rejected(s, event)
    assert (r.reason, r.guards) == (reason, guards)


def test_a_failed_run_requeues_its_input_until_the_budget_is_spent() -> None:
    m = session_machine(2)
    s, effects = run([*RUNNING_A, FailRun("r1", "a")], machine=m)
    assert effects[-1] == RollBackInput("a", "r1")
    assert (s.phase, s.queued, s.run_id) == (P.IDLE, (("a", 1), ("b", 0)), None)
    s, effects = run([StartRun("r2", "a"), FailRun("r2", "a")], s, machine=m)
    assert effects == [StageInput("a", "r2"), RollBackInput("a", "r2")]
    assert s.queued == (("b", 0),), "the second failure spent the budget of 2: the input is dropped"


def test_retire_while_running_returns_to_retired_and_shows_retired() -> None:
    s, _ = run([*RUNNING_A, Retire()])
    assert (s.phase, s.pre_run, visible_phase(s)) == (P.RUNNING, P.RETIRED, P.RETIRED)
    s, _ = run([CancelRun("r1", "a")], s)
    assert s.phase is P.RETIRED and s.queued == (("b", 0),)
    s, effects = run([StartRun("r2", "b")], s)
    assert (s.pre_run, visible_phase(s)) == (P.RETIRED, P.RETIRED), "a retired session drains its queue"
    s, _ = run([FailRun("r2", "b"), Recycle()], s)
    assert s.phase is P.IDLE and s.queued == (("b", 1),), "recycling preserves queued work"


def test_detach_during_a_run_drains_then_unregisters() -> None:
    s, _ = run([*RUNNING_A, DetachExecutor()])
    assert s.registration is Registration.DRAINING
    s, _ = run([ApplyRun("r1"), CommitRun("r1", "a")], s)
    assert (s.phase, s.registration) == (P.IDLE, Registration.UNREGISTERED)
    assert rejected(s, StartRun("r2", "b")).guards == ("attached",)


def test_stop_while_running_is_deferred_to_the_end_of_the_run() -> None:
    s, effects = run([*RUNNING_A, Stop()])
    assert (s.phase, s.stop_requested, effects[-1]) == (P.RUNNING, True, StageInput("a", "r1"))
    stopped, effects = run([ApplyRun("r1"), CommitRun("r1", "a")], s)
    assert stopped == Session(P.STOPPED, abandoned=("b",))
    assert effects[1:] == [ConsumeInput("a", "r1"), AbandonInput("b", A.STOPPED)]
    failed, effects = run([FailRun("r1", "a")], s)
    assert failed == Session(P.STOPPED, abandoned=("a", "b"))
    assert effects == [AbandonInput("a", A.STOPPED), AbandonInput("b", A.STOPPED)]
    cancelled, effects = run([CancelRun("r1", "a")], s)
    assert cancelled.phase is P.STOPPED
    assert effects == [AbandonInput("a", A.CANCELLED), AbandonInput("b", A.STOPPED)]


def test_stop_and_destroy_give_up_what_the_session_holds() -> None:
    s, effects = run([*READY, Stop()])
    assert s == Session(P.STOPPED, abandoned=("a", "b"))
    assert effects[-2:] == [AbandonInput("a", A.STOPPED), AbandonInput("b", A.STOPPED)]
    s, effects = run([*RUNNING_A, Destroy()])
    assert s == Session(P.DESTROYED, abandoned=("a", "b"))
    assert effects[-2:] == [AbandonInput("a", A.DESTROYED), AbandonInput("b", A.DESTROYED)]


def test_reset_abandons_the_queue_and_the_receipt_lasts_one_step() -> None:
    s, effects = run([*READY, Reset()])
    assert effects[-2:] == [AbandonInput("a", A.RESET), AbandonInput("b", A.RESET)]
    assert (s.phase, s.queued, s.abandoned) == (P.IDLE, (), ("a", "b"))
    s, _ = run([AcceptInput("a")], s)
    assert s.abandoned == () and s.queued == (("a", 0),)


def test_recovery_keeps_the_run_and_waits_for_an_executor() -> None:
    s, effects = run([*RUNNING_A, ApplyRun("r1"), Recover()])
    assert (s.phase, s.registration, s.run_id, s.pre_run, effects[-1]) == (
        P.RECOVERING, Registration.UNREGISTERED, "r1", P.IDLE, ApplyInput("a", "r1"))
    assert rejected(s, CommitRun("r1", "a")).reason is Reason.NO_TRANSITION
    back, _ = run([AttachExecutor(), CommitRun("r1", "a")], s)
    assert (back.phase, back.registration) == (P.IDLE, Registration.ACTIVE)
    stopped, effects = run([Stop()], s)
    assert stopped.phase is P.STOPPED and effects == [AbandonInput("a", A.STOPPED), AbandonInput("b", A.STOPPED)]
    retired, _ = run([Retire(), Recover(), AttachExecutor()])
    assert (retired.phase, retired.pre_run) == (P.RETIRED, None)


def test_seeded_bug_stages_over_a_run_in_flight() -> None:
    bad = session_machine(stage_only_when_idle=False)
    s, _ = run([*RUNNING_A, StartRun("r2", "b")], machine=bad)
    assert (s.input_id, s.queued, held(s)) == ("b", (), ("b",)), "input a vanished from the ledger"


def test_admission_facts_by_phase() -> None:
    facts = {p: (accepts_input(p), processes_queue(p), can_prepare_run(p), is_terminal(p)) for p in P}
    assert facts == {
        P.IDLE: (True, True, True, False),
        P.RUNNING: (True, True, False, False),
        P.RETIRED: (False, True, True, False),
        P.RECOVERING: (False, False, False, False),
        P.STOPPED: (False, False, False, True),
        P.DESTROYED: (False, False, False, True),
    }
    assert SESSION.terminal_phases == {P.STOPPED, P.DESTROYED}


@pytest.mark.parametrize(
    ("state", "control", "shown"),
    [
        (Session(P.RUNNING, pre_run=P.RETIRED), None, P.RETIRED),
        (Session(P.RUNNING, pre_run=P.IDLE), None, P.RUNNING),
        (Session(P.RUNNING, pre_run=P.RETIRED), P.DESTROYED, P.DESTROYED),
        (Session(P.IDLE), P.STOPPED, P.STOPPED),
        (Session(P.STOPPED), P.DESTROYED, P.DESTROYED),
        (Session(P.STOPPED), P.IDLE, P.STOPPED),
        (Session(P.IDLE), P.RETIRED, P.IDLE),
        (Session(P.RUNNING, pre_run=P.RETIRED), P.RUNNING, P.RETIRED),
        (Session(P.RECOVERING, pre_run=P.RETIRED), None, P.RECOVERING),
    ],
)
def test_visible_phase_terminal_control_wins(state: Session, control: SessionPhase | None,
                                             shown: SessionPhase) -> None:
    assert visible_phase(state, control) is shown


def test_the_table_has_the_rows_it_documents() -> None:
    assert len(SESSION.labels) == 29
    assert "RUNNING --Stop[no_stop_pending]--> RUNNING" in SESSION.labels
    assert "RUNNING --CommitRun[same_run, applied, stop_pending]--> STOPPED" in SESSION.labels
