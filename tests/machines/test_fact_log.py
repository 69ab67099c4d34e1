"""A run's fact log (`machines.fact_log`): each key recorded once, first writer wins, linkage with its fact, sealed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.machines.fact_log import (
    FACT_LOG,
    ChildDone,
    ChildRunCompleted,
    ChildRunSpawned,
    FactLog,
    FactLogPhase,
    FactRecorded,
    Record,
    Seal,
    Sealed,
    SpawnChild,
)

MANIFEST = "sha256:" + "0" * 64
EMPTY = FactLog("r1", MANIFEST, "r0")


def art(n: int) -> str:
    return f"sha256:{n:064x}"


def feed(inputs: list[Any], state: FactLog = EMPTY) -> tuple[FactLog, list[Any]]:
    """Feed ``inputs`` in order, insisting each is accepted; the end state and every effect."""
    effects: list[Any] = []
    for value in inputs:
        result = step(FACT_LOG, state, value)
        assert isinstance(result, Accepted), f"{value!r} refused in {state!r}: {result}"
        state = result.state
        effects += result.effects
    return state, effects


def refused(state: FactLog, value: Any) -> Rejected:
    result = step(FACT_LOG, state, value)
    assert isinstance(result, Rejected), f"{value!r} accepted in {state!r}"
    return result


def test_each_input_records_its_fact_and_emits_its_events() -> None:
    state, effects = feed([
        Record("snapshot/base", art(1)),
        SpawnChild("child/kid", art(2), "r1.kid"),
        ChildDone("child_done/kid", art(3), "r1.kid", "completed"),
        Seal("snapshot/final", art(4)),
    ])
    assert effects == [
        FactRecorded("snapshot/base", art(1)),
        FactRecorded("child/kid", art(2)), ChildRunSpawned("r1.kid"),
        FactRecorded("child_done/kid", art(3)), ChildRunCompleted("r1.kid", "completed"),
        FactRecorded("snapshot/final", art(4)), Sealed(art(4)),
    ]
    assert state == FactLog("r1", MANIFEST, "r0", (
        ("snapshot/base", art(1)), ("child/kid", art(2)), ("child_done/kid", art(3)), ("snapshot/final", art(4))),
        FactLogPhase.SEALED)
    assert state.keys() == ("snapshot/base", "child/kid", "child_done/kid", "snapshot/final")
    assert (state.get("child/kid"), state.get("io/none")) == (art(2), None)
    assert FACT_LOG.is_terminal(state) and not FACT_LOG.is_terminal(EMPTY)


@pytest.mark.parametrize(
    "second",
    [Record("io/quote", art(9)), Record("io/quote", art(1)), SpawnChild("io/quote", art(9), "r1.x"),
     ChildDone("io/quote", art(9), "r1.x", "failed"), Seal("io/quote", art(9))],
)
def test_a_key_already_recorded_is_refused_whatever_the_input(second: Any) -> None:
    """First writer wins -- also against the same artifact, and against the linkage inputs and `Seal`."""
    state, _ = feed([Record("io/quote", art(1))])
    rejection = refused(state, second)
    assert (rejection.reason, rejection.guards) == (Reason.GUARD_FAILED, ("unrecorded",))
    assert rejection.phase is FactLogPhase.OPEN


def test_the_linkage_events_are_emitted_once_however_often_the_child_is_spawned_again() -> None:
    """A resumed parent spawns again: the key is recorded, so nothing -- no second `ChildRunSpawned` -- follows."""
    state, effects = feed([SpawnChild("child/kid", art(2), "r1.kid")])
    for _ in range(3):
        refused(state, SpawnChild("child/kid", art(2), "r1.kid"))
    state, more = feed([ChildDone("child_done/kid", art(3), "r1.kid", "completed")], state)
    refused(state, ChildDone("child_done/kid", art(3), "r1.kid", "completed"))
    linkage = [e for e in effects + more if isinstance(e, (ChildRunSpawned, ChildRunCompleted))]
    assert linkage == [ChildRunSpawned("r1.kid"), ChildRunCompleted("r1.kid", "completed")]


@pytest.mark.parametrize(
    "after",
    [Record("io/late", art(5)), SpawnChild("child/late", art(5), "r1.late"),
     ChildDone("child_done/late", art(5), "r1.late", "completed"), Seal("snapshot/again", art(5))],
)
def test_a_sealed_log_takes_nothing_more(after: Any) -> None:
    state, _ = feed([Record("snapshot/base", art(1)), Seal("snapshot/final", art(2))])
    assert state.phase is FactLogPhase.SEALED
    rejection = refused(state, after)
    assert rejection.reason is Reason.TERMINAL


KEYS = st.sampled_from(["snapshot/base", "io/a", "io/b", "child/k", "outcome/x/1", "outcome/x/2"])


@given(st.lists(st.tuples(KEYS, st.integers(0, 3)), max_size=12))
def test_the_log_holds_each_keys_first_write_in_the_order_first_written(writes: list[tuple[str, int]]) -> None:
    state = EMPTY
    for key, n in writes:
        result = step(FACT_LOG, state, Record(key, art(n)))
        assert isinstance(result, Accepted) == (state.get(key) is None)
        if isinstance(result, Accepted):
            assert result.effects == (FactRecorded(key, art(n)),)
            state = result.state
    first: dict[str, str] = {}
    for key, n in writes:
        first.setdefault(key, art(n))
    assert state.facts == tuple(first.items())
    assert (state.run_id, state.manifest, state.parent, state.phase) == ("r1", MANIFEST, "r0", FactLogPhase.OPEN)


def test_the_machine_declares_its_inputs_effects_and_terminal_phase() -> None:
    assert FACT_LOG.name == "fact_log"
    assert FACT_LOG.inputs == (Record, SpawnChild, ChildDone, Seal)
    assert FACT_LOG.effects == (FactRecorded, ChildRunSpawned, ChildRunCompleted, Sealed)
    assert FACT_LOG.terminal == frozenset({FactLogPhase.SEALED})
    assert len(FACT_LOG.transitions) == 4
