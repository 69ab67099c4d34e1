"""Symmetry reduction: groups of interchangeable instances and the canonical key of a permutation class.

A spec declares which instances of a system are interchangeable
(``Spec(symmetry=[("r1", "r2", "r3")])``); ``check(spec, symmetry=True)``
then stores one state per permutation class, as TLC's SYMMETRY does. The
search keeps *canonical* keys (`Symmetry.canonical`), and traces are rebuilt
through real states of the model (`kernel.checker.space.StateSpace.path`) so that
they replay without the reduction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import permutations, product
from typing import Any

from statewright.kernel.boundary import FAILURES, raised, refused
from statewright.kernel.checker.local import Key, LocalTable
from statewright.kernel.checker.spec import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.system import System

__all__ = ["Symmetry"]


class Symmetry:
    """Groups of interchangeable instances, and the canonical key of a permutation class.

    Instances of a group share one local table, so their local ids compare.
    Without ``relabel`` sorting the ids at a group's positions gives the same
    key for every permutation of the group -- the smallest of them -- and that
    key is itself a state of the class. With ``relabel`` (instance states
    that name instances) every permutation is applied, names rewritten, and
    the smallest key taken, as TLC does.

    >>> Symmetry(((1, 2, 3),), ()).canonical((9, 5, 2, 4))
    (9, 2, 4, 5)
    """

    def __init__(
        self,
        groups: tuple[tuple[int, ...], ...],
        names: tuple[tuple[str, ...], ...],
        relabel: Callable[[Any, Mapping[str, str]], Any] | None = None,
        spec: str = "",
    ) -> None:
        self.groups = groups
        self.names = names
        self.relabel = relabel
        self.spec = spec
        self.tables: Sequence[LocalTable] = ()
        self.system: System[Any] | None = None
        per_group = []
        for g, n in zip(groups, names):
            per_group.append([
                (tuple(zip(g, (g[j] for j in order))), {n[i]: n[j] for i, j in enumerate(order)})
                for order in permutations(range(len(g)))
            ])
        self.permutations: list[tuple[tuple[tuple[int, int], ...], dict[str, str]]] = []
        for combo in product(*per_group):
            moves = tuple(m for part, _ in combo for m in part)
            renaming = {old: new for _, part in combo for old, new in part.items()}
            self.permutations.append((moves, renaming))

    def bind(self, tables: Sequence[LocalTable], system: System[Any]) -> None:
        """The space's tables and system: what `permuted` interns relabelled states in."""
        self.tables = tables
        self.system = system

    @classmethod
    def of(cls, spec: Spec) -> Symmetry | None:
        """The spec's declared symmetry as positions; None when it declares none."""
        model = spec.model
        if not spec.symmetry or not isinstance(model, System):
            return None
        if spec.temporal:
            raise DefinitionError(
                f"spec {spec.name!r}: symmetry reduction cannot judge temporal properties soundly "
                "(a lasso may need two members of a class); check them without symmetry"
            )
        groups = tuple(tuple(model.position[n] for n in g) for g in spec.symmetry)
        return cls(groups, tuple(tuple(g) for g in spec.symmetry), spec.relabel, spec.name)

    def canonical(self, key: Key) -> Key:
        """The smallest key of ``key``'s permutation class."""
        if self.relabel is None:
            out = list(key)
            for group in self.groups:
                for p, a in zip(group, sorted(key[p] for p in group)):
                    out[p] = a
            return tuple(out)
        return min(self.permuted(key, moves, renaming) for moves, renaming in self.permutations)

    def twins(self, key: Key) -> list[Key]:
        """``key`` under every other permutation -- or, past 24 of them, the two that generate each group.

        The probe of symmetric properties compares a property on a state and
        on its twins.
        """
        if len(self.permutations) <= 24:
            return [self.permuted(key, moves, renaming) for moves, renaming in self.permutations[1:]]
        out = []
        for shift in (self._swap, self._rotate):
            moves = tuple(m for g in self.groups for m in shift(g))
            renaming = {self.names[x][g.index(src)]: self.names[x][g.index(dst)]
                        for x, g in enumerate(self.groups) for src, dst in shift(g)}
            out.append(self.permuted(key, moves, renaming))
        return out

    @staticmethod
    def _swap(group: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        return ((group[0], group[1]), (group[1], group[0]))

    @staticmethod
    def _rotate(group: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        return tuple(zip(group, group[1:] + group[:1]))

    def permuted(self, key: Key, moves: tuple[tuple[int, int], ...], renaming: Mapping[str, str]) -> Key:
        """Move each instance's state from slot ``src`` to ``dst``, rewrite names (``relabel``), and intern."""
        if self.relabel is None:
            out = list(key)
            for src, dst in moves:
                out[dst] = key[src]
            return tuple(out)
        tables, system = self.tables, self.system
        assert system is not None, "bind() gives a symmetry its tables before it relabels"
        states = [t.states[a] for t, a in zip(tables, key)]
        moved = list(states)
        for src, dst in moves:
            moved[dst] = states[src]
        view = system.make(moved)
        try:
            renamed = self.relabel(view, renaming)
        except FAILURES as exc:
            raised(exc, self.relabel, "relabel", spec=self.spec, state=view)
        if len(renamed) != len(tables):
            refused(f"returned {len(renamed)} instance states, not {len(tables)}", self.relabel, "relabel",
                    spec=self.spec, state=view)
        return tuple(t.initial(s, "relabel") for t, s in zip(tables, renamed))
