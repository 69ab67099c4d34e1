"""What only PostgreSQL shows of the read side: positions from a counter row, NOTIFY, the upgrade, the outbox gap.

The read side's contract (every backend) is ``test_read_side.py``; here each
test gets a fresh database of the session's throwaway server and looks behind
the store with raw asyncpg: the counter row a batch without events never
touches, the schema of version 3 numbered on upgrade, the listening
connection lost and replaced, how fast a waiter on another connection wakes,
and the outbox gap -- a reader passing a position whose predecessor is not
committed yet -- that concurrent writers never open here, and that a store
taking its positions from a SEQUENCE does (`SequenceStore`, test-only).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from statewright.adapters.runtime.postgres import SCHEMA_VERSION, PostgresReader, PostgresStore
from statewright.adapters.runtime.readside import Advance, Consumer, DeadLetter, Unacknowledged, bucket_of
from statewright.adapters.runtime.store import Append, AppendTerminal, Cas, Event, LeaseLost, NotFound, Op
from statewright.machines.input import Input
from tests.adapters.test_postgres import pg_test
from tests.adapters.test_store_contract import CATALOG

QUEUE = (("Queue", {}),)


async def _make(store: PostgresStore, *keys: str) -> None:
    await store.commit([Cas(k, 0, Input(), machine="input") for k in keys])


# -- positions ------------------------------------------------------------------------


def test_positions_are_global_gap_free_and_read_back_everywhere(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a", "b")
        await store.append("a", 0, [("Queue", {"n": 1}), ("Stage", {"n": 2})])
        await store.commit([Append("b", 0, (("Queue", {}),)), Append("a", 2, (("Tick", {}),))])
        await store.append_terminal("b", "End", {})
        assert await store.latest_cursor() == 5
        everything = await store.replay_all()
        assert [(e.key, e.seq, e.position) for e in everything] == [
            ("a", 1, 1), ("a", 2, 2), ("b", 1, 3), ("a", 3, 4), ("b", 2, 5)]
        assert everything[-1] == Event("b", 2, "End", {}, True, 5)
        assert await store.read(2, limit=2) == everything[2:4]
        assert [e.position for e in await store.read(0, kinds=["Queue"])] == [1, 3]
        part = bucket_of("a") % 2
        assert {e.key for e in await store.read(0, partition=(part, 2))} == (
            {"a", "b"} if bucket_of("b") % 2 == part else {"a"})
        assert [e.position for e in await store.read_log("a")] == [1, 2, 4]
        assert [e.seq for e in await store.read_range("a", 2, 3)] == [2, 3]  # both bounds inclusive
        assert [e.seq for e in await store.read_range("a", 2)] == [2, 3]
        rows = await admin.fetch("SELECT key, bucket FROM statewright.events")
        assert all(bucket == bucket_of(key) for key, bucket in rows)

    pg_test(postgres_dsn, body)


def test_a_batch_without_events_never_touches_the_counter(postgres_dsn: str) -> None:
    """An Advance (or a Cas) alone writes no event: the counter row is not even locked, so its xmin stays."""

    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a")
        await store.append("a", 0, QUEUE)
        await store.register("mailer")
        assert await store.lease("mailer", 0, "w1", 30.0) is not None
        before = await admin.fetchrow("SELECT xmin::text, last FROM statewright.positions")
        await admin.execute("BEGIN")
        await admin.execute("SELECT 1 FROM statewright.positions FOR UPDATE")  # a held counter blocks no such batch
        try:
            await store.commit([Advance("mailer", 0, 0, 1, "w1")])
            await store.cas("a", 1, Input())
        finally:
            await admin.execute("ROLLBACK")
        assert await admin.fetchrow("SELECT xmin::text, last FROM statewright.positions") == before
        assert (await store.consumers())[0].cursor == 1

    pg_test(postgres_dsn, body, busy_timeout=1.0)


def test_a_rolled_back_batch_gives_its_positions_back(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a", "b")
        await store.append("a", 0, QUEUE)
        with pytest.raises(Exception):  # the second append's head is wrong: the whole batch rolls back
            await store.commit([Append("b", 0, QUEUE * 3), Append("a", 0, QUEUE)])
        await store.append("b", 0, QUEUE)
        assert [e.position for e in await store.replay_all()] == [1, 2]

    pg_test(postgres_dsn, body)


def test_a_cancelled_batch_waiting_for_the_counter_takes_no_position(postgres_dsn: str) -> None:
    """Cancelled while its last statement waits for the counter row: rolled back, the store usable, no hole."""

    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a")
        await admin.execute("BEGIN")
        await admin.execute("SELECT 1 FROM statewright.positions FOR UPDATE")
        write = asyncio.ensure_future(store.append("a", 0, QUEUE))
        pid = store._conn.get_server_pid()
        while not await admin.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", pid):
            await asyncio.sleep(0.005)
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
        await admin.execute("ROLLBACK")
        assert not store._conn.is_in_transaction()
        assert await store.latest_cursor() == 0
        assert await store.append("a", 0, QUEUE) == 1
        assert [e.position for e in await store.replay_all()] == [1]

    pg_test(postgres_dsn, body, busy_timeout=10.0)


# -- the schema ----------------------------------------------------------------------


def test_a_version_3_schema_is_upgraded_and_numbers_its_events_in_key_order(postgres_dsn: str) -> None:
    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await _make(store, "zeta", "alpha", "Beta")
            for key in ("zeta", "alpha", "Beta"):  # appended in this order; numbered by key bytes on upgrade
                await store.append(key, 0, QUEUE * 2)
        admin = await asyncpg.connect(postgres_dsn)
        try:  # the shape statewright wrote before the read side
            await admin.execute("DROP INDEX statewright.events_position, statewright.events_at;"
                                "ALTER TABLE statewright.events DROP COLUMN position, DROP COLUMN at, DROP COLUMN bucket;"
                                "DROP TABLE statewright.positions, statewright.consumers, statewright.dead_letters;"
                                "UPDATE statewright.statewright_schema SET version = 3")
            reader = await PostgresReader.open(postgres_dsn)  # a schema of version 3 is shown, without a read side
            try:
                assert await reader.latest() == 0 and await reader.consumers() == []
                assert await reader.dead_letters() == [] and len(await reader.log("zeta")) == 2
            finally:
                await reader.close()
            async with await PostgresStore.open(postgres_dsn, CATALOG, clock=lambda: 1234.5) as store:
                assert [(e.key, e.seq, e.position) for e in await store.replay_all()] == [
                    ("Beta", 1, 1), ("Beta", 2, 2), ("alpha", 1, 3), ("alpha", 2, 4), ("zeta", 1, 5), ("zeta", 2, 6)]
                assert await store.latest_cursor() == 6
                assert await store.append("alpha", 2, QUEUE) == 3
                assert (await store.read(6))[0].position == 7
            assert await admin.fetchval("SELECT version FROM statewright.statewright_schema") == SCHEMA_VERSION == 4
            rows = await admin.fetch("SELECT key, bucket, at FROM statewright.events WHERE position <= 6")
            assert all(b == bucket_of(k) and at == 1234.5 for k, b, at in rows)
        finally:
            await admin.close()

    asyncio.run(main())


# -- consumers ------------------------------------------------------------------------


def test_consumers_leases_cursors_and_dead_letters(postgres_dsn: str) -> None:
    now = [100.0]

    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a")
        await store.append("a", 0, QUEUE * 3)
        assert await store.register("mailer", partitions=2) == [Consumer("mailer", 0, 2, 0), Consumer("mailer", 1, 2, 0)]
        assert await store.register("late", start="latest") == [Consumer("late", 0, 1, 3)]
        part = bucket_of("a") % 2
        assert await store.lease("mailer", part, "w1", 10.0) == Consumer("mailer", part, 2, 0, "w1", 110.0)
        assert await store.lease("mailer", part, "w2", 10.0) is None  # held
        with pytest.raises(LeaseLost):
            await store.commit([Advance("mailer", part, 0, 2, "w2")])
        letter = DeadLetter("mailer", part, 2, "a", 2, "Queue", {}, "handler_failed", "ValueError: no", 5, "w1")
        await store.commit([Advance("mailer", part, 0, 3, "w1"), letter])
        await store.commit([letter])  # recorded once
        now[0] = 111.0  # expired: another owner may take it, and the first one's advance is refused
        assert (await store.lease("mailer", part, "w2", 10.0)) == Consumer("mailer", part, 2, 3, "w2", 121.0)
        with pytest.raises(LeaseLost):
            await store.commit([Advance("mailer", part, 3, 3, "w1")])
        await store.release("mailer", part, "w1")  # not its lease: nothing happens
        assert (await store.consumers())[1 + part].owner == "w2"  # after "late"
        await store.release("mailer", part, "w2")
        assert [(c.name, c.partition, c.cursor, c.owner) for c in await store.consumers()] == [
            ("late", 0, 3, None), ("mailer", 0, 3 if part == 0 else 0, None), ("mailer", 1, 3 if part else 0, None)]
        (dead,) = await store.dead_letters("mailer")
        assert (dead.position, dead.key, dead.code, dead.attempts, dead.at) == (2, "a", "handler_failed", 5, 100.0)
        with pytest.raises(NotFound):
            await store.lease("nobody", 0, "w1", 1.0)
        reader = await PostgresReader.open(postgres_dsn)
        try:
            assert await reader.latest() == 3
            lags = [(c.name, c.partition, lag) for c, lag in await reader.consumers()]
            assert lags == [("late", 0, 0), ("mailer", 0, 0 if part == 0 else 3), ("mailer", 1, 0 if part else 3)]
            assert [row[:4] for row in await reader.dead_letters()] == [("mailer", part, 2, "a")]
        finally:
            await reader.close()
        with pytest.raises(Unacknowledged):
            await store.unregister("mailer")
        await store.unregister("mailer", force=True)
        assert await store.dead_letters() == []

    pg_test(postgres_dsn, body, clock=lambda: now[0])


def test_prune_and_clear_spare_what_a_consumer_has_not_passed(postgres_dsn: str) -> None:
    now = [10.0]

    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a", "b")
        await store.append("a", 0, QUEUE * 3)  # 1..3
        await store.append("b", 0, QUEUE)  # 4
        await store.register("mailer")
        await store.lease("mailer", 0, "w", 100.0)
        await store.commit([Advance("mailer", 0, 0, 2, "w")])
        assert await store.prune(11.0) == 2  # 1 and 2: 3 is a's last, 4 b's (and above the cursor)
        assert [e.position for e in await store.replay_all()] == [3, 4]
        with pytest.raises(Unacknowledged):
            await store.clear()
        await store.commit([Advance("mailer", 0, 2, 4, "w")])
        assert await store.clear() == 2
        assert await store.keys() == [] and await store.replay_all() == []
        await _make(store, "a")
        assert await store.append("a", 0, QUEUE) == 1
        assert (await store.read(4))[0].position == 5  # positions go on after a clear

    pg_test(postgres_dsn, body, clock=lambda: now[0])


# -- waking on commit ----------------------------------------------------------------


def test_a_waiter_wakes_on_this_stores_commit_and_on_the_timeout(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a")
        assert await store.wait(0, 0.01) == 0
        waiter = asyncio.ensure_future(store.wait(0, 30.0))
        await asyncio.sleep(0.01)
        await store.append("a", 0, QUEUE)
        assert await waiter == 1

    pg_test(postgres_dsn, body, poll=60.0)


@pytest.mark.slow
def test_notify_wakes_a_waiter_on_another_connection(postgres_dsn: str) -> None:
    """Over 200 commits on one connection, a waiter on another wakes each time: figures printed, not asserted."""
    rounds = 200

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as writer, \
                await PostgresStore.open(postgres_dsn, CATALOG, poll=60.0) as watcher:
            await _make(writer, "a")
            await watcher.wait(0, 0.0)  # listening
            after_return: list[float] = []  # from the writer's commit returning to the waiter waking (0 if before)
            after_call: list[float] = []  # from the writer's append being called: an upper bound with the commit
            for n in range(rounds):
                woke = asyncio.get_running_loop().create_future()
                waiter = asyncio.ensure_future(watcher.wait(n, 30.0))
                waiter.add_done_callback(lambda _, w=woke: w.set_result(time.perf_counter()))
                await asyncio.sleep(0.001)
                called = time.perf_counter()
                await writer.append("a", n, QUEUE)
                returned = time.perf_counter()
                assert await waiter == n + 1
                after_return.append(max(0.0, await woke - returned))
                after_call.append(await woke - called)
            for what, figures in (("after the writer's commit returned", after_return),
                                  ("after the writer's append was called", after_call)):
                cuts = statistics.quantiles(figures, n=100)
                print(f"\nNOTIFY wake-up on another connection {what}, {rounds} commits: "
                      f"p50 {statistics.median(figures) * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, "
                      f"max {max(figures) * 1000:.2f} ms", end="")
            print()
            assert watcher._listener.opened == 1

    asyncio.run(main())


def test_a_lost_listening_connection_is_replaced(postgres_dsn: str) -> None:
    async def main() -> None:
        admin = await asyncpg.connect(postgres_dsn)
        async with await PostgresStore.open(postgres_dsn, CATALOG) as writer, \
                await PostgresStore.open(postgres_dsn, CATALOG, poll=60.0) as watcher:
            try:
                await _make(writer, "a")
                for n in range(3):
                    await watcher.wait(n, 0.0)
                    pid = watcher._listener._conn.get_server_pid()
                    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                    waiter = asyncio.ensure_future(watcher.wait(n, 30.0))
                    await asyncio.sleep(0.05)
                    await writer.append("a", n, QUEUE)
                    assert await asyncio.wait_for(waiter, 20.0) == n + 1  # never the 60 s poll
                    assert watcher._listener.opened == n + 2
            finally:
                await admin.close()

    asyncio.run(main())


def test_subscribe_follows_commits(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await _make(store, "a")
        await store.append("a", 0, QUEUE)
        seen: list[int] = []

        async def follow() -> None:
            async for event in store.subscribe(0, limit=2):
                seen.append(event.position)
                if len(seen) == 5:
                    return

        task = asyncio.ensure_future(follow())
        for head in range(1, 5):
            await asyncio.sleep(0.005)
            await store.append("a", head, QUEUE)
        await asyncio.wait_for(task, 10.0)
        assert seen == [1, 2, 3, 4, 5]

    pg_test(postgres_dsn, body)


# -- the outbox gap ---------------------------------------------------------------------


@dataclass
class Prefix:
    """One reader's view: every read must extend the gap-free prefix it has seen, ``cursor + 1, cursor + 2, ...``.

    A read that skips a position (a hole, perhaps filled later) or returns one
    at or below the cursor is recorded in ``gaps``; the cursor then moves on as
    a naive reader's would, past the hole.
    """

    cursor: int = 0
    reads: int = 0
    gaps: list[tuple[int, list[int]]] = field(default_factory=list)

    def see(self, positions: Sequence[int]) -> None:
        self.reads += 1
        if list(positions) != list(range(self.cursor + 1, self.cursor + 1 + len(positions))):
            self.gaps.append((self.cursor, list(positions[:8])))
        self.cursor = max([self.cursor, *positions])


class SequenceStore(PostgresStore):
    """The naive outbox, for the test only: positions from a SEQUENCE, taken when the transaction starts.

    A batch that took 10 can commit after one that took 11, so a reader may
    pass 11 while 10 is not committed yet: the gap `Prefix` must catch. The
    short sleep between taking and committing stands for any work in between.
    """

    _taken: list[int]

    async def _batch(self, ops: Sequence[Op], prepared: list[Any], batch: str | None, digest: str,
                     noted: str | None) -> list[Any]:
        n = sum(len(op.events) if isinstance(op, Append) else isinstance(op, AppendTerminal) for op in ops)
        self._taken = [int(p) for (p,) in await self._conn.fetch(
            "SELECT nextval('statewright.naive_positions') FROM generate_series(1, $1)", n)]
        await asyncio.sleep(random.random() * 0.004)
        return await super()._batch(ops, prepared, batch, digest, noted)

    async def _append_events(self, events: list[tuple[str, int, str, str, bool]], at: float) -> int:
        keys, seqs, kinds, datas, ends = map(list, zip(*events))
        await self._conn.execute(self._sql.append_numbered, keys, seqs, kinds, datas, ends, self._taken, at,
                                 [bucket_of(k) for k in keys])
        return self._taken[-1]


async def _appending(store: PostgresStore, key: str, batches: int) -> None:
    """``batches`` appends of 1-3 events each to ``key``'s log."""
    head = 0
    for _ in range(batches):
        head = await store.append(key, head, QUEUE * random.randint(1, 3))


def _append_in_a_process(dsn: str, key: str, batches: int, start: Any) -> None:
    """A writer process: `_appending` on its own connection, from when ``start`` (a barrier) lets it go."""

    async def main() -> None:
        async with await PostgresStore.open(dsn, CATALOG) as store:
            await asyncio.to_thread(start.wait)
            await _appending(store, key, batches)

    asyncio.run(main())


async def _outbox(dsn: str, kind: type[PostgresStore], *, writers: int, batches: int, readers: int,
                  processes: int = 0) -> list[Prefix]:
    """``writers`` connections (and ``processes`` processes) each appending ``batches`` batches of 1-3 events
    to its own key, while ``readers`` connections read after their cursor over and over; each reader's `Prefix`."""
    stores = [await kind.open(dsn, CATALOG) for _ in range(max(1, writers))]
    watchers = [await PostgresStore.open(dsn, CATALOG) for _ in range(readers)]
    done = asyncio.Event()
    try:
        await _make(stores[0], *(f"k{i}" for i in range(writers + processes)))
        spawn = multiprocessing.get_context("spawn")
        start = spawn.Barrier(processes + 1)
        workers = [spawn.Process(target=_append_in_a_process, args=(dsn, f"k{writers + i}", batches, start))
                   for i in range(processes)]
        for worker in workers:
            worker.start()

        async def read(store: PostgresStore, seen: Prefix) -> None:
            while True:
                finished = done.is_set()
                seen.see([e.position for e in await store.read(seen.cursor, limit=7)])
                if finished and seen.cursor >= total:
                    return
                if finished and seen.gaps:  # a naive store's holes may never fill: stop at the end
                    return
                await asyncio.sleep(0)

        prefixes = [Prefix() for _ in watchers]
        total = 0
        reading = [asyncio.ensure_future(read(w, p)) for w, p in zip(watchers, prefixes)]
        if processes:
            await asyncio.to_thread(start.wait)
        await asyncio.gather(*(_appending(s, f"k{i}", batches) for i, s in enumerate(stores[:writers])),
                             *(asyncio.to_thread(w.join, 120) for w in workers))
        assert [w.exitcode for w in workers] == [0] * processes
        total = int(await stores[0]._conn.fetchval("SELECT count(*) FROM statewright.events"))
        done.set()
        await asyncio.wait_for(asyncio.gather(*reading), 60.0)
        return prefixes
    finally:
        for s in [*stores, *watchers]:
            await s.close()


@pytest.mark.parametrize("processes", [0, pytest.param(3, marks=pytest.mark.slow)], ids=["connections", "processes"])
def test_concurrent_writers_never_open_an_outbox_gap(postgres_dsn: str, processes: int) -> None:
    """Writers on 4 connections of this process (or 3 processes besides): every read extends the prefix."""

    async def main() -> None:
        prefixes = await _outbox(postgres_dsn, PostgresStore, writers=4, batches=40 if not processes else 150,
                                 readers=2, processes=processes)
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            latest = await store.latest_cursor()
            assert [e.position for e in await store.replay_all()] == list(range(1, latest + 1))
        for seen in prefixes:
            assert seen.gaps == [] and seen.cursor == latest and seen.reads > 10
        print(f"\n{latest} positions, {sum(s.reads for s in prefixes)} reads by {len(prefixes)} readers: no gap")

    asyncio.run(main())


def test_the_same_checker_catches_the_gap_of_positions_from_a_sequence(postgres_dsn: str) -> None:
    async def main() -> None:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            async with await PostgresStore.open(postgres_dsn, CATALOG):
                await admin.execute("CREATE SEQUENCE statewright.naive_positions")
        finally:
            await admin.close()
        prefixes = await _outbox(postgres_dsn, SequenceStore, writers=4, batches=40, readers=2)
        assert any(seen.gaps for seen in prefixes), "the naive store opened no gap the checker saw"
        cursor, positions = next(seen.gaps[0] for seen in prefixes if seen.gaps)
        print(f"\nnaive SEQUENCE store: {sum(len(s.gaps) for s in prefixes)} gaps seen, the first after cursor "
              f"{cursor}: read {positions}")

    asyncio.run(main())
