"""The checker: bounds, built-in properties, verdicts, traces and coverage.

Several tests compare the checker with an independent breadth-first search
written here directly over `step` / `System.step`, so the memoised fast path
is held to the plain semantics.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, replace
from enum import Enum
from itertools import count
from typing import Any

import pytest

from statewright.kernel import (
    Accepted,
    Action,
    DefinitionError,
    Guard,
    Kind,
    Machine,
    Spec,
    Status,
    System,
    Transition,
    Verdict,
    always,
    always_step,
    check,
    sometimes,
    step,
)
from tests.conftest import DOOR, Close, Demolish, Door, DoorState, Lock, Open, Unlock
from tests.kernel.test_system import WORKER, Assign, Finish, Start, system


class P(Enum):
    COUNTING = 1


@dataclass(frozen=True, slots=True)
class Count:
    phase: P = P.COUNTING
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc:
    pass


def counter(limit: int) -> Machine[Count]:
    return Machine("counter", initial=Count(), transitions=[
        Transition(P.COUNTING, Inc, P.COUNTING, guard=Guard("below", lambda s, i: s.n < limit),
                   update=lambda s, i: replace(s, n=s.n + 1))])


def counting(limit: int, **kw: Any) -> Spec:
    kw.setdefault("deadlock", False)
    return Spec("count", counter(limit), [Inc()], **kw)


DOOR_INPUTS = [Close(), Open(), Lock("k1"), Unlock("k1"), Unlock("k2"), Demolish()]


def reference_bfs(initial: Any, successors: Any) -> tuple[int, int, Tally[int]]:
    """Distinct states, depth and rows fired, by the book."""
    seen = {initial}
    level = [initial]
    depth = 0
    fired: Tally[int] = Tally()
    while level:
        depth += 1
        nxt = []
        for s in level:
            for row, t in successors(s):
                fired[row] += 1
                if t not in seen:
                    seen.add(t)
                    nxt.append(t)
        level = nxt
    return len(seen), depth, fired


def door_successors(s: DoorState) -> Any:
    for i in DOOR_INPUTS:
        out = step(DOOR, s, i)
        if isinstance(out, Accepted):
            yield out.transition, out.state


def test_door_matches_a_reference_search_including_coverage() -> None:
    report = check(Spec("door", DOOR, DOOR_INPUTS))
    distinct, depth, fired = reference_bfs(DOOR.initial, door_successors)
    assert (report.distinct_states, report.depth) == (distinct, depth) == (9, 5)
    assert report.verdict is Verdict.OK and report.complete
    assert {c.index: c.fired for c in report.coverage} == {i: fired[i] for i in range(5)}
    assert report.generated == sum(fired.values())


def test_system_with_routes_matches_a_reference_search() -> None:
    s = system()
    domains = {"boss": [Assign("a"), Assign("b")], "a": [Start()], "b": [Finish()]}

    def succ(v: Any) -> Any:
        for name, inputs in domains.items():
            for i in inputs:
                out = s.step(v, Action(name, i))
                if isinstance(out, Accepted):
                    yield 0, out.state

    report = check(Spec("shop", s, domains, deadlock=False))
    distinct, depth, _ = reference_bfs(s.initial, succ)
    assert (report.distinct_states, report.depth) == (distinct, depth) == (10, 6)
    # the routed Start in worker b fired, although b's own domain never offers Start
    start_b = next(c for c in report.coverage if c.machine == "worker" and c.index == 0)
    assert start_b.fired > 0


def test_bounds_max_depth() -> None:
    r = check(counting(10), max_depth=4)
    assert (r.verdict, r.complete, r.stopped_by, r.distinct_states, r.depth) == (Verdict.BOUNDED, False, "max_depth", 4, 4)
    exact = check(counting(3), max_depth=4)
    assert (exact.complete, exact.distinct_states, exact.depth) == (True, 4, 4)


def test_bounds_max_states_and_constraint() -> None:
    r = check(counting(100), max_states=10)
    assert (r.stopped_by, r.distinct_states, r.verdict) == ("max_states", 10, Verdict.BOUNDED)



def test_a_constraint_is_part_of_the_model_as_in_tlc() -> None:
    """TLC's CONSTRAINT: a successor outside is generated but neither stored nor expanded; the check completes."""
    c = check(counting(100, properties=[always("any", lambda s: True)], constraint=lambda s: s.n < 7,
                       deadlock=True))
    assert (c.stopped_by, c.distinct_states, c.depth, c.complete, c.pruned) == (None, 7, 7, True, 1)
    assert c.result("any").status is Status.HOLDS and c.verdict is Verdict.OK
    assert c.result("deadlock").status is Status.HOLDS  # n=6 has a successor, even if it is pruned
    # TLC still checks invariants on pruned successors (its probe: CONSTRAINT x <= 2, INVARIANT x # 3)
    v = check(counting(100, properties=[always("not_7", lambda s: s.n != 7)], constraint=lambda s: s.n < 7))
    assert v.verdict is Verdict.VIOLATED and len(v.result("not_7").trace or ()) == 8


def test_an_action_constraint_prunes_steps() -> None:
    c = check(counting(100, action_constraint=lambda before, event, after: after.n < 5))
    assert (c.distinct_states, c.depth, c.complete, c.pruned, c.verdict) == (5, 5, True, 1, Verdict.OK)


def test_bounds_time_limit_uses_the_injected_clock() -> None:
    ticks = count()
    r = check(counting(100_000), time_limit=5, clock=lambda: float(next(ticks)))
    assert r.stopped_by == "time_limit" and r.distinct_states < 100_000
    with pytest.raises(DefinitionError, match="a time_limit needs a clock"):
        check(counting(3), time_limit=1)


def test_deadlock_is_found_with_a_shortest_trace() -> None:
    r = check(Spec("door", DOOR, [Close(), Lock("k1")]))
    res = r.result("deadlock")
    assert r.verdict is Verdict.VIOLATED and res.status is Status.VIOLATED
    assert [s.state.phase for s in res.trace or ()] == [Door.OPEN, Door.SHUT, Door.LOCKED]
    assert [type(s.input).__name__ for s in res.trace or ()] == ["NoneType", "Close", "Lock"]


def test_terminal_states_are_not_deadlocks_and_final_can_be_customised() -> None:
    assert check(Spec("door", DOOR, [Close(), Demolish()])).result("deadlock").status is Status.HOLDS
    r = check(counting(3, deadlock=True, final=lambda s: s.n == 2))
    assert r.result("deadlock").status is Status.VIOLATED and len(r.result("deadlock").trace or ()) == 4


def test_determinism_reports_both_rows() -> None:
    class Q(Enum):
        A = 1
        B = 2
        C = 3

    class Go:
        pass

    class Hop:
        pass

    m = Machine("amb", initial=Q.A, terminal={Q.C}, transitions=[
        Transition(Q.A, Hop, Q.B),
        Transition(Q.B, Go, Q.C, guard=Guard("always", lambda s, i: True)),
        Transition(Q.B, Go, Q.A, guard=Guard("sometimes", lambda s, i: True)),
    ])
    r = check(Spec("amb", m, [Hop(), Go()]))
    res = r.result("determinism")
    assert res.status is Status.VIOLATED and len(res.trace or ()) == 2
    assert res.detail is not None and "B --Go[always]--> C; B --Go[sometimes]--> A" in res.detail
    assert check(Spec("amb", m, [Hop(), Go()], determinism=False)).verdict is Verdict.OK


def test_sometimes_needs_a_witness_and_expected_violations_must_be_found() -> None:
    r = check(counting(3, properties=[sometimes("reaches_3", lambda s: s.n == 3),
                                      sometimes("reaches_9", lambda s: s.n == 9)]))
    assert r.result("reaches_3").status is Status.HOLDS and len(r.result("reaches_3").trace or ()) == 4
    assert r.result("reaches_9").status is Status.VIOLATED and r.verdict is Verdict.VIOLATED
    missing = check(counting(3, properties=[always("small", lambda s: s.n < 9)], expect=["small"]))
    assert missing.result("small").status is Status.MISSING and missing.verdict is Verdict.VIOLATED
    found = check(counting(3, properties=[always("small", lambda s: s.n < 2)], expect=["small"]))
    assert found.result("small").status is Status.EXPECTED and found.verdict is Verdict.OK
    assert found.complete, "an expected violation does not stop the search"


def test_stop_at_first_violation_unless_keep_going() -> None:
    props = [always("lt2", lambda s: s.n < 2), always("lt4", lambda s: s.n < 4)]
    first = check(counting(6, properties=props))
    assert first.stopped_by == "violation" and first.result("lt4").status is Status.UNKNOWN
    assert len(first.result("lt2").trace or ()) == 3
    both = check(counting(6, properties=props), keep_going=True)
    assert both.complete and both.distinct_states == 7
    assert [len(both.result(n).trace or ()) for n in ("lt2", "lt4")] == [3, 5]


def test_an_invariant_broken_by_the_initial_state_has_a_one_state_trace() -> None:
    r = check(counting(3, properties=[always("positive", lambda s: s.n > 0)]))
    assert len(r.result("positive").trace or ()) == 1


def test_transition_properties_local_and_global() -> None:
    grows = always_step("grows", lambda b, i, a: a.n > b.n)
    assert check(counting(5, properties=[grows])).result("grows").status is Status.HOLDS
    shrinks = always_step("shrinks", lambda b, i, a: a.n < b.n)
    r = check(counting(5, properties=[shrinks]))
    assert r.result("shrinks").kind is Kind.STEP and len(r.result("shrinks").trace or ()) == 2

    s = System("pair", {"a": WORKER, "b": WORKER})
    one_moves = always_step("one_moves", lambda b, act, a: sum(x != y for x, y in zip(b, a)) <= 1)
    busy_never = always_step("a_never_busy", lambda b, act, a: a.a.phase.value != "busy")
    r = check(Spec("pair", s, {"a": [Start()], "b": [Start(), Finish()]}, [one_moves, busy_never], deadlock=False),
              keep_going=True)
    assert r.result("one_moves").status is Status.HOLDS
    trace = r.result("a_never_busy").trace or ()
    assert len(trace) == 2 and trace[1].input == Action("a", Start())


def test_every_trace_replays_through_step() -> None:
    r = check(Spec("door", DOOR, DOOR_INPUTS, [sometimes("gone", lambda s: s.phase is Door.GONE)]))
    trace = r.result("gone").trace or ()
    state = trace[0].state
    assert state == DOOR.initial
    for s in trace[1:]:
        out = step(DOOR, state, s.input)
        assert isinstance(out, Accepted) and out.state == s.state and out.effects == s.effects
        state = out.state
    assert len(trace) == 3


def test_progress_is_reported() -> None:
    seen: list[int] = []
    check(counting(5000), progress=lambda p: seen.append(p.distinct_states), progress_every=1024)
    assert len(seen) == 4 and seen == sorted(seen)


def test_user_code_that_raises_becomes_a_definition_error() -> None:
    bad = Machine("bad", initial=Count(), transitions=[
        Transition(P.COUNTING, Inc, P.COUNTING, guard=Guard("boom", lambda s, i: 1 / 0 > 0))])
    with pytest.raises(DefinitionError, match=r"machine 'bad', transition #0 \(COUNTING --Inc\[boom\]--> COUNTING\), "
                                              r"guard 'boom' \(.*test_check.py:\d+\) raised ZeroDivisionError"):
        check(Spec("bad", bad, [Inc()]))
    with pytest.raises(DefinitionError, match=r"property 'oops' \(.*test_check.py:\d+\) raised KeyError"):
        check(counting(2, properties=[always("oops", lambda s: {}["x"])]))


def test_spec_definition_errors() -> None:
    with pytest.raises(DefinitionError, match="expects a violation of unknown property 'nope'"):
        counting(2, expect=["nope"])
    with pytest.raises(DefinitionError, match="property name 'deadlock' is the built-in property's"):
        counting(2, properties=[always("deadlock", bool)])
    with pytest.raises(DefinitionError, match="property name 'twice' is used twice"):
        counting(2, properties=[always("twice", bool), always("twice", bool)])
    with pytest.raises(DefinitionError, match=r"the inputs hold the class Inc, not an input: write Inc\(\.\.\.\)"):
        Spec("c", counter(2), [Inc])
    with pytest.raises(DefinitionError, match="a system's inputs must map instance names"):
        Spec("s", system(), [Start()])
    with pytest.raises(DefinitionError, match="inputs given for unknown instances"):
        Spec("s", system(), {"zz": []})
    with pytest.raises(DefinitionError, match="max_depth must be a positive int"):
        check(counting(2), max_depth=0)


def test_expected_violations_can_pin_their_trace_length() -> None:
    exact = check(counting(3, properties=[always("small", lambda s: s.n < 2)], expect={"small": 3}))
    assert exact.result("small").status is Status.EXPECTED and exact.verdict is Verdict.OK
    off = check(counting(3, properties=[always("small", lambda s: s.n < 2)], expect={"small": 4}))
    res = off.result("small")
    assert res.status is Status.MISMATCH and off.verdict is Verdict.VIOLATED
    assert res.detail == "expected a 4-state shortest trace, found 3 states"
    with pytest.raises(DefinitionError, match="expected trace length of 'small' must be a positive int"):
        counting(3, properties=[always("small", lambda s: s.n < 2)], expect={"small": 0})


def test_mutation_score_counts_killed_mutants() -> None:
    from statewright.kernel.checker.mutants import mutants, score

    spec = Spec("door", DOOR, DOOR_INPUTS, [always("few", lambda s: s.closes <= 2),
                                           sometimes("gone", lambda s: s.phase is Door.GONE)])
    all_mutants = list(mutants(DOOR))
    # 5 rows x 3 other phases retargeted + 2 guards dropped + the same 2 guards negated
    assert len(all_mutants) == 19
    s = score(spec, DOOR)
    assert s.total == 19 and s.killed + len(s.survivors) == 19
    assert "#3 LOCKED --Unlock[right_key]--> SHUT: drop guard right_key" in s.survivors
