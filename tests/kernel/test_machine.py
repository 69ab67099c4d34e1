"""Definition errors are raised at declaration and name the machine and the entry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import pytest

from statewright.kernel import DefinitionError, Guard, Machine, Transition
from tests.conftest import DOOR, Close, Demolish, Door, DoorState, Lock, Open


class Other(Enum):
    X = 1


def build(transitions: list[Transition], **kw: object) -> Machine[DoorState]:
    kw.setdefault("terminal", {Door.GONE})
    return Machine("m", initial=DoorState(), transitions=transitions, **kw)  # type: ignore[arg-type]


BASE = [
    Transition(Door.OPEN, Close, Door.SHUT),
    Transition(Door.SHUT, Lock, Door.LOCKED),
    Transition(Door.LOCKED, Open, Door.GONE),
]


def expect(message: str, transitions: list[Transition], **kw: object) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        build(transitions, **kw)


def test_the_table_compiles_to_an_index_by_phase_and_input() -> None:
    assert [r.label for r in DOOR.index[(Door.SHUT, Lock)]] == ["SHUT --Lock--> LOCKED"]
    assert DOOR.labels[4] == "OPEN|SHUT --Demolish[not_new]--> GONE"
    assert len(DOOR.rules) == 6  # the two-source row compiles to one rule per source


def test_unknown_phase_names_the_machine_and_row() -> None:
    expect("machine 'm', transition #3: unknown phase <Other.X: 1>", BASE + [Transition(Door.OPEN, Open, Other.X)])
    expect("machine 'm': terminal: unknown phase", BASE, terminal={Other.X})


def test_leaving_a_terminal_phase_needs_an_opt_out() -> None:
    row = Transition(Door.GONE, Open, Door.OPEN)
    expect("transition #3 (GONE --Open--> OPEN): leaves terminal phase GONE without from_terminal=True", BASE + [row])
    opted = Transition(Door.GONE, Open, Door.GONE, from_terminal=True)
    assert build(BASE + [opted]).index[(Door.GONE, Open)]


def test_duplicate_rows_are_refused() -> None:
    expect("transition #3 (OPEN --Close--> SHUT): duplicates transition #0", BASE + [Transition(Door.OPEN, Close, Door.SHUT)])


def test_rows_with_different_guards_are_not_duplicates() -> None:
    def a(s: DoorState, i: object) -> bool:
        return True

    def b(s: DoorState, i: object) -> bool:
        return False

    m = build(BASE + [Transition(Door.OPEN, Open, Door.OPEN, guard=a), Transition(Door.OPEN, Open, Door.SHUT, guard=b)])
    assert len(m.index[(Door.OPEN, Open)]) == 2


def test_unreachable_phases_are_refused() -> None:
    expect("machine 'm': phases unreachable from OPEN in the table: LOCKED, GONE", BASE[:1])


def test_guards_must_be_named_callables() -> None:
    expect("guard 3 is not a callable", [Transition(Door.OPEN, Close, Door.SHUT, guard=3)] + BASE[1:])
    expect("guard is an anonymous lambda", [Transition(Door.OPEN, Close, Door.SHUT, guard=lambda s, i: True)] + BASE[1:])
    expect("guard 'g' is not callable", [Transition(Door.OPEN, Close, Door.SHUT, guard=Guard("g", 3))] + BASE[1:])  # type: ignore[arg-type]


def test_declared_unions_are_enforced() -> None:
    expect("input Lock is not in the machine's inputs", BASE, inputs=(Close, Open))
    expect("declared inputs no transition takes: Demolish", BASE, inputs=(Close, Open, Lock, Demolish))

    @dataclass(frozen=True)
    class Bang:
        pass

    rows = [Transition(Door.OPEN, Close, Door.SHUT, emit=(Bang(),))] + BASE[1:]
    expect("emits Bang, not in the machine's effects", rows, effects=(int,))


def test_other_bad_declarations() -> None:
    with pytest.raises(DefinitionError, match="non-empty name"):
        Machine("", initial=DoorState(), transitions=BASE)
    expect("the transition table is empty", [])
    expect("table entry #0 is 'x', not a Transition", ["x"])  # type: ignore[list-item]
    expect("input must be a type", [Transition(Door.OPEN, Close(), Door.SHUT)] + BASE[1:])  # type: ignore[arg-type]
    expect("emit must be a tuple of effects or a callable", [Transition(Door.OPEN, Close, Door.SHUT, emit=3)] + BASE[1:])  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="has no 'phase'"):
        Machine("m", initial=object(), transitions=BASE)
    with pytest.raises(DefinitionError, match="not an Enum member"):
        Machine("m", initial=DoorState(), transitions=BASE, phase=lambda s: "open")
    with pytest.raises(DefinitionError, match="cannot set the phase"):
        Machine("m", initial=(Door.OPEN,), transitions=BASE, phase=lambda s: s[0])
