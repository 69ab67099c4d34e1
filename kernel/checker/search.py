"""`Search`: breadth-first explicit-state model checking on one core, with tuple keys in a dict.

Theory of operation
-------------------
States are numbered in discovery order, so the list of keys *is* the BFS
queue: state ``i`` is expanded when the cursor reaches ``i``. ``seen`` maps a
key to its number and ``parents[i]`` holds the number of the state ``i`` was
found from (-1 for an initial state), which is enough to rebuild a shortest
trace; the action behind each step is found again by re-expanding the parent
(as TLC does), only when a trace is wanted.

A key is a tuple of local ids (`kernel.checker.local`). Expanding a state runs
through each instance's memoised moves in two lanes:

* the **fast lane** -- local steps that no system guard gates, that route no
  effect and that break no per-instance property -- builds successor keys by
  splicing the next local id into the key, and calls no user code at all;
* the **slow lane** -- everything else -- is `kernel.checker.lane.SlowLane`,
  which every engine shares: system guards, routed effects, broken
  properties, global step properties and the constraints.

What is judged, and how findings are kept, is the `Judge`'s
(`kernel.checker.judge`); cut-offs from outside the model are the `Watch`'s.
Whatever stops the search is a `StopReason`; `results.conclude` builds the
report. The search does no IO.

The twin loops
--------------
`Search._explore` and `Search._explore_recording` are one loop kept twice on
purpose: the second also records every step for temporal properties (the
graph of `kernel.checker.behaviours`), and folding that into the first costs
the fast lane a test per successor. Change one, change the other;
``tests/kernel/test_search_twins.py`` runs both on every bundled spec and
requires the same states, numbers, parents and findings.
"""

from __future__ import annotations

from array import array
from typing import Any

from statewright.kernel.checker.behaviours import Edges, TemporalJudge
from statewright.kernel.checker.judge import Judge, StoredTraces
from statewright.kernel.checker.lane import SlowLane
from statewright.kernel.checker.local import Key, Move
from statewright.kernel.checker.options import Options
from statewright.kernel.checker.report import Report, StopReason
from statewright.kernel.checker.results import conclude, local_hits
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.checker.watch import Watch
from statewright.kernel.errors import UserCodeError

__all__ = ["Search"]


class Search:
    """One breadth-first search of a spec on one core: its frontier, and why it stopped."""

    def __init__(self, spec: Spec, options: Options | None = None, space: StateSpace | None = None) -> None:
        options = (options or Options()).of(spec)
        self.spec = spec
        self.options = options
        self.space = space if space is not None else StateSpace(spec, symmetric=options.symmetry)
        self.keys: list[Key] = []
        self.seen: dict[Key, int] = {}
        self.parents = array("q")
        self.traces = StoredTraces(self.space, self.keys, self.parents)
        self.judge = Judge(spec, self.space, self.traces, keep_going=options.keep_going)
        self.lane = SlowLane(self.space, self.judge, self.seen)
        self.watch = Watch(options)
        self.stop: StopReason | None = None
        self.cursor = 0
        """The number of the state being expanded; every state before it is expanded."""
        self.depth = 1
        self.level_end = 0
        self.within = 0
        """States within ``max_depth`` when that cut-off stopped the search."""
        self.generated = 0
        self.graph = Edges.empty() if spec.temporal else None
        """Every explored step, kept only when a temporal property needs the graph."""
        if self.graph is not None:
            self.lane.rules = []
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
            raise err.within(spec=self.spec.name, trace=self.traces.to(self.cursor)) from err.original
        return self._report()

    def _start(self) -> None:
        """Admit the initial states (depth 1); the constraint and invariants apply to them too."""
        for key in self.judge.initials():
            self.seen[key] = len(self.keys)
            self.keys.append(key)
            self.parents.append(-1)
        self.level_end = len(self.keys)
        self.judge.states(0, self.keys)
        self._stopped()

    def _explore(self) -> None:
        """The BFS loop; its body is the fast lane (see the module docstring). Twin: `_explore_recording`."""
        space = self.space
        keys, seen, parents = self.keys, self.seen, self.parents
        all_moves = [t.moves for t in space.tables]
        positions = range(len(space.tables))
        i = self.cursor
        poll_at = self.watch.next
        while i < len(keys) and not self.stop:
            self.cursor = i
            if i == self.level_end and not self._next_level():
                break
            if i >= poll_at:
                if self._poll():
                    break
                poll_at = self.watch.next
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
                        before = space.view(key)
                    successors += self._slow(i, key, k, slow, before)
            self._expanded(i, key, first_new, successors)
            i += 1
        self.cursor = i

    def _explore_recording(self, graph: Edges) -> None:
        """`_explore` that also records every step (target number, row label) for temporal properties. Twin: `_explore`.

        The fast lane looks up each target's number and appends it with
        ``bases[k] + row`` to the graph's arrays. A step that leaves the state
        as it was is not recorded: as in TLA+ (``<<A>>_vars``), it is a
        stuttering step, which fairness neither counts as enabling its action
        nor as taking it.
        """
        space = self.space
        keys, seen, parents = self.keys, self.seen, self.parents
        offsets, targets, labels = graph.offsets, graph.targets, graph.labels
        tables = space.tables
        all_moves = [t.moves for t in tables]
        rules = [t.fast_rules for t in tables]
        bases = space.bases
        positions = range(len(tables))
        i = self.cursor
        poll_at = self.watch.next
        while i < len(keys) and not self.stop:
            self.cursor = i
            if i == self.level_end and not self._next_level():
                break
            if i >= poll_at:
                if self._poll():
                    break
                poll_at = self.watch.next
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
                        before = space.view(key)
                    successors += self._slow(i, key, k, slow, before)
            offsets.append(len(targets))
            self._expanded(i, key, first_new, successors)
            i += 1
        self.cursor = i

    def _slow(self, i: int, key: Key, k: int, slow: tuple[Move, ...], before: Any) -> int:
        """Admit what the slow lane makes of instance ``k``'s slow moves from state ``i``; how many successors."""
        lane = self.lane
        out = lane.run(i, key, k, slow, before)
        seen, keys, parents = self.seen, self.keys, self.parents
        graph = self.graph
        if graph is None:
            for x in out:
                if x is None:
                    continue
                nk = key[:k] + (x,) + key[k + 1 :] if isinstance(x, int) else x
                if nk not in seen:
                    seen[nk] = len(keys)
                    keys.append(nk)
                    parents.append(i)
            return len(out)
        rules = lane.rules
        assert rules is not None
        base = self.space.bases[k]
        for x, r in zip(out, rules):
            if x is None:
                j = -1  # pruned: it still enables its action (TLC's ENABLED), but leads nowhere
            else:
                nk = key[:k] + (x,) + key[k + 1 :] if isinstance(x, int) else x
                j = seen.get(nk, -2)
                if j == -2:
                    j = seen[nk] = len(keys)
                    keys.append(nk)
                    parents.append(i)
            if j != i:  # as in the fast lane: a step that changes nothing is a stutter
                graph.targets.append(j)
                graph.labels.append(base + r)
        rules.clear()
        return len(out)

    def _expanded(self, i: int, key: Key, first_new: int, successors: int) -> None:
        """After state ``i`` is expanded (both loops): count, deadlock, judge the new states, ``max_states``."""
        self.generated += successors
        judge = self.judge
        if not successors:
            judge.quiescent(i, key)
        keys = self.keys
        max_depth = self.options.max_depth
        if first_new < len(keys) and judge.open and (max_depth is None or self.depth < max_depth):
            judge.states(first_new, keys[first_new:])
        self._stopped()
        max_states = self.options.max_states
        if max_states is not None and len(keys) >= max_states and i + 1 < len(keys) and not self.stop:
            self.stop = StopReason.MAX_STATES

    def _stopped(self) -> None:
        """Stop once the judge found an unexpected violation."""
        if self.judge.stop and self.stop is None:
            self.stop = StopReason.VIOLATION

    def _expand_local(self, k: int, a: int) -> tuple[tuple[int, ...], tuple[Move, ...]]:
        """Compute local state ``a``'s moves for instance ``k`` (first time only)."""
        table = self.space.tables[k]
        moves = table.expand(a)
        if table.ambiguous:
            self.judge.ambiguity(self.cursor)
            self._stopped()
        return moves

    def _judge_temporal(self, graph: Edges) -> None:
        """Decide the temporal properties on the complete graph."""
        for name, finding in TemporalJudge(self.spec, self.space, self.keys, self.parents, graph).decide().items():
            if finding is not None:
                self.judge.found(name, finding.trace, finding.detail)
                if finding.loop is not None:
                    self.loops[name] = finding.loop
        self.stop = None  # the graph was complete, so every property is decided: nothing was cut short

    # -- cut-offs and the report ----------------------------------------------------

    def _next_level(self) -> bool:
        """Start the next BFS level; False when ``max_depth`` forbids it."""
        self.depth += 1
        self.level_end = len(self.keys)
        max_depth = self.options.max_depth
        if max_depth is not None and self.depth > max_depth:
            self.stop, self.within, self.depth = StopReason.MAX_DEPTH, self.cursor, max_depth
            return False
        return True

    def _poll(self) -> bool:
        """When the `Watch` says a poll is due (every 1,024 states, or sooner): whether to stop."""
        self.stop = self.watch.poll(self.cursor, len(self.keys), self.generated, self.depth)
        return self.stop is not None

    def _report(self) -> Report:
        stop = self.stop
        depth = self.depth
        if stop is not StopReason.MAX_DEPTH and len(self.keys) > self.level_end:
            depth += 1  # states of the next level were found before the search stopped
        distinct = self.within if stop is StopReason.MAX_DEPTH else len(self.keys)
        return conclude(self.judge, stop=stop, distinct=distinct, generated=self.generated, depth=depth,
                        seconds=self.watch.elapsed(), hits=local_hits(self.space, self.keys[: self.cursor]),
                        loops=self.loops)
