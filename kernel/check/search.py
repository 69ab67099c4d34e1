"""`check(spec) -> Report`: breadth-first explicit-state model checking.

Theory of operation
-------------------
States are numbered in discovery order, so the list of keys *is* the BFS
queue: state ``i`` is expanded when the cursor reaches ``i``. ``seen`` maps a
key to its number and ``parents[i]`` holds the number of the state ``i`` was
found from (-1 for an initial state), which is enough to rebuild a shortest
trace; the action behind each step is found again by re-expanding the parent
(as TLC does), only when a trace is wanted.

A key is a tuple of local ids (`kernel.check.local`). Expanding a state runs
through each instance's memoised moves in two lanes:

* the **fast lane** -- local steps that no system guard gates, that route no
  effect and that break no per-instance property -- builds successor keys by
  splicing the next local id into the key, and calls no user code at all;
* the **slow lane** -- everything else -- goes through `Search._slow`: system
  guards, routed effects (one `settle` per move), broken local properties,
  global action properties and the action constraint.

Invariants and ``sometimes`` witnesses are judged on each new state once, in
discovery order, so the first violation found is a shortest one. Whatever
stops the search is a `StopReason`; the report is built by `results.py`.
The search does no IO: time arrives through an optional ``clock`` callable,
progress leaves through a callback, and the caller's ``should_stop`` is
polled every 1,024 states.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from statewright.kernel.boundary import raised
from statewright.kernel.check.behaviours import Graph, Judge
from statewright.kernel.check.local import Move
from statewright.kernel.check.plan import Key, Plan
from statewright.kernel.check.report import Progress, Report, StopReason, TraceStep, Verdict
from statewright.kernel.check.results import coverage, judged, local_hits
from statewright.kernel.check.semantics import is_final
from statewright.kernel.check.spec import Kind, Spec
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.system import Emitted, guard_raised

__all__ = ["Search", "check"]

Test = Callable[..., bool]
POLL = 1023
"""The search polls its clock and ``should_stop`` when ``i & POLL == 0``."""


class Search:
    """One breadth-first search of a spec: its frontier, what it found, and why it stopped."""

    def __init__(
        self,
        spec: Spec,
        *,
        keep_going: bool = False,
        clock: Callable[[], float] | None = None,
        progress: Callable[[Progress], None] | None = None,
        progress_every: int = 1 << 16,
        should_stop: Callable[[], StopReason | None] | None = None,
        plan: Plan | None = None,
        symmetry: bool = False,
    ) -> None:
        bounds = spec.bounds
        if bounds.time_limit is not None and clock is None:
            raise DefinitionError(f"spec {spec.name!r}: a time_limit needs a clock (check(spec, clock=time.monotonic))")
        self.spec = spec
        self.keep_going = keep_going
        self.clock = clock
        self.progress = progress
        self.progress_every = progress_every if progress is not None else 0
        self.should_stop = should_stop
        self.started = clock() if clock is not None else 0.0
        self.plan = plan if plan is not None else Plan(spec, symmetric=symmetry)
        self.probes = 256 if self.plan.symmetry is not None else 0
        """States whose properties are still to be compared with a permuted twin (symmetry only)."""
        self.invariants = [(p.name, p.test) for p in spec.properties if p.kind is Kind.ALWAYS]
        self.witnesses = [(p.name, p.test) for p in spec.properties if p.kind is Kind.SOMETIMES]
        self.expected = set(spec.expect)
        self.violations: dict[str, list[TraceStep]] = {}
        self.details: dict[str, str] = {}
        self.witnessed: dict[str, list[TraceStep]] = {}
        self.keys: list[Key] = []
        self.seen: dict[Key, int] = {}
        self.parents = array("q")
        self.stop: StopReason | None = None
        self.cursor = 0
        """The number of the state being expanded; every state before it is expanded."""
        self.depth = 1
        self.level_end = 0
        self.within = 0
        """States within ``max_depth`` when that bound stopped the search."""
        self.generated = 0
        self.pruned = 0
        self.graph = Graph.empty() if spec.temporal else None
        """Every explored step, kept only when a temporal property needs the graph."""
        self.bases = self.plan.bases
        self.loops: dict[str, int] = {}

    # -- the run --------------------------------------------------------------------

    def run(self) -> Report:
        """Explore until done or stopped, and report."""
        try:  # free until something raises; the trace to the state being expanded is added here
            self._start()
            if self.graph is None:
                self._explore()
            else:
                self._explore_recording(self.graph)
                if self.stop is None:
                    self._judge_temporal(self.graph)
        except UserCodeError as err:
            raise err.within(spec=self.spec.name, trace=self._trace_to_cursor()) from err.original
        return self._report()

    def _start(self) -> None:
        """Admit the initial states (depth 1); the constraint and invariants apply to them too."""
        constraint = self.spec.bounds.constraint
        for key in self.plan.initials:  # not counted as generated: `generated` counts steps (TLC adds inits)
            if constraint is not None and not self._inside(key):
                self._judge_outside(key, None)
                self.pruned += 1
                continue
            self.seen[key] = len(self.keys)
            self.keys.append(key)
            self.parents.append(-1)
        self.level_end = len(self.keys)
        self._judge(0)

    def _explore(self) -> None:
        """The BFS loop; its body is the fast lane (see the module docstring), the rest is in methods."""
        plan = self.plan
        keys, seen, parents = self.keys, self.seen, self.parents
        all_moves = [t.moves for t in plan.tables]
        positions = range(len(plan.tables))
        i = self.cursor
        while i < len(keys) and not self.stop:
            self.cursor = i
            if i == self.level_end and not self._next_level():
                break
            if not i & POLL and i and self._poll():
                break
            key = keys[i]
            first_new = len(keys)
            successors = 0
            before = None
            for k in positions:
                fast, slow = all_moves[k][key[k]] or self._expand_local(k, key[k])
                if fast:  # the fast lane: splice the next local id into the key; no user code
                    successors += len(fast)
                    pre = key[:k]
                    post = key[k + 1 :]
                    for b in fast:
                        nk = pre + (b,) + post
                        if nk not in seen:
                            seen[nk] = len(keys)
                            keys.append(nk)
                            parents.append(i)
                if slow:
                    if before is None:
                        before = plan.view(key)
                    successors += self._slow(i, key, k, slow, before)
            self._expanded(i, key, first_new, successors)
            i += 1
        self.cursor = i

    def _explore_recording(self, graph: Graph) -> None:
        """The BFS loop that also records every step (number of the target, label of the row) for temporal properties.

        The same lanes as `_explore`; the fast lane looks up each target's
        number and appends it with ``base[k] + row`` to the graph's arrays. A
        step that leaves the state as it was is not recorded: as in TLA+
        (``<<A>>_vars``), it is a stuttering step, which fairness neither
        counts as enabling its action nor as taking it.
        """
        plan = self.plan
        keys, seen, parents = self.keys, self.seen, self.parents
        offsets, targets, labels = graph.offsets, graph.targets, graph.labels
        tables = plan.tables
        all_moves = [t.moves for t in tables]
        rules = [t.fast_rules for t in tables]
        bases = self.bases
        positions = range(len(tables))
        i = self.cursor
        while i < len(keys) and not self.stop:
            self.cursor = i
            if i == self.level_end and not self._next_level():
                break
            if not i & POLL and i and self._poll():
                break
            key = keys[i]
            first_new = len(keys)
            successors = 0
            before = None
            for k in positions:
                a = key[k]
                fast, slow = all_moves[k][a] or self._expand_local(k, a)
                if fast:
                    successors += len(fast)
                    pre = key[:k]
                    post = key[k + 1 :]
                    base = bases[k]
                    for b, r in zip(fast, rules[k][a]):
                        nk = pre + (b,) + post
                        j = seen.get(nk)
                        if j is None:
                            j = seen[nk] = len(keys)
                            keys.append(nk)
                            parents.append(i)
                        if j != i:  # a step that changes nothing is a stutter: it neither enables nor takes
                            targets.append(j)
                            labels.append(base + r)
                if slow:
                    if before is None:
                        before = plan.view(key)
                    successors += self._slow(i, key, k, slow, before)
            offsets.append(len(targets))
            self._expanded(i, key, first_new, successors)
            i += 1
        self.cursor = i

    def _expanded(self, i: int, key: Key, first_new: int, successors: int) -> None:
        """After state ``i`` is expanded (both loops): count, deadlock, judge the new states, ``max_states``."""
        self.generated += successors
        if not successors:
            self._quiescent(i, key)
        keys = self.keys
        max_depth = self.spec.bounds.max_depth
        if first_new < len(keys) and (self.invariants or self.witnesses) and (
            max_depth is None or self.depth < max_depth
        ):
            self._judge(first_new)
        max_states = self.spec.bounds.max_states
        if max_states is not None and len(keys) >= max_states and i + 1 < len(keys) and not self.stop:
            self.stop = StopReason.MAX_STATES

    def _judge_temporal(self, graph: Graph) -> None:
        """Decide the temporal properties on the complete graph."""
        for name, finding in Judge(self.spec, self.plan, self.keys, self.parents, graph).decide().items():
            if finding is not None:
                self._found(name, finding.trace, finding.detail)
                if finding.loop is not None:
                    self.loops[name] = finding.loop
        self.stop = None  # the graph was complete, so every property is decided: nothing was cut short

    # -- one state's slow lane ------------------------------------------------------

    def _slow(self, i: int, key: Key, k: int, slow: tuple[Move, ...], before: Any) -> int:
        """Take instance ``k``'s slow moves from state ``i``; returns how many successors they made.

        Called once per (state, instance) with slow moves, so the common case
        -- a gated move whose successor needs no constraint -- stays inline;
        the rest goes through `_successor`.
        """
        plan = self.plan
        seen, keys, parents = self.seen, self.keys, self.parents
        wrap = plan.system is not None and plan.all_slow
        watched = bool(plan.global_transitions)
        pruning = plan.constraint is not None
        special = watched or pruning or plan.action_constraint is not None or plan.symmetry is not None
        graph = self.graph
        made = 0
        for move in slow:
            event = move.input
            if move.routed:
                taken = plan.take(key, k, move, before)
                self._ambiguity(i)
                for nk, effects, flags, rule in taken:
                    made += 1
                    self._successor(i, k, event, nk, effects, flags, rule, before, watched, pruning)
                continue
            if move.gates:  # `Plan.allows`, inline: the slow lane is hot (see also `LevelSearch._slow_packed`)
                g = None
                try:
                    for g in move.gates:
                        if not g.test(before, k, event):
                            break
                    else:
                        g = None
                except Exception as exc:
                    assert plan.system is not None and g is not None
                    guard_raised(exc, plan.system, g, before, k, event)
                if g is not None:
                    continue
            local = move.local
            nk = key[:k] + (local.next,) + key[k + 1 :]
            flags = local.flags
            effects = local.effects
            if wrap or (flags and plan.system is not None):
                effects = tuple(Emitted(plan.names[k], e) for e in effects)
            made += 1
            move.count += 1
            if flags or special:
                self._successor(i, k, event, nk, effects, flags, local.rule, before, watched, pruning)
                continue
            j = seen.get(nk, -2)
            if j == -2:
                j = seen[nk] = len(keys)
                keys.append(nk)
                parents.append(i)
            if graph is not None and j != i:  # as in the fast lane: a step that changes nothing is a stutter
                graph.targets.append(j)
                graph.labels.append(self.bases[k] + local.rule)
        return made

    def _successor(
        self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...], flags: tuple[str, ...],
        rule: int, before: Any, watched: bool, pruning: bool,
    ) -> None:
        """One successor from the slow lane: action properties, constraints, the state set and the graph."""
        plan = self.plan
        if flags or watched:
            self._action_properties(i, k, event, nk, effects, flags, before)
        if plan.action_constraint is not None and not self._action_inside(before, k, event, nk):
            self._judge_outside(nk, (i, k, event, effects))
            self.pruned += 1
            j = -1
        else:
            if plan.symmetry is not None:  # judged above as taken; stored as its class's representative
                nk = plan.symmetry.canonical(nk)
            if pruning:
                j = self._admit(i, nk, k, event, effects)
            else:
                seen = self.seen
                j = seen.get(nk, -2)
                if j == -2:
                    j = seen[nk] = len(self.keys)
                    self.keys.append(nk)
                    self.parents.append(i)
        graph = self.graph
        if graph is not None and j != i:  # as in the fast lane: a step that changes nothing is a stutter
            graph.targets.append(j)
            graph.labels.append(self.bases[k] + rule)

    def _admit(self, i: int, nk: Key, k: int, event: Any, effects: tuple[Any, ...]) -> int:
        """Add a successor found by the slow lane unless the state constraint prunes it; its number, or -1."""
        known = self.seen.get(nk)
        if known is not None:
            return known
        try:
            inside = self.spec.bounds.constraint is None or self._inside(nk)
        except UserCodeError as err:
            raise err.within(trace=tuple(self._edge(i, k, event, nk, effects))) from err.original
        if not inside:
            self._judge_outside(nk, (i, k, event, effects))
            self.pruned += 1
            return -1
        j = self.seen[nk] = len(self.keys)
        self.keys.append(nk)
        self.parents.append(i)
        return j

    def _action_properties(
        self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...], flags: tuple[str, ...], before: Any
    ) -> None:
        """Report broken per-instance properties (``flags``) and judge the global action properties."""
        plan = self.plan
        for name in flags:
            if name not in self.violations:
                self._found(name, self._edge(i, k, event, nk, effects))
        if not plan.global_transitions:
            return
        after = plan.view(nk)
        act = plan.action(k, event)
        for name, test in plan.global_transitions:
            if name in self.violations:
                continue
            try:
                ok = test(before, act, after)
            except Exception as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=before, input=act)
            if not ok:
                self._found(name, self._edge(i, k, event, nk, effects))

    def _quiescent(self, i: int, key: Key) -> None:
        """State ``i`` has no successor: a deadlock unless it is final."""
        if not self.spec.deadlock or "deadlock" in self.violations:
            return
        plan = self.plan
        terminal = [plan.tables[k].terminal[a] for k, a in enumerate(key)]
        if not is_final(plan.view(key), terminal, self.spec.final, spec=self.spec.name):
            self._found("deadlock", self._path(i))

    # -- constraints ----------------------------------------------------------------

    def _inside(self, key: Key) -> bool:
        """The spec's state constraint on ``key``."""
        constraint = self.spec.bounds.constraint
        assert constraint is not None
        state = self.plan.view(key)
        try:
            return bool(constraint(state))
        except Exception as exc:
            raised(exc, constraint, "constraint", spec=self.spec.name, state=state)

    def _action_inside(self, before: Any, k: int, event: Any, nk: Key) -> bool:
        """The spec's action constraint on one step."""
        test = self.plan.action_constraint
        assert test is not None
        act = self.plan.action(k, event)
        try:
            return bool(test(before, act, self.plan.view(nk)))
        except Exception as exc:
            raised(exc, test, "action constraint", spec=self.spec.name, state=before, input=act)

    def _judge_outside(self, key: Key, step: tuple[int, int, Any, tuple[Any, ...]] | None) -> None:
        """Invariants on a state the constraints leave out of the model (TLC checks them too)."""
        state = self.plan.view(key)
        for name, test in self.invariants:
            if name in self.violations:
                continue
            try:
                ok = test(state)
            except Exception as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=state)
            if not ok:
                if step is None:
                    trace = [TraceStep(state, None, ())]
                else:
                    i, k, event, effects = step
                    trace = self._edge(i, k, event, key, effects)
                self._found(name, trace)

    # -- findings -------------------------------------------------------------------

    def _found(self, name: str, trace: list[TraceStep], detail: str | None = None) -> None:
        """Record the first (so shortest) violation of ``name``; stop unless expected or keep_going."""
        if name in self.violations:
            return
        self.violations[name] = trace
        if detail:
            self.details[name] = detail
        if name not in self.expected and not self.keep_going:
            self.stop = StopReason.VIOLATION

    def _judge(self, start: int) -> None:
        """Invariants and witnesses on states ``start..``, in discovery (so depth) order."""
        plan = self.plan
        name, test = "", None
        for j in range(start, len(self.keys)):
            s = plan.view(self.keys[j])
            if self.probes:
                self._probe(self.keys[j], s)
            try:
                for name, test in self.invariants:
                    if not test(s):
                        self._found(name, self._path(j))
                        self.invariants = [p for p in self.invariants if p[0] != name]
                for name, test in self.witnesses:
                    if test(s):
                        self.witnessed[name] = self._path(j)
                        self.witnesses = [w for w in self.witnesses if w[0] != name]
            except Exception as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=s,
                       trace=tuple(self._path(j)))
            if self.stop or not (self.invariants or self.witnesses):
                return

    def _probe(self, key: Key, state: Any) -> None:
        """Under symmetry, refuse a property that tells members of a group apart (probed on early states)."""
        symmetry = self.plan.symmetry
        assert symmetry is not None
        self.probes -= 1
        for twin_key in symmetry.twins(key):
            twin = self.plan.view(twin_key)
            for name, test in self.invariants + self.witnesses:
                try:
                    differs = bool(test(state)) != bool(test(twin))
                except Exception as exc:
                    raised(exc, test, f"property {name!r}", spec=self.spec.name, state=twin)
                if differs:
                    groups = "; ".join(", ".join(g) for g in symmetry.names)
                    raise DefinitionError(
                        f"spec {self.spec.name!r}: property {name!r} is not symmetric in {groups}: it tells "
                        f"{state!r} and {twin!r} apart, so symmetry reduction would be unsound; check without it"
                    )

    def _ambiguity(self, i: int) -> None:
        """Report rows that one input enabled together, found while resolving local steps."""
        for t in self.plan.distinct_tables:
            while t.ambiguous:
                detail = t.ambiguous.pop()
                if self.spec.determinism:
                    self._found("determinism", self._path(i), detail)

    def _expand_local(self, k: int, a: int) -> tuple[tuple[int, ...], tuple[Move, ...]]:
        """Compute local state ``a``'s moves for instance ``k`` (first time only)."""
        table = self.plan.tables[k]
        moves = table.expand(a)
        if table.ambiguous:
            self._ambiguity(self.cursor)
        return moves

    def _edge(self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[TraceStep]:
        """The trace to state ``i`` plus one step to ``nk``.

        Under symmetry the trace to ``i`` ends in a real state that may be a
        permutation of ``i``; the last step is the same input taken from it.
        """
        plan = self.plan
        if plan.symmetry is None:
            return self._path(i) + [TraceStep(plan.view(nk), plan.action(k, event), effects)]
        steps, real = plan.concrete(self.keys, plan.chain(self.parents, i))
        return steps + [plan.step_into(real, plan.symmetry.canonical(nk), event)[1]]

    def _path(self, i: int) -> list[TraceStep]:
        """The shortest trace to state ``i`` (every finding's trace starts here)."""
        return self.plan.path(self.parents, self.keys, i)

    def _trace_to_cursor(self) -> tuple[TraceStep, ...] | None:
        if not self.keys:
            return None
        return tuple(self.plan.path(self.parents, self.keys, min(self.cursor, len(self.keys) - 1)))

    # -- bounds, time and progress --------------------------------------------------

    def _next_level(self) -> bool:
        """Start the next BFS level; False when ``max_depth`` forbids it."""
        self.depth += 1
        self.level_end = len(self.keys)
        max_depth = self.spec.bounds.max_depth
        if max_depth is not None and self.depth > max_depth:
            self.stop, self.within, self.depth = StopReason.MAX_DEPTH, self.cursor, max_depth
            return False
        return True

    def _poll(self) -> bool:
        """Every 1,024 states: the time limit, the caller's ``should_stop`` and progress. True to stop."""
        now = self.clock() - self.started if self.clock is not None else 0.0
        limit = self.spec.bounds.time_limit
        if limit is not None and now > limit:
            self.stop = StopReason.TIME_LIMIT
            return True
        if self.should_stop is not None:
            self.stop = self.should_stop()
            if self.stop is not None:
                return True
        i = self.cursor
        if self.progress_every and not i % self.progress_every:
            assert self.progress is not None
            self.progress(Progress(len(self.keys), self.generated, self.depth, len(self.keys) - i, now))
        return False

    # -- the report -----------------------------------------------------------------

    def _hits(self) -> dict[int, Any]:
        """How often each local state was expanded, per table: what coverage multiplies out."""
        return local_hits(self.plan, self.keys[: self.cursor])

    def _report(self) -> Report:
        stop = self.stop
        depth = self.depth
        if stop is not StopReason.MAX_DEPTH and len(self.keys) > self.level_end:
            depth += 1  # states of the next level were found before the search stopped
        seconds = self.clock() - self.started if self.clock is not None else 0.0
        distinct = self.within if stop is StopReason.MAX_DEPTH else len(self.keys)
        results = judged(self.spec, self.violations, self.details, self.witnessed, complete=stop is None,
                         loops=self.loops)
        if any(r.failed for r in results):
            verdict = Verdict.VIOLATED
        else:
            verdict = Verdict.OK if stop is None else Verdict.BOUNDED
        rows = coverage(self.plan, self._hits())
        symmetric = self.plan.symmetry.names if self.plan.symmetry is not None else ()
        return Report(self.spec.name, verdict, stop is None, stop, distinct, self.generated, depth, seconds,
                      results, rows, self.pruned, symmetric)


def check(
    spec: Spec,
    *,
    keep_going: bool = False,
    clock: Callable[[], float] | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 1 << 16,
    should_stop: Callable[[], StopReason | None] | None = None,
    symmetry: bool = False,
) -> Report:
    """Explore every reachable state of ``spec`` breadth-first and judge its properties.

    By default the search stops at the first unexpected violation (its trace is
    a shortest one); ``keep_going=True`` explores everything and reports the
    first (shortest) trace of every violated property. ``clock`` (e.g.
    ``time.perf_counter``) enables timings and ``Bounds.time_limit``;
    ``progress`` is called every ``progress_every`` expanded states.
    ``should_stop`` is polled every 1,024 expanded states; returning a
    `StopReason` (say ``INTERRUPTED`` from a signal handler's flag) ends the
    search there with a BOUNDED report of what was explored so far.

    >>> from statewright.kernel.check.spec import Spec, always
    >>> from statewright.kernel.machine import Machine, Transition
    >>> from enum import Enum
    >>> from dataclasses import dataclass, replace
    >>> class P(Enum):
    ...     COUNTING = 1
    >>> @dataclass(frozen=True, slots=True)
    ... class Counter:
    ...     phase: P = P.COUNTING
    ...     n: int = 0
    >>> @dataclass(frozen=True, slots=True)
    ... class Inc: pass
    >>> def below_3(s, i): return s.n < 3
    >>> counter = Machine("counter", initial=Counter(), transitions=[
    ...     Transition(P.COUNTING, Inc, P.COUNTING, guard=below_3,
    ...                update=lambda s, i: replace(s, n=s.n + 1))])
    >>> report = check(Spec("count", counter, [Inc()], [always("small", lambda s: s.n <= 3)],
    ...                     deadlock=False))
    >>> report.verdict, report.distinct_states, report.depth
    (<Verdict.OK: 'ok'>, 4, 4)
    """
    return Search(spec, keep_going=keep_going, clock=clock, progress=progress, progress_every=progress_every,
                  should_stop=should_stop, symmetry=symmetry).run()
