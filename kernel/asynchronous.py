"""`Asynchronous`: a `System` whose routes are delivered later, as the dispatcher delivers them.

`kernel.system` settles a route inside the step that emitted its effect: the
routed input is taken at once, and a refusal rejects the whole step. That
holds only for instances stored under one key. Across keys the shell commits
first and dispatches afterwards (``DISPATCH.md``, the sources'
``PreserveCommittedDslState``): a routed effect becomes a *message in flight*,
delivered by a later step, and a target that refuses it leaves a record and
does not roll the source back. `Asynchronous` turns a system into one machine
whose state holds exactly that, so the checker proves a system's properties
under commit-then-dispatch.

Theory of operation
-------------------
The state is an `InFlight`: every instance's state (a view of the system,
``s.instances.order``), the messages in flight, and the deliveries refused so
far, in the order they were refused. Two kinds of step, each one row per
instance so that fairness can name them (`Asynchronous.delivery_rows`):

* ``Action(instance, input)`` -- the instance takes its own input (its system
  guards judged on the current view); its row's effects are committed with it,
  and each effect a `Route` routes becomes a `Message` appended in flight;
* ``Deliver(source, target, input)`` -- one deliverable message is taken out of
  flight and fed to its target alone. Accepted: the target moves and its own
  routed effects join the flight. Refused: a `Refusal` is recorded; nothing
  else changes. System guards do not gate deliveries: the target's store
  knows only the target.

Which messages are deliverable is the `Order`: ``SOURCE`` (the dispatcher's:
each source's messages in emission order, different sources independently),
``CHANNEL`` (FIFO per source-target pair) or ``BAG`` (any message). The
messages are kept in a canonical order (grouped by source, by channel, or
sorted) so that states differing only in an order the delivery cannot see are
one state. Effects no route names are committed and otherwise ignored here (a
handler's business). A branching row (``choose``) of an instance branches
here too.

>>> from enum import Enum
>>> from statewright.kernel.machine import Machine, Transition
>>> from statewright.kernel.step import step
>>> from statewright.kernel.system import Route
>>> class P(Enum):
...     IDLE = 0
...     ON = 1
>>> class Go: pass
>>> class Went: pass
>>> m = Machine("m", initial=P.IDLE, terminal={P.ON}, transitions=[Transition(P.IDLE, Go, P.ON, emit=(Went(),))])
>>> relay = Route(Went, lambda e, source: ("b", Go()) if source == "a" else None)
>>> pair = Asynchronous(System("pair", {"a": m, "b": m}, routes=[relay]))
>>> s = pair.initial
>>> s = step(pair.machine, s, Action("a", Go())).state
>>> s.instances.b, [(m.source, m.target) for m in s.messages]
(<P.IDLE: 0>, [('a', 'b')])
>>> s = step(pair.machine, s, *pair.deliveries(s)).state
>>> s.instances.b, s.messages, s.refused
(<P.ON: 1>, (), ())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from statewright.kernel.boundary import FAILURES, raised
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.step import Rejected
from statewright.kernel.system import (
    Action,
    Emitted,
    Fired,
    System,
    SystemState,
    guard_not_bool,
    guard_raised,
    route_targets,
)

__all__ = ["Asynchronous", "Deliver", "Flow", "InFlight", "Message", "Order", "Refusal"]


class Order(Enum):
    """Which messages in flight may be delivered next."""

    SOURCE = "source"
    """Each source's messages in the order it emitted them; sources independently (the dispatcher's order)."""
    CHANNEL = "channel"
    """FIFO per (source, target) channel."""
    BAG = "bag"
    """Any message in flight, in any order."""


class Flow(Enum):
    """The composition has no lifecycle of its own: one phase, all data."""

    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class Message:
    """An input routed from ``source`` to ``target``, committed with its source and not yet delivered."""

    source: str
    target: str
    input: Any


@dataclass(frozen=True, slots=True)
class Refusal:
    """A delivery the target rejected: recorded, never rolled back into the source."""

    source: str
    target: str
    input: Any


@dataclass(frozen=True, slots=True)
class Deliver:
    """Take the message ``source -> target`` carrying ``input`` out of flight and feed it to ``target``."""

    source: str
    target: str
    input: Any


@dataclass(frozen=True, slots=True)
class InFlight:
    """The asynchronous composition's state: the instances, the messages in flight, the refusals so far."""

    instances: SystemState
    messages: tuple[Message, ...] = ()
    refused: tuple[Refusal, ...] = ()
    phase: Flow = Flow.RUNNING


REFUSED = None
"""The alternative a delivery row takes when its target rejects the input."""

Domain = Sequence[Any] | Callable[[Any], Any]


@dataclass(frozen=True, slots=True, eq=False)
class Asynchronous:
    """``system`` with its routes delivered later, in ``order``: a `Machine` of `InFlight` states.

    ``machine`` is what a `Spec` checks; ``inputs(domains)`` its input domain
    (each instance's own inputs as `Action` s, then every deliverable message
    as a `Deliver`); ``settled`` a ``final`` for the spec (every instance
    terminal, nothing in flight); ``delivery_rows`` the rows to declare fair
    (``[weak_fair(r) for r in rows]``: the dispatcher of each source keeps
    going) and ``action_rows`` each instance's own.
    """

    system: System[Any]
    order: Order = Order.SOURCE
    name: str = ""

    machine: Machine[InFlight] = field(init=False)
    action_rows: dict[str, Transition[InFlight, Action]] = field(init=False)
    delivery_rows: dict[str, Transition[InFlight, Deliver]] = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.system, System):
            raise DefinitionError(f"Asynchronous needs a System, got {self.system!r}")
        if not isinstance(self.order, Order):
            raise DefinitionError(f"order must be an Order, got {self.order!r}")
        acts: dict[str, Transition[InFlight, Action]] = {}
        delivers: dict[str, Transition[InFlight, Deliver]] = {}
        r = Flow.RUNNING
        for n in self.system.names:
            acts[n] = Transition(r, Action, r, guard=Guard(f"by_{n}", _named(n)), choose=self._acting,
                                 update=self._acted, emit=self._emitted)
            delivers[n] = Transition(r, Deliver, r, guard=Guard(f"from_{n}", self._deliverable_from(n)),
                                     choose=self._delivering, update=self._delivered, emit=self._emitted)
        object.__setattr__(self, "action_rows", acts)
        object.__setattr__(self, "delivery_rows", delivers)
        object.__setattr__(self, "machine", Machine(
            self.name or f"{self.system.name}_async",
            initial=InFlight(self.system.initial),
            transitions=[*acts.values(), *delivers.values()],
            doc=f"{self.system.name} with its routes delivered asynchronously ({self.order.value} order)",
        ))

    @property
    def initial(self) -> InFlight:
        """The system's initial instances, nothing in flight."""
        return self.machine.initial

    def state(self, instances: Sequence[Any] | Mapping[str, Any], messages: Sequence[Message] = (),
              refused: Sequence[Refusal] = ()) -> InFlight:
        """An `InFlight` from instance states (in instance order, or by name; others initial) and messages."""
        if isinstance(instances, Mapping):
            view = self.system.initial.replace(**instances)
        else:
            view = self.system.make(instances)
        return InFlight(view, self._canonical(tuple(messages)), tuple(refused))

    def deliveries(self, s: InFlight) -> list[Deliver]:
        """The deliveries ``s`` allows, in a deterministic order (each deliverable message once)."""
        return [Deliver(m.source, m.target, m.input) for m in self._heads(s.messages)]

    def inputs(self, domains: Mapping[str, Domain]) -> Callable[[InFlight], list[Any]]:
        """The spec's input domain: ``domains`` maps an instance to its own inputs (as in a system spec).

        An instance left out takes only delivered inputs. A domain may be a
        function of the instance's own state.
        """
        unknown = set(domains) - set(self.system.names)
        if unknown:
            raise DefinitionError(f"asynchronous {self.machine.name!r}: inputs for unknown instances {sorted(unknown)}")
        pairs = [(n, self.system.position[n], d) for n, d in domains.items()]

        def enabled(s: InFlight) -> list[Any]:
            out: list[Any] = []
            for n, k, d in pairs:
                if callable(d):
                    try:
                        own = d(s.instances[k])
                    except FAILURES as exc:
                        raised(exc, d, f"asynchronous {self.machine.name!r}, input domain of {n!r}", state=s)
                else:
                    own = d
                out.extend(Action(n, x) for x in own)
            out.extend(self.deliveries(s))
            return out

        return enabled

    def settled(self, s: InFlight) -> bool:
        """Every instance terminal and nothing in flight: a state that may stop (a spec's ``final``)."""
        return not s.messages and self.system.is_terminal(s.instances)

    # -- the rows' callables ---------------------------------------------------------------

    def _acting(self, s: InFlight, i: Action) -> tuple[Fired[Any], ...]:
        k = self.system.position[i.instance]
        for g in self.system.guards_by_input.get(type(i.input), ()):
            try:
                allowed = g.test(s.instances, k, i.input)
            except FAILURES as exc:
                guard_raised(exc, self.system, g, s.instances, k, i.input)
            if allowed is not True and allowed is not False:
                guard_not_bool(allowed, self.system, g, s.instances, k, i.input)
            if not allowed:
                return ()
        out = self.system.branch_local(k, s.instances[k], i.input)
        return () if isinstance(out, Rejected) else out

    def _acted(self, s: InFlight, i: Action, fired: Fired[Any]) -> InFlight:
        return self._moved(s, s.messages, i.instance, fired)

    def _deliverable_from(self, source: str) -> Callable[[InFlight, Deliver], bool]:
        def deliverable(s: InFlight, i: Deliver) -> bool:
            return i.source == source and Message(i.source, i.target, i.input) in self._heads(s.messages)

        return deliverable

    def _delivering(self, s: InFlight, i: Deliver) -> tuple[Any, ...]:
        k = self.system.position[i.target]
        out = self.system.branch_local(k, s.instances[k], i.input)
        return (REFUSED,) if isinstance(out, Rejected) else out

    def _delivered(self, s: InFlight, i: Deliver, fired: Fired[Any] | None) -> InFlight:
        rest = list(s.messages)
        rest.remove(Message(i.source, i.target, i.input))
        if fired is REFUSED:
            return replace(s, messages=tuple(rest), refused=(*s.refused, Refusal(i.source, i.target, i.input)))
        return self._moved(s, tuple(rest), i.target, fired)

    def _emitted(self, s: InFlight, i: Action | Deliver, fired: Fired[Any] | None) -> tuple[Emitted, ...]:
        if fired is REFUSED:
            return ()
        who = i.instance if isinstance(i, Action) else i.target
        return tuple(Emitted(who, e) for e in fired.effects)

    # -- messages --------------------------------------------------------------------------

    def _moved(self, s: InFlight, messages: tuple[Message, ...], who: str, fired: Fired[Any]) -> InFlight:
        """``who`` took its input as ``fired``: its new state, and its routed effects in flight."""
        k = self.system.position[who]
        items = list(s.instances)
        items[k] = fired.after
        sent = [*messages, *self._routed(who, fired.effects, s)]
        return InFlight(self.system.make(items), self._canonical(tuple(sent)), s.refused)

    def _routed(self, source: str, effects: tuple[Any, ...], s: InFlight) -> list[Message]:
        out: list[Message] = []
        for eff in effects:
            route = self.system.routes_by_effect.get(type(eff))
            if route is None:
                continue
            try:
                to = route.to(eff, source)
            except FAILURES as exc:
                raised(exc, route.to, f"system {self.system.name!r}, route of {type(eff).__name__}", state=s, input=eff)
            for target, routed in route_targets(to):
                if target not in self.system.position:
                    raise DefinitionError(f"system {self.system.name!r}: route for {type(eff).__name__} "
                                          f"names unknown instance {target!r}")
                out.append(Message(source, target, routed))
        return out

    def _canonical(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        at = self.system.position
        if self.order is Order.SOURCE:
            return tuple(sorted(messages, key=lambda m: at[m.source]))
        if self.order is Order.CHANNEL:
            return tuple(sorted(messages, key=lambda m: (at[m.source], at[m.target])))
        return tuple(sorted(messages, key=lambda m: (at[m.source], at[m.target], repr(m.input))))

    def _heads(self, messages: tuple[Message, ...]) -> list[Message]:
        """The deliverable messages, each once, in canonical order."""
        if self.order is Order.BAG:
            return list(dict.fromkeys(messages))
        seen: dict[Any, Message] = {}
        for m in messages:
            seen.setdefault(m.source if self.order is Order.SOURCE else (m.source, m.target), m)
        return list(seen.values())


def _named(instance: str) -> Callable[[InFlight, Action], bool]:
    def by(s: InFlight, i: Action) -> bool:
        return i.instance == instance

    return by


