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
from statewright.adapters.runtime.store import Corrupt, IncompatibleSchema, NotAStore, StoreError
from statewright.machines.input import Input
from tests.adapters.test_store_contract import CATALOG


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
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1


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
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'batches'").fetchone()[0] == 1


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
        message = "schema version 99 is newer than this statewright's (1)"
    elif case == "foreign":
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE users (name TEXT)")
        raw.commit()
        raw.close()
        expected, message = NotAStore, "not a statewright store (it holds users)"
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


def test_two_terminal_events_in_a_log_are_corrupt_not_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    opened(path)
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX events_one_terminal")
    raw.executemany("INSERT INTO events VALUES ('in1', ?, 'x', '{}', 1)", [(1,), (2,)])
    raw.commit()
    raw.close()
    with pytest.raises(Corrupt, match="a log has two terminal events"):
        opened(path)
