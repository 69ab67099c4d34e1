"""`check(spec) -> Report`: breadth-first explicit-state model checking.

States are numbered in discovery order, so the list of keys *is* the BFS
queue, and the dict of seen keys maps each key to its parent's number: enough
to rebuild a shortest path. The action behind each step is found again by
re-expanding the parent (as TLC does) only when a trace is wanted. A key is a
tuple of local ids (see `local.py`); the inner loop builds successor keys from
memoised local moves and calls user code only for system guards, routed
effects and property tests.

The checker does no IO: time arrives through an optional ``clock`` callable
and progress leaves through an optional callback.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from operator import getitem, itemgetter
from typing import Any

from statewright.kernel.check.local import Local, LocalTable, Move
from statewright.kernel.check.report import Coverage, Progress, PropertyResult, Report, Status, StopReason, TraceStep, Verdict
from statewright.kernel.check.spec import BUILTIN, Kind, Spec
from statewright.kernel.boundary import raised
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.machine import Machine
from statewright.kernel.step import Rejected
from statewright.kernel.system import Action, Blocked, Emitted, System, guard_raised, settle

__all__ = ["check"]

Key = tuple[int, ...]
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
                    all_slow=bool(self.global_transitions),
                )
            if self.system is not None:
                table.instances.append(name)
            tables.append(table)
        self.tables = tables
        self.distinct_tables = list(shared.values())
        self.initial: Key = self._initial(spec, initial)
        lists = [t.states for t in tables]
        if self.system is None:
            only = lists[0]
            self.view: Callable[[Key], Any] = lambda key: only[key[0]]
        else:
            cls = self.system.view
            new = tuple.__new__
            self.view = lambda key: new(cls, map(getitem, lists, key))

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

    def take(self, key: Key, k: int, move: Move, before: Any) -> tuple[Key, tuple[Any, ...], tuple[str, ...]] | None:
        """Follow one move from ``key``: the next key, the effects and the broken local properties.

        None when a system guard or a routed input refuses it.
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
                    return None
            effects = local.effects
            if self.system is not None:
                name = self.names[k]
                effects = tuple(Emitted(name, e) for e in effects)
            return key[:k] + (local.next,) + key[k + 1 :], effects, local.flags
        assert self.system is not None
        tables = self.tables
        fired: list[tuple[LocalTable, int]] = []
        flags: list[str] = []

        def fire(j: int, a: int, event: Any) -> tuple[int, tuple[Any, ...]] | Rejected:
            step = tables[j].resolve(a, event)
            if isinstance(step, Rejected):
                return step
            fired.append((tables[j], step.rule))
            flags.extend(step.flags)
            return step.next, step.effects

        out = settle(self.system, list(key), k, move.input, before, fire)
        if isinstance(out, Blocked):
            return None
        for table, rule in fired:
            table.routed_fired[rule] = table.routed_fired.get(rule, 0) + 1
        ids, emitted = out
        return tuple(ids), tuple(emitted), tuple(flags)

    def successors(self, key: Key) -> Iterator[tuple[int, Any, Key, tuple[Any, ...]]]:
        """Every (position, input, next key, effects) from ``key``, in search order."""
        before = self.view(key)
        for k, t in enumerate(self.tables):
            a = key[k]
            for event in t.inputs_of(a):
                local = t.resolve(a, event)
                if isinstance(local, Rejected):
                    continue
                taken = self.take(key, k, t.move(a, event, local), before)
                if taken is not None:
                    yield k, event, taken[0], taken[1]

    def action(self, k: int, event: Any) -> Any:
        return event if self.system is None else Action(self.names[k], event)

    def path(self, seen: dict[Key, int], keys: list[Key], i: int) -> list[TraceStep]:
        """The shortest trace from the initial state to state ``i``."""
        chain = [i]
        while chain[-1] > 0:
            chain.append(seen[keys[chain[-1]]])
        chain.reverse()
        steps = [TraceStep(self.view(keys[0]), None, ())]
        for p, c in zip(chain, chain[1:]):
            target = keys[c]
            for k, event, nk, effects in self.successors(keys[p]):
                if nk == target:
                    steps.append(TraceStep(self.view(nk), self.action(k, event), effects))
                    break
            else:  # pragma: no cover - would mean successors() disagrees with the search
                raise AssertionError("trace reconstruction lost its way")
        return steps


def check(
    spec: Spec,
    *,
    keep_going: bool = False,
    clock: Callable[[], float] | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 1 << 16,
    should_stop: Callable[[], StopReason | None] | None = None,
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
    bounds = spec.bounds
    if bounds.time_limit is not None and clock is None:
        raise DefinitionError(f"spec {spec.name!r}: a time_limit needs a clock (check(spec, clock=time.monotonic))")
    started = clock() if clock is not None else 0.0
    plan = Plan(spec)
    view = plan.view
    tables = plan.tables
    positions = range(len(tables))
    all_moves = [t.moves for t in tables]

    invariants = [(p.name, p.test) for p in spec.properties if p.kind is Kind.ALWAYS]
    witnesses = [(p.name, p.test) for p in spec.properties if p.kind is Kind.SOMETIMES]
    global_transitions = plan.global_transitions
    expected = set(spec.expect)
    violations: dict[str, list[TraceStep]] = {}
    details: dict[str, str] = {}
    witnessed: dict[str, list[TraceStep]] = {}
    constraint = bounds.constraint
    final = spec.final
    cut: list[int] = []

    keys: list[Key] = [plan.initial]
    seen: dict[Key, int] = {plan.initial: -1}  # key -> number of the state it was found from
    stop: StopReason | None = None

    def found(name: str, trace: list[TraceStep], detail: str | None = None) -> None:
        nonlocal stop
        if name in violations:
            return
        violations[name] = trace
        if detail:
            details[name] = detail
        if name not in expected and not keep_going:
            stop = StopReason.VIOLATION

    def judge(start: int) -> None:
        """Invariants and witnesses on states ``start..``, in discovery (so depth) order."""
        nonlocal invariants, witnesses
        test: Test  # the property being tested when one raises
        for j in range(start, len(keys)):
            s = view(keys[j])
            try:
                for name, test in invariants:
                    if not test(s):
                        found(name, plan.path(seen, keys, j))
                        invariants = [p for p in invariants if p[0] != name]
                for name, test in witnesses:
                    if test(s):
                        witnessed[name] = plan.path(seen, keys, j)
                        witnesses = [w for w in witnesses if w[0] != name]
            except Exception as exc:
                raised(exc, test, f"property {name!r}", spec=spec.name, state=s, trace=tuple(plan.path(seen, keys, j)))
            if stop or not (invariants or witnesses):
                return

    def is_done(final: Callable[[Any], bool], s: Any) -> bool:
        """The spec's ``final(s)``: may a state with no successor stop here?"""
        try:
            return final(s)
        except Exception as exc:
            raised(exc, final, "final", spec=spec.name, state=s)

    def edge(i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[TraceStep]:
        return plan.path(seen, keys, i) + [TraceStep(view(nk), plan.action(k, event), effects)]

    def ambiguity(i: int) -> None:
        for t in plan.distinct_tables:
            while t.ambiguous:
                a, event, labels = t.ambiguous.pop()
                if spec.determinism:
                    detail = f"machine {t.machine.name!r} in {t.states[a]!r}: {event!r} enables " + "; ".join(labels)
                    found("determinism", plan.path(seen, keys, i), detail)

    def expand(k: int, a: int, i: int) -> tuple[tuple[int, ...], tuple[Move, ...]]:
        moves = tables[k].expand(a)
        if tables[k].ambiguous:
            ambiguity(i)
        return moves

    generated = 0
    depth = 1
    level_end = 1
    i = 0
    within = 0
    max_depth = bounds.max_depth
    max_states = bounds.max_states
    time_limit = bounds.time_limit
    tick = progress_every if progress is not None else 0
    try:  # free until something raises; the trace to the state being expanded is added here
        judge(0)
        while i < len(keys) and not stop:
            if i == level_end:
                depth += 1
                level_end = len(keys)
                if max_depth is not None and depth > max_depth:
                    stop, within, depth = StopReason.MAX_DEPTH, i, max_depth
                    break
            key = keys[i]
            if constraint is not None:
                try:
                    inside = constraint(view(key))
                except Exception as exc:
                    raised(exc, constraint, "constraint", spec=spec.name, state=view(key))
                if not inside:
                    cut.append(i)
                    i += 1
                    continue
            if not i & 1023 and i:
                now = clock() - started if clock is not None else 0.0
                if time_limit is not None and now > time_limit:
                    stop = StopReason.TIME_LIMIT
                    break
                if should_stop is not None:
                    stop = should_stop()
                    if stop is not None:
                        break
                if tick and not i % tick:
                    progress(Progress(len(keys), generated, depth, len(keys) - i, now))  # type: ignore[misc]
            first_new = len(keys)
            before = None
            successors = 0
            for k in positions:
                a = key[k]
                fast, slow = all_moves[k][a] or expand(k, a, i)
                if fast:
                    successors += len(fast)
                    pre = key[:k]
                    post = key[k + 1 :]
                    for b in fast:
                        nk = pre + (b,) + post
                        if nk not in seen:
                            seen[nk] = i
                            keys.append(nk)
                if not slow:
                    continue
                if before is None:
                    before = view(key)
                for move in slow:
                    event = move.input
                    if move.routed:
                        taken = plan.take(key, k, move, before)
                        ambiguity(i)
                        if taken is None:
                            continue
                        nk, effects, flags = taken
                    else:
                        try:
                            for g in move.gates:
                                if not g.test(before, k, event):
                                    break
                            else:
                                g = None
                        except Exception as exc:
                            assert plan.system is not None
                            guard_raised(exc, plan.system, g, before, k, event)
                        if g is not None:
                            continue
                        local = move.local
                        nk = key[:k] + (local.next,) + key[k + 1 :]
                        flags = local.flags
                        effects = local.effects
                    successors += 1
                    move.count += 1
                    if flags or global_transitions:
                        if not move.routed and plan.system is not None:
                            effects = tuple(Emitted(plan.names[k], e) for e in effects)
                        for name in flags:
                            if name not in violations:
                                found(name, edge(i, k, event, nk, effects))
                        if global_transitions:
                            after = view(nk)
                            act = plan.action(k, event)
                            for name, test in global_transitions:
                                try:
                                    ok = name in violations or test(before, act, after)
                                except Exception as exc:
                                    raised(exc, test, f"property {name!r}", spec=spec.name, state=before, input=act)
                                if not ok:
                                    found(name, edge(i, k, event, nk, effects))
                    if nk not in seen:
                        seen[nk] = i
                        keys.append(nk)
            generated += successors
            if not successors and spec.deadlock and "deadlock" not in violations:
                if final is not None:
                    is_final = is_done(final, view(key))
                else:
                    is_final = all(tables[k].terminal[key[k]] for k in positions)
                if not is_final:
                    found("deadlock", plan.path(seen, keys, i))
            if first_new < len(keys) and (invariants or witnesses) and (max_depth is None or depth < max_depth):
                judge(first_new)
            i += 1
            if max_states is not None and len(keys) >= max_states and i < len(keys) and not stop:
                stop = StopReason.MAX_STATES
    except UserCodeError as err:
        raise err.within(spec=spec.name, trace=tuple(plan.path(seen, keys, i))) from err.original
    if stop is None and cut:
        stop = StopReason.CONSTRAINT
    if stop is not StopReason.MAX_DEPTH and len(keys) > level_end:
        depth += 1  # states of the next level were found before the search stopped
    expanded = keys[:i]
    for j in reversed(cut):
        del expanded[j]
    seconds = clock() - started if clock is not None else 0.0
    distinct = within if stop is StopReason.MAX_DEPTH else len(keys)
    coverage = _coverage(plan, expanded)
    results = _results(spec, violations, details, witnessed, complete=stop is None)
    if any(r.failed for r in results):
        verdict = Verdict.VIOLATED
    else:
        verdict = Verdict.OK if stop is None else Verdict.BOUNDED
    return Report(spec.name, verdict, stop is None, stop, distinct, generated, depth, seconds, results, coverage)


def _results(
    spec: Spec,
    violations: dict[str, list[TraceStep]],
    details: dict[str, str],
    witnessed: dict[str, list[TraceStep]],
    *,
    complete: bool,
) -> tuple[PropertyResult, ...]:
    expected = set(spec.expect)
    kinds = {p.name: p.kind for p in spec.properties}
    out: list[PropertyResult] = []
    for name in spec.checks:
        kind = kinds.get(name) or BUILTIN[name]
        trace = violations.get(name)
        if kind is Kind.SOMETIMES:
            trace = witnessed.get(name)
            if trace is not None:
                status = Status.HOLDS
            else:
                status = Status.VIOLATED if complete else Status.UNKNOWN
        elif trace is not None:
            status = Status.VIOLATED
        else:
            status = Status.HOLDS if complete else Status.UNKNOWN
        detail = details.get(name)
        if name in expected:
            status = Status.EXPECTED if status is Status.VIOLATED else Status.MISSING
            pinned = spec.expect.get(name) if isinstance(spec.expect, Mapping) else None
            if status is Status.EXPECTED and pinned is not None and trace is not None and len(trace) != pinned:
                status = Status.MISMATCH
                detail = f"expected a {pinned}-state shortest trace, found {len(trace)} states"
        out.append(PropertyResult(name, kind, status, tuple(trace) if trace is not None else None, detail))
    return tuple(out)


def _coverage(plan: Plan, expanded: list[Key]) -> tuple[Coverage, ...]:
    """Times each row fired: expansions of each local state times its fast rows, plus slow firings."""
    hits: dict[int, Counter[int]] = {}
    for k, t in enumerate(plan.tables):
        hits.setdefault(id(t), Counter()).update(map(itemgetter(k), expanded))
    counts: dict[int, dict[int, int]] = {}
    emitted: dict[int, dict[int, dict[str, None]]] = {}
    machines: dict[int, Machine[Any]] = {}
    for t in plan.distinct_tables:
        machines[id(t.machine)] = t.machine
        mine = counts.setdefault(id(t.machine), {})
        for rule, fired in t.fired(hits[id(t)]).items():
            mine[rule] = mine.get(rule, 0) + fired
        seen = emitted.setdefault(id(t.machine), {})
        for local in t.results.values():
            if isinstance(local, Local):
                names = seen.setdefault(local.rule, {})
                for e in local.effects:
                    names[type(e).__name__] = None
    return tuple(
        Coverage(m.name, idx, label, counts[mid].get(idx, 0), tuple(sorted(emitted[mid].get(idx, ()))))
        for mid, m in machines.items()
        for idx, label in enumerate(m.labels)
    )
