"""Runs and operations per second through a pool of executor processes, and recovery after kill -9.

*Throughput*: ``--runs`` runs of a three-step pipeline whose operations do
nothing but return a small export (so what is measured is the engine: the
run machine's inputs through the `Driver`, the fact log, outcomes and
snapshots as artifacts, the pool's leases and cursors) are launched into a
fresh store first; then 1 or 4 pool processes (`adapters.runtime.pool.Pool`,
``partitions=4``, ``max_partitions=4/processes``), already started and with
their stores open, are let go together. Runs/s is the runs over the time from
that moment to the last drive's return (a run's final snapshot recorded and
its fact log sealed); operations/s is three times that. The launcher's own
rate is printed too. Setups: SQLite (a WAL file) with 1 and 4 processes, and
PostgreSQL (a throwaway server from ``tests/adapters/_postgres.py`` over a
Unix socket, fsync on as ``bench_store.py`` runs it; ``--pg-fsync-off`` as
the tests run it) with 1 and 4. Rounds alternate the order of the setups;
medians of ``--rounds`` are printed.

*Recovery*: for each ``--leases`` length, process A holds both partitions of
a store and hangs in the slow step of the only run; process B, already
running, holds the partition A gave back to it (the pool's fair share) and
waits for the other. A is killed with SIGKILL mid-step. Printed:
the time from the kill to B's call of that step, and from the moment A's
lease ran out (its ``until``, by the store's clock: this machine's) to that
call, which is B's take-over -- at most ``--poll`` plus the work of taking
the partition and resuming the run. Medians of ``--trials`` per lease, on
PostgreSQL (SQLite with ``--no-postgres``). The processes are
`tests.adapters._executors.pool_process`, the code ``statewright serve`` runs.

    python tests/benchmarks/bench_executor.py [--runs 200] [--rounds 3] [--leases 1,2,5] [--trials 3]
        [--poll 0.1] [--no-postgres] [--no-sqlite] [--pg-fsync-off] [--part all|throughput|recovery]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.adapters

PARTITIONS = 4
SETUPS = (("SQLite", 1), ("SQLite", 4), ("PostgreSQL", 1), ("PostgreSQL", 4))


def _ops() -> Any:
    from statewright.adapters.runtime.operations import Operations

    ops = Operations()
    ops.op("load", "v1", exports=("n",))(lambda ctx: {"n": ctx.input})
    ops.op("square", "v1", imports=("n",), exports=("n2",))(lambda ctx: {"n2": ctx.inputs["n"] ** 2})
    ops.op("keep", "v1", imports=("n2",), exports=("kept",))(lambda ctx: {"kept": ctx.inputs["n2"]})
    return ops


def _pipeline() -> Any:
    from statewright.machines.pipeline import Pipeline, Step

    return Pipeline("bench", "v1", (Step("load", "load", "v1"), Step("square", "square", "v1"),
                                    Step("keep", "keep", "v1")))


async def _launch(where: str, runs: int) -> float:
    """Launch ``runs`` runs into the store at ``where``; the launcher's runs/s."""
    from statewright.adapters.cli.serving import open_runs
    from statewright.adapters.runtime.executor import Executor

    async with open_runs(where) as (store, artifacts):
        executor = Executor(store, artifacts, _ops(), adopt_children=False)
        start = time.perf_counter()
        for n in range(runs):
            await executor.launch(_pipeline(), n, run_id=f"b{n:05d}")
        return runs / (time.perf_counter() - start)


async def _serve(where: str, procs: int, expected: int, counter: Any, conn: Connection) -> tuple[float, float]:
    """One pool process: open, say "ready", wait for "go", drive until ``expected`` runs ended in all processes.

    Returns (when it was let go, when its last drive returned), ``time.time()``.
    """
    from statewright.adapters.cli.serving import open_runs
    from statewright.adapters.runtime.executor import Executor
    from statewright.adapters.runtime.pool import Pool

    async with open_runs(where) as (store, artifacts):
        executor = Executor(store, artifacts, _ops(), adopt_children=False)
        pool = Pool(executor, partitions=PARTITIONS, max_partitions=PARTITIONS // procs, lease=30.0, poll=0.05)
        conn.send("ready")
        conn.recv()  # go: nothing runs on this loop yet, so blocking is harmless
        began = time.time()
        last = began

        async def watch() -> None:
            nonlocal last
            counted = 0
            while counter.value < expected:
                if pool.finished > counted:
                    with counter.get_lock():
                        counter.value += pool.finished - counted
                    counted, last = pool.finished, time.time()
                await asyncio.sleep(0.002)
            pool.stop()

        watcher = asyncio.ensure_future(watch())
        await pool.run()
        await watcher
    return began, last


def _worker(conn: Connection, counter: Any) -> None:
    """Serve jobs from the parent until None: ("launch", where, runs) or ("serve", where, procs, expected)."""
    while (job := conn.recv()) is not None:
        what, *args = job
        if what == "launch":
            conn.send(asyncio.run(_launch(*args)))
        else:
            conn.send(asyncio.run(_serve(*args, counter, conn)))


class Bench:
    """Worker processes (started once, reused): one launcher and four pool processes."""

    def __init__(self, ctx: Any) -> None:
        self.counter = ctx.Value("q", 0)
        pipes = [ctx.Pipe() for _ in range(1 + PARTITIONS)]
        self.procs = [ctx.Process(target=_worker, args=(child, self.counter), daemon=True) for _, child in pipes]
        for p in self.procs:
            p.start()
        self.launcher, *self.pools = [parent for parent, _ in pipes]

    def close(self) -> None:
        for c in (self.launcher, *self.pools):
            c.send(None)
        for p in self.procs:
            p.join()

    def round(self, where: str, procs: int, runs: int) -> tuple[float, float]:
        """(the launcher's runs/s, the pool's runs/s from a backlog of ``runs``) on the fresh store ``where``."""
        self.launcher.send(("launch", where, runs))
        launched = float(self.launcher.recv())
        self.counter.value = 0
        conns = self.pools[:procs]
        for c in conns:
            c.send(("serve", where, procs, runs))
        for c in conns:
            assert c.recv() == "ready"
        for c in conns:
            c.send("go")
        results = [c.recv() for c in conns]
        assert self.counter.value == runs, (self.counter.value, runs)
        began = min(b for b, _ in results)
        done = max(e for _, e in results)
        return launched, runs / (done - began)


def _throughput(bench: Bench, stores: dict[str, Any], runs: int, rounds: int) -> None:
    rates: dict[tuple[str, int], list[float]] = {}
    launches: dict[str, list[float]] = {}
    setups = [s for s in SETUPS if s[0] in stores]
    for r in range(rounds):
        for name, procs in setups if r % 2 == 0 else setups[::-1]:
            launched, rate = bench.round(stores[name](), procs, runs)
            launches.setdefault(name, []).append(launched)
            rates.setdefault((name, procs), []).append(rate)
            print(f"round {r + 1} {name} x{procs}: launched {launched:,.0f} runs/s; pool {rate:,.1f} runs/s, "
                  f"{3 * rate:,.0f} operations/s", flush=True)
    print(f"Runs through a pool, medians of {rounds} rounds of {runs} runs (3 operations each) from a backlog, "
          f"{PARTITIONS} partitions:")
    for name, procs in setups:
        rate = statistics.median(rates[name, procs])
        print(f"  {name} x{procs}: {rate:,.1f} runs/s, {3 * rate:,.0f} operations/s "
              f"(the launcher alone: {statistics.median(launches[name]):,.0f} runs/s)")


def _recovery(locator_of: Any, name: str, leases: list[float], trials: int, poll: float) -> None:
    from tests.adapters import _executors as X

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.adapters._executors"])
    crunch = X.STATES[1]
    print(f"Recovery after kill -9 on {name} (poll {poll:g} s), medians of {trials}:", flush=True)
    for lease in leases:
        from_kill: list[float] = []
        from_expiry: list[float] = []
        for trial in range(trials):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                locator = locator_of(folder)
                X.configure(folder)
                options = {"partitions": 2, "max_partitions": None, "lease": lease, "poll": poll}
                started = []
                try:
                    for who, hang in (("A", 600.0), ("B", 0.0)):
                        ready = ctx.Event()
                        proc = ctx.Process(target=X.pool_process,
                                           args=(locator, str(folder), who, {**options, "hang": hang}, ready))
                        proc.start()
                        started.append(proc)
                        assert ready.wait(60), f"{who} never opened the store"
                        if who == "A":  # A holds both and hangs in the run's slow step before B starts
                            _until(lambda: len(X.takes(folder)) == 2, 30)
                            asyncio.run(X.launch(locator, 1, first=1))
                            _until(lambda: _called(folder, crunch, "A") is not None, 30)
                    _until(lambda: len(X.takes(folder)) == 3, 30)  # B has the partition A gave back (fair share)
                    [given] = [p for who, p in X.takes(folder) if who == "B"]
                    expiry = asyncio.run(_leases_end(locator, 1 - given))
                    killed = time.time()
                    os.kill(started[0].pid or 0, signal.SIGKILL)
                    _until(lambda: _called(folder, crunch, "B") is not None, lease + 30)
                    again = _called(folder, crunch, "B")
                    assert again is not None
                    from_kill.append(again - killed)
                    from_expiry.append(again - expiry)
                finally:
                    for proc in started:
                        if proc.is_alive():
                            proc.kill()
                        proc.join()
                print(f"  lease {lease:g} s, trial {trial + 1}: kill -> take-over {from_kill[-1]:.2f} s, "
                      f"lease expiry -> take-over {from_expiry[-1]:+.3f} s", flush=True)
        print(f"  lease {lease:g} s: kill -> take-over {statistics.median(from_kill):.2f} s "
              f"(min {min(from_kill):.2f}, max {max(from_kill):.2f}); lease expiry -> take-over "
              f"{statistics.median(from_expiry):+.3f} s (max {max(from_expiry):+.3f})", flush=True)


def _called(folder: Path, state: str, process: str) -> float | None:
    from tests.adapters import _executors as X

    return next((float(x["t"]) for x in X.read_lines(folder / "ledger.jsonl")
                 if x["state"] == state and x["process"] == process), None)


async def _leases_end(locator: str, partition: int) -> float:
    from statewright.adapters.cli.serving import open_runs

    async with open_runs(locator) as (store, _):
        rows = await store.consumers()  # type: ignore[attr-defined]
    return float(max(r.until for r in rows if r.owner and r.name == "executor" and r.partition == partition))


def _until(cond: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="runs per throughput round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--leases", default="1,2,5", help="lease lengths in seconds for the recovery part")
    ap.add_argument("--trials", type=int, default=3, help="kills per lease length")
    ap.add_argument("--poll", type=float, default=0.1, help="the pool processes' poll in the recovery part")
    ap.add_argument("--dir", type=Path, default=None, help="where the SQLite files go (default: a temp dir)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--pg-fsync-off", action="store_true", help="run PostgreSQL without fsync, as the tests do")
    ap.add_argument("--part", choices=("all", "throughput", "recovery"), default="all")
    args = ap.parse_args()
    from tests.adapters import _postgres

    server = _postgres.start_for_bench(not args.no_postgres, fsync=not args.pg_fsync_off)
    bench = Bench(mp.get_context("spawn")) if args.part in ("all", "throughput") else None
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            files = iter(range(1_000_000))
            stores: dict[str, Any] = {}
            if not args.no_sqlite:
                stores["SQLite"] = lambda: str(Path(tmp) / f"runs-{next(files)}.db")
            if server is not None:
                stores["PostgreSQL"] = server.database
            if bench is not None:
                _throughput(bench, stores, args.runs, args.rounds)
            if args.part in ("all", "recovery"):
                leases = [float(x) for x in args.leases.split(",")]
                if server is not None:
                    _recovery(lambda folder: server.database(), "PostgreSQL", leases, args.trials, args.poll)
                else:
                    _recovery(lambda folder: str(folder / "runs.db"), "SQLite", leases, args.trials, args.poll)
    finally:
        if bench is not None:
            bench.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
