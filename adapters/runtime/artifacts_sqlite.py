"""`SqliteArtifacts`: the artifact store port (`artifacts`) in a SQLite file, beside a `SqliteStore`'s tables.

Two tables of its own, created on first open in one transaction::

    artifacts(id PRIMARY KEY, kind, size, created, blob)   -- one row per visible artifact
    artifact_chunks(blob, n, bytes, PRIMARY KEY (blob, n)) -- its bytes, CHUNK at a time

An artifact's chunks are written under ``blob``, a fresh random key, each in
its own short transaction (so a large put never holds SQLite's one write lock
for long, and the store's own writers interleave); the ``artifacts`` row that
points at them is inserted in one last transaction -- ``INSERT OR IGNORE``,
so when the same bytes are already there (a second put, or another process
that got there first) the row stays as it was and the staged chunks are
deleted in that same transaction. A put that fails or is cancelled deletes
its staged chunks on its way out; chunks a killed process staged are never
visible (no row points at them) and `SqliteArtifacts.sweep` removes them.

The file is opened as a store first (`SqliteStore.open` with an empty
catalog, then closed), so it holds a store's schema, and a file that is
someone else's database is refused with `NotAStore` before anything is
written. Errors pass through the store's own boundary (`sqlite._mapped`):
``SQLITE_FULL`` is `Full`, a read-only file `ReadOnly`, I/O errors `Io`, a
locked file past ``busy_timeout`` `Busy`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from statewright.adapters.runtime.artifacts import CHUNK, ArtifactId, StagedArtifacts
from statewright.adapters.runtime.errors import BadInput, IncompatibleSchema
from statewright.adapters.runtime.shielded import shielded
from statewright.adapters.runtime.sqlite import SqliteStore, _mapped
from statewright.adapters.runtime.store import Catalog

__all__ = ["SCHEMA", "SqliteArtifacts"]

T = TypeVar("T")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS artifacts (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, blob TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS artifact_chunks (
        blob TEXT NOT NULL, n INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (blob, n)
    )""",
)
COLUMNS = {"artifacts": ("id", "kind", "size", "created", "blob"), "artifact_chunks": ("blob", "n", "bytes")}


class SqliteArtifacts(StagedArtifacts):
    """An `artifacts.ArtifactStore` in a SQLite file (its own connection; the file may hold a `SqliteStore` too).

    >>> import asyncio, tempfile, pathlib
    >>> from statewright.adapters.runtime.artifacts import ArtifactKind
    >>> async def demo(path):
    ...     async with await SqliteArtifacts.open(path) as artifacts:
    ...         id = await artifacts.put(ArtifactKind.MANIFEST, iter([b'{"steps"', b":[]}"]))
    ...         return await artifacts.get(id), await artifacts.exists(id)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     asyncio.run(demo(pathlib.Path(d) / "s.db"))
    (b'{"steps":[]}', True)
    """

    _created_types = (int, float)  # a REAL column gives back an int for a whole number of seconds

    def __init__(self, db: aiosqlite.Connection, where: str, *, chunk: int, clock: Callable[[], float]) -> None:
        """Use `SqliteArtifacts.open`."""
        self._db = db
        self._where = where
        self._chunk = chunk
        self._clock = clock
        self._lock = asyncio.Lock()  # one transaction at a time on the one connection

    @classmethod
    async def open(
        cls, path: str | Path, *, chunk: int = CHUNK, busy_timeout: float = 5.0, clock: Callable[[], float] = time.time,
    ) -> SqliteArtifacts:
        """Open the artifacts of the store at ``path`` (creating the file, the store's and the artifacts' tables)."""
        if not (isinstance(chunk, int) and chunk > 0):
            raise BadInput(f"chunk must be a positive number of bytes, got {chunk!r}")
        await (await SqliteStore.open(path, Catalog({}), busy_timeout=busy_timeout)).close()
        where = f"artifacts of {path}"
        connecting = aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        connecting._thread.daemon = True  # as the store's: an unclosed one must not keep the interpreter from exiting
        async with _mapped(None, where, opening=True):
            db = await connecting
        self = cls(db, where, chunk=chunk, clock=clock)
        try:
            async with _mapped(None, where, opening=True):
                await db.execute(f"PRAGMA busy_timeout = {max(0, round(busy_timeout * 1000))}")
            await self._transaction(self._create)
        except BaseException:
            await db.close()
            raise
        return self

    async def _create(self) -> None:
        for statement in SCHEMA:
            await self._db.execute(statement)
        for table, columns in COLUMNS.items():
            async with self._db.execute(f"PRAGMA table_info({table})") as cur:
                found = tuple(str(r[1]) for r in await cur.fetchall())
            if found != columns:
                raise IncompatibleSchema(f"{self._where}: table {table} has columns {', '.join(found)}, "
                                         f"not {', '.join(columns)}")

    async def close(self) -> None:
        await self._db.close()

    async def sweep(self) -> int:
        """Delete chunks no artifact points at (a killed put's); returns how many. Not while puts are running."""
        async def delete() -> int:
            async with self._db.execute(
                "DELETE FROM artifact_chunks WHERE blob NOT IN (SELECT blob FROM artifacts)"
            ) as cur:
                return int(cur.rowcount)

        return await self._transaction(delete)

    # -- the SQL of `StagedArtifacts` ---------------------------------------------

    async def _stage(self, blob: str, n: int, chunk: bytes) -> None:
        await self._run("INSERT INTO artifact_chunks (blob, n, bytes) VALUES (?, ?, ?)", (blob, n, chunk))

    async def _publish(self, id: ArtifactId, kind: str, size: int, created: float, blob: str) -> None:
        async with self._db.execute(
            "INSERT OR IGNORE INTO artifacts (id, kind, size, created, blob) VALUES (?, ?, ?, ?, ?)",
            (id, kind, size, created, blob),
        ) as cur:
            added = cur.rowcount
        if added != 1:  # the same bytes were already there: ours are not needed
            await self._db.execute("DELETE FROM artifact_chunks WHERE blob = ?", (blob,))

    async def _drop(self, blob: str) -> None:
        await self._run("DELETE FROM artifact_chunks WHERE blob = ? AND blob NOT IN (SELECT blob FROM artifacts)",
                        (blob,))

    async def _chunk_at(self, blob: str, n: int) -> bytes | None:
        row = await self._one("SELECT bytes FROM artifact_chunks WHERE blob = ? AND n = ?", (blob, n))
        return None if row is None else row[0]

    async def _artifact_row(self, id: ArtifactId) -> Any:
        return await self._one("SELECT kind, size, created, blob FROM artifacts WHERE id = ?", (id,))

    # -- plumbing ---------------------------------------------------------------

    async def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self._lock, _mapped(None, self._where):
            await self._db.execute(sql, params)

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        async with self._lock, _mapped(None, self._where):
            async with self._db.execute(sql, params) as cur:
                return await cur.fetchone()

    async def _transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        """``BEGIN IMMEDIATE`` .. ``COMMIT`` around ``body``, as a task the caller's cancellation lets finish."""
        async def run() -> T:
            async with self._lock, _mapped(None, self._where):
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    out = await body()
                    await self._db.execute("COMMIT")
                    return out
                except BaseException:
                    if self._db.in_transaction:
                        try:
                            await self._db.execute("ROLLBACK")
                        except sqlite3.Error:
                            pass
                    raise

        return await shielded(run)
