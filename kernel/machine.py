"""A machine is data: a state, closed input/effect unions and one transition table.

Theory of operation
-------------------
Every lifecycle is a *phase* (a member of one `Enum`) plus whatever data the
state carries. The transition table says, for each source phase and input
type, which target phase the input leads to, under which named guards, how the
data changes and which effects are emitted. Nothing else moves a machine:
`kernel.step.step`, the checker, the diagrams and the generated test suites all
read this one table.

Rules the declaration enforces (each broken rule raises `DefinitionError`
naming the machine and the table entry):

* every source and target phase is a member of the phase enum;
* a transition out of a terminal phase must opt out explicitly
  (``from_terminal=True``) -- terminal precedence is the default;
* guards are callables with a name (a ``def``, or ``Guard(name, fn)`` for a
  lambda) so a rejection can say which guard failed;
* no two entries share source phase, input type and guards;
* every phase is reachable from the initial phase through the table;
* when the input/effect unions are declared, the table uses only their members
  and every declared input is handled somewhere.

The phase is the table's business: an ``update`` changes the data, and the
kernel then stamps the target phase onto the result, so an update can never
send a machine somewhere the table does not say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from enum import Enum
from operator import attrgetter
from typing import Any, Generic

from typing_extensions import TypeVar

from statewright.kernel.boundary import FAILURES, raised
from statewright.kernel.errors import DefinitionError

__all__ = ["Guard", "Machine", "Transition"]

# Defaults (PEP 696) keep a bare ``Transition`` or ``Guard[State]`` valid under mypy --strict.
S = TypeVar("S", bound=Hashable, default=Any)
"""The machine's state type."""
I = TypeVar("I", default=Any)
"""The input type a guard takes."""
I_co = TypeVar("I_co", default=Any, covariant=True)
"""The input type a row takes. Covariant, so rows for different inputs share one list
type; sound because the kernel calls a row's callables only with its own ``input``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Guard(Generic[S, I]):
    """A named, pure predicate over ``(state, input)``.

    Use it to name a lambda; a plain ``def`` is named by its ``__name__``.

    >>> idle = Guard("idle", lambda state, event: state.busy is False)
    >>> idle.name
    'idle'
    """

    name: str
    test: Callable[[S, I], bool]

    def __call__(self, state: S, event: I) -> bool:
        return self.test(state, event)


@dataclasses.dataclass(frozen=True, slots=True)
class Transition(Generic[S, I_co]):
    """One row of a transition table, typed by the state ``S`` and input ``I`` it works on.

    ``source`` is a phase or a collection of phases; ``input`` the input type
    that triggers it (matched by exact type); ``target`` the phase it leads to.
    ``guard`` is one named predicate or a sequence of them (all must hold).
    ``update(state, input)`` returns the new data (the kernel sets the phase);
    ``emit`` is either a tuple of effects or ``emit(new_state, input)``
    returning one. ``from_terminal=True`` lets a terminal phase take this input.

    ``choose(state, input)`` makes the row a declared choice (TLA+'s existential):
    it returns the alternatives, the checker explores each as its own
    successor, and ``update``/``emit`` take the picked one as a third argument.
    A choice that offers nothing disables the row, like a failing guard named
    after the ``choose`` function. At run time `step` takes the first
    alternative unless the caller passes ``choice=``.
    Inside a ``Machine[S]`` every row's guards and updates are checked by mypy
    against ``S``; a row built on its own is also checked against ``I``.
    """

    source: Any
    input: type[I_co]
    target: Enum
    guard: (
        Callable[[S, I_co], bool] | Guard[S, I_co] | Sequence[Callable[[S, I_co], bool] | Guard[S, I_co]] | None
    ) = None
    update: Callable[[S, I_co], S] | Callable[[S, I_co, Any], S] | None = None
    emit: Callable[[S, I_co], tuple[Any, ...]] | Callable[..., tuple[Any, ...]] | tuple[Any, ...] = ()
    from_terminal: bool = False
    choose: Callable[[S, I_co], Iterable[Any]] | None = None


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A compiled table row for one source phase (internal to the kernel)."""

    index: int
    source: Enum
    input: type
    target: Enum
    guards: tuple[Guard[Any, Any], ...]
    update: Callable[..., Any] | None
    emit: Callable[..., tuple[Any, ...]] | None
    effects: tuple[Any, ...]
    label: str
    choose: Callable[[Any, Any], Iterable[Any]] | None = None
    """The row's declared choice: its alternatives for (state, input); None for a plain row."""


PLAIN: tuple[Any, ...] = (None,)
"""The one alternative of a row that declares no choice."""


class Rows:
    """The rows one phase has for one input type, in table order (internal to the kernel).

    ``firing`` is set when there is one row, plain (no ``choose``) and with at
    most one guard, ``guard`` (None for none): the row fires exactly when that
    guard holds, so the checker tests it inline and takes ``firing`` as the
    enabled rows -- what `kernel.step.enabled_among` would return.
    """

    __slots__ = ("firing", "guard", "rules")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        only = rules[0]
        simple = len(rules) == 1 and only.choose is None and len(only.guards) <= 1
        self.guard: Guard[Any, Any] | None = only.guards[0] if simple and only.guards else None
        self.firing: tuple[tuple[Rule, tuple[Any, ...]], ...] | None = ((only, PLAIN),) if simple else None


def _phase_name(phase: object) -> str:
    return phase.name if isinstance(phase, Enum) else repr(phase)


def transition_label(t: Transition[Any, Any], sources: Sequence[Enum], guards: Sequence[Guard[Any, Any]]) -> str:
    """``QUEUED --Stage[idle]--> STAGED``: how tables, reports and errors name a row."""
    src = "|".join(_phase_name(p) for p in sources)
    guard = f"[{', '.join(g.name for g in guards)}]" if guards else ""
    return f"{src} --{t.input.__name__}{guard}--> {_phase_name(t.target)}"


def _stamper(state: Any, machine: str) -> Callable[[Any, Enum], Any]:
    """Build the function that writes a phase into a state.

    Enum states *are* their phase. A frozen dataclass with a ``phase`` field is
    copied slot by slot (about 2.5x faster than ``dataclasses.replace``; the
    copied values came from a valid state, so ``__init__`` is not re-run).
    """
    if isinstance(state, Enum):
        return lambda _state, phase: phase
    if dataclasses.is_dataclass(state) and any(f.name == "phase" for f in dataclasses.fields(state)):
        cls = type(state)
        others = tuple(f.name for f in dataclasses.fields(state) if f.name != "phase")
        new = object.__new__
        put = object.__setattr__

        def stamp(old: Any, phase: Enum) -> Any:
            fresh = new(cls)
            put(fresh, "phase", phase)
            for name in others:
                put(fresh, name, getattr(old, name))
            return fresh

        return stamp
    raise DefinitionError(
        f"machine {machine!r}: cannot set the phase of {type(state).__name__}; "
        "use an Enum state, a dataclass with a 'phase' field, or pass with_phase="
    )


def _guards(raw: Any, where: str) -> tuple[Guard[Any, Any], ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, (list, tuple)) else (raw,)
    out: list[Guard[Any, Any]] = []
    for g in items:
        if isinstance(g, Guard):
            if not callable(g.test):
                raise DefinitionError(f"{where}: guard {g.name!r} is not callable")
            out.append(g)
            continue
        if not callable(g):
            raise DefinitionError(f"{where}: guard {g!r} is not a callable")
        name = getattr(g, "__name__", "")
        if not name or name == "<lambda>":
            raise DefinitionError(
                f"{where}: guard is an anonymous lambda; name it with Guard('name', fn) or a def"
            )
        out.append(Guard(name, g))
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Machine(Generic[S]):
    """A lifecycle declared as data, validated when it is declared.

    >>> from enum import Enum
    >>> class Light(Enum):
    ...     OFF = "off"
    ...     ON = "on"
    >>> class Flip: pass
    >>> toggle = Machine(
    ...     "toggle",
    ...     initial=Light.OFF,
    ...     transitions=[Transition(Light.OFF, Flip, Light.ON),
    ...                  Transition(Light.ON, Flip, Light.OFF)],
    ... )
    >>> toggle.phases
    (<Light.OFF: 'off'>, <Light.ON: 'on'>)
    """

    name: str
    initial: S
    transitions: Sequence[Transition[S, Any]]
    terminal: Collection[Enum] = ()
    phase: Callable[[S], Enum] | None = None
    with_phase: Callable[[S, Enum], S] | None = None
    inputs: Sequence[type] | None = None
    effects: Sequence[type] | None = None
    doc: str = ""

    state_type: type[S] = dataclasses.field(init=False)
    phase_type: type[Enum] = dataclasses.field(init=False)
    phase_of: Callable[[S], Enum] = dataclasses.field(init=False)
    stamp: Callable[[S, Enum], S] = dataclasses.field(init=False)
    terminal_phases: frozenset[Enum] = dataclasses.field(init=False)
    rules: tuple[Rule, ...] = dataclasses.field(init=False)
    index: dict[tuple[Enum, type], tuple[Rule, ...]] = dataclasses.field(init=False)
    rows: dict[Enum, dict[type, Rows]] = dataclasses.field(init=False)
    """``index`` by phase, then input type: a state's rows are found once, then each input's by its type."""
    labels: tuple[str, ...] = dataclasses.field(init=False)
    input_types: tuple[type, ...] = dataclasses.field(init=False)
    effect_types: tuple[type, ...] | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.name, str) or not self.name:
            raise DefinitionError(f"a machine needs a non-empty name, got {self.name!r}")
        me = f"machine {self.name!r}"

        phase_of = self.phase
        if phase_of is None:
            if isinstance(self.initial, Enum):
                phase_of = _identity
            elif hasattr(self.initial, "phase"):
                phase_of = attrgetter("phase")
            else:
                raise DefinitionError(
                    f"{me}: the initial state has no 'phase'; pass phase=<projection>"
                )
        elif not callable(phase_of):
            raise DefinitionError(f"{me}: phase must be a callable, got {phase_of!r}")
        try:
            first = phase_of(self.initial)
        except FAILURES as exc:
            raised(exc, phase_of, "phase of the initial state", machine=self.name, state=self.initial)
        if not isinstance(first, Enum):
            raise DefinitionError(f"{me}: the phase of the initial state is {first!r}, not an Enum member")
        ptype = type(first)

        def check_phase(p: Any, where: str) -> Enum:
            if not isinstance(p, ptype):
                raise DefinitionError(f"{me}: {where}: unknown phase {p!r} (not a {ptype.__name__})")
            return p

        terminal = frozenset(check_phase(p, "terminal") for p in self.terminal)
        if self.with_phase is not None and not callable(self.with_phase):
            raise DefinitionError(f"{me}: with_phase must be a callable")
        stamp = self.with_phase or _stamper(self.initial, self.name)

        declared_inputs = tuple(self.inputs) if self.inputs is not None else None
        declared_effects = tuple(self.effects) if self.effects is not None else None

        if isinstance(self.transitions, (str, bytes)) or not isinstance(self.transitions, Iterable):
            raise DefinitionError(f"{me}: transitions must be a sequence of Transition")
        table = tuple(self.transitions)
        if not table:
            raise DefinitionError(f"{me}: the transition table is empty")

        rules: list[Rule] = []
        labels: list[str] = []
        seen: dict[tuple[Enum, type, tuple[str, ...]], int] = {}
        edges: dict[Enum, set[Enum]] = {}
        used_inputs: list[type] = []
        for i, t in enumerate(table):
            if not isinstance(t, Transition):
                raise DefinitionError(f"{me}: table entry #{i} is {t!r}, not a Transition")
            where = f"{me}, transition #{i}"
            raw_src = t.source
            sources = (raw_src,) if isinstance(raw_src, Enum) else tuple(raw_src)
            if not sources:
                raise DefinitionError(f"{where}: no source phase")
            sources = tuple(check_phase(p, where) for p in sources)
            target = check_phase(t.target, where)
            if not isinstance(t.input, type):
                raise DefinitionError(f"{where}: input must be a type, got {t.input!r}")
            guards = _guards(t.guard, where)
            label = transition_label(t, sources, guards)
            where = f"{me}, transition #{i} ({label})"
            if t.update is not None and not callable(t.update):
                raise DefinitionError(f"{where}: update is not a callable")
            if t.choose is not None and not callable(t.choose):
                raise DefinitionError(f"{where}: choose is not a callable")
            emit: Callable[[Any, Any], tuple[Any, ...]] | None = None
            effects: tuple[Any, ...] = ()
            if callable(t.emit):
                emit = t.emit
            elif isinstance(t.emit, (tuple, list)):
                effects = tuple(t.emit)
                if declared_effects is not None:
                    for e in effects:
                        if type(e) not in declared_effects:
                            raise DefinitionError(
                                f"{where}: emits {type(e).__name__}, not in the machine's effects"
                            )
            else:
                raise DefinitionError(f"{where}: emit must be a tuple of effects or a callable")
            if declared_inputs is not None and t.input not in declared_inputs:
                raise DefinitionError(f"{where}: input {t.input.__name__} is not in the machine's inputs")
            for p in sources:
                if p in terminal and not t.from_terminal:
                    raise DefinitionError(
                        f"{where}: leaves terminal phase {p.name} without from_terminal=True"
                    )
                key = (p, t.input, tuple(g.name for g in guards))
                if key in seen:
                    raise DefinitionError(
                        f"{where}: duplicates transition #{seen[key]} "
                        f"(same phase {p.name}, input and guards)"
                    )
                seen[key] = i
                edges.setdefault(p, set()).add(target)
                rules.append(Rule(i, p, t.input, target, guards, t.update, emit, effects, label, t.choose))
            labels.append(label)
            if t.input not in used_inputs:
                used_inputs.append(t.input)

        reached = {first}
        todo = [first]
        while todo:
            for q in edges.get(todo.pop(), ()):
                if q not in reached:
                    reached.add(q)
                    todo.append(q)
        missing = [p.name for p in ptype if p not in reached]
        if missing:
            raise DefinitionError(
                f"{me}: phases unreachable from {first.name} in the table: {', '.join(missing)}"
            )
        if declared_inputs is not None:
            idle = [t.__name__ for t in declared_inputs if t not in used_inputs]
            if idle:
                raise DefinitionError(f"{me}: declared inputs no transition takes: {', '.join(idle)}")

        index: dict[tuple[Enum, type], list[Rule]] = {}
        for r in rules:
            index.setdefault((r.source, r.input), []).append(r)

        put(self, "state_type", type(self.initial))
        put(self, "phase_type", ptype)
        put(self, "phase_of", phase_of)
        put(self, "stamp", stamp)
        put(self, "terminal_phases", terminal)
        put(self, "rules", tuple(rules))
        put(self, "index", {k: tuple(v) for k, v in index.items()})
        rows_of: dict[Enum, dict[type, Rows]] = {p: {} for p in ptype}
        for (p, kind), found in self.index.items():
            rows_of[p][kind] = Rows(found)
        put(self, "rows", rows_of)
        put(self, "labels", tuple(labels))
        put(self, "input_types", declared_inputs or tuple(used_inputs))
        put(self, "effect_types", declared_effects)

    @property
    def phases(self) -> tuple[Enum, ...]:
        """Every phase of the machine, in declaration order."""
        return tuple(self.phase_type)

    def is_terminal(self, state: S) -> bool:
        """Whether ``state`` is in a terminal phase."""
        return self.phase_of(state) in self.terminal_phases

    def __repr__(self) -> str:
        return f"Machine({self.name!r}, {len(self.labels)} transitions)"


def _identity(value: Any) -> Any:
    return value
