"""The read side's contract (`readside.ReadStore`) on every backend, and the outbox gap it rules out.

Each contract test runs once per backend (``memory``, ``sqlite``, ``postgres``;
a backend that does not implement `ReadStore` yet is skipped) against a fresh
store whose clock the test sets (``now``). The outbox-gap test races writer
processes against a reader that asserts every read extends a gap-free prefix,
and shows its checker catching the gap a naive store -- positions taken before
the batch's transaction -- really produces.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.readside import (
    Advance,
    Consumer,
    DeadLetter,
    LeaseLost,
    ReadStore,
    Unacknowledged,
    bucket_of,
    horizon,
    partition_of,
)
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    BadOption,
    Cas,
    Conflict,
    Event,
    InvalidState,
    NotFound,
    Op,
)
from statewright.machines.input import Input
from tests.adapters import _backends as B
from tests.adapters.test_store_contract import CATALOG, QUEUED, seed

Clock = list[float]
Test = Callable[[ReadStore, Clock], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def open_read_store(backend: str, where: str, now: Clock, **options: Any) -> ReadStore:
    """A fresh store of ``backend`` whose clock reads ``now[0]``; skips a backend without a read side."""
    clock = lambda: now[0]  # noqa: E731
    store: Any
    if backend == "memory":
        store = MemoryStore(CATALOG, clock=clock)
    elif backend == "postgres":
        from statewright.adapters.runtime.postgres import PostgresStore

        store = await PostgresStore.open(where, CATALOG, clock=clock, **options)
    else:
        store = await SqliteStore.open(where, CATALOG, clock=clock, **options)
    if not isinstance(store, ReadStore):
        await store.close()
        pytest.skip(f"{type(store).__name__} does not implement ReadStore yet")
    return store


@pytest.fixture
def go(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[Test], None]:
    """Run one contract test against a fresh read store of the current backend, its clock at 1000."""
    where = str(request.getfixturevalue("postgres_dsn")) if backend == "postgres" else str(tmp_path / "s.db")

    def run(test: Test) -> None:
        async def main() -> None:
            now = [1000.0]
            store = await open_read_store(backend, where, now)
            try:
                await test(store, now)
            finally:
                await store.close()

        asyncio.run(main())

    return run


def where(events: Sequence[Event]) -> list[tuple[str, int, int]]:
    return [(e.key, e.seq, e.position) for e in events]


SEEDED = [("in1", 1, 1), ("in1", 2, 2), ("in2", 1, 3), ("in2", 2, 4), ("run1", 1, 5)]
"""`seed`'s events, in the order it appends them: their positions."""


# -- positions ------------------------------------------------------------------------


def test_positions_are_gap_free_and_monotone_across_keys_and_batches(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        assert await store.latest_cursor() == 0 and await store.read() == []
        await seed(store)
        assert where(await store.replay_all()) == SEEDED
        await store.commit([Append("run1", 1, (("A", {}), ("B", {}))), Cas("in3", 0, QUEUED, "input"),
                            Append("in3", 0, (("Queue", {}),)), Append("in1", 2, (("C", {}),))])
        events = await store.replay_all()
        assert [e.position for e in events] == list(range(1, 10)) and await store.latest_cursor() == 9
        assert where(events[5:]) == [("run1", 2, 6), ("run1", 3, 7), ("in3", 1, 8), ("in1", 3, 9)]
        assert where(await store.read_log("in1")) == [("in1", 1, 1), ("in1", 2, 2), ("in1", 3, 9)]
        logs = [e for k in ("in1", "in2", "in3", "run1") for e in await store.read_log(k)]
        assert events == await store.read(0) == sorted(logs, key=lambda e: e.position)
        assert await store.read(9) == [] and await store.read(100) == []

    go(t)


def test_a_failing_batch_takes_no_position(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        with pytest.raises(Conflict):  # the append would take 6 and 7; the Cas after it fails the batch
            await store.commit([Append("in1", 2, (("A", {}), ("B", {}))), Cas("in2", 7, QUEUED)])
        with pytest.raises(InvalidState):
            await store.commit([Append("in1", 2, (("A", {"f": 0.5}),))])
        with pytest.raises(NotFound):  # an Advance of a consumer never registered fails its whole batch
            await store.commit([Append("in1", 2, (("A", {}),)), Advance("nobody", 0, 0, 1, "me")])
        assert await store.latest_cursor() == 5
        await store.append("in1", 2, [("A", {})])
        assert where(await store.read(5)) == [("in1", 3, 6)]

    go(t)


def test_read_filters_by_partition_and_kind_and_stops_at_the_limit(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        assert where(await store.read(0, limit=2)) == SEEDED[:2]
        assert where(await store.read(2, limit=2)) == SEEDED[2:4]
        assert [e.kind for e in await store.read(0, kinds=["Queue"])] == ["Queue", "Queue"]
        assert await store.read(0, kinds=[]) == []
        assert {partition_of(k, 4) for k in ("in1", "in2", "run1")} == {2, 0, 3}  # bucket_of: 4014, 3604, 2979
        for p in range(4):
            got = await store.read(0, partition=(p, 4))
            assert where(got) == [w for w in SEEDED if partition_of(w[0], 4) == p]
        assert where(await store.read(1, partition=(2, 4), kinds=["Stage"])) == [("in1", 2, 2)]
        assert where(await store.read(0, partition=(2, 4), limit=1)) == [("in1", 1, 1)]
        for bad in [dict(after=-1), dict(limit=0), dict(partition=(4, 4)), dict(partition=(0, 0)),
                    dict(kinds="Queue"), dict(after=True)]:
            with pytest.raises(BadOption):
                await store.read(**bad)

    go(t)


def test_a_short_filtered_page_lets_the_reader_move_on_to_the_latest_cursor_read_before() -> None:
    """`horizon`: a page shorter than its limit covers everything up to a latest_cursor read before it."""
    page = [Event("k", 1, "A", {}, position=3)]
    assert horizon(0, 9, page, 2) == 9  # short: 4..9 were filtered out
    assert horizon(0, 9, page, 1) == 3  # full: nothing known above 3
    assert horizon(5, 2, [], 10) == 5  # never back


def test_read_range_has_inclusive_bounds(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        await store.append("run1", 1, [("A", {}), ("B", {}), ("C", {})])
        assert [e.seq for e in await store.read_range("run1", 2, 3)] == [2, 3]
        assert [e.seq for e in await store.read_range("run1", 2)] == [2, 3, 4]
        assert [e.seq for e in await store.read_range("run1", 4, 4)] == [4]
        assert await store.read_range("run1", 5, 9) == [] and await store.read_range("nobody", 1) == []
        assert where(await store.read_range("run1", 1, 1)) == [("run1", 1, 5)]
        with pytest.raises(BadOption):
            await store.read_range("run1", "1")  # type: ignore[arg-type]

    go(t)


# -- waiting ----------------------------------------------------------------------------


def test_wait_and_subscribe_wake_at_once_on_a_commit(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        assert await store.wait(3, 10.0) == 5  # already above: at once
        started = time.monotonic()
        assert await store.wait(5, 0.05) == 5  # nothing: after the timeout
        assert time.monotonic() - started >= 0.04

        async def follow(n: int) -> list[tuple[str, int, int]]:
            out = []
            async for event in store.subscribe(4, limit=2):
                out.append((event.key, event.seq, event.position))
                if len(out) == n:
                    break
            return out

        reader = asyncio.ensure_future(follow(4))
        waiter = asyncio.ensure_future(store.wait(5, 30.0))
        await asyncio.sleep(0.05)
        assert not reader.done() and not waiter.done()
        started = time.monotonic()
        await store.append("run1", 1, [("A", {}), ("B", {})])
        await store.append("in1", 2, [("C", {})])
        assert await asyncio.wait_for(reader, 5) == [("run1", 1, 5), ("run1", 2, 6), ("run1", 3, 7), ("in1", 3, 8)]
        assert await waiter >= 7
        assert time.monotonic() - started < 0.5  # woken by the commit, not by a timeout

    go(t)


def test_a_cancelled_wait_leaves_nothing_behind(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        waiter = asyncio.ensure_future(store.wait(0, 30.0))
        await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await seed(store)
        assert await store.wait(0, 1.0) == 5

    go(t)


def test_sqlite_wakes_a_reader_in_another_connection_within_its_poll(tmp_path: Path) -> None:
    """Commits by another store object (another connection, as another process would) are seen by polling."""

    async def main() -> None:
        now = [1000.0]
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG, poll=0.02) as reader, \
                await SqliteStore.open(tmp_path / "s.db", CATALOG) as writer:
            waiter = asyncio.ensure_future(reader.wait(0, 10.0))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            await writer.cas("in1", 0, Input(), machine="input")
            await writer.append("in1", 0, [("Queue", {})])
            assert await asyncio.wait_for(waiter, 5) == 1
            assert time.monotonic() - started < 0.02 + 0.2  # one poll, and a loaded machine's slack
            assert now == [1000.0]

    asyncio.run(main())


# -- prune and clear -------------------------------------------------------------------


def test_prune_keeps_a_keys_last_event_and_whatever_a_consumer_has_not_passed(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)  # positions 1-5 at t=1000
        now[0] = 2000.0
        await store.append("run1", 1, [("A", {})])  # position 6 at t=2000
        await store.register("mailer")
        assert await store.prune(5000.0) == 0  # the consumer is at 0
        await store.lease("mailer", 0, "me", 10.0)
        await store.commit([Advance("mailer", 0, 0, 3, "me")])
        assert await store.prune(5000.0) == 2  # in1/1 and in2/1; in1/2 is in1's last event
        assert where(await store.replay_all()) == [("in1", 2, 2), ("in2", 2, 4), ("run1", 1, 5), ("run1", 2, 6)]
        await store.commit([Advance("mailer", 0, 3, 6, "me")])
        assert await store.prune(1500.0) == 1  # run1/1 dated 1000; run1/2 is newer, and run1's last anyway
        assert where(await store.replay_all()) == [("in1", 2, 2), ("in2", 2, 4), ("run1", 2, 6)]
        assert await store.prune(1e12) == 0  # only each key's last event is left
        assert await store.log_head("in1") == (2, False) and await store.log_head("in2") == (2, True)
        assert [e.seq for e in await store.read_log("in1")] == [2]
        await store.append("in1", 2, [("C", {})])  # the head is intact: appends go on at 3, position 7
        assert where(await store.read(6)) == [("in1", 3, 7)]
        assert await store.latest_cursor() == 7

    go(t)


def test_prune_without_consumers_is_bounded_by_age_alone(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        assert await store.prune(1000.0) == 0  # dated 1000: not older than 1000
        assert await store.prune(1000.5) == 2
        assert await store.latest_cursor() == 5

    go(t)


def test_clear_is_refused_while_a_consumer_lags_and_positions_go_on_after_it(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        await store.register("mailer", partitions=2)
        await store.lease("mailer", 0, "me", 10.0)
        await store.lease("mailer", 1, "me", 10.0)
        await store.commit([Advance("mailer", 0, 0, 5, "me")])
        with pytest.raises(Unacknowledged) as info:
            await store.clear()
        assert info.value.code == "unacknowledged" and "partition 1" in str(info.value)
        assert len(await store.replay_all()) == 5 and await store.keys() == ["in1", "in2", "run1"]
        await store.commit([Advance("mailer", 1, 0, 5, "me"),
                            DeadLetter("mailer", 1, 5, "run1", 1, "Start", {}, "boom", "Boom", 5, "me")])
        assert await store.clear() == 5
        assert await store.keys() == [] and await store.replay_all() == [] and await store.dead_letters() == []
        assert await store.latest_cursor() == 5  # never back
        assert [c.cursor for c in await store.consumers()] == [5, 5]  # consumers stay, their cursors valid
        await store.cas("in1", 0, Input(), machine="input")
        await store.append("in1", 0, [("Queue", {})])
        assert where(await store.read(5)) == [("in1", 1, 6)]

    go(t)


# -- consumers and leases ----------------------------------------------------------------


def test_register_lease_takeover_after_expiry_and_release(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        assert await store.register("mailer", partitions=2) == [Consumer("mailer", 0, 2, 0), Consumer("mailer", 1, 2, 0)]
        assert await store.register("late", start="latest") == [Consumer("late", 0, 1, 5)]
        assert await store.register("mailer", partitions=2) == [Consumer("mailer", 0, 2, 0), Consumer("mailer", 1, 2, 0)]
        with pytest.raises(BadOption):
            await store.register("mailer", partitions=3)
        for bad in [dict(partitions=0), dict(start="middle")]:
            with pytest.raises(BadOption):
                await store.register("other", **bad)
        assert await store.lease("mailer", 0, "a", 10.0) == Consumer("mailer", 0, 2, 0, "a", 1010.0)
        assert await store.lease("mailer", 0, "b", 10.0) is None  # held by a
        now[0] = 1005.0
        assert await store.lease("mailer", 0, "a", 10.0) == Consumer("mailer", 0, 2, 0, "a", 1015.0)  # renewed
        now[0] = 1015.5
        assert await store.lease("mailer", 0, "b", 10.0) == Consumer("mailer", 0, 2, 0, "b", 1025.5)  # expired: taken
        with pytest.raises(LeaseLost) as info:
            await store.commit([Advance("mailer", 0, 0, 2, "a")])
        assert info.value.code == "lease_lost"
        await store.release("mailer", 0, "a")  # not a's: nothing happens
        assert (await store.consumers())[1] == Consumer("mailer", 0, 2, 0, "b", 1025.5)
        await store.release("mailer", 0, "b")
        assert await store.lease("mailer", 0, "a", 10.0) is not None
        with pytest.raises(NotFound):
            await store.lease("mailer", 2, "a", 10.0)
        with pytest.raises(NotFound):
            await store.lease("nobody", 0, "a", 10.0)
        with pytest.raises(BadOption):
            await store.lease("mailer", 1, "a", 0)
        assert [(c.name, c.partition) for c in await store.consumers()] == [("late", 0), ("mailer", 0), ("mailer", 1)]

    go(t)


def test_advance_is_a_compare_and_swap_by_the_lease_holder(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        await store.register("mailer")
        with pytest.raises(LeaseLost):  # nobody holds it
            await store.commit([Advance("mailer", 0, 0, 2, "me")])
        await store.lease("mailer", 0, "me", 10.0)
        await store.commit([Advance("mailer", 0, 0, 2, "me")])
        with pytest.raises(Conflict):  # moved: 2, not 0
            await store.commit([Advance("mailer", 0, 0, 3, "me")])
        with pytest.raises(InvalidState):  # backwards
            await store.commit([Advance("mailer", 0, 2, 1, "me")])
        with pytest.raises(NotFound):
            await store.commit([Advance("mailer", 1, 2, 3, "me")])
        # a handler's writes and the advance commit together, or not at all
        with pytest.raises(Conflict):
            await store.commit([Cas("in1", 1, QUEUED), Advance("mailer", 0, 0, 3, "me")])
        assert (await store.load("in1")).version == 1
        await store.commit([Cas("in1", 1, QUEUED), Advance("mailer", 0, 2, 3, "me"), Advance("mailer", 0, 3, 4, "me")])
        assert (await store.load("in1")).version == 2 and (await store.consumers())[0].cursor == 4
        now[0] = 5000.0  # expired, and nobody took it over: still the holder's
        await store.commit([Advance("mailer", 0, 4, 4, "me")])

    go(t)


def test_a_dead_letter_is_recorded_once_per_consumer_and_position(go: Callable[[Test], None]) -> None:
    async def t(store: ReadStore, now: Clock) -> None:
        await seed(store)
        await store.register("mailer")
        await store.register("audit", start="latest")
        await store.lease("mailer", 0, "me", 10.0)
        await store.lease("audit", 0, "me", 10.0)
        first = DeadLetter("mailer", 0, 2, "in1", 2, "Stage", {"run_id": "r1"}, "boom", "RuntimeError: x", 5, "me")
        await store.commit([first], batch="dl-1")
        now[0] = 1001.0
        await store.commit([first], batch="dl-1")  # the same batch again: a no-op
        await store.commit([first, DeadLetter("mailer", 0, 2, "in1", 2, "Stage", {}, "other", "later", 9, "me")])
        await store.commit([DeadLetter("audit", 0, 2, "in1", 2, "Stage", {}, "x", "y", 1, "me")])
        letters = await store.dead_letters()
        assert [(d.consumer, d.position, d.code, d.attempts, d.at) for d in letters] == [
            ("audit", 2, "x", 1, 1001.0), ("mailer", 2, "boom", 5, 1000.0)]
        assert letters[1].data == {"run_id": "r1"} and letters[1].error == "RuntimeError: x"
        assert [d.consumer for d in await store.dead_letters("mailer")] == ["mailer"]
        with pytest.raises(LeaseLost):
            await store.commit([DeadLetter("mailer", 0, 3, "in2", 1, "Queue", {}, "c", "e", 1, "other")])
        with pytest.raises(InvalidState):
            await store.commit([DeadLetter("mailer", 0, 3, "in2", 1, "Queue", {"f": 1.5}, "c", "e", 1, "me")])
        with pytest.raises(InvalidState):
            await store.commit([DeadLetter("mailer", 0, 3, "in2", 1, "Queue", {}, "c", "a\x00b", 1, "me")])
        with pytest.raises(Unacknowledged):  # mailer is at 0 of 5
            await store.unregister("mailer")
        await store.unregister("mailer", force=True)
        assert [d.consumer for d in await store.dead_letters()] == ["audit"]
        await store.unregister("audit")  # started at the latest: nothing to drop
        assert await store.consumers() == []
        with pytest.raises(NotFound):
            await store.unregister("audit")

    go(t)


# -- the outbox gap ---------------------------------------------------------------------


class EarlyPositions(SqliteStore):
    """A naive store, for the outbox-gap test only: it takes its positions in a transaction of their own,
    committed *before* the batch's, and then writes the batch -- so a later batch can commit first."""

    _early = 0

    async def _write(self, ops: Sequence[Op], batch: str | None = None, outcome: Any = None) -> list[Any]:
        n = sum(len(op.events) if isinstance(op, Append) else 1 for op in ops if isinstance(op, (Append, AppendTerminal)))

        async def take() -> int:
            row = await self._one("SELECT last FROM positions", ())
            assert row is not None
            await self._db.execute("UPDATE positions SET last = ?", (row[0] + n,))
            return int(row[0])

        self._early = await self._guarded(None, take, "taking positions early")
        await asyncio.sleep(random.uniform(0, 0.004))  # what a slow batch does between the two
        return await super()._write(ops, batch, outcome)

    async def _take_positions(self, n: int) -> int:
        return self._early


def _writer(locator: str, name: str, naive: bool, batches: int, ready: MpEvent, go: MpEvent) -> None:
    """One writer process: ``batches`` batches of 1-3 events over 4 keys of its own."""

    async def main() -> None:
        rng = random.Random(name)
        if naive:
            store: Any = await EarlyPositions.open(locator, CATALOG, busy_timeout=30.0)
        else:
            store = await B.open_store(locator, busy_timeout=30.0)
        heads = {f"{name}-{i}": 0 for i in range(4)}
        await store.commit([Cas(k, 0, QUEUED, "input") for k in heads])
        ready.set()
        go.wait(60)
        for _ in range(batches):
            key = rng.choice(list(heads))
            n = rng.randint(1, 3)
            await store.append(key, heads[key], [("E", {"i": i}) for i in range(n)])
            heads[key] += n
            await asyncio.sleep(rng.uniform(0, 0.002))
        await store.close()

    asyncio.run(main())


class PrefixChecker:
    """Asserts what a reader sees is a gap-free prefix: each read of ``after=cursor`` starts at ``cursor + 1``
    and runs on without a hole, and no position is ever below one already passed."""

    def __init__(self) -> None:
        self.cursor = 0
        self.seen: list[int] = []
        self.problems: list[str] = []

    def page(self, events: Sequence[Event]) -> None:
        expected = self.cursor + 1
        for event in events:
            if event.position <= self.cursor:
                self.problems.append(f"position {event.position} after the reader had passed {self.cursor}")
            elif event.position != expected:
                self.problems.append(f"position {event.position} where {expected} was next: a gap")
            expected = event.position + 1
            self.seen.append(event.position)
        if events:
            self.cursor = max(self.cursor, events[-1].position)


async def race_readers(backend: str, locator: str, *, naive: bool, writers: int = 3, batches: int = 150,
                       readers: int = 2) -> tuple[list[PrefixChecker], int]:
    """Writer processes against ``readers`` reading tasks (each its own store: its own connection); the checkers."""
    ctx = mp.get_context("forkserver")
    ready = [ctx.Event() for _ in range(writers)]
    go = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(locator, f"w{i}", naive, batches, ready[i], go)) for i in range(writers)]
    stores = [await open_read_store(backend, locator, [0.0]) for _ in range(readers)]
    checkers = [PrefixChecker() for _ in stores]
    try:
        for p in procs:
            p.start()
        for r in ready:
            assert r.wait(120), "a writer did not start"
        go.set()

        async def read(store: ReadStore, checker: PrefixChecker) -> None:
            while any(p.is_alive() for p in procs):
                checker.page(await store.read(checker.cursor, limit=50))
            while page := await store.read(checker.cursor, limit=1000):
                checker.page(page)

        await asyncio.gather(*(read(s, c) for s, c in zip(stores, checkers)))
        latest = await stores[0].latest_cursor()
    finally:
        for p in procs:
            p.join(120)
            if p.is_alive():
                p.kill()
        for s in stores:
            await s.close()
    assert [p.exitcode for p in procs] == [0] * writers
    return checkers, latest


@pytest.mark.slow
@pytest.mark.parametrize("backend", B.BACKENDS)
def test_readers_never_see_a_position_below_one_they_passed(backend: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    """The outbox gap cannot happen: concurrent writer processes, readers on their own connections."""
    locator = B.locator(backend, tmp_path, request)
    checkers, latest = asyncio.run(race_readers(backend, locator, naive=False))
    assert latest >= 3 * 150
    for checker in checkers:
        assert checker.problems == []
        assert checker.seen == list(range(1, latest + 1))  # every position, once, in order


@pytest.mark.slow
def test_the_outbox_gap_checker_catches_a_store_that_takes_positions_before_its_transaction(tmp_path: Path) -> None:
    """The same race against `EarlyPositions`: the gap really happens, and the checker sees it."""
    checkers, latest = asyncio.run(race_readers("sqlite", str(tmp_path / "s.db"), naive=True))
    problems = [p for c in checkers for p in c.problems]
    assert any("a gap" in p for p in problems), problems[:5]
    # and the gap is the outbox gap: the positions skipped committed later, below a cursor already passed,
    # so a reader reading on from its cursor never sees them
    lost = [sorted(set(range(1, latest + 1)) - set(c.seen)) for c in checkers]
    assert all(bool(lost[i]) == bool(c.problems) for i, c in enumerate(checkers)), lost
    assert await_all_positions(tmp_path / "s.db") == list(range(1, latest + 1))


def await_all_positions(path: Path) -> list[int]:
    """Every position the store at ``path`` holds, read afresh."""

    async def main() -> list[int]:
        async with await SqliteStore.open(path, CATALOG) as store:
            return [e.position for e in await store.replay_all()]

    return asyncio.run(main())


def test_memory_readers_never_see_a_gap_under_concurrent_writer_tasks() -> None:
    async def main() -> None:
        store = MemoryStore(CATALOG)
        checker = PrefixChecker()
        done = asyncio.Event()

        async def writer(name: str) -> None:
            rng = random.Random(name)
            await store.cas(name, 0, QUEUED, machine="input")
            head = 0
            for _ in range(200):
                head = await store.append(name, head, [("E", {})] * rng.randint(1, 3))
                await asyncio.sleep(0)

        async def reader() -> None:
            while not done.is_set():
                checker.page(await store.read(checker.cursor, limit=7))
                await asyncio.sleep(0)
            while page := await store.read(checker.cursor):
                checker.page(page)

        task = asyncio.ensure_future(reader())
        await asyncio.gather(*(writer(f"k{i}") for i in range(4)))
        done.set()
        await task
        assert checker.problems == [] and checker.seen == list(range(1, await store.latest_cursor() + 1))

    asyncio.run(main())


def test_buckets_are_crc32_and_stable() -> None:
    assert (bucket_of("in1"), bucket_of("in2"), bucket_of("run1")) == (4014, 3604, 2979)
