"""The state space of a spec, compiled for searching: local tables, keys, views, successors and traces.

A global state is a *key*: a tuple of small ints, one per instance, each the
id of that instance's state in its `LocalTable`. The space turns keys into the
states users see (`view`), enumerates a key's successors the slow, general
way (`successors`, used to rebuild traces and to draw small graphs), and
rebuilds shortest traces from parent links (`path`). The fast search loop
lives in `kernel.checker.search`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import getitem
from typing import Any, NoReturn

from statewright.kernel.boundary import FAILURES, refused, row
from statewright.kernel.checker.fairness import Condition, label_bases, resolve
from statewright.kernel.checker.local import Key, LocalTable, Move
from statewright.kernel.checker.properties import Kind
from statewright.kernel.checker.spec import Spec
from statewright.kernel.checker.symmetry import Symmetry
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.machine import Machine
from statewright.kernel.step import Rejected
from statewright.kernel.system import (
    Action,
    Blocked,
    Emitted,
    Fired,
    System,
    guard_not_bool,
    guard_raised,
    settlements,
)
from statewright.kernel.trace import TraceStep

__all__ = ["Key", "StateSpace", "Taken"]

Taken = tuple[Key, tuple[Any, ...], tuple[str, ...], int]
"""One successor of a move: next key, effects, broken per-instance properties, the acting row."""
Test = Callable[..., bool]


class StateSpace:
    """The state space of a spec: one table per instance, views over keys, successors and traces.

    (Not to be confused with `statewright.machines.run.Plan`, a run's plan of
    steps: the checker's compiled spec is a space, not a plan.)

    Also the way to enumerate successors outside a full check
    (`kernel.draw.graphs.reachable_graph` draws small specs with it).
    """

    def __init__(self, spec: Spec, *, symmetric: bool = False) -> None:
        model = spec.model
        each: list[tuple[str, Test]] = []
        self.global_transitions: list[tuple[str, Test]] = []
        for p in spec.properties:
            if p.kind is Kind.STEP:
                if p.each or isinstance(model, Machine):
                    each.append((p.name, p.test))
                else:
                    self.global_transitions.append((p.name, p.test))
        self.fairness: tuple[Condition, ...] = resolve(spec.name, model, spec.fairness)
        """The spec's fairness declarations as label sets (`kernel.checker.fairness`)."""
        self.bases = label_bases(model)
        """``bases[k]``: the action label of instance position ``k``'s first row; row ``r`` is ``bases[k] + r``."""
        self.constraint = spec.constraint
        self.action_constraint = spec.action_constraint
        self.symmetry = Symmetry.of(spec) if symmetric else None
        """How keys are reduced to one per permutation class (``check(symmetric=True)``), or None."""
        self.all_slow = bool(self.global_transitions or self.constraint or self.action_constraint or self.symmetry)
        """Every move takes the slow lane: a step must be seen whole (action properties, constraints, symmetry)."""
        if isinstance(model, System):
            self.system: System[Any] | None = model
            self.names = model.names
            machines = model.machines
            raw = dict(spec.inputs)  # type: ignore[arg-type]
            domains = [raw.get(n, ()) for n in model.names]
            initial = list(model.initial)
            gates = dict(model.guards_by_input)
            routed = frozenset(model.routes_by_effect)
        else:
            self.system = None
            self.names = (model.name,)
            machines = (model,)
            domains = [spec.inputs]  # type: ignore[list-item]
            initial = [model.initial]
            gates, routed = {}, frozenset()
        shared: dict[tuple[int, int], LocalTable] = {}
        tables: list[LocalTable] = []
        same_domain = {n: domains[self.names.index(g[0])] for g in (self.symmetry.names if self.symmetry else ())
                       for n in g}
        for name, m, d in zip(self.names, machines, domains):
            d = same_domain.get(name, d)  # symmetric instances share one table, so their ids compare
            key = (id(m), id(d))
            table = shared.get(key)
            if table is None:
                table = shared[key] = LocalTable(
                    m,
                    d if callable(d) else tuple(d),
                    local_properties=tuple(each),
                    terminal_precedence=spec.terminal_precedence,
                    gates=gates,
                    routed=routed,
                    all_slow=self.all_slow,
                    every_row=not spec.determinism,
                )
            if self.system is not None:
                table.instances.append(name)
            tables.append(table)
        self.tables = tables
        self.distinct_tables = list(shared.values())
        if self.symmetry is not None:
            assert self.system is not None
            self.symmetry.bind(tables, self.system)
        starts = [list(initial)] if spec.init is None else [self._locals_of(spec, state) for state in spec.init]
        self.raw_initials: list[Key] = list(dict.fromkeys(self._initial(spec, states) for states in starts))
        """The distinct initial keys, in the order the spec gives them."""
        self.initials: list[Key] = (
            list(dict.fromkeys(map(self.symmetry.canonical, self.raw_initials))) if self.symmetry else self.raw_initials
        )
        """The initial keys the search starts from (all at depth 1): one per permutation class under symmetry."""
        lists = [t.states for t in tables]
        if self.system is None:
            only = lists[0]
            self.view: Callable[[Key], Any] = lambda key: only[key[0]]
        else:
            cls = self.system.view
            new = tuple.__new__
            self.view = lambda key: new(cls, map(getitem, lists, key))

    def _locals_of(self, spec: Spec, state: Any) -> list[Any]:
        """One initial state of ``spec.init`` as per-instance local states."""
        if self.system is None:
            return [state]
        if isinstance(state, dict):
            unknown = set(state) - set(self.names)
            if unknown:
                raise DefinitionError(f"spec {spec.name!r}: an initial state names unknown instances {sorted(unknown)}")
            return [state.get(n, m.initial) for n, m in zip(self.names, self.system.machines)]
        items = list(state)
        if len(items) != len(self.names):
            raise DefinitionError(
                f"spec {spec.name!r}: an initial state has {len(items)} instance states, the system has {len(self.names)}"
            )
        return items

    def _initial(self, spec: Spec, states: list[Any]) -> Key:
        """Intern the initial local states, refusing any that cannot be a state."""
        ids: list[int] = []
        for name, table, state in zip(self.names, self.tables, states):
            where = "initial state" if self.system is None else f"initial state of instance {name!r}"
            try:
                ids.append(table.initial(state, where))
            except UserCodeError as err:
                first = self.system.make(states) if self.system is not None else state
                raise err.within(spec=spec.name, trace=(TraceStep(first, None, ()),)) from err.original
        return tuple(ids)

    def take(self, key: Key, k: int, move: Move, before: Any) -> list[Taken]:
        """Follow one move from ``key``: each (next key, effects, broken local properties, row).

        Empty when a system guard or a routed input refuses it; more than one
        only for a routed move whose settling branches (`settlements`).
        """
        local = move.local
        if not move.routed:
            if move.gates and not self.allows(move, before, k):
                return []
            effects = local.effects
            if self.system is not None:
                name = self.names[k]
                effects = tuple(Emitted(name, e) for e in effects)
            return [(key[:k] + (local.next,) + key[k + 1 :], effects, local.flags, local.rule)]
        assert self.system is not None
        out = settlements(self.system, key, k, move.input, before, self.brancher)
        if isinstance(out, Blocked):
            return []
        taken: list[Taken] = []
        for settled in out:
            flags: tuple[str, ...] = ()
            for m in settled.microsteps:
                table = self.tables[m.position]
                table.routed_fired[m.rule] = table.routed_fired.get(m.rule, 0) + 1
                if m.effects:
                    table.routed_emitted.setdefault(m.rule, {}).update(dict.fromkeys(type(e).__name__ for e in m.effects))
                flags += table.resolved(m.before, m.input, m.rule, m.after).flags
            taken.append((settled.after, settled.emitted, flags, settled.microsteps[0].rule))
        return taken

    def allows(self, move: Move, before: Any, k: int) -> bool:
        """Whether every system guard on ``move``'s input lets instance ``k`` take it in ``before``."""
        g = None
        try:
            for g in move.gates:
                ok = g.test(before, k, move.input)
                if ok is not True:
                    if ok is False:
                        return False
                    assert self.system is not None
                    guard_not_bool(ok, self.system, g, before, k, move.input)
        except FAILURES as exc:
            assert self.system is not None and g is not None
            guard_raised(exc, self.system, g, before, k, move.input)
        return True

    def brancher(self, position: int, a: int, event: Any) -> tuple[Fired[int], ...] | Rejected:
        """`settlements`' brancher over interned ids: the memoised local steps of instance ``position``."""
        out = self.tables[position].resolve(a, event)
        if isinstance(out, Rejected):
            return out
        return tuple(Fired(local.next, local.effects, local.rule) for local in out)

    def successors(self, key: Key) -> Iterator[tuple[int, Any, Key, tuple[Any, ...], int]]:
        """Every (position, input, next key, effects, row) from ``key``, in search order."""
        before = self.view(key)
        for k, t in enumerate(self.tables):
            a = key[k]
            for event in t.inputs_of(a):
                locals_ = t.resolve(a, event)
                if isinstance(locals_, Rejected):
                    continue
                for move in t.moves_of(event, locals_):
                    for nk, effects, _flags, rule in self.take(key, k, move, before):
                        yield k, event, nk, effects, rule

    def action(self, k: int, event: Any) -> Any:
        return event if self.system is None else Action(self.names[k], event)

    def path(self, parents: Sequence[int], keys: Sequence[Key], i: int) -> list[TraceStep]:
        """The shortest trace from an initial state to state ``i`` (``parents[j]`` is -1 for initial states).

        Under symmetry the stored keys are class representatives; the trace is
        rebuilt through real states of the model -- from a real initial state,
        each step to a successor in the next state's class -- so it replays
        without the reduction (its last state may be a permutation of ``i``).
        """
        chain = self.chain(parents, i)
        if self.symmetry is not None:
            return self._concrete(keys, chain)
        steps = [TraceStep(self.view(keys[chain[0]]), None, ())]
        for p, c in zip(chain, chain[1:]):
            steps.append(self.step_between(keys[p], keys[c]))
        return steps

    def _concrete(self, keys: Sequence[Key], chain: list[int]) -> list[TraceStep]:
        return self.concrete(keys, chain)[0]

    def concrete(self, keys: Sequence[Key], chain: list[int]) -> tuple[list[TraceStep], Key]:
        """Under symmetry: real states through the classes of ``chain``, and the last real key."""
        assert self.symmetry is not None
        canonical = self.symmetry.canonical
        key = next(k for k in self.raw_initials if canonical(k) == keys[chain[0]])
        steps = [TraceStep(self.view(key), None, ())]
        for c in chain[1:]:
            key, step = self.step_into(key, keys[c])
            steps.append(step)
        return steps, key

    def chain(self, parents: Sequence[int], i: int) -> list[int]:
        """State numbers from an initial state to ``i``."""
        out = [i]
        while parents[out[-1]] >= 0:
            out.append(parents[out[-1]])
        out.reverse()
        return out

    def step_into(self, key: Key, target: Key, event: Any = None) -> tuple[Key, TraceStep]:
        """Under symmetry: the first real successor of ``key`` in ``target``'s class (by ``event``, if given)."""
        assert self.symmetry is not None
        canonical = self.symmetry.canonical
        for k, taken, nk, effects, _rule in self.successors(key):
            if (event is None or taken == event) and canonical(nk) == target:
                return nk, TraceStep(self.view(nk), self.action(k, taken), effects)
        self.disagreed(key, target, canonical)

    def step_between(self, key: Key, target: Key) -> TraceStep:
        """The first step (in search order) from ``key`` to ``target``, as a trace step."""
        for k, event, nk, effects, _rule in self.successors(key):
            if nk == target:
                return TraceStep(self.view(nk), self.action(k, event), effects)
        self.disagreed(key, target)

    def disagreed(self, key: Key, target: Key, canonical: Callable[[Key], Key] | None = None) -> NoReturn:
        """The search went from ``key`` to ``target``, but stepping ``key`` again does not: user code is not a function.

        A trace is rebuilt by stepping each state again (`step_between`); a
        guard, system guard, update, choice or input domain that answers
        differently for the same state and input (it reads a clock, draws
        randomness, keeps a counter) makes the two evaluations disagree. The
        error names the row the search took -- the first one of the instance
        that changed whose memoised move leads to the target -- and the state.
        """
        same = canonical or (lambda k: k)
        changed = [k for k in range(len(key)) if key[k] != target[k]] or list(range(len(key)))
        k = changed[0]
        table = self.tables[k]
        a = key[k]
        rows: list[int] = []
        moves = table.moves[a] if a < len(table.moves) else None
        if moves is not None:
            fast, slow = moves
            rows += [r for b, r in zip(fast, table.fast_rules[a]) if same(key[:k] + (b,) + key[k + 1 :]) == same(target)]
            rows += [m.rule for m in slow if m.next == target[k]]
        m = table.machine
        where = row(rows[0], m.labels[rows[0]]) if rows else f"a step of instance {self.names[k]!r}"
        refused("gave a different answer when the same state was stepped again to rebuild the trace: a guard, "
                "system guard, update, choice or input domain is not a function of the state and input (a clock, "
                "randomness or a counter?)", None, where, machine=m.name, state=self.view(key))
