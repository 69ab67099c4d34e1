"""The level engine (packed keys, vectorised fast lane) reports exactly what `Search` reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import pytest

from statewright import (
    Machine,
    Route,
    Spec,
    System,
    SystemGuard,
    Transition,
    always,
    check,
)
from statewright.adapters.testing.stateful import PropertyViolation, replay
from statewright.kernel.checker import (
    Options,
    Report,
    StopReason,
    Verdict,
    always_step,
    sometimes,
)
from statewright.kernel.checker.levels import FellBack, close, prepare_levels
from statewright.kernel.checker.packed import PackedStore, Packing, admit
from statewright.kernel.checker.search import Search
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.workers import Coordinator
from statewright.specs import REGISTRY


def summary(r: Report) -> tuple[Any, ...]:
    return (r.verdict, r.complete, r.stopped_by, r.distinct_states, r.generated, r.depth, r.pruned,
            tuple((p.name, p.status, p.trace, p.detail, p.loop) for p in r.properties), r.coverage)


def safety(spec: Spec) -> Spec:
    """The spec without its temporal properties (the level engine leaves those to `Search`)."""
    props = [p for p in spec.properties if not p.kind.temporal]
    names = {p.name for p in props} | {"deadlock", "determinism", "terminal_precedence"}
    return dataclasses.replace(spec, properties=props, terminates=False, recoverable=False, fairness=[],
                               expect=[e for e in spec.expect if e in names])


def levels(spec: Spec, **options: Any) -> Report:
    """The level engine's report, its chunks taken in this process (it must apply, and must not fall back)."""
    opts = Options(workers=2, **options)
    planned = prepare_levels(spec, opts)
    assert planned is not None, f"{spec.name}: the level engine should apply"
    return Coordinator(spec, *planned, opts).run()


def same_as_search(spec: Spec, keep_going: bool = False) -> Report:
    ours = levels(spec, keep_going=keep_going)
    assert summary(ours) == summary(Search(spec, Options(keep_going=keep_going)).run())
    assert summary(check(spec, workers=2, keep_going=keep_going)) == summary(ours)
    return ours


# -- the pieces ------------------------------------------------------------------------------


def test_packing_round_trips_and_masks_one_field() -> None:
    p = Packing.of([7] * 8)
    assert p.bits == 24 and p.shifts[7] == 21
    keys = np.array([p.pack((6, 5, 4, 3, 2, 1, 0, 6))], dtype=np.uint64)
    assert p.unpack(keys).tolist() == [[6, 5, 4, 3, 2, 1, 0, 6]]
    assert p.pack((0,) * 7 + (6,)) == p.field(7) & (6 << 21)


def test_store_admits_each_new_key_once_at_its_first_occurrence() -> None:
    store = PackedStore(Packing.of([16]))
    assert store.add(np.array([4, 9], dtype=np.uint64), np.array([-1, -1])) == 0
    new, at = admit(store, np.array([9, 7, 2, 7, 4, 2], dtype=np.uint64))
    assert (new.tolist(), at.tolist()) == ([7, 2], [1, 2])
    assert store.add(new, np.array([0, 0])) == 2
    assert store.fresh(np.array([2, 3, 9], dtype=np.uint64)).tolist() == [False, True, False]
    assert store.nbytes == 4 * 8 + 4 * 8 + 4 * 8  # sorted keys, keys in order, parents


def test_the_closure_interns_every_local_state_before_the_search() -> None:
    space = StateSpace(REGISTRY.get("two_phase").spec())
    assert close(space)
    assert [len(t.states) for t in space.distinct_tables] == [17, 4, 32]
    assert all(moves is not None for t in space.distinct_tables for moves in t.moves)


# -- equal to Search ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, knobs", [
    ("input_lifecycle", {"n": 5}), ("two_phase", {}), ("cas_atomic", {}),
    pytest.param("session_inputs", {}, marks=pytest.mark.slow),
])
@pytest.mark.parametrize("keep_going", [False, True])
def test_bundled_systems_report_exactly_what_search_reports(name: str, knobs: dict[str, Any], keep_going: bool) -> None:
    same_as_search(safety(REGISTRY.get(name).spec(**knobs)), keep_going)


def test_input_lifecycle_counts_and_depth() -> None:
    r = same_as_search(REGISTRY.get("input_lifecycle").spec(n=5))
    assert (r.verdict, r.distinct_states, r.depth) == (Verdict.OK, 11_716, 21)  # the hand-written BFS agrees


class Slot(Enum):
    FREE = "free"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class Cell:
    phase: Slot = Slot.FREE
    count: int = 0


@dataclass(frozen=True, slots=True)
class Take:
    pass


@dataclass(frozen=True, slots=True)
class Drop:
    pass


@dataclass(frozen=True, slots=True)
class Bump:
    pass


@dataclass(frozen=True, slots=True)
class Bumped:
    by: int


CELL = Machine("cell", initial=Cell(), transitions=[
    Transition(Slot.FREE, Take, Slot.HELD, update=lambda s, i: replace(s, count=min(s.count + 1, 3))),
    Transition(Slot.HELD, Drop, Slot.FREE, emit=lambda s, i: (Bumped(s.count),)),
    Transition((Slot.FREE, Slot.HELD), Bump, Slot.FREE, choose=lambda s, i: (1, 2),
               update=lambda s, i, by: replace(s, count=(s.count + by) % 4)),
])


def cells(n: int, **spec: Any) -> Spec:
    names = [f"c{k}" for k in range(n)]
    system: System[Any] = System(
        "cells", {name: CELL for name in names},
        guards=[SystemGuard("one_holder", Take, lambda v, me, i: all(c.phase is Slot.FREE for c in v))],
        routes=[Route(Bumped, lambda e, src: (names[(names.index(src) + 1) % n], Bump()))],
    )
    return Spec("cells", system, {name: [Take(), Drop()] for name in names[:-1]}, final=lambda v: True, **spec)


@pytest.mark.parametrize("keep_going", [False, True])
@pytest.mark.parametrize("variant", ["plain", "constraint", "action_constraint", "watched", "expected"])
def test_guards_routes_choices_and_constraints_match_search(variant: str, keep_going: bool) -> None:
    props: list[Any] = [always("few", lambda v: sum(c.count for c in v) <= 9),
                        sometimes("all_held_once", lambda v: all(c.count >= 1 for c in v))]
    options: dict[str, Any] = {}
    if variant == "constraint":
        options["constraint"] = lambda v: sum(c.count for c in v) <= 5
    if variant == "action_constraint":
        options["action_constraint"] = lambda b, a, v: a.instance != "c1" or b.c1.count < 2
    if variant == "watched":
        props.append(always_step("counts_move_by_little", lambda b, a, v: abs(sum(c.count for c in v)
                                                                               - sum(c.count for c in b)) <= 3))
    if variant == "expected":
        props.append(always("never_three", lambda v: all(c.count != 3 for c in v)))
        options["expect"] = ["never_three"]
    spec = cells(3, properties=props, determinism=variant != "expected", **options)
    r = same_as_search(spec, keep_going)
    if variant == "constraint":
        assert r.pruned > 0
    if variant == "expected":
        assert r.result("never_three").trace is not None


def test_an_unexpected_violation_falls_back_to_search() -> None:
    spec = REGISTRY.get("input_lifecycle").spec(n=4, stage_guard=False)
    with pytest.raises(FellBack):
        levels(spec)
    assert summary(check(spec, workers=2)) == summary(check(spec))
    assert check(spec, workers=2).result("at_most_one_staged").status.value == "violated"


@pytest.mark.parametrize("why, spec, options", [
    ("temporal", lambda: REGISTRY.get("session").spec(), Options()),
    ("lone machine", lambda: REGISTRY.get("diehard").spec(), Options()),
    ("max_states", lambda: REGISTRY.get("two_phase").spec(), Options(max_states=10)),
    ("max_depth", lambda: REGISTRY.get("two_phase").spec(), Options(max_depth=3)),
    pytest.param("closure too large", lambda: REGISTRY.get("cas_non_atomic").spec(), Options(), marks=pytest.mark.slow),
])
def test_the_engine_declines_what_only_search_reports_exactly(why: str, spec: Any, options: Options) -> None:
    assert prepare_levels(spec(), options) is None, why


def test_should_stop_is_polled_between_chunks_every_1024_states() -> None:
    spec = REGISTRY.get("input_lifecycle").spec(n=5)
    r = levels(spec, should_stop=lambda: StopReason.INTERRUPTED)
    assert (r.verdict, r.stopped_by, r.complete) == (Verdict.BOUNDED, StopReason.INTERRUPTED, False)
    assert r.distinct_states == 1_977  # polled (as Search polls) once 1,024 states are expanded: level 10's start


def test_packed_traces_replay_in_the_model() -> None:
    spec = cells(3, properties=[always("never_three", lambda v: all(c.count != 3 for c in v))],
                 expect=["never_three"])
    trace = same_as_search(spec).result("never_three").trace
    assert trace is not None and any(c.count == 3 for c in trace[-1].state)
    with pytest.raises(PropertyViolation) as caught:
        replay(spec, trace)
    assert caught.value.property == "never_three" and caught.value.step == len(trace) - 1
