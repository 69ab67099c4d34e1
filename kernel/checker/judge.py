"""Judging the states and steps a search meets: invariants, witnesses, action properties, constraints, findings.

Every engine -- the one-core `Search`, the level engine's workers
(`kernel.checker.workers`) and the simulator -- *holds* a `Judge` and asks it
the same questions, so each rule is written once:

* `Judge.states` -- invariants and ``sometimes`` witnesses on new states,
  in discovery order, so the first violation found is a shortest one;
* `Judge.step` -- per-instance step properties the local tables flagged and
  the global ones, on a step the engine takes;
* `Judge.inside` / `Judge.action_inside` -- the spec's constraints, and
  `Judge.prune`, which judges a state the constraints leave out (TLC checks
  its invariants too) and counts it;
* `Judge.initials` -- the initial states the model keeps;
* `Judge.quiescent` (deadlock) and `Judge.ambiguity` (determinism).

Findings go to `Judge.found`, which keeps the first trace of each property
and sets `stop` on an unexpected one (unless ``keep_going``). Where a trace
comes from is the engine's business: the judge asks its `Traces` -- rebuilt
from parent links (`StoredTraces`), markers that a coordinator resolves
later (workers), or the behaviour under way (the simulator).

Every predicate must return a bool: a guard or property that returns None
(a missing ``return``) is a `UserCodeError`, not a quiet "false".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from statewright.kernel.boundary import FAILURES, not_bool, raised
from statewright.kernel.checker.local import Key
from statewright.kernel.checker.properties import Kind
from statewright.kernel.checker.semantics import is_final
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.trace import TraceStep

__all__ = ["Judge", "StoredTraces", "Traces"]

Named = tuple[str, Callable[..., Any]]


class Traces(Protocol):
    """Where a finding's trace comes from: the path to a state, or that path plus one step."""

    def path(self, i: int) -> list[Any]: ...

    def edge(self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[Any]: ...


class StoredTraces:
    """Shortest traces rebuilt from a store's keys and parent links (``parents[j]`` is -1 for an initial state)."""

    def __init__(self, space: StateSpace, keys: Sequence[Key], parents: Sequence[int]) -> None:
        self.space = space
        self.keys = keys
        self.parents = parents

    def path(self, i: int) -> list[Any]:
        """The shortest trace to state ``i``."""
        return self.space.path(self.parents, self.keys, i)

    def edge(self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[Any]:
        """The trace to state ``i`` plus one step to ``nk``.

        Under symmetry the trace to ``i`` ends in a real state that may be a
        permutation of ``i``; the last step is the same input taken from it.
        """
        space = self.space
        if space.symmetry is None:
            return self.path(i) + [TraceStep(space.view(nk), space.action(k, event), effects)]
        steps, real = space.concrete(self.keys, space.chain(self.parents, i))
        return [*steps, space.step_into(real, space.symmetry.canonical(nk), event)[1]]

    def to(self, i: int) -> tuple[TraceStep, ...] | None:
        """The trace to state ``i`` (or the last state stored), for an error raised while expanding it."""
        if not len(self.keys):
            return None
        return tuple(self.path(min(i, len(self.keys) - 1)))


class Judge:
    """What a spec says about the states and steps one engine meets (see the module docstring)."""

    def __init__(self, spec: Spec, space: StateSpace, traces: Traces, *, keep_going: bool = False) -> None:
        self.spec = spec
        self.space = space
        self.traces = traces
        self.keep_going = keep_going
        self.all_invariants: tuple[Named, ...] = tuple((p.name, p.test) for p in spec.properties if p.kind is Kind.ALWAYS)
        self.all_witnesses: tuple[Named, ...] = tuple(
            (p.name, p.test) for p in spec.properties if p.kind is Kind.SOMETIMES
        )
        self.expected = frozenset(spec.expect)
        self.on_found: Callable[[str, list[Any], str | None], None] | None = None
        """Called with each new finding (the workers tag it with its place in the search's order)."""
        self.probes = 256 if space.symmetry is not None else 0
        """States whose properties are still to be compared with a permuted twin (symmetry only)."""
        self.pruned = 0
        """Successors (and initial states) the constraints left out of the model."""
        self.reset()

    def reset(self) -> None:
        """Forget every finding (a worker starts each job afresh)."""
        self.invariants: list[Named] = list(self.all_invariants)
        self.witnesses: list[Named] = list(self.all_witnesses)
        self.violations: dict[str, list[Any]] = {}
        self.details: dict[str, str] = {}
        self.witnessed: dict[str, list[Any]] = {}
        self.stop = False
        """An unexpected violation was found (and ``keep_going`` is off): the engine should stop."""

    @property
    def open(self) -> bool:
        """Whether a new state still has something to be judged on (an invariant or a witness not yet found)."""
        return bool(self.invariants or self.witnesses)

    # -- findings -------------------------------------------------------------------

    def found(self, name: str, trace: list[Any], detail: str | None = None) -> None:
        """Record the first (so shortest) violation of ``name``; stop unless it is expected or ``keep_going``."""
        if name in self.violations:
            return
        self.violations[name] = trace
        if detail:
            self.details[name] = detail
        if self.on_found is not None:
            self.on_found(name, trace, detail)
        if name not in self.expected and not self.keep_going:
            self.stop = True

    # -- states ---------------------------------------------------------------------

    def states(self, first: int, keys: Sequence[Key]) -> None:
        """Invariants and witnesses on the new states ``keys``, numbered from ``first``, in that order."""
        view = self.space.view
        traces = self.traces
        name, test = "", None
        for j, key in enumerate(keys, first):
            s = view(key)
            if self.probes:
                self.probe(key, s)
            try:
                for name, test in self.invariants:
                    ok = test(s)
                    if ok is not True:
                        if ok is not False:
                            not_bool(ok, test, f"property {name!r}", spec=self.spec.name, state=s)
                        self.found(name, traces.path(j))
                        self.invariants = [p for p in self.invariants if p[0] != name]
                for name, test in self.witnesses:
                    ok = test(s)
                    if ok is not False:
                        if ok is not True:
                            not_bool(ok, test, f"property {name!r}", spec=self.spec.name, state=s)
                        self.witnessed[name] = traces.path(j)
                        self.witnesses = [w for w in self.witnesses if w[0] != name]
            except FAILURES as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=s, trace=tuple(traces.path(j)))
            if self.stop or not (self.invariants or self.witnesses):
                return

    def initials(self) -> list[Key]:
        """The space's initial keys that the constraint keeps, in order; those it leaves out are judged and pruned."""
        if self.space.constraint is None:
            return list(self.space.initials)
        kept = []
        for key in self.space.initials:  # not counted as generated: `generated` counts steps (TLC adds inits)
            if self.inside(key):
                kept.append(key)
            else:
                self.prune(key, None)
        return kept

    def quiescent(self, i: int, key: Key) -> None:
        """State ``i`` has no successor: a deadlock unless it is final."""
        if not self.spec.deadlock or "deadlock" in self.violations:
            return
        space = self.space
        terminal = [space.tables[k].terminal[a] for k, a in enumerate(key)]
        if not is_final(space.view(key), terminal, self.spec.final, spec=self.spec.name):
            self.found("deadlock", self.traces.path(i))

    def ambiguity(self, i: int) -> None:
        """Report rows that one input enabled together, found while resolving local steps from state ``i``."""
        for t in self.space.distinct_tables:
            while t.ambiguous:
                detail = t.ambiguous.pop()
                if self.spec.determinism:
                    self.found("determinism", self.traces.path(i), detail)

    def probe(self, key: Key, state: Any) -> None:
        """Under symmetry, refuse a property that tells members of a group apart (probed on early states)."""
        symmetry = self.space.symmetry
        assert symmetry is not None
        self.probes -= 1
        for twin_key in symmetry.twins(key):
            twin = self.space.view(twin_key)
            for name, test in self.all_invariants + self.all_witnesses:
                try:
                    differs = bool(test(state)) != bool(test(twin))
                except FAILURES as exc:
                    raised(exc, test, f"property {name!r}", spec=self.spec.name, state=twin)
                if differs:
                    groups = "; ".join(", ".join(g) for g in symmetry.names)
                    raise DefinitionError(
                        f"spec {self.spec.name!r}: property {name!r} is not symmetric in {groups}: it tells "
                        f"{state!r} and {twin!r} apart, so symmetry reduction would be unsound; check without it"
                    )

    # -- steps ----------------------------------------------------------------------

    def step(
        self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...], flags: tuple[str, ...], before: Any
    ) -> None:
        """Report the per-instance properties a step broke (``flags``) and judge the global step properties."""
        space = self.space
        for name in flags:
            if name not in self.violations:
                self.found(name, self.traces.edge(i, k, event, nk, effects))
        if not space.global_transitions:
            return
        after = space.view(nk)
        act = space.action(k, event)
        for name, test in space.global_transitions:
            if name in self.violations:
                continue
            try:
                ok = test(before, act, after)
            except FAILURES as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=before, input=act)
            if ok is not True:
                if ok is not False:
                    not_bool(ok, test, f"property {name!r}", spec=self.spec.name, state=before, input=act)
                self.found(name, self.traces.edge(i, k, event, nk, effects))

    # -- constraints ----------------------------------------------------------------

    def inside(self, key: Key) -> bool:
        """The spec's state constraint on ``key``."""
        constraint = self.space.constraint
        assert constraint is not None
        state = self.space.view(key)
        try:
            ok = constraint(state)
        except FAILURES as exc:
            raised(exc, constraint, "constraint", spec=self.spec.name, state=state)
        if ok is not True and ok is not False:
            not_bool(ok, constraint, "constraint", spec=self.spec.name, state=state)
        return ok

    def action_inside(self, before: Any, k: int, event: Any, nk: Key) -> bool:
        """The spec's action constraint on one step."""
        test = self.space.action_constraint
        assert test is not None
        act = self.space.action(k, event)
        try:
            ok = test(before, act, self.space.view(nk))
        except FAILURES as exc:
            raised(exc, test, "action constraint", spec=self.spec.name, state=before, input=act)
        if ok is not True and ok is not False:
            not_bool(ok, test, "action constraint", spec=self.spec.name, state=before, input=act)
        return ok

    def prune(self, key: Key, step: tuple[int, int, Any, tuple[Any, ...]] | None) -> None:
        """Leave ``key`` out of the model: count it and judge its invariants (TLC checks them too).

        ``step`` is how it was reached, (state, instance, input, effects), or
        None for an initial state.
        """
        self.pruned += 1
        state = self.space.view(key)
        for name, test in self.invariants:
            if name in self.violations:
                continue
            try:
                ok = test(state)
            except FAILURES as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=state)
            if ok is not True:
                if ok is not False:
                    not_bool(ok, test, f"property {name!r}", spec=self.spec.name, state=state)
                if step is None:
                    trace: list[Any] = [TraceStep(state, None, ())]
                else:
                    i, k, event, effects = step
                    trace = self.traces.edge(i, k, event, key, effects)
                self.found(name, trace)
