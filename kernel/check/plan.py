"""A spec compiled for searching: local tables, keys, views, successors and traces.

A global state is a *key*: a tuple of small ints, one per instance, each the
id of that instance's state in its `LocalTable`. The plan turns keys into the
states users see (`view`), enumerates a key's successors the slow, general
way (`successors`, used to rebuild traces and to draw small graphs), and
rebuilds shortest traces from parent links (`path`). The fast search loop
lives in `kernel.check.search`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import getitem
from typing import Any

from statewright.kernel.check.local import LocalTable, Move
from statewright.kernel.check.report import TraceStep
from statewright.kernel.check.spec import Kind, Spec
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.machine import Machine
from statewright.kernel.step import Rejected
from statewright.kernel.system import Action, Blocked, Emitted, Fired, System, guard_raised, settlements

__all__ = ["Key", "Plan", "Taken"]

Key = tuple[int, ...]
Taken = tuple[Key, tuple[Any, ...], tuple[str, ...], int]
"""One successor of a move: next key, effects, broken per-instance properties, the acting row."""
Test = Callable[..., bool]


class Plan:
    """A spec compiled for searching: one table per instance and views over keys.

    Also the way to enumerate successors outside a full check
    (`kernel.graph.reachable_graph` draws small specs with it).
    """

    def __init__(self, spec: Spec) -> None:
        model = spec.model
        each: list[tuple[str, Test]] = []
        self.global_transitions: list[tuple[str, Test]] = []
        for p in spec.properties:
            if p.kind is Kind.TRANSITION:
                if p.each or isinstance(model, Machine):
                    each.append((p.name, p.test))
                else:
                    self.global_transitions.append((p.name, p.test))
        bounds = spec.bounds
        self.constraint = bounds.constraint
        self.action_constraint = bounds.action_constraint
        self.all_slow = bool(self.global_transitions or self.constraint or self.action_constraint)
        """Every move takes the slow lane: a step must be seen whole (action properties, constraints)."""
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
        for name, m, d in zip(self.names, machines, domains):
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
        starts = [list(initial)] if spec.init is None else [self._locals_of(spec, state) for state in spec.init]
        self.initials: list[Key] = list(dict.fromkeys(self._initial(spec, states) for states in starts))
        """The distinct initial keys, in the order the spec gives them (all at depth 1)."""
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
            for g in move.gates:
                try:
                    allowed = g.test(before, k, move.input)
                except Exception as exc:
                    assert self.system is not None
                    guard_raised(exc, self.system, g, before, k, move.input)
                if not allowed:
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
                flags += table.resolved(m.before, m.input, m.rule, m.after).flags
            taken.append((settled.after, settled.emitted, flags, settled.microsteps[0].rule))
        return taken

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

    def path(self, parents: Sequence[int], keys: list[Key], i: int) -> list[TraceStep]:
        """The shortest trace from an initial state to state ``i`` (``parents[j]`` is -1 for initial states)."""
        chain = [i]
        while parents[chain[-1]] >= 0:
            chain.append(parents[chain[-1]])
        chain.reverse()
        steps = [TraceStep(self.view(keys[chain[0]]), None, ())]
        for p, c in zip(chain, chain[1:]):
            steps.append(self.step_between(keys[p], keys[c]))
        return steps

    def step_between(self, key: Key, target: Key) -> TraceStep:
        """The first step (in search order) from ``key`` to ``target``, as a trace step."""
        for k, event, nk, effects, _rule in self.successors(key):
            if nk == target:
                return TraceStep(self.view(nk), self.action(k, event), effects)
        raise AssertionError("trace reconstruction lost its way")  # pragma: no cover - successors() disagrees
