"""Process entry points for `test_reliability`: each one is a separate OS process.

Every entry point is a top-level function (so a ``spawn`` or ``forkserver``
child can import it), opens its own store (default busy timeout) on the shared
*locator* -- a SQLite file or a PostgreSQL DSN (`tests.adapters._backends`) --
or another connection behind the store's back, and reports what it saw as JSON
in the file ``out`` names -- or ``{"error": traceback}`` -- so the parent never
blocks on a pipe. Racers wait on a barrier after opening, so imports and
start-up do not spread the race out.

Every store call a worker makes goes through a `Recorder` writing the JSON
Lines file ``history`` names (flushed at each invoke and return, so a killed
worker's file ends with its in-flight operation, pending); `judge` merges the
files and checks the history is linearizable.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import signal
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from enum import Enum
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Append, Busy, Cas, Catalog, Conflict, Op
from statewright.adapters.testing.linearizability import (
    HistoryCheck,
    HistoryVerdict,
    Operation,
    Recorder,
    check_history,
    load_history,
    resume,
)
from statewright.kernel.machine import Machine, Transition
from statewright.machines.input import Input, InputPhase
from tests.adapters import _backends as B
from tests.adapters.test_store_contract import CATALOG

BATCH_KEYS = ("b0", "b1", "b2")


# -- a machine that takes the same input again and again ------------------------------------
#
# An input applied twice shows in its state (the input lifecycle would refuse a
# second Queue and hide the fact in a rejection), so the exactly-once tests use
# a tally: every Add is accepted and counted, Close ends it.


class TallyPhase(Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Tally:
    phase: TallyPhase = TallyPhase.OPEN
    total: int = 0
    adds: int = 0


@dataclass(frozen=True, slots=True)
class Add:
    amount: int


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Added:
    total: int


def _add(s: Tally, i: Add) -> Tally:
    return replace(s, total=s.total + i.amount, adds=s.adds + 1)


TALLY = Machine(
    "tally",
    initial=Tally(),
    terminal={TallyPhase.CLOSED},
    transitions=[
        Transition(TallyPhase.OPEN, Add, TallyPhase.OPEN, update=_add, emit=lambda s, i: (Added(s.total),)),
        Transition(TallyPhase.OPEN, Close, TallyPhase.CLOSED),
    ],
)
ONCE_CATALOG = Catalog({**CATALOG.machines, "tally": TALLY}, CATALOG.authorize)
"""The contract suite's machines and the tally."""


def tagged(tag: str | None) -> Input:
    """A valid QUEUED input whose ``run_id`` records who wrote it (any run id is allowed when queued)."""
    return Input(InputPhase.QUEUED, run_id=tag)


@asynccontextmanager
async def recorded(locator: str, process: str, history: str | Path, **options: Any) -> AsyncIterator[Recorder]:
    """A store on ``locator`` whose every call is recorded as ``process`` in the file ``history``."""
    start = resume(history, process)  # a process that reopens its store goes on numbering its calls
    async with await B.open_store(locator, **options) as store:
        with open(history, "a", encoding="utf-8") as f:
            yield Recorder(store, process, f, index=start)


def judge(files: Iterable[Path], *extra: Operation, max_steps: int = 4_000_000) -> HistoryCheck:
    """Merge the history files (and ``extra`` operations), check them, and fail unless linearizable.

    The budget is sized so that every history of these tests is decided; an
    ``unknown`` verdict fails too, since it proves nothing.
    """
    history = [*load_history(files), *extra]
    result = check_history(history, max_steps=max_steps)
    assert result.verdict is HistoryVerdict.LINEARIZABLE, result.report()
    return result


def _report(out: str, body: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    result: dict[str, Any]
    try:
        result = asyncio.run(body())
    except BaseException:  # anything at all: the parent turns it into a test failure
        result = {"error": traceback.format_exc()}
    Path(out).write_text(json.dumps(result))


# -- 1. load-then-cas race -------------------------------------------------------


def cas_racer(locator: str, key: str, worker: int, attempts: int, history: str, barrier: Barrier, out: str) -> None:
    async def body() -> dict[str, Any]:
        won: list[list[int]] = []  # [version won, attempt]
        conflicts = busy = 0
        async with recorded(locator, f"w{worker}", history) as store:
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


def head_racer(locator: str, key: str, worker: int, attempts: int, history: str, barrier: Barrier, out: str) -> None:
    async def body() -> dict[str, Any]:
        won: list[list[int]] = []  # [seq appended, attempt]
        conflicts = busy = 0
        head = 0
        async with recorded(locator, f"w{worker}", history) as store:
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


def terminal_racer(locator: str, keys: list[str], worker: int, history: str, barrier: Barrier, out: str) -> None:
    async def body() -> dict[str, Any]:
        order = list(keys)
        random.Random(worker).shuffle(order)  # racers sweep the keys in different orders
        won: list[list[Any]] = []  # [key, terminal seq]
        lost = late_refused = late_written = busy = 0
        async with recorded(locator, f"w{worker}", history) as store:

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
after ``BEGIN IMMEDIATE`` but before ``COMMIT`` started, or after ``COMMIT`` started. On
PostgreSQL the statements are not traced: a kill inside commit() reads as ``PREPARING``."""


def batch_writer(locator: str, history: str, process: str, ready: Event, progress: ctypes.c_longlong) -> None:
    """Commit batches until killed, recording them as ``process`` in ``history``.

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
        # never closed: the parent kills this process, which is the point
        store = Recorder(await B.open_store(locator), process, open(history, "a", encoding="utf-8"))
        version = (await store.load(BATCH_KEYS[0])).version
        if isinstance(store.inner, SqliteStore):
            await store.inner._db.set_trace_callback(trace)
        ready.set()
        for _ in range(1_000_000):  # bounded; the parent kills it long before
            mark(PREPARING)
            await store.commit(batch_ops(version))
            progress.value = (progress.value // 4 + 1) * 4 + BETWEEN
            version += 1

    asyncio.run(body())


# -- 5. a raw lock holder ---------------------------------------------------------------


def lock_holder(locator: str, hold: float, ready: Event) -> None:
    """Hold the store's write lock from another connection (`_backends.Holder`) for ``hold`` seconds."""

    async def body() -> None:
        holder = await B.Holder.connect(locator)
        try:
            await holder.hold()
            ready.set()
            await asyncio.sleep(hold)
            await holder.release()
        finally:
            await holder.close()

    asyncio.run(body())


# -- 6. a garbler ---------------------------------------------------------------------------


def garbler(locator: str, key: str, text: str) -> None:
    """Overwrite ``key``'s stored state with ``text`` behind the store's back."""
    asyncio.run(B.garble(locator, key, text))


# -- 7. a retrying client to be killed ----------------------------------------------------------------

TALLY_KEY = "tally"


class _KillAfterCommit:
    """A store whose ``commit`` kills this process (SIGKILL) once the ``n``-th commit has returned.

    The batch has committed, and nobody above the store has heard back: the
    moment a crash makes a caller unsure whether its request took effect.
    Everything else passes through.
    """

    def __init__(self, inner: Any, n: int | None) -> None:
        self.inner, self.catalog, self._left = inner, inner.catalog, n

    async def commit(self, ops: Any, *, batch: str | None = None, outcome: Any = None) -> None:
        await self.inner.commit(ops, batch=batch, outcome=outcome)
        if self._left is not None:
            self._left -= 1
            if self._left == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def once_client(locator: str, folder: str, process: str, requests: int, kill_after_commit: int | None,
                request_ids: bool, ready: Event) -> None:
    """Send requests ``r0``, ``r1``, ... (each ``Add(1)`` on the tally) until ``requests`` have been answered.

    The client a crash cannot fool: before it sends request ``n`` it writes
    ``n`` to ``folder/journal``, and when it starts it first sends again the
    request the journal names -- the one a crash may have cut short -- with the
    same request id (``request_ids``; without them, as a plain feed). Each
    answer is appended to ``folder/answers`` as ``{"n", "replayed", "adds",
    "process"}``. With ``kill_after_commit`` this process kills itself right
    after that many commits have returned from the store; otherwise the parent
    kills it whenever it likes. Store calls are recorded in
    ``folder/{process}.jsonl``.
    """

    async def body() -> None:
        from statewright.adapters.runtime.driver import Driver

        journal, answers = Path(folder) / "journal", Path(folder) / "answers"
        n = int(journal.read_text()) if journal.exists() else 0
        inner = await B.open_store(locator, ONCE_CATALOG)
        try:  # closed on the way out (an error must not leave the process hanging on its thread); a kill skips it
            with open(Path(folder) / f"{process}.jsonl", "a", encoding="utf-8") as history:
                driver = Driver(Recorder(_KillAfterCommit(inner, kill_after_commit), process, history))
                ready.set()
                while n < requests:
                    _atomically(journal, str(n))  # what to send again after a crash, written before it is sent
                    if request_ids:
                        fed = await driver.feed(TALLY_KEY, Add(1), request=f"r{n}")
                    else:
                        fed = await driver.feed(TALLY_KEY, Add(1))
                    line = {"n": n, "replayed": fed.replayed, "adds": fed.record.state.adds, "process": process}
                    with open(answers, "a", encoding="utf-8") as f:
                        f.write(json.dumps(line) + "\n")
                    n += 1
                    _atomically(journal, str(n))
        finally:
            await inner.close()

    asyncio.run(body())


def _atomically(path: Path, text: str) -> None:
    """Replace ``path``'s contents whole: a kill leaves the old text or the new, never a torn one."""
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)
