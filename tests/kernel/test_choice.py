"""Nondeterminism: rows that choose, and specs that explore every enabled row."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from statewright import (
    Action,
    Machine,
    Route,
    Spec,
    System,
    Transition,
    UserCodeError,
    always,
    check,
)
from statewright.adapters.testing.stateful import PropertyViolation, replay, run_suite
from statewright.kernel.checker import Status, Verdict
from statewright.kernel.errors import DefinitionError
from statewright.kernel.step import Accepted, Reason, Rejected, outcomes, step
from statewright.kernel.system import settlements


class P(Enum):
    IDLE = "idle"
    PICKED = "picked"


class F(Enum):
    IDLE = "idle"
    LEFT = "left"
    RIGHT = "right"
    PICKED = "picked"


@dataclass(frozen=True, slots=True)
class Box:
    phase: P = P.IDLE
    value: int = 0


@dataclass(frozen=True, slots=True)
class Pick:
    limit: int = 3


@dataclass(frozen=True, slots=True)
class Picked:
    value: int


class Go:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Go)

    def __hash__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "Go()"


def values(s: Box, i: Pick) -> range:
    return range(1, i.limit + 1)


def picker(choose: Any = values) -> Machine[Box]:
    return Machine("picker", initial=Box(), terminal={P.PICKED}, transitions=[
        Transition(P.IDLE, Pick, P.PICKED, choose=choose, update=lambda s, i, c: replace(s, value=c),
                   emit=lambda s, i, c: (Picked(c),)),
    ])


def fork() -> Machine[F]:
    def left(s: F, i: Go) -> bool:
        return True

    def right(s: F, i: Go) -> bool:
        return True

    return Machine("fork", initial=F.IDLE, terminal={F.LEFT, F.RIGHT, F.PICKED}, transitions=[
        Transition(F.IDLE, Go, F.LEFT, guard=left),
        Transition(F.IDLE, Go, F.RIGHT, guard=right),
        Transition(F.IDLE, Pick, F.PICKED),
    ])


# -- step: the run-time side of a choice ---------------------------------------------------


def test_step_takes_the_first_alternative_or_the_one_asked_for() -> None:
    m = picker()
    first = step(m, Box(), Pick())
    assert isinstance(first, Accepted) and (first.state.value, first.choice, first.effects) == (1, 1, (Picked(1),))
    third = step(m, Box(), Pick(), choice=3)
    assert isinstance(third, Accepted) and third.state == Box(P.PICKED, 3) and third.effects == (Picked(3),)


def test_a_choice_the_row_does_not_offer_is_a_typed_rejection() -> None:
    out = step(picker(), Box(), Pick(limit=2), choice=3)
    assert isinstance(out, Rejected) and out.reason is Reason.NO_CHOICE
    assert out.message == "can't take Pick in IDLE: 3 is not a choice of transition #0 (IDLE --Pick--> PICKED)"
    plain = step(fork(), F.IDLE, Pick(), choice=1)
    assert isinstance(plain, Rejected) and plain.reason is Reason.NO_CHOICE
    assert plain.message.endswith("takes no choice")


def test_a_choice_of_nothing_disables_the_row_like_a_guard_named_after_choose() -> None:
    out = step(picker(), Box(), Pick(limit=0))
    assert isinstance(out, Rejected) and out.reason is Reason.GUARD_FAILED and out.guards == ("values",)
    assert outcomes(picker(), Box(), Pick(limit=0)) == out


def test_outcomes_lists_every_alternative_and_with_every_row_every_enabled_row() -> None:
    assert [o.state.value for o in outcomes(picker(), Box(), Pick())] == [1, 2, 3]  # type: ignore[union-attr]
    assert [o.state for o in outcomes(fork(), F.IDLE, Go())] == [F.LEFT]  # type: ignore[union-attr]
    assert [o.state for o in outcomes(fork(), F.IDLE, Go(), every_row=True)] == [F.LEFT, F.RIGHT]  # type: ignore[union-attr]


def test_choose_that_raises_or_returns_junk_names_the_row() -> None:
    def broken(s: Box, i: Pick) -> range:
        raise ValueError("no peers")

    with pytest.raises(UserCodeError, match=r"transition #0 \(IDLE --Pick--> PICKED\), choose \(.*test_choice.py:\d+\) raised ValueError: no peers"):
        step(picker(choose=broken), Box(), Pick())
    with pytest.raises(UserCodeError, match="returned int 5, not an iterable of alternatives"):
        check(Spec("junk", picker(choose=lambda s, i: 5), [Pick()]))
    with pytest.raises(DefinitionError, match="choose is not a callable"):
        picker(choose=3)


# -- the checker: every alternative, every enabled row ---------------------------------------


def test_the_checker_explores_each_alternative_and_coverage_counts_each() -> None:
    r = check(Spec("pick", picker(), [Pick()]))
    assert (r.verdict, r.distinct_states, r.depth, r.generated) == (Verdict.OK, 4, 2, 3)
    assert [c.fired for c in r.coverage] == [3]


def test_a_violation_reached_by_the_last_alternative_has_its_trace() -> None:
    spec = Spec("pick", picker(), [Pick()], properties=[always("not_three", lambda s: s.value != 3)])
    result = check(spec).result("not_three")
    trace = result.trace
    assert result.status is Status.VIOLATED and trace is not None and [s.state.value for s in trace] == [0, 3]
    with pytest.raises(PropertyViolation) as caught:
        replay(spec, trace)
    assert caught.value.property == "not_three" and caught.value.step == 1


def test_two_enabled_rows_break_determinism_unless_the_spec_explores_every_row() -> None:
    strict = check(Spec("fork", fork(), [Go(), Pick()]))
    assert strict.result("determinism").status is Status.VIOLATED
    assert strict.distinct_states == 3  # IDLE, then LEFT (the first row only) and PICKED
    free = check(Spec("fork", fork(), [Go(), Pick()], determinism=False))
    assert (free.verdict, free.distinct_states) == (Verdict.OK, 4)
    assert [c.fired for c in free.coverage] == [1, 1, 1]
    assert "determinism" not in {p.name for p in free.properties}


def test_a_routed_input_to_a_choosing_row_branches_the_atomic_step() -> None:
    class Net(Enum):
        UP = "up"

    @dataclass(frozen=True, slots=True)
    class Send:
        pass

    sender = Machine("sender", initial=Net.UP, transitions=[Transition(Net.UP, Send, Net.UP, emit=(Picked(0),))])
    net: System[Any] = System("net", {"a": sender, "b": picker()},
                 routes=[Route(Picked, lambda e, src: ("b", Pick(2)) if src == "a" else None)])
    out = settlements(net, net.initial, 0, Send(), net.initial, lambda k, s, e: net.branch_local(k, s, e))
    assert isinstance(out, list) and [s.after[1].value for s in out] == [1, 2]
    assert net.step(net.initial, Action("a", Send())).state.b.value == 1  # type: ignore[union-attr]
    r = check(Spec("net", net, {"a": [Send()]}, final=lambda s: True))
    assert (r.verdict, r.distinct_states) == (Verdict.OK, 3)


# -- the generated suite draws among the alternatives ------------------------------------------


def test_the_suite_finds_a_bug_only_one_alternative_reaches() -> None:
    spec = Spec("pick", picker(), [Pick(limit=5)], properties=[always("not_four", lambda s: s.value != 4)])
    result = run_suite(spec, examples=60, steps=5)
    assert not result.passed and "not_four" in (result.failure or "")
    fine = Spec("pick", picker(), [Pick(limit=3)], properties=[always("not_four", lambda s: s.value != 4)])
    assert run_suite(fine, examples=30, steps=5).passed


def test_the_suite_of_a_spec_without_determinism_takes_every_enabled_row() -> None:
    spec = Spec("fork", fork(), [Go(), Pick()], determinism=False,
                properties=[always("never_right", lambda s: s is not F.RIGHT)])
    result = run_suite(spec, examples=40, steps=3)
    assert not result.passed and "never_right" in (result.failure or "")
    assert check(spec).result("never_right").status is Status.VIOLATED
