"""EWD840: Dijkstra's termination detection on a ring, ported from tlaplus/Examples, specifications/ewd840.

``n`` nodes 0..n-1 on a ring, each active or passive and white or black, and
a token (white or black) that node 0 sends round the ring, n-1 down to 0. An
active node may send a message to any other node, activating it, and may go
passive at any time. A node that sent a message to a higher-numbered node
turns black; the token passes a node once that node is passive (or black, or
the token is already black), taking on its blackness, and the node turns white.
When the token comes back to a passive, white node 0 still white, every node
is passive: termination is detected.

TLA+ to the table
-----------------
* ``active`` and ``color`` (functions on nodes) are `Ring`'s tuples, ``tpos``
  and ``tcolor`` its ``token_at`` and ``token``; the phase never changes.
* ``Init`` -- any ``active``, any ``color``, any ``tpos``, a black token -- is
  ``init=``: ``2^n * 2^n * n`` states (192 for n=3, 1,024 for n=4) at depth 1.
* ``InitiateProbe``, ``PassToken(i)``, ``SendMsg(i)`` and ``Deactivate(i)`` are
  one row each; the node in ``\\E i`` is a field of the input, and the
  receiver in SendMsg's ``\\E j`` is the row's choice: ``choose=`` offers every
  other node and each is explored as its own successor.
* ``WF_vars(System)`` -- one weak-fairness condition over *all* token moves,
  not one per node -- is ``weak_fair(InitiateProbe, PassToken)``.
* Invariants ``TypeOK``, ``TerminationDetection`` and ``Inv``; the liveness
  ``Liveness == terminated ~> terminationDetected`` is ``leads_to``.
  ``TDSpec`` (a refinement of ``SyncTerminationDetection``) is not ported.
* The cfg turns deadlock checking off. A state without successors is one where
  termination is detected and the token has nowhere to go; here it is
  declared ``final`` instead, so the check also proves there is no other.

TLC 2.20 (EWD840.cfg, N=4): 1,566 distinct states, depth 12; N=3: 302,
depth 9; no error. (The tlaplus/Examples manifest gives depth 10 for the N=3
model, which neither TLC 2.20 nor an independent BFS reproduces.) TLC's "states
generated" (15,986; 2,001) counts the initial states and one successor per true
disjunct of PassToken's and InitiateProbe's enabling conditions; statewright
counts one per step: 14,962 - 1,024 = 13,938 and 1,817 - 192 = 1,625.

Seeded bugs, each breaking ``liveness`` (as TLC finds): ``fair=false`` drops
the fairness (``EWD840NoFair``: the token may stop anywhere), ``whiten=false``
makes InitiateProbe leave node 0's colour alone (``EWD840NoWhiten``: a black
node 0 makes every round inconclusive, forever).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from itertools import product
from typing import Any

from statewright.kernel.checker import Spec, always, leads_to, weak_fair
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.specs.registry import REGISTRY

__all__ = [
    "Color",
    "Deactivate",
    "InitiateProbe",
    "PassToken",
    "Ring",
    "SendMsg",
    "ewd840",
    "ewd840_machine",
    "initial_rings",
    "receivers",
    "terminated",
    "termination_detected",
]


class Detecting(Enum):
    """The ring has no lifecycle: one phase, all data."""

    RUNNING = "running"


class Color(Enum):
    WHITE = "white"
    BLACK = "black"


W, B = Color.WHITE, Color.BLACK


@dataclass(frozen=True, slots=True)
class Ring:
    phase: Detecting = Detecting.RUNNING
    active: tuple[bool, ...] = (False, False)
    color: tuple[Color, ...] = (W, W)
    token_at: int = 0
    token: Color = B


@dataclass(frozen=True, slots=True)
class InitiateProbe:
    """Node 0 sends a fresh white token to node n-1."""


@dataclass(frozen=True, slots=True)
class PassToken:
    """Node ``node`` (not 0) passes the token on to ``node - 1``."""

    node: int


@dataclass(frozen=True, slots=True)
class SendMsg:
    """Active node ``sender`` activates some other node (the row chooses which)."""

    sender: int


@dataclass(frozen=True, slots=True)
class Deactivate:
    """Node ``node`` goes passive."""

    node: int


def terminated(s: Ring) -> bool:
    return not any(s.active)


def termination_detected(s: Ring) -> bool:
    return s.token_at == 0 and s.token is W and s.color[0] is W and not s.active[0]


def _set(values: tuple[Any, ...], i: int, value: Any) -> tuple[Any, ...]:
    return values[:i] + (value,) + values[i + 1 :]


def _initiate(whiten: bool) -> Callable[[Ring, InitiateProbe], Ring]:
    def initiate_probe(s: Ring, _: InitiateProbe) -> Ring:
        color = _set(s.color, 0, W) if whiten else s.color
        return replace(s, token_at=len(s.active) - 1, token=W, color=color)

    return initiate_probe


def _pass_token(s: Ring, i: PassToken) -> Ring:
    token = B if s.color[i.node] is B else s.token
    return replace(s, token_at=i.node - 1, token=token, color=_set(s.color, i.node, W))


def receivers(s: Ring, i: SendMsg) -> tuple[int, ...]:
    """SendMsg's ``\\E j \\in Node \\ {i}``: every node but the sender."""
    return tuple(j for j in range(len(s.active)) if j != i.sender)


def _send(s: Ring, i: SendMsg, receiver: int) -> Ring:
    color = _set(s.color, i.sender, B) if receiver > i.sender else s.color
    return replace(s, active=_set(s.active, receiver, True), color=color)


def ewd840_machine(n: int, whiten: bool = True) -> Machine[Ring]:
    """The table of a ring of ``n`` nodes, starting all active and white with the token at node 0.

    ``whiten=False`` is the seeded bug: InitiateProbe keeps node 0's colour.
    """
    run = Detecting.RUNNING
    return Machine(
        "ewd840",
        initial=Ring(active=(True,) * n, color=(W,) * n),
        transitions=[
            Transition(run, InitiateProbe, run,
                       guard=Guard("token_home_round_inconclusive",
                                   lambda s, _: s.token_at == 0 and (s.token is B or s.color[0] is B)),
                       update=_initiate(whiten)),
            Transition(run, PassToken, run,
                       guard=Guard("token_here_may_pass", lambda s, i: s.token_at == i.node and (
                           not s.active[i.node] or s.color[i.node] is B or s.token is B)),
                       update=_pass_token),
            Transition(run, SendMsg, run, guard=Guard("sender_active", lambda s, i: s.active[i.sender]),
                       choose=receivers, update=_send),
            Transition(run, Deactivate, run, guard=Guard("node_active", lambda s, i: s.active[i.node]),
                       update=lambda s, i: replace(s, active=_set(s.active, i.node, False))),
        ],
        doc="Dijkstra's EWD 840 termination detection on a ring.",
    )


def initial_rings(n: int) -> list[Ring]:
    """TLA+'s ``Init``: any activity, any colours, the black token anywhere.

    >>> len(initial_rings(3)), len(initial_rings(4))
    (192, 1024)
    """
    return [Ring(active=a, color=c, token_at=t, token=B)
            for a in product((False, True), repeat=n) for c in product((W, B), repeat=n) for t in range(n)]


def _inputs(n: int) -> list[Any]:
    return [InitiateProbe(), *(PassToken(i) for i in range(1, n)),
            *(SendMsg(i) for i in range(n)), *(Deactivate(i) for i in range(n))]


def _inv(s: Ring) -> bool:
    """Dijkstra's invariant: no active node beyond the token, or a black node up to it, or a black token."""
    p0 = not any(s.active[i] for i in range(s.token_at + 1, len(s.active)))
    p1 = any(s.color[j] is B for j in range(s.token_at + 1))
    return p0 or p1 or s.token is B


@REGISTRY.spec
def ewd840(n: int = 4, fair: bool = True, whiten: bool = True) -> Spec:
    """Dijkstra's ring termination detection (TLA+ EWD840); fair=false or whiten=false break liveness."""
    return Spec(
        "ewd840",
        ewd840_machine(n, whiten),
        inputs=_inputs(n),
        properties=[
            always("type_ok", lambda s: len(s.active) == len(s.color) == n and 0 <= s.token_at < n),
            always("termination_detection", lambda s: not termination_detected(s) or terminated(s)),
            always("inv", _inv),
            leads_to("liveness", terminated, termination_detected),
        ],
        init=initial_rings(n),
        fairness=[weak_fair(InitiateProbe, PassToken)] if fair else [],
        final=lambda s: termination_detected(s) and terminated(s),
        expect=[] if fair and whiten else ["liveness"],
        doc=__doc__ or "",
    )
