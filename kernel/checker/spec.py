"""The model a check explores: `Spec`, and the deprecated `Bounds`.

A spec names a model (a `Machine` or a `System`), the finite inputs to try,
the initial states, the constraints that keep the model finite, the
properties that must hold and the fairness they are judged under, and the
symmetry its instances have. *How* to search it -- cut-offs, workers,
switching symmetry on -- is not part of the spec: those are the options of
`check` (`kernel.checker.options`). Properties are values built with the
constructors of `kernel.checker.properties`.

Input domains: for a machine, a sequence of inputs or ``fn(state) -> inputs``;
for a system, a mapping from instance name to such a sequence or function of
that instance's own state (instances left out only receive routed inputs).
Domains that depend only on the instance's own state let the checker memoise
every local transition, which is what makes it fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from statewright.kernel.checker.fairness import Fair, resolve
from statewright.kernel.checker.properties import BUILTIN, Property
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine
from statewright.kernel.system import System

__all__ = ["Bounds", "Spec"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """Deprecated: the search cut-offs are `check`'s options and the constraints are `Spec` fields.

    ``Spec(bounds=Bounds(max_depth=..., constraint=...))`` still works for one
    release (with a DeprecationWarning): the constraints move to the spec, the
    cut-offs become the defaults of each check of it. What the fields meant:

    ``max_depth`` counts BFS levels (the initial states are level 1, as in
    TLC); ``max_states`` stops once at least that many distinct states are
    known; ``time_limit`` is in seconds and needs the checker to be given a
    clock. These three cut the search short and make the report BOUNDED.

    ``constraint`` and ``action_constraint`` are now `Spec` fields.
    """

    max_depth: int | None = None
    max_states: int | None = None
    constraint: Callable[[Any], bool] | None = None
    time_limit: float | None = None
    action_constraint: Callable[[Any, Any, Any], bool] | None = None


Domain = Sequence[Any] | Callable[[Any], Any]


@dataclass(frozen=True, slots=True, eq=False)
class Spec:
    """A bounded model and the properties it must satisfy.

    ``expect`` names properties the model is *meant* to violate (a puzzle's
    solution, a faithful model of buggy code): finding them is success, and
    not finding them fails the check. Given as a mapping from name to the
    length of the shortest trace (in states), it also pins each finding: a
    violation by a shorter or longer shortest trace fails the check too.

    ``init`` gives several initial states (for a system: system states, as
    views, sequences of instance states, or mappings from instance name to
    state, instances left out starting at their machine's initial state);
    every one is at depth 1, as in TLC. By default the model's initial state
    is the only one.

    ``constraint(state)`` and ``action_constraint(before, action, after)``
    keep an infinite model finite, as TLC's CONSTRAINT and ACTION_CONSTRAINT
    do: a successor that violates one is generated (and its invariants are
    checked, as TLC does) but not added to the state set, not expanded and not
    counted in the depth; it still counts as a successor, so its parent is no
    deadlock, and it still enables its action for fairness. The verdict stays
    OK or VIOLATED; the report counts the pruned successors.

    ``fairness`` lists `weak_fair`/`strong_fair` conditions under which the
    temporal properties (`eventually`, `leads_to`, `always_eventually`,
    `eventually_always`) are judged. ``terminates=True`` adds the built-in
    ``terminates``: under weak fairness of each instance's own rows, every
    behaviour reaches a final state (every instance terminal, or ``final``).
    ``recoverable=True`` adds ``recoverable``: from every reachable state a
    home state -- ``home(state)``, by default a final one -- is still
    reachable.

    ``symmetry`` declares groups of interchangeable instances of a system
    (``[("r1", "r2", "r3")]``): instances of one machine with the same inputs,
    which no guard, route, property or initial state tells apart. Declaring
    it changes nothing by itself; ``check(spec, symmetry=True)`` (``check
    --symmetry``) then explores one state per permutation class, as TLC's
    SYMMETRY does (see `kernel.checker.space.Symmetry`). Where instance states
    name other instances (a coordinator's set of participants, messages
    carrying a sender), ``relabel(view, renaming)`` returns the view with
    those names rewritten by ``renaming`` (old name -> new name); the kernel
    moves the instances' own states itself.
    """

    name: str
    model: Machine[Any] | System[Any]
    inputs: Domain | Mapping[str, Domain]
    properties: Sequence[Property] = ()
    _: KW_ONLY
    init: Iterable[Any] | None = None
    constraint: Callable[[Any], bool] | None = None
    action_constraint: Callable[[Any, Any, Any], bool] | None = None
    fairness: Sequence[Fair] = ()
    symmetry: Sequence[Sequence[str]] = ()
    relabel: Callable[[Any, Mapping[str, str]], Any] | None = None
    expect: Collection[str] | Mapping[str, int] = ()
    deadlock: bool = True
    determinism: bool = True
    terminal_precedence: bool = True
    terminates: bool = False
    recoverable: bool = False
    home: Callable[[Any], bool] | None = None
    final: Callable[[Any], bool] | None = None
    doc: str = ""
    bounds: Bounds | None = None
    """Deprecated (see `Bounds`): the constraints it holds move to the spec's own fields."""

    def __post_init__(self) -> None:
        me = f"spec {self.name!r}"
        if self.bounds is not None:
            self._from_bounds(me)
        if not isinstance(self.name, str) or not self.name:
            raise DefinitionError(f"a spec needs a non-empty name, got {self.name!r}")
        if not isinstance(self.model, (Machine, System)):
            raise DefinitionError(f"{me}: model must be a Machine or a System, got {self.model!r}")
        names: list[str] = []
        for p in self.properties:
            if not isinstance(p, Property):
                raise DefinitionError(f"{me}: {p!r} is not a property (use always/sometimes/always_step/eventually...)")
            if not callable(p.test):
                raise DefinitionError(f"{me}: property {p.name!r} has no callable test")
            if p.name in BUILTIN:
                raise DefinitionError(f"{me}: property name {p.name!r} is the built-in property's; choose another")
            if p.name in names:
                raise DefinitionError(f"{me}: property name {p.name!r} is used twice")
            names.append(p.name)
        for e in self.expect:
            if isinstance(self.expect, Mapping):
                length = self.expect[e]
                if not isinstance(length, int) or length < 1:
                    raise DefinitionError(f"{me}: expected trace length of {e!r} must be a positive int, got {length!r}")
            if e not in names and e not in BUILTIN:
                raise DefinitionError(
                    f"{me}: expects a violation of unknown property {e!r} (known: {', '.join(names + list(BUILTIN))})"
                )
        if isinstance(self.model, System):
            if not isinstance(self.inputs, Mapping):
                raise DefinitionError(f"{me}: a system's inputs must map instance names to domains")
            unknown = set(self.inputs) - set(self.model.names)
            if unknown:
                raise DefinitionError(f"{me}: inputs given for unknown instances {sorted(unknown)}")
            for n, d in self.inputs.items():
                _check_domain(d, f"{me}, instance {n!r}")
        else:
            _check_domain(self.inputs, me)
        resolve(self.name, self.model, self.fairness)  # a target that matches nothing fails here, not after a search
        if self.init is not None:
            states = tuple(self.init)
            if not states:
                raise DefinitionError(f"{me}: init must give at least one initial state")
            object.__setattr__(self, "init", states)
        if self.symmetry:
            object.__setattr__(self, "symmetry", _symmetry(self, me))
        if self.relabel is not None and (not callable(self.relabel) or not self.symmetry):
            raise DefinitionError(f"{me}: relabel must be a callable, and needs a declared symmetry")
        for label in ("constraint", "action_constraint", "final", "home"):
            fn = getattr(self, label)
            if fn is not None and not callable(fn):
                raise DefinitionError(f"{me}: {label} must be a callable, got {fn!r}")

    def _from_bounds(self, me: str) -> None:
        """The deprecated ``bounds=``: constraints become the spec's; cut-offs stay there as the checks' defaults."""
        b = self.bounds
        if not isinstance(b, Bounds):
            raise DefinitionError(f"{me}: bounds must be a Bounds, got {b!r}")
        warnings.warn("Spec(bounds=Bounds(...)) is deprecated: give constraint= and action_constraint= "
                      "to the Spec and the cut-offs (max_depth, max_states, time_limit) to check()",
                      DeprecationWarning, stacklevel=4)
        for label in ("constraint", "action_constraint"):
            moved = getattr(b, label)
            if moved is not None:
                if getattr(self, label) is not None:
                    raise DefinitionError(f"{me}: {label} is given both to the spec and in its bounds")
                object.__setattr__(self, label, moved)
        for label, v in (("max_depth", b.max_depth), ("max_states", b.max_states)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise DefinitionError(f"{me}: {label} must be a positive int, got {v!r}")
        if b.time_limit is not None and not b.time_limit > 0:
            raise DefinitionError(f"{me}: time_limit must be positive, got {b.time_limit!r}")

    @property
    def checks(self) -> tuple[str, ...]:
        """Names of every property this spec checks, built-ins included."""
        own = tuple(p.name for p in self.properties)
        on = {"deadlock": self.deadlock, "determinism": self.determinism,
              "terminal_precedence": self.terminal_precedence}
        on["terminates"] = self.terminates
        on["recoverable"] = self.recoverable
        return own + tuple(n for n, enabled in on.items() if enabled)

    @property
    def temporal(self) -> bool:
        """Whether checking this spec needs the explored graph (a temporal property or built-in)."""
        return self.terminates or self.recoverable or any(p.kind.temporal for p in self.properties)


def _symmetry(spec: Spec, me: str) -> tuple[tuple[str, ...], ...]:
    """Validate the declared groups of interchangeable instances."""
    model = spec.model
    if not isinstance(model, System):
        raise DefinitionError(f"{me}: symmetry needs a system (it permutes instances)")
    if isinstance(spec.symmetry, (str, bytes)):
        raise DefinitionError(f"{me}: symmetry must be a list of groups of instance names")
    groups: list[tuple[str, ...]] = []
    taken: set[str] = set()
    inputs = spec.inputs if isinstance(spec.inputs, Mapping) else {}
    for raw in spec.symmetry:
        group = (raw,) if isinstance(raw, str) else tuple(raw)
        if len(group) < 2:
            raise DefinitionError(f"{me}: a symmetry group needs at least two instances, got {group!r}")
        for n in group:
            if n not in model.position:
                raise DefinitionError(f"{me}: symmetry names unknown instance {n!r}")
            if n in taken:
                raise DefinitionError(f"{me}: instance {n!r} is in two symmetry groups")
            taken.add(n)
        first = group[0]
        for n in group[1:]:
            if model.instances[n] is not model.instances[first]:
                raise DefinitionError(f"{me}: symmetric instances {first!r} and {n!r} are different machines")
            if inputs.get(n) != inputs.get(first):
                raise DefinitionError(f"{me}: symmetric instances {first!r} and {n!r} take different inputs")
        groups.append(group)
    return tuple(groups)


def _check_domain(d: Any, where: str) -> None:
    if callable(d) and not isinstance(d, type):
        return
    if isinstance(d, (str, bytes, type)) or not isinstance(d, Sequence):
        raise DefinitionError(f"{where}: inputs must be a sequence of inputs or a function of the state")
    for item in d:
        if isinstance(item, type):
            raise DefinitionError(f"{where}: the inputs hold the class {item.__name__}, not an input: write "
                                  f"{item.__name__}(...)")
