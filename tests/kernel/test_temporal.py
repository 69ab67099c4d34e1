"""Several initial states, and temporal properties under fairness, with exact answers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel import (
    Guard,
    Machine,
    Spec,
    Status,
    System,
    Transition,
    Verdict,
    always,
    always_eventually,
    check,
    eventually,
    eventually_always,
    leads_to,
    strong_fair,
    weak_fair,
)


class P(Enum):
    RUN = "run"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class C:
    phase: P = P.RUN
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc: ...


@dataclass(frozen=True, slots=True)
class Finish: ...


@dataclass(frozen=True, slots=True)
class Reset: ...


def below(limit: int) -> Guard[C]:
    return Guard(f"below_{limit}", lambda s, i: s.n < limit)


def counter(limit: int = 3) -> Machine[C]:
    """Counts to ``limit`` and then may finish (terminal)."""
    return Machine("counter", initial=C(), terminal={P.DONE}, transitions=[
        Transition(P.RUN, Inc, P.RUN, guard=below(limit), update=lambda s, i: replace(s, n=s.n + 1)),
        Transition(P.RUN, Finish, P.DONE, guard=Guard("at_limit", lambda s, i: s.n == limit)),
    ])


def test_several_initial_states_are_all_at_depth_one() -> None:
    spec = Spec("c", counter(), [Inc(), Finish()], init=[C(n=0), C(n=2), C(n=2)])
    r = check(spec)
    assert (r.verdict, r.distinct_states, r.depth) == (Verdict.OK, 5, 3)  # {0, 2} -> {1, 3} -> {done}
    late = check(Spec("c", counter(), [Inc(), Finish()], init=[C(n=2)]))
    assert (late.distinct_states, late.depth) == (3, 3)


def test_a_violation_from_a_later_initial_state_has_its_own_short_trace() -> None:
    spec = Spec("c", counter(), [Inc(), Finish()], [always("small", lambda s: s.n < 3)], init=[C(n=0), C(n=2)])
    trace = check(spec).result("small").trace
    assert trace is not None and [s.state.n for s in trace] == [2, 3]


def test_initial_states_of_a_system_as_mappings() -> None:
    pair = System("pair", {"a": counter(1), "b": counter(1)})
    spec = Spec("pair", pair, {"a": [Inc(), Finish()], "b": [Inc(), Finish()]},
                init=[{"a": C(n=1)}, {"a": C(n=1), "b": C(n=1)}])
    r = check(spec)
    assert (r.distinct_states, r.depth) == (6, 3)


def test_eventually_needs_fairness_because_any_state_may_stutter() -> None:
    done = eventually("done", lambda s: s.phase is P.DONE)
    machine = counter()
    unfair = check(Spec("c", machine, [Inc(), Finish()], [done]))
    res = unfair.result("done")
    assert unfair.verdict is Verdict.VIOLATED and res.status is Status.VIOLATED
    assert res.trace is not None and len(res.trace) == 1 and res.loop == 0  # stutters in the initial state
    fair = check(Spec("c", machine, [Inc(), Finish()], [done], fairness=[weak_fair(machine)]))
    assert fair.verdict is Verdict.OK and fair.result("done").status is Status.HOLDS


def test_weak_fairness_of_one_input_is_not_enough_when_another_is_needed() -> None:
    done = eventually("done", lambda s: s.phase is P.DONE)
    r = check(Spec("c", counter(), [Inc(), Finish()], [done], fairness=[weak_fair(Inc)]))
    res = r.result("done")
    assert res.status is Status.VIOLATED and res.trace is not None
    assert [s.state.n for s in res.trace] == [0, 1, 2, 3] and res.loop == 3  # counted up, then stutters


def cycler() -> Machine[C]:
    """Counts 0..2 then resets to 0, forever; Finish is possible only at 2."""
    return Machine("cycler", initial=C(), terminal={P.DONE}, transitions=[
        Transition(P.RUN, Inc, P.RUN, guard=below(2), update=lambda s, i: replace(s, n=s.n + 1)),
        Transition(P.RUN, Reset, P.RUN, guard=Guard("at_2", lambda s, i: s.n == 2), update=lambda s, i: replace(s, n=0)),
        Transition(P.RUN, Finish, P.DONE, guard=Guard("at_2_finish", lambda s, i: s.n == 2)),
    ])


def test_weak_and_strong_fairness_differ_on_an_intermittently_enabled_action() -> None:
    """Finish is enabled only at n=2, and the cycle leaves n=2: WF(Finish) allows ignoring it forever, SF does not."""
    done = eventually("done", lambda s: s.phase is P.DONE)
    inputs = [Inc(), Reset(), Finish()]
    weak = check(Spec("w", cycler(), inputs, [done], fairness=[weak_fair(Inc, Reset), weak_fair(Finish)]))
    res = weak.result("done")
    assert res.status is Status.VIOLATED and res.trace is not None and res.loop is not None
    cycle = [s.state.n for s in res.trace[res.loop:]]
    assert sorted(cycle) == [0, 1, 2]  # the lasso goes round the counting cycle
    strong = check(Spec("s", cycler(), inputs, [done], fairness=[weak_fair(Inc, Reset), strong_fair(Finish)]))
    assert strong.result("done").status is Status.HOLDS


def test_leads_to_always_eventually_and_eventually_always() -> None:
    inputs = [Inc(), Reset()]
    machine = cycler()
    fair = [weak_fair(machine)]
    at_zero, at_two = (lambda s: s.n == 0), (lambda s: s.n == 2)
    r = check(Spec("cyc", machine, inputs, [
        leads_to("zero_to_two", at_zero, at_two),
        always_eventually("two_again", at_two),
        eventually_always("stays_small", lambda s: s.n <= 2),
        eventually_always("stays_zero", at_zero),
    ], fairness=fair, deadlock=False))
    status = {p.name: p.status for p in r.properties}
    assert status["zero_to_two"] is Status.HOLDS
    assert status["two_again"] is Status.HOLDS
    assert status["stays_small"] is Status.HOLDS
    assert status["stays_zero"] is Status.VIOLATED
    lasso = r.result("stays_zero")
    assert lasso.loop is not None and lasso.trace is not None


def test_terminates_and_recoverable() -> None:
    ok = check(Spec("c", counter(), [Inc(), Finish()], terminates=True, recoverable=True))
    assert ok.verdict is Verdict.OK and ok.result("terminates").holds and ok.result("recoverable").holds
    forever = check(Spec("cyc", cycler(), [Inc(), Reset()], terminates=True, recoverable=True, deadlock=False))
    t, rec = forever.result("terminates"), forever.result("recoverable")
    assert t.status is Status.VIOLATED and t.loop is not None
    assert rec.status is Status.VIOLATED and rec.trace is not None and len(rec.trace) == 1
    assert rec.detail is not None and "3 reachable states are trapped" in rec.detail


def test_temporal_properties_with_a_constraint() -> None:
    """TLC: liveness on the pruned graph; a fair action enabled at the boundary cannot be taken there."""
    done = eventually("ten", lambda s: s.n == 10)
    r = check(Spec("c", counter(20), [Inc()], [done], fairness=[weak_fair(Inc)], deadlock=False,
                   constraint=lambda s: s.n <= 5))
    assert r.result("ten").status is Status.HOLDS and r.distinct_states == 6 and r.pruned == 1
