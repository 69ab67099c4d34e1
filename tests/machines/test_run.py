"""The run of an execution plan: plan validation, and the table's behaviour through `step`."""

from __future__ import annotations

from typing import Any

import pytest

from statewright.kernel.errors import DefinitionError
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.machines.run import (
    Cancel,
    CircularDependency,
    DuplicateStateId,
    EmptyPlan,
    Enter,
    Fail,
    Outcome,
    Plan,
    PlanError,
    Resume,
    Run,
    RunCompleted,
    RunPhase,
    RunStarted,
    Start,
    StateCompleted,
    StateEntered,
    StateFailed,
    Succeed,
    UnknownEdgeState,
    next_ready,
    run_machine,
    validate_plan,
)

P = RunPhase
DIAMOND = Plan(("a", "b", "c", "d"), (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")))
M = run_machine(DIAMOND, max_attempts=2)


def feed(events: list[Any], state: Run | None = None) -> tuple[Run, list[Any]]:
    """Feed events in order, insisting each is accepted; return the end state and all effects."""
    s = M.initial if state is None else state
    effects: list[Any] = []
    for e in events:
        r = step(M, s, e)
        assert isinstance(r, Accepted), f"{e!r} rejected in {s!r}: {r}"
        s = r.state
        effects.extend(r.effects)
    return s, effects


def rejected(state: Run, event: Any) -> Rejected:
    r = step(M, state, event)
    assert isinstance(r, Rejected), f"{event!r} accepted in {state!r}"
    return r


# -- plan validation ----------------------------------------------------------------


def test_a_valid_plan_is_returned_unchanged() -> None:
    assert validate_plan(DIAMOND) is DIAMOND
    assert DIAMOND.dependencies("d") == ("b", "c") and DIAMOND.dependencies("a") == ()


@pytest.mark.parametrize(
    ("plan", "error", "code"),
    [
        (Plan(()), EmptyPlan, "empty_plan"),
        (Plan(("a", "b", "a")), DuplicateStateId, "duplicate_state_id"),
        (Plan(("a",), (("a", "z"),)), UnknownEdgeState, "unknown_edge_state"),
        (Plan(("a",), (("z", "a"),)), UnknownEdgeState, "unknown_edge_state"),
        (Plan(("a", "b"), (("a", "b"), ("b", "a"))), CircularDependency, "circular_dependency"),
        (Plan(("a",), (("a", "a"),)), CircularDependency, "circular_dependency"),
    ],
)
def test_each_plan_error_has_its_type_and_stable_code(plan: Plan, error: type[PlanError], code: str) -> None:
    with pytest.raises(error) as info:
        validate_plan(plan)
    assert isinstance(info.value, PlanError) and info.value.code == code == error.code


def test_error_details() -> None:
    with pytest.raises(DuplicateStateId) as dup:
        validate_plan(Plan(("a", "b", "a")))
    assert dup.value.state_id == "a"
    with pytest.raises(UnknownEdgeState) as edge:
        validate_plan(Plan(("a",), (("a", "z"),)))
    assert (edge.value.edge, edge.value.missing) == (("a", "z"), "z")
    with pytest.raises(CircularDependency) as cyc:
        validate_plan(Plan(("s", "a", "b", "c"), (("s", "a"), ("a", "b"), ("b", "c"), ("c", "a"))))
    assert cyc.value.cycle == ("a", "b", "c", "a")


def test_checks_run_in_a_fixed_order() -> None:
    # duplicates are reported before unknown edges and cycles
    with pytest.raises(DuplicateStateId):
        validate_plan(Plan(("a", "a"), (("a", "z"), ("a", "a"))))


def test_run_machine_validates_its_plan_and_attempts() -> None:
    with pytest.raises(EmptyPlan):
        run_machine(Plan(()))
    with pytest.raises(DefinitionError):
        run_machine(DIAMOND, max_attempts=0)
    assert M.initial == Run(DIAMOND, P.PENDING, (), None, 0, 2)


# -- the lifecycle --------------------------------------------------------------------


def test_happy_path_effects_exactly() -> None:
    s, effects = feed([Start(), Enter("a"), Succeed("a"), Enter("c"), Succeed("c"),
                       Enter("b"), Succeed("b"), Enter("d"), Succeed("d")])
    assert effects == [
        RunStarted(),
        StateEntered("a", 1), StateCompleted("a"),
        StateEntered("c", 1), StateCompleted("c"),
        StateEntered("b", 1), StateCompleted("b"),
        StateEntered("d", 1), StateCompleted("d"), RunCompleted(Outcome.COMPLETED),
    ]
    # completed is kept in plan order whatever order b and c finished in
    assert (s.phase, s.completed, s.current, s.attempt) == (P.COMPLETED, ("a", "b", "c", "d"), None, 0)


def test_enter_needs_dependencies_idle_and_a_planned_state() -> None:
    s, _ = feed([Start()])
    assert rejected(s, Enter("b")).guards == ("dependencies_completed",)
    assert rejected(s, Enter("zz")).guards == ("planned",)
    s, _ = feed([Enter("a")], s)
    assert rejected(s, Enter("a")).guards == ("idle",)
    s, _ = feed([Succeed("a"), Enter("b"), Succeed("b")], s)
    assert rejected(s, Enter("d")).guards == ("dependencies_completed",)  # c is not done
    assert rejected(s, Enter("b")).guards == ("planned",)  # already completed


def test_succeed_and_fail_must_name_the_state_in_flight() -> None:
    s, _ = feed([Start()])
    assert rejected(s, Succeed("a")).guards == ("in_flight",)
    s, _ = feed([Enter("a")], s)
    assert rejected(s, Fail("b")).guards == ("in_flight",)


def test_retry_then_failure() -> None:
    s, effects = feed([Start(), Enter("a"), Fail("a")])
    assert effects[-2:] == [StateFailed("a", 1, True), StateEntered("a", 2)]
    assert (s.phase, s.current, s.attempt) == (P.RUNNING, "a", 2)
    s, effects = feed([Fail("a")], s)
    assert effects == [StateFailed("a", 2, False), RunCompleted(Outcome.FAILED)]
    assert (s.phase, s.current, s.attempt) == (P.FAILED, "a", 2)


def test_a_retry_that_succeeds_resets_the_budget_for_the_next_state() -> None:
    s, effects = feed([Start(), Enter("a"), Fail("a"), Succeed("a"), Enter("b")])
    assert effects[-2:] == [StateCompleted("a"), StateEntered("b", 1)]
    assert s.attempt == 1


def test_cancel_from_pending_and_running() -> None:
    s, effects = feed([Cancel()])
    assert (s.phase, effects) == (P.CANCELLED, [RunCompleted(Outcome.CANCELLED)])
    s, effects = feed([Start(), Enter("a"), Cancel()])
    assert effects[-1:] == [RunCompleted(Outcome.CANCELLED)]
    assert (s.phase, s.current, s.attempt) == (P.CANCELLED, "a", 1)


def test_resume_re_enters_the_attempt_in_flight_with_the_same_number() -> None:
    s, _ = feed([Start(), Enter("a"), Fail("a")])
    r, effects = feed([Resume()], s)
    assert r == s and effects == [StateEntered("a", 2)]


def test_resume_with_nothing_in_flight_enters_the_first_ready_state() -> None:
    s, _ = feed([Start(), Enter("a"), Succeed("a")])
    assert next_ready(s) == "b"
    s, effects = feed([Resume()], s)
    assert effects == [StateEntered("b", 1)] and (s.current, s.attempt) == ("b", 1)
    s, _ = feed([Succeed("b")], s)
    s, effects = feed([Resume()], s)
    assert effects == [StateEntered("c", 1)]
    s, effects = feed([Succeed("c"), Resume(), Succeed("d")], s)
    assert effects == [StateCompleted("c"), StateEntered("d", 1), StateCompleted("d"),
                       RunCompleted(Outcome.COMPLETED)]


def test_nothing_to_resume_before_start() -> None:
    assert rejected(M.initial, Resume()).reason is Reason.NO_TRANSITION
    assert rejected(M.initial, Enter("a")).reason is Reason.NO_TRANSITION


@pytest.mark.parametrize("end", [
    [Start(), Enter("a"), Succeed("a"), Enter("b"), Succeed("b"), Enter("c"), Succeed("c"),
     Enter("d"), Succeed("d")],
    [Start(), Enter("a"), Fail("a"), Fail("a")],
    [Cancel()],
])
def test_terminal_runs_reject_everything(end: list[Any]) -> None:
    s, _ = feed(end)
    assert s.phase in (P.COMPLETED, P.FAILED, P.CANCELLED)
    for e in [Start(), Cancel(), Resume(), Enter("a"), Succeed("a"), Fail("a"), Enter("d"), Succeed("d")]:
        r = rejected(s, e)
        assert r.reason is Reason.TERMINAL, r.message


def test_single_state_plan_with_one_attempt() -> None:
    m = run_machine(Plan(("only",)), max_attempts=1)
    r = step(m, m.initial, Start())
    assert isinstance(r, Accepted)
    r = step(m, r.state, Enter("only"))
    assert isinstance(r, Accepted)
    r = step(m, r.state, Fail("only"))
    assert isinstance(r, Accepted)
    assert r.effects == (StateFailed("only", 1, False), RunCompleted(Outcome.FAILED))
