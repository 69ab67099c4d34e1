"""TwoPhase: Lamport's two-phase commit with three resource managers.

Ported from the prose in MODELS.md as a `System`: a transaction manager
``tm``, resource managers ``r1..r3`` and ``msgs``, the set of messages ever
sent. Sending is an effect routed into ``msgs`` in the same atomic step;
receiving is a system guard that looks into ``msgs``. Deadlock checking is off
because a decided system only stutters. TLC: 288 distinct states, depth 11.

The resource managers are interchangeable: ``symmetry`` declares them, and
``relabel`` renames them where other instances mention them (the TM's set of
prepared RMs, the senders of Prepared messages). With ``check --symmetry``,
TLC's ``SYMMETRY Permutations(RM)`` figures: 80 distinct states for 3 RMs
(1,568 -> 166 for 4), depth unchanged. Seeded bugs: ``all_prepared=false``
lets the TM commit before every RM prepared, ``commit_sent=false`` lets an
RM commit without the TM's Commit message; both break ``consistent``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from collections.abc import Mapping
from typing import Any

from statewright.kernel.checker import Spec, always, sometimes
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.system import Route, System, SystemGuard
from statewright.specs.registry import REGISTRY


class RM(Enum):
    WORKING = "working"
    PREPARED = "prepared"
    COMMITTED = "committed"
    ABORTED = "aborted"


class TMPhase(Enum):
    INIT = "init"
    COMMITTED = "committed"
    ABORTED = "aborted"


class Net(Enum):
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class TM:
    phase: TMPhase = TMPhase.INIT
    prepared: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Msgs:
    phase: Net = Net.OPEN
    sent: frozenset[tuple[str, ...]] = frozenset()


# inputs
@dataclass(frozen=True, slots=True)
class Prepare:
    pass


@dataclass(frozen=True, slots=True)
class ChooseAbort:
    pass


@dataclass(frozen=True, slots=True)
class RcvCommit:
    pass


@dataclass(frozen=True, slots=True)
class RcvAbort:
    pass


@dataclass(frozen=True, slots=True)
class RcvPrepared:
    rm: str


@dataclass(frozen=True, slots=True)
class Commit:
    pass


@dataclass(frozen=True, slots=True)
class Abort:
    pass


@dataclass(frozen=True, slots=True)
class Send:
    message: tuple[str, ...]


# effects
@dataclass(frozen=True, slots=True)
class Prepared:
    """An RM announces it is prepared."""


@dataclass(frozen=True, slots=True)
class Decided:
    """The TM broadcasts its decision, "commit" or "abort"."""

    decision: str


RESOURCE_MANAGER = Machine(
    "resource_manager",
    initial=RM.WORKING,
    terminal={RM.COMMITTED, RM.ABORTED},
    transitions=[
        Transition(RM.WORKING, Prepare, RM.PREPARED, emit=(Prepared(),)),
        Transition(RM.WORKING, ChooseAbort, RM.ABORTED),
        Transition((RM.WORKING, RM.PREPARED), RcvCommit, RM.COMMITTED),
        Transition((RM.WORKING, RM.PREPARED), RcvAbort, RM.ABORTED),
    ],
    effects=(Prepared,),
)

MESSAGES = Machine(
    "messages",
    initial=Msgs(),
    transitions=[Transition(Net.OPEN, Send, Net.OPEN, update=lambda s, i: replace(s, sent=s.sent | {i.message}))],
)


def transaction_manager(rms: tuple[str, ...], all_prepared: bool = True) -> Machine[TM]:
    everyone = frozenset(rms)
    return Machine(
        "transaction_manager",
        initial=TM(),
        terminal={TMPhase.COMMITTED, TMPhase.ABORTED},
        transitions=[
            Transition(TMPhase.INIT, RcvPrepared, TMPhase.INIT,
                       update=lambda s, i: replace(s, prepared=s.prepared | {i.rm})),
            Transition(TMPhase.INIT, Commit, TMPhase.COMMITTED,
                       guard=Guard("all_prepared", lambda s, _: s.prepared == everyone or not all_prepared),
                       emit=(Decided("commit"),)),
            Transition(TMPhase.INIT, Abort, TMPhase.ABORTED, emit=(Decided("abort"),)),
        ],
        effects=(Decided,),
    )


def _sent(view: Any, _me: int, event: Any) -> bool:
    return ("prepared", event.rm) in view.msgs.sent


def _route(effect: Any, source: str) -> tuple[str, Send]:
    if isinstance(effect, Prepared):
        return "msgs", Send(("prepared", source))
    return "msgs", Send((effect.decision,))


def relabel(view: Any, renaming: Mapping[str, str]) -> Any:
    """The RM names inside the TM's and the network's state, renamed (for symmetry reduction)."""
    prepared = frozenset(renaming.get(r, r) for r in view.tm.prepared)
    sent = frozenset((m[0], renaming.get(m[1], m[1])) if len(m) == 2 else m for m in view.msgs.sent)
    return view.replace(tm=replace(view.tm, prepared=prepared), msgs=replace(view.msgs, sent=sent))


@REGISTRY.spec
def two_phase(rms: int = 3, all_prepared: bool = True, commit_sent: bool = True) -> Spec:
    """Two-phase commit with `rms` resource managers; consistent must hold (both knobs off break it)."""
    names = tuple(f"r{k}" for k in range(1, rms + 1))
    system: System[Any] = System(
        "two_phase",
        {"tm": transaction_manager(names, all_prepared), **{n: RESOURCE_MANAGER for n in names}, "msgs": MESSAGES},
        guards=[
            SystemGuard("prepared_received", RcvPrepared, _sent),
            SystemGuard("commit_sent", RcvCommit, lambda v, _me, _i: ("commit",) in v.msgs.sent or not commit_sent),
            SystemGuard("abort_sent", RcvAbort, lambda v, _me, _i: ("abort",) in v.msgs.sent),
        ],
        routes=[Route(Prepared, _route), Route(Decided, _route)],
    )
    rm_inputs = [Prepare(), ChooseAbort(), RcvCommit(), RcvAbort()]

    def rm_states(v: Any) -> list[RM]:
        return [v[system.position[n]] for n in names]

    return Spec(
        "two_phase",
        system,
        inputs={"tm": [*(RcvPrepared(n) for n in names), Commit(), Abort()], **{n: rm_inputs for n in names}},
        properties=[
            always("consistent", lambda v: not (RM.COMMITTED in rm_states(v) and RM.ABORTED in rm_states(v))),
            sometimes("all_committed", lambda v: all(s is RM.COMMITTED for s in rm_states(v))),
            sometimes("all_aborted", lambda v: all(s is RM.ABORTED for s in rm_states(v))),
        ],
        deadlock=False,
        symmetry=[names],
        relabel=relabel,
        doc=__doc__ or "",
    )
