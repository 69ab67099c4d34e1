"""Interned local states and memoised local steps: what makes the checker fast.

A system state is a tuple of small ints, one per instance: the id of that
instance's state in a `LocalTable`. Instances that share a machine and an
input domain share a table. Stepping one local state by one input is
computed once (`resolve`), and the moves of a local state under its domain
are computed once (`expand`) and split in two:

* *fast* moves: plain next ids, for steps no system guard gates, that route
  no effect and that break no per-instance property; the search composes them
  into successor tuples without calling any user code;
* *slow* moves: everything else, handled one by one by the search.

Per-instance transition properties, terminal precedence, determinism and the
declared effect union are all decided here, once per distinct local step.

A lone machine is the other extreme: its local states *are* its states, so
each is expanded once and every step is new. Its table memoises nothing and
looks each state's rows up once (`LocalTable._expand_alone`); a new state is
hashed once and only the part its update changed is checked for mutable
values and NaN (`values.problem` with ``since``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NoReturn

from statewright.kernel.boundary import FAILURES, not_bool, raised, refused, row
from statewright.kernel.checker.semantics import ambiguity, leaves_terminal
from statewright.kernel.machine import Machine, Rule
from statewright.kernel.step import (
    Rejected,
    apply_rule,
    current_phase,
    enabled_among,
    firings,
    guard_not_bool,
    guard_raised,
    step,
)
from statewright.kernel.values import describe, problem

__all__ = ["Key", "Local", "LocalTable", "Move"]

Key = tuple[int, ...]
"""A system state as the checker stores it: one local state id per instance."""


class Local:
    """One memoised local step: next id, effects, row index and broken local properties."""

    __slots__ = ("effects", "flags", "next", "rule")

    def __init__(self, next_id: int, effects: tuple[Any, ...], rule: int, flags: tuple[str, ...]) -> None:
        self.next = next_id
        self.effects = effects
        self.rule = rule
        self.flags = flags


class Move(Local):
    """A local step that the search must handle individually, with the domain input that takes it.

    It carries the step's `Local` fields itself (``move.local`` is the move),
    so a lone machine's successor is one object, not two: the checker keeps
    one per step, and Python's collector walks each at every full collection.
    ``gates`` are the system guards on the input's type; ``count`` is how
    often the move fired (routed moves count their rows in the table instead).
    """

    __slots__ = ("count", "gates", "input", "routed")

    def __init__(
        self, event: Any, next_id: int, effects: tuple[Any, ...], rule: int, flags: tuple[str, ...],
        gates: tuple[Any, ...] = (), routed: bool = False,
    ) -> None:
        self.next = next_id  # Local's fields, set here: one call less per successor
        self.effects = effects
        self.rule = rule
        self.flags = flags
        self.input = event
        self.gates = gates
        self.routed = routed
        self.count = 0

    @property
    def local(self) -> Local:
        """The local step this move takes."""
        return self


LocalTest = Callable[[Any, Any, Any], bool]
LocalStep = tuple[int, tuple[Any, ...], int, tuple[str, ...]]
"""One local step as `LocalTable._fire` computes it: next id, effects, row index, broken local properties."""


class LocalTable:
    """The interned states of one (machine, domain) pair, with their memoised steps."""

    def __init__(
        self,
        machine: Machine[Any],
        domain: Any,
        *,
        local_properties: tuple[tuple[str, LocalTest], ...],
        terminal_precedence: bool,
        gates: dict[type, tuple[Any, ...]],
        routed: frozenset[type],
        all_slow: bool,
        every_row: bool = False,
    ) -> None:
        self.machine = machine
        self.domain = domain
        self.local_properties = local_properties
        self.terminal_precedence = terminal_precedence
        self.gates = gates
        self.routed = routed
        self.all_slow = all_slow
        self.every_row = every_row
        """Explore every enabled row of an input (a spec with ``determinism=False``), not the first."""
        self.states: list[Any] = []
        self.ids: dict[Hashable, int] = {}
        self.terminal: list[bool] = []
        self.moves: list[tuple[tuple[int, ...], tuple[Move, ...]] | None] = []
        self.fast_rules: list[tuple[int, ...]] = []
        self.routed_fired: dict[int, int] = {}
        self.routed_emitted: dict[int, dict[str, None]] = {}
        """Effect type names each row emitted when a routed step fired it (`StateSpace.take` records them)."""
        self.fast_emitted: list[tuple[tuple[int, tuple[str, ...]], ...]] = []
        """Per local state: (row, effect type names) of its fast moves that emit something."""
        self.results: dict[tuple[int, Any], tuple[Local, ...] | Rejected] = {}
        self.ambiguous: list[str] = []
        """Why a resolved step broke determinism (`semantics.ambiguity`), until the search reports it."""
        self.instances: list[str] = []
        """Names of the system instances this table serves (empty for a lone machine)."""
        self.runs: tuple[tuple[type, tuple[Any, ...]], ...] | None = None
        """A fixed domain as runs of same-typed inputs (`_runs`), once a lone machine's state is expanded."""
        self.leaving = frozenset(r for r in machine.rules if terminal_precedence and leaves_terminal(machine, r))
        """The rows whose every firing breaks terminal precedence (`semantics.leaves_terminal`)."""

    def intern(self, state: Any) -> int:
        """The id of ``state`` (already known to be a valid state), adding it if new."""
        found = self.ids.get(state)
        if found is not None:
            return found
        a = self.ids[state] = len(self.states)
        self._append(state)
        return a

    def _append(self, state: Any) -> None:
        """Give the state just put in ``ids`` its slots in the per-state lists."""
        m = self.machine
        self.states.append(state)
        self.terminal.append(bool(m.terminal_phases) and m.is_terminal(state))
        self.moves.append(None)
        self.fast_rules.append(())
        self.fast_emitted.append(())

    def initial(self, state: Any, where: str) -> int:
        """The id of an initial state, after checking it can be a state of this machine."""
        m = self.machine
        if type(state) is not m.state_type:
            refused(f"is {describe(state)}, not a {m.state_type.__name__}", None, where, machine=m.name, state=state)
        try:
            hash(state)
        except TypeError as exc:
            refused(f"is not hashable ({exc})", None, where, machine=m.name, state=state)
        except RecursionError:  # nested past what Python can hash: `problem` names the depth without recursing
            refused(problem(state) or "cannot be hashed (Python's recursion limit)", None, where, machine=m.name)
        bad = problem(state)
        if bad is not None:
            refused(bad, None, where, machine=m.name, state=state)
        return self.intern(state)

    def reached(self, new: Any, rule: Rule, before: Any, event: Any) -> int:
        """The id of ``new``, produced by ``rule`` from ``before``; a state never seen is checked first.

        The check refuses mutable states, so an update can never receive a state
        it could change in place: comparing each state before and after its
        update would only repeat that guarantee on every step. It walks only
        what the update changed (`values.problem` with ``since=before``), and
        the state is hashed once whether it is new or not.
        """
        ids = self.ids
        fresh = len(self.states)
        try:
            found = ids.setdefault(new, fresh)
        except TypeError as exc:
            self._refuse(f"returned {describe(new)}, which is not hashable ({exc})", rule, before, event)
        except RecursionError:  # nested past what Python can hash: `problem` names the depth without recursing
            why = problem(new) or "cannot be hashed (Python's recursion limit)"
            self._refuse(f"returned a state that {why}", rule, before, event)
        if found != fresh:
            return found
        bad = problem(new, before)
        if bad is not None:
            del ids[new]
            self._refuse(f"returned a state that {bad}", rule, before, event)
        self._append(new)
        return fresh

    def _refuse(self, what: str, rule: Rule, before: Any, event: Any) -> NoReturn:
        """Blame ``rule``'s update (or the machine's ``with_phase``) for a state it produced."""
        m = self.machine
        fn, part = (rule.update, ", update") if rule.update is not None else (m.with_phase, ", with_phase")
        where = row(rule.index, rule.label) + (part if fn is not None else "")
        refused(what, fn, where, machine=m.name, state=before, input=event)

    def resolve(self, a: int, event: Any) -> tuple[Local, ...] | Rejected:
        """LocalStep local state ``a`` by ``event``, once; later calls hit the memo.

        Accepted, it is one `Local` per successor: each alternative of a
        choosing row, of the first enabled row -- or of every enabled row when
        the table explores every row.
        """
        key = (a, event)
        try:
            found = self.results.get(key)
        except TypeError:
            self._unhashable(a, event)
        if found is not None:
            return found
        m = self.machine
        state = self.states[a]
        enabled = firings(m, state, event)
        if not enabled:
            out: tuple[Local, ...] | Rejected = step(m, state, event)  # type: ignore[assignment]
            assert isinstance(out, Rejected)
        else:
            # a lone machine's expanded state had its steps judged by `expand`: this is a trace being rebuilt
            judged = not self.instances and self.moves[a] is not None
            out = tuple(Local(*taken) for taken in self._fire(state, event, enabled, report=not judged))
        self.results[key] = out
        return out

    def _unhashable(self, a: int, event: Any) -> NoReturn:
        refused(f"produced {describe(event)}, which is not hashable (use frozen dataclasses)",
                self.domain if callable(self.domain) else None, self.domain_where,
                machine=self.machine.name, state=self.states[a])

    def _fire(
        self, state: Any, event: Any, enabled: Sequence[tuple[Rule, tuple[Any, ...]]], report: bool = True
    ) -> list[LocalStep]:
        """The successors of ``state`` by ``event`` through its ``enabled`` rows (`enabled_among`), interned.

        Each is judged here: the declared effects, the per-instance transition
        properties and terminal precedence; two rows enabled together are kept
        in ``ambiguous`` for the search to report (unless ``report`` is False).
        """
        m = self.machine
        if not self.every_row:
            if report and len(enabled) > 1:
                why = ambiguity(m, state, event, [r for r, _ in enabled])
                if why is not None:
                    self.ambiguous.append(why)
            enabled = enabled[:1]
        out: list[LocalStep] = []
        for rule, alts in enabled:
            for choice in alts:
                new, effects = apply_rule(m, rule, state, event, choice)
                if m.effect_types is not None and rule.emit is not None:
                    self._declared(rule, effects, new, event)
                next_id = self.reached(new, rule, state, event)
                flags = self._broken(state, event, new) if self.local_properties else ()
                if rule in self.leaving:
                    flags += ("terminal_precedence",)
                out.append((next_id, effects, rule.index, flags))
        return out

    def resolved(self, a: int, event: Any, rule: int, next_id: int) -> Local:
        """The memoised accepted step of ``a`` by ``event`` that ``rule`` took to ``next_id``."""
        out = self.results[(a, event)]
        assert not isinstance(out, Rejected)
        for local in out:
            if local.rule == rule and local.next == next_id:
                return local
        raise AssertionError("no such resolved step")  # pragma: no cover - callers pass a step they took

    def _declared(self, rule: Rule, effects: tuple[Any, ...], new: Any, event: Any) -> None:
        """Refuse an effect outside the machine's declared effect union."""
        m = self.machine
        assert m.effect_types is not None
        for e in effects:
            if type(e) not in m.effect_types:
                refused(f"returned {describe(e)} among its effects, which is not in the machine's effects",
                        rule.emit, f"{row(rule.index, rule.label)}, emit", machine=m.name, state=new, input=event)

    def _broken(self, before: Any, event: Any, after: Any) -> tuple[str, ...]:
        """The per-instance transition properties that ``before --event--> after`` breaks."""
        broken: tuple[str, ...] = ()
        for name, test in self.local_properties:
            try:
                ok = test(before, event, after)
            except FAILURES as exc:
                raised(exc, test, f"property {name!r}", machine=self.machine.name, state=before, input=event)
            if ok is not True:
                if ok is not False:
                    not_bool(ok, test, f"property {name!r}", machine=self.machine.name, state=before, input=event)
                broken += (name,)
        return broken

    @property
    def domain_where(self) -> str:
        """How errors name this table's input domain: ``input domain of instance 'r1'``."""
        if not self.instances:
            return "input domain"
        return f"input domain of instance{'s' if len(self.instances) > 1 else ''} " + ", ".join(
            repr(n) for n in self.instances
        )

    def inputs_of(self, a: int) -> tuple[Any, ...]:
        """The domain inputs tried in local state ``a``."""
        if callable(self.domain):
            try:
                return tuple(self.domain(self.states[a]))
            except FAILURES as exc:
                raised(exc, self.domain, self.domain_where, machine=self.machine.name, state=self.states[a])
        return self.domain  # type: ignore[no-any-return]

    def move(self, event: Any, local: Local, routed: bool) -> Move:
        """Wrap a local step as a `Move` with its gates and routing."""
        return Move(event, local.next, local.effects, local.rule, local.flags, self.gates.get(type(event), ()), routed)

    def moves_of(self, event: Any, locals_: tuple[Local, ...]) -> list[Move]:
        """The moves of one accepted input: one per successor, or one for them all when any routes.

        A routed input is settled as a whole (`kernel.system.settlements`
        explores each way it and its routed inputs may go), so it is one move.
        """
        routed = self.routed
        if routed and any(type(e) in routed for local in locals_ for e in local.effects):
            return [self.move(event, locals_[0], True)]
        return [self.move(event, local, False) for local in locals_]

    def expand(self, a: int) -> tuple[tuple[int, ...], tuple[Move, ...]]:
        """Compute, store and return the (fast, slow) moves of local state ``a``."""
        if not self.instances:
            return self._expand_alone(a)
        fast: list[int] = []
        fast_rules: list[int] = []
        fast_emitted: list[tuple[int, tuple[str, ...]]] = []
        slow: list[Move] = []
        for event in self.inputs_of(a):
            locals_ = self.resolve(a, event)
            if isinstance(locals_, Rejected):
                continue
            for move in self.moves_of(event, locals_):
                local = move.local
                if move.gates or move.routed or local.flags or self.all_slow:
                    slow.append(move)
                else:
                    fast.append(local.next)
                    fast_rules.append(local.rule)
                    if local.effects:
                        fast_emitted.append((local.rule, tuple(type(e).__name__ for e in local.effects)))
        return self._store(a, fast, fast_rules, fast_emitted, slow)

    def _expand_alone(self, a: int) -> tuple[tuple[int, ...], tuple[Move, ...]]:
        """`expand` for a lone machine, whose local states are its states: each is expanded once.

        So nothing is memoised -- the rejections least of all -- and a step is
        computed straight from the rows of the state's phase (``Machine.rows``,
        found once per state, then once per run of same-typed inputs). A row
        that fires exactly when its one guard holds has the guard called here
        (`Rows.firing`); no system guard gates a move and nothing routes.
        """
        fast: list[int] = []
        fast_rules: list[int] = []
        fast_emitted: list[tuple[int, tuple[str, ...]]] = []
        slow: list[Move] = []
        m = self.machine
        state = self.states[a]
        rows = m.rows.get(current_phase(m, state)) or {}  # a phase= projection may return a stranger
        all_slow = self.all_slow
        for typ, events in self._runs(a):
            found = rows.get(typ)
            if found is None:
                continue
            firing, guard = found.firing, found.guard
            for event in events:
                enabled: Sequence[tuple[Rule, tuple[Any, ...]]]
                if firing is None:
                    enabled = enabled_among(m, found.rules, state, event)
                    if not enabled:
                        continue
                else:
                    enabled = firing
                    if guard is not None:
                        try:
                            ok = guard.test(state, event)
                        except FAILURES as exc:
                            guard_raised(exc, m, firing[0][0], guard, state, event)
                        if ok is not True:
                            if ok is False:
                                continue
                            guard_not_bool(ok, m, firing[0][0], guard, state, event)
                for next_id, effects, rule, flags in self._fire(state, event, enabled):
                    if flags or all_slow:
                        slow.append(Move(event, next_id, effects, rule, flags))
                    else:
                        fast.append(next_id)
                        fast_rules.append(rule)
                        if effects:
                            fast_emitted.append((rule, tuple(type(e).__name__ for e in effects)))
        return self._store(a, fast, fast_rules, fast_emitted, slow)

    def _runs(self, a: int) -> tuple[tuple[type, tuple[Any, ...]], ...]:
        """The inputs tried in ``a`` as runs of one type, in domain order: (type, inputs) each.

        A fixed domain is split (and each input checked hashable) once.
        """
        if self.runs is not None:
            return self.runs
        events = self.inputs_of(a)
        runs: list[tuple[type, list[Any]]] = []
        for event in events:
            try:
                hash(event)
            except TypeError:
                self._unhashable(a, event)
            if runs and type(event) is runs[-1][0]:
                runs[-1][1].append(event)
            else:
                runs.append((type(event), [event]))
        out = tuple((t, tuple(e)) for t, e in runs)
        if not callable(self.domain):
            self.runs = out
        return out

    def _store(
        self, a: int, fast: list[int], fast_rules: list[int], fast_emitted: list[tuple[int, tuple[str, ...]]],
        slow: list[Move],
    ) -> tuple[tuple[int, ...], tuple[Move, ...]]:
        self.fast_rules[a] = tuple(fast_rules)
        self.fast_emitted[a] = tuple(fast_emitted)
        out = self.moves[a] = (tuple(fast), tuple(slow))
        return out

    def emitted(self, hits: Mapping[int, int]) -> dict[int, dict[str, None]]:
        """The effect type names each row emitted in the steps the search took (``hits`` as for `fired`)."""
        names = {rule: dict(seen) for rule, seen in self.routed_emitted.items()}
        for a, moves in enumerate(self.moves):
            if moves is None:
                continue
            if hits.get(a, 0):
                for rule, kinds in self.fast_emitted[a]:
                    names.setdefault(rule, {}).update(dict.fromkeys(kinds))
            for m in moves[1]:
                if m.count and not m.routed and m.effects:
                    names.setdefault(m.rule, {}).update(dict.fromkeys(type(e).__name__ for e in m.effects))
        return names

    def fired(self, hits: Mapping[int, int]) -> dict[int, int]:
        """How often each row fired, given how often each local state was expanded."""
        counts = dict(self.routed_fired)
        for a, moves in enumerate(self.moves):
            if moves is None:
                continue
            times = hits.get(a, 0)
            if times:
                for r in self.fast_rules[a]:
                    counts[r] = counts.get(r, 0) + times
            for m in moves[1]:
                if m.count and not m.routed:  # routed moves count every row they fire in routed_fired
                    counts[m.rule] = counts.get(m.rule, 0) + m.count
        return counts
