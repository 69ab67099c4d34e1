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

Then SQLite against PostgreSQL, through the port: the batch the driver
writes when it accepts an input -- ``commit([Cas(key, v, Input()),
Append(key, h, (("Queue", {}),))], batch=batch_id(ops))`` -- by 1 and by 4
processes, each on its own key, `SqliteStore` on the same file and
`PostgresStore` on a throwaway server (``tests/adapters/_postgres.py``, over a
Unix socket) started with ``fsync=on`` here, so both backends commit at
their default durability (``--pg-fsync-off`` runs it as the tests do).
Without PostgreSQL binaries that part is skipped with a note.

Last, a fresh `Driver`'s first feed on a key whose log holds 10 events and
200,000 (``--long``) events, on both backends: the time from a new driver to
its first `Driver.feed` returning, on a store already open, medians of
``--feeds`` runs (each run a new driver on the same key; the log is filled
with raw inserts, since only its length matters). A driver that must read a
key's whole log before deciding pays for every event here.

And what a request id costs: `Driver.feed` per second through one driver on
one key, plain and with a request id (a receipt read before deciding, the
outcome written with the batch), alternating, medians of ``--rounds``.

    python tests/benchmarks/bench_store.py [--commits 500] [--rounds 5] [--no-postgres] [--pg-fsync-off]
                                           [--part all|throughput|first-feed|requests] [--long 200000] [--feeds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sqlite3
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.adapters.runtime.store import Catalog

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.adapters._postgres

BUSY_TIMEOUT = 60.0  # seconds; long enough that 4 queued writers never see Busy
MACHINE = "input"
UPDATE = "UPDATE instances SET state = ?, version = ? WHERE key = ? AND version = ?"


def _catalog() -> Catalog:
    from statewright.adapters.runtime.store import Catalog
    from statewright.machines.input import INPUT, authorize_seed

    return Catalog({MACHINE: INPUT}, {MACHINE: authorize_seed})


def _key(worker: int) -> str:
    return f"bench-{worker}"


async def _open(where: str, catalog: Catalog | None = None) -> Any:
    """A store on ``where``: a PostgreSQL DSN, or else a SQLite file path."""
    if where.startswith("postgresql://"):
        from statewright.adapters.runtime.postgres import PostgresStore

        return await PostgresStore.open(where, catalog or _catalog(), busy_timeout=BUSY_TIMEOUT)
    from statewright.adapters.runtime.sqlite import SqliteStore

    return await SqliteStore.open(Path(where), catalog or _catalog(), busy_timeout=BUSY_TIMEOUT)


async def _setup(where: str, workers: int) -> None:
    """Create the store and schema through the port, and one instance per worker key."""
    from statewright.machines.input import Input

    async with await _open(where) as store:
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


async def _batches(where: str, key: str, commits: int, barrier: Barrier) -> tuple[float, float]:
    """Accepted-input batches (Cas + Append, with a batch id) on one key, as the driver writes them."""
    from statewright.adapters.runtime.store import Append, Cas, Op, batch_id
    from statewright.machines.input import Input

    state = Input()
    async with await _open(where) as store:
        version = (await store.load(key)).version
        head = len(await store.read_log(key))
        barrier.wait()
        start = time.monotonic()
        for _ in range(commits):
            ops: list[Op] = [Cas(key, version, state), Append(key, head, (("Queue", {}),))]
            await store.commit(ops, batch=batch_id(ops))
            version, head = version + 1, head + 1
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


def _worker(index: int, path: Path, dsn: str | None, barriers: dict[int, Barrier], conn: Connection) -> None:
    """Serve (kind, processes, commits) requests until None; answer (start, end) on monotonic time."""
    while (job := conn.recv()) is not None:
        kind, procs, commits = job
        if kind == "port":
            times = asyncio.run(_port(path, _key(index), commits, barriers[procs]))
        elif kind == "raw":
            times = _raw(path, _key(index), commits, barriers[procs])
        else:
            where = str(dsn) if kind == "postgres" else str(path)
            times = asyncio.run(_batches(where, _key(index), commits, barriers[procs]))
        conn.send(times)


def _run(conns: list[Connection], kind: str, commits: int) -> float:
    """Commits per second of ``len(conns)`` workers: all commits over first start to last end."""
    for c in conns:
        c.send((kind, len(conns), commits))
    spans = [c.recv() for c in conns]
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return float(len(conns) * commits / wall)


# -- a fresh driver's first feed -------------------------------------------------------------


async def _fill(where: str, key: str, events: int) -> None:
    """Give ``key``'s log (holding its ``created`` event) ``events`` events in all, by raw inserts."""
    data = '{"amount":0,"type":"Add"}'
    if where.startswith("postgresql://"):
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(where)
        try:
            await conn.execute(  # numbered after the positions taken so far, which then move past them
                "INSERT INTO statewright.events (key, seq, kind, data, position, at, bucket) "
                "SELECT $1, g, 'input', $2, (SELECT last FROM statewright.positions) + g, 0, 0 "
                "FROM generate_series(2, $3::bigint) AS g", key, data, events)
            await conn.execute("UPDATE statewright.positions SET last = last + $1::bigint", events)
            await conn.execute("ANALYZE statewright.events")
        finally:
            await conn.close()
        return
    db = sqlite3.connect(where, isolation_level=None, timeout=BUSY_TIMEOUT)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO events (key, seq, kind, data, position, at, bucket) VALUES (?, ?, 'input', ?, "
                       "(SELECT last FROM positions) + ?, 0, 0)", ((key, seq, data, seq) for seq in range(2, events + 1)))
        db.execute("UPDATE positions SET last = last + ?", (events,))
        db.execute("COMMIT")
    finally:
        db.close()


async def _first_feeds(where: str, sizes: tuple[int, ...], feeds: int) -> dict[int, list[float]]:
    """Seconds from a new `Driver` to its first feed returning, ``feeds`` times per log length, alternating."""
    from statewright.adapters.runtime.driver import Driver
    from tests.adapters._workers import ONCE_CATALOG, Add

    async with await _open(where, ONCE_CATALOG) as store:
        for size in sizes:
            await Driver(store).create(f"log-{size}", "tally")
            await _fill(where, f"log-{size}", size)
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(feeds):
            for size in sizes:
                driver = Driver(store)
                start = time.perf_counter()
                await driver.feed(f"log-{size}", Add(1))
                times[size].append(time.perf_counter() - start)
    return times


def _first_feed_part(tmp: str, dsn: str | None, long: int, feeds: int) -> None:
    sizes = (10, long)
    print(f"A fresh Driver's first feed, medians of {feeds} (ms), by the length of the key's log:", flush=True)
    for name, where in (("SQLite    ", str(Path(tmp) / "first.db")), ("PostgreSQL", dsn)):
        if where is None:
            continue
        times = asyncio.run(_first_feeds(where, sizes, feeds))
        print(f"  {name}: " + ", ".join(
            f"{size:,} events {statistics.median(times[size]) * 1000:,.1f} ms "
            f"(min {min(times[size]) * 1000:,.1f}, max {max(times[size]) * 1000:,.1f})" for size in sizes), flush=True)


async def _feeds(where: str, rounds: int, feeds: int) -> dict[str, list[float]]:
    """Feeds per second through one driver on one key, plain and by request id, alternating rounds."""
    from statewright.adapters.runtime.driver import Driver
    from tests.adapters._workers import ONCE_CATALOG, Add

    rates: dict[str, list[float]] = {"plain": [], "request": []}
    async with await _open(where, ONCE_CATALOG) as store:
        driver = Driver(store)
        await driver.create("feeds", "tally")
        sent = 0
        for r in range(rounds):
            for kind in (("plain", "request") if r % 2 == 0 else ("request", "plain")):
                start = time.perf_counter()
                for _ in range(feeds):
                    sent += 1
                    await driver.feed("feeds", Add(1), request=f"r{sent}" if kind == "request" else None)
                rates[kind].append(feeds / (time.perf_counter() - start))
    return rates


def _requests_part(tmp: str, dsn: str | None, rounds: int, feeds: int) -> None:
    print(f"Driver.feed per second on one key, medians of {rounds} rounds of {feeds} feeds:", flush=True)
    for name, where in (("SQLite    ", str(Path(tmp) / "feeds.db")), ("PostgreSQL", dsn)):
        if where is None:
            continue
        rates = asyncio.run(_feeds(where, rounds, feeds))
        plain, by_id = statistics.median(rates["plain"]), statistics.median(rates["request"])
        print(f"  {name}: plain {plain:,.0f}/s, with a request id {by_id:,.0f}/s ({plain / by_id:.2f}x)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=500, help="CAS commits per process per run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="where the database file goes (default: a temp dir)")
    ap.add_argument("--no-postgres", action="store_true", help="skip the SQLite-against-PostgreSQL part")
    ap.add_argument("--pg-fsync-off", action="store_true", help="run PostgreSQL without fsync, as the tests do")
    ap.add_argument("--part", choices=("all", "throughput", "first-feed", "requests"), default="all")
    ap.add_argument("--long", type=int, default=200_000, help="events in the long log of the first-feed part")
    ap.add_argument("--feeds", type=int, default=7, help="first feeds measured per log length")
    args = ap.parse_args()
    setups = (1, 4)
    ctx = mp.get_context("spawn")
    from tests.adapters import _postgres

    server = _postgres.start_for_bench(not args.no_postgres, fsync=not args.pg_fsync_off)
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            path = Path(tmp) / "bench.db"
            dsn = server.database() if server is not None else None
            if args.part in ("all", "first-feed"):
                _first_feed_part(tmp, server.database() if server is not None else None, args.long, args.feeds)
            if args.part in ("all", "requests"):
                _requests_part(tmp, server.database() if server is not None else None, args.rounds, args.commits)
            if args.part in ("first-feed", "requests"):
                return
            asyncio.run(_setup(str(path), max(setups)))
            if dsn is not None:
                asyncio.run(_setup(dsn, max(setups)))
            rates = _measure(ctx, path, dsn, setups, args.commits, args.rounds)
    finally:
        if server is not None:
            server.stop()
    print(f"SQLite CAS commits/s, medians of {args.rounds} rounds, {args.commits} commits per process "
          f"per run, each process on its own key (no conflicts):")
    for n in setups:
        raw, port = statistics.median(rates["raw", n]), statistics.median(rates["port", n])
        label = "1 process  " if n == 1 else f"{n} processes"
        print(f"  {label}: raw sqlite3 {raw:>8,.0f}/s, SqliteStore.cas {port:>8,.0f}/s, "
              f"overhead {raw / port:.2f}x (raw/port)")
    if dsn is not None:
        print("Accepted-input batches (Cas + Append, batch id) per second, same medians:")
        for n in setups:
            lite, pg = statistics.median(rates["sqlite", n]), statistics.median(rates["postgres", n])
            label = "1 process  " if n == 1 else f"{n} processes"
            print(f"  {label}: SqliteStore {lite:>8,.0f}/s, PostgresStore {pg:>8,.0f}/s, "
                  f"ratio {pg / lite:.2f}x (postgres/sqlite)")


def _measure(ctx: Any, path: Path, dsn: str | None, setups: tuple[int, ...], commits: int,
             rounds: int) -> dict[tuple[str, int], list[float]]:
    """Start the workers, run every kind on every setup for ``rounds`` rounds, and stop them."""
    barriers = {n: ctx.Barrier(n) for n in setups}
    pipes = [ctx.Pipe() for _ in range(max(setups))]
    workers = [ctx.Process(target=_worker, args=(i, path, dsn, barriers, child), daemon=True)
               for i, (_, child) in enumerate(pipes)]
    for p in workers:
        p.start()
    conns = [parent for parent, _ in pipes]
    pairs = [("port", "raw")] + ([("sqlite", "postgres")] if dsn is not None else [])
    rates: dict[tuple[str, int], list[float]] = {(k, n): [] for n in setups for pair in pairs for k in pair}
    try:
        for r in range(rounds):
            for pair in pairs:
                order = pair if r % 2 == 0 else pair[::-1]
                for n in setups:
                    for kind in order:
                        rates[kind, n].append(_run(conns[:n], kind, commits))
            print(f"round {r + 1}: " + ", ".join(
                f"{k} x{n} {v[-1]:,.0f}/s" for (k, n), v in rates.items()), flush=True)
    finally:
        for c in conns:
            c.send(None)
        for p in workers:
            p.join()
    return rates


if __name__ == "__main__":
    main()
