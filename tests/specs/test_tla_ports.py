"""Ports of tlaplus/Examples specs with several initial states, a CONSTRAINT and liveness under fairness.

Each model reproduces TLC's exact figures (TLC 2.20, one worker; the runs are
described with the specs' docstrings): distinct states and depth, and TLC's
"states generated" less its initial states, which is what statewright's
``generated`` counts (for EWD840, where TLC also branches on disjunctive
guards, the one-successor-per-step count of an independent BFS). TLC's
verdicts: every property holds in the models as written; each seeded bug
(TLC's mutant of the same spec) breaks the liveness property.

A liveness counterexample is not compared with TLC's (TLC's lasso depends on
its fingerprint seed and is not a shortest one); it is validated on its own
terms instead: it starts in an initial state, every step replays through
`step`, the loop closes with a real step (or stutters), the behaviour violates
the property, and the cycle is fair under the spec's fairness -- judged
from the table (`step`) and the input domains, not from the checker's graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from statewright.adapters.testing.stateful import Replayed, replay
from statewright.kernel import Accepted, Kind, PropertyResult, Report, Spec, Status, Verdict, check, step
from statewright.kernel.checker import Fair
from statewright.kernel.machine import Machine
from statewright.specs import REGISTRY
from statewright.specs.alternating_bit import RcvMsg, Strength
from statewright.specs.coffee_can import Beans
from statewright.specs.crdt import Counters, Gossip
from statewright.specs.ewd840 import InitiateProbe, PassToken, Ring, terminated, termination_detected
from statewright.specs.registry import parse_value


def build(name: str, **knobs: Any) -> Spec:
    return REGISTRY.get(name).spec(**knobs)


def timed_check(spec: Spec) -> Report:
    report = check(spec)
    return report


def initial_states(spec: Spec) -> tuple[Any, ...]:
    return tuple(spec.init) if spec.init is not None else ()


def statuses(report: Report) -> dict[str, Status]:
    return {p.name: p.status for p in report.properties}


# -- validating a lasso independently of the checker ------------------------------------


def inputs_of(spec: Spec, state: Any) -> list[Any]:
    domain = spec.inputs
    return list(domain(state) if callable(domain) else domain)


def admits(spec: Spec, before: Any, after: Any) -> list[Any]:
    """Every input of the domain whose step leads from ``before`` to ``after``."""
    machine = spec.model
    assert isinstance(machine, Machine)
    out = []
    for event in inputs_of(spec, before):
        result = step(machine, before, event)
        if isinstance(result, Accepted) and result.state == after:
            out.append(event)
    return out


def enabled(spec: Spec, state: Any) -> list[Any]:
    """The inputs `step` accepts in ``state`` (the spec's constraint plays no part: TLC's ENABLED)."""
    machine = spec.model
    assert isinstance(machine, Machine)
    return [e for e in inputs_of(spec, state) if isinstance(step(machine, state, e), Accepted)]


def covers(fair: Fair, machine: Machine[Any], state: Any, event: Any) -> bool:
    """Whether taking ``event`` in ``state`` is an action of the fairness condition ``fair``."""
    out = step(machine, state, event)
    if not isinstance(out, Accepted):
        return False
    row = machine.transitions[out.transition]
    return any(target is machine or target is type(event) or target is row for target in fair.targets)


@dataclass(frozen=True)
class Lasso:
    states: list[Any]
    loop: int

    @property
    def cycle(self) -> list[Any]:
        return self.states[self.loop :]


def validated_lasso(spec: Spec, result: PropertyResult) -> Lasso:
    """Check ``result``'s trace is a real, fair behaviour of ``spec`` that loops forever; return it."""
    machine = spec.model
    assert isinstance(machine, Machine)
    trace, loop = result.trace, result.loop
    assert trace is not None and loop is not None
    assert 0 <= loop < len(trace)
    initial = spec.init if spec.init is not None else (machine.initial,)
    assert trace[0].state in initial and trace[0].input is None
    for before, after in zip(trace, trace[1:]):
        out = step(machine, before.state, after.input)
        assert isinstance(out, Accepted) and out.state == after.state, f"{after.input} does not replay"
    states = [s.state for s in trace]
    last = states[-1]
    closing = admits(spec, last, states[loop])
    stutters = loop == len(states) - 1
    assert closing or stutters, "the loop does not close with a real step"
    # The cycle's steps: each pair of consecutive cycle states, and the closing one. The behaviour
    # goes round the cycle forever, so it may take each input a step admits, in turn.
    pairs = [*zip(states[loop:], states[loop + 1 :]), (last, states[loop])]
    taken = [(a, e) for a, b in pairs for e in admits(spec, a, b)]
    for fair in spec.fairness:
        assert isinstance(fair, Fair)
        enabled_at = [any(covers(fair, machine, s, e) for e in inputs_of(spec, s)) for s in states[loop:]]
        took = any(covers(fair, machine, a, e) for a, e in taken)
        if fair.strong:
            assert took or not any(enabled_at), f"{fair.label} is enabled again and again but never taken"
        else:
            assert took or not all(enabled_at), f"{fair.label} is enabled throughout but never taken"
    return Lasso(states, loop)


def never(test: Callable[[Any], bool], lasso: Lasso) -> None:
    """``<>test`` is violated: no state of the behaviour satisfies ``test``."""
    assert not any(test(s) for s in lasso.states)


def leads_nowhere(p: Callable[[Any], bool], q: Callable[[Any], bool], lasso: Lasso) -> None:
    """``p ~> q`` is violated: some ``p`` state is followed (cycle included, forever) by no ``q`` state."""
    n = len(lasso.states)
    assert any(p(lasso.states[k]) and not any(q(lasso.states[j]) for j in range(min(k, lasso.loop), n))
               for k in range(n))


def temporal(spec: Spec, name: str) -> tuple[Callable[[Any], bool], Callable[[Any], bool] | None]:
    prop = next(p for p in spec.properties if p.name == name)
    assert prop.kind in (Kind.EVENTUALLY, Kind.LEADS_TO)
    return prop.test, prop.then


def expect_lasso(spec: Spec, name: str, *, states: int, loop: int | None = None) -> Lasso:
    """The mutant's report: OK with ``name`` violated as expected, by a valid lasso.

    With ``loop`` the lasso has exactly ``states`` states and loops back to
    ``loop`` -- given only where no shorter lasso exists, since the checker
    may build any valid one. Without, ``states`` is TLC's lasso length (its
    states plus the one it loops back to or stutters in), which the checker's
    must not exceed.
    """
    report = timed_check(spec)
    result = report.result(name)
    assert report.verdict is Verdict.OK and result.status is Status.EXPECTED
    lasso = validated_lasso(spec, result)
    p, q = temporal(spec, name)
    if q is None:
        never(p, lasso)
    else:
        leads_nowhere(p, q, lasso)
    if loop is None:
        assert len(lasso.states) <= states
    else:
        assert (len(lasso.states), lasso.loop) == (states, loop)
    # without the expectation the same finding fails the check
    assert check(replace(spec, expect=())).verdict is Verdict.VIOLATED
    return lasso


# -- CoffeeCan ---------------------------------------------------------------------------


@pytest.mark.parametrize(("beans", "distinct", "tlc_generated"), [(3, 9, 20), (10, 65, 202), (100, 5150, 20002)])
def test_coffee_can_matches_tlc(beans: int, distinct: int, tlc_generated: int) -> None:
    spec = build("coffee_can", max_beans=beans)
    r = timed_check(spec)
    assert (r.verdict, r.complete, r.distinct_states, r.depth) == (Verdict.OK, True, distinct, 1)
    assert len(initial_states(spec)) == distinct  # every reachable can is an initial one
    assert r.generated + distinct == tlc_generated
    assert set(statuses(r).values()) == {Status.HOLDS}
    assert not r.never_fired


def test_coffee_can_without_fairness_may_sit_untouched_forever() -> None:
    spec = build("coffee_can", max_beans=3, fair=False)
    lasso = expect_lasso(spec, "eventually_terminates", states=1, loop=0)
    assert lasso.states == [Beans(black=0, white=2)]  # TLC's CoffeeCanNoFair lasso too: that can, then stuttering


# -- EWD840 ------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "inits", "distinct", "depth", "steps"),
                         [(3, 192, 302, 9, 1625), (4, 1024, 1566, 12, 13938)])
def test_ewd840_matches_tlc(n: int, inits: int, distinct: int, depth: int, steps: int) -> None:
    spec = build("ewd840", n=n)
    r = timed_check(spec)
    assert len(initial_states(spec)) == inits
    assert (r.verdict, r.complete, r.distinct_states, r.depth) == (Verdict.OK, True, distinct, depth)
    assert r.generated == steps  # TLC's figure less its disjunct branching and initial states (see ewd840's docstring)
    assert set(statuses(r).values()) == {Status.HOLDS}  # deadlock too: only detected termination is final


def test_ewd840_without_fairness_the_token_may_stop() -> None:
    lasso = expect_lasso(build("ewd840", n=3, fair=False), "liveness", states=1, loop=0)
    assert terminated(lasso.states[0]) and not termination_detected(lasso.states[0])  # and nothing happens
    unfair = check(build("ewd840", n=3, fair=False)).result("liveness")
    with pytest.raises(AssertionError, match="is enabled throughout but never taken"):
        validated_lasso(build("ewd840", n=3), unfair)  # the validator knows this is no fair behaviour


def test_ewd840_without_whitening_node_0_every_round_is_inconclusive() -> None:
    spec = build("ewd840", n=3, whiten=False)
    lasso = expect_lasso(spec, "liveness", states=4, loop=1)
    # TLC's EWD840NoWhiten lasso exactly: InitiateProbe, PassToken(2), PassToken(1), back to state 2
    assert [(s.token_at, s.token.value) for s in lasso.states] == [(0, "black"), (2, "white"), (1, "white"),
                                                                     (0, "white")]
    assert all(s.color[0].value == "black" and not any(s.active) for s in lasso.states)
    assert admits(spec, lasso.states[-1], lasso.states[1]) == [InitiateProbe()]
    # the same table with node 0 whitened detects termination from that state
    assert check(replace(build("ewd840", n=3), init=[lasso.states[0]])).result("liveness").status is Status.HOLDS


def test_ewd840_fairness_is_one_condition_over_every_token_move() -> None:
    spec = build("ewd840")
    assert [f.label for f in spec.fairness] == ["WF(InitiateProbe, PassToken)"]
    assert len(spec.fairness) == 1 and set(spec.fairness[0].targets) == {InitiateProbe, PassToken}
    assert isinstance(spec.model, Machine) and isinstance(spec.model.initial, Ring)


# -- AlternatingBit ----------------------------------------------------------------------


def test_alternating_bit_matches_tlc_under_its_constraint() -> None:
    spec = build("alternating_bit")
    r = timed_check(spec)
    assert len(initial_states(spec)) == 8
    assert (r.verdict, r.complete, r.distinct_states, r.depth) == (Verdict.OK, True, 240, 10)
    assert r.generated + 8 == 1392  # TLC's count includes the successors the constraint cuts ...
    assert r.pruned == 188  # ... of which there are 188 (an independent BFS agrees)
    assert set(statuses(r).values()) == {Status.HOLDS}
    unbounded = build("alternating_bit", msg_q_len=3, ack_q_len=3)
    assert check(unbounded).distinct_states > 240  # the constraint is what keeps it at 240


def test_alternating_bit_with_weak_fairness_for_receiving_loses_every_copy() -> None:
    entry = REGISTRY.get("alternating_bit")
    spec = entry.spec(rcv_fair=parse_value(entry, "rcv_fair", "weak"))  # --set rcv_fair=weak
    assert spec.fairness[2].label == "WF(RcvMsg)"
    lasso = expect_lasso(spec, "sent_leads_to_rcvd_d1", states=11)
    # the cycle loses both copies of the message, so RcvMsg is disabled now and then (WF is content) ...
    assert any(not s.msg_q for s in lasso.cycle) and any(s.msg_q for s in lasso.cycle)
    # ... but it is enabled again and again, so strong fairness would have to take it
    assert any(RcvMsg() in enabled(spec, s) for s in lasso.cycle)
    with pytest.raises(AssertionError, match=r"SF\(RcvMsg\) is enabled again and again but never taken"):
        validated_lasso(build("alternating_bit"), check(spec).result("sent_leads_to_rcvd_d1"))
    r = check(spec)
    assert {n for n, s in statuses(r).items() if s is Status.EXPECTED} == {
        "sent_leads_to_rcvd_d1", "sent_leads_to_rcvd_d2", "abc_rcv_msg"}
    for name in ("sent_leads_to_rcvd_d2", "abc_rcv_msg"):
        p, q = temporal(spec, name)
        assert q is not None
        leads_nowhere(p, q, validated_lasso(spec, r.result(name)))


def test_alternating_bit_without_fairness_stutters_after_sending() -> None:
    spec = build("alternating_bit", fair=False)
    lasso = expect_lasso(spec, "sent_leads_to_rcvd_d1", states=2, loop=1)
    # TLC's AlternatingBitNoFair lasso exactly: rcvd = d2, SndNewValue(d1), then stuttering
    assert [(s.sent, s.rcvd, s.msg_q) for s in lasso.states] == [("d1", "d2", ()), ("d1", "d2", ((1, "d1"),))]
    r = check(spec)
    assert {n for n, s in statuses(r).items() if s is Status.EXPECTED} == {
        "sent_leads_to_rcvd_d1", "sent_leads_to_rcvd_d2", "abc_rcv_msg", "abc_rcv_ack"}


# -- CRDT --------------------------------------------------------------------------------


def test_crdt_two_nodes_matches_tlc() -> None:
    spec = build("crdt")
    r = timed_check(spec)
    assert (r.verdict, r.complete, r.distinct_states, r.depth) == (Verdict.OK, True, 200, 10)
    assert r.generated + 1 == 1201 and r.pruned == 80
    assert set(statuses(r).values()) == {Status.HOLDS}
    assert len(spec.fairness) == 4  # one weak-fairness condition per ordered pair, self-gossip included


@pytest.mark.slow
def test_crdt_three_nodes_matches_tlc() -> None:
    r = check(build("crdt", nodes=3))
    assert (r.verdict, r.distinct_states, r.depth, r.generated + 1, r.pruned) == (Verdict.OK, 50000, 17, 575001, 39600)


def test_crdt_without_fairness_never_gossips_after_converging() -> None:
    lasso = expect_lasso(build("crdt", fair=False), "liveness", states=3, loop=2)
    assert lasso.states[-1].converge and lasso.states[-1].counter == ((1, 0), (0, 0))


def test_crdt_with_fair_gossip_from_node_0_only_node_0_never_learns() -> None:
    spec = build("crdt", one_way=True)
    assert len(spec.fairness) == 2
    lasso = expect_lasso(spec, "liveness", states=9)
    # the shortest: node 1 counts, converge is set, and the gossip node 0 is forced to do changes nothing
    assert lasso.states[:3] == [Counters(), Counters(counter=((0, 0), (0, 1))),
                                Counters(counter=((0, 0), (0, 1)), converge=True)]
    assert lasso.loop == 2 and set(lasso.cycle) == {lasso.states[2]}
    assert {Gossip(0, 0), Gossip(0, 1)} <= set(admits(spec, lasso.states[2], lasso.states[2]))


def test_traces_from_any_of_several_initial_states_replay() -> None:
    spec = build("ewd840", n=3, whiten=False)
    lasso = check(spec).result("liveness")
    assert lasso.trace is not None and lasso.trace[0].state != spec.model.initial
    assert replay(spec, lasso.trace, loop=lasso.loop) == Replayed(3)
    stranger = replace(lasso.trace[0], state=replace(lasso.trace[0].state, token_at=7))
    assert replay(spec, (stranger, *lasso.trace[1:])).stopped is not None
