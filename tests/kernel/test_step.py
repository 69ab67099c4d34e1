"""`step` is pure, stamps the table's target phase and names why it rejects."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel import Accepted, Machine, Reason, Rejected, Transition, step
from tests.conftest import (
    DOOR,
    Close,
    Closed,
    Demolish,
    Door,
    DoorState,
    Lock,
    Open,
    Unlock,
)


def test_accepted_carries_state_effects_and_row() -> None:
    out = step(DOOR, DoorState(), Close())
    assert out == Accepted(DoorState(Door.SHUT, closes=1), (Closed(1),), 0)


def test_effects_see_the_state_after_the_update() -> None:
    s = DoorState(Door.OPEN, closes=1)
    out = step(DOOR, s, Close())
    assert isinstance(out, Accepted) and out.effects == (Closed(2),)


def test_the_kernel_stamps_the_target_phase_even_if_the_update_does_not() -> None:
    locked = step(DOOR, DoorState(Door.SHUT), Lock("k1"))
    assert isinstance(locked, Accepted)
    assert locked.state == DoorState(Door.LOCKED, key="k1")


def test_an_update_cannot_overrule_the_table() -> None:
    class P(Enum):
        A = 1
        B = 2

    @dataclass(frozen=True, slots=True)
    class S:
        phase: P = P.A

    @dataclass(frozen=True, slots=True)
    class Go:
        pass

    m = Machine("m", initial=S(), transitions=[Transition(P.A, Go, P.B, update=lambda s, i: replace(s, phase=P.A))])
    out = step(m, S(), Go())
    assert isinstance(out, Accepted) and out.state.phase is P.B


def test_no_transition() -> None:
    out = step(DOOR, DoorState(), Open())
    assert out == Rejected(Reason.NO_TRANSITION, Door.OPEN, Open())
    assert out.message == "can't take Open in OPEN: no transition"


def test_guard_failed_names_the_guard() -> None:
    out = step(DOOR, DoorState(Door.LOCKED, key="k1"), Unlock("k2"))
    assert isinstance(out, Rejected)
    assert out.reason is Reason.GUARD_FAILED and out.guards == ("right_key",)
    assert out.message == "can't take Unlock in LOCKED: guard right_key failed"
    assert isinstance(step(DOOR, DoorState(Door.LOCKED, key="k1"), Unlock("k1")), Accepted)


def test_lambda_guards_are_named_by_guard() -> None:
    out = step(DOOR, DoorState(), Demolish())
    assert isinstance(out, Rejected) and out.guards == ("not_new",)


def test_terminal_states_reject_everything() -> None:
    gone = DoorState(Door.GONE, closes=1)
    for event in (Close(), Open(), Lock("k"), Unlock("k"), Demolish()):
        out = step(DOOR, gone, event)
        assert isinstance(out, Rejected) and out.reason is Reason.TERMINAL, event
    assert step(DOOR, gone, Open()).message == "can't take Open in GONE: the state is terminal"  # type: ignore[union-attr]


def test_first_enabled_row_in_table_order_wins() -> None:
    class P(Enum):
        A = 1
        B = 2
        C = 3

    class Go:
        pass

    def yes(s: P, i: Go) -> bool:
        return True

    def also(s: P, i: Go) -> bool:
        return True

    m = Machine("m", initial=P.A, transitions=[Transition(P.A, Go, P.B, guard=yes), Transition(P.A, Go, P.C, guard=also)])
    out = step(m, P.A, Go())
    assert isinstance(out, Accepted) and out.state is P.B and out.transition == 0


def test_step_is_pure() -> None:
    s = DoorState()
    a, b = step(DOOR, s, Close()), step(DOOR, s, Close())
    assert a == b and s == DoorState()


def test_enum_states_are_their_own_phase() -> None:
    class Light(Enum):
        OFF = 0
        ON = 1

    class Flip:
        pass

    m = Machine("light", initial=Light.OFF, transitions=[Transition(Light.OFF, Flip, Light.ON),
                                                          Transition(Light.ON, Flip, Light.OFF)])
    out = step(m, Light.OFF, Flip())
    assert isinstance(out, Accepted) and out.state is Light.ON and out.effects == ()
