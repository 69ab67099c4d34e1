"""Effects per second end to end -- feed, commit, a dispatcher's handler called -- and delivery latency.

A producer process feeds ``Add(1)`` inputs through a `Driver` to 64 keys of
the ``tally`` machine (``tests/adapters/_workers.py``), round robin; each
accepted input commits one ``Added`` effect. Dispatcher processes (1, or 4)
serve one consumer with ``partitions=4`` and ``max_partitions=4/processes``,
registered at ``start="latest"`` before each run (a fresh consumer and fresh
keys every run). Two handlers:

* *plain*: records that it was called (at least once; nothing written);
* *transactional*: also returns a `Cas` creating one row per effect, which
  commits with the cursor's `Advance` (exactly once) -- one store commit per
  effect.

Three measurements, each on SQLite (a WAL file) and PostgreSQL (a throwaway
server from ``tests/adapters/_postgres.py`` over a Unix socket, started with
``fsync=on`` as ``bench_store.py`` does; ``--pg-fsync-off`` as the tests
run it):

1. *feed alone* (the baseline, no dispatcher): the producer's rate;
2. *end to end*: dispatchers running, then the producer feeding ``--effects``
   inputs as fast as it can: effects over the time from the producer's first
   feed to the last handler call (the producer's own rate meanwhile is
   printed too, since both share two cores);
3. *backlog*: ``--effects`` effects committed first, then the dispatchers
   started together: effects over the time from their start to the last
   handler call -- what the dispatchers alone can do.

Runs alternate (the order of the setups swaps every round); medians of
``--rounds`` are printed. Then *delivery latency*: the producer feeds at a
steady ``--rate`` per second (well under what either side can do, so that
nothing queues) while the dispatchers run with a plain handler; a latency is
the handler's ``time.time()`` minus the producer's ``time.time()`` when its
feed returned (the commit done), matched by (key, total); p50 and p99 over
``--latency-effects`` effects per setup. SQLite wakes a dispatcher of
another process by polling (``SqliteStore(poll=...)``, 50 ms by default);
PostgreSQL by ``LISTEN/NOTIFY``.

    python tests/benchmarks/bench_dispatch.py [--effects 2000] [--rounds 3] [--rate 100]
        [--latency-effects 500] [--no-postgres] [--pg-fsync-off] [--no-sqlite] [--part all|throughput|latency]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.adapters

KEYS = 64
PARTITIONS = 4
BUSY_TIMEOUT = 60.0
SETUPS = tuple((procs, kind) for kind in ("plain", "transactional") for procs in (1, 4))


async def _open(where: str) -> Any:
    from tests.adapters._workers import ONCE_CATALOG

    if where.startswith("postgresql://"):
        from statewright.adapters.runtime.postgres import PostgresStore

        return await PostgresStore.open(where, ONCE_CATALOG, busy_timeout=BUSY_TIMEOUT)
    from statewright.adapters.runtime.sqlite import SqliteStore

    return await SqliteStore.open(Path(where), ONCE_CATALOG, busy_timeout=BUSY_TIMEOUT)


async def _prepare(where: str, run: str, consumer: str | None) -> None:
    """Create the run's keys (no effects: ``created`` is not one) and register its consumer at the log's end."""
    from statewright.adapters.runtime.driver import Driver

    async with await _open(where) as store:
        driver = Driver(store)
        for k in range(KEYS):
            await driver.create(f"{run}-{k}", "tally")
        if consumer is not None:
            await store.register(consumer, partitions=PARTITIONS, start="latest")


async def _produce(where: str, run: str, count: int, rate: float | None) -> tuple[float, float, list[Any]]:
    """Feed ``count`` inputs round robin over the run's keys, at ``rate`` per second (None: at once).

    Returns (first feed's start, last feed's end, [(key, total, time the feed returned)]).
    """
    from statewright.adapters.runtime.driver import Driver
    from tests.adapters._workers import Add

    committed: list[tuple[str, int, float]] = []
    async with await _open(where) as store:
        driver = Driver(store)
        start = time.time()
        for i in range(count):
            if rate is not None:
                delay = start + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            key = f"{run}-{i % KEYS}"
            await driver.feed(key, Add(1))
            committed.append((key, i // KEYS + 1, time.time()))
        end = time.time()
    return start, end, committed


async def _dispatch(where: str, consumer: str, procs: int, kind: str, expected: int, counter: Any,
                    conn: Connection) -> tuple[float, list[Any]]:
    """Serve ``consumer`` until ``expected`` effects were handled by all the processes together.

    Sends "ready" once the store is open, waits for "go", then runs; returns
    (the time it started running, [(key, total, time the handler was called)]).
    """
    from statewright.adapters.runtime.dispatch import Delivery, Dispatcher
    from statewright.adapters.runtime.store import Cas, Op
    from tests.adapters._workers import Added, Tally

    called: list[tuple[str, int, float]] = []

    def plain(effect: Added, d: Delivery) -> None:
        called.append((d.key, effect.total, time.time()))
        with counter.get_lock():
            counter.value += 1

    def transactional(effect: Added, d: Delivery) -> list[Op]:
        plain(effect, d)
        return [Cas(f"note-{d.key}-{effect.total}", 0, Tally(), machine="tally")]

    async with await _open(where) as store:
        dispatcher = Dispatcher(store, consumer, partitions=PARTITIONS, max_partitions=PARTITIONS // procs,
                                start="latest", lease=30.0)
        dispatcher.handle(Added, plain if kind == "plain" else transactional)
        conn.send("ready")
        conn.recv()  # go: nothing runs on this loop yet, so blocking is harmless

        async def watch() -> None:
            while counter.value < expected:
                await asyncio.sleep(0.002)
            dispatcher.stop()

        began = time.time()
        watcher = asyncio.ensure_future(watch())
        await dispatcher.run()
        await watcher
    return began, called


def _worker(conn: Connection, counter: Any) -> None:
    """Serve jobs from the parent until None: ("prepare", ...), ("produce", ...), ("dispatch", ...)."""
    while (job := conn.recv()) is not None:
        what, *args = job
        if what == "prepare":
            conn.send(asyncio.run(_prepare(*args)))
        elif what == "produce":
            conn.send(asyncio.run(_produce(*args)))
        else:
            conn.send(asyncio.run(_dispatch(*args, counter, conn)))


class Bench:
    """The worker processes (started once, reused) and one run of each kind of measurement."""

    def __init__(self, ctx: Any) -> None:
        self.counter = ctx.Value("q", 0)
        pipes = [ctx.Pipe() for _ in range(1 + PARTITIONS)]
        self.procs = [ctx.Process(target=_worker, args=(child, self.counter), daemon=True) for _, child in pipes]
        for p in self.procs:
            p.start()
        self.producer, *self.dispatchers = [parent for parent, _ in pipes]
        self.runs = 0

    def close(self) -> None:
        for c in (self.producer, *self.dispatchers):
            c.send(None)
        for p in self.procs:
            p.join()

    def _fresh(self, where: str, with_consumer: bool) -> tuple[str, str]:
        self.runs += 1
        run, consumer = f"r{self.runs}", f"c{self.runs}"
        self.producer.send(("prepare", where, run, consumer if with_consumer else None))
        self.producer.recv()
        return run, consumer

    def feed_alone(self, where: str, count: int) -> float:
        run, _ = self._fresh(where, False)
        self.producer.send(("produce", where, run, count, None))
        start, end, _ = self.producer.recv()
        return float(count / (end - start))

    def _start(self, where: str, consumer: str, procs: int, kind: str, count: int) -> list[Connection]:
        self.counter.value = 0
        conns = self.dispatchers[:procs]
        for c in conns:
            c.send(("dispatch", where, consumer, procs, kind, count))
        for c in conns:
            assert c.recv() == "ready"
        return conns

    def end_to_end(self, where: str, procs: int, kind: str, count: int,
                   rate: float | None = None) -> tuple[float, float, list[float]]:
        """(effects/s end to end, the producer's feeds/s meanwhile, latencies in seconds)."""
        run, consumer = self._fresh(where, True)
        conns = self._start(where, consumer, procs, kind, count)
        for c in conns:
            c.send("go")
        self.producer.send(("produce", where, run, count, rate))
        start, end, committed = self.producer.recv()
        results = [c.recv() for c in conns]
        called = {(key, n): t for _, calls in results for key, n, t in calls}
        assert len(called) == count, (len(called), count)
        done = max(called.values())
        latencies = [called[key, n] - t for key, n, t in committed]
        return count / (done - start), count / (end - start), latencies

    def backlog(self, where: str, procs: int, kind: str, count: int) -> float:
        run, consumer = self._fresh(where, True)
        self.producer.send(("produce", where, run, count, None))
        self.producer.recv()
        conns = self._start(where, consumer, procs, kind, count)
        for c in conns:
            c.send("go")
        results = [c.recv() for c in conns]
        began = min(b for b, _ in results)
        done = max(t for _, calls in results for _, _, t in calls)
        assert sum(len(calls) for _, calls in results) == count
        return count / (done - began)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _throughput(bench: Bench, backends: list[tuple[str, str]], effects: int, rounds: int) -> None:
    rates: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for name, where in backends:
            order = list(SETUPS) if r % 2 == 0 else list(SETUPS)[::-1]
            rates.setdefault((name, "feed alone"), []).append(bench.feed_alone(where, effects))
            for procs, kind in order:
                e2e, fed, _ = bench.end_to_end(where, procs, kind, effects)
                rates.setdefault((name, f"e2e {kind} x{procs}"), []).append(e2e)
                rates.setdefault((name, f"feed during e2e {kind} x{procs}"), []).append(fed)
                rates.setdefault((name, f"backlog {kind} x{procs}"), []).append(bench.backlog(where, procs, kind, effects))
            print(f"round {r + 1} {name}: " + ", ".join(
                f"{label} {v[-1]:,.0f}/s" for (n, label), v in rates.items() if n == name), flush=True)
    print(f"Effects per second, medians of {rounds} rounds of {effects} effects, {KEYS} keys, "
          f"{PARTITIONS} partitions:")
    for name, _ in backends:
        print(f"  {name}: feed alone (no dispatcher) {statistics.median(rates[name, 'feed alone']):,.0f}/s")
        for procs, kind in SETUPS:
            e2e = statistics.median(rates[name, f"e2e {kind} x{procs}"])
            fed = statistics.median(rates[name, f"feed during e2e {kind} x{procs}"])
            back = statistics.median(rates[name, f"backlog {kind} x{procs}"])
            print(f"    {kind:<13} x{procs}: end to end {e2e:,.0f}/s (the producer fed {fed:,.0f}/s meanwhile), "
                  f"backlog {back:,.0f}/s")


def _latency(bench: Bench, backends: list[tuple[str, str]], count: int, rate: float) -> None:
    print(f"Delivery latency (commit returned -> handler called), plain handler, {count} effects fed at "
          f"{rate:g}/s:", flush=True)
    for name, where in backends:
        for procs in (1, 4):
            _, _, lat = bench.end_to_end(where, procs, "plain", count, rate)
            print(f"  {name} x{procs}: p50 {_pct(lat, 0.5) * 1000:.1f} ms, p99 {_pct(lat, 0.99) * 1000:.1f} ms, "
                  f"max {max(lat) * 1000:.1f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--effects", type=int, default=2000, help="effects per throughput run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0, help="feeds per second in the latency part")
    ap.add_argument("--latency-effects", type=int, default=500)
    ap.add_argument("--dir", type=Path, default=None, help="where the SQLite file goes (default: a temp dir)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--pg-fsync-off", action="store_true", help="run PostgreSQL without fsync, as the tests do")
    ap.add_argument("--part", choices=("all", "throughput", "latency"), default="all")
    args = ap.parse_args()
    from tests.adapters import _postgres

    server = _postgres.start_for_bench(not args.no_postgres, fsync=not args.pg_fsync_off)
    bench = Bench(mp.get_context("spawn"))
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            backends = [] if args.no_sqlite else [("SQLite", str(Path(tmp) / "dispatch.db"))]
            if server is not None:
                backends.append(("PostgreSQL" + (" (fsync off)" if args.pg_fsync_off else ""), server.database()))
            if args.part in ("all", "throughput"):
                _throughput(bench, backends, args.effects, args.rounds)
            if args.part in ("all", "latency"):
                _latency(bench, backends, args.latency_effects, args.rate)
    finally:
        bench.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
