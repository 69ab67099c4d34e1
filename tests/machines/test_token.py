"""Capability tokens and operator sessions: every row through `step`, every guard's rejection by name."""

from __future__ import annotations

from typing import Any

import pytest

from statewright.kernel.machine import Machine
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.machines.token import (
    GATE,
    OPERATOR,
    TASK_SCOPED,
    TOKEN,
    Attach,
    Detach,
    DetachReason,
    Heartbeat,
    Issue,
    MissHeartbeat,
    OwnTask,
    Reattach,
    Revoke,
    Role,
    Session,
    SessionAttached,
    SessionDetached,
    SessionPhase,
    SessionReattached,
    Sweep,
    TaskOwned,
    Token,
    TokenExhausted,
    TokenExpired,
    TokenIssued,
    TokenPhase,
    TokenRevoked,
    TokenUsed,
    Verb,
    Verify,
    operator_machine,
    token_machine,
)

T = TokenPhase
S = SessionPhase


def run(machine: Machine[Any], events: list[Any], state: Any = None) -> tuple[Any, list[Any]]:
    """Feed events in order, insisting each is accepted; return the end state and all effects."""
    s = machine.initial if state is None else state
    effects: list[Any] = []
    for e in events:
        r = step(machine, s, e)
        assert isinstance(r, Accepted), f"{e!r} rejected in {s!r}: {r}"
        s = r.state
        effects.extend(r.effects)
    return s, effects


def rejected(machine: Machine[Any], state: Any, event: Any) -> Rejected:
    r = step(machine, state, event)
    assert isinstance(r, Rejected), f"{event!r} accepted in {state!r}"
    return r


def worker(uses: int = 2, expires_at: int = 5, task: str = "t1") -> Token:
    token: Token = run(TOKEN, [Issue(Role.WORKER, task, expires_at, uses)])[0]
    return token


def operator_token(uses: int = 2, expires_at: int = 5) -> Token:
    token: Token = run(TOKEN, [Issue(Role.OPERATOR, None, expires_at, uses)])[0]
    return token


# -- token: issue ---------------------------------------------------------------------


def test_issue_records_role_binding_expiry_and_budget() -> None:
    s, effects = run(TOKEN, [Issue(Role.WORKER, "t1", 5, 2)])
    assert s == Token(T.ACTIVE, Role.WORKER, "t1", 5, 2)
    assert effects == [TokenIssued(Role.WORKER, "t1", 5, 2)]


@pytest.mark.parametrize(
    ("event", "guards"),
    [
        (Issue(Role.WORKER, None, 5, 2), ("binding_fits_role",)),
        (Issue(Role.OPERATOR, "t1", 5, 2), ("binding_fits_role",)),
        (Issue(Role.OBSERVER, None, 5, 0), ("has_budget",)),
    ],
)
def test_ill_formed_issues_are_refused(event: Issue, guards: tuple[str, ...]) -> None:
    r = rejected(TOKEN, Token(), event)
    assert (r.reason, r.guards) == (Reason.GUARD_FAILED, guards)


def test_an_issued_token_is_not_issued_again() -> None:
    assert rejected(TOKEN, worker(), Issue(Role.WORKER, "t2", 5, 2)).reason is Reason.NO_TRANSITION


def test_an_unissued_token_verifies_nothing() -> None:
    for event in (Verify(Verb.POLL_TASK, None, 0), Sweep(0), Revoke()):
        assert rejected(TOKEN, Token(), event).reason is Reason.NO_TRANSITION


# -- token: verify ----------------------------------------------------------------------


def test_verify_consumes_one_use_per_call() -> None:
    s, effects = run(TOKEN, [Verify(Verb.POST_RESULT, "t1", 0), Verify(Verb.FETCH_PROMPT, "t1", 4)], worker())
    assert (s.phase, s.uses_left) == (T.ACTIVE, 0)
    assert effects == [TokenUsed(Verb.POST_RESULT, "t1", 1), TokenUsed(Verb.FETCH_PROMPT, "t1", 0)]


@pytest.mark.parametrize(
    ("state", "event", "guard"),
    [
        (worker(), Verify(Verb.POST_RESULT, "t1", 0, signature_ok=False), "signature_valid"),
        (worker(expires_at=3), Verify(Verb.POST_RESULT, "t1", 3), "not_expired"),
        (worker(), Verify(Verb.CANCEL_TASK, "t1", 0), "verb_allowed"),
        (operator_token(), Verify(Verb.POST_RESULT, "t1", 0), "verb_allowed"),
        (worker(), Verify(Verb.POST_RESULT, "t2", 0), "owns_task"),
        (worker(), Verify(Verb.READ_TASK_STATE, None, 0), "owns_task"),
        (worker(uses=1), None, "has_uses"),
    ],
)
def test_each_refusal_names_its_guard_and_changes_nothing(state: Token, event: Verify | None, guard: str) -> None:
    if event is None:  # spend the last use first
        state = run(TOKEN, [Verify(Verb.POST_RESULT, "t1", 0)], state)[0]
        event = Verify(Verb.POST_RESULT, "t1", 1)
    r = step(TOKEN, state, event)
    assert isinstance(r, Rejected)
    assert (r.reason, r.phase, r.guards) == (Reason.GUARD_FAILED, T.ACTIVE, (guard,))
    assert guard in r.message


def test_guards_fail_in_the_seeds_order() -> None:
    # everything is wrong at once: the signature is reported first
    spent = run(TOKEN, [Verify(Verb.POST_RESULT, "t1", 0)], worker(uses=1, expires_at=1))[0]
    r = rejected(TOKEN, spent, Verify(Verb.CANCEL_TASK, "t2", 9, signature_ok=False))
    assert r.guards == ("signature_valid",)
    assert rejected(TOKEN, spent, Verify(Verb.CANCEL_TASK, "t2", 9)).guards == ("not_expired",)
    assert rejected(TOKEN, spent, Verify(Verb.CANCEL_TASK, "t2", 0)).guards == ("verb_allowed",)
    assert rejected(TOKEN, spent, Verify(Verb.POST_RESULT, "t2", 0)).guards == ("owns_task",)
    assert rejected(TOKEN, spent, Verify(Verb.POST_RESULT, "t1", 0)).guards == ("has_uses",)


def test_unscoped_verbs_skip_the_ownership_gate_and_other_roles_touch_any_task() -> None:
    s, _ = run(TOKEN, [Verify(Verb.START_TASK, None, 0), Verify(Verb.DISPATCH_ATTEMPT, "t9", 0)], worker())
    assert s.uses_left == 0
    s, _ = run(TOKEN, [Verify(Verb.CANCEL_TASK, "t1", 0), Verify(Verb.CANCEL_TASK, "t2", 0)], operator_token())
    assert s.uses_left == 0


def test_default_gate() -> None:
    assert {r: len(v) for r, v in GATE.items()} == {
        Role.OPERATOR: 8, Role.WORKER: 9, Role.SENIOR: 3, Role.OBSERVER: 2,
    }
    assert TASK_SCOPED <= GATE[Role.WORKER] | {Verb.CANCEL_TASK}
    assert Verb.CANCEL_TASK not in GATE[Role.WORKER] and Verb.POST_RESULT not in GATE[Role.OPERATOR]


def test_a_custom_gate() -> None:
    readers = token_machine({Role.OBSERVER: frozenset({Verb.POLL_TASK})})
    s = run(readers, [Issue(Role.OBSERVER, None, 5, 2), Verify(Verb.POLL_TASK, "t1", 0)])[0]
    assert s.uses_left == 1
    assert rejected(readers, s, Verify(Verb.READ_TASK_STATE, "t1", 0)).guards == ("verb_allowed",)
    # a role the gate does not mention may do nothing
    s = run(readers, [Issue(Role.OPERATOR, None, 5, 2)])[0]
    assert rejected(readers, s, Verify(Verb.POLL_TASK, "t1", 0)).guards == ("verb_allowed",)


# -- token: retirement ------------------------------------------------------------------


def test_sweep_expires_a_token_at_its_expiry() -> None:
    s, effects = run(TOKEN, [Sweep(3)], worker(expires_at=3))
    assert (s.phase, effects) == (T.EXPIRED, [TokenExpired(3)])


def test_sweep_exhausts_a_spent_token_before_expiry() -> None:
    spent = run(TOKEN, [Verify(Verb.POST_RESULT, "t1", 0)], worker(uses=1, expires_at=3))[0]
    s, effects = run(TOKEN, [Sweep(2)], spent)
    assert (s.phase, s.uses_left, effects) == (T.EXHAUSTED, 0, [TokenExhausted()])
    # expiry takes precedence when both hold
    assert run(TOKEN, [Sweep(3)], spent)[0].phase is T.EXPIRED


def test_sweep_of_a_usable_token_is_refused_by_both_rows() -> None:
    r = rejected(TOKEN, worker(expires_at=3), Sweep(2))
    assert (r.reason, r.guards) == (Reason.GUARD_FAILED, ("past_expiry", "spent"))


def test_revoke_records_the_unused_budget() -> None:
    s, effects = run(TOKEN, [Verify(Verb.POST_RESULT, "t1", 0), Revoke()], worker(uses=2))
    assert (s.phase, effects[-1]) == (T.REVOKED, TokenRevoked(1))


@pytest.mark.parametrize("phase", [T.EXHAUSTED, T.EXPIRED, T.REVOKED])
def test_terminal_tokens_reject_everything(phase: TokenPhase) -> None:
    done = Token(phase, Role.WORKER, "t1", 5, 1)
    for event in (Verify(Verb.POST_RESULT, "t1", 0), Sweep(9), Revoke(), Issue(Role.WORKER, "t1", 5, 1)):
        r = rejected(TOKEN, done, event)
        assert (r.reason, r.phase) == (Reason.TERMINAL, phase)


# -- operator sessions ----------------------------------------------------------------


def test_attach_own_detach_reattach_keeps_tasks() -> None:
    s, effects = run(OPERATOR, [Attach(1), OwnTask("t2"), OwnTask("t1"), Detach(), Reattach(7)])
    assert s == Session(S.ATTACHED, last_seen=7, tasks=("t1", "t2"), reattached=True)
    assert effects == [
        SessionAttached(1),
        TaskOwned("t2"),
        TaskOwned("t1"),
        SessionDetached(DetachReason.REQUESTED, ("t1", "t2")),
        SessionReattached(("t1", "t2")),
    ]


def test_heartbeat_refreshes_last_seen_without_effects() -> None:
    r = step(OPERATOR, run(OPERATOR, [Attach(1)])[0], Heartbeat(4))
    assert isinstance(r, Accepted) and r.state.last_seen == 4 and r.effects == ()


def test_missed_heartbeat_detaches_only_after_the_timeout() -> None:
    m = operator_machine(miss_after=3)
    s = run(m, [Attach(1), OwnTask("t1"), Heartbeat(2)])[0]
    r = rejected(m, s, MissHeartbeat(4))
    assert (r.reason, r.guards) == (Reason.GUARD_FAILED, ("heartbeat_missed",))
    s, effects = run(m, [MissHeartbeat(5)], s)
    assert (s.phase, s.tasks, s.detached_by) == (S.DETACHED, ("t1",), DetachReason.HEARTBEAT_MISSED)
    assert effects == [SessionDetached(DetachReason.HEARTBEAT_MISSED, ("t1",))]


def test_default_miss_threshold_is_30() -> None:
    s = run(OPERATOR, [Attach(0)])[0]
    assert rejected(OPERATOR, s, MissHeartbeat(29)).guards == ("heartbeat_missed",)
    assert run(OPERATOR, [MissHeartbeat(30)], s)[0].phase is S.DETACHED


def test_time_never_runs_backwards() -> None:
    s = run(OPERATOR, [Attach(5)])[0]
    assert rejected(OPERATOR, s, Heartbeat(4)).guards == ("clock_monotone",)
    d = run(OPERATOR, [Detach()], s)[0]
    assert d.detached_by is DetachReason.REQUESTED
    assert rejected(OPERATOR, d, Reattach(4)).guards == ("clock_monotone",)


def test_a_task_is_owned_once() -> None:
    s = run(OPERATOR, [Attach(0), OwnTask("t1")])[0]
    assert rejected(OPERATOR, s, OwnTask("t1")).guards == ("task_is_new",)


@pytest.mark.parametrize(
    ("events", "event"),
    [
        ([], Heartbeat(0)),
        ([], Reattach(0)),
        ([], OwnTask("t1")),
        ([Attach(0)], Attach(1)),
        ([Attach(0)], Reattach(1)),
        ([Attach(0), Detach()], Heartbeat(1)),
        ([Attach(0), Detach()], OwnTask("t1")),
        ([Attach(0), Detach()], Detach()),
        ([Attach(0), Detach()], MissHeartbeat(99)),
    ],
)
def test_out_of_phase_inputs_have_no_transition(events: list[Any], event: Any) -> None:
    assert rejected(OPERATOR, run(OPERATOR, events)[0], event).reason is Reason.NO_TRANSITION
