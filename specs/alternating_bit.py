"""AlternatingBit: the alternating bit protocol, ported from tlaplus/Examples, specifications/SpecifyingSystems/TLC.

Lamport's model from *Specifying Systems*, ch. 14 (``AlternatingBit.tla``,
``ABCorrectness.tla``, ``MCAlternatingBit.tla``). A sender passes values from
``Data`` to a receiver over a lossy FIFO channel ``msgQ``, each tagged with a
bit; the receiver acknowledges the last bit it saw over a lossy channel
``ackQ``. The sender sends a new value only once the ack carries the bit of
the last one, and resends until then; either channel may lose any message.

TLA+ to the table
-----------------
* The seven variables are `Link`'s fields (``msg_q``, ``ack_q``, ``s_bit``,
  ``s_ack``, ``r_bit``, ``sent``, ``rcvd``); data values are ``"d1"``, ``"d2"``...
  The phase never changes.
* ``ABInit`` -- empty queues, the three bits equal, any ``sent`` and ``rcvd``
  -- is ``init=``: ``2 * |Data|^2`` states (8) at depth 1.
* Each action is a row. The ``\\E d \\in Data`` of ``SndNewValue(d)`` is the
  input's field; so is the position ``\\E i \\in 1..Len(q)`` of ``Lose`` (0-based
  here), offered for the positions the queue has: the input domain is a
  function of the state, exactly TLA+'s existential.
* ``CONSTRAINT SeqConstraint`` (both queues at most 2 long) is
  ``Spec(constraint=...)``: a successor with a longer queue is generated
  (counted in ``pruned``) but not explored. ``SndAck`` stays enabled at a full
  ``ackQ`` for fairness, as in TLC.
* ``ABFairness`` -- ``WF(ReSndMsg)``, ``WF(SndAck)``, ``SF(RcvMsg)``,
  ``SF(RcvAck)`` -- is four conditions, one per input type. Strong fairness is
  what it takes: losses make receiving enabled only now and then.
* ``SentLeadsToRcvd == \\A d : (sent = d /\\ sBit # sAck) ~> (rcvd = d)`` is one
  ``leads_to`` per value, ``sent_leads_to_rcvd_d1``...
* ``ABCSpec`` (the high-level spec of ``ABCorrectness`` over ``sBit``, ``sAck``,
  ``rBit``, ``sent`` and ``rcvd``) is checked as three properties. Its initial
  states are ours projected; ``abc_next`` says every step is an ``ABCNext``
  step or leaves the five unchanged. Given that, ``CRcvMsg`` is enabled exactly
  when ``rBit # sBit`` and nothing but ``CRcvMsg`` can disable it (likewise
  ``CRcvAck`` with ``rBit # sAck``), so ``WF(CRcvMsg)`` and ``WF(CRcvAck)`` are
  the leads-to properties ``abc_rcv_msg`` and ``abc_rcv_ack``.

TLC 2.20 (MCAlternatingBit, Data = {d1, d2}, queues <= 2): 240 distinct
states, depth 10, no error; "8 distinct initial states". TLC's 1,392 "states
generated" are the 8 initial states and 1,384 steps, including those into
states the constraint cuts; statewright's ``generated`` counts the same 1,384.

Seeded bugs (TLC's mutants): ``rcv_fair=weak`` weakens ``SF(RcvMsg)`` to
``WF(RcvMsg)``: a behaviour that loses every copy of the message before the
receiver takes it is then fair, and ``sent_leads_to_rcvd_*`` and
``abc_rcv_msg`` fail with a lasso that loops. ``fair=false`` drops
``ABFairness``: every leads-to fails by stuttering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from statewright.kernel.checker import Fair, Property, Spec, always, always_step, leads_to, strong_fair, weak_fair
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.specs.registry import REGISTRY

__all__ = [
    "ALTERNATING_BIT",
    "Link",
    "LoseAck",
    "LoseMsg",
    "RcvAck",
    "RcvMsg",
    "ReSndMsg",
    "SndAck",
    "SndNewValue",
    "Strength",
    "abc_step",
    "alternating_bit",
    "initial_links",
]


class Protocol(Enum):
    """The protocol has no lifecycle: one phase, all data."""

    RUNNING = "running"


class Strength(Enum):
    """How fair receiving a message is (the ``rcv_fair`` knob)."""

    WEAK = "weak"
    STRONG = "strong"


@dataclass(frozen=True, slots=True)
class Link:
    phase: Protocol = Protocol.RUNNING
    msg_q: tuple[tuple[int, str], ...] = ()
    ack_q: tuple[int, ...] = ()
    s_bit: int = 0
    s_ack: int = 0
    r_bit: int = 0
    sent: str = "d1"
    rcvd: str = "d1"


@dataclass(frozen=True, slots=True)
class SndNewValue:
    """The sender sends the new value ``data`` with a flipped bit."""

    data: str


@dataclass(frozen=True, slots=True)
class ReSndMsg:
    """The sender sends its current value again."""


@dataclass(frozen=True, slots=True)
class RcvMsg:
    """The receiver takes the first message."""


@dataclass(frozen=True, slots=True)
class SndAck:
    """The receiver acknowledges the last bit it took."""


@dataclass(frozen=True, slots=True)
class RcvAck:
    """The sender takes the first ack."""


@dataclass(frozen=True, slots=True)
class LoseMsg:
    """The channel loses the message at ``position`` (0-based)."""

    position: int


@dataclass(frozen=True, slots=True)
class LoseAck:
    """The channel loses the ack at ``position`` (0-based)."""

    position: int


def _without(queue: tuple[Any, ...], i: int) -> tuple[Any, ...]:
    return queue[:i] + queue[i + 1 :]


def _snd_new_value(s: Link, i: SndNewValue) -> Link:
    bit = 1 - s.s_bit
    return replace(s, sent=i.data, s_bit=bit, msg_q=(*s.msg_q, (bit, i.data)))


def _rcv_msg(s: Link, _: RcvMsg) -> Link:
    (bit, data), *rest = s.msg_q
    return replace(s, msg_q=tuple(rest), r_bit=bit, rcvd=data)


def _rcv_ack(s: Link, _: RcvAck) -> Link:
    return replace(s, ack_q=s.ack_q[1:], s_ack=s.ack_q[0])


R = Protocol.RUNNING
ALTERNATING_BIT = Machine(
    "alternating_bit",
    initial=Link(),
    transitions=[
        Transition(R, SndNewValue, R, guard=Guard("acked", lambda s, _: s.s_ack == s.s_bit), update=_snd_new_value),
        Transition(R, ReSndMsg, R, guard=Guard("unacked", lambda s, _: s.s_ack != s.s_bit),
                   update=lambda s, _: replace(s, msg_q=(*s.msg_q, (s.s_bit, s.sent)))),
        Transition(R, RcvMsg, R, guard=Guard("message_waiting", lambda s, _: bool(s.msg_q)), update=_rcv_msg),
        Transition(R, SndAck, R, update=lambda s, _: replace(s, ack_q=(*s.ack_q, s.r_bit))),
        Transition(R, RcvAck, R, guard=Guard("ack_waiting", lambda s, _: bool(s.ack_q)), update=_rcv_ack),
        Transition(R, LoseMsg, R, guard=Guard("message_there", lambda s, i: i.position < len(s.msg_q)),
                   update=lambda s, i: replace(s, msg_q=_without(s.msg_q, i.position))),
        Transition(R, LoseAck, R, guard=Guard("ack_there", lambda s, i: i.position < len(s.ack_q)),
                   update=lambda s, i: replace(s, ack_q=_without(s.ack_q, i.position))),
    ],
    doc="The alternating bit protocol over two lossy FIFO channels.",
)


def initial_links(data: Sequence[str]) -> list[Link]:
    """TLA+'s ``ABInit``: empty queues, all bits equal, any value sent and received.

    >>> len(initial_links(("d1", "d2")))
    8
    """
    return [Link(s_bit=b, s_ack=b, r_bit=b, sent=d, rcvd=r) for b in (0, 1) for d in data for r in data]


def abc_step(s: Link, t: Link) -> bool:
    """Whether ``s -> t`` is an ``ABCNext`` step of ``ABCorrectness`` or leaves its variables unchanged."""
    if (t.s_bit, t.s_ack, t.r_bit, t.sent, t.rcvd) == (s.s_bit, s.s_ack, s.r_bit, s.sent, s.rcvd):
        return True
    new_value = (s.s_ack == s.s_bit and t.s_bit == 1 - s.s_bit
                 and (t.s_ack, t.r_bit, t.rcvd) == (s.s_ack, s.r_bit, s.rcvd))
    rcv_msg = (s.r_bit != s.s_bit and (t.r_bit, t.rcvd) == (s.s_bit, s.sent)
               and (t.s_bit, t.s_ack, t.sent) == (s.s_bit, s.s_ack, s.sent))
    rcv_ack = (s.r_bit != s.s_ack and t.s_ack == s.r_bit
               and (t.s_bit, t.r_bit, t.sent, t.rcvd) == (s.s_bit, s.r_bit, s.sent, s.rcvd))
    return new_value or rcv_msg or rcv_ack


def _inputs(data: Sequence[str]) -> Callable[[Link], list[Any]]:
    fixed = [*(SndNewValue(d) for d in data), ReSndMsg(), RcvMsg(), SndAck(), RcvAck()]

    def enabled_for(s: Link) -> list[Any]:
        return [*fixed, *(LoseMsg(i) for i in range(len(s.msg_q))), *(LoseAck(i) for i in range(len(s.ack_q)))]

    return enabled_for


def _properties(data: Sequence[str]) -> list[Property]:
    def sent_leads_to_rcvd(d: str) -> Property:
        return leads_to(f"sent_leads_to_rcvd_{d}", lambda s: s.sent == d and s.s_bit != s.s_ack,
                        lambda s: s.rcvd == d)

    def type_inv(s: Link) -> bool:
        bits = {0, 1}
        return ({s.s_bit, s.s_ack, s.r_bit} <= bits and {s.sent, s.rcvd} <= set(data)
                and all(b in bits and d in data for b, d in s.msg_q) and set(s.ack_q) <= bits)

    return [
        always("type_inv", type_inv),
        *(sent_leads_to_rcvd(d) for d in data),
        always_step("abc_next", lambda s, _, t: abc_step(s, t)),
        leads_to("abc_rcv_msg", lambda s: s.r_bit != s.s_bit, lambda s: s.r_bit == s.s_bit),
        leads_to("abc_rcv_ack", lambda s: s.r_bit != s.s_ack, lambda s: s.r_bit == s.s_ack),
    ]


def _fairness(fair: bool, rcv_fair: Strength) -> list[Fair]:
    if not fair:
        return []
    rcv_msg = strong_fair(RcvMsg) if rcv_fair is Strength.STRONG else weak_fair(RcvMsg)
    return [weak_fair(ReSndMsg), weak_fair(SndAck), rcv_msg, strong_fair(RcvAck)]


@REGISTRY.spec
def alternating_bit(data: int = 2, msg_q_len: int = 2, ack_q_len: int = 2, fair: bool = True,
                    rcv_fair: Strength = Strength.STRONG) -> Spec:
    """The alternating bit protocol (TLA+ MCAlternatingBit); rcv_fair=weak or fair=false break its liveness."""
    values = tuple(f"d{k}" for k in range(1, data + 1))
    properties = _properties(values)
    broken: list[str] = []
    if not fair or rcv_fair is Strength.WEAK:
        broken = [p.name for p in properties if p.name.startswith("sent_leads_to_rcvd_")] + ["abc_rcv_msg"]
    if not fair:
        broken.append("abc_rcv_ack")
    return Spec(
        "alternating_bit",
        ALTERNATING_BIT,
        inputs=_inputs(values),
        properties=properties,
        init=initial_links(values),
        constraint=lambda s: len(s.msg_q) <= msg_q_len and len(s.ack_q) <= ack_q_len,
        fairness=_fairness(fair, rcv_fair),
        expect=broken,
        doc=__doc__ or "",
    )
