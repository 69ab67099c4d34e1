"""The SQLite store's schema: versioned, checked before anything is written, files private to their owner."""

from __future__ import annotations

import asyncio
import re
import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from statewright.adapters.runtime.sqlite import SCHEMA_VERSION, SqliteStore
from statewright.adapters.runtime.store import (
    AlreadyApplied,
    MAX_KEEP_BATCHES,
    BadOption,
    Cas,
    Corrupt,
    IncompatibleSchema,
    NotAStore,
    Receipt,
    StoreError,
    canonical_json,
)
from statewright.machines.input import Input
from tests.adapters.test_store_contract import CATALOG, forgets_after_retention


def fingerprint(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.parent.iterdir())}


def opened(path: Path) -> SqliteStore:
    async def go() -> SqliteStore:
        store = await SqliteStore.open(path, CATALOG)
        await store.close()
        return store

    return asyncio.run(go())


def test_a_new_store_is_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def go() -> None:
        async with await SqliteStore.open(path, CATALOG) as store:
            await store.cas("in1", 0, Input(), machine="input")

    asyncio.run(go())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sibling in tmp_path.glob("s.db-*"):
        assert stat.S_IMODE(sibling.stat().st_mode) == 0o600, sibling.name
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_a_store_from_before_versioning_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    opened(path)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 0")
    raw.execute("DROP TABLE batches")
    raw.commit()
    raw.close()
    opened(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 4
    assert [r[1] for r in raw.execute("PRAGMA table_info(batches)")] == ["id", "at", "digest", "outcome"]
    assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'batches_at'").fetchone()[0] == 1


VERSION_1 = (  # the schema of statewright's first versioned release, as it wrote it
    "CREATE TABLE instances (key TEXT PRIMARY KEY, machine TEXT NOT NULL, state TEXT NOT NULL, version INTEGER NOT NULL)",
    "CREATE TABLE events (key TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, "
    "terminal INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, seq))",
    "CREATE UNIQUE INDEX events_one_terminal ON events(key) WHERE terminal = 1",
    "CREATE TABLE batches (id TEXT PRIMARY KEY) WITHOUT ROWID",
    "PRAGMA user_version = 1",
)


def test_a_version_1_store_is_upgraded_and_keeps_its_batch_ids(tmp_path: Path) -> None:
    """Version 1 recorded batch ids without their time: they gain one (the upgrade's) and still count."""
    path = tmp_path / "v1.db"
    raw = sqlite3.connect(path)
    for statement in VERSION_1:
        raw.execute(statement)
    raw.execute("INSERT INTO instances VALUES ('in1', 'input', ?, 1)", (canonical_json(Input()),))
    raw.execute("INSERT INTO batches VALUES ('old-batch')")
    raw.commit()
    raw.close()
    ops = [Cas("in1", 1, Input())]

    async def go() -> None:
        async with await SqliteStore.open(path, CATALOG, clock=lambda: 1_000_000.0) as store:
            await store.commit(ops, batch="old-batch")  # recorded before the upgrade: applies nothing
            assert (await store.load("in1")).version == 1

    asyncio.run(go())
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 4
    assert raw.execute("SELECT id, at, digest FROM batches").fetchall() == [("old-batch", 1_000_000, None)]


VERSION_2 = (  # the schema statewright wrote before batch ids kept their digest and outcome
    *VERSION_1[:3],
    "CREATE TABLE batches (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX batches_at ON batches(at)",
    "PRAGMA user_version = 2",
)


def test_a_version_2_store_is_upgraded_and_keeps_its_batch_ids(tmp_path: Path) -> None:
    """Version 2 recorded ids without their operations' digest: they stay, and still make a re-submission a no-op."""
    path = tmp_path / "v2.db"
    raw = sqlite3.connect(path)
    for statement in VERSION_2:
        raw.execute(statement)
    raw.execute("INSERT INTO instances VALUES ('in1', 'input', ?, 1)", (canonical_json(Input()),))
    raw.execute("INSERT INTO batches VALUES ('old-batch', 999000)")
    raw.commit()
    raw.close()

    async def go() -> None:
        async with await SqliteStore.open(path, CATALOG, clock=lambda: 1_000_000.0) as store:
            await store.commit([Cas("in1", 1, Input())], batch="old-batch")  # recorded before: applies nothing
            await store.commit([Cas("in1", 7, Input())], batch="old-batch")  # nor does any batch under it
            assert (await store.load("in1")).version == 1
            assert await store.receipt("old-batch") == Receipt("old-batch", None, None)
            await store.commit([Cas("in1", 1, Input())], batch="new-batch", outcome={"said": "yes"})
            with pytest.raises(AlreadyApplied) as info:  # a new id keeps its digest: other operations are refused
                await store.commit([Cas("in1", 2, Input())], batch="new-batch")
            assert info.value.receipt.outcome == {"said": "yes"} and info.value.code == "already_applied"
            assert (await store.load("in1")).version == 2

    asyncio.run(go())
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 4
    assert [r[1] for r in raw.execute("PRAGMA table_info(batches)")] == ["id", "at", "digest", "outcome"]
    rows = dict(raw.execute("SELECT id, at FROM batches").fetchall())
    assert rows == {"old-batch": 999_000, "new-batch": 1_000_000}


VERSION_3 = (  # the schema statewright wrote before the read side: events without position, time or bucket
    *VERSION_1[:3],
    "CREATE TABLE batches (id TEXT PRIMARY KEY, at INTEGER NOT NULL, digest TEXT, outcome TEXT) WITHOUT ROWID",
    "CREATE INDEX batches_at ON batches(at)",
    "PRAGMA user_version = 3",
)


def test_a_version_3_store_is_upgraded_and_its_events_take_positions_in_the_order_they_were_written(
        tmp_path: Path) -> None:
    """Version 3 had no read side: its events take positions 1, 2, ... in rowid order, dated at the upgrade."""
    from statewright.adapters.runtime.readside import bucket_of

    path = tmp_path / "v3.db"
    raw = sqlite3.connect(path)
    for statement in VERSION_3:
        raw.execute(statement)
    for key in ("in1", "in2"):
        raw.execute("INSERT INTO instances VALUES (?, 'input', ?, 1)", (key, canonical_json(Input()),))
    written = [("in2", 1), ("in1", 1), ("in2", 2), ("in1", 2)]  # interleaved: rowid order is not key order
    raw.executemany("INSERT INTO events VALUES (?, ?, 'Queue', '{}', 0)", written)
    raw.execute("INSERT INTO batches VALUES ('old-batch', 999000, 'abc', NULL)")
    raw.commit()
    raw.close()

    async def go() -> None:
        async with await SqliteStore.open(path, CATALOG, clock=lambda: 1_000_000.0) as store:
            assert await store.latest_cursor() == 4
            assert [(e.key, e.seq, e.position) for e in await store.replay_all()] == [
                (k, seq, i) for i, (k, seq) in enumerate(written, start=1)]
            await store.append("in1", 2, [("Stage", {"run_id": "r1"})])  # the counter goes on from 4
            assert [(e.seq, e.position) for e in await store.read_log("in1")] == [(1, 2), (2, 4), (3, 5)]
            assert (bucket_of("in1") % 4, bucket_of("in2") % 4) == (2, 0)
            assert [e.position for e in await store.read(0, partition=(0, 4))] == [1, 3]  # in2's, by bucket
            assert await store.receipt("old-batch") == Receipt("old-batch", "abc", None)

    asyncio.run(go())
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 4
    assert [r[1] for r in raw.execute("PRAGMA table_info(events)")] == [
        "key", "seq", "kind", "data", "terminal", "position", "at", "bucket"]
    assert raw.execute("SELECT DISTINCT at FROM events WHERE seq < 3").fetchall() == [(1_000_000,)]
    assert raw.execute("SELECT key, bucket FROM events WHERE seq = 1 ORDER BY key").fetchall() == [
        ("in1", bucket_of("in1")), ("in2", bucket_of("in2"))]
    assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events_position'").fetchone()[0] == 1
    assert raw.execute("SELECT last FROM positions").fetchall() == [(5,)]


def test_a_version_3_store_opened_read_only_is_refused_untouched(tmp_path: Path) -> None:
    """The upgrade writes; a read-only file of version 3 is refused (ReadOnly) byte for byte as it was."""
    path = tmp_path / "v3.db"
    raw = sqlite3.connect(path)
    for statement in VERSION_3:
        raw.execute(statement)
    raw.commit()
    raw.close()
    before = fingerprint(path)
    with pytest.raises(StoreError) as caught:
        opened(Path(f"file:{path}?mode=ro"))
    assert caught.value.code == "read_only"
    assert fingerprint(path) == before


def test_batch_ids_are_forgotten_after_their_retention(tmp_path: Path) -> None:
    now = [0.0]

    async def go() -> list[str]:
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG, keep_batches=100.0,
                                          clock=lambda: now[0]) as store:
            return await forgets_after_retention(store, now)

    kept = asyncio.run(go())
    raw = sqlite3.connect(tmp_path / "s.db")
    assert sorted(r[0] for r in raw.execute("SELECT id FROM batches")) == kept


def test_retention_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_batches must be a positive number of seconds"):
        asyncio.run(SqliteStore.open(tmp_path / "s.db", CATALOG, keep_batches=0))


BAD_KEEP = [0, -1.0, float("nan"), float("inf"), 1e300, MAX_KEEP_BATCHES * 2, True, "7d"]
BAD_TIMEOUT = [-1.0, float("nan"), float("inf"), 1e300, True, "5s"]


@pytest.mark.parametrize("option, value", [("keep_batches", v) for v in BAD_KEEP]
                         + [("busy_timeout", v) for v in BAD_TIMEOUT], ids=repr)
def test_an_option_no_store_can_honour_is_refused_before_the_file_is_made(
    tmp_path: Path, option: str, value: object
) -> None:
    """``keep_batches=inf`` was taken here and broke every PostgreSQL write: both backends refuse it at open."""
    path = tmp_path / "s.db"
    with pytest.raises(BadOption, match=f"^{option} must be ") as caught:
        asyncio.run(SqliteStore.open(path, CATALOG, **{option: value}))  # type: ignore[arg-type]
    assert caught.value.code == "bad_option" and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # refused before anything was created


def test_the_longest_retention_keeps_and_prunes_ids(tmp_path: Path) -> None:
    async def go() -> None:
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG, keep_batches=MAX_KEEP_BATCHES) as store:
            await store.cas("in1", 0, Input(), machine="input")
            await store.commit([Cas("in1", 1, Input())], batch="b1")  # the first recording prunes at once
            await store.commit([Cas("in1", 1, Input())], batch="b1")  # remembered: a no-op
            assert (await store.load("in1")).version == 2

    asyncio.run(go())


@pytest.mark.parametrize("case", ["newer", "foreign", "junk", "wrong_columns"])
def test_files_this_release_cannot_use_are_refused_untouched(tmp_path: Path, case: str) -> None:
    path = tmp_path / "x.db"
    expected: type[StoreError] = IncompatibleSchema
    if case == "newer":
        opened(path)
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA user_version = 99")
        raw.commit()
        raw.close()
        message = "schema version 99 is newer than this statewright's (4)"
    elif case == "foreign":
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE users (name TEXT)")
        raw.commit()
        raw.close()
        expected, message = NotAStore, "not a statewright store (it holds table users)"
    elif case == "junk":
        path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
        expected, message = NotAStore, "not a statewright store"
    else:
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE instances (key TEXT PRIMARY KEY, machine TEXT NOT NULL, state TEXT NOT NULL, "
                    "version INTEGER NOT NULL, owner TEXT NOT NULL)")
        raw.commit()
        raw.close()
        message = "table instances has columns key, machine, state, version, owner"
    before = fingerprint(path)
    with pytest.raises(expected, match=re.escape(message)) as caught:
        opened(path)
    assert caught.value.code in ("incompatible_schema", "not_a_store")
    assert fingerprint(path) == before  # no WAL switch, no tables, no new files


FOREIGN = {
    "a view": ["CREATE VIEW answer AS SELECT 42 AS n"],
    "views over nothing of ours": ["CREATE VIEW a AS SELECT 1", "CREATE VIEW b AS SELECT * FROM a"],
    "a view named like our table": ["CREATE VIEW instances AS SELECT 'k' AS key, 'm' AS machine, '{}' AS state, "
                                    "1 AS version"],
    "a table, an index and a trigger": ["CREATE TABLE t (a)", "CREATE INDEX t_a ON t(a)",
                                        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT 1; END"],
    "one of our tables beside another's": ["CREATE TABLE events (key TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT "
                                           "NOT NULL, data TEXT NOT NULL, terminal INTEGER NOT NULL DEFAULT 0, "
                                           "PRIMARY KEY (key, seq))", "CREATE VIEW v AS SELECT 1"],
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_database_of_anything_but_ours_is_refused_byte_for_byte_untouched(tmp_path: Path, case: str) -> None:
    """A database holding only views was switched to WAL and given our tables; any foreign object refuses it."""
    path = tmp_path / "theirs.db"
    raw = sqlite3.connect(path)
    for statement in FOREIGN[case]:
        raw.execute(statement)
    raw.commit()
    raw.close()
    before = fingerprint(path)
    with pytest.raises(NotAStore, match="not a statewright store") as caught:
        opened(path)
    assert caught.value.code == "not_a_store" and "\n" not in str(caught.value)
    assert fingerprint(path) == before  # byte for byte, still in its journal mode, and no -wal or -shm


def test_a_store_with_an_index_of_the_users_own_is_still_a_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    opened(path)
    raw = sqlite3.connect(path)
    raw.execute("CREATE INDEX events_kind ON events(kind)")
    raw.commit()
    raw.close()
    opened(path)


def test_two_terminal_events_in_a_log_are_corrupt_not_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    opened(path)
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX events_one_terminal")
    raw.executemany("INSERT INTO events VALUES ('in1', ?, 'x', '{}', 1, ?, 0, 0)", [(1, 1), (2, 2)])
    raw.commit()
    raw.close()
    with pytest.raises(Corrupt, match="a log has two terminal events"):
        opened(path)
