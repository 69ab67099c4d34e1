"""Process entry points for `test_reliability`: each one is a separate OS process.

Every entry point is a top-level function (so a ``spawn`` or ``forkserver``
child can import it), opens its own `SqliteStore` (default busy timeout) or raw
``sqlite3`` connection on the shared file, and reports what it saw as JSON in the file
``out`` names -- or ``{"error": traceback}`` -- so the parent never blocks on
a pipe. Racers wait on a barrier after opening, so imports and start-up do
not spread the race out.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import random
import sqlite3
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Append, Busy, Cas, Conflict, Op
from statewright.machines.input import Input, InputPhase
from tests.adapters.test_store_contract import CATALOG

BATCH_KEYS = ("b0", "b1", "b2")


def tagged(tag: str | None) -> Input:
    """A valid QUEUED input whose ``run_id`` records who wrote it (any run id is allowed when queued)."""
    return Input(InputPhase.QUEUED, run_id=tag)


def _report(out: str, body: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    result: dict[str, Any]
    try:
        result = asyncio.run(body())
    except BaseException:  # anything at all: the parent turns it into a test failure
        result = {"error": traceback.format_exc()}
    Path(out).write_text(json.dumps(result))


# -- 1. load-then-cas race -------------------------------------------------------


def cas_racer(path: str, key: str, worker: int, attempts: int, barrier: Barrier, out: str) -> None:
    async def body() -> dict[str, Any]:
        won: list[list[int]] = []  # [version won, attempt]
        conflicts = busy = 0
        async with await SqliteStore.open(path, CATALOG) as store:
            barrier.wait(timeout=120)  # nothing else runs on this loop, so blocking is harmless
            start = time.monotonic()
            for j in range(attempts):
                record = await store.load(key)
                try:
                    new = await store.cas(key, record.version, tagged(f"w{worker}:{j}"))
                except Conflict:
                    conflicts += 1
                except Busy:
                    busy += 1
                else:
                    won.append([new.version, j])
            end = time.monotonic()
        return {"won": won, "conflicts": conflicts, "busy": busy, "start": start, "end": end}

    _report(out, body)


# -- 2. read head, append at it ------------------------------------------------------


def head_racer(path: str, key: str, worker: int, attempts: int, barrier: Barrier, out: str) -> None:
    async def body() -> dict[str, Any]:
        won: list[list[int]] = []  # [seq appended, attempt]
        conflicts = busy = 0
        head = 0
        async with await SqliteStore.open(path, CATALOG) as store:
            barrier.wait(timeout=120)
            start = time.monotonic()
            for j in range(attempts):
                fresh = await store.read_log(key, head + 1)  # only what is new since the last look
                if [e.seq for e in fresh] != list(range(head + 1, head + 1 + len(fresh))):
                    raise AssertionError(f"log of {key!r} has a gap after {head}: {[e.seq for e in fresh]}")
                head += len(fresh)
                try:
                    new_head = await store.append(key, head, [("Tick", {"w": worker, "j": j})])
                except Conflict:
                    conflicts += 1
                except Busy:
                    busy += 1
                else:
                    won.append([new_head, j])
            end = time.monotonic()
        return {"won": won, "conflicts": conflicts, "busy": busy, "start": start, "end": end}

    _report(out, body)


# -- 3. terminal race ------------------------------------------------------------------


def terminal_racer(path: str, keys: list[str], worker: int, barrier: Barrier, out: str) -> None:
    async def body() -> dict[str, Any]:
        order = list(keys)
        random.Random(worker).shuffle(order)  # racers sweep the keys in different orders
        won: list[list[Any]] = []  # [key, terminal seq]
        lost = late_refused = late_written = busy = 0
        async with await SqliteStore.open(path, CATALOG) as store:

            async def retrying(write: Callable[[], Awaitable[int]]) -> int:
                nonlocal busy
                for _ in range(5):  # Busy wrote nothing, so retrying keeps the count exact
                    try:
                        return await write()
                    except Busy:
                        busy += 1
                return await write()

            barrier.wait(timeout=120)
            for key in order:
                try:
                    seq = await retrying(lambda: store.append_terminal(key, "Abandon", {"w": worker}))
                except Conflict:
                    lost += 1
                else:
                    won.append([key, seq])
                head = len(await store.read_log(key))
                try:
                    await retrying(lambda: store.append(key, head, [("Late", {"w": worker})]))
                except Conflict:
                    late_refused += 1
                else:
                    late_written += 1
        return {"won": won, "lost": lost, "late_refused": late_refused, "late_written": late_written, "busy": busy}

    _report(out, body)


# -- 4. a batch writer to be killed ------------------------------------------------------


def batch_ops(version: int) -> list[Op]:
    """Batch number ``version`` on every batch key, whose versions are all ``version`` (heads ``version - 1``)."""
    cas: list[Op] = [Cas(k, version, tagged(f"b{version}")) for k in BATCH_KEYS]
    appends: list[Op] = [Append(k, version - 1, (("Batch", {"batch": version}),)) for k in BATCH_KEYS]
    return cas + appends


BETWEEN, PREPARING, IN_TRANSACTION, COMMITTING = 0, 1, 2, 3
"""Where `batch_writer` was when killed: outside commit(), inside it before ``BEGIN IMMEDIATE``,
after ``BEGIN IMMEDIATE`` but before ``COMMIT`` started, or after ``COMMIT`` started."""


def batch_writer(path: str, ready: Event, progress: ctypes.c_longlong) -> None:
    """Commit batches until killed.

    ``progress`` is ``acknowledged * 4 + stage``: one aligned 8-byte store per
    update, so a kill can never leave the count and the stage out of step
    (e.g. a batch acknowledged but its stage not yet reset).
    """

    def mark(stage: int) -> None:
        progress.value = progress.value // 4 * 4 + stage

    def trace(statement: str) -> None:  # aiosqlite's thread, as SQLite starts each statement
        if statement == "BEGIN IMMEDIATE":
            mark(IN_TRANSACTION)
        elif statement == "COMMIT":
            mark(COMMITTING)

    async def body() -> None:
        store = await SqliteStore.open(path, CATALOG)
        version = (await store.load(BATCH_KEYS[0])).version
        await store._db.set_trace_callback(trace)
        ready.set()
        for _ in range(1_000_000):  # bounded; the parent kills it long before
            mark(PREPARING)
            await store.commit(batch_ops(version))
            progress.value = (progress.value // 4 + 1) * 4 + BETWEEN
            version += 1

    asyncio.run(body())


# -- 5. a raw lock holder ---------------------------------------------------------------


def lock_holder(path: str, hold: float, ready: Event) -> None:
    """Hold SQLite's write lock (``BEGIN IMMEDIATE`` plus an uncommitted write) for ``hold`` seconds."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE instances SET version = version + 100")
        ready.set()
        time.sleep(hold)
        db.execute("ROLLBACK")
    finally:
        db.close()


# -- 6. a garbler ---------------------------------------------------------------------------


def garbler(path: str, key: str, text: str) -> None:
    """Overwrite ``key``'s stored state with ``text`` behind the store's back."""
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        changed = db.execute("UPDATE instances SET state = ? WHERE key = ?", (text, key)).rowcount
        if changed != 1:
            raise SystemExit(f"no row {key!r} to garble")
    finally:
        db.close()
