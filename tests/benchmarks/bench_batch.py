"""One large batch: how long committing N operations takes (so how long SQLite's write lock is held), against a revision.

Two shapes of batch, each committed with a batch id, as the driver commits:

* ``create`` -- N/2 new keys, each ``Cas(key, 0, Input(), machine="input")``
  plus ``Append(key, 0, (("created", {...}),))``: `Driver.create_all`'s shape;
* ``feed`` -- N/2 existing keys, each ``Cas(key, 1, QUEUED)`` plus
  ``Append(key, 1, (("input", ...), ("effect", ...)))``: N/2 accepted inputs.

The keys of ``feed`` are written beforehand with plain SQL, so the setup does
not depend on the revision. Each checkout -- a git worktree of the baseline
revision, and this tree -- runs in its own process, alternately, several
rounds, on a new SQLite file and a new database of one throwaway PostgreSQL
server (``tests/adapters/_postgres.py``, fsync on). Measured: the commit's
wall time, and, apart, `store.prepare_batch` alone (validation and
serialisation, done before any lock is taken), so the time the write lock is
held is about their difference. Medians are printed.

    python tests/benchmarks/bench_batch.py [--rev 1832843] [--ops 40000] [--pg-ops 20000] [--rounds 3] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))  # for tests.adapters._postgres

PROBE = r"""
import asyncio, json, sqlite3, sys, time
where, shape, ops_n = sys.argv[1], sys.argv[2], int(sys.argv[3])
from statewright.adapters.runtime.store import Append, Cas, Catalog, batch_id, canonical_json, prepare_batch
from statewright.machines.input import INPUT, Input, InputPhase, authorize_seed
catalog = Catalog({"input": INPUT}, {"input": authorize_seed})
keys = [f"k{i:06d}" for i in range(ops_n // 2)]
QUEUED = Input(InputPhase.QUEUED)
if shape == "create":
    ops = [op for k in keys for op in (Cas(k, 0, Input(), machine="input"),
                                       Append(k, 0, (("created", {"machine": "input"}),)))]
else:
    ops = [op for k in keys for op in (Cas(k, 1, QUEUED),
                                       Append(k, 1, (("input", {"type": "Queue"}), ("effect", {"type": "InputQueued"}))))]
batch = batch_id(ops)
state, created = canonical_json(Input()), canonical_json({"machine": "input"})

async def main():
    if where.startswith("postgresql://"):
        from statewright.adapters.runtime.postgres import PostgresStore
        import asyncpg
        store = await PostgresStore.open(where, catalog, busy_timeout=60.0)
        if shape == "feed":
            conn = await asyncpg.connect(where)
            await conn.copy_records_to_table("instances", schema_name="statewright",
                                             records=[(k, "input", state, 1) for k in keys])
            await conn.copy_records_to_table("events", schema_name="statewright",
                                             records=[(k, 1, "created", created, False) for k in keys])
            await conn.close()
    else:
        from statewright.adapters.runtime.sqlite import SqliteStore
        store = await SqliteStore.open(where, catalog, busy_timeout=60.0)
        if shape == "feed":
            raw = sqlite3.connect(where)
            with raw:
                raw.executemany("INSERT INTO instances VALUES (?, 'input', ?, 1)", [(k, state) for k in keys])
                raw.executemany("INSERT INTO events VALUES (?, 1, 'created', ?, 0, ?, 0, 0)",
                                [(k, created, i) for i, k in enumerate(keys, start=1)])
                raw.execute("UPDATE positions SET last = ?", (len(keys),))
            raw.close()
    started = time.perf_counter()
    prepare_batch(catalog, ops, batch)
    prepared = time.perf_counter() - started
    started = time.perf_counter()
    await store.commit(ops, batch=batch)
    committed = time.perf_counter() - started
    await store.close()
    print(prepared, committed)

asyncio.run(main())
"""


def probe(tree: Path, where: str, shape: str, ops: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, where, shape, str(ops)], cwd=tempfile.gettempdir(),
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the probe failed in {tree}:\n{out.stderr}")
    prepared, committed = out.stdout.split()
    return float(prepared), float(committed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="1832843")
    ap.add_argument("--ops", type=int, default=40_000, help="operations in SQLite's batch")
    ap.add_argument("--pg-ops", type=int, default=20_000, help="operations in PostgreSQL's batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    from tests.adapters import _postgres

    server = _postgres.start_for_bench(not args.no_postgres)
    backends = ["sqlite"] + (["postgres"] if server is not None else [])
    times: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev],
                       check=True, capture_output=True)
        try:
            for r in range(args.rounds):
                for backend in backends:
                    n = args.ops if backend == "sqlite" else args.pg_ops
                    for shape in ("create", "feed"):
                        line = []
                        for name, tree in (("baseline", old), ("now", ROOT)):
                            if server is not None and backend == "postgres":
                                where = server.database()
                            else:
                                where = str(Path(tmp) / f"{name}-{shape}-{r}.db")
                            measured = probe(tree, where, shape, n)
                            if server is not None and backend == "postgres":
                                server.drop(where)
                            times.setdefault((backend, shape, name), []).append(measured)
                            line.append(f"{name} {measured[1]:.2f} s (prepare {measured[0]:.2f} s)")
                        print(f"round {r + 1}: {backend} {shape} {n:,} ops: {'; '.join(line)}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
            if server is not None:
                server.stop()
    for backend in backends:
        n = args.ops if backend == "sqlite" else args.pg_ops
        for shape in ("create", "feed"):
            b = [statistics.median(x) for x in zip(*times[(backend, shape, "baseline")])]
            c = [statistics.median(x) for x in zip(*times[(backend, shape, "now")])]
            print(f"{backend}, {shape}, {n:,} operations, medians of {args.rounds}: commit {args.rev} {b[1]:.2f} s "
                  f"-> now {c[1]:.2f} s ({b[1] / c[1]:.1f}x); of which prepare {b[0]:.2f} s -> {c[0]:.2f} s")


if __name__ == "__main__":
    main()
