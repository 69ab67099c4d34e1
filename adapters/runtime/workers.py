"""`check` on several processes: the level engine's expand and judge steps farmed out to workers.

How it works
------------
The coordinator closes the spec's local tables (`kernel.check.levels.prepare`)
and then forks ``workers`` processes, so every process holds the same local
ids. It owns the state store. Each level's frontier is cut into chunks; a
chunk goes to an idle worker, which runs the slow lane and the vectorised
fast lane on it (`LevelWorker.expand_job`) and sends back the successors as a
packed ``uint64`` array in `Search`'s order. The coordinator admits chunks in
order (`LevelSearch.admit`: a binary search against the sorted store, the
first occurrence of each new key), so states get the numbers `Search` would
give them, and hands each chunk's new states to a worker to judge
(`LevelWorker.judge_job`). Findings carry their place in `Search`'s order and
a marker for the trace to their state, which the coordinator fills in from
its parent links: counts, depths, verdicts, traces and coverage equal
``workers=1``.

Where the spec is beyond the level engine (see `kernel.check.levels`), where
a worker fails, or where an unexpected violation is found (whose report,
cut at that violation, only `Search` reproduces), the answer is `Search`'s,
on one core.

Another transport
-----------------
Workers receive and return plain data: a chunk's first state number and its
keys; an `Expanded`; a list of `Finding`; a `Fired`. Another transport --
Ray actors, say -- only has to carry those four messages and give every
worker the closed plan; partitioning the store itself across machines means
sending each candidate to the owner of ``hash(key) % n`` instead of to the
coordinator, and gathering each level's new keys with their first positions
(`admit` is a function of a store and a candidate array).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from statewright.kernel.check.levels import (
    CHUNK,
    Expanded,
    FellBack,
    Finding,
    LevelSearch,
    LevelWorker,
    Packing,
    PathTo,
    StepTo,
    add_fired,
    prepare,
)
from statewright.kernel.check.plan import Plan
from statewright.kernel.check.report import Report, StopReason, TraceStep
from statewright.kernel.check.search import Search
from statewright.kernel.check.spec import Spec

__all__ = ["WorkerFailed", "check_parallel", "default_workers"]

SMALLEST_CHUNK = 512
FORK_AT = 4096
"""The frontier size at which the coordinator starts its workers."""


class WorkerFailed(Exception):
    """A worker process raised or died; the coordinator answers with `Search` instead."""


def default_workers() -> int:
    """The cores this process may use (its CPU affinity where the platform says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_parallel(spec: Spec, *, workers: int, **options: Any) -> Report:
    """Check ``spec`` on ``workers`` processes; the same report as `kernel.check.search.check`.

    ``options`` are `check`'s (``keep_going``, ``clock``, ``progress``,
    ``should_stop``). One worker, a platform without ``fork``, or a spec the
    level engine does not take (temporal properties, ``max_states``,
    ``max_depth``, a lone machine, a closure too large) run `Search`.

    >>> from statewright.specs import REGISTRY
    >>> spec = REGISTRY.get("two_phase").spec()
    >>> check_parallel(spec, workers=2).distinct_states
    288
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return Search(spec, **options).run()
    planned = prepare(spec, symmetry=options.get("symmetry", False))
    if planned is None:
        return Search(spec, **options).run()
    coordinator = Coordinator(spec, *planned, workers, **options)
    try:
        return coordinator.run()
    except (FellBack, WorkerFailed):
        return Search(spec, **options).run()
    finally:
        coordinator.close()


class Pool:
    """``n`` forked workers, each serving jobs over its own pipe, one job at a time."""

    def __init__(self, spec: Spec, plan: Plan, packing: Packing, n: int) -> None:
        context = multiprocessing.get_context("fork")
        self.connections: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(n):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, spec, plan, packing), daemon=True)
            process.start()
            theirs.close()
            self.connections.append(mine)
            self.processes.append(process)

    def close(self) -> None:
        """Ask every worker to stop; kill those that do not."""
        for c in self.connections:
            try:
                c.send(("stop",))
            except OSError:
                pass
            c.close()
        for p in self.processes:
            p.join(timeout=1)
            if p.is_alive():
                p.kill()
                p.join()

    def ask(self, w: int, message: tuple[Any, ...]) -> None:
        try:
            self.connections[w].send(message)
        except OSError as exc:
            raise WorkerFailed(f"worker {w} is gone: {exc}") from exc

    def answers(self, busy: set[int]) -> list[tuple[int, Any]]:
        """Wait for at least one busy worker's answer; every answer ready now."""
        ready = wait([self.connections[w] for w in busy])
        out = []
        for w in busy:
            c = self.connections[w]
            if c in ready:
                try:
                    status, value = c.recv()
                except (EOFError, OSError) as exc:
                    raise WorkerFailed(f"worker {w} died") from exc
                if status != "ok":
                    raise WorkerFailed(f"worker {w}: {value}")
                out.append((w, value))
        return out


def _serve(conn: Connection, spec: Spec, plan: Plan, packing: Packing) -> None:
    """A worker's loop: jobs in, answers out, until told to stop (or the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides what an interrupt means
    worker = LevelWorker(spec, plan, packing)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if message[0] == "expand":
                answer: Any = ("expand", message[1], *worker.expand_job(message[1], message[2]))
            elif message[0] == "judge":
                answer = ("judge", worker.judge_job(message[1], message[2], message[3]))
            elif message[0] == "fired":
                answer = ("fired", worker.fired())
            else:
                return
            conn.send(("ok", answer))
        except BaseException as exc:  # reported, not raised: the coordinator falls back to Search
            try:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            except Exception:
                return


class Coordinator(LevelSearch):
    """`LevelSearch` whose expand and judge steps run on a `Pool`; it admits, orders and reports.

    Levels smaller than ``FORK_AT`` states are taken here, in process: a small
    spec never pays for processes, and workers forked later inherit every
    local table already interned.
    """

    def __init__(self, spec: Spec, plan: Plan, packing: Packing, workers: int, **options: Any) -> None:
        super().__init__(spec, plan, packing, **options)
        self.workers = workers
        self.pool_: Pool | None = None
        self.idle: deque[int] = deque()
        self.busy: set[int] = set()
        self.judging: deque[tuple[int, Any, Any]] = deque()
        self.best: dict[tuple[str, bool], Finding] = {}

    @property
    def pool(self) -> Pool:
        if self.pool_ is None:
            self.pool_ = Pool(self.spec, self.plan, self.packing, self.workers)
            self.idle = deque(range(self.workers))
        return self.pool_

    def close(self) -> None:
        if self.pool_ is not None:
            self.pool_.close()
            self.pool_ = None

    def _level(self, frontier: Any) -> Any:
        """One level: chunks expanded by the workers, admitted here in order, judged by the workers."""
        if self.pool_ is None and frontier.size < FORK_AT:
            found = super()._level(frontier)
            if not found.size:
                self._drain()
            return found
        first = self.store.count - frontier.size
        size = max(SMALLEST_CHUNK, min(CHUNK, frontier.size // (4 * len(self.pool.connections)) + 1))
        chunks = [(first + lo, frontier[lo : lo + size]) for lo in range(0, frontier.size, size)]
        expanded: dict[int, Expanded] = {}
        sent = admitted = 0
        new = []
        while admitted < len(chunks) and not self.stop:
            while self.idle and (sent < len(chunks) or self.judging):
                w = self.idle.popleft()
                if sent < len(chunks) and (sent - admitted < 2 * len(self.pool.connections) or not self.judging):
                    self.pool.ask(w, ("expand", *chunks[sent]))
                    sent += 1
                else:
                    self.pool.ask(w, ("judge", *self.judging.popleft()))
                self.busy.add(w)
            self._collect(expanded)
            while admitted < len(chunks) and chunks[admitted][0] in expanded:
                start_of, keys = chunks[admitted]
                ex = expanded.pop(start_of)
                self.count_hits(keys)
                self.pruned += ex.pruned
                new_keys, parents = self.admit(ex)
                start = self.store.add(new_keys, parents)
                if new_keys.size and (self.invariants or self.witnesses):
                    self.judging.append((start, new_keys, parents))
                new.append(new_keys)
                admitted += 1
                self.cursor = start_of + keys.size - 1
            if self._poll_levels():
                break
        if self.stop is None and admitted == len(chunks):
            self.cursor = self.store.count
        found = np.concatenate(new) if new else np.empty(0, dtype=np.uint64)
        if found.size and not self.stop:
            self.depth += 1
            self.level_end = self.store.count
        else:
            self._drain()
        return found

    def _collect(self, expanded: dict[int, Expanded]) -> None:
        """Take every answer ready now (waiting for one), back into the idle queue."""
        if not self.busy:
            return
        for w, answer in self.pool.answers(self.busy):
            self.busy.discard(w)
            self.idle.append(w)
            if answer[0] == "expand":
                expanded[answer[1]] = answer[2]
                self._merge(answer[3])
            elif answer[0] == "judge":
                self._merge(answer[1])

    def _drain(self) -> None:
        """Finish every judge job (the search is over, or stopping); then fetch the workers' counts."""
        if self.pool_ is None:
            return
        while (self.judging or self.busy) and not (self.stop and self.stop is not StopReason.VIOLATION):
            while self.idle and self.judging:
                w = self.idle.popleft()
                self.pool.ask(w, ("judge", *self.judging.popleft()))
                self.busy.add(w)
            self._collect({})
        while self.busy:
            self._collect({})
        for w in range(len(self.pool.connections)):
            self.pool.ask(w, ("fired",))
            self.busy.add(w)
            for _, answer in self.pool.answers({w}):
                add_fired(self.plan, answer[1])
            self.busy.discard(w)

    def _merge(self, findings: list[Finding]) -> None:
        """Keep the first finding of each property in `Search`'s order; an unexpected one stops the search."""
        for f in findings:
            key = (f.name, f.witness)
            held = self.best.get(key)
            if held is None or f.order < held.order:
                self.best[key] = f
            if not f.witness and f.name not in self.expected and not self.keep_going:
                self.stop = StopReason.VIOLATION

    def _report(self) -> Report:
        for (name, witness), f in sorted(self.best.items(), key=lambda item: item[1].order):
            trace = self._resolve(f.trace)
            if witness:
                self.witnessed.setdefault(name, trace)
            elif name not in self.violations:  # the initial states' findings (made here) come first
                self.violations[name] = trace
                if f.detail:
                    self.details[name] = f.detail
        return super()._report()

    def _resolve(self, trace: tuple[Any, ...]) -> list[TraceStep]:
        """A worker's trace with its markers replaced: the path to a state, and a last step as taken."""
        if len(trace) == 2 and isinstance(trace[0], PathTo) and isinstance(trace[1], StepTo):
            last = trace[1]
            return self._edge(trace[0].index, last.position, last.event, last.key, last.effects)
        out: list[TraceStep] = []
        for step in trace:
            out.extend(self._path(step.index) if isinstance(step, PathTo) else [step])
        return out
