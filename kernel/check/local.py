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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NoReturn

from statewright.kernel.boundary import raised, refused, row
from statewright.kernel.check.semantics import ambiguity, leaves_terminal
from statewright.kernel.machine import Machine, Rule
from statewright.kernel.step import Rejected, apply_rule, firings, step
from statewright.kernel.values import describe, problem

__all__ = ["Local", "LocalTable", "Move"]


class Local:
    """One memoised local step: next id, effects, row index and broken local properties."""

    __slots__ = ("effects", "flags", "next", "rule")

    def __init__(self, next_id: int, effects: tuple[Any, ...], rule: int, flags: tuple[str, ...]) -> None:
        self.next = next_id
        self.effects = effects
        self.rule = rule
        self.flags = flags


class Move:
    """A domain input of a local state that the search must handle individually.

    ``gates`` are the system guards on the input's type; ``count`` is how often
    the move fired (routed moves count their rows in the table instead).
    """

    __slots__ = ("count", "gates", "input", "local", "routed")

    def __init__(self, event: Any, local: Local, gates: tuple[Any, ...], routed: bool) -> None:
        self.input = event
        self.local = local
        self.gates = gates
        self.routed = routed
        self.count = 0


LocalTest = Callable[[Any, Any, Any], bool]


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
        self.results: dict[tuple[int, Any], tuple[Local, ...] | Rejected] = {}
        self.ambiguous: list[str] = []
        """Why a resolved step broke determinism (`semantics.ambiguity`), until the search reports it."""
        self.instances: list[str] = []
        """Names of the system instances this table serves (empty for a lone machine)."""

    def intern(self, state: Any) -> int:
        """The id of ``state`` (already known to be a valid state), adding it if new."""
        found = self.ids.get(state)
        if found is not None:
            return found
        a = self.ids[state] = len(self.states)
        self.states.append(state)
        self.terminal.append(self.machine.is_terminal(state))
        self.moves.append(None)
        self.fast_rules.append(())
        return a

    def initial(self, state: Any, where: str) -> int:
        """The id of an initial state, after checking it can be a state of this machine."""
        m = self.machine
        if type(state) is not m.state_type:
            refused(f"is {describe(state)}, not a {m.state_type.__name__}", None, where, machine=m.name, state=state)
        try:
            hash(state)
        except TypeError as exc:
            refused(f"is not hashable ({exc})", None, where, machine=m.name, state=state)
        bad = problem(state)
        if bad is not None:
            refused(bad, None, where, machine=m.name, state=state)
        return self.intern(state)

    def reached(self, new: Any, rule: Rule, before: Any, event: Any) -> int:
        """The id of ``new``, produced by ``rule`` from ``before``; a state never seen is checked first.

        The check refuses mutable states, so an update can never receive a state
        it could change in place: comparing each state before and after its
        update would only repeat that guarantee on every step.
        """
        try:
            found = self.ids.get(new)
        except TypeError as exc:
            self._refuse(f"returned {describe(new)}, which is not hashable ({exc})", rule, before, event)
        if found is not None:
            return found
        bad = problem(new)
        if bad is not None:
            self._refuse(f"returned a state that {bad}", rule, before, event)
        return self.intern(new)

    def _refuse(self, what: str, rule: Rule, before: Any, event: Any) -> NoReturn:
        """Blame ``rule``'s update (or the machine's ``with_phase``) for a state it produced."""
        m = self.machine
        fn, part = (rule.update, ", update") if rule.update is not None else (m.with_phase, ", with_phase")
        where = row(rule.index, rule.label) + (part if fn is not None else "")
        refused(what, fn, where, machine=m.name, state=before, input=event)

    def resolve(self, a: int, event: Any) -> tuple[Local, ...] | Rejected:
        """Step local state ``a`` by ``event``, once; later calls hit the memo.

        Accepted, it is one `Local` per successor: each alternative of a
        choosing row, of the first enabled row -- or of every enabled row when
        the table explores every row.
        """
        key = (a, event)
        try:
            found = self.results.get(key)
        except TypeError:
            refused(f"produced {describe(event)}, which is not hashable (use frozen dataclasses)",
                    self.domain if callable(self.domain) else None, self.domain_where,
                    machine=self.machine.name, state=self.states[a])
        if found is not None:
            return found
        m = self.machine
        state = self.states[a]
        enabled = firings(m, state, event)
        if not enabled:
            out: tuple[Local, ...] | Rejected = step(m, state, event)  # type: ignore[assignment]
            assert isinstance(out, Rejected)
            self.results[key] = out
            return out
        if not self.every_row:
            why = ambiguity(m, state, event, [r for r, _ in enabled])
            if why is not None:
                self.ambiguous.append(why)
            enabled = enabled[:1]
        locals_: list[Local] = []
        for rule, alts in enabled:
            for choice in alts:
                new, effects = apply_rule(m, rule, state, event, choice)
                if m.effect_types is not None and rule.emit is not None:
                    self._declared(rule, effects, new, event)
                next_id = self.reached(new, rule, state, event)
                flags = self._broken(state, event, new)
                if self.terminal_precedence and leaves_terminal(m, rule):
                    flags += ("terminal_precedence",)
                locals_.append(Local(next_id, effects, rule.index, flags))
        out = self.results[key] = tuple(locals_)
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
            except Exception as exc:
                raised(exc, test, f"property {name!r}", machine=self.machine.name, state=before, input=event)
            if not ok:
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
            except Exception as exc:
                raised(exc, self.domain, self.domain_where, machine=self.machine.name, state=self.states[a])
        return self.domain  # type: ignore[no-any-return]

    def move(self, event: Any, local: Local, routed: bool) -> Move:
        """Wrap a local step as a `Move` with its gates and routing."""
        return Move(event, local, self.gates.get(type(event), ()), routed)

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
        fast: list[int] = []
        fast_rules: list[int] = []
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
        self.fast_rules[a] = tuple(fast_rules)
        out = self.moves[a] = (tuple(fast), tuple(slow))
        return out

    def fired(self, hits: dict[int, int]) -> dict[int, int]:
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
                    counts[m.local.rule] = counts.get(m.local.rule, 0) + m.count
        return counts
