"""Cancelled writes: a store stays usable and holds no lock, and a retried batch applies exactly once.

A caller that times out (`asyncio.wait_for`) cancels its write at whatever
await it is at. These tests cancel writes at every await point (after 0, 1,
2... loop turns) and at random moments, with and without a second connection
holding SQLite's write lock, and then check that the store still writes,
that another connection can take the write lock, and that every batch is
whole or absent. Then random timeouts through the `Driver`, retried until
each input returns: every input must be applied exactly once (version =
accepted inputs + 1, the log a replay of the pure kernel). Each test prints
its counts.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import Driver, Fed
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.serialize import event_json
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Append, BatchStore, Busy, Cas, Op, Store, batch_id
from statewright.kernel.step import Rejected, step
from statewright.machines.input import (
    INPUT,
    AwaitConsumption,
    Apply,
    Consume,
    Input,
    Queue,
    RunFailed,
    Stage,
)
from tests.adapters import _workers as W
from tests.adapters.test_store_contract import CATALOG

KEYS = ("k1", "k2", "k3")
SWEEP_TURNS = 40  # loop turns before the cancel in the every-await sweep; a write takes fewer
SWEEP_ROUNDS = 5
RANDOM_TRIALS = 300
LOCKED_TRIALS = 300
DRIVER_CANCELS = 1000


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[cancellation] {text}")


def tagged(n: int) -> Input:
    return W.tagged(f"b{n}" if n else None)


def batch(version: int) -> list[Op]:
    """Batch ``version`` moves every key from ``version`` to ``version + 1`` and appends one event to each."""
    cas: list[Op] = [Cas(k, version, tagged(version)) for k in KEYS]
    return cas + [Append(k, version - 1, (("Batch", {"batch": version}),)) for k in KEYS]


async def open_store(backend: str, path: Path, busy_timeout: float = 5.0) -> BatchStore:
    if backend == "memory":
        return MemoryStore(CATALOG)
    return await SqliteStore.open(path, CATALOG, busy_timeout=busy_timeout)


async def whole(store: Store) -> int:
    """How many whole batches the store holds; fails on a half-applied one."""
    records = [await store.load(k) for k in KEYS]
    versions = {r.version for r in records}
    assert len(versions) == 1, [r.version for r in records]
    done = versions.pop() - 1
    for r in records:
        assert r.state == tagged(done)
    for k in KEYS:
        log = await store.read_log(k)
        assert [(e.seq, e.data) for e in log] == [(i, {"batch": i}) for i in range(1, done + 1)]
    return done


def lock_is_free(path: Path) -> bool:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


async def cancelled_write(store: BatchStore, version: int, delay: Callable[[], Awaitable[Any]]) -> str:
    """Start batch ``version`` (by id), cancel it after ``delay``, then re-submit it by id until it lands.

    Returns what the cancel met: "done" (the write had finished), "landed" (cut short,
    but it had reached COMMIT) or "rolled back".
    """
    ops = batch(version)
    task = asyncio.ensure_future(store.commit(ops, batch=batch_id(ops)))
    await delay()
    met = "done" if task.done() else "rolled back"
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    if met != "done" and (await store.load(KEYS[0])).version == version + 1:
        met = "landed"
    while True:  # the caller's retry: the same batch, the same id
        try:
            await store.commit(ops, batch=batch_id(ops))
            return met
        except Busy:
            await asyncio.sleep(0.001)


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def seed(store: Store) -> None:
    for k in KEYS:
        await store.cas(k, 0, tagged(0), machine="input")


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_write_cancelled_at_every_await_and_at_random_stays_whole(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    rng = random.Random(11)
    met = {"done": 0, "landed": 0, "rolled back": 0}

    async def main() -> int:
        store = await open_store(backend, path)
        try:
            await seed(store)
            await store.commit(batch(1))
            started = asyncio.get_running_loop().time()
            await store.commit(batch(2))
            took = asyncio.get_running_loop().time() - started  # random cancels span one write's length
            version = 3
            trials: list[Callable[[], Awaitable[Any]]] = [
                lambda n=n: turns(n) for _ in range(SWEEP_ROUNDS) for n in range(SWEEP_TURNS)]  # type: ignore[misc]
            trials += [lambda t=rng.uniform(0, 1.5 * took): asyncio.sleep(t)  # type: ignore[misc]
                       for _ in range(RANDOM_TRIALS)]
            for trial in trials:
                met[await cancelled_write(store, version, trial)] += 1
                assert await whole(store) == version  # applied exactly once, never half
                if backend == "sqlite":
                    assert lock_is_free(path)
                    assert not store._db.in_transaction  # type: ignore[attr-defined]
                version += 1
            await store.cas("k1", version, tagged(0))  # and it still writes
            return len(trials)
        finally:
            await store.close()

    trials = asyncio.run(main())
    assert trials == SWEEP_ROUNDS * SWEEP_TURNS + RANDOM_TRIALS
    assert met["rolled back"] >= SWEEP_ROUNDS  # at least every cancel before the write's first step
    say(capsys, f"{backend}: {trials} cancelled writes ({met['rolled back']} rolled back, {met['landed']} cut short "
                f"but committed, {met['done']} had finished); "
                "every batch applied once and whole, the lock free after each")


def test_a_write_cancelled_while_another_connection_holds_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: another connection holds the write lock; the timed-out write must not brick the store."""
    path = tmp_path / "s.db"
    rng = random.Random(12)
    released_first = 0

    async def main() -> None:
        nonlocal released_first
        store = await SqliteStore.open(path, CATALOG, busy_timeout=1.0)
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            await seed(store)
            for version in range(1, LOCKED_TRIALS + 1):
                holder.execute("BEGIN IMMEDIATE")
                holder.execute("UPDATE instances SET version = version + 100")  # never committed
                # the holder lets go before or after the cancel, at random
                release = rng.uniform(0, 0.004)
                cancel = rng.uniform(0, 0.004)
                released_first += release < cancel
                asyncio.get_running_loop().call_later(release, holder.execute, "ROLLBACK")
                await cancelled_write(store, version, lambda: asyncio.sleep(cancel))
                await asyncio.sleep(max(0.0, release - cancel) + 0.001)
                assert not holder.in_transaction
                assert await whole(store) == version
                assert lock_is_free(path) and not store._db.in_transaction
        finally:
            holder.close()
            await store.close()

    asyncio.run(main())
    say(capsys, f"lock held by another connection: {LOCKED_TRIALS} cancelled writes "
                f"({released_first} released before the cancel); no 'transaction within a transaction', "
                "the lock free after each, every batch whole")


def test_the_issue_case_a_timed_out_feed_leaves_the_store_usable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def main() -> None:
        store = await SqliteStore.open(path, CATALOG, busy_timeout=5.0)
        try:
            driver = Driver(store)
            await driver.create("in1", "input")
            holder = sqlite3.connect(path, isolation_level=None, timeout=0)
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(driver.feed("in1", Queue()), 0.05)
            holder.execute("ROLLBACK")
            holder.close()
            assert lock_is_free(path)
            fed = await driver.feed("in1", Queue())  # the retry: applied now, once
            assert fed.accepted and fed.record.version == 2
            assert (await driver.feed("in1", Stage("r1"))).record.version == 3
            assert [e.kind for e in await store.read_log("in1")] == [
                "created", "input", "effect", "input", "effect"]
        finally:
            await store.close()

    asyncio.run(main())


INPUTS = (Queue(), Stage("r1"), Apply("r1"), RunFailed("r1"), AwaitConsumption("r1"), Consume("r1"))


def test_random_timeouts_through_the_driver_apply_each_input_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    rng = random.Random(13)
    cancels = 0
    busy_bursts = 0
    accepted: dict[str, int] = {}
    recorded_rejections: dict[str, int] = {}

    async def feed_until_done(driver: Driver, key: str, event: Any) -> Fed:
        nonlocal cancels
        timeout = rng.uniform(0, 0.003)
        while True:
            try:
                return await asyncio.wait_for(driver.feed(key, event), timeout)
            except asyncio.TimeoutError:
                cancels += 1
                timeout *= 1.5
            except Busy:
                pass

    async def worker(driver: Driver, key: str) -> None:
        await driver.create(key, "input")
        accepted[key] = recorded_rejections[key] = 0
        while cancels < DRIVER_CANCELS:
            fed = await feed_until_done(driver, key, rng.choice(INPUTS))
            if fed.accepted:
                accepted[key] += 1
            elif fed.rejection is not None and fed.rejection.reason.value != "terminal":
                recorded_rejections[key] += 1
            if INPUT.is_terminal(fed.record.state):
                return

    async def lock_holder() -> None:
        nonlocal busy_bursts
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            while cancels < DRIVER_CANCELS:
                await asyncio.sleep(rng.uniform(0, 0.01))
                try:
                    holder.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    continue  # the store holds it right now
                busy_bursts += 1
                await asyncio.sleep(rng.uniform(0, 0.004))
                holder.execute("ROLLBACK")
        finally:
            holder.close()

    async def main() -> None:
        store = await SqliteStore.open(path, CATALOG, busy_timeout=0.002)
        try:
            driver = Driver(store, retries=50, backoff=0.0005)
            n = 0
            holding = asyncio.ensure_future(lock_holder())
            while cancels < DRIVER_CANCELS:
                await asyncio.gather(*(worker(driver, f"in{n + i}") for i in range(4)))
                n += 4
            await holding
            assert lock_is_free(path)
            for key in sorted(accepted):
                await check_replay(store, key, accepted[key], recorded_rejections[key])
        finally:
            await store.close()

    asyncio.run(main())
    assert cancels >= DRIVER_CANCELS
    say(capsys, f"driver: {cancels} timeouts retried over {len(accepted)} instances, "
                f"{sum(accepted.values())} inputs accepted exactly once, {sum(recorded_rejections.values())} "
                f"rejections recorded once, {busy_bursts} lock bursts by another connection")


async def check_replay(store: Store, key: str, accepted: int, rejected: int) -> None:
    """``key``'s log is the pure kernel's replay of the inputs it records, each recorded exactly once."""
    record = await store.load(key)
    log = await store.read_log(key)
    assert record.version == accepted + 1, (key, record.version, accepted)
    assert [e.kind for e in log].count("input") == accepted
    assert [e.kind for e in log].count("rejected") == rejected
    driver = Driver(store)
    state = INPUT.initial
    events = iter(log[1:])
    for e in events:
        if e.kind == "input":
            result = step(INPUT, state, driver.parse("input", e.data))
            assert not isinstance(result, Rejected)
            for effect in result.effects:
                after = next(events)
                assert (after.kind, after.data) == ("effect", event_json(effect))
            state = result.state
        elif e.kind == "rejected":
            result = step(INPUT, state, driver.parse("input", e.data["input"]))
            assert isinstance(result, Rejected) and result.reason.value == e.data["reason"]
        else:
            assert e.kind == "terminal" and e.terminal
    assert state == record.state
