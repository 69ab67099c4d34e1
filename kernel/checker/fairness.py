"""Fairness: which actions a behaviour that keeps them enabled must take, resolved when a spec is declared.

A fairness condition names a set of actions (its *targets*) and says that a
behaviour which keeps them enabled must take them:

* ``weak_fair(*targets)`` -- if continuously enabled from some point on, taken infinitely often (``WF``);
* ``strong_fair(*targets)`` -- if enabled infinitely often, taken infinitely often (``SF``).

A target is an input type (every row taking it, in every instance), a
`Transition` row of a machine (that row, in every instance), an instance
name (all of that instance's rows), or a `Machine` *object*, which expands to
one condition per instance of that very object (like TLC's ``\\A i:
WF_vars(Next(i))``). Machines are matched by identity: another machine that
happens to share the name is another machine. Several targets in one call form
one condition over their union (``WF_vars(A \\/ B)``); a `Machine` target must
stand alone in its call.

`resolve` turns the declarations into `Condition` s -- sets of *action
labels*, one label per (instance position, row): ``base[k] + row`` -- when the
spec is declared, so a target that matches nothing is a `DefinitionError`
before any state is explored. Each condition's name says which instances it
covers: ``WF(a)``, ``SF(Go in a, b)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition
from statewright.kernel.system import System

__all__ = ["Condition", "Fair", "Fairness", "label_bases", "own_rows", "resolve", "strong_fair", "weak_fair"]


class Fairness(Enum):
    """How strongly a fairness condition constrains behaviours."""

    WEAK = "weak"
    """WF: continuously enabled from some point on implies taken infinitely often."""
    STRONG = "strong"
    """SF: enabled infinitely often implies taken infinitely often."""

    @property
    def prefix(self) -> str:
        """``WF`` or ``SF``: how labels write the kind."""
        return "SF" if self is Fairness.STRONG else "WF"


@dataclass(frozen=True, slots=True)
class Condition:
    """A resolved fairness condition: ``kind`` over the actions whose label is in ``labels``."""

    kind: Fairness
    labels: frozenset[int]
    name: str = ""

    @classmethod
    def weak(cls, labels: Iterable[int], name: str = "") -> Condition:
        """WF over ``labels``."""
        return cls(Fairness.WEAK, frozenset(labels), name)

    @classmethod
    def strong(cls, labels: Iterable[int], name: str = "") -> Condition:
        """SF over ``labels``."""
        return cls(Fairness.STRONG, frozenset(labels), name)


@dataclass(frozen=True, slots=True)
class Fair:
    """One fairness declaration: weak or strong, over the union of its targets.

    >>> class Tick: ...
    >>> weak_fair(Tick).label, strong_fair(Tick).kind
    ('WF(Tick)', <Fairness.STRONG: 'strong'>)
    """

    kind: Fairness
    targets: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Fairness):
            raise DefinitionError(f"fairness kind must be Fairness.WEAK or Fairness.STRONG, got {self.kind!r}")
        call = "strong_fair" if self.strong else "weak_fair"
        if not self.targets:
            raise DefinitionError(f"{call}() needs at least one target (an input type, a row, a machine or an instance)")
        for t in self.targets:
            if not isinstance(t, (type, Transition, Machine, str)):
                raise DefinitionError(
                    f"{call}: {t!r} is not a fairness target (an input type, a Transition row, a Machine or an "
                    "instance name)"
                )
        if any(isinstance(t, Machine) for t in self.targets) and len(self.targets) > 1:
            raise DefinitionError(f"{call}: a Machine target stands alone (it means one condition per instance)")

    @property
    def strong(self) -> bool:
        """Whether this is strong fairness."""
        return self.kind is Fairness.STRONG

    @property
    def label(self) -> str:
        """``WF(Stage, r1)``: how the declaration reads (resolved conditions also name instances)."""
        return f"{self.kind.prefix}({', '.join(target_name(t) for t in self.targets)})"


def target_name(target: Any) -> str:
    """``Stage``, ``r1``, ``input`` or, for a row, ``Gossip[gossip_n1_to_n2]``."""
    if isinstance(target, str):
        return target
    if isinstance(target, Transition):
        raw = target.guard if isinstance(target.guard, (list, tuple)) else ([target.guard] if target.guard else [])
        guards = [str(getattr(g, "name", None) or getattr(g, "__name__", "?")) for g in raw]
        return target.input.__name__ + (f"[{', '.join(guards)}]" if guards else " row")
    return str(getattr(target, "name", None) or getattr(target, "__name__", None) or repr(target))


def weak_fair(*targets: Any) -> Fair:
    """Weak fairness over ``targets``: an action kept enabled is eventually taken.

    >>> class Tick: ...
    >>> weak_fair(Tick).label
    'WF(Tick)'
    """
    return Fair(Fairness.WEAK, targets)


def strong_fair(*targets: Any) -> Fair:
    """Strong fairness over ``targets``: an action enabled again and again is eventually taken."""
    return Fair(Fairness.STRONG, targets)


def _instances(model: Machine[Any] | System[Any]) -> tuple[tuple[str, ...], tuple[Machine[Any], ...]]:
    if isinstance(model, System):
        return model.names, model.machines
    return (model.name,), (model,)


def label_bases(model: Machine[Any] | System[Any]) -> list[int]:
    """``base[k]``: the first action label of instance position ``k`` (then one label per row)."""
    bases: list[int] = []
    total = 0
    for m in _instances(model)[1]:
        bases.append(total)
        total += len(m.labels)
    return bases


def resolve(spec: str, model: Machine[Any] | System[Any], fairness: Sequence[Any]) -> tuple[Condition, ...]:
    """The declarations of spec ``spec`` as label sets; a `DefinitionError` for anything that matches nothing."""
    if isinstance(fairness, (str, bytes)) or not isinstance(fairness, Sequence):
        raise DefinitionError(f"spec {spec!r}: fairness must be a list of weak_fair(...)/strong_fair(...)")
    names, machines = _instances(model)
    bases = label_bases(model)
    system = isinstance(model, System)
    out: list[Condition] = []
    for fair in fairness:
        if not isinstance(fair, Fair):
            raise DefinitionError(f"spec {spec!r}: fairness {fair!r} is not weak_fair(...) or strong_fair(...)")
        first = fair.targets[0]
        if isinstance(first, Machine):
            positions = [k for k, m in enumerate(machines) if m is first]
            if not positions:
                raise DefinitionError(
                    f"spec {spec!r}: {fair.label} names machine {first.name!r}, which is not a machine of the model "
                    "(machines are matched by identity, not by name)"
                )
            for k in positions:
                own = frozenset(bases[k] + r for r in range(len(machines[k].labels)))
                out.append(Condition(fair.kind, own, f"{fair.kind.prefix}({names[k]})"))
            continue
        labels: set[int] = set()
        covered: dict[str, None] = {}
        for target in fair.targets:
            found = _labels_of(target, names, machines, bases)
            if not found:
                hint = (" (rows are matched by identity: use the Transition object of the machine's table, e.g. "
                        "machine.transitions[i])" if isinstance(target, Transition) else "")
                raise DefinitionError(f"spec {spec!r}: {fair.label}: {target_name(target)!r} matches no row of any "
                                      f"instance{hint}")
            for k, label in found:
                labels.add(label)
                covered[names[k]] = None
        name = fair.label
        if system and not all(isinstance(t, str) for t in fair.targets):
            name = f"{fair.kind.prefix}({', '.join(target_name(t) for t in fair.targets)} in {', '.join(covered)})"
        out.append(Condition(fair.kind, frozenset(labels), name))
    return tuple(out)


def _labels_of(
    target: Any, names: Sequence[str], machines: Sequence[Machine[Any]], bases: Sequence[int]
) -> list[tuple[int, int]]:
    """(instance position, label) of every row ``target`` names."""
    found: list[tuple[int, int]] = []
    for k, m in enumerate(machines):
        if isinstance(target, str):
            if names[k] == target:
                found += [(k, bases[k] + r) for r in range(len(m.labels))]
        elif isinstance(target, Transition):
            found += [(k, bases[k] + r) for r, row in enumerate(m.transitions) if row is target]
        else:
            found += [(k, bases[k] + r) for r, row in enumerate(m.transitions) if row.input is target]
    return found


def own_rows(model: Machine[Any] | System[Any]) -> tuple[Condition, ...]:
    """Weak fairness of each instance's own rows: what the built-in ``terminates`` assumes."""
    names, machines = _instances(model)
    bases = label_bases(model)
    return tuple(
        Condition(Fairness.WEAK, frozenset(bases[k] + r for r in range(len(m.labels))), f"WF({names[k]})")
        for k, m in enumerate(machines)
    )
