"""The input lifecycle: table behaviour through `step`, seed authorisation, and a full check."""

from __future__ import annotations

from typing import Any

import pytest

from statewright.kernel.checker import Verdict, check
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.machines.input import (
    INPUT,
    Abandon,
    AbandonReason,
    Abandoned,
    Apply,
    AwaitConsumption,
    Coalesce,
    Coalesced,
    Consume,
    Consumed,
    Input,
    InputAbandoned,
    InputApplied,
    InputCoalesced,
    InputConsumed,
    InputPendingConsumption,
    InputPhase,
    InputQueued,
    InputRolledBack,
    InputStaged,
    InputSuperseded,
    Queue,
    RunFailed,
    Stage,
    Supersede,
    Superseded,
    authorize_seed,
)
from statewright.specs.input import input as build_input_spec

P = InputPhase


def run(events: list[Any], state: Input | None = None) -> tuple[Input, list[Any]]:
    """Feed events in order, insisting each is accepted; return the end state and all effects."""
    s = Input() if state is None else state
    effects: list[Any] = []
    for e in events:
        r = step(INPUT, s, e)
        assert isinstance(r, Accepted), f"{e!r} rejected in {s!r}: {r}"
        s = r.state
        effects.extend(r.effects)
    return s, effects


def rejected(state: Input, event: Any) -> Rejected:
    r = step(INPUT, state, event)
    assert isinstance(r, Rejected), f"{event!r} accepted in {state!r}"
    return r


def test_happy_path_to_consumed_with_exact_effects() -> None:
    s, effects = run([Queue(), Stage("r1"), Apply("r1"), AwaitConsumption("r1"), Consume("r1")])
    assert s == Input(P.CONSUMED, attempts=1, run_id="r1", outcome=Consumed())
    assert effects == [
        InputQueued(),
        InputStaged("r1", 1),
        InputApplied("r1"),
        InputPendingConsumption("r1"),
        InputConsumed("r1"),
    ]


def test_consume_straight_from_applied() -> None:
    s, effects = run([Queue(), Stage("r1"), Apply("r1"), Consume("r1")])
    assert s.phase is P.CONSUMED and s.outcome == Consumed()
    assert effects[-1] == InputConsumed("r1")


def test_rollback_then_exhaustion_on_third_failure() -> None:
    s, effects = run([Queue(), Stage("r1"), RunFailed("r1")])
    assert s == Input(P.QUEUED, attempts=1, run_id="r1")
    assert effects[-1] == InputRolledBack("r1", 1)

    s, effects = run([Stage("r2"), Apply("r2"), RunFailed("r2")], s)
    assert s == Input(P.QUEUED, attempts=2, run_id="r2")
    assert effects == [InputStaged("r2", 2), InputApplied("r2"), InputRolledBack("r2", 2)]

    s, effects = run([Stage("r3"), Apply("r3"), AwaitConsumption("r3"), RunFailed("r3")], s)
    assert s == Input(
        P.ABANDONED, attempts=3, run_id="r3",
        outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 3),
    )
    assert effects[0] == InputStaged("r3", 3)
    assert effects[-1] == InputAbandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 3)
    assert authorize_seed(s) == ()


def test_max_attempts_is_per_input() -> None:
    s, effects = run([Queue(), Stage("r1"), RunFailed("r1")], Input(max_attempts=1))
    assert s.outcome == Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 1)
    assert effects[-1] == InputAbandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 1)


def test_stale_run_is_rejected_naming_the_guard() -> None:
    staged, _ = run([Queue(), Stage("r1")])
    for event in (Apply("r0"), RunFailed("r0")):
        r = rejected(staged, event)
        assert r.reason is Reason.GUARD_FAILED
        assert r.guards == ("same_run",)
        assert "same_run" in r.message
    applied, _ = run([Apply("r1")], staged)
    for event in (AwaitConsumption("r0"), Consume("r0")):
        assert rejected(applied, event).guards == ("same_run",)


def test_other_guards_name_themselves() -> None:
    queued, _ = run([Queue()])
    assert rejected(queued, Stage("")).guards == ("names_run",)
    assert rejected(queued, Supersede("")).guards == ("names_superseder",)
    assert rejected(queued, Coalesce("")).guards == ("names_aggregate",)
    r = rejected(queued, Abandon(AbandonReason.MAX_ATTEMPTS_EXHAUSTED))
    assert (r.reason, r.guards) == (Reason.GUARD_FAILED, ("lifecycle_reason",))
    spent = Input(P.QUEUED, attempts=3, run_id="r3")
    assert rejected(spent, Stage("r4")).guards == ("attempts_left",)


def test_inputs_out_of_phase_have_no_transition() -> None:
    assert rejected(Input(), Stage("r1")).reason is Reason.NO_TRANSITION
    queued, _ = run([Queue()])
    assert rejected(queued, Apply("r1")).reason is Reason.NO_TRANSITION
    assert rejected(queued, RunFailed("r1")).reason is Reason.NO_TRANSITION
    staged, _ = run([Stage("r1")], queued)
    assert rejected(staged, Supersede("i9")).reason is Reason.NO_TRANSITION
    assert rejected(staged, Consume("r1")).reason is Reason.NO_TRANSITION


EVERY_EVENT: list[Any] = [
    Queue(), Stage("r1"), Apply("r1"), AwaitConsumption("r1"), Consume("r1"), RunFailed("r1"),
    Supersede("i9"), Coalesce("agg"), *(Abandon(r) for r in AbandonReason),
]


@pytest.mark.parametrize(
    "state",
    [
        Input(P.CONSUMED, 1, run_id="r1", outcome=Consumed()),
        Input(P.SUPERSEDED, outcome=Superseded("i9")),
        Input(P.COALESCED, outcome=Coalesced("agg")),
        Input(P.ABANDONED, 1, run_id="r1", outcome=Abandoned(AbandonReason.CANCELLED, 1)),
        Input(P.ABANDONED, 3, run_id="r1", outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 3)),
    ],
)
def test_terminal_states_reject_everything(state: Input) -> None:
    for event in EVERY_EVENT:
        r = rejected(state, event)
        assert r.reason is Reason.TERMINAL
        assert r.phase is state.phase


def test_supersede_coalesce_abandon_carry_their_data() -> None:
    queued, _ = run([Queue(), Stage("r1"), RunFailed("r1")])

    s, effects = run([Supersede("i9")], queued)
    assert (s.phase, s.outcome, effects) == (P.SUPERSEDED, Superseded("i9"), [InputSuperseded("i9")])

    s, effects = run([Coalesce("agg")], queued)
    assert (s.phase, s.outcome, effects) == (P.COALESCED, Coalesced("agg"), [InputCoalesced("agg")])

    s, effects = run([Abandon(AbandonReason.RESET)], queued)
    assert s.outcome == Abandoned(AbandonReason.RESET, 1)
    assert effects == [InputAbandoned(AbandonReason.RESET, 1)]


@pytest.mark.parametrize("reason", [r for r in AbandonReason if r is not AbandonReason.MAX_ATTEMPTS_EXHAUSTED])
@pytest.mark.parametrize(
    "path",
    [[], [Queue()], [Queue(), Stage("r1")], [Queue(), Stage("r1"), Apply("r1")],
     [Queue(), Stage("r1"), Apply("r1"), AwaitConsumption("r1")]],
)
def test_abandon_from_every_live_phase(reason: AbandonReason, path: list[Any]) -> None:
    live, _ = run(path)
    s, effects = run([Abandon(reason)], live)
    assert s == Input(P.ABANDONED, live.attempts, run_id=live.run_id, outcome=Abandoned(reason, live.attempts))
    assert effects == [InputAbandoned(reason, live.attempts)]
    assert authorize_seed(s) == ()


# -- authorize_seed -----------------------------------------------------------


BAD_SEEDS = [
    (Input(P.CONSUMED), "CONSUMED needs a Consumed outcome, got no outcome"),
    (Input(P.CONSUMED, 1, run_id="r1", outcome=Superseded("i9")), "CONSUMED needs a Consumed outcome, got Superseded"),
    (Input(P.QUEUED, outcome=Consumed()), "QUEUED is not terminal but carries the outcome Consumed()"),
    (Input(P.SUPERSEDED, outcome=Superseded("")), "SUPERSEDED needs the id of the superseding input"),
    (Input(P.COALESCED, outcome=Coalesced("")), "COALESCED needs the aggregate id"),
    (Input(P.ABANDONED, 2, run_id="r1", outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 2)),
     "ABANDONED for exhausted attempts with 2 of 3 used"),
    (Input(P.ABANDONED, 3, run_id="r1", outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 4)),
     "ABANDONED records 4 attempts but the input has 3"),
    (Input(P.QUEUED, attempts=4, run_id="r1"), "attempts 4 outside 0..3"),
    (Input(P.QUEUED, attempts=-1), "attempts -1 outside 0..3"),
    (Input(P.QUEUED, max_attempts=0), "max_attempts must be at least 1, got 0"),
    (Input(P.STAGED, attempts=1), "STAGED needs a run id"),
    (Input(P.APPLIED, run_id="r1"), "APPLIED needs at least one attempt"),
    (Input(P.APPLIED_PENDING_CONSUMPTION, attempts=1, run_id=""), "APPLIED_PENDING_CONSUMPTION needs a run id"),
    (Input(P.ACCEPTED, attempts=1, run_id="r1"), "ACCEPTED has never been staged: no attempts and no run id"),
]


@pytest.mark.parametrize(("seed", "problem"), BAD_SEEDS)
def test_authorize_seed_rejects_bad_seeds(seed: Input, problem: str) -> None:
    assert problem in authorize_seed(seed)


def test_authorize_seed_reports_every_problem() -> None:
    assert authorize_seed(Input(P.STAGED, outcome=Consumed())) == (
        "STAGED is not terminal but carries the outcome Consumed()",
        "STAGED needs a run id",
        "STAGED needs at least one attempt",
    )


def test_authorize_seed_accepts_restored_work_the_machine_can_continue() -> None:
    assert authorize_seed(Input()) == ()
    assert authorize_seed(Input(P.QUEUED, attempts=3, run_id="r3")) == ()
    assert authorize_seed(Input(P.ABANDONED, outcome=Abandoned(AbandonReason.DESTROYED, 0))) == ()


# -- the model check (the registered 'input' spec) -----------------------------



SPEC = build_input_spec()


def test_model_check() -> None:
    report = check(SPEC, keep_going=True)
    assert report.verdict is Verdict.OK, [r for r in report.properties if r.failed]
    assert report.complete
    assert report.result("seed_authorized").holds
    # Counted by hand (max_attempts=3; RunFailed only for r1, so a queued
    # input after a retry always last ran r1):
    #   ACCEPTED 1; QUEUED 3 (attempts 0/None, 1/r1, 2/r1);
    #   STAGED 6 (attempts 1..3 x r1|r2); APPLIED 3 and PENDING 3 (r1 only);
    #   CONSUMED 3; SUPERSEDED 3; COALESCED 3 (one per queued state);
    #   ABANDONED 8: CANCELLED at 0/None, 1..3/r1, 1..3/r2, plus exhausted 3/r1.
    assert report.distinct_states == 33
    # One step per enabled (state, row): Abandon fires in all 16 live states,
    # Stage in 3 queued states x 2 run ids, Consume and RunFailed in 6 each, ...
    assert report.generated == 50
    # Accepted, Queued, then Staged/Queued twice, Staged, Applied, Pending.
    assert report.depth == 9
    assert report.never_fired == ()
    witness = report.result("exhausted").trace
    assert witness is not None
    # Queue, then three rounds of Stage + RunFailed: the shortest way to exhaust.
    assert len(witness) == 8
