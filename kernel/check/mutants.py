"""Mutation testing of specs: does the spec notice when the table is wrong?

A mutant is the machine with one row changed in one of two ways: one guard
deleted, or the row's target phase replaced by another phase. Each mutant is
put in place of the original machine (in every instance of a system) and the
spec is checked again; the mutant is *killed* when the check fails (a
property is violated, an expected violation goes missing) or when the mutant
cannot even be declared. A spec that kills few mutants states too little.

Mutants are checked with a state budget (``budget`` times the original
model's distinct states), since deleting a guard can make a model infinite; a
mutant that exhausts the budget without failing counts as surviving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from statewright.kernel.check.bfs import check
from statewright.kernel.check.report import Verdict
from statewright.kernel.check.spec import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.system import System

__all__ = ["Mutant", "MutationScore", "mutants", "score", "substitute"]


@dataclass(frozen=True, slots=True)
class Mutant:
    """One changed row: ``machine`` is None when the change cannot be declared (``error`` says why)."""

    description: str
    machine: Machine[Any] | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MutationScore:
    """How many mutants of one machine its spec killed, and which survived."""

    spec: str
    machine: str
    total: int
    killed: int
    survivors: tuple[str, ...]

    @property
    def ratio(self) -> float:
        return self.killed / self.total if self.total else 1.0


def _guards(raw: Any) -> tuple[Any, ...]:
    if raw is None:
        return ()
    return tuple(raw) if isinstance(raw, (list, tuple)) else (raw,)


def _name(g: Any) -> str:
    return g.name if isinstance(g, Guard) else getattr(g, "__name__", repr(g))


def _declare(machine: Machine[Any], table: list[Transition], description: str) -> Mutant:
    try:
        return Mutant(description, dataclasses.replace(machine, transitions=table))
    except DefinitionError as exc:
        return Mutant(description, None, str(exc))


def mutants(machine: Machine[Any]) -> Iterator[Mutant]:
    """Every single-guard deletion and every retargeting of every row, in table order."""
    table = list(machine.transitions)
    for i, row in enumerate(table):
        label = machine.labels[i]
        guards = _guards(row.guard)
        for j, g in enumerate(guards):
            rest = guards[:j] + guards[j + 1 :]
            changed = dataclasses.replace(row, guard=rest or None)
            yield _declare(machine, table[:i] + [changed] + table[i + 1 :], f"#{i} {label}: drop guard {_name(g)}")
        for phase in machine.phases:
            if phase is row.target:
                continue
            changed = dataclasses.replace(row, target=phase)
            yield _declare(machine, table[:i] + [changed] + table[i + 1 :], f"#{i} {label}: retarget to {phase.name}")


def substitute(spec: Spec, original: Machine[Any], replacement: Machine[Any]) -> Spec:
    """The spec with ``replacement`` wherever ``original`` (by name) was its model or an instance's machine.

    Matching by name mutates every instance of the lifecycle, also when a
    user built one machine object per instance from the same table.
    """
    model = spec.model
    if isinstance(model, Machine):
        return dataclasses.replace(spec, model=replacement if model is original else model)
    swapped: System[Any] = System(
        model.name,
        {n: replacement if m.name == original.name else m for n, m in zip(model.names, model.machines)},
        guards=model.guards,
        routes=model.routes,
        initial_states=model.initial_states,
        doc=model.doc,
    )
    return dataclasses.replace(spec, model=swapped)


def score(spec: Spec, machine: Machine[Any], *, budget: int = 20) -> MutationScore:
    """Check every mutant of ``machine`` against ``spec`` and count the kills.

    >>> from enum import Enum
    >>> from statewright.kernel.check.spec import always
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
    baseline = check(spec, keep_going=True)
    limit = max(budget * baseline.distinct_states, 1000)
    killed = 0
    survivors: list[str] = []
    total = 0
    for mutant in mutants(machine):
        total += 1
        if mutant.machine is None:
            killed += 1
            continue
        variant = substitute(spec, machine, mutant.machine)
        variant = dataclasses.replace(variant, bounds=dataclasses.replace(spec.bounds, max_states=limit))
        try:
            report = check(variant)
        except DefinitionError:
            killed += 1
            continue
        if report.verdict is Verdict.VIOLATED:
            killed += 1
        else:
            survivors.append(mutant.description)
    return MutationScore(spec.name, machine.name, total, killed, tuple(survivors))
