"""LamportMutex: Lamport's distributed mutual exclusion, ported from tlaplus/Examples, specifications/lamport_mutex.

``n`` processes share a critical section without shared memory: each keeps a
Lamport clock and a copy of every process's current request, and talks over
FIFO channels. To enter, a process stamps a request with its clock and sends
it to all others; each acknowledges it. A process enters once all have
acknowledged and its own request beats every other it knows of (smaller
clock, ties broken by the lower process number); on leaving it sends a
release. This is the whole system in one record -- as most TLA+ specs are --
so every state is new data for the checker and every step runs the table's
code (the benchmark `tests/benchmarks/bench_monolithic.py` uses it for that).

TLA+ to the table
-----------------
* ``clock``, ``req``, ``ack``, ``network`` and ``crit`` (functions over
  ``Proc``) are `Processes`'s tuples: ``clock[p]``, ``req[p][q]``, ``ack[p]``
  (a frozenset), ``network[p][q]`` (a tuple of `Message`, oldest first) and
  ``crit`` (a frozenset). Processes are numbered from 0 here, from 1 in TLA+;
  the tie-break ``p < q`` is the same order. The phase never changes.
* Each ``\\E p`` (and ``\\E q \\in Proc \\ {p}``) of ``Next`` is a field of the
  input, so each action is one row: `Request`, `Enter`, `Exit`, and
  `ReceiveRequest`, `ReceiveAck`, `ReceiveRelease` (process ``p`` takes the
  head of the channel from ``q``; which one the head's type decides).
* ``CONSTRAINT ClockConstraint`` (every clock at most ``max_clock``) is
  ``Spec(constraint=...)``: a successor with a larger clock is generated
  and judged but neither stored nor expanded, as in TLC. MCLamportMutex's
  ``Nat <- 0..MaxNat`` only makes TLC's ``Message`` set finite for
  ``TypeOK``; ``type_ok`` bounds clocks by ``max_clock + 1``, the largest
  clock a pruned successor can hold (MCLamportMutex.cfg's ``MaxNat = 7`` for
  ``maxClock = 6``; every TLC run below used ``MaxNat = 7``).
* Invariants ``TypeOK``, ``BoundedNetwork`` (no channel holds more than three
  messages) and ``Mutex``. The spec has no fairness and no liveness.

TLC 2.20 on MCLamportMutex.tla (``N = 3``, ``MaxNat = 7``; one worker; no
error in any): ``maxClock = 6`` (MCLamportMutex.cfg): 724,274 distinct
states, depth 61, 2,729,079 states generated (the manifest's figures);
``maxClock = 5``: 270,115, depth 52, 1,033,743 generated (the benchmark);
``maxClock = 4``: 70,472, depth 41, 276,114; ``maxClock = 3``: 10,209,
depth 31, 41,533 (the exact-count test). ``N = 2, maxClock = 6``: 1,043,
depth 40, 2,001. TLC's "generated" counts the one initial state and every
successor, pruned ones included; statewright's ``generated`` counts the
steps only, so it is TLC's figure less one. This port reaches each of these
figures exactly (``maxClock = 3`` and ``N = 2`` are pinned in tests/specs/test_lamport_mutex.py).

Seeded bug: ``tie_break=false`` drops the process number from ``beats``
(two requests with equal clocks each beat the other), and ``mutex`` fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TypeVar

from statewright.kernel.checker import Spec, always
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.specs.registry import REGISTRY

__all__ = [
    "Enter",
    "Exit",
    "Kind",
    "Message",
    "Processes",
    "ReceiveAck",
    "ReceiveRelease",
    "ReceiveRequest",
    "Request",
    "lamport_mutex",
    "lamport_mutex_machine",
]


class Mutexing(Enum):
    """The processes have no lifecycle of their own here: one phase, all data."""

    RUNNING = "running"


class Kind(Enum):
    REQ = "req"
    ACK = "ack"
    REL = "rel"


@dataclass(frozen=True, slots=True)
class Message:
    """TLA+'s ``[type |-> ..., clock |-> ...]``; acknowledgements and releases carry clock 0."""

    kind: Kind
    clock: int = 0


ACK = Message(Kind.ACK)
REL = Message(Kind.REL)

Channels = tuple[tuple[tuple[Message, ...], ...], ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Processes:
    phase: Mutexing = Mutexing.RUNNING
    clock: tuple[int, ...] = (1, 1)
    req: tuple[tuple[int, ...], ...] = ((0, 0), (0, 0))
    ack: tuple[frozenset[int], ...] = (frozenset(), frozenset())
    network: Channels = (((), ()), ((), ()))
    crit: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Request:
    """Process ``p`` stamps a request with its clock and sends it to every other process."""

    p: int


@dataclass(frozen=True, slots=True)
class Enter:
    """Process ``p``, acknowledged by all and beating every request it knows, enters."""

    p: int


@dataclass(frozen=True, slots=True)
class Exit:
    """Process ``p`` leaves the critical section and sends a release to every other process."""

    p: int


@dataclass(frozen=True, slots=True)
class ReceiveRequest:
    """Process ``p`` takes a request from ``q``'s channel, records it, advances its clock and acknowledges."""

    p: int
    q: int


@dataclass(frozen=True, slots=True)
class ReceiveAck:
    """Process ``p`` takes an acknowledgement from ``q``'s channel."""

    p: int
    q: int


@dataclass(frozen=True, slots=True)
class ReceiveRelease:
    """Process ``p`` takes a release from ``q``'s channel and forgets ``q``'s request."""

    p: int
    q: int


def _set(values: tuple[T, ...], i: int, value: T) -> tuple[T, ...]:
    """TLA+'s ``[f EXCEPT ![i] = value]`` on a tuple."""
    return values[:i] + (value,) + values[i + 1 :]


Receive = ReceiveRequest | ReceiveAck | ReceiveRelease


def _head_is(kind: Kind) -> Guard[Processes, Receive]:
    """``network[q][p] # << >> /\\ Head(network[q][p]).type = kind``."""

    def test(s: Processes, i: Receive) -> bool:
        channel = s.network[i.q][i.p]
        return bool(channel) and channel[0].kind is kind

    return Guard(f"head_is_{kind.value}", test)


def _broadcast(network: Channels, sender: int, m: Message) -> Channels:
    """``[network EXCEPT ![s] = Broadcast(s, m)]``: ``m`` appended to each channel from ``sender`` but its own."""
    row = tuple(c if r == sender else c + (m,) for r, c in enumerate(network[sender]))
    return _set(network, sender, row)


def _pop(network: Channels, p: int, q: int) -> Channels:
    """``[network EXCEPT ![q][p] = Tail(@)]``."""
    return _set(network, q, _set(network[q], p, network[q][p][1:]))


def _request(s: Processes, i: Request) -> Processes:
    p, now = i.p, s.clock[i.p]
    return replace(s, req=_set(s.req, p, _set(s.req[p], p, now)), ack=_set(s.ack, p, frozenset({p})),
                   network=_broadcast(s.network, p, Message(Kind.REQ, now)))


def _receive_request(s: Processes, i: ReceiveRequest) -> Processes:
    p, q = i.p, i.q
    c = s.network[q][p][0].clock
    network = _pop(s.network, p, q)
    network = _set(network, p, _set(network[p], q, network[p][q] + (ACK,)))
    return replace(s, req=_set(s.req, p, _set(s.req[p], q, c)), network=network,
                   clock=_set(s.clock, p, c + 1 if c > s.clock[p] else s.clock[p] + 1))


def _receive_ack(s: Processes, i: ReceiveAck) -> Processes:
    return replace(s, ack=_set(s.ack, i.p, s.ack[i.p] | {i.q}), network=_pop(s.network, i.p, i.q))


def _receive_release(s: Processes, i: ReceiveRelease) -> Processes:
    return replace(s, req=_set(s.req, i.p, _set(s.req[i.p], i.q, 0)), network=_pop(s.network, i.p, i.q))


def _exit(s: Processes, i: Exit) -> Processes:
    p = i.p
    return replace(s, crit=s.crit - {p}, network=_broadcast(s.network, p, REL),
                   req=_set(s.req, p, _set(s.req[p], p, 0)), ack=_set(s.ack, p, frozenset()))


def _first(n: int, tie_break: bool) -> Guard[Processes, Enter]:
    """``ack[p] = Proc /\\ \\A q \\in Proc \\ {p} : beats(p, q)``."""
    everyone = frozenset(range(n))

    def acknowledged_and_first(s: Processes, i: Enter) -> bool:
        p = i.p
        if s.ack[p] != everyone:
            return False
        mine = s.req[p]
        own = mine[p]
        return all(q == p or theirs == 0 or own < theirs or (own == theirs and (p < q or not tie_break))
                   for q, theirs in enumerate(mine))

    return Guard("acknowledged_and_first", acknowledged_and_first)


def lamport_mutex_machine(n: int = 3, tie_break: bool = True) -> Machine[Processes]:
    """The table of ``n`` processes, all clocks at 1, no requests, empty channels.

    ``tie_break=False`` is the seeded bug: equal clocks beat each other.
    """
    run = Mutexing.RUNNING
    return Machine(
        "lamport_mutex",
        initial=Processes(clock=(1,) * n, req=((0,) * n,) * n, ack=(frozenset(),) * n,
                          network=(((),) * n,) * n),
        transitions=[
            Transition(run, Request, run, guard=Guard("no_request", lambda s, i: s.req[i.p][i.p] == 0),
                       update=_request),
            Transition(run, Enter, run, guard=_first(n, tie_break),
                       update=lambda s, i: replace(s, crit=s.crit | {i.p})),
            Transition(run, Exit, run, guard=Guard("in_crit", lambda s, i: i.p in s.crit), update=_exit),
            Transition(run, ReceiveRequest, run, guard=_head_is(Kind.REQ), update=_receive_request),
            Transition(run, ReceiveAck, run, guard=_head_is(Kind.ACK), update=_receive_ack),
            Transition(run, ReceiveRelease, run, guard=_head_is(Kind.REL), update=_receive_release),
        ],
        doc="Lamport's distributed mutual exclusion (1978), one record for the whole system.",
    )


def _inputs(n: int) -> list[object]:
    procs = range(n)
    pairs = [(p, q) for p in procs for q in procs if p != q]
    return [*(Request(p) for p in procs), *(Enter(p) for p in procs), *(Exit(p) for p in procs),
            *(ReceiveRequest(p, q) for p, q in pairs), *(ReceiveAck(p, q) for p, q in pairs),
            *(ReceiveRelease(p, q) for p, q in pairs)]


def _type_ok(n: int, max_clock: int) -> Callable[[Processes], bool]:
    procs = frozenset(range(n))
    clocks = range(1, max_clock + 2)
    nats = range(max_clock + 2)

    def type_ok(s: Processes) -> bool:
        """TLA+'s ``TypeOK``, ``Nat`` being ``0..max_clock + 1`` (MCLamportMutex's ``MaxNat``)."""
        if len(s.clock) != n or len(s.req) != n or len(s.ack) != n or len(s.network) != n:
            return False
        if not s.crit <= procs or not all(c in clocks for c in s.clock):
            return False
        for p in range(n):
            if len(s.req[p]) != n or not all(c in nats for c in s.req[p]) or not s.ack[p] <= procs:
                return False
            if len(s.network[p]) != n:
                return False
            for channel in s.network[p]:
                for m in channel:
                    if m.kind is Kind.REQ and m.clock not in clocks:
                        return False
        return True

    return type_ok


@REGISTRY.spec
def lamport_mutex(n: int = 3, max_clock: int = 3, tie_break: bool = True) -> Spec:
    """Lamport's distributed mutual exclusion (TLA+ LamportMutex); tie_break=false breaks mutex."""
    return Spec(
        "lamport_mutex",
        lamport_mutex_machine(n, tie_break),
        inputs=_inputs(n),
        properties=[
            always("type_ok", _type_ok(n, max_clock)),
            always("bounded_network", lambda s: all(len(c) <= 3 for row in s.network for c in row)),
            always("mutex", lambda s: len(s.crit) <= 1),
        ],
        constraint=lambda s: all(c <= max_clock for c in s.clock),
        expect=[] if tie_break else ["mutex"],
        doc=__doc__ or "",
    )
