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
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from statewright.adapters.runtime.artifacts import (
    CHUNK,
    ArtifactId,
    ArtifactInfo,
    Data,
    Hasher,
    Kind,
    artifact_id,
    chunks_of,
    kind_from_text,
    kind_text,
    not_found,
    read_all,
    verified,
)
from statewright.adapters.runtime.errors import BadInput, Corrupt, IncompatibleSchema
from statewright.adapters.runtime.shielded import settle
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


class SqliteArtifacts:
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

    async def __aenter__(self) -> SqliteArtifacts:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._db.close()

    # -- writes -----------------------------------------------------------------

    async def put(self, kind: Kind, data: Data) -> ArtifactId:
        text = kind_text(kind)
        blob = secrets.token_hex(16)
        hasher = Hasher()
        try:
            async for chunk in chunks_of(data, self._chunk):
                n = hasher.size // self._chunk
                hasher.update(chunk)
                await self._shielded(self._run, "INSERT INTO artifact_chunks (blob, n, bytes) VALUES (?, ?, ?)",
                                     (blob, n, chunk))
            id = hasher.id
            size = hasher.size

            async def publish() -> None:
                async with self._db.execute(
                    "INSERT OR IGNORE INTO artifacts (id, kind, size, created, blob) VALUES (?, ?, ?, ?, ?)",
                    (id, text, size, float(self._clock()), blob),
                ) as cur:
                    added = cur.rowcount
                if added != 1:  # the same bytes were already there: ours are not needed
                    await self._db.execute("DELETE FROM artifact_chunks WHERE blob = ?", (blob,))

            await self._transaction(publish)
            return id
        except BaseException:
            await self._discard(blob)
            raise

    async def sweep(self) -> int:
        """Delete chunks no artifact points at (a killed put's); returns how many. Not while puts are running."""
        async def delete() -> int:
            async with self._db.execute(
                "DELETE FROM artifact_chunks WHERE blob NOT IN (SELECT blob FROM artifacts)"
            ) as cur:
                return int(cur.rowcount)

        return await self._transaction(delete)

    async def _discard(self, blob: str) -> None:
        """Delete a failed put's staged chunks, even while the caller is being cancelled (best effort)."""
        try:
            await self._shielded(self._run, "DELETE FROM artifact_chunks WHERE blob = ? "
                                 "AND blob NOT IN (SELECT blob FROM artifacts)", (blob,))
        except Exception:
            pass  # nothing points at them: `sweep` takes them later

    async def _run(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self._lock, _mapped(None, self._where):
            await self._db.execute(sql, params)

    # -- reads ------------------------------------------------------------------

    async def get(self, id: str) -> bytes:
        return await read_all(self.stream(id))

    async def stream(self, id: str) -> AsyncIterator[bytes]:
        info, blob = await self._row(id)

        async def stored() -> AsyncIterator[bytes]:
            n = 0
            while True:
                row = await self._one("SELECT bytes FROM artifact_chunks WHERE blob = ? AND n = ?", (blob, n))
                if row is None:
                    return
                yield row[0]
                n += 1

        async for chunk in verified(info.id, info.size, stored()):
            yield chunk

    async def exists(self, id: str) -> bool:
        return await self._one("SELECT 1 FROM artifacts WHERE id = ?", (artifact_id(id),)) is not None

    async def stat(self, id: str) -> ArtifactInfo:
        return (await self._row(id))[0]

    async def _row(self, id: str) -> tuple[ArtifactInfo, str]:
        key = artifact_id(id)
        row = await self._one("SELECT kind, size, created, blob FROM artifacts WHERE id = ?", (key,))
        if row is None:
            raise not_found(key)
        kind, size, created, blob = row
        if type(size) is not int or not isinstance(created, (int, float)) or not isinstance(blob, str):
            raise Corrupt(f"artifact {key}'s row is garbled: size {size!r}, created {created!r}", key=key)
        return ArtifactInfo(key, kind_from_text(kind, key), size, float(created)), blob

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        async with self._lock, _mapped(None, self._where):
            async with self._db.execute(sql, params) as cur:
                return await cur.fetchone()

    # -- plumbing ---------------------------------------------------------------

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

        return await self._shielded(run)

    async def _shielded(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(*args)`` as a task a cancelled caller waits for before re-raising: the connection is never left mid-statement."""
        job = asyncio.ensure_future(fn(*args))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            await settle(job)
            raise
