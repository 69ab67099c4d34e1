"""The asynchronous composition (`kernel.asynchronous`) and its finding: `order_payment` vs `order_payment_async`.

TLC's figures come from ``tests/specs/tla/OrderPayment.tla`` (TLC 2.20, one
worker), one cfg per run: ``OrderPayment.cfg`` (atomic: 6 distinct states,
depth 4, 9 generated, no error), ``OrderPaymentAsync.cfg`` (CancelledNeverCaptured
violated by a 5-state trace: Place, Cancel, Deliver("order"), Capture),
``OrderPaymentAsyncLive.cfg`` (15 distinct states, depth 7, 22 generated, no
error) and ``OrderPaymentAsyncPaid.cfg`` (CapturedLeadsToPaid violated: 7
states, then stuttering). TLC's "generated" counts the initial state and a
final state's stuttering step besides ours: 9 = 1 + 5 + 3 and 22 = 1 + 16 + 5.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest

from statewright.kernel import Spec, check
from statewright.kernel.asynchronous import Asynchronous, Deliver, InFlight, Message, Order, Refusal
from statewright.kernel.checker import Status, Verdict
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition
from statewright.kernel.step import Accepted, outcomes, step
from statewright.kernel.system import Action, Route, System, SystemGuard
from statewright.specs import REGISTRY
from statewright.specs.order_payment import (
    INPUTS, Cancel, Capture, OrderPhase, PaymentCaptured, PaymentPhase, Place, Request, Void, order_payment_system,
)

HOLDS, EXPECTED = Status.HOLDS, Status.EXPECTED


def statuses(name: str, **knobs: Any) -> tuple[Any, dict[str, Status]]:
    report = check(REGISTRY.get(name).spec(**knobs))
    return report, {p.name: p.status for p in report.properties}


def test_atomic_routes_keep_a_cancelled_order_uncaptured() -> None:
    report, got = statuses("order_payment")
    assert report.verdict is Verdict.OK and report.complete
    assert (report.distinct_states, report.depth, report.generated) == (6, 4, 5)  # TLC: 6, 4, 9 = 1 + 5 + 3
    assert got["cancelled_never_captured"] is HOLDS and got["captured_leads_to_paid"] is HOLDS
    assert all(s is HOLDS for s in got.values())


def test_asynchronous_delivery_breaks_it_by_a_five_state_trace() -> None:
    report, got = statuses("order_payment_async")
    assert report.verdict is Verdict.OK and report.complete  # the findings are expected and pinned
    assert (report.distinct_states, report.depth, report.generated) == (15, 7, 16)  # TLC: 15, 7, 22 = 1 + 16 + 5
    assert got["cancelled_never_captured"] is EXPECTED and got["captured_leads_to_paid"] is EXPECTED
    survivors = {"shipped_only_if_captured", "captured_settles_the_order", "cancelled_payment_settles", "flight_drains",
                 "shipped", "cancelled", "a_delivery_refused", "deadlock", "determinism", "terminal_precedence"}
    assert {n for n, s in got.items() if s is HOLDS} == survivors
    trace = report.result("cancelled_never_captured").trace
    assert trace is not None
    assert [t.input for t in trace] == [  # TLC's: Place, Cancel, Deliver("order"), Capture
        None, Action("order", Place()), Action("order", Cancel()), Deliver("order", "payment", Request()),
        Action("payment", Capture())]
    last = trace[-1].state
    assert (last.instances.order, last.instances.payment) == (OrderPhase.CANCELLED, PaymentPhase.CAPTURED)
    assert last.messages == (Message("order", "payment", Void()), Message("payment", "order", PaymentCaptured()))


def test_captured_leads_to_paid_fails_by_the_refused_deliveries() -> None:
    report, _ = statuses("order_payment_async")
    lasso = report.result("captured_leads_to_paid")
    assert lasso.trace is not None and len(lasso.trace) == 7 and lasso.loop == 6  # TLC: 7 states, then stuttering
    last = lasso.trace[-1].state
    assert last.messages == () and last.refused == (
        Refusal("order", "payment", Void()), Refusal("payment", "order", PaymentCaptured()))


def test_in_any_order_the_same_findings() -> None:
    report, got = statuses("order_payment_async", order=Order.BAG)
    assert (report.distinct_states, report.depth) == (17, 7)
    assert got["cancelled_never_captured"] is EXPECTED and got["flight_drains"] is HOLDS
    report, _ = statuses("order_payment_async", order=Order.CHANNEL)
    assert (report.distinct_states, report.depth) == (15, 7)  # one target per source: the same as SOURCE


def explore(comp: Asynchronous, inputs: Any) -> tuple[int, int, int]:
    """An independent BFS through `outcomes`: distinct states, depth, and final states (TLC's stuttering steps)."""
    seen = {comp.initial: 1}
    todo = deque([comp.initial])
    finals = 0
    while todo:
        s = todo.popleft()
        finals += not s.messages and s.instances.order in (OrderPhase.SHIPPED, OrderPhase.CANCELLED)
        for i in inputs(s):
            out = outcomes(comp.machine, s, i)
            for o in () if not isinstance(out, tuple) else out:
                if o.state not in seen:
                    seen[o.state] = seen[s] + 1
                    todo.append(o.state)
    return len(seen), max(seen.values()), finals


def test_an_independent_search_agrees_with_the_checker_and_tlc() -> None:
    comp = Asynchronous(order_payment_system())
    assert explore(comp, comp.inputs(INPUTS)) == (15, 7, 5)


# -- the construction itself --------------------------------------------------------------------


class P(Enum):
    IDLE = 0
    ON = 1


class Q(Enum):
    OPEN = 0


@dataclass(frozen=True, slots=True)
class Go:
    n: int = 0


@dataclass(frozen=True, slots=True)
class Went:
    n: int = 0


LAMP = Machine("lamp", initial=P.IDLE, terminal={P.ON}, transitions=[
    Transition(P.IDLE, Go, P.ON, emit=lambda s, i: (Went(1), Went(2)))])
SINK = Machine("sink", initial=(Q.OPEN, ()), phase=lambda s: s[0], with_phase=lambda s, p: (p, s[1]),
               transitions=[Transition(Q.OPEN, Go, Q.OPEN, update=lambda s, i: (s[0], (*s[1], i.n)))])


def fan(order: Order) -> Asynchronous:
    return Asynchronous(System("fan", {"a": LAMP, "b": SINK, "c": SINK},
                               routes=[Route(Went, lambda e, _src: [("b", Go(e.n)), ("c", Go(e.n))])]), order)


def test_source_order_delivers_each_source_in_emission_order() -> None:
    comp = fan(Order.SOURCE)
    s = step(comp.machine, comp.initial, Action("a", Go())).state
    assert comp.deliveries(s) == [Deliver("a", "b", Go(1))]  # the head of a's queue only
    assert [len(comp.deliveries(s)) for comp in (fan(Order.CHANNEL), fan(Order.BAG))] == [2, 4]


def test_a_refused_delivery_is_recorded_and_changes_nothing_else() -> None:
    comp = fan(Order.SOURCE)
    s = comp.state({"a": P.ON}, [Message("a", "a", Go())])
    out = step(comp.machine, s, Deliver("a", "a", Go()))
    assert isinstance(out, Accepted) and out.effects == ()
    assert out.state == InFlight(s.instances, (), (Refusal("a", "a", Go()),))


def test_a_delivery_that_is_not_at_the_head_is_no_input() -> None:
    comp = fan(Order.SOURCE)
    s = step(comp.machine, comp.initial, Action("a", Go())).state
    assert not isinstance(step(comp.machine, s, Deliver("a", "c", Go(2))), Accepted)


def test_system_guards_gate_own_inputs_but_not_deliveries() -> None:
    system = System("gated", {"a": LAMP, "b": LAMP}, guards=[SystemGuard("never", Go, lambda v, me, i: False)],
                    routes=[Route(Went, lambda e, src: ("b", Go()) if src == "a" else None)])
    comp = Asynchronous(system)
    assert not isinstance(step(comp.machine, comp.initial, Action("a", Go())), Accepted)
    s = comp.state([P.ON, P.IDLE], [Message("a", "b", Go())])
    assert step(comp.machine, s, Deliver("a", "b", Go())).state.instances.b is P.ON  # type: ignore[union-attr]


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(DefinitionError, match="needs a System"):
        Asynchronous(LAMP)  # type: ignore[arg-type]
    comp = fan(Order.SOURCE)
    with pytest.raises(DefinitionError, match="unknown instances"):
        comp.inputs({"z": [Go()]})
    lost = Asynchronous(System("lost", {"a": LAMP}, routes=[Route(Went, lambda e, src: ("nowhere", Go()))]))
    with pytest.raises(DefinitionError, match="unknown instance 'nowhere'"):
        step(lost.machine, lost.initial, Action("a", Go()))


def test_a_spec_of_a_composition_checks_with_fairness_from_its_rows() -> None:
    comp = fan(Order.SOURCE)
    from statewright.kernel.checker import leads_to, weak_fair

    spec = Spec("fan", comp.machine, comp.inputs({"a": [Go()]}),
                [leads_to("both_get_two", lambda s: s.instances.a is P.ON,
                          lambda s: all(len(x[1]) == 2 for x in s.instances[1:]))],
                fairness=[weak_fair(r) for r in comp.delivery_rows.values()], final=lambda s: not s.messages)
    report = check(spec)
    assert report.verdict is Verdict.OK and (report.distinct_states, report.depth) == (6, 6)
