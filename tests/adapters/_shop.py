"""An order and its payment, two machines stored under separate keys: the dispatcher tests' world.

An order is placed (emitting `PaymentRequested`, routed to the payment under
``pay-<order>``), learns that its payment was captured (`Paid`, routed back from
the payment's `Captured`) and is then shipped (emitting `Shipped`, which a
handler turns into a notification row).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright import Machine, Transition
from statewright.adapters.runtime.store import Catalog


class OrderPhase(Enum):
    NEW = "new"
    PLACED = "placed"
    PAID = "paid"
    SHIPPED = "shipped"


@dataclass(frozen=True, slots=True)
class Order:
    phase: OrderPhase = OrderPhase.NEW
    amount: int = 0


@dataclass(frozen=True, slots=True)
class Place:
    amount: int


@dataclass(frozen=True, slots=True)
class Paid:
    pass


@dataclass(frozen=True, slots=True)
class Ship:
    pass


@dataclass(frozen=True, slots=True)
class PaymentRequested:
    amount: int


@dataclass(frozen=True, slots=True)
class Shipped:
    amount: int


ORDER = Machine(
    "order",
    initial=Order(),
    terminal={OrderPhase.SHIPPED},
    transitions=[
        Transition(OrderPhase.NEW, Place, OrderPhase.PLACED,
                   update=lambda s, i: replace(s, amount=i.amount),
                   emit=lambda s, i: (PaymentRequested(i.amount),)),
        Transition(OrderPhase.PLACED, Paid, OrderPhase.PAID),
        Transition(OrderPhase.PAID, Ship, OrderPhase.SHIPPED, emit=lambda s, i: (Shipped(s.amount),)),
    ],
    inputs=(Place, Paid, Ship),
    effects=(PaymentRequested, Shipped),
)


class PaymentPhase(Enum):
    NONE = "none"
    REQUESTED = "requested"
    CAPTURED = "captured"


@dataclass(frozen=True, slots=True)
class Payment:
    phase: PaymentPhase = PaymentPhase.NONE
    amount: int = 0
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    amount: int


@dataclass(frozen=True, slots=True)
class Capture:
    pass


@dataclass(frozen=True, slots=True)
class Captured:
    amount: int


PAYMENT = Machine(
    "payment",
    initial=Payment(),
    terminal={PaymentPhase.CAPTURED},
    transitions=[
        Transition(PaymentPhase.NONE, Request, PaymentPhase.REQUESTED,
                   update=lambda s, i: replace(s, amount=i.amount, requests=s.requests + 1)),
        Transition(PaymentPhase.REQUESTED, Capture, PaymentPhase.CAPTURED,
                   emit=lambda s, i: (Captured(s.amount),)),
    ],
    inputs=(Request, Capture),
    effects=(Captured,),
)


class NotePhase(Enum):
    SENT = "sent"
    READ = "read"


@dataclass(frozen=True, slots=True)
class Note:
    """A notification row, written by the `Shipped` handler in the same batch as its cursor."""

    phase: NotePhase = NotePhase.SENT
    text: str = ""


@dataclass(frozen=True, slots=True)
class MarkRead:
    pass


NOTE = Machine("note", initial=Note(), transitions=[Transition(NotePhase.SENT, MarkRead, NotePhase.READ)],
               inputs=(MarkRead,), effects=())


def shop_catalog() -> Catalog:
    return Catalog({"order": ORDER, "payment": PAYMENT, "note": NOTE})
