"""Symmetry reduction: one state per permutation class, TLC's SYMMETRY figures, traces that replay unreduced."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import pytest

from statewright import (
    Machine,
    Spec,
    System,
    SystemGuard,
    Transition,
    UserCodeError,
    always,
    check,
    eventually,
)
from statewright.adapters.testing.stateful import PropertyViolation, replay
from statewright.kernel.checker import Options, Verdict
from statewright.kernel.checker.search import Search
from statewright.kernel.checker.symmetry import Symmetry
from statewright.kernel.errors import DefinitionError
from statewright.specs import REGISTRY


def orbits(spec: Spec) -> int:
    """Permutation classes of the unreduced reachable set: what a sound reduction must count."""
    search = Search(spec, Options(keep_going=True))
    search.run()
    symmetry = Symmetry.of(spec)
    assert symmetry is not None and search.space.system is not None
    symmetry.bind(search.space.tables, search.space.system)
    return len({symmetry.canonical(k) for k in search.keys})


@pytest.mark.parametrize("rms, full, reduced, depth", [(3, 288, 80, 11),
                                                     pytest.param(4, 1_568, 166, 14, marks=pytest.mark.slow)])
def test_two_phase_matches_tlc_symmetry_permutations(rms: int, full: int, reduced: int, depth: int) -> None:
    # TLC 1.8.0 on TwoPhase with SYMMETRY Permutations(RM): 80 (RM = 3) and 166 (RM = 4), depths 11 and 14
    spec = REGISTRY.get("two_phase").spec(rms=rms)
    plain = check(spec)
    assert (plain.distinct_states, plain.depth, plain.symmetric) == (full, depth, ())
    r = check(spec, symmetry=True)
    assert (r.verdict, r.distinct_states, r.depth) == (Verdict.OK, reduced, depth)
    assert r.symmetric == (tuple(f"r{k}" for k in range(1, rms + 1)),)
    assert orbits(spec) == reduced


@pytest.mark.parametrize("name, knobs, full, reduced", [
    ("cas_atomic", {}, 29, 16), ("cas_atomic", {"workers": 3}, 447, 84), ("cas_non_atomic", {}, 22, 13),
])
def test_interchangeable_workers_without_relabelling(name: str, knobs: dict[str, Any], full: int, reduced: int) -> None:
    spec = REGISTRY.get(name).spec(**knobs)
    assert check(spec, keep_going=True).distinct_states == full
    r = check(spec, symmetry=True, keep_going=True)
    assert r.distinct_states == reduced == orbits(spec) and r.ok


@pytest.mark.parametrize("knob, length", [("all_prepared", 4), ("commit_sent", 3)])
def test_seeded_bugs_are_still_found_and_replay_without_the_reduction(knob: str, length: int) -> None:
    spec = REGISTRY.get("two_phase").spec(**{knob: False})
    r = check(spec, symmetry=True)
    result = r.result("consistent")
    assert r.verdict is Verdict.VIOLATED and result.trace is not None and len(result.trace) == length
    assert len(check(spec).result("consistent").trace or ()) == length  # the same shortest length unreduced
    with pytest.raises(PropertyViolation) as caught:
        replay(spec, result.trace)  # the unreduced model takes every step
    assert caught.value.property == "consistent" and caught.value.step == length - 1


class Lamp(Enum):
    OFF = "off"
    ON = "on"


class Flip:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flip)

    def __hash__(self) -> int:
        return 7


LAMP = Machine("lamp", initial=Lamp.OFF, transitions=[
    Transition(Lamp.OFF, Flip, Lamp.ON), Transition(Lamp.ON, Flip, Lamp.OFF)])


def lamps(**spec: Any) -> Spec:
    names = ("a", "b", "c")
    system: System[Any] = System("lamps", {n: LAMP for n in names}, guards=[
        SystemGuard("two_on_at_most", Flip, lambda v, me, i: v[me] is Lamp.ON or list(v).count(Lamp.ON) < 2)])
    options: dict[str, Any] = {"deadlock": False, "symmetry": [names], **spec}
    return Spec("lamps", system, {n: [Flip()] for n in names}, **options)


def test_sorting_ids_counts_multisets() -> None:
    assert check(lamps()).distinct_states == 7  # every subset but all three on
    assert check(lamps(), symmetry=True).distinct_states == 3  # none, one or two on


def test_a_property_that_tells_members_apart_is_refused() -> None:
    spec = lamps(properties=[always("a_is_special", lambda v: v.a is Lamp.OFF or v.b is Lamp.OFF)])
    with pytest.raises(DefinitionError, match="'a_is_special' is not symmetric in a, b, c"):
        check(spec, symmetry=True)
    # and rightly: unreduced, a and b are both on in some state, which the reduced search never shows
    assert check(spec).result("a_is_special").status.value == "violated"


def test_temporal_properties_are_refused_under_symmetry() -> None:
    spec = lamps(properties=[eventually("some_on", lambda v: Lamp.ON in v)])
    with pytest.raises(DefinitionError, match="cannot judge temporal properties soundly"):
        check(spec, symmetry=True)


@pytest.mark.parametrize("groups, message", [
    ([("a",)], "at least two instances"),
    ([("a", "zz")], "unknown instance 'zz'"),
    ([("a", "b"), ("b", "c")], "'b' is in two symmetry groups"),
])
def test_symmetry_declarations_are_checked(groups: list[tuple[str, ...]], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        lamps(symmetry=groups)


def test_symmetric_instances_must_be_one_machine_with_the_same_inputs() -> None:
    other = dataclasses.replace(LAMP, name="other_lamp")
    system: System[Any] = System("mixed", {"a": LAMP, "b": other})
    with pytest.raises(DefinitionError, match="are different machines"):
        Spec("mixed", system, {"a": [Flip()], "b": [Flip()]}, symmetry=[("a", "b")])
    same: System[Any] = System("same", {"a": LAMP, "b": LAMP})
    with pytest.raises(DefinitionError, match="take different inputs"):
        Spec("same", same, {"a": [Flip()], "b": []}, symmetry=[("a", "b")])
    with pytest.raises(DefinitionError, match="relabel must be a callable, and needs a declared symmetry"):
        Spec("same", same, {"a": [Flip()]}, relabel=lambda v, r: v)


def test_a_relabel_that_raises_names_itself() -> None:
    def broken(view: Any, renaming: Any) -> Any:
        raise KeyError("no such rm")

    spec = dataclasses.replace(REGISTRY.get("two_phase").spec(), relabel=broken)
    with pytest.raises(UserCodeError, match="relabel .* raised KeyError"):
        check(spec, symmetry=True)
