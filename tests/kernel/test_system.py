"""`System`: named instances, system guards and atomic routing of effects."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import pytest

from statewright.kernel import (
    Accepted,
    Action,
    Blocked,
    DefinitionError,
    Emitted,
    Machine,
    Reason,
    Rejected,
    Route,
    System,
    SystemGuard,
    Transition,
)


class Q(Enum):
    IDLE = "idle"
    BUSY = "busy"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Worker:
    phase: Q = Q.IDLE
    jobs: int = 0


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Finish:
    pass


@dataclass(frozen=True, slots=True)
class Assign:
    to: str


@dataclass(frozen=True, slots=True)
class Assigned:
    to: str


WORKER = Machine("worker", initial=Worker(), terminal={Q.DONE}, transitions=[
    Transition(Q.IDLE, Start, Q.BUSY, update=lambda s, i: replace(s, jobs=min(s.jobs + 1, 2))),
    Transition(Q.BUSY, Finish, Q.IDLE),
    Transition(Q.IDLE, Assign, Q.DONE),
])


class D(Enum):
    READY = "ready"


DISPATCH = Machine("dispatcher", initial=D.READY, transitions=[
    Transition(D.READY, Assign, D.READY, emit=lambda s, i: (Assigned(i.to),)),
])


def system(**kw: object) -> System[object]:
    return System("shop", {"boss": DISPATCH, "a": WORKER, "b": WORKER},
                  routes=[Route(Assigned, lambda e, src: (e.to, Start()))], **kw)  # type: ignore[arg-type]


def test_views_have_named_and_positional_access() -> None:
    s = system()
    v = s.initial
    assert v.a == Worker() and v[0] is D.READY and s.names == ("boss", "a", "b")
    assert repr(v) == "ShopState(boss=<D.READY: 'ready'>, a=Worker(phase=<Q.IDLE: 'idle'>, jobs=0), b=Worker(phase=<Q.IDLE: 'idle'>, jobs=0))"
    assert v.replace(b=Worker(Q.BUSY)).b.phase is Q.BUSY


def test_routed_effects_move_the_target_in_the_same_step() -> None:
    s = system()
    out = s.step(s.initial, Action("boss", Assign("b")))
    assert isinstance(out, Accepted)
    assert out.state.b == Worker(Q.BUSY, 1) and out.state.a == Worker()
    assert out.effects == (Emitted("boss", Assigned("b")),)


def test_a_rejected_routed_input_rejects_the_whole_step() -> None:
    s = system()
    busy = s.initial.replace(b=Worker(Q.BUSY, 1))
    out = s.step(busy, Action("boss", Assign("b")))
    assert isinstance(out, Blocked) and out.routed and out.instance == "b"
    assert isinstance(out.why, Rejected) and out.why.reason is Reason.NO_TRANSITION
    assert out.message == "b: routed can't take Start in BUSY: no transition"


def test_system_guards_see_the_state_before_the_step() -> None:
    def one_busy_at_most(view: object, me: int, event: object) -> bool:
        return all(w.phase is not Q.BUSY for w in view[1:])  # type: ignore[index]

    s = system(guards=[SystemGuard("one_busy_at_most", Start, one_busy_at_most)])
    first = s.step(s.initial, Action("a", Start()))
    assert isinstance(first, Accepted)
    second = s.step(first.state, Action("b", Start()))
    assert isinstance(second, Blocked) and second.why == "one_busy_at_most"
    assert second.message == "b: can't take Start: system guard one_busy_at_most failed"


def test_definition_errors() -> None:
    with pytest.raises(DefinitionError, match="instance name 'count' must be an identifier"):
        System("s", {"count": WORKER})
    with pytest.raises(DefinitionError, match="gates 'int', which no instance takes"):
        System("s", {"a": WORKER}, guards=[SystemGuard("g", int, lambda v, m, i: True)])
    with pytest.raises(DefinitionError, match="two routes for effect Assigned"):
        System("s", {"a": WORKER}, routes=[Route(Assigned, lambda e, s: None)] * 2)
    with pytest.raises(DefinitionError, match="initial state given for unknown instances"):
        System("s", {"a": WORKER}, initial_states={"z": Worker()})
    loop = System("loop", {"boss": DISPATCH}, routes=[Route(Assigned, lambda e, s: ("boss", Assign("x")))])
    with pytest.raises(DefinitionError, match="routing did not settle after 64 hops"):
        loop.step(loop.initial, Action("boss", Assign("x")))
    lost = System("lost", {"boss": DISPATCH}, routes=[Route(Assigned, lambda e, s: ("nobody", Start()))])
    with pytest.raises(DefinitionError, match="names unknown instance 'nobody'"):
        lost.step(lost.initial, Action("boss", Assign("x")))
