"""Commits per second: `SqliteStore.cas` against the same CAS done with raw ``sqlite3``.

Both write the same canonical JSON of ``Input()`` with a bumping version to
the same rows of one WAL-mode file whose schema `SqliteStore.open` created.
The port keeps each key's version locally and calls ``store.cas(key, v,
Input(), machine="input")`` (validation, serialisation, ``BEGIN IMMEDIATE``,
version read, ``UPDATE``, ``COMMIT``, decoding the returned record); the
baseline runs ``BEGIN IMMEDIATE``; ``UPDATE instances SET state=?, version=?
WHERE key=? AND version=?``; ``COMMIT`` on a plain ``sqlite3`` connection,
with the JSON serialised once up front. Neither changes ``synchronous``, so
both commit at SQLite's default durability.

Each run is done by 1 process and by 4 (``spawn``), every process on its own
key, so there are no CAS conflicts: the 4-process figure is throughput while
writers queue on SQLite's one write lock (same ``busy_timeout`` for both).
Workers are started once and reused; each opens its connection before a
barrier, so start-up and imports do not count. Port and raw runs alternate
(their order swapping every round), several rounds; medians are printed.

    python tests/benchmarks/bench_store.py [--commits 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sqlite3
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path

BUSY_TIMEOUT = 60.0  # seconds; long enough that 4 queued writers never see Busy
MACHINE = "input"
UPDATE = "UPDATE instances SET state = ?, version = ? WHERE key = ? AND version = ?"


def _catalog():  # type: ignore[no-untyped-def]
    from statewright.adapters.runtime.store import Catalog
    from statewright.machines.input import INPUT, authorize_seed

    return Catalog({MACHINE: INPUT}, {MACHINE: authorize_seed})


def _key(worker: int) -> str:
    return f"bench-{worker}"


async def _setup(path: Path, workers: int) -> None:
    """Create the file and schema through the port, and one instance per worker key."""
    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.machines.input import Input

    async with await SqliteStore.open(path, _catalog(), busy_timeout=BUSY_TIMEOUT) as store:
        for w in range(workers):
            await store.cas(_key(w), 0, Input(), machine=MACHINE)


async def _port(path: Path, key: str, commits: int, barrier: Barrier) -> tuple[float, float]:
    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.machines.input import Input

    state = Input()
    async with await SqliteStore.open(path, _catalog(), busy_timeout=BUSY_TIMEOUT) as store:
        version = (await store.load(key)).version  # read once; the loop keeps it locally
        barrier.wait()  # nothing else is scheduled on this loop, so blocking here is harmless
        start = time.monotonic()
        for _ in range(commits):
            version = (await store.cas(key, version, state, machine=MACHINE)).version
        end = time.monotonic()
    return start, end


def _raw(path: Path, key: str, commits: int, barrier: Barrier) -> tuple[float, float]:
    from statewright.adapters.runtime.store import canonical_json
    from statewright.machines.input import Input

    text = canonical_json(Input())
    db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
    try:
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            raise SystemExit(f"{path} is not in WAL mode")
        (version,) = db.execute("SELECT version FROM instances WHERE key = ?", (key,)).fetchone()
        barrier.wait()
        start = time.monotonic()
        for _ in range(commits):
            db.execute("BEGIN IMMEDIATE")
            if db.execute(UPDATE, (text, version + 1, key, version)).rowcount != 1:
                db.execute("ROLLBACK")
                raise SystemExit(f"raw CAS lost on {key!r} at version {version}")
            db.execute("COMMIT")
            version += 1
        end = time.monotonic()
    finally:
        db.close()
    return start, end


def _worker(index: int, path: Path, barriers: dict[int, Barrier], conn: Connection) -> None:
    """Serve (kind, processes, commits) requests until None; answer (start, end) on monotonic time."""
    while (job := conn.recv()) is not None:
        kind, procs, commits = job
        if kind == "port":
            times = asyncio.run(_port(path, _key(index), commits, barriers[procs]))
        else:
            times = _raw(path, _key(index), commits, barriers[procs])
        conn.send(times)


def _run(conns: list[Connection], kind: str, commits: int) -> float:
    """Commits per second of ``len(conns)`` workers: all commits over first start to last end."""
    for c in conns:
        c.send((kind, len(conns), commits))
    spans = [c.recv() for c in conns]
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return len(conns) * commits / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=500, help="CAS commits per process per run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="where the database file goes (default: a temp dir)")
    args = ap.parse_args()
    setups = (1, 4)
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.db"
        asyncio.run(_setup(path, max(setups)))
        barriers = {n: ctx.Barrier(n) for n in setups}
        pipes = [ctx.Pipe() for _ in range(max(setups))]
        workers = [ctx.Process(target=_worker, args=(i, path, barriers, child), daemon=True)
                   for i, (_, child) in enumerate(pipes)]
        for p in workers:
            p.start()
        conns = [parent for parent, _ in pipes]
        rates: dict[tuple[str, int], list[float]] = {(k, n): [] for n in setups for k in ("raw", "port")}
        try:
            for r in range(args.rounds):
                order = ("port", "raw") if r % 2 == 0 else ("raw", "port")
                for n in setups:
                    for kind in order:
                        rates[kind, n].append(_run(conns[:n], kind, args.commits))
                print(f"round {r + 1}: " + ", ".join(
                    f"{k} x{n} {v[-1]:,.0f}/s" for (k, n), v in rates.items()), flush=True)
        finally:
            for c in conns:
                c.send(None)
            for p in workers:
                p.join()
    print(f"SQLite CAS commits/s, medians of {args.rounds} rounds, {args.commits} commits per process "
          f"per run, each process on its own key (no conflicts):")
    for n in setups:
        raw, port = statistics.median(rates["raw", n]), statistics.median(rates["port", n])
        label = "1 process  " if n == 1 else f"{n} processes"
        print(f"  {label}: raw sqlite3 {raw:>8,.0f}/s, SqliteStore.cas {port:>8,.0f}/s, "
              f"overhead {raw / port:.2f}x (raw/port)")


if __name__ == "__main__":
    main()
