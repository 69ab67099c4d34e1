"""`simulate`: random behaviours that find violations in models too big to check, reproducibly."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from statewright.adapters.testing.stateful import PropertyViolation, replay
from statewright.kernel import (
    Accepted,
    Action,
    Guard,
    Kind,
    Machine,
    Spec,
    Status,
    StopReason,
    System,
    Transition,
    UserCodeError,
    Verdict,
    always,
    always_step,
    check,
    eventually,
    sometimes,
)
from statewright.kernel.checker import Simulation, simulate
from statewright.kernel.checker.simulate import Dice
from statewright.specs import REGISTRY
from tests.kernel.test_system import WORKER, Assign, Finish, Start, Worker, system


class W(Enum):
    WALKING = "walking"
    HOME = "home"


@dataclass(frozen=True, slots=True)
class Walker:
    phase: W = W.WALKING
    x: int = 0


@dataclass(frozen=True, slots=True)
class Left: ...


@dataclass(frozen=True, slots=True)
class Right: ...


@dataclass(frozen=True, slots=True)
class Rest: ...


WALK = Machine("walk", initial=Walker(), terminal={W.HOME}, transitions=[
    Transition(W.WALKING, Left, W.WALKING, update=lambda s, i: replace(s, x=s.x - 1)),
    Transition(W.WALKING, Right, W.WALKING, update=lambda s, i: replace(s, x=s.x + 1)),
    Transition(W.WALKING, Rest, W.HOME, guard=Guard("at_home", lambda s, i: s.x == 0)),
])


def walk(*properties: Any, **kw: Any) -> Spec:
    return Spec("walk", WALK, [Left(), Right(), Rest()], list(properties), **kw)


def buggy_input_lifecycle() -> Spec:
    return REGISTRY.get("input_lifecycle").spec(n=7, stage_guard=False)


# -- finding the seeded bug ------------------------------------------------------------


def test_the_seeded_input_lifecycle_bug_is_found_and_its_trace_replays() -> None:
    spec = buggy_input_lifecycle()
    sim = simulate(spec, behaviours=10_000, seed=7)
    assert isinstance(sim, Simulation)
    assert (sim.verdict, sim.stopped_by, sim.seed) == (Verdict.VIOLATED, StopReason.VIOLATION, 7)
    assert (sim.behaviours, sim.steps, sim.distinct_states) == (11, 136, 126)
    found = sim.result("at_most_one_staged")
    assert found.status is Status.VIOLATED and found.trace is not None and len(found.trace) == 11
    with pytest.raises(PropertyViolation) as caught:
        replay(spec, found.trace)
    assert caught.value.property == "at_most_one_staged" and caught.value.step == len(found.trace) - 1
    assert sim.result("superseded_by_newer").status is Status.UNKNOWN  # not refuted, not proved


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    spec = buggy_input_lifecycle()
    first, again = (simulate(spec, behaviours=10_000, seed=7) for _ in range(2))
    assert first == replace(again, seconds=first.seconds)
    assert first.result("at_most_one_staged").trace == again.result("at_most_one_staged").trace
    other = simulate(spec, behaviours=10_000, seed=8)
    assert other.result("at_most_one_staged").trace != first.result("at_most_one_staged").trace


def test_the_fixed_model_shows_no_violation_and_proves_nothing() -> None:
    sim = simulate(REGISTRY.get("input_lifecycle").spec(n=7), behaviours=200, seed=7)
    assert (sim.verdict, sim.stopped_by, sim.behaviours) == (Verdict.BOUNDED, None, 200)
    assert sim.ok and not any(r.failed for r in sim.properties)
    assert {r.status for r in sim.properties} == {Status.UNKNOWN}
    assert (sim.steps, sim.distinct_states) == (2549, 1664)


def test_the_dice_are_reproducible_and_cover_their_range() -> None:
    a, b = Dice(123), Dice(123)
    draws = [a.below(7) for _ in range(700)]
    assert draws == [b.below(7) for _ in range(700)]
    assert set(draws) == set(range(7)) and all(60 < draws.count(v) < 140 for v in range(7))
    assert Dice(0).below(1) == 0


# -- what is judged ---------------------------------------------------------------------


def test_deadlock_is_a_stuck_state_that_is_not_final() -> None:
    stuck = Machine("stuck", initial=W.WALKING, transitions=[Transition(W.WALKING, Rest, W.HOME)])
    sim = simulate(Spec("stuck", stuck, [Rest()]), behaviours=5, seed=1)
    found = sim.result("deadlock")
    assert found.status is Status.VIOLATED and found.trace is not None
    assert [s.state for s in found.trace] == [W.WALKING, W.HOME]
    assert sim.behaviours == 1 and sim.steps == 1
    final = simulate(Spec("stuck", stuck, [Rest()], final=lambda s: s is W.HOME), behaviours=5, seed=1)
    assert final.result("deadlock").status is Status.UNKNOWN and final.behaviours == 5 and final.steps == 5
    home = simulate(walk(), behaviours=50, depth=10, seed=1)  # HOME is terminal: no deadlock
    assert home.verdict is Verdict.BOUNDED and home.stopped_by is None


def test_an_invariant_that_raises_is_a_user_code_error_with_the_trace() -> None:
    def explodes(s: Walker) -> bool:
        return 1 / (s.x - 2) != 0

    with pytest.raises(UserCodeError) as caught:
        simulate(walk(always("explodes", explodes)), behaviours=100, seed=3)
    err = caught.value
    assert "property 'explodes'" in str(err) and "ZeroDivisionError" in str(err)
    assert err.spec == "walk" and err.trace is not None and err.trace[-1].state.x == 2
    assert isinstance(err.original, ZeroDivisionError)


def test_the_depth_bounds_every_behaviour() -> None:
    near = always("near", lambda s: abs(s.x) < 4)
    short = simulate(walk(near), behaviours=300, depth=3, seed=5)
    assert short.verdict is Verdict.BOUNDED and short.steps <= 300 * 3 and short.depth == 3
    long = simulate(walk(near), behaviours=300, depth=4, seed=5)
    trace = long.result("near").trace
    assert long.verdict is Verdict.VIOLATED and trace is not None and len(trace) == 5
    for depth in (0, 1, 6):
        sim = simulate(walk(sometimes("far", lambda s: abs(s.x) == depth)), behaviours=50, depth=depth, seed=2)
        witness = sim.result("far").trace
        assert sim.result("far").status is Status.HOLDS and witness is not None and len(witness) == depth + 1
    assert simulate(walk(), behaviours=10, depth=0, seed=1).steps == 0


def test_every_initial_state_is_drawn() -> None:
    spec = REGISTRY.get("ewd840").spec(n=3)
    stop_at_once = replace(spec, properties=[always("stop_at_once", lambda s: False)], expect=())
    firsts = set()
    for seed in range(20):
        trace = simulate(stop_at_once, behaviours=1, seed=seed).result("stop_at_once").trace
        assert trace is not None and len(trace) == 1
        firsts.add(trace[0].state)
    assert len(firsts) == 19  # 20 draws among 192 initial states, one drawn twice
    sim = simulate(spec, behaviours=100, depth=0, seed=1)
    assert sim.distinct_states == 81  # 100 draws among 192 initial states


def test_temporal_properties_are_not_decided() -> None:
    sim = simulate(REGISTRY.get("ewd840").spec(n=3, fair=False), behaviours=20, seed=1)
    liveness = sim.result("liveness")  # expected to fail by the spec: still not decided, not missing
    assert liveness.kind is Kind.LEADS_TO and liveness.status is Status.UNKNOWN and liveness.holds is None
    assert liveness.detail is not None and "not decided by simulation" in liveness.detail
    done = eventually("done", lambda s: s.phase is W.HOME)
    own = simulate(walk(done, terminates=True, recoverable=True), behaviours=20, seed=1)
    assert [own.result(n).status for n in ("done", "terminates", "recoverable")] == [Status.UNKNOWN] * 3
    assert own.verdict is Verdict.BOUNDED


def test_expected_violations_are_found_as_expected_or_missing() -> None:
    spec = REGISTRY.get("diehard").spec()
    sim = simulate(spec, behaviours=200, seed=1)
    found = sim.result("not_solved")
    assert found.status is Status.EXPECTED and found.trace is not None and found.trace[-1].state.big == 4
    assert sim.verdict is Verdict.BOUNDED and sim.behaviours == 200  # an expected violation does not stop the run
    with pytest.raises(PropertyViolation):
        replay(spec, found.trace)
    missing = simulate(walk(always("small", lambda s: abs(s.x) < 99), expect=["small"]), behaviours=5, seed=1)
    assert missing.result("small").status is Status.MISSING and missing.verdict is Verdict.VIOLATED


def test_transition_properties_of_a_machine_and_of_a_system() -> None:
    sim = simulate(walk(always_step("right_only", lambda b, i, a: not isinstance(i, Left))), behaviours=20, seed=4)
    trace = sim.result("right_only").trace
    assert trace is not None and trace[-1].input == Left() and trace[-1].state.x == trace[-2].state.x - 1

    pair: System[Any] = System("pair", {"a": WORKER, "b": WORKER})
    busy_never = always_step("a_never_busy", lambda b, act, a: a.a.phase.value != "busy")
    each = always_step("never_finishes", lambda b, i, a: not isinstance(i, Finish), each=True)
    inputs = {"a": [Start(), Finish()], "b": [Start(), Finish()]}
    sim = simulate(Spec("pair", pair, inputs, [busy_never], deadlock=False), behaviours=20, seed=4)
    trace = sim.result("a_never_busy").trace
    assert trace is not None and trace[-1].input == Action("a", Start())
    sim = simulate(Spec("pair", pair, inputs, [each], deadlock=False), behaviours=20, seed=4)
    trace = sim.result("never_finishes").trace
    assert trace is not None and trace[-1].input.input == Finish()


def test_determinism_and_terminal_precedence() -> None:
    class Go: ...

    amb = Machine("amb", initial=W.WALKING, terminal={W.HOME}, transitions=[
        Transition(W.WALKING, Go, W.HOME, guard=Guard("yes", lambda s, i: True)),
        Transition(W.WALKING, Go, W.WALKING, guard=Guard("also", lambda s, i: True)),
    ])
    found = simulate(Spec("amb", amb, [Go()]), behaviours=3, seed=1).result("determinism")
    assert found.status is Status.VIOLATED and found.trace is not None and len(found.trace) == 1
    assert found.detail is not None and "WALKING --Go[yes]--> HOME; WALKING --Go[also]--> WALKING" in found.detail
    leaves = Machine("leaves", initial=W.WALKING, terminal={W.HOME}, transitions=[
        Transition(W.WALKING, Rest, W.HOME), Transition(W.HOME, Left, W.WALKING, from_terminal=True),
    ])
    found = simulate(Spec("leaves", leaves, [Rest(), Left()]), behaviours=3, seed=1).result("terminal_precedence")
    assert found.status is Status.VIOLATED and [s.state for s in found.trace or ()] == [W.WALKING, W.HOME, W.WALKING]


def test_routed_steps_replay_and_every_visited_state_is_reachable() -> None:
    shop = system()
    inputs: dict[str, list[Any]] = {"boss": [Assign("a"), Assign("b")], "a": [Start(), Finish()],
                                    "b": [Start(), Finish()]}

    def recording(into: set[Any]) -> Spec:
        def record(state: Any) -> bool:
            into.add(state)
            return True

        return Spec("shop", shop, inputs, [always("all", record)], deadlock=False)

    reachable: set[Any] = set()
    check(recording(reachable))
    visited: set[Any] = set()
    sim = simulate(recording(visited), behaviours=100, depth=8, seed=9)
    assert visited <= reachable and len(visited) == sim.distinct_states
    twice = always("b_twice", lambda s: s.b.jobs < 2)
    sim = simulate(Spec("shop", shop, inputs, [twice], deadlock=False), behaviours=100, seed=9)
    trace = sim.result("b_twice").trace
    assert trace is not None and trace[-1].state.b == Worker(jobs=2, phase=trace[-1].state.b.phase)
    state = trace[0].state
    for s in trace[1:]:
        out = shop.step(state, s.input)
        assert isinstance(out, Accepted) and out.state == s.state and out.effects == s.effects
        state = out.state


def test_constraints_are_part_of_the_model() -> None:
    def inside(s: Any) -> bool:
        return abs(s.x) <= 2

    sim = simulate(walk(always("near", lambda s: abs(s.x) < 4), constraint=inside), behaviours=100, depth=30, seed=6)
    assert sim.verdict is Verdict.BOUNDED and sim.distinct_states == 6  # x in -2..2 walking, and home
    caught = simulate(walk(always("within", lambda s: abs(s.x) < 3), constraint=inside), behaviours=100, seed=6)
    trace = caught.result("within").trace  # a successor left out of the model is still judged, as check does
    assert trace is not None and abs(trace[-1].state.x) == 3 and all(abs(s.state.x) <= 2 for s in trace[:-1])
    def no_left(b: Any, i: Any, a: Any) -> bool:
        return not isinstance(i, Left)

    sim = simulate(walk(always("right", lambda s: s.x >= 0), action_constraint=no_left), behaviours=50, depth=5, seed=6)
    assert sim.result("right").status is Status.VIOLATED  # generated, judged, then left out


def test_should_stop_and_the_time_limit_end_a_run() -> None:
    calls: list[int] = []

    def stop() -> StopReason | None:
        calls.append(1)
        return StopReason.INTERRUPTED if len(calls) == 2 else None

    sim = simulate(walk(), behaviours=100_000, depth=50, seed=1, should_stop=stop)
    assert (sim.stopped_by, sim.verdict) == (StopReason.INTERRUPTED, Verdict.BOUNDED)
    assert len(calls) == 2 and sim.behaviours < 100_000
    ticks = iter(range(10**9))
    timed = simulate(walk(), behaviours=100_000, seed=1, time_limit=5, clock=lambda: float(next(ticks)))
    assert timed.stopped_by is StopReason.TIME_LIMIT and timed.seconds > 5


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"behaviours": 0, "seed": 1}, "behaviours must be a positive int"),
        ({"behaviours": 1, "seed": 1, "depth": -1}, "depth must be an int of at least 0"),
        ({"behaviours": 1, "seed": -1}, "seed must be an int from 0 to 2**64 - 1"),
        ({"behaviours": 1, "seed": 1 << 64}, "seed must be an int from 0 to 2**64 - 1"),
    ],
)
def test_bad_arguments(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        simulate(walk(), **kw)


def test_results_follow_the_specs_order_and_rates_need_a_clock() -> None:
    sim = simulate(walk(always("near", lambda s: abs(s.x) < 99)), behaviours=3, seed=1)
    assert [r.name for r in sim.properties] == list(walk(always("near", lambda s: True)).checks)
    assert sim.seconds == 0.0 and sim.behaviours_per_second == 0.0 and sim.states_per_second == 0.0
    ticks = iter(range(10**9))
    timed = simulate(walk(), behaviours=3, depth=4, seed=1, clock=lambda: float(next(ticks)))
    assert timed.behaviours_per_second == timed.behaviours / timed.seconds
    assert timed.states_per_second == (timed.behaviours + timed.steps) / timed.seconds
    with pytest.raises(KeyError):
        sim.result("nope")
