"""The stores under real concurrency and real crashes: separate OS processes on one SQLite file or PostgreSQL database.

The contract suite covers what one process sees; these tests race several
processes (`tests.adapters._workers`) on one store -- a WAL file, or a
PostgreSQL database (`tests.adapters._backends`; skipped where PostgreSQL
cannot be had) -- and kill a writer with SIGKILL mid-batch, then assert the
invariants the store promises: one winner per version, a gapless log, one
terminal event, whole-or-absent batches, Busy (not Conflict, not a hang) when
another process holds the write lock, and a garbled row that stays that row's
problem. Every store call of the races and the kill runs is recorded
(`Recorder`), and the merged history of all processes must be linearizable;
a killed writer's last call is pending. Each test prints its figures and
``linearizable: N operations, M processes, K keys``.

Children come from the ``forkserver`` context with `_workers` preloaded:
every child is still a fresh process with its own interpreter state and
SQLite connection, but it is forked from a server that has already paid the
~0.8 s of imports a ``spawn`` child pays, which keeps 40 kill trials cheap.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.store import Append, Busy, Cas, Conflict, Corrupt, Event, Record
from statewright.adapters.testing.linearizability import HistoryCheck, OpKind, Recorder, load_history
from tests.adapters import _backends as B
from tests.adapters import _workers as W


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each test does on a backend: SQLite's figures are the original ones; PostgreSQL's cost more a try."""

    cas_attempts: int
    head_attempts: int
    terminal_keys: int
    kill_trials: int


SIZES = {"sqlite": Sizes(500, 200, 50, 40), "postgres": Sizes(100, 60, 20, 16)}
RACERS = 8
KILL_DELAY = 0.3  # seconds; the longest random wait before SIGKILL
JOIN_TIMEOUT = 180.0  # seconds; only a hung child ever gets near it


def _context() -> ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.adapters._workers"])
    return ctx


CTX = _context()


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[reliability] {text}")


def linearizable(capsys: pytest.CaptureFixture[str], what: str, result: HistoryCheck) -> None:
    say(capsys, f"{what}: {result.summary()} (checked in {result.seconds:.2f} s, {result.steps:,} steps)")


def race(tmp_path: Path, target: Callable[..., None], args: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Run ``target(*a, history, barrier, out)`` in one process per ``a``; all start together; their JSON results.

    Worker ``i`` records its store calls in ``tmp_path / f"w{i}.jsonl"``.
    """
    barrier = CTX.Barrier(len(args) + 1)
    outs = [tmp_path / f"worker-{i}.json" for i in range(len(args))]
    procs = [CTX.Process(target=target, args=(*a, str(tmp_path / f"w{i}.jsonl"), barrier, str(out)))
             for i, (a, out) in enumerate(zip(args, outs))]
    B.run_together(procs, barrier, start_within=120, join_within=JOIN_TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    results = [json.loads(out.read_text()) for out in outs]
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors[0]
    return results


def histories(tmp_path: Path) -> list[Path]:
    """Every history file of a test: the parent's and each worker's."""
    return sorted(tmp_path.glob("*.jsonl"))


def parent(locator: str, tmp_path: Path) -> AbstractAsyncContextManager[Recorder]:
    """The parent's own store calls (setup and final reads), recorded as process ``parent``."""
    return W.recorded(locator, "parent", tmp_path / "parent.jsonl")


def span(results: list[dict[str, Any]]) -> float:
    return float(max(r["end"] for r in results) - min(r["start"] for r in results))


# -- 1. load-then-cas -------------------------------------------------------------------


@pytest.mark.slow
def test_cas_race_across_processes_has_one_winner_per_version(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attempts = SIZES[B.backend_name(store_at)].cas_attempts

    async def create() -> None:
        async with parent(store_at, tmp_path) as store:
            await store.cas("counter", 0, W.tagged(None), machine="input")

    async def final() -> Record:
        async with parent(store_at, tmp_path) as store:
            record: Record = await store.load("counter")
            return record

    asyncio.run(create())
    results = race(tmp_path, W.cas_racer, [(store_at, "counter", w, attempts) for w in range(RACERS)])
    last = asyncio.run(final())

    won = {(version, w, j) for w, r in enumerate(results) for version, j in r["won"]}
    versions = sorted(version for version, _, _ in won)
    conflicts = sum(r["conflicts"] for r in results)
    busy = sum(r["busy"] for r in results)
    assert versions == list(range(2, last.version + 1))  # each version won exactly once, none skipped
    assert last.version == 1 + len(won)  # no lost update
    (winner,) = [(w, j) for version, w, j in won if version == last.version]
    assert last.state == W.tagged(f"w{winner[0]}:{winner[1]}")  # the stored state is the last winner's
    assert len(won) + conflicts + busy == RACERS * attempts
    assert conflicts > 0  # the race was real
    seconds = span(results)
    say(
        capsys,
        f"{B.backend_name(store_at)} cas race: {RACERS} processes x {attempts} = {RACERS * attempts} attempts, "
        f"{len(won)} successes (final version {last.version}), {conflicts} conflicts, {busy} busy; "
        f"wins per process {[len(r['won']) for r in results]}; "
        f"{len(won) / seconds:.0f} commits/s over {seconds:.2f} s",
    )
    checked = W.judge(histories(tmp_path))
    # a load and a cas per attempt (a Busy cas wrote nothing and is left out), the create, the final load
    assert (checked.operations, checked.processes, checked.keys) == (2 * RACERS * attempts - busy + 2, RACERS + 1, 1)
    linearizable(capsys, f"{B.backend_name(store_at)} cas race", checked)


# -- 2. read head, append at it -------------------------------------------------------------


@pytest.mark.slow
def test_head_race_keeps_the_log_gapless(store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    attempts = SIZES[B.backend_name(store_at)].head_attempts

    async def create() -> None:
        async with parent(store_at, tmp_path) as store:
            await store.cas("log", 0, W.tagged(None), machine="input")

    async def log() -> list[Event]:
        async with parent(store_at, tmp_path) as store:
            events: list[Event] = await store.read_log("log")
            return events

    asyncio.run(create())
    results = race(tmp_path, W.head_racer, [(store_at, "log", w, attempts) for w in range(RACERS)])
    events = asyncio.run(log())

    won = {(w, j): seq for w, r in enumerate(results) for seq, j in r["won"]}
    assert len(won) == sum(len(r["won"]) for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    busy = sum(r["busy"] for r in results)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # contiguous, no duplicates
    assert len(events) == len(won)
    assert {e.kind for e in events} == {"Tick"} and not any(e.terminal for e in events)
    logged = {(e.data["w"], e.data["j"]): e.seq for e in events}
    assert len(logged) == len(events)  # no attempt's event appears twice
    assert logged == won  # every success is in the log at the head it was told, and nothing else is
    assert len(won) + conflicts + busy == RACERS * attempts  # every loser got Conflict (or Busy)
    assert conflicts > 0
    seconds = span(results)
    say(
        capsys,
        f"{B.backend_name(store_at)} head race: {RACERS} processes x {attempts} = {RACERS * attempts} attempts, "
        f"{len(events)} events appended (seq 1..{len(events)}), {conflicts} conflicts, {busy} busy; "
        f"appends per process {[len(r['won']) for r in results]}; {len(won) / seconds:.0f} appends/s",
    )
    checked = W.judge(histories(tmp_path))
    # a read_log and an append per attempt (Busy left out), the create, the final read
    assert (checked.operations, checked.processes, checked.keys) == (2 * RACERS * attempts - busy + 2, RACERS + 1, 1)
    linearizable(capsys, f"{B.backend_name(store_at)} head race", checked)


# -- 3. terminal race -----------------------------------------------------------------------


@pytest.mark.slow
def test_terminal_race_ends_each_log_exactly_once(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = SIZES[B.backend_name(store_at)].terminal_keys
    keys = [f"t{i:02d}" for i in range(n)]

    async def create() -> None:
        async with parent(store_at, tmp_path) as store:
            for key in keys:
                await store.cas(key, 0, W.tagged(None), machine="input")
                await store.append(key, 0, [("Queue", {})])

    async def logs() -> dict[str, list[Event]]:
        async with parent(store_at, tmp_path) as store:
            return {key: await store.read_log(key) for key in keys}

    asyncio.run(create())
    results = race(tmp_path, W.terminal_racer, [(store_at, keys, w) for w in range(RACERS)])
    after = asyncio.run(logs())

    winners: dict[str, list[tuple[int, int]]] = {key: [] for key in keys}
    for w, r in enumerate(results):
        for key, seq in r["won"]:
            winners[key].append((w, seq))
    assert sum(len(r["won"]) for r in results) == n
    for key in keys:
        ((w, seq),) = winners[key]  # exactly one winner per instance
        assert seq == 2
        log = after[key]
        assert [(e.seq, e.kind, e.terminal) for e in log] == [(1, "Queue", False), (2, "Abandon", True)]
        assert log[-1].data == {"w": w}  # the recorded winner wrote the terminal event, and it is last
    assert sum(r["lost"] for r in results) == n * (RACERS - 1)
    assert sum(r["late_written"] for r in results) == 0
    assert sum(r["late_refused"] for r in results) == n * RACERS
    busy = sum(r["busy"] for r in results)
    say(
        capsys,
        f"{B.backend_name(store_at)} terminal race: {n} instances x {RACERS} processes: {n} terminal events, "
        f"{n * (RACERS - 1)} Conflicts, {n * RACERS} later appends all refused; "
        f"wins per process {[len(r['won']) for r in results]}; {busy} busy retries",
    )
    checked = W.judge(histories(tmp_path))
    # per racer and key: the terminal, a read_log, the late append; per key: create, first append, final read
    assert (checked.operations, checked.processes, checked.keys) == (3 * n * RACERS + 3 * n, RACERS + 1, n)
    linearizable(capsys, f"{B.backend_name(store_at)} terminal race", checked)


# -- 4. kill -9 mid-batch ---------------------------------------------------------------------


async def whole_batches(store: Recorder) -> int:
    """How many whole batches the store holds; fail on any partial one."""
    records = [await store.load(k) for k in W.BATCH_KEYS]
    versions = {r.version for r in records}
    assert len(versions) == 1, f"keys at different versions: {[r.version for r in records]}"
    batches: int = versions.pop() - 1
    for r in records:
        assert r.state == W.tagged(f"b{batches}" if batches else None)
    for k in W.BATCH_KEYS:
        log = await store.read_log(k)
        assert [(e.seq, e.kind, e.data) for e in log] == [(i, "Batch", {"batch": i}) for i in range(1, batches + 1)]
    return batches


def integrity(path: str) -> list[tuple[Any, ...]]:
    """SQLite's own check of the file (PostgreSQL's files are the server's business, not a client's)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_kill_9_mid_batch_leaves_whole_batches_only(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = SIZES[B.backend_name(store_at)].kill_trials
    traced = not B.is_postgres(store_at)  # SQLite's statements are traced: where in commit() the kill hit

    async def create() -> None:
        async with parent(store_at, tmp_path) as store:
            for k in W.BATCH_KEYS:
                await store.cas(k, 0, W.tagged(None), machine="input")

    async def check() -> int:
        async with parent(store_at, tmp_path) as store:
            return await whole_batches(store)

    asyncio.run(create())
    rng = random.Random(20240917)
    batches = 0
    stages = {W.BETWEEN: 0, W.PREPARING: 0, W.IN_TRANSACTION: 0, W.COMMITTING: 0}
    landed = 0
    started = time.monotonic()
    for trial in range(trials):
        ready = CTX.Event()
        progress = CTX.Value("q", 0, lock=False)  # batches acknowledged * 4 + stage of the one in flight
        history = tmp_path / f"k{trial:02d}.jsonl"
        writer = CTX.Process(target=W.batch_writer, args=(store_at, str(history), f"k{trial}", ready, progress))
        writer.start()
        try:
            assert ready.wait(60), f"trial {trial}: the writer never opened the store"
            time.sleep(rng.uniform(0, KILL_DELAY))
            os.kill(writer.pid or 0, signal.SIGKILL)
            writer.join(30)
        finally:
            if writer.is_alive():
                writer.kill()
                writer.join()
        assert writer.exitcode == -signal.SIGKILL, f"trial {trial}: the writer stopped by itself"
        acked, stage = divmod(progress.value, 4)
        now = asyncio.run(check())
        # acknowledged batches survive; a batch whose COMMIT had not started is absent; one whose
        # COMMIT had started (and not yet been acknowledged) is whole or absent -- untraced, any
        # batch in commit() may have reached COMMIT
        might_land = 1 if stage == W.COMMITTING or (not traced and stage == W.PREPARING) else 0
        assert batches + acked <= now <= batches + acked + might_land, (trial, batches, acked, stage, now)
        stages[stage] += 1
        landed += now - batches - acked
        batches = now
        if traced:
            assert integrity(store_at) == [("ok",)]
    seconds = time.monotonic() - started
    if traced:
        where = (f"killed {stages[W.IN_TRANSACTION]}x inside the transaction before COMMIT (all rolled back), "
                 f"{stages[W.COMMITTING]}x after COMMIT started ({landed} landed whole but unacknowledged, "
                 f"{stages[W.COMMITTING] - landed} absent), "
                 f"{stages[W.PREPARING]}x in commit() before BEGIN, {stages[W.BETWEEN]}x between commits; "
                 "integrity_check ok every time")
    else:
        where = (f"killed {stages[W.PREPARING]}x inside commit() ({landed} landed whole but unacknowledged, "
                 f"{stages[W.PREPARING] - landed} absent), {stages[W.BETWEEN]}x between commits")
    say(capsys, f"{B.backend_name(store_at)} kill -9: {trials} trials, {batches} whole batches committed "
                f"({batches * 6} ops); {where}; {seconds:.1f} s")
    checked = W.judge(histories(tmp_path))
    recorded = load_history(histories(tmp_path))
    cut = [o for o in recorded if o.result is None]
    pending = len(cut)  # a writer killed inside commit(), once its Recorder had written the invoke
    assert {o.call.kind for o in cut} <= {OpKind.COMMIT} and len({o.process for o in cut}) == pending
    # killed inside the transaction before COMMIT: certainly pending; after COMMIT started, pending
    # unless the kill fell between the Recorder's return line and the acknowledgement
    assert stages[W.IN_TRANSACTION] <= pending <= trials - stages[W.BETWEEN]
    returned = sum(1 for o in recorded if o.call.kind is OpKind.COMMIT and o.result is not None)
    assert batches - landed <= returned <= batches  # acknowledged ones, and any killed before its ack
    # the creates; per writer a load, its returned commits and the pending one; per trial the
    # parent's 3 loads and 3 read_logs
    assert checked.operations == 3 + trials + returned + pending + 6 * trials
    assert (checked.processes, checked.keys) == (trials + 1, len(W.BATCH_KEYS))
    linearizable(capsys, f"{B.backend_name(store_at)} kill -9 ({pending} pending)", checked)


# -- 5. Busy across processes ------------------------------------------------------------------


@pytest.mark.slow
def test_a_lock_held_by_another_process_is_busy_after_the_timeout(
    store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    timings: list[float] = []

    async def main() -> None:
        async with await B.open_store(store_at, busy_timeout=0.3) as store:
            await store.cas("in1", 0, W.tagged(None), machine="input")
            ready = CTX.Event()
            holder = CTX.Process(target=W.lock_holder, args=(store_at, 1.5, ready))
            holder.start()
            try:
                assert await asyncio.to_thread(ready.wait, 60)
                writes: dict[str, Callable[[], Awaitable[Any]]] = {
                    "cas": lambda: store.cas("in1", 1, W.tagged("x")),
                    "commit": lambda: store.commit([Cas("in1", 1, W.tagged("x")), Append("in1", 0, (("Queue", {}),))]),
                }
                for name, write in writes.items():
                    started = time.monotonic()
                    with pytest.raises(Busy) as info:
                        await write()
                    timings.append(time.monotonic() - started)
                    assert info.value.code == "busy" and not isinstance(info.value, Conflict), name
                    assert holder.is_alive(), f"{name}: the lock was released before the write gave up"
                # readers are not blocked by the other process's writer, and see no uncommitted data
                assert (await store.load("in1")).version == 1
            finally:
                holder.join(30)
            assert holder.exitcode == 0
            assert (await store.cas("in1", 1, W.tagged("x"))).version == 2  # free again: the same write succeeds

    asyncio.run(main())
    assert all(0.25 <= t < 1.4 for t in timings), timings
    how = "LOCK TABLE instances IN EXCLUSIVE MODE" if B.is_postgres(store_at) else "BEGIN IMMEDIATE"
    say(
        capsys,
        f"{B.backend_name(store_at)} busy: another process held {how} for 1.5 s; with busy_timeout=0.3 s "
        f"cas raised Busy after {timings[0]:.3f} s and commit after {timings[1]:.3f} s",
    )


# -- 6. a garbled row from another process ----------------------------------------------------


def test_a_row_garbled_by_another_process_is_corrupt_for_that_key_only(
    store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        async with await B.open_store(store_at) as store:
            await store.cas("in1", 0, W.tagged(None), machine="input")
            await store.cas("in2", 0, W.tagged(None), machine="input")
            garbler = CTX.Process(target=W.garbler, args=(store_at, "in1", '{"phase": "queued", "attempts":'))
            garbler.start()
            garbler.join(60)
            assert garbler.exitcode == 0
            with pytest.raises(Corrupt) as info:
                await store.load("in1")
            assert info.value.key == "in1" and info.value.code == "corrupt" and "'in1'" in str(info.value)
            assert await store.load("in2") == Record("in2", "input", W.tagged(None), 1)
            assert (await store.cas("in2", 1, W.tagged("after"))).version == 2
            assert await store.append("in2", 0, [("Queue", {})]) == 1
            assert await store.keys() == ["in1", "in2"]

    asyncio.run(main())
    say(capsys, f"{B.backend_name(store_at)} garbled: a row rewritten by another process is Corrupt('in1'); "
                "in2 still loads and takes writes")
