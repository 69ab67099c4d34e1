"""OrderPayment: an order and its payment, with routes settled atomically and delivered asynchronously.

An ``order`` (CREATED -> PLACED -> PAID -> SHIPPED, or CANCELLED) and its
``payment`` (IDLE -> REQUESTED -> CAPTURED, or VOIDED) talk through three
routes: placing the order requests the payment (`PaymentRequested` ->
`Request`), cancelling a placed order voids it (`OrderCancelled` -> `Void`),
and a capture tells the order it is paid (`Captured` -> `PaymentCaptured`).
The user places, cancels and ships orders; the payment provider captures.

``order_payment``
    One `System` stored under one key: each route is settled inside the step
    that emitted it (`kernel.system.settle`), and a refused routed input
    rejects the whole step. Cancelling an order whose payment was captured is
    refused (`Void` is refused by CAPTURED), and so is capturing the payment
    of a cancelled order (it is VOIDED by then). ``cancelled_never_captured``
    holds: 6 distinct states, depth 4 (TLC: the same).

``order_payment_async``
    The same machines and routes when order and payment live under different
    keys: commit, then dispatch (`kernel.asynchronous.Asynchronous`, in the
    dispatcher's order -- per source, different sources independently). The
    state holds the messages in flight and the refused deliveries. The
    finding: ``cancelled_never_captured`` FAILS, by a 5-state trace -- place
    the order, deliver the payment request, cancel the order (a `Void` in
    flight), capture the payment (a `PaymentCaptured` in flight); the order is
    CANCELLED and the payment CAPTURED, and both messages in flight will be
    refused. 15 distinct states, depth 7 (TLC: the same). What survives:
    ``shipped_only_if_captured`` (an invariant) and, under weak fairness of
    each source's deliveries, ``captured_settles_the_order`` (a capture leads
    to an order that is PAID, SHIPPED or CANCELLED) and ``flight_drains``
    (whatever is in flight is eventually delivered or refused).
    ``captured_leads_to_paid`` -- true atomically -- fails too: 7 states,
    then stuttering (TLC's counterexample is the same behaviour).
    ``--set order=bag`` delivers in any order (a `Void` may then overtake the
    `Request` it follows): 17 states, depth 7, the same findings.

The TLA+ model is ``tests/specs/tla/OrderPayment.tla`` (``Async`` FALSE and
TRUE, one cfg per run); tests/specs/test_order_payment.py pins TLC's figures.
TLC's "states generated" also counts the initial state and the stuttering
step a final state takes (the model's ``Settled`` disjunct, which stands for
statewright's ``final``): 9 = 1 + 5 + 3 atomically, 22 = 1 + 16 + 5
asynchronously.

>>> from statewright.kernel.checker import check
>>> check(order_payment()).result("cancelled_never_captured").status.name
'HOLDS'
>>> check(order_payment_async()).result("cancelled_never_captured").status.name
'EXPECTED'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from statewright.kernel.asynchronous import Asynchronous, InFlight, Order
from statewright.kernel.checker import Spec, always, leads_to, sometimes, weak_fair
from statewright.kernel.machine import Machine, Transition
from statewright.kernel.system import Route, System
from statewright.specs.registry import REGISTRY

__all__ = [
    "Cancel", "Capture", "Captured", "OrderCancelled", "OrderPhase", "PaymentCaptured", "PaymentPhase",
    "PaymentRequested", "Place", "Request", "Ship", "Void", "order_payment", "order_payment_async",
    "order_payment_system",
]


class OrderPhase(Enum):
    CREATED = "created"
    PLACED = "placed"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class PaymentPhase(Enum):
    IDLE = "idle"
    REQUESTED = "requested"
    CAPTURED = "captured"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class Place:
    """The customer places the order."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """The customer cancels the order."""


@dataclass(frozen=True, slots=True)
class Ship:
    """The warehouse ships a paid order."""


@dataclass(frozen=True, slots=True)
class PaymentCaptured:
    """Routed to the order: its payment was captured."""


@dataclass(frozen=True, slots=True)
class Request:
    """Routed to the payment: the order asks for it."""


@dataclass(frozen=True, slots=True)
class Capture:
    """The payment provider captures the money."""


@dataclass(frozen=True, slots=True)
class Void:
    """Routed to the payment: the order was cancelled."""


@dataclass(frozen=True, slots=True)
class PaymentRequested:
    """Effect of placing an order."""


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """Effect of cancelling a placed order."""


@dataclass(frozen=True, slots=True)
class Captured:
    """Effect of capturing a payment."""


O, P = OrderPhase, PaymentPhase
ORDER = Machine(
    "shop_order",
    initial=O.CREATED,
    terminal={O.SHIPPED, O.CANCELLED},
    transitions=[
        Transition(O.CREATED, Place, O.PLACED, emit=(PaymentRequested(),)),
        Transition(O.PLACED, PaymentCaptured, O.PAID),
        Transition(O.PAID, Ship, O.SHIPPED),
        Transition(O.CREATED, Cancel, O.CANCELLED),
        Transition(O.PLACED, Cancel, O.CANCELLED, emit=(OrderCancelled(),)),
    ],
    effects=(PaymentRequested, OrderCancelled),
    doc="An order: placed, paid by its payment, shipped; or cancelled before it is paid.",
)

PAYMENT = Machine(
    "shop_payment",
    initial=P.IDLE,
    terminal={P.CAPTURED, P.VOIDED},
    transitions=[
        Transition(P.IDLE, Request, P.REQUESTED),
        Transition(P.REQUESTED, Capture, P.CAPTURED, emit=(Captured(),)),
        Transition(P.REQUESTED, Void, P.VOIDED),
    ],
    effects=(Captured,),
    doc="A payment: requested by its order, then captured or voided.",
)

ROUTES = [
    Route(PaymentRequested, lambda e, _src: ("payment", Request())),
    Route(OrderCancelled, lambda e, _src: ("payment", Void())),
    Route(Captured, lambda e, _src: ("order", PaymentCaptured())),
]

INPUTS: dict[str, list[Any]] = {"order": [Place(), Cancel(), Ship()], "payment": [Capture()]}


def order_payment_system() -> System[Any]:
    """The order and its payment as one `System` (routes settled atomically)."""
    return System("order_payment", {"order": ORDER, "payment": PAYMENT}, routes=ROUTES)


def _properties(view: Any) -> list[Any]:
    """The properties both versions are checked against; ``view(state)`` gives the instances."""

    def cancelled_never_captured(s: Any) -> bool:
        v = view(s)
        return not (v.order is O.CANCELLED and v.payment is P.CAPTURED)

    def shipped_only_if_captured(s: Any) -> bool:
        v = view(s)
        return v.order is not O.SHIPPED or v.payment is P.CAPTURED

    return [
        always("cancelled_never_captured", cancelled_never_captured),
        always("shipped_only_if_captured", shipped_only_if_captured),
        sometimes("shipped", lambda s: view(s).order is O.SHIPPED),
        sometimes("cancelled", lambda s: view(s).order is O.CANCELLED),
        leads_to("captured_settles_the_order", lambda s: view(s).payment is P.CAPTURED,
                 lambda s: view(s).order in (O.PAID, O.SHIPPED, O.CANCELLED)),
        leads_to("cancelled_payment_settles", lambda s: view(s).order is O.CANCELLED and view(s).payment is P.REQUESTED,
                 lambda s: view(s).payment is not P.REQUESTED),
        leads_to("captured_leads_to_paid", lambda s: view(s).payment is P.CAPTURED,
                 lambda s: view(s).order in (O.PAID, O.SHIPPED)),
    ]


def _final(view: Any) -> Any:
    return lambda s: view(s).order in (O.SHIPPED, O.CANCELLED)


@REGISTRY.spec
def order_payment() -> Spec:
    """An order and its payment with atomic routes: cancelled_never_captured holds (6 states, depth 4)."""
    return Spec(
        "order_payment",
        order_payment_system(),
        inputs=INPUTS,
        properties=_properties(lambda v: v),
        final=_final(lambda v: v),
        doc=__doc__ or "",
    )


def _in_flight(s: InFlight) -> Any:
    return s.instances


@REGISTRY.spec
def order_payment_async(order: Order = Order.SOURCE) -> Spec:
    """The same pair under commit-then-dispatch: cancelled_never_captured fails by a 5-state trace."""
    composition = Asynchronous(order_payment_system(), order)
    properties = [
        *_properties(_in_flight),
        leads_to("flight_drains", lambda s: bool(s.messages), lambda s: not s.messages),
        sometimes("a_delivery_refused", lambda s: bool(s.refused)),
    ]
    return Spec(
        "order_payment_async",
        composition.machine,
        inputs=composition.inputs(INPUTS),
        properties=properties,
        final=lambda s: not s.messages and _final(_in_flight)(s),
        fairness=[weak_fair(row) for row in composition.delivery_rows.values()],
        expect={"cancelled_never_captured": 5, "captured_leads_to_paid": 7},
        doc=__doc__ or "",
    )
