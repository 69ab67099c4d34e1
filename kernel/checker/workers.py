"""The level engine on several workers: a coordinator that owns the store, workers that expand and judge.

How it works
------------
The `Coordinator` closes the spec's local tables (`kernel.checker.levels.prepare_levels`
did that), owns the packed state store and orders the work. Each level's
frontier is cut into chunks; a chunk goes to an idle worker, which runs the
slow lane and the vectorised fast lane on it (`Worker.expand_job`) and sends
back its successors as a packed ``uint64`` array in `Search`'s order. The
coordinator admits chunks in order (`kernel.checker.packed.admit`: a binary
search against the sorted store, the first occurrence of each new key), so
states get the numbers `Search` would give them, and hands each chunk's new
states to a worker to judge (`Worker.judge_job`). Findings carry their place
in `Search`'s order (`Order`) and a marker for the trace to their state
(`PathTo`, `StepTo`), which the coordinator fills in from its parent links:
counts, depths, verdicts, traces and coverage equal `Search`'s. An unexpected
violation raises `FellBack`: its report, cut at that violation, is `Search`'s
to give.

The transport
-------------
Workers receive and return plain data: a chunk's first state number and its
keys; an `Expanded`; a list of `Found`; a `Counted`. A `Pool` carries those
messages. `LocalPool` answers them in this process (small levels, and every
level when no other pool is given); the shell's pool forks processes
(`statewright.adapters.checking`), and another transport -- Ray actors, say --
only has to carry the same four messages and give every worker the closed
space. Partitioning the store itself across machines means sending each
candidate to the owner of ``hash(key) % n`` instead of to the coordinator, and
gathering each level's new keys with their first positions (`admit` is a
function of a store and a candidate array).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from statewright.kernel.checker.judge import Judge, StoredTraces
from statewright.kernel.checker.levels import CHUNK, Expanded, FellBack, Levels
from statewright.kernel.checker.local import Key
from statewright.kernel.checker.options import Options
from statewright.kernel.checker.packed import (
    Keys,
    PackedStore,
    Packing,
    StoredKeys,
    admit,
)
from statewright.kernel.checker.pool import Pool
from statewright.kernel.checker.report import Report, StopReason
from statewright.kernel.checker.results import conclude
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.checker.watch import Watch
from statewright.kernel.errors import UserCodeError
from statewright.kernel.trace import TraceStep

__all__ = [
    "FORK_AT", "Coordinator", "Counted", "Found", "LocalPool", "Order", "PathTo", "StepTo", "UserCodeInWorker",
    "Worker", "WorkerFailed",
    "add_counted",
]

SMALLEST_CHUNK = 512
WAIT = 0.1
"""Seconds the coordinator waits for a worker's answer before it polls the `Watch` again."""
FORK_AT = 4096
"""The frontier size from which levels go to the pool a `PoolFactory` makes (smaller ones stay local)."""


class WorkerFailed(Exception):
    """A worker raised or died; the caller answers with `Search` instead."""


class UserCodeInWorker(WorkerFailed):
    """A worker's job met an error in the user's code: `Search` raises it, at the first place in its order."""


# -- the messages ---------------------------------------------------------------------


class StepTo:
    """Stands for the last step of a finding's trace made in a worker: a key, not a state.

    System states are views of a class made per `System`, which cannot cross
    a process boundary; the key, the action and the effects can.
    """

    __slots__ = ("effects", "event", "key", "position")

    def __init__(self, position: int, event: Any, key: Key, effects: tuple[Any, ...]) -> None:
        self.position = position
        self.event = event
        self.key = key
        self.effects = effects


class PathTo:
    """Stands for the shortest trace to state ``index`` in a finding made where the store is not."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"PathTo({self.index})"


class Markers:
    """The `Traces` of a worker: markers the coordinator resolves (`Coordinator.resolve`)."""

    def path(self, i: int) -> list[Any]:
        return [PathTo(i)]

    def edge(self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[Any]:
        return [PathTo(i), StepTo(k, event, nk, effects)]


Order = tuple[int, int, int]
"""Where a finding falls in `Search`'s order: (expanded state, 0 slow lane / 1 deadlock / 2 judging, then sequence)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Found:
    """One violation (or witness) a worker found, with its place in `Search`'s order."""

    order: Order
    name: str
    trace: tuple[Any, ...]
    detail: str | None = None
    witness: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Counted:
    """What a worker's tables counted: slow moves, per table, local state and move; routed rows and effects."""

    moves: tuple[tuple[tuple[int, int, int], ...], ...]
    routed: tuple[dict[int, int], ...]
    emitted: tuple[dict[int, dict[str, None]], ...]


def add_counted(space: StateSpace, fired: Counted) -> None:
    """Add a worker's counts (`Worker.fired`) to ``space``'s tables."""
    for t, moves, routed, emitted in zip(space.distinct_tables, fired.moves, fired.routed, fired.emitted):
        for a, j, count in moves:
            slot = t.moves[a]
            assert slot is not None
            slot[1][j].count += count
        for rule, count in routed.items():
            t.routed_fired[rule] = t.routed_fired.get(rule, 0) + count
        for rule, names in emitted.items():
            t.routed_emitted.setdefault(rule, {}).update(names)


# -- the worker -----------------------------------------------------------------------


class Worker:
    """The level engine's expand and judge steps as jobs on arrays, for a place that holds no store.

    It runs on the coordinator's closed space (a forked copy, so local ids
    agree: ``forked=True`` forgets the counts the copy inherited), never stops
    on a finding (the coordinator decides), and returns each job's findings
    with their `Order` and `PathTo` markers.
    """

    def __init__(self, spec: Spec, space: StateSpace, packing: Packing, *, forked: bool) -> None:
        if forked:
            for t in space.distinct_tables:
                t.routed_fired.clear()
                t.routed_emitted.clear()
                for moves in t.moves:
                    for m in moves[1] if moves is not None else ():
                        m.count = 0
        self.space = space
        self.judge = Judge(spec, space, Markers(), keep_going=True)
        self.judge.on_found = self._found
        self.levels = Levels(space, packing, self.judge)
        self.found: list[Found] = []
        self.sequence = 0
        self.judged_from: tuple[int, NDArray[np.int64]] = (0, np.empty(0, dtype=np.int64))
        self.judging = False

    def serve(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """Answer one message: ``("expand", first, keys)``, ``("judge", start, keys, parents)`` or ``("fired",)``."""
        if message[0] == "expand":
            return ("expand", message[1], *self.expand_job(message[1], message[2]))
        if message[0] == "judge":
            return ("judge", self.judge_job(message[1], message[2], message[3]))
        if message[0] == "fired":
            return ("fired", self.fired())
        raise ValueError(f"a worker cannot answer {message[0]!r}")

    def expand_job(self, first: int, keys: Keys) -> tuple[Expanded, list[Found]]:
        """`Levels.expand` of states ``first..``, and what it found."""
        self._fresh()
        expanded = self.levels.expand(first, keys)
        return expanded, self.found

    def judge_job(self, start: int, keys: Keys, parents: NDArray[np.int64]) -> list[Found]:
        """`Levels.judge_states` of new states ``start..`` found from ``parents``, and what it found."""
        self._fresh()
        self.judging = True
        self.judged_from = (start, parents)
        try:
            self.levels.judge_states(start, keys)
        finally:
            self.judging = False
        for name, trace in self.judge.witnessed.items():
            self.found.append(Found(self._judged_order(trace), name, tuple(trace), None, True))
        return self.found

    def fired(self) -> Counted:
        """The counts the coordinator adds to its own tables before it reports coverage."""
        tables = self.space.distinct_tables
        moves = tuple(
            tuple((a, j, m.count) for a, ms in enumerate(t.moves) if ms is not None for j, m in enumerate(ms[1]) if m.count)
            for t in tables
        )
        return Counted(moves, tuple(dict(t.routed_fired) for t in tables),
                     tuple({r: dict(n) for r, n in t.routed_emitted.items()} for t in tables))

    def _fresh(self) -> None:
        self.found = []
        self.sequence = 0
        self.judge.reset()

    def _judged_order(self, trace: Sequence[Any]) -> Order:
        j = trace[0].index
        start, parents = self.judged_from
        return (int(parents[j - start]), 2, j)

    def _found(self, name: str, trace: list[Any], detail: str | None) -> None:
        if self.judging:
            order = self._judged_order(trace)
        else:
            order = (self.levels.cursor, self.levels.phase, self.sequence)
            self.sequence += 1
        self.found.append(Found(order, name, tuple(trace), detail))


# -- the pool in this process ----------------------------------------------------------


class LocalPool:
    """One worker in this process, answering each message when its answer is asked for."""

    size = 1
    shared = True

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.asked: dict[int, tuple[Any, ...]] = {}

    def ask(self, w: int, message: tuple[Any, ...]) -> None:
        self.asked[w] = message

    def answers(self, busy: set[int], timeout: float | None = None) -> list[tuple[int, Any]]:
        return [(w, self.worker.serve(self.asked.pop(w))) for w in sorted(busy)]

    def interrupt(self, busy: set[int]) -> None:
        """Nothing runs between `ask` and `answers` here, so there is nothing to interrupt."""

    def close(self) -> None:
        self.asked.clear()


# -- the coordinator ------------------------------------------------------------------


class Coordinator:
    """The level engine's search: owns the store, farms chunks out to a pool, admits and orders, reports.

    Levels smaller than `FORK_AT` states (and every level, without a
    ``factory``) go to a `LocalPool` in this process: a small spec never pays
    for processes, and workers started later inherit every local table
    already interned.
    """

    def __init__(self, spec: Spec, space: StateSpace, packing: Packing, options: Options) -> None:
        self.spec = spec
        self.space = space
        self.packing = packing
        self.options = options
        self.store = PackedStore(packing)
        self.keys = StoredKeys(self.store)
        self.traces = StoredTraces(space, self.keys, self.store.parents)
        self.judge = Judge(spec, space, self.traces, keep_going=options.keep_going)
        self.watch = Watch(options)
        self.local = LocalPool(Worker(spec, space, packing, forked=False))
        self.factory = options.pool
        self.remote: Pool | None = None
        self.current: Pool | None = None
        """The pool the work in flight went to."""
        self.idle: deque[int] = deque()
        self.busy: set[int] = set()
        self.judging: deque[tuple[int, Keys, NDArray[np.int64]]] = deque()
        """New states admitted and not yet sent to be judged: (first number, packed keys, parents)."""
        self.hit_counts = [np.zeros(len(t.states), dtype=np.int64) for t in space.tables]
        self.stop: StopReason | None = None
        self.cursor = 0
        self.depth = 1
        self.level_end = 0
        self.generated = 0
        self.best: dict[tuple[str, bool], Found] = {}

    # -- the run --------------------------------------------------------------------

    def run(self) -> Report:
        """Explore level by level until done or stopped, and report; `FellBack` on an unexpected violation."""
        try:
            frontier = self._start()
            while frontier.size and not self.stop:
                frontier = self._level(frontier)
            self._finish()
            self._drain()
        except UserCodeError as err:
            raise err.within(spec=self.spec.name, trace=self.traces.to(self.cursor)) from err.original
        finally:
            self.close()
        if self.stop is StopReason.VIOLATION:
            raise FellBack()
        return self._report()

    def close(self) -> None:
        """Stop the workers (the local pool has nothing to stop)."""
        if self.remote is not None:
            self.remote.close()
            self.remote = None

    def _start(self) -> Keys:
        """Admit the initial states and judge them here, with real traces."""
        keys = np.array([self.packing.pack(key) for key in self.judge.initials()], dtype=np.uint64)
        self.store.add(keys, np.full(keys.size, -1, dtype=np.int64))
        self.level_end = self.store.count
        self.judge.states(0, [tuple(row) for row in self.packing.unpack(keys).tolist()])
        if self.judge.stop:
            self.stop = StopReason.VIOLATION
        return keys

    def _pool(self, frontier: Keys) -> Pool:
        """The pool for a level of this size: the local one until levels reach `FORK_AT` states.

        A factory that cannot start workers here (it returns None) leaves every
        level to the local pool: the same report, on one core.
        """
        if self.remote is None and self.factory is not None and frontier.size >= FORK_AT:
            self.remote = self.factory(self.spec, self.space, self.packing, self.options.workers)
            if self.remote is None:
                self.factory = None
        return self.remote if self.remote is not None else self.local

    def _level(self, frontier: Keys) -> Keys:
        """One level: chunks expanded by workers, admitted here in order, their new states judged by workers.

        Judging runs behind expanding: the last chunks of a level are judged
        while the next level's first chunks are expanded (`_finish` waits for
        them when the search ends, or before another pool takes over).
        """
        pool = self._use(self._pool(frontier))
        first = self.store.count - frontier.size
        self.cursor = first
        if self._poll():  # as `Search` polls before expanding a state: here, before a level's first chunk
            return np.empty(0, dtype=np.uint64)
        size = CHUNK if pool is self.local else max(SMALLEST_CHUNK, min(CHUNK, frontier.size // (4 * pool.size) + 1))
        chunks = [(first + lo, frontier[lo : lo + size]) for lo in range(0, frontier.size, size)]
        idle, busy, judging = self.idle, self.busy, self.judging
        expanded: dict[int, Expanded] = {}
        sent = admitted = 0
        new: list[Keys] = []
        while admitted < len(chunks) and not self.stop:
            while idle and (sent < len(chunks) or judging):
                w = idle.popleft()
                if sent < len(chunks) and (sent - admitted < 2 * pool.size or not judging):
                    pool.ask(w, ("expand", *chunks[sent]))
                    sent += 1
                else:
                    pool.ask(w, ("judge", *judging.popleft()))
                busy.add(w)
            self._collect(expanded)
            while admitted < len(chunks) and chunks[admitted][0] in expanded:
                start_of, keys = chunks[admitted]
                ex = expanded.pop(start_of)
                self._count_hits(keys)
                self.judge.pruned += ex.pruned
                new_keys, parents = self._admit(ex)
                start = self.store.add(new_keys, parents)
                if new_keys.size and self.judge.open:
                    judging.append((start, new_keys, parents))
                new.append(new_keys)
                admitted += 1
                self.cursor = start_of + keys.size - 1
            if self._poll():
                break
        if self.stop is None and admitted == len(chunks):
            self.cursor = self.store.count
        if self.stop is not None:
            self._abandon()
        found = np.concatenate(new) if new else np.empty(0, dtype=np.uint64)
        if found.size and not self.stop:
            self.depth += 1
            self.level_end = self.store.count
        return found

    def _use(self, pool: Pool) -> Pool:
        """Make ``pool`` the one in use, once the one before it has judged everything it was given."""
        if pool is not self.current:
            self._finish()
            self.current = pool
            self.idle = deque(range(pool.size))
            self.busy = set()
        return pool

    def _finish(self) -> None:
        """Judge every state admitted so far (unless the search stopped), and wait for every answer."""
        pool = self.current
        if pool is None:
            return
        while self.judging and self.stop is None:
            while self.idle and self.judging:
                w = self.idle.popleft()
                pool.ask(w, ("judge", *self.judging.popleft()))
                self.busy.add(w)
            self._collect({})
        self._abandon()

    def _abandon(self) -> None:
        """Stopping: the jobs out are interrupted (their answers, if any, dropped) and nothing more is judged."""
        if self.busy and self.stop is not None:
            assert self.current is not None
            self.current.interrupt(self.busy)
        while self.busy:
            self._collect({})
        if self.stop is not None:
            self.judging.clear()

    def _collect(self, expanded: dict[int, Expanded]) -> None:
        """Take every answer ready now from the pool in use (waiting for one), back into the idle queue.

        While it waits it polls the `Watch` every `WAIT` seconds: a worker's
        long job (slow user code, a big chunk) must not keep a stop request,
        the time limit or the memory budget waiting.
        """
        if not self.busy:
            return
        assert self.current is not None
        answers = self.current.answers(self.busy, WAIT)
        while not answers:
            if self.stop is None:
                stop = self.watch.poll(self.cursor, self.store.count, self.generated, self.depth)
                if stop is not None:
                    self.stop = stop
                    self.current.interrupt(self.busy)
            answers = self.current.answers(self.busy, WAIT)
        for w, answer in answers:
            self.busy.discard(w)
            self.idle.append(w)
            if answer[0] == "expand":
                expanded[answer[1]] = answer[2]
                self._merge(answer[3])
            elif answer[0] == "judge":
                self._merge(answer[1])

    def _drain(self) -> None:
        """Fetch the forked workers' coverage counts (a local pool counts into our own tables)."""
        pool = self.remote
        if pool is None or pool.shared:
            return
        for w in range(pool.size):
            pool.ask(w, ("fired",))
            for _, answer in pool.answers({w}):
                add_counted(self.space, answer[1])

    def _admit(self, expanded: Expanded) -> tuple[Keys, NDArray[np.int64]]:
        """The new states among ``expanded``'s successors, in discovery order, with their parents' numbers."""
        self.generated += int(expanded.candidates.size)
        new_keys, positions = admit(self.store, expanded.candidates)
        owner = np.repeat(np.arange(expanded.per_state.size, dtype=np.int64), expanded.per_state)
        return new_keys, expanded.first + owner[positions]

    def _count_hits(self, keys: Keys) -> None:
        """Count each local state of each instance once per expanded state (the fast rows' coverage)."""
        ids = self.packing.unpack(keys)
        for k, counts in enumerate(self.hit_counts):
            counts += np.bincount(ids[:, k], minlength=counts.size)

    def _merge(self, findings: list[Found]) -> None:
        """Keep the first finding of each property in `Search`'s order; an unexpected one stops the search."""
        for f in findings:
            key = (f.name, f.witness)
            held = self.best.get(key)
            if held is None or f.order < held.order:
                self.best[key] = f
            if not f.witness and f.name not in self.judge.expected and not self.options.keep_going:
                self.stop = StopReason.VIOLATION

    def _poll(self) -> bool:
        """Between chunks, once 1,024 more states are expanded: what the `Watch` says. True to stop."""
        if not self.watch.due(self.cursor):
            return False
        stop = self.watch.poll(self.cursor, self.store.count, self.generated, self.depth)
        if stop is not None:
            self.stop = stop
        return stop is not None

    # -- the report -----------------------------------------------------------------

    def _report(self) -> Report:
        judge = self.judge
        for (name, witness), f in sorted(self.best.items(), key=lambda item: item[1].order):
            trace = self.resolve(f.trace)
            if witness:
                judge.witnessed.setdefault(name, trace)
            elif name not in judge.violations:  # the initial states' findings (made here) come first
                judge.violations[name] = trace
                if f.detail:
                    judge.details[name] = f.detail
        stop = self.stop
        depth = self.depth + (1 if self.store.count > self.level_end else 0)
        hits: dict[int, dict[int, int]] = {}
        for t, counts in zip(self.space.tables, self.hit_counts):
            mine = hits.setdefault(id(t), {})
            for a in np.flatnonzero(counts).tolist():
                mine[a] = mine.get(a, 0) + int(counts[a])
        return conclude(judge, stop=stop, distinct=self.store.count, generated=self.generated, depth=depth,
                        seconds=self.watch.elapsed(), hits=hits)

    def resolve(self, trace: tuple[Any, ...]) -> list[TraceStep]:
        """A worker's trace with its markers replaced: the path to a state, and a last step as taken."""
        if len(trace) == 2 and isinstance(trace[0], PathTo) and isinstance(trace[1], StepTo):
            last = trace[1]
            return self.traces.edge(trace[0].index, last.position, last.event, last.key, last.effects)
        out: list[TraceStep] = []
        for step in trace:
            out.extend(self.traces.path(step.index) if isinstance(step, PathTo) else [step])
        return out
