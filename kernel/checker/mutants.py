"""Mutation testing of specs: does the spec notice when what protects its properties is gone?

A mutant is the model with one thing changed. *Machine operators* change one
row of one machine's table, in every instance of that machine:

* ``drop guard g`` -- one of the row's guards deleted;
* ``negate guard g`` -- one guard replaced by its negation ``not_g``;
* ``retarget to P`` -- the row leads to phase ``P`` instead.

*System operators* change what a `System` adds to its machines:

* ``drop system guard g`` -- one `SystemGuard` removed from the system;
* ``drop route E`` -- the `Route` of effect ``E`` removed: the effect is still
  emitted, but no longer delivered.

Scores are kept per group: one per machine (its table's mutants) and, for a
system spec, one group called ``system`` (the system operators' mutants). A
group with no mutants has no score (`MutationScore.ratio` is None).

Each mutant is checked against the spec within a budget of ``budget`` times
the unmutated model's distinct states, since a mutant can make the model
infinite. Its `Outcome` says what happened: the check reported a violation
(caught); the mutant is no valid definition (caught, by the definition
error); the check passed (survived); the budget ran out first (survived,
*bounded*: nothing the spec states was seen to fail); or the user's code
raised on a state only the mutant reaches (survived, *raised*: a crash is
not a property the spec states). A spec whose unmutated check already fails
cannot be scored: `SpecFails`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from statewright.kernel.checker.engine import check
from statewright.kernel.checker.fairness import Fair
from statewright.kernel.checker.report import Report, StopReason, Verdict
from statewright.kernel.checker.spec import Spec
from statewright.kernel.errors import DefinitionError, UserCodeError, one_line
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.system import System

__all__ = [
    "MACHINE_OPERATORS",
    "SYSTEM",
    "SYSTEM_OPERATORS",
    "Fate",
    "Mutant",
    "MutationScore",
    "Outcome",
    "RowOperator",
    "Scope",
    "SpecFails",
    "SystemOperator",
    "drop_guard",
    "drop_route",
    "drop_system_guard",
    "mutants",
    "negate_guard",
    "negation",
    "retarget",
    "score",
    "score_spec",
    "score_system",
    "substitute",
    "system_mutants",
]

SYSTEM = "system"
"""The name of a system spec's group of system-operator mutants."""


@dataclass(frozen=True, slots=True)
class Mutant:
    """One change, and what it changed: a machine (machine operators) or the whole spec (system operators).

    ``changed`` is None when the change cannot be declared (``error`` says why).
    """

    description: str
    changed: Machine[Any] | Spec | None
    error: str | None = None


# -- operators -------------------------------------------------------------------------------

RowOperator = Callable[[Machine[Any], Transition[Any, Any]], Iterator[tuple[str, Transition[Any, Any]]]]
"""``op(machine, row)`` yields ``(what, changed row)`` for every change it makes to one row."""

SystemOperator = Callable[[Spec], Iterator[Mutant]]
"""``op(spec)`` yields the changed specs it makes (the system changed, or what the spec assumes of it)."""


def _guards(raw: Any) -> tuple[Any, ...]:
    if raw is None:
        return ()
    return tuple(raw) if isinstance(raw, (list, tuple)) else (raw,)


def _name(g: Any) -> str:
    return g.name if isinstance(g, Guard) else getattr(g, "__name__", repr(g))


def negation(g: Any) -> Guard[Any, Any]:
    """The guard that holds exactly where ``g`` does not, named ``not_<name>``.

    >>> def even(s, i): return s % 2 == 0
    >>> odd = negation(even)
    >>> odd.name, odd(3, None), odd(4, None)
    ('not_even', True, False)
    """
    test = g.test if isinstance(g, Guard) else g

    def negated(state: Any, event: Any) -> bool:
        return not test(state, event)

    return Guard(f"not_{_name(g)}", negated)


def drop_guard(machine: Machine[Any], row: Transition[Any, Any]) -> Iterator[tuple[str, Transition[Any, Any]]]:
    """The row without one of its guards, for each guard."""
    guards = _guards(row.guard)
    for j, g in enumerate(guards):
        rest = guards[:j] + guards[j + 1 :]
        yield f"drop guard {_name(g)}", dataclasses.replace(row, guard=rest or None)


def negate_guard(machine: Machine[Any], row: Transition[Any, Any]) -> Iterator[tuple[str, Transition[Any, Any]]]:
    """The row with one guard negated (the others kept), for each guard."""
    guards = _guards(row.guard)
    for j, g in enumerate(guards):
        changed = guards[:j] + (negation(g),) + guards[j + 1 :]
        yield f"negate guard {_name(g)}", dataclasses.replace(row, guard=changed)


def retarget(machine: Machine[Any], row: Transition[Any, Any]) -> Iterator[tuple[str, Transition[Any, Any]]]:
    """The row leading to each other phase."""
    for phase in machine.phases:
        if phase is not row.target:
            yield f"retarget to {phase.name}", dataclasses.replace(row, target=phase)


def drop_system_guard(spec: Spec) -> Iterator[Mutant]:
    """The system without one of its `SystemGuard`\\ s, for each."""
    system = spec.model
    if not isinstance(system, System):
        return
    for j, g in enumerate(system.guards):
        gated = g.input if isinstance(g.input, tuple) else (g.input,)
        rest = tuple(system.guards[:j]) + tuple(system.guards[j + 1 :])
        yield _declare_system(spec, f"drop system guard {g.name} ({', '.join(t.__name__ for t in gated)})",
                              guards=rest)


def drop_route(spec: Spec) -> Iterator[Mutant]:
    """The system without one of its `Route`\\ s (its effect emitted but not delivered), for each."""
    system = spec.model
    if not isinstance(system, System):
        return
    for j, r in enumerate(system.routes):
        rest = tuple(system.routes[:j]) + tuple(system.routes[j + 1 :])
        yield _declare_system(spec, f"drop route {r.effect.__name__}", routes=rest)


def drop_fairness(spec: Spec) -> Iterator[Mutant]:
    """The spec without one of its fairness conditions, for each: a liveness property must then fail."""
    for j, fair in enumerate(spec.fairness):
        rest = tuple(spec.fairness[:j]) + tuple(spec.fairness[j + 1 :])
        label = getattr(fair, "label", repr(fair))
        yield Mutant(f"drop fairness {label}", dataclasses.replace(spec, fairness=rest))


MACHINE_OPERATORS: tuple[RowOperator, ...] = (drop_guard, negate_guard, retarget)
"""What `mutants` does to each row, in this order."""

SYSTEM_OPERATORS: tuple[SystemOperator, ...] = (drop_system_guard, drop_route)
"""What `system_mutants` does to a system spec, in this order.

Removing each fairness assumption (`drop_fairness`) is the same kind of
operator on what the spec assumes; its mutants form the ``fairness`` group.
"""


def _declare(machine: Machine[Any], table: list[Transition[Any, Any]], description: str) -> Mutant:
    try:
        return Mutant(description, dataclasses.replace(machine, transitions=table))
    except DefinitionError as exc:
        return Mutant(description, None, str(exc))


def _declare_system(spec: Spec, description: str, **changes: Any) -> Mutant:
    """The spec whose system has ``changes`` (fields of `System`)."""
    try:
        return Mutant(description, dataclasses.replace(spec, model=dataclasses.replace(spec.model, **changes)))
    except DefinitionError as exc:
        return Mutant(description, None, str(exc))


def mutants(machine: Machine[Any], operators: Sequence[RowOperator] = MACHINE_OPERATORS) -> Iterator[Mutant]:
    """Every change each operator makes to every row, in table order (a row's changes in operator order)."""
    table = list(machine.transitions)
    for i, row in enumerate(table):
        label = machine.labels[i]
        for op in operators:
            for what, changed in op(machine, row):
                yield _declare(machine, table[:i] + [changed] + table[i + 1 :], f"#{i} {label}: {what}")


def system_mutants(spec: Spec, operators: Sequence[SystemOperator] = SYSTEM_OPERATORS) -> Iterator[Mutant]:
    """Every system-operator mutant of a system spec (none for a machine spec), as changed specs."""
    for op in operators:
        yield from op(spec)


def substitute(spec: Spec, original: Machine[Any], replacement: Machine[Any]) -> Spec:
    """The spec with ``replacement``'s table wherever ``original`` (by name) was its model or an instance's machine.

    Matching by name mutates every instance of the lifecycle, also when a
    user built one machine object per instance from the same table; each such
    object gets its own mutated copy, so fairness declared per machine object
    (matched by identity, `kernel.checker.fairness`) still names the same
    instances, and fairness on a row names the mutated row.
    """
    model = spec.model
    swapped: dict[int, tuple[Machine[Any], Machine[Any]]] = {}

    def swap(m: Machine[Any]) -> Machine[Any]:
        if m is not original and (isinstance(model, Machine) or m.name != original.name):
            return m
        if id(m) not in swapped:
            swapped[id(m)] = (m, replacement if m is original else
                              dataclasses.replace(m, transitions=list(replacement.transitions)))
        return swapped[id(m)][1]

    if isinstance(model, Machine):
        changed: Machine[Any] | System[Any] = swap(model)
    else:
        instances = {n: swap(m) for n, m in zip(model.names, model.machines)}
        changed = dataclasses.replace(model, instances=instances)
    machines = {id(old): new for old, new in swapped.values()}
    rows = {id(a): b for old, new in swapped.values() for a, b in zip(old.transitions, new.transitions)}
    fairness = [Fair(f.kind, tuple(machines.get(id(t), rows.get(id(t), t)) for t in f.targets)) for f in spec.fairness]
    return dataclasses.replace(spec, model=changed, fairness=fairness)


# -- scoring ---------------------------------------------------------------------------------


class Scope(Enum):
    """Which operators made a group's mutants."""

    MACHINE = "machine"
    SYSTEM = "system"
    FAIRNESS = "fairness"


class Outcome(Enum):
    """What checking one mutant found; `caught` says whether it counts as killed."""

    VIOLATED = "caught"
    """The check reported a violation (or an expected violation went missing)."""
    DEFINITION = "caught (definition error)"
    """The mutant is no valid definition: it cannot be declared or checked."""
    SURVIVED = "survived"
    """The check passed: the spec states nothing the change breaks."""
    BOUNDED = "survived (bounded)"
    """The state budget ran out with nothing failing."""
    RAISED = "survived (raised)"
    """The user's code raised on a state only the mutant reaches; no property failed first."""

    @property
    def caught(self) -> bool:
        return self in (Outcome.VIOLATED, Outcome.DEFINITION)


@dataclass(frozen=True, slots=True)
class Fate:
    """One mutant's outcome; ``detail`` names the failed properties or the error."""

    mutant: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MutationScore:
    """How many mutants of one group (a machine, or ``system``) a spec caught, and each one's fate."""

    spec: str
    group: str
    scope: Scope
    fates: tuple[Fate, ...]

    @property
    def total(self) -> int:
        return len(self.fates)

    @property
    def killed(self) -> int:
        return sum(f.outcome.caught for f in self.fates)

    @property
    def by_definition(self) -> int:
        """Mutants caught because they are no valid definition."""
        return sum(f.outcome is Outcome.DEFINITION for f in self.fates)

    @property
    def survivors(self) -> tuple[str, ...]:
        return tuple(f.mutant for f in self.fates if not f.outcome.caught)

    @property
    def ratio(self) -> float | None:
        """Killed / total; None when there is nothing to mutate (no mutants is not a perfect score)."""
        return self.killed / self.total if self.total else None


class SpecFails(Exception):
    """The unmutated spec already fails its check, so no mutant can be told apart from it."""

    def __init__(self, spec: str, failed: tuple[str, ...]) -> None:
        self.spec = spec
        self.failed = failed
        super().__init__(f"spec {spec!r} already fails its own check ({'; '.join(failed)}): "
                         "mutants cannot be scored until it passes")


def _failures(report: Report) -> tuple[str, ...]:
    return tuple(f"property {r.name!r} {r.status.value}" for r in report.properties if r.failed)


class _Scorer:
    """Checks mutants of one spec within the budget its unmutated check sets."""

    def __init__(self, spec: Spec, budget: int) -> None:
        baseline = check(spec, keep_going=True)
        if baseline.verdict is Verdict.VIOLATED:
            raise SpecFails(spec.name, _failures(baseline))
        self.spec = spec
        self.limit = max(budget * baseline.distinct_states, 1000)

    def fate(self, mutant: Mutant, variant: Callable[[Any], Spec]) -> Fate:
        """Check ``variant(mutant.changed)`` within the budget."""
        if mutant.changed is None:
            return Fate(mutant.description, Outcome.DEFINITION, one_line(mutant.error or ""))
        try:
            report = check(variant(mutant.changed), max_states=self.limit)
        except UserCodeError as err:
            return Fate(mutant.description, Outcome.RAISED, one_line(f"{err.where} {err.problem}"))
        except DefinitionError as err:
            return Fate(mutant.description, Outcome.DEFINITION, one_line(str(err)))
        if report.verdict is Verdict.VIOLATED:
            return Fate(mutant.description, Outcome.VIOLATED, ", ".join(_failures(report)))
        if report.verdict is Verdict.BOUNDED:
            if report.stopped_by is StopReason.MAX_STATES:
                why = f"nothing failed in the budget of {self.limit:,} states"
            else:
                why = f"nothing failed before the {report.stopped_by} bound"
            return Fate(mutant.description, Outcome.BOUNDED, why)
        return Fate(mutant.description, Outcome.SURVIVED)

    def machine(self, machine: Machine[Any]) -> MutationScore:
        fates = tuple(self.fate(m, lambda mutated: substitute(self.spec, machine, mutated)) for m in mutants(machine))
        return MutationScore(self.spec.name, machine.name, Scope.MACHINE, fates)

    def system(self) -> MutationScore:
        fates = tuple(self.fate(m, lambda changed: changed) for m in system_mutants(self.spec))
        return MutationScore(self.spec.name, SYSTEM, Scope.SYSTEM, fates)

    def fairness(self) -> MutationScore:
        fates = tuple(self.fate(m, lambda changed: changed) for m in drop_fairness(self.spec))
        return MutationScore(self.spec.name, Scope.FAIRNESS.value, Scope.FAIRNESS, fates)


def score(spec: Spec, machine: Machine[Any], *, budget: int = 20) -> MutationScore:
    """Check every mutant of ``machine``'s table against ``spec`` and count the kills.

    Raises `SpecFails` when the unmutated spec fails its check.

    >>> from enum import Enum
    >>> from statewright.kernel.checker import always
    >>> class L(Enum):
    ...     OFF = 0
    ...     ON = 1
    ...     BROKEN = 2
    >>> class Flip: pass
    >>> lamp = Machine("lamp", initial=L.OFF, terminal={L.BROKEN}, transitions=[
    ...     Transition(L.OFF, Flip, L.ON), Transition(L.ON, Flip, L.BROKEN)])
    >>> s = score(Spec("lamp", lamp, [Flip()], [always("never_broken", lambda s: s is not L.BROKEN)],
    ...                expect=["never_broken"]), lamp)
    >>> s.killed, s.total
    (4, 4)
    """
    return _Scorer(spec, budget).machine(machine)


def score_system(spec: Spec, *, budget: int = 20) -> MutationScore:
    """Check every system-operator mutant of ``spec``'s model (the ``system`` group) and count the kills."""
    return _Scorer(spec, budget).system()


def score_spec(spec: Spec, *, budget: int = 20) -> tuple[MutationScore, ...]:
    """Every group of ``spec``: one per distinct machine (by name, in instance order), then ``system`` for a
    system, then ``fairness`` (each fairness condition dropped) when the spec declares any.

    The unmutated spec is checked once; `SpecFails` when it fails.
    """
    scorer = _Scorer(spec, budget)
    model = spec.model
    assumed = (scorer.fairness(),) if spec.fairness else ()
    if isinstance(model, Machine):
        return (scorer.machine(model), *assumed)
    first: dict[str, Machine[Any]] = {}
    for m in model.machines:
        first.setdefault(m.name, m)
    return (*(scorer.machine(m) for m in first.values()), scorer.system(), *assumed)
