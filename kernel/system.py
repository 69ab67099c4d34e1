"""`System`: named machine instances that move as one model.

A system's state is a tuple-like *view* of its instances' states, with one
attribute per instance name (``view.tm``, ``view.r1``) and plain tuple access
(``view[0]``, iteration, slicing). An *action* feeds one input to one instance.
Two things make a system more than its parts:

* system guards -- ``SystemGuard(name, InputType, test(view, me, input))`` -- gate an
  input type on the whole system (``me`` is the acting instance's position),
  e.g. "stage only while no other input is staged";
* routes -- ``Route(EffectType, to(effect, source_name))`` -- turn an effect of
  one instance into an input of another *inside the same atomic step*. If any
  routed input is rejected, the whole action is rejected and nothing changes.

Every guard of an atomic step, routed ones included, sees the state from
before the step, as the unprimed variables of a TLA+ action do.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Generic, NamedTuple, NoReturn, TypeVar

from statewright.kernel.boundary import FAILURES, not_bool, raised
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine
from statewright.kernel.step import Accepted, Rejected, outcomes, step

__all__ = [
    "Action", "Blocked", "Emitted", "Route", "System", "SystemGuard", "SystemState", "guard_raised", "route_targets",
    "settle", "settlements",
]

MAX_HOPS = 64
"""Routed inputs one action may cause before the routing is declared a loop."""

L = TypeVar("L")


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """Feed ``input`` to the instance called ``instance``."""

    instance: str
    input: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Emitted:
    """An effect together with the instance that emitted it."""

    instance: str
    effect: Any


@dataclasses.dataclass(frozen=True, slots=True)
class SystemGuard:
    """A named predicate ``test(view, me, input)`` gating ``input`` types for every instance.

    ``view`` is the system state before the step and ``me`` the position of
    the instance about to take ``input``.
    """

    name: str
    input: type | tuple[type, ...]
    test: Callable[[Any, int, Any], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Deliver effects of type ``effect`` as inputs: ``to(effect, source) -> (instance, input)``.

    ``to`` may also return ``None`` (not routed) or a list of pairs.
    """

    effect: type
    to: Callable[[Any, str], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Blocked:
    """An action the system refused; ``why`` is the local rejection or the failed system guard."""

    instance: str
    input: Any
    why: Rejected | str
    routed: bool = False

    @property
    def message(self) -> str:
        where = f"{self.instance}: " + ("routed " if self.routed else "")
        if isinstance(self.why, str):
            return f"{where}can't take {type(self.input).__name__}: system guard {self.why} failed"
        return where + self.why.message


class SystemState(tuple[Any, ...]):
    """Base of every system's view type: a tuple of instance states with named access."""

    __slots__ = ()
    names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={s!r}" for n, s in zip(self.names, self))
        return f"{type(self).__name__}({inner})"

    def replace(self, **states: Any) -> SystemState:
        """A copy with some instances' states replaced by name."""
        items = list(self)
        for name, value in states.items():
            items[self.names.index(name)] = value
        return tuple.__new__(type(self), items)


@dataclasses.dataclass(frozen=True, slots=True)
class Microstep(Generic[L]):
    """One instance taking one input inside an atomic system step (XState's microstep).

    ``before``/``after`` are that instance's local values (states, or the
    checker's interned ids); ``rule`` is the index of the row that fired;
    ``routed`` is False for the acting input and True for inputs delivered
    by a `Route`.
    """

    instance: str
    position: int
    input: Any
    routed: bool
    rule: int
    before: L
    after: L
    effects: tuple[Any, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Settled(Generic[L]):
    """An accepted atomic step: every instance's new local value and the microsteps, in order."""

    after: tuple[L, ...]
    microsteps: tuple[Microstep[L], ...]

    @property
    def emitted(self) -> tuple[Emitted, ...]:
        """Every effect, tagged with the instance that emitted it, in emission order."""
        return tuple(Emitted(m.instance, e) for m in self.microsteps for e in m.effects)

    @property
    def moved(self) -> tuple[int, ...]:
        """Positions of the instances that took an input, in first-move order."""
        return tuple(dict.fromkeys(m.position for m in self.microsteps))


class Fired(NamedTuple, Generic[L]):
    """What a stepper reports for one accepted local input."""

    after: L
    effects: tuple[Any, ...]
    rule: int


Stepper = Callable[[int, L, Any], "Fired[L] | Rejected"]
"""``stepper(position, local, input)``: step one instance (a state, or an interned id)."""

Brancher = Callable[[int, L, Any], "Sequence[Fired[L]] | Rejected"]
"""``brancher(position, local, input)``: every way one instance may take an input (at least one)."""


def settle(
    system: System[Any],
    current: Sequence[L],
    position: int,
    event: Any,
    before: Any,
    stepper: Stepper[L] | None = None,
) -> Settled[L] | Blocked:
    """Run one atomic action: the input, then every routed input it causes.

    This is the one definition of a system step: `System.step`, the checker,
    the hypothesis suites, the driver and the refinement harness all call it
    (or `settlements`, its branching form) and read the returned microsteps
    instead of re-driving the step. ``current`` holds one local value per
    instance; ``stepper`` steps one instance (default: `step` on states).
    Guards see ``before``. Returns the new locals with the microsteps, or the
    first refusal (then nothing is to be changed).
    """
    fire: Stepper[Any] = stepper if stepper is not None else system.step_local

    def single(k: int, local: Any, ev: Any) -> Sequence[Fired[Any]] | Rejected:
        out = fire(k, local, ev)
        return out if isinstance(out, Rejected) else (out,)

    out = settlements(system, current, position, event, before, single)
    return out if isinstance(out, Blocked) else out[0]


def settlements(
    system: System[Any],
    current: Sequence[L],
    position: int,
    event: Any,
    before: Any,
    brancher: Brancher[L],
) -> list[Settled[L]] | Blocked:
    """Every way one atomic action may settle, when instances may take an input in several ways.

    Each alternative ``brancher`` offers (a choosing row, or every enabled
    row of a spec without determinism) continues as its own branch, routed
    inputs included; a branch whose routed input is refused is dropped. The
    accepted branches come in depth-first order, so the first is what `settle`
    returns with the first alternative everywhere. When no branch is accepted
    the first refusal is returned.
    """
    done: list[Settled[L]] = []
    refusal: Blocked | None = None
    branches: list[tuple[list[L], list[Microstep[L]], list[tuple[int, Any, bool]], int]] = [
        (list(current), [], [(position, event, False)], 0)
    ]
    names = system.names
    guards = system.guards_by_input
    while branches:
        work, micro, pending, hops = branches.pop()
        blocked: Blocked | None = None
        while pending:
            k, ev, routed = pending.pop(0)
            for g in guards.get(type(ev), ()):
                try:
                    allowed = g.test(before, k, ev)
                except FAILURES as exc:
                    guard_raised(exc, system, g, before, k, ev)
                if allowed is not True and allowed is not False:
                    guard_not_bool(allowed, system, g, before, k, ev)
                if not allowed:
                    blocked = Blocked(names[k], ev, g.name, routed)
                    break
            if blocked is not None:
                break
            outs = brancher(k, work[k], ev)
            if isinstance(outs, Rejected):
                blocked = Blocked(names[k], ev, outs, routed)
                break
            for out in reversed(outs[1:]):  # later alternatives wait on the stack, in order
                w, m, p = list(work), list(micro), list(pending)
                h = _fired(system, w, m, p, hops, k, ev, routed, out, before)
                branches.append((w, m, p, h))
            hops = _fired(system, work, micro, pending, hops, k, ev, routed, outs[0], before)
        if blocked is not None:
            refusal = refusal or blocked
        else:
            done.append(Settled(tuple(work), tuple(micro)))
    if done:
        return done
    assert refusal is not None
    return refusal


def _fired(
    system: System[Any],
    work: list[L],
    micro: list[Microstep[L]],
    pending: list[tuple[int, Any, bool]],
    hops: int,
    k: int,
    ev: Any,
    routed: bool,
    out: Fired[L],
    before: Any,
) -> int:
    """Record that instance ``k`` took ``ev`` as ``out``, and queue the inputs its effects route."""
    names = system.names
    micro.append(Microstep(names[k], k, ev, routed, out.rule, work[k], out.after, out.effects))
    work[k] = out.after
    routes = system.routes_by_effect
    for eff in out.effects:
        route = routes.get(type(eff))
        if route is None:
            continue
        try:
            to = route.to(eff, names[k])
        except FAILURES as exc:
            raised(exc, route.to, f"system {system.name!r}, route of {type(eff).__name__}",
                   state=before, input=eff)
        for target, routed_input in route_targets(to):
            j = system.position.get(target)
            if j is None:
                raise DefinitionError(
                    f"system {system.name!r}: route for {type(eff).__name__} names unknown instance {target!r}"
                )
            hops += 1
            if hops > MAX_HOPS:
                raise DefinitionError(
                    f"system {system.name!r}: routing did not settle after {MAX_HOPS} hops "
                    f"(last: {type(eff).__name__} -> {target})"
                )
            pending.append((j, routed_input, True))
    return hops


def guard_raised(exc: BaseException, system: System[Any], g: SystemGuard, before: Any, k: int, event: Any) -> NoReturn:
    """Report that system guard ``g`` raised while judging ``event`` for instance ``k``."""
    raised(exc, g.test, f"system {system.name!r}, system guard {g.name!r}",
           state=before, input=Action(system.names[k], event))


def guard_not_bool(value: Any, system: System[Any], g: SystemGuard, before: Any, k: int, event: Any) -> NoReturn:
    """Report that system guard ``g`` returned ``value``, which is not a bool."""
    not_bool(value, g.test, f"system {system.name!r}, system guard {g.name!r}",
             state=before, input=Action(system.names[k], event))


def route_targets(out: Any) -> Sequence[tuple[str, Any]]:
    """A `Route`'s answer as ``(instance, input)`` pairs: None, one pair, or an iterable of pairs.

    The one reading of a route's answer, for `settle`, the level search, the
    asynchronous composition and the shell's dispatcher alike.

    >>> route_targets(None), route_targets(("b", 1)), route_targets([("b", 1), ("c", 2)])
    ((), (('b', 1),), [('b', 1), ('c', 2)])
    """
    if out is None:
        return ()
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], str):
        return (out,)
    return list(out)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class System(Generic[L]):
    """Named machine instances checked and stepped as one model.

    >>> from enum import Enum
    >>> from statewright.kernel.machine import Machine, Transition
    >>> class Lamp(Enum):
    ...     OFF = 0
    ...     ON = 1
    >>> class Flip: pass
    >>> lamp = Machine("lamp", initial=Lamp.OFF, transitions=[
    ...     Transition(Lamp.OFF, Flip, Lamp.ON), Transition(Lamp.ON, Flip, Lamp.OFF)])
    >>> pair = System("pair", {"left": lamp, "right": lamp})
    >>> after = pair.step(pair.initial, Action("right", Flip())).state
    >>> after.right, after.left
    (<Lamp.ON: 1>, <Lamp.OFF: 0>)
    """

    name: str
    instances: Mapping[str, Machine[Any]]
    guards: Sequence[SystemGuard] = ()
    routes: Sequence[Route] = ()
    initial_states: Mapping[str, Any] | None = None
    doc: str = ""

    names: tuple[str, ...] = dataclasses.field(init=False)
    machines: tuple[Machine[Any], ...] = dataclasses.field(init=False)
    position: dict[str, int] = dataclasses.field(init=False)
    view: type[SystemState] = dataclasses.field(init=False)
    initial: SystemState = dataclasses.field(init=False)
    guards_by_input: dict[type, tuple[SystemGuard, ...]] = dataclasses.field(init=False)
    routes_by_effect: dict[type, Route] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        me = f"system {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise DefinitionError(f"a system needs a non-empty name, got {self.name!r}")
        if not isinstance(self.instances, Mapping) or not self.instances:
            raise DefinitionError(f"{me}: instances must be a non-empty mapping of name -> Machine")
        names = tuple(self.instances)
        for n in names:
            if not isinstance(n, str) or not n.isidentifier() or keyword.iskeyword(n) or hasattr(tuple, n):
                raise DefinitionError(f"{me}: instance name {n!r} must be an identifier usable as an attribute")
            if n in ("names", "replace"):
                raise DefinitionError(f"{me}: instance name {n!r} is reserved")
            if not isinstance(self.instances[n], Machine):
                raise DefinitionError(f"{me}: instance {n!r} is {self.instances[n]!r}, not a Machine")
        machines = tuple(self.instances[n] for n in names)
        accepted: set[type] = set()
        for m in machines:
            accepted.update(m.input_types)

        by_input: dict[type, list[SystemGuard]] = {}
        for g in self.guards:
            if not isinstance(g, SystemGuard):
                raise DefinitionError(f"{me}: guard {g!r} is not a SystemGuard")
            if not callable(g.test):
                raise DefinitionError(f"{me}: system guard {g.name!r} is not callable")
            for t in g.input if isinstance(g.input, tuple) else (g.input,):
                if t not in accepted:
                    raise DefinitionError(
                        f"{me}: system guard {g.name!r} gates {getattr(t, '__name__', t)!r}, "
                        "which no instance takes"
                    )
                by_input.setdefault(t, []).append(g)
        by_effect: dict[type, Route] = {}
        for r in self.routes:
            if not isinstance(r, Route) or not callable(r.to):
                raise DefinitionError(f"{me}: {r!r} is not a Route with a callable 'to'")
            if r.effect in by_effect:
                raise DefinitionError(f"{me}: two routes for effect {r.effect.__name__}")
            by_effect[r.effect] = r

        attrs: dict[str, Any] = {n: property(itemgetter(i)) for i, n in enumerate(names)}
        attrs["__slots__"] = ()
        attrs["names"] = names
        view = type(f"{_camel(self.name)}State", (SystemState,), attrs)
        overrides = dict(self.initial_states or {})
        unknown = set(overrides) - set(names)
        if unknown:
            raise DefinitionError(f"{me}: initial state given for unknown instances {sorted(unknown)}")
        initial: SystemState = tuple.__new__(view, [overrides.get(n, m.initial) for n, m in zip(names, machines)])

        put(self, "names", names)
        put(self, "machines", machines)
        put(self, "position", {n: i for i, n in enumerate(names)})
        put(self, "view", view)
        put(self, "initial", initial)
        put(self, "guards_by_input", {t: tuple(gs) for t, gs in by_input.items()})
        put(self, "routes_by_effect", by_effect)

    def make(self, states: Sequence[Any]) -> SystemState:
        """Build a view from per-instance states in instance order."""
        return tuple.__new__(self.view, states)

    def is_terminal(self, state: Sequence[Any]) -> bool:
        """Whether every instance is in a terminal phase."""
        return all(m.is_terminal(s) for m, s in zip(self.machines, state))

    def step_local(self, position: int, state: Any, event: Any) -> Fired[Any] | Rejected:
        """Step one instance's own state with `step` (the default stepper of `settle`)."""
        out = step(self.machines[position], state, event)
        if isinstance(out, Rejected):
            return out
        return Fired(out.state, out.effects, out.transition)

    def branch_local(self, position: int, state: Any, event: Any, *, every_row: bool = False) -> tuple[Fired[Any], ...] | Rejected:
        """Every way one instance's own state may take ``event`` (`kernel.step.outcomes`): a brancher for `settlements`."""
        out = outcomes(self.machines[position], state, event, every_row=every_row)
        if isinstance(out, Rejected):
            return out
        return tuple(Fired(o.state, o.effects, o.transition) for o in out)

    def settle(self, state: SystemState, action: Action) -> Settled[Any] | Blocked:
        """Apply one action atomically and say what happened inside: the microsteps.

        >>> from enum import Enum
        >>> from statewright.kernel.machine import Machine, Transition
        >>> class Lamp(Enum):
        ...     OFF = 0
        ...     ON = 1
        >>> class Flip: pass
        >>> lamp = Machine("lamp", initial=Lamp.OFF, transitions=[
        ...     Transition(Lamp.OFF, Flip, Lamp.ON), Transition(Lamp.ON, Flip, Lamp.OFF)])
        >>> done = System("pair", {"left": lamp, "right": lamp}).settle(
        ...     System("pair", {"left": lamp, "right": lamp}).initial, Action("left", Flip()))
        >>> [(m.instance, m.routed, m.before, m.after) for m in done.microsteps]
        [('left', False, <Lamp.OFF: 0>, <Lamp.ON: 1>)]
        """
        k = self.position.get(action.instance)
        if k is None:
            raise KeyError(f"system {self.name!r} has no instance {action.instance!r}")
        return settle(self, state, k, action.input, state)

    def step(self, state: SystemState, action: Action) -> Accepted[SystemState] | Blocked:
        """Apply one action atomically (routed inputs included).

        The returned `Accepted` carries the `Emitted` effects of every instance
        that moved and the row that fired in the acting instance.
        """
        out = self.settle(state, action)
        if isinstance(out, Blocked):
            return out
        return Accepted(self.make(out.after), out.emitted, out.microsteps[0].rule)

    def __repr__(self) -> str:
        return f"System({self.name!r}, {len(self.names)} instances)"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "System"
