"""Cancelled writes: a store stays usable and holds no lock, and a retried batch applies exactly once.

A caller that times out (`asyncio.wait_for`) cancels its write at whatever
await it is at. These tests cancel writes at every await point (after 0, 1,
2... loop turns) and at random moments, with and without a second connection
holding the write lock (`tests.adapters._backends.Holder`: SQLite's ``BEGIN
IMMEDIATE``, PostgreSQL's ``LOCK TABLE``), and then check that the store
still writes, that another connection can take the write lock, and that
every batch is whole or absent. Then random timeouts through the `Driver`,
retried until each input returns: every input must be applied exactly once
(version = accepted inputs + 1, the log a replay of the pure kernel).

Every store call goes through a `Recorder`; a cancelled call never returns,
so it is *pending* (it may or may not have taken effect), and a re-submitted
batch id takes effect at most once. Half of the driver's inputs go by request
id, so its receipts and the outcomes recorded with its batches are in the
history too. The history must be linearizable. Each
test runs on SQLite and on PostgreSQL (fewer trials: a round trip costs
more; skipped without a server) and prints its counts and
``linearizable: N operations, M processes, K keys``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import Driver, Fed
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.serialize import event_json
from statewright.adapters.runtime.store import Append, BatchStore, Busy, Cas, Op, batch_id
from statewright.adapters.testing.linearizability import HistoryCheck, OpKind, Operation, Recorder
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
from tests.adapters import _backends as B
from tests.adapters import _workers as W
from tests.adapters.test_store_contract import CATALOG

KEYS = ("k1", "k2", "k3")
SWEEP_TURNS = 40  # loop turns before the cancel in the every-await sweep; a write takes fewer


@dataclass(frozen=True, slots=True)
class Trials:
    """How many cancellations each test makes on a backend."""

    sweep_rounds: int
    random: int
    locked: int
    driver_cancels: int


TRIALS = {"memory": Trials(5, 300, 0, 0), "sqlite": Trials(5, 300, 300, 1000), "postgres": Trials(3, 200, 200, 1000)}


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[cancellation] {text}")


def judged(capsys: pytest.CaptureFixture[str], what: str, *recorders: Recorder) -> HistoryCheck:
    """Check the recorders' merged history (pending: every call cut short) and print the verdict."""
    history: list[Operation] = [o for r in recorders for o in r.operations()]
    result = W.judge((), *history)
    pending = sum(1 for o in history if o.result is None)
    say(capsys, f"{what}: {result.summary()} ({pending} pending; checked in {result.seconds:.2f} s, "
                f"{result.steps:,} steps)")
    return result


def tagged(n: int) -> Input:
    return W.tagged(f"b{n}" if n else None)


def batch(version: int) -> list[Op]:
    """Batch ``version`` moves every key from ``version`` to ``version + 1`` and appends one event to each."""
    cas: list[Op] = [Cas(k, version, tagged(version)) for k in KEYS]
    return cas + [Append(k, version - 1, (("Batch", {"batch": version}),)) for k in KEYS]


async def whole(store: Any) -> int:
    """How many whole batches the store holds; fails on a half-applied one."""
    records = [await store.load(k) for k in KEYS]
    versions = {r.version for r in records}
    assert len(versions) == 1, [r.version for r in records]
    done: int = versions.pop() - 1
    for r in records:
        assert r.state == tagged(done)
    for k in KEYS:
        log = await store.read_log(k)
        assert [(e.seq, e.data) for e in log] == [(i, {"batch": i}) for i in range(1, done + 1)]
    return done


async def cancelled_write(store: Recorder, version: int, delay: Callable[[], Awaitable[Any]]) -> str:
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


async def seed(store: Any) -> None:
    for k in KEYS:
        await store.cas(k, 0, tagged(0), machine="input")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memory", *B.BACKENDS])
def test_a_write_cancelled_at_every_await_and_at_random_stays_whole(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = TRIALS[kind]
    locator = None if kind == "memory" else B.locator(kind, tmp_path, request)
    rng = random.Random(11)
    met = {"done": 0, "landed": 0, "rolled back": 0}

    async def main() -> tuple[int, Recorder]:
        inner: BatchStore = MemoryStore(CATALOG) if locator is None else await B.open_store(locator)
        store = Recorder(inner, "client")
        probe = None if locator is None else await B.Holder.connect(locator)
        try:
            await seed(store)
            await store.commit(batch(1))
            started = asyncio.get_running_loop().time()
            await store.commit(batch(2))
            took = asyncio.get_running_loop().time() - started  # random cancels span one write's length
            version = 3
            trials: list[Callable[[], Awaitable[Any]]] = [
                lambda n=n: turns(n) for _ in range(plan.sweep_rounds) for n in range(SWEEP_TURNS)]  # type: ignore[misc]
            trials += [lambda t=rng.uniform(0, 1.5 * took): asyncio.sleep(t)  # type: ignore[misc]
                       for _ in range(plan.random)]
            for trial in trials:
                met[await cancelled_write(store, version, trial)] += 1
                assert await whole(store) == version  # applied exactly once, never half
                if probe is not None:
                    assert await probe.can_hold()  # another connection takes the lock at once
                    assert B.store_idle(inner)
                version += 1
            await store.cas("k1", version, tagged(0))  # and it still writes
            return len(trials), store
        finally:
            if probe is not None:
                await probe.close()
            await inner.close()

    trials, recorder = asyncio.run(main())
    assert trials == plan.sweep_rounds * SWEEP_TURNS + plan.random
    assert met["rolled back"] >= plan.sweep_rounds  # at least every cancel before the write's first step
    say(capsys, f"{kind}: {trials} cancelled writes ({met['rolled back']} rolled back, {met['landed']} cut short "
                f"but committed, {met['done']} had finished); "
                "every batch applied once and whole, the lock free after each")
    checked = judged(capsys, f"{kind} cancelled writes", recorder)
    assert (checked.processes, checked.keys) == (1, len(KEYS))


async def release_after(holder: B.Holder, delay: float) -> None:
    await asyncio.sleep(delay)
    await holder.release()


@pytest.mark.slow
def test_a_write_cancelled_while_another_connection_holds_the_lock(
    store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: another connection holds the write lock; the timed-out write must not brick the store."""
    trials = TRIALS[B.backend_name(store_at)].locked
    rng = random.Random(12)
    released_first = 0

    async def main() -> Recorder:
        nonlocal released_first
        inner = await B.open_store(store_at, busy_timeout=1.0)
        store = Recorder(inner, "client")
        holder = await B.Holder.connect(store_at)
        try:
            await seed(store)
            for version in range(1, trials + 1):
                await holder.hold()  # and an uncommitted write, on SQLite
                # the holder lets go before or after the cancel, at random
                release = rng.uniform(0, 0.004)
                cancel = rng.uniform(0, 0.004)
                released_first += release < cancel
                releasing = asyncio.ensure_future(release_after(holder, release))
                await cancelled_write(store, version, lambda: asyncio.sleep(cancel))
                await releasing
                assert not holder.in_transaction
                assert await whole(store) == version
                assert await holder.can_hold() and B.store_idle(inner)
        finally:
            await holder.close()
            await inner.close()
        return store

    recorder = asyncio.run(main())
    say(capsys, f"{B.backend_name(store_at)} lock held by another connection: {trials} cancelled writes "
                f"({released_first} released before the cancel); no 'transaction within a transaction', "
                "the lock free after each, every batch whole")
    checked = judged(capsys, f"{B.backend_name(store_at)} cancelled under a held lock", recorder)
    assert (checked.processes, checked.keys) == (1, len(KEYS))


def test_the_issue_case_a_timed_out_feed_leaves_the_store_usable(
    store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> Recorder:
        inner = await B.open_store(store_at, busy_timeout=5.0)
        store = Recorder(inner, "client")
        try:
            driver = Driver(store)
            await driver.create("in1", "input")
            holder = await B.Holder.connect(store_at)
            await holder.hold()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(driver.feed("in1", Queue()), 0.05)
            await holder.release()
            await holder.close()
            assert await B.lock_is_free(store_at)
            fed = await driver.feed("in1", Queue())  # the retry: applied now, once
            assert fed.accepted and fed.record.version == 2
            assert (await driver.feed("in1", Stage("r1"))).record.version == 3
            assert [e.kind for e in await store.read_log("in1")] == [
                "created", "input", "effect", "input", "effect"]
        finally:
            await inner.close()
        return store

    checked = judged(capsys, f"{B.backend_name(store_at)} timed-out feed", asyncio.run(main()))
    assert (checked.processes, checked.keys) == (1, 1)


INPUTS = (Queue(), Stage("r1"), Apply("r1"), RunFailed("r1"), AwaitConsumption("r1"), Consume("r1"))
SLOTS = 4  # instances driven at once, each by its own task, driver and recorder


@pytest.mark.slow
def test_random_timeouts_through_the_driver_apply_each_input_once(
    store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = TRIALS[B.backend_name(store_at)].driver_cancels
    rng = random.Random(13)
    cancels = 0
    busy_bursts = 0
    accepted: dict[str, int] = {}
    recorded_rejections: dict[str, int] = {}

    sent = iter(range(10**9))

    async def feed_until_done(driver: Driver, key: str, event: Any) -> Fed:
        """Feed until it returns, every try of one input by one request id (half of the inputs), else plainly."""
        nonlocal cancels
        timeout = rng.uniform(0, 0.003)
        n = next(sent)
        request = f"{key}/{n}" if n % 2 else None
        while True:
            try:
                return await asyncio.wait_for(driver.feed(key, event, request=request), timeout)
            except asyncio.TimeoutError:
                cancels += 1
                timeout *= 1.5
            except Busy:
                pass

    async def worker(driver: Driver, key: str) -> None:
        await driver.create(key, "input")
        accepted[key] = recorded_rejections[key] = 0
        while cancels < target:
            fed = await feed_until_done(driver, key, rng.choice(INPUTS))
            if fed.accepted:
                accepted[key] += 1
            elif fed.rejection is not None and fed.rejection.reason.value != "terminal":
                recorded_rejections[key] += 1
            if INPUT.is_terminal(fed.record.state):
                return

    async def lock_holder() -> None:
        nonlocal busy_bursts
        holder = await B.Holder.connect(store_at)
        try:
            while cancels < target:
                await asyncio.sleep(rng.uniform(0, 0.01))
                if not await holder.hold(wait=False):
                    continue  # the store holds it right now
                busy_bursts += 1
                await asyncio.sleep(rng.uniform(0, 0.004))
                await holder.release()
        finally:
            await holder.close()

    async def main() -> list[Recorder]:
        inner = await B.open_store(store_at, busy_timeout=0.002)
        recorders = [Recorder(inner, f"t{i}") for i in range(SLOTS)] + [Recorder(inner, "check")]
        try:
            drivers = [Driver(r, retries=50, backoff=0.0005) for r in recorders[:SLOTS]]
            n = 0
            holding = asyncio.ensure_future(lock_holder())
            while cancels < target:
                await asyncio.gather(*(worker(drivers[i], f"in{n + i}") for i in range(SLOTS)))
                n += SLOTS
            await holding
            assert await B.lock_is_free(store_at)
            for key in sorted(accepted):
                await check_replay(recorders[-1], key, accepted[key], recorded_rejections[key])
        finally:
            await inner.close()
        return recorders

    recorders = asyncio.run(main())
    assert cancels >= target
    say(capsys, f"{B.backend_name(store_at)} driver: {cancels} timeouts retried over {len(accepted)} instances, "
                f"{sum(accepted.values())} inputs accepted exactly once, {sum(recorded_rejections.values())} "
                f"rejections recorded once, {busy_bursts} lock bursts by another connection")
    checked = judged(capsys, f"{B.backend_name(store_at)} driver timeouts", *recorders)
    assert (checked.processes, checked.keys) == (SLOTS + 1, len(accepted))
    history = [o for r in recorders for o in r.operations()]
    by_id = [o for o in history if o.call.outcome is not None]  # committed by request id, with its outcome
    assert by_id and any(o.call.kind is OpKind.RECEIPT for o in history)


async def check_replay(store: Any, key: str, accepted: int, rejected: int) -> None:
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


def test_the_old_name_of_caller_cancelled_still_works_for_one_release_and_warns() -> None:
    """``Aborted`` is the command line's second signal; a write rolled back for its caller is `CallerCancelled`."""
    from statewright.adapters.runtime import shielded

    with pytest.warns(DeprecationWarning, match="shielded.Aborted is renamed CallerCancelled"):
        assert shielded.Aborted is shielded.CallerCancelled
    assert shielded.__all__ == ["CallerCancelled", "settle", "shielded"]
