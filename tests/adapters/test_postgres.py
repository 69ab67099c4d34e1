"""What only PostgreSQL shows: a shared schema, row locks, server-side cancellation, a server that goes away.

The contract every backend keeps is in ``test_store_contract.py`` (which runs
it on PostgreSQL too); here each test gets a fresh database of the session's
throwaway server (``postgres_dsn``) and talks to it through the store and, to
hold locks or garble rows behind the store's back, through raw asyncpg.
"""

from __future__ import annotations

import ast
import asyncio
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from statewright.adapters.runtime import postgres as postgres_module
from statewright.adapters.runtime.postgres import SCHEMA_VERSION, PostgresStore
from statewright.adapters.runtime.store import (
    AlreadyApplied,
    MAX_KEEP_BATCHES,
    Append,
    BadOption,
    Busy,
    Cas,
    Catalog,
    Conflict,
    Corrupt,
    IncompatibleSchema,
    InvalidState,
    Io,
    Limits,
    NotAStore,
    Op,
    PermissionDenied,
    ReadOnly,
    Receipt,
    Record,
    StoreError,
    batch_id,
    canonical_json,
)
from statewright.machines.input import INPUT, Input
from tests.adapters import _postgres
from tests.adapters.test_store_contract import (
    CATALOG,
    GOOD_OPS,
    QUEUED,
    forgets_after_retention,
    lock_waiting_writes,
    seed,
    snapshot,
)

Body = Callable[[PostgresStore, Any], Awaitable[None]]


def pg_test(dsn: str, body: Body, **options: Any) -> None:
    """Run ``body(store, admin)``: a store on ``dsn`` and a raw asyncpg connection to the same database."""

    async def main() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            async with await PostgresStore.open(dsn, CATALOG, **options) as store:
                await body(store, admin)
        finally:
            await admin.close()

    asyncio.run(main())


def one_line(error: StoreError) -> str:
    text = str(error)
    assert text and "\n" not in text
    return text


# -- the schema ----------------------------------------------------------------------


def test_concurrent_opens_create_the_schema_once(postgres_dsn: str) -> None:
    async def main() -> None:
        stores = await asyncio.gather(*(PostgresStore.open(postgres_dsn, CATALOG) for _ in range(8)))
        try:
            await asyncio.gather(*(s.cas(f"k{i}", 0, Input(), machine="input") for i, s in enumerate(stores)))
            assert await stores[0].keys() == [f"k{i}" for i in range(8)]
        finally:
            await asyncio.gather(*(s.close() for s in stores))
        admin = await asyncpg.connect(postgres_dsn)
        try:
            assert await admin.fetch("SELECT version FROM statewright.statewright_schema") == [(SCHEMA_VERSION,)]
            tables = await admin.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'statewright' ORDER BY tablename")
            assert [t for (t,) in tables] == ["batches", "consumers", "dead_letters", "events", "instances", "positions",
                                              "statewright_schema"]
        finally:
            await admin.close()

    asyncio.run(main())


def test_stored_bytes_are_the_canonical_json(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await seed(store)
        state = await admin.fetchval("SELECT state FROM statewright.instances WHERE key = 'in1'")
        assert state == CATALOG.dump("input", Input(), key="in1")
        data = await admin.fetchval("SELECT data FROM statewright.events WHERE key = 'in1' AND seq = 2")
        assert data == canonical_json({"run_id": "r1"}) == '{"run_id":"r1"}'

    pg_test(postgres_dsn, body)


@pytest.mark.parametrize(
    "setup, error",
    [
        (f"UPDATE statewright.statewright_schema SET version = {SCHEMA_VERSION + 1}", IncompatibleSchema),
        ("ALTER TABLE statewright.instances ADD COLUMN extra text", IncompatibleSchema),
        ("ALTER TABLE statewright.events RENAME COLUMN data TO payload", IncompatibleSchema),
        ("DROP TABLE statewright.events, statewright.batches, statewright.instances, statewright.statewright_schema;"
         " CREATE TABLE statewright.accounts (id int)", NotAStore),
    ],
    ids=["newer version", "extra column", "renamed column", "someone else's schema"],
)
def test_schemas_this_release_cannot_use_are_refused_untouched(
    postgres_dsn: str, setup: str, error: type[StoreError]
) -> None:
    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await seed(store)
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(setup)
            before = await admin.fetch("SELECT relname FROM pg_class ORDER BY relname")
            with pytest.raises(error) as info:
                await PostgresStore.open(postgres_dsn, CATALOG)
            assert info.value.code == error.code
            assert "statewright" in one_line(info.value)
            assert await admin.fetch("SELECT relname FROM pg_class ORDER BY relname") == before
        finally:
            await admin.close()

    asyncio.run(main())


def test_a_version_1_schema_is_upgraded_and_keeps_its_batch_ids(postgres_dsn: str) -> None:
    """Version 1 kept batch ids without their time: the upgrade dates them and they still count."""

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await store.cas("in1", 0, Input(), machine="input")
        admin = await asyncpg.connect(postgres_dsn)
        try:  # the shape statewright's first PostgreSQL release wrote
            await admin.execute("DROP INDEX statewright.batches_at;"
                                "ALTER TABLE statewright.batches DROP COLUMN at, DROP COLUMN digest, DROP COLUMN outcome;"
                                "INSERT INTO statewright.batches VALUES ('old-batch');"
                                "UPDATE statewright.statewright_schema SET version = 1")
            async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
                await store.commit([Cas("in1", 1, Input())], batch="old-batch")  # recorded before: a no-op
                assert (await store.load("in1")).version == 1
            assert await admin.fetchval("SELECT version FROM statewright.statewright_schema") == SCHEMA_VERSION == 4
            (at,) = await admin.fetchrow("SELECT at FROM statewright.batches WHERE id = 'old-batch'")
            assert abs(at - time.time()) < 60
        finally:
            await admin.close()

    asyncio.run(main())


def test_a_version_2_schema_is_upgraded_and_keeps_its_batch_ids(postgres_dsn: str) -> None:
    """Version 2 kept batch ids without their operations' digest: they stay, and any re-submission under one is a no-op."""

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await store.cas("in1", 0, Input(), machine="input")
        admin = await asyncpg.connect(postgres_dsn)
        try:  # the shape statewright wrote before batch ids kept their digest and outcome
            await admin.execute("ALTER TABLE statewright.batches DROP COLUMN digest, DROP COLUMN outcome;"
                                "INSERT INTO statewright.batches VALUES ('old-batch', 5);"
                                "UPDATE statewright.statewright_schema SET version = 2")
            async with await PostgresStore.open(postgres_dsn, CATALOG, clock=lambda: 100.0) as store:
                await store.commit([Cas("in1", 1, Input())], batch="old-batch")  # recorded before: a no-op
                await store.commit([Cas("in1", 9, Input())], batch="old-batch")  # as is any batch under it
                assert (await store.load("in1")).version == 1
                assert await store.receipt("old-batch") == Receipt("old-batch", None, None)
                await store.commit([Cas("in1", 1, Input())], batch="new-batch", outcome={"said": "yes"})
                with pytest.raises(AlreadyApplied) as info:  # a new id keeps its digest
                    await store.commit([Cas("in1", 2, Input())], batch="new-batch")
                assert info.value.receipt.outcome == {"said": "yes"}
                assert (await store.load("in1")).version == 2
            assert await admin.fetchval("SELECT version FROM statewright.statewright_schema") == 4
            rows = await admin.fetch("SELECT id, at, digest IS NULL FROM statewright.batches ORDER BY id")
            assert [tuple(r) for r in rows] == [("new-batch", 100, False), ("old-batch", 5, True)]
        finally:
            await admin.close()

    asyncio.run(main())


def test_batch_ids_are_forgotten_after_their_retention(postgres_dsn: str) -> None:
    now = [0.0]

    async def body(store: PostgresStore, admin: Any) -> None:
        kept = await forgets_after_retention(store, now)
        assert [r for (r,) in await admin.fetch("SELECT id FROM statewright.batches ORDER BY id")] == kept

    pg_test(postgres_dsn, body, keep_batches=100.0, clock=lambda: now[0])


@pytest.mark.parametrize("option, value", [("keep_batches", float("inf")), ("keep_batches", 1e300),
                                           ("keep_batches", 0), ("busy_timeout", float("inf")),
                                           ("busy_timeout", -1.0)], ids=repr)
def test_an_option_no_store_can_honour_is_refused_before_connecting(
    postgres_dsn: str, option: str, value: float
) -> None:
    """``keep_batches=inf`` was an OverflowError on every write, ``1e300`` a store_error: now bad_option at open."""

    async def main() -> None:
        for dsn in (postgres_dsn, "postgresql://nobody@/nowhere?host=/nonexistent"):  # no server is asked
            with pytest.raises(BadOption, match=f"^{option} must be ") as caught:
                await PostgresStore.open(dsn, CATALOG, **{option: value})
            assert caught.value.code == "bad_option"
        admin = await asyncpg.connect(postgres_dsn)
        try:
            assert await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'statewright'") == 0
        finally:
            await admin.close()

    asyncio.run(main())


def test_the_longest_retention_keeps_and_prunes_ids(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await store.cas("in1", 0, Input(), machine="input")
        await store.commit([Cas("in1", 1, Input())], batch="b1")  # the first recording prunes at once
        await store.commit([Cas("in1", 1, Input())], batch="b1")  # remembered: a no-op
        assert (await store.load("in1")).version == 2
        assert await admin.fetchval("SELECT count(*) FROM statewright.batches") == 1

    pg_test(postgres_dsn, body, keep_batches=MAX_KEEP_BATCHES)


def test_other_tables_and_schemas_share_the_database(postgres_dsn: str) -> None:
    async def main() -> None:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute("CREATE TABLE public.instances (whatever int); CREATE TABLE public.orders (id int)")
            async with await PostgresStore.open(postgres_dsn, CATALOG) as one, \
                    await PostgresStore.open(postgres_dsn, CATALOG, schema="tenant_b") as two:
                await seed(one)
                assert await two.keys() == []
                await two.cas("in1", 0, QUEUED, machine="input")
                assert (await one.load("in1")).state == Input() and (await two.load("in1")).state == QUEUED
            with pytest.raises(StoreError):
                await PostgresStore.open(postgres_dsn, CATALOG, schema='x"; DROP TABLE orders; --')
        finally:
            await admin.close()

    asyncio.run(main())


def test_garbled_rows_are_corrupt_for_that_key_only(postgres_dsn: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await seed(store)
        await admin.execute("UPDATE statewright.instances SET state = '{\"phase\": \"flying\"}' WHERE key = 'in1'")
        await admin.execute("UPDATE statewright.instances SET machine = 'gone' WHERE key = 'in2'")
        await admin.execute("UPDATE statewright.events SET data = '{not json' WHERE key = 'in1' AND seq = 2")
        for key in ("in1", "in2"):
            with pytest.raises(Corrupt) as info:
                await store.load(key)
            assert info.value.key == key
        with pytest.raises(Corrupt):
            await store.read_log("in1")
        assert [e.kind for e in await store.read_log("in1", 1, 2)] == ["Queue"]
        assert (await store.cas("in1", 1, QUEUED)).state == QUEUED  # a writer that knows the version repairs it

    pg_test(postgres_dsn, body)


# -- locks -----------------------------------------------------------------------------

HOLD = {
    "cas": "SELECT 1 FROM statewright.instances WHERE key = 'in1' FOR UPDATE",
    "create": "INSERT INTO statewright.instances VALUES ('in7', 'input', '{}', 1)",
    "append": "SELECT 1 FROM statewright.instances WHERE key = 'in1' FOR UPDATE",
    "terminal": "SELECT 1 FROM statewright.instances WHERE key = 'in1' FOR UPDATE",
    "commit": "SELECT 1 FROM statewright.instances WHERE key = 'run1' FOR SHARE",
}


@pytest.mark.parametrize("write", list(HOLD))
def test_a_held_lock_is_busy_not_a_conflict(postgres_dsn: str, write: str) -> None:
    async def body(store: PostgresStore, admin: Any) -> None:
        await seed(store)
        before = await snapshot(store)
        attempts = lock_waiting_writes(store)
        await admin.execute("BEGIN")
        await admin.execute(HOLD[write])
        started = time.monotonic()
        with pytest.raises(Busy) as info:
            await attempts[write]()
        elapsed = time.monotonic() - started
        assert info.value.code == "busy" and not isinstance(info.value, Conflict)
        assert 0.2 <= elapsed < 2.0
        one_line(info.value)
        assert await snapshot(store) == before  # reads go on while the lock is held
        await admin.execute("ROLLBACK")
        await attempts[write]()  # once the lock is free the same write succeeds
        assert await snapshot(store) != before

    pg_test(postgres_dsn, body, busy_timeout=0.2)


def test_batches_in_opposite_key_orders_never_deadlock(postgres_dsn: str) -> None:
    """Locks are taken in key order whatever the batch's order, so crossing batches queue, never deadlock."""

    async def writer(store: PostgresStore, keys: tuple[str, str], rounds: int) -> list[str]:
        outcomes = []
        for _ in range(rounds):
            versions = [(await store.load(k)).version for k in keys]
            try:
                await store.commit([Cas(k, v, QUEUED) for k, v in zip(keys, versions)])
                outcomes.append("ok")
            except Conflict:
                outcomes.append("conflict")
        return outcomes

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as a, \
                await PostgresStore.open(postgres_dsn, CATALOG) as b:
            for k in ("x", "y"):
                await a.cas(k, 0, Input(), machine="input")
            one, two = await asyncio.gather(writer(a, ("x", "y"), 60), writer(b, ("y", "x"), 60))
            assert len(one) == len(two) == 60
            wins = (one + two).count("ok")
            assert (await a.load("x")).version == (await a.load("y")).version == 1 + wins

    asyncio.run(main())


def test_batches_creating_the_same_keys_in_opposite_orders_never_deadlock(postgres_dsn: str) -> None:
    """Creations have no row to lock: they deadlocked in 18 of 30 rounds (reported as Busy after 1 s)."""

    def creating(keys: tuple[str, ...]) -> list[Op]:
        return [op for k in keys for op in (Cas(k, 0, QUEUED, machine="input"), Append(k, 0, (("created", {}),)))]

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG, busy_timeout=10.0) as a, \
                await PostgresStore.open(postgres_dsn, CATALOG, busy_timeout=10.0) as b:
            for i in range(60):
                keys = (f"x{i}", f"y{i}", f"z{i}")
                results = await asyncio.gather(a.commit(creating(keys)), b.commit(creating(keys[::-1])),
                                               return_exceptions=True)
                assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"], results
                assert [(await a.load(k)).version for k in keys] == [1, 1, 1]
                assert [len(await a.read_log(k)) for k in keys] == [1, 1, 1]

    asyncio.run(main())


def test_racing_creations_from_separate_connections_have_one_winner(postgres_dsn: str) -> None:
    async def main() -> None:
        stores = [await PostgresStore.open(postgres_dsn, CATALOG) for _ in range(4)]
        try:
            for i in range(20):
                results = await asyncio.gather(
                    *(s.cas(f"k{i}", 0, QUEUED, machine="input") for s in stores), return_exceptions=True)
                assert sum(isinstance(r, Record) for r in results) == 1
                assert sum(isinstance(r, Conflict) for r in results) == 3
        finally:
            for s in stores:
                await s.close()

    asyncio.run(main())


# -- cancellation and exactly-once ----------------------------------------------------------------


def _batch(version: int) -> list[Op]:
    """One write of both keys at ``version``: each CAS paired with one event, so a half batch shows."""
    return [op for k in ("in1", "in2")
            for op in (Cas(k, version, QUEUED), Append(k, version - 1, (("Queue", {"v": version}),)))]


async def _consistent(store: PostgresStore) -> int:
    """The shared version of in1 and in2, after checking each log has exactly version - 1 events."""
    versions = {(await store.load(k)).version for k in ("in1", "in2")}
    assert len(versions) == 1, versions
    (version,) = versions
    for k in ("in1", "in2"):
        assert [e.seq for e in await store.read_log(k)] == list(range(1, version))
    return version


@pytest.mark.slow
def test_cancelled_writes_leave_the_store_usable_and_apply_once(postgres_dsn: str) -> None:
    """Cancel a batch at a random moment (half the time while another connection holds its row lock),
    then re-submit it by id: it applies exactly once, the store's connection is idle and holds no lock."""
    rng = random.Random(20261130)
    trials = 240

    async def body(store: PostgresStore, admin: Any) -> None:
        for k in ("in1", "in2"):
            await store.cas(k, 0, Input(), machine="input")
        pid = store._conn.get_server_pid()
        outcomes = {"cancelled while locked out": 0, "cancelled": 0, "finished": 0}
        for trial in range(trials):
            version = await _consistent(store)
            ops = _batch(version)
            held = trial % 2 == 0
            if held:
                await admin.execute("BEGIN")
                await admin.execute("SELECT 1 FROM statewright.instances WHERE key = 'in2' FOR UPDATE")
            task = asyncio.ensure_future(store.commit(ops, batch=batch_id(ops)))
            await asyncio.sleep(rng.uniform(0, 0.004))
            task.cancel()
            try:
                await task
                outcomes["finished"] += 1
            except asyncio.CancelledError:
                outcomes["cancelled while locked out" if held else "cancelled"] += 1
            if held:
                assert await _consistent(store) == version  # it never got the lock, so nothing was written
                await admin.execute("ROLLBACK")
            # idle, and no lock left: another connection takes both rows at once
            assert await admin.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid) == "idle"
            async with admin.transaction():
                locked = await admin.fetch(
                    "SELECT key FROM statewright.instances ORDER BY key FOR UPDATE NOWAIT")
                assert [k for (k,) in locked] == ["in1", "in2"]
            await store.commit(ops, batch=batch_id(ops))  # re-submitted: applied now, or recognised
            assert await _consistent(store) == version + 1
        assert await _consistent(store) == 1 + trials
        assert outcomes["cancelled while locked out"] == trials // 2
        assert outcomes["cancelled"] > 0 and outcomes["finished"] > 0, outcomes
        # and another connection writes too
        async with await PostgresStore.open(postgres_dsn, CATALOG) as other:
            await other.commit(_batch(1 + trials))
        assert await _consistent(store) == 2 + trials

    pg_test(postgres_dsn, body, busy_timeout=5.0)


def test_concurrent_resubmissions_of_one_batch_apply_once(postgres_dsn: str) -> None:
    async def main() -> None:
        stores = [await PostgresStore.open(postgres_dsn, CATALOG) for _ in range(3)]
        try:
            for k in ("in1", "in2"):
                await stores[0].cas(k, 0, Input(), machine="input")
            for version in range(1, 31):
                ops = _batch(version)
                results = await asyncio.gather(*(s.commit(ops, batch=batch_id(ops)) for s in stores),
                                               return_exceptions=True)
                assert results == [None, None, None]
                assert await _consistent(stores[0]) == version + 1
        finally:
            for s in stores:
                await s.close()

    asyncio.run(main())


# -- a server that refuses or goes away ----------------------------------------------------------


def test_a_read_only_database_refuses_writes(postgres_dsn: str) -> None:
    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await seed(store)
            before = await snapshot(store)
        admin = await asyncpg.connect(postgres_dsn)
        try:
            name = await admin.fetchval("SELECT current_database()")
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            await admin.close()
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            for write in (store.cas("in1", 1, QUEUED), store.commit(list(GOOD_OPS)),
                          store.cas("new", 0, QUEUED, machine="input")):
                with pytest.raises(ReadOnly) as info:
                    await write
                assert info.value.code == "read_only"
                one_line(info.value)
            assert await snapshot(store) == before

    asyncio.run(main())


def test_a_role_that_may_only_select_gets_permission_denied(postgres_dsn: str) -> None:
    """A SELECT-only role's write was ``store_error: permission denied``; SQLSTATE 42501 has a code of its own."""

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await seed(store)
            before = await snapshot(store)
        admin = await asyncpg.connect(postgres_dsn)
        role = "reader_" + str(await admin.fetchval("SELECT current_database()"))
        try:
            await admin.execute(f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA statewright TO {role};"
                                f"GRANT SELECT ON ALL TABLES IN SCHEMA statewright TO {role}")
            async with await PostgresStore.open(postgres_dsn.replace("statewright@", f"{role}@"), CATALOG) as store:
                assert await snapshot(store) == before  # it may read
                for write in (store.cas("in1", 1, QUEUED), store.commit(list(GOOD_OPS)),
                              store.cas("new", 0, QUEUED, machine="input"), store.append("in1", 2, [("x", {})])):
                    with pytest.raises(PermissionDenied) as info:
                        await write
                    assert info.value.code == "permission_denied" and not isinstance(info.value, ReadOnly)
                    assert "permission denied" in one_line(info.value)
                assert await snapshot(store) == before  # and still reads after each refusal
            await admin.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA statewright FROM {role}")
            with pytest.raises(PermissionDenied):  # a role that may not even read cannot open it
                await PostgresStore.open(postgres_dsn.replace("statewright@", f"{role}@"), CATALOG)
        finally:
            await admin.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
            await admin.close()

    asyncio.run(main())


def test_a_read_only_database_without_a_schema_cannot_be_opened(postgres_dsn: str) -> None:
    async def main() -> None:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            name = await admin.fetchval("SELECT current_database()")
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            await admin.close()
        with pytest.raises(ReadOnly):
            await PostgresStore.open(postgres_dsn, CATALOG)

    asyncio.run(main())


async def _terminate(admin: Any, store: PostgresStore) -> int:
    """End the store's server session from another connection, and wait until it is gone; its pid."""
    pid = int(store._conn.get_server_pid())
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(500):
        await admin.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction, the view is a snapshot
        if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            return pid
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} outlived pg_terminate_backend")


def test_a_killed_connection_is_replaced_by_a_new_one(postgres_dsn: str) -> None:
    """Killed between calls (each kind of call in turn): the next call reconnects, and reads or writes as asked."""

    async def body(store: PostgresStore, admin: Any) -> None:
        await seed(store)
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("load", lambda: store.load("in1")),
            ("read_log", lambda: store.read_log("in1")),
            ("log_head", lambda: store.log_head("in1")),
            ("keys", store.keys),
            ("cas", lambda: store.cas("in1", 1, QUEUED)),
            ("commit", lambda: store.commit([Cas("in1", 2, QUEUED), Append("in1", 2, (("Queue", {}),))])),
            ("receipt", lambda: store.receipt("nothing")),
        ]
        answers = {}
        for name, call in calls:
            pid = await _terminate(admin, store)
            answers[name] = await call()
            assert store._conn.get_server_pid() != pid, name
        assert answers["load"] == Record("in1", "input", Input(), 1)
        assert answers["log_head"] == (2, False) and answers["keys"] == ["in1", "in2", "run1"]
        assert answers["receipt"] is None
        assert await store.load("in1") == Record("in1", "input", QUEUED, 3)  # each write applied once
        assert [e.seq for e in await store.read_log("in1")] == [1, 2, 3]

    pg_test(postgres_dsn, body)


def test_a_write_whose_connection_dies_before_commit_is_run_again(postgres_dsn: str) -> None:
    """Killed mid-transaction, before COMMIT was sent: the server rolled it back, so the store runs it again, once."""

    async def body(store: PostgresStore, admin: Any) -> None:
        await seed(store)
        for n in range(1, 6):
            await admin.execute("BEGIN")
            await admin.execute("SELECT 1 FROM statewright.instances WHERE key = 'in1' FOR UPDATE")
            write = asyncio.ensure_future(store.commit([Cas("in1", n, QUEUED), Append("in1", n + 1, (("Tick", {}),))],
                                                       batch=f"b{n}"))
            while not await admin.fetchval(  # the store's transaction waits for our row lock
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = $1", store._conn.get_server_pid()):
                await asyncio.sleep(0.005)
            await _terminate(admin, store)
            await admin.execute("ROLLBACK")
            await write  # no error: run again on a new connection
            assert (await store.load("in1")).version == n + 1
        assert [e.seq for e in await store.read_log("in1")] == list(range(1, 8))

    pg_test(postgres_dsn, body)


@pytest.mark.slow
def test_a_stopped_server_is_io() -> None:
    try:
        server = _postgres.start()
    except _postgres.Unavailable as exc:
        if _postgres.required():
            pytest.fail(str(exc))
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        dsn = server.database()

        async def main() -> None:
            store = await PostgresStore.open(dsn, CATALOG)
            await seed(store)
            result = server.pg_ctl("stop", "-m", "fast", "-w")
            assert result.returncode == 0, result.stderr
            for call in (store.load("in1"), store.commit(list(GOOD_OPS)), store.read_log("in1")):
                with pytest.raises(Io) as info:
                    await call
                one_line(info.value)
            await store.close()  # closing what is gone does not raise
            with pytest.raises(Io) as opening:
                await PostgresStore.open(dsn, CATALOG)
            assert "cannot open the store" in one_line(opening.value)

        asyncio.run(main())
    finally:
        server.stop()


@pytest.mark.parametrize("form", ["url", "parameter"])
def test_a_missing_database_is_one_line_without_the_password(postgres_server: _postgres.Server, form: str) -> None:
    dsn = postgres_server.dsn("no_such_db")
    if form == "url":
        dsn = dsn.replace("statewright@", "statewright:hunter2@")
    else:
        dsn += "&password=hunter2"

    async def main() -> None:
        with pytest.raises(Io) as info:
            await PostgresStore.open(dsn, CATALOG)
        text = one_line(info.value)
        assert "no_such_db" in text and "does not exist" in text
        assert "hunter2" not in text and "hunter2" not in repr(info.value.args)

    asyncio.run(main())


def test_without_asyncpg_the_import_names_the_extra() -> None:
    code = ("import sys; sys.modules['asyncpg'] = None\n"
            "try:\n    import statewright.adapters.runtime.postgres\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "asyncpg" in out and "statewright[postgres]" in out


@pytest.mark.slow
def test_only_the_postgres_adapter_imports_asyncpg() -> None:
    root = Path(__file__).resolve().parents[2]
    importers = set()
    for layer in ("kernel", "machines", "specs", "adapters"):
        for path in (root / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "asyncpg" for n in names):
                    importers.add(str(path.relative_to(root)))
    assert importers == {"adapters/runtime/postgres.py"}


def test_without_binaries_the_server_is_unavailable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_postgres, "binaries", lambda: None)
    with pytest.raises(_postgres.Unavailable) as info:
        _postgres.start()
    assert "PostgreSQL not found" in str(info.value) and "\n" not in str(info.value)


def test_the_old_name_of_the_reader_still_works_for_one_release_and_warns() -> None:
    """``Snapshot`` is the kernel's (state, version) copy; the read-only view of a database is `PostgresReader`."""
    from statewright.adapters.runtime import postgres

    with pytest.warns(DeprecationWarning, match="runtime.postgres.Snapshot is renamed PostgresReader"):
        assert postgres.Snapshot is postgres.PostgresReader
    assert "Snapshot" not in postgres.__all__ and "PostgresReader" in postgres.__all__
    with pytest.raises(AttributeError, match="has no attribute 'Snapshots'"):
        postgres.Snapshots  # noqa: B018


# -- values over what one statement can carry --------------------------------------------------

BIG = Catalog({"input": INPUT}, limits=Limits(max_record_bytes=2**31))  # limits raised past PostgreSQL's own


def test_a_value_over_the_statement_ceiling_is_refused_before_it_is_sent(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1.1 GB append answered Io and killed the store; the ceiling, lowered here, is checked before sending."""
    monkeypatch.setattr(postgres_module, "MAX_STATEMENT_BYTES", 100_000)

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, BIG) as store:
            await store.cas("in1", 0, Input(), machine="input")
            before = await snapshot(store)
            for write in (store.append("in1", 0, [("input", {"blob": "x" * 100_000})]),
                          store.append_terminal("in1", "terminal", {"blob": "é" * 50_000}),
                          store.cas("in1", 1, Input(run_id="r" * 100_000)),
                          store.cas("in2", 0, Input(run_id="r" * 100_000), machine="input")):
                with pytest.raises(InvalidState, match=r"over PostgreSQL's limit of 100,000 bytes for one statement"):
                    await write
                assert await snapshot(store) == before
            # under the ceiling one by one, over it together: several statements, one transaction
            events = [("input", {"blob": str(i) * 30_000}) for i in range(10)]
            assert await store.append("in1", 0, events) == 10
            assert [e.data["blob"][0] for e in await store.read_log("in1")] == [str(i) for i in range(10)]
            await store.commit([Cas(f"k{i}", 0, Input(run_id=str(i) * 30_000), machine="input") for i in range(10)])
            assert [(await store.load(f"k{i}")).state.run_id[0] for i in range(10)] == [str(i) for i in range(10)]

    asyncio.run(main())


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


@pytest.mark.slow
@pytest.mark.skipif(_available_memory() < 6 * 2**30, reason="needs about 4 GiB of memory free (3.3 GiB measured)")
def test_a_real_gigabyte_append_is_refused_and_the_store_stays_usable(postgres_dsn: str) -> None:
    """The attack as it was made: one 1.1 GB event, limits raised; the server must never see it."""

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, BIG) as store:
            await store.cas("in1", 0, Input(), machine="input")
            with pytest.raises(InvalidState, match="over PostgreSQL's limit"):
                await store.append("in1", 0, [("input", {"blob": "x" * 1_100_000_000})])
            assert await store.append("in1", 0, [("input", {"ok": 1})]) == 1  # the connection is still alive

    asyncio.run(main())
