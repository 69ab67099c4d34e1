"""`kernel.checker.mutants`: the operators, the outcome of each kind of mutant, and the refusals."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from statewright.kernel.checker import Spec, always, sometimes
from statewright.kernel.checker.mutants import (
    MACHINE_OPERATORS,
    SYSTEM,
    Outcome,
    Scope,
    SpecFails,
    drop_guard,
    mutants,
    negation,
    score,
    score_spec,
    score_system,
    system_mutants,
)
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.step import Accepted
from statewright.kernel.system import Action, Route, System, SystemGuard

# -- a counter whose guards keep it finite and its update safe ---------------------------------


class C(Enum):
    COUNTING = "counting"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Counter:
    phase: C = C.COUNTING
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc:
    pass


@dataclass(frozen=True, slots=True)
class Dec:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    pass


def below_3(s: Counter, _i: Inc) -> bool:
    return s.n < 3


def positive(s: Counter, _i: Dec) -> bool:
    return s.n > 0


def dec(s: Counter, _i: Dec) -> Counter:
    if s.n == 0:
        raise ValueError("the counter would go below zero")
    return replace(s, n=s.n - 1)


COUNTER = Machine("counter", initial=Counter(), terminal={C.DONE}, transitions=[
    Transition(C.COUNTING, Inc, C.COUNTING, guard=below_3, update=lambda s, _: replace(s, n=s.n + 1)),
    Transition(C.COUNTING, Dec, C.COUNTING, guard=positive, update=dec),
    Transition(C.COUNTING, Stop, C.DONE),
])


def counter_spec(**changes: Any) -> Spec:
    spec = Spec("counter", COUNTER, [Inc(), Dec(), Stop()], [sometimes("reaches_3", lambda s: s.n == 3)])
    return dataclasses.replace(spec, **changes)


def test_each_row_gets_its_guards_dropped_and_negated_and_its_target_changed() -> None:
    assert [m.description for m in mutants(COUNTER)] == [
        "#0 COUNTING --Inc[below_3]--> COUNTING: drop guard below_3",
        "#0 COUNTING --Inc[below_3]--> COUNTING: negate guard below_3",
        "#0 COUNTING --Inc[below_3]--> COUNTING: retarget to DONE",
        "#1 COUNTING --Dec[positive]--> COUNTING: drop guard positive",
        "#1 COUNTING --Dec[positive]--> COUNTING: negate guard positive",
        "#1 COUNTING --Dec[positive]--> COUNTING: retarget to DONE",
        "#2 COUNTING --Stop--> DONE: retarget to COUNTING",
    ]
    negated = list(mutants(COUNTER))[1].changed
    assert isinstance(negated, Machine) and negated.labels[0] == "COUNTING --Inc[not_below_3]--> COUNTING"
    assert [m.description for m in mutants(COUNTER, operators=(drop_guard,))] == [
        "#0 COUNTING --Inc[below_3]--> COUNTING: drop guard below_3",
        "#1 COUNTING --Dec[positive]--> COUNTING: drop guard positive",
    ]
    assert len(MACHINE_OPERATORS) == 3


def test_a_negated_guard_keeps_the_other_guards_of_its_row() -> None:
    def small(s: Counter, _i: Inc) -> bool:
        return s.n < 10

    machine = replace(COUNTER, transitions=[replace(COUNTER.transitions[0], guard=[below_3, small]),
                                            *COUNTER.transitions[1:]])
    changed = [m.changed for m in mutants(machine) if m.description.endswith("negate guard small")]
    assert len(changed) == 1 and isinstance(changed[0], Machine)
    assert changed[0].labels[0] == "COUNTING --Inc[below_3, not_small]--> COUNTING"
    assert negation(small).name == "not_small" and negation(small)(Counter(n=12), Inc())


def test_every_outcome_is_told_apart() -> None:
    s = score(counter_spec(), COUNTER)
    fates = {f.mutant.split(": ", 1)[1] + f" #{f.mutant[1]}": f.outcome for f in s.fates}
    assert fates == {
        "drop guard below_3 #0": Outcome.BOUNDED,  # counts past 3 for ever: the budget runs out
        "negate guard below_3 #0": Outcome.VIOLATED,  # never counts: reaches_3 is not witnessed
        "retarget to DONE #0": Outcome.VIOLATED,
        "drop guard positive #1": Outcome.RAISED,  # the update raises at 0; no property failed first
        "negate guard positive #1": Outcome.RAISED,
        "retarget to DONE #1": Outcome.SURVIVED,  # nothing says how a count ends
        "retarget to COUNTING #2": Outcome.DEFINITION,  # DONE becomes unreachable: no valid machine
    }
    assert (s.killed, s.total, s.by_definition, s.ratio) == (3, 7, 1, 3 / 7)
    assert (s.group, s.scope) == ("counter", Scope.MACHINE)
    assert s.survivors == (
        "#0 COUNTING --Inc[below_3]--> COUNTING: drop guard below_3",
        "#1 COUNTING --Dec[positive]--> COUNTING: drop guard positive",
        "#1 COUNTING --Dec[positive]--> COUNTING: negate guard positive",
        "#1 COUNTING --Dec[positive]--> COUNTING: retarget to DONE",
    )
    details = {f.outcome: f.detail for f in s.fates}
    assert "update raised ValueError: the counter would go below zero" in details[Outcome.RAISED]
    assert details[Outcome.BOUNDED] == "nothing failed in the budget of 1,000 states"  # 20 x 8, but at least 1,000
    assert details[Outcome.VIOLATED] == "property 'reaches_3' violated"
    assert "unreachable" in details[Outcome.DEFINITION]
    assert [o.value for o in Outcome] == ["caught", "caught (definition error)", "survived",
                                          "survived (bounded)", "survived (raised)"]


def test_the_budget_is_a_multiple_of_the_unmutated_state_count() -> None:
    # 8 states unmutated (0..3 counting or done): 300 x 8 = 2,400 states, still no end for an unbounded counter
    s = score(counter_spec(), COUNTER, budget=300)
    fate = s.fates[0]
    assert (fate.outcome, fate.detail) == (Outcome.BOUNDED, "nothing failed in the budget of 2,400 states")


def test_a_spec_that_fails_unmutated_is_refused() -> None:
    failing = counter_spec(properties=[always("never", lambda s: False), sometimes("reaches_9", lambda s: s.n == 9)])
    with pytest.raises(SpecFails) as caught:
        score(failing, COUNTER)
    assert caught.value.spec == "counter"
    assert caught.value.failed == ("property 'never' violated", "property 'reaches_9' violated")
    assert str(caught.value) == ("spec 'counter' already fails its own check (property 'never' violated; property "
                                 "'reaches_9' violated): mutants cannot be scored until it passes")
    with pytest.raises(SpecFails):
        score_spec(failing)
    missing = counter_spec(expect=["reaches_3"])  # an expected violation that is not found fails the check too
    with pytest.raises(SpecFails, match="property 'reaches_3' missing"):
        score_spec(missing)


def test_no_mutants_is_no_score() -> None:
    class One(Enum):
        ON = "on"

    lone = Machine("lone", initial=One.ON, transitions=[Transition(One.ON, Inc, One.ON)])
    s = score(Spec("lone", lone, [Inc()], deadlock=False), lone)
    assert (s.total, s.killed, s.ratio, s.survivors) == (0, 0, None, ())


# -- a system: a mutual exclusion, and a log fed by a route ------------------------------------


class W(Enum):
    IDLE = "idle"
    CRITICAL = "critical"
    DONE = "done"


class Log(Enum):
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class Ledger:
    phase: Log = Log.OPEN
    n: int = 0


@dataclass(frozen=True, slots=True)
class Enter:
    pass


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Left:
    pass


@dataclass(frozen=True, slots=True)
class Note:
    pass


WORKER = Machine("worker", initial=W.IDLE, terminal={W.DONE}, transitions=[
    Transition(W.IDLE, Enter, W.CRITICAL), Transition(W.CRITICAL, Leave, W.DONE, emit=(Left(),))])
LEDGER = Machine("ledger", initial=Ledger(), transitions=[
    Transition(Log.OPEN, Note, Log.OPEN, update=lambda s, _: replace(s, n=s.n + 1))])


def alone(view: Any, me: int, _i: Any) -> bool:
    return W.CRITICAL not in view[:me] + view[me + 1 :]


def room_in_ledger(view: Any, _me: int, _i: Any) -> bool:
    return bool(view.log.n < 5)  # two workers leave twice at most: never false


def mutex() -> Spec:
    system: System[Any] = System(
        "mutex", {"a": WORKER, "b": WORKER, "log": LEDGER},
        guards=[SystemGuard("alone", Enter, alone), SystemGuard("room_in_ledger", Leave, room_in_ledger)],
        routes=[Route(Left, lambda _e, _source: ("log", Note()))],
    )
    return Spec("mutex", system, {"a": [Enter(), Leave()], "b": [Enter(), Leave()]}, [
        always("one_critical", lambda v: (v.a, v.b).count(W.CRITICAL) <= 1),
        always("log_counts_leaves", lambda v: v.log.n == (v.a, v.b).count(W.DONE)),
    ], final=lambda v: v.a is W.DONE and v.b is W.DONE)


def test_system_operators_drop_each_system_guard_and_each_route() -> None:
    spec = mutex()
    assert [m.description for m in system_mutants(spec)] == [
        "drop system guard alone (Enter)", "drop system guard room_in_ledger (Leave)", "drop route Left"]
    unrouted = list(system_mutants(spec))[2].changed
    assert isinstance(unrouted, Spec) and isinstance(unrouted.model, System)
    system = unrouted.model
    entered = system.step(system.initial, Action("a", Enter()))
    assert isinstance(entered, Accepted)
    left = system.step(entered.state, Action("a", Leave()))
    # the effect is still emitted, but no longer delivered: the log did not move
    assert isinstance(left, Accepted) and [e.effect for e in left.effects] == [Left()] and left.state.log.n == 0
    assert list(system_mutants(counter_spec())) == []


def test_the_system_group_scores_what_the_system_adds() -> None:
    s = score_system(mutex())
    assert (s.group, s.scope, s.killed, s.total) == (SYSTEM, Scope.SYSTEM, 2, 3)
    assert {f.mutant: f.outcome for f in s.fates} == {
        "drop system guard alone (Enter)": Outcome.VIOLATED,
        "drop system guard room_in_ledger (Leave)": Outcome.SURVIVED,  # it never refuses anything
        "drop route Left": Outcome.VIOLATED,
    }
    assert [f.detail for f in s.fates if f.outcome is Outcome.VIOLATED] == [
        "property 'one_critical' violated", "property 'log_counts_leaves' violated"]


def test_a_spec_is_scored_per_machine_then_per_system() -> None:
    groups = score_spec(mutex())
    assert [(s.group, s.scope, s.killed, s.total) for s in groups] == [
        ("worker", Scope.MACHINE, 4, 4), ("ledger", Scope.MACHINE, 0, 0), ("system", Scope.SYSTEM, 2, 3)]
    assert groups[1].ratio is None
    assert [s.group for s in score_spec(counter_spec())] == ["counter"]


def test_dropping_each_fairness_condition_is_a_mutant_a_liveness_property_must_catch() -> None:
    from statewright.kernel.checker import eventually, weak_fair
    from statewright.kernel.checker.mutants import Scope, score_spec

    class Q(Enum):
        A = 1
        B = 2

    class Go:
        pass

    m = Machine("m", initial=Q.A, terminal={Q.B}, transitions=[Transition(Q.A, Go, Q.B)])
    reach = eventually("reach_b", lambda s: s is Q.B)
    groups = score_spec(Spec("fair", m, [Go()], [reach], fairness=[weak_fair(Go)]))
    (fair,) = [g for g in groups if g.scope is Scope.FAIRNESS]
    assert (fair.group, fair.killed, fair.total) == ("fairness", 1, 1)
    assert fair.fates[0].mutant == "drop fairness WF(Go)"
    unprotected = score_spec(Spec("unfair", m, [Go()], [], fairness=[weak_fair(Go)]))
    (weak,) = [g for g in unprotected if g.scope is Scope.FAIRNESS]
    assert (weak.killed, weak.total, weak.survivors) == (0, 1, ("drop fairness WF(Go)",))
    assert [g.scope for g in score_spec(Spec("plain", m, [Go()]))] == [Scope.MACHINE]


def test_fairness_on_machine_objects_and_rows_follows_the_mutated_machines() -> None:
    """Fairness names machines and rows by identity; each mutant's spec names its own mutated ones.

    Two workers built by a factory (one machine object each, one name) count to
    two and finish; fairness covers worker ``a``'s machine and ``b``'s Finish
    row. Dropping a guard must be caught by a property, not by a fairness
    declaration that no longer matches anything.
    """
    from statewright.kernel.checker import always, eventually, strong_fair, weak_fair
    from statewright.kernel.checker.mutants import Outcome, Scope, score_spec

    class Q(Enum):
        RUN = 1
        DONE = 2

    @dataclass(frozen=True, slots=True)
    class W:
        phase: Q = Q.RUN
        n: int = 0

    class Inc: ...

    class Finish: ...

    def worker() -> Machine[W]:
        return Machine("worker", initial=W(), terminal={Q.DONE}, transitions=[
            Transition(Q.RUN, Inc, Q.RUN, guard=Guard("below_2", lambda s, i: s.n < 2),
                       update=lambda s, i: replace(s, n=s.n + 1)),
            Transition(Q.RUN, Finish, Q.DONE, guard=Guard("at_2", lambda s, i: s.n == 2))])

    a, b = worker(), worker()
    system: System[Any] = System("pair", {"a": a, "b": b})
    spec = Spec("pair", system, {"a": [Inc(), Finish()], "b": [Inc(), Finish()]},
                [always("small", lambda v: v.a.n <= 2 and v.b.n <= 2),
                 eventually("a_done", lambda v: v.a.phase is Q.DONE),
                 eventually("b_done", lambda v: v.b.phase is Q.DONE)],
                fairness=[weak_fair(a), weak_fair(b.transitions[0]), strong_fair(b.transitions[1])], deadlock=False)
    groups = score_spec(spec)
    assert [g.scope for g in groups] == [Scope.MACHINE, Scope.SYSTEM, Scope.FAIRNESS]
    machine, fair = groups[0], groups[2]
    definitions = [f.detail for f in machine.fates if f.outcome is Outcome.DEFINITION]
    assert definitions == ["machine 'worker': phases unreachable from RUN in the table: DONE"]  # retarget Finish
    outcomes = {f.mutant: f.outcome for f in machine.fates}
    assert outcomes["#0 RUN --Inc[below_2]--> RUN: drop guard below_2"] is Outcome.VIOLATED
    assert outcomes["#1 RUN --Finish[at_2]--> DONE: drop guard at_2"] is Outcome.SURVIVED
    assert (fair.killed, fair.total) == (3, 3)
