"""`PostgresArtifacts`: the artifact store port (`artifacts`) in PostgreSQL, beside a `PostgresStore`'s tables.

The same two tables as `artifacts_sqlite`, in the store's schema (default
``statewright``), created on first open in one transaction under an advisory
lock (processes opening one database at once create them once)::

    artifacts(id PRIMARY KEY, kind, size, created, blob)
    artifact_chunks(blob, n, bytes bytea, PRIMARY KEY (blob, n))

and the same protocol: chunks staged under a fresh random ``blob`` key,
each in its own short statement, then one transaction that inserts the row
(``ON CONFLICT DO NOTHING``: when the same bytes were put first by someone
else, by this process or another, the row stays theirs and the staged chunks
are deleted in that transaction). A failed or cancelled put deletes what it
staged; a killed one leaves chunks no row points at, which
`PostgresArtifacts.sweep` removes. The database is opened as a store first
(`PostgresStore.open` with an empty catalog), so a schema that is someone
else's is refused with `NotAStore`. Errors pass through the store's own
boundary (`postgres._mapped`, by SQLSTATE): a full disk `Full`, a read-only
server `ReadOnly`, a lost connection `Io`, a lock wait past ``busy_timeout`` `Busy`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from statewright.adapters.runtime.artifacts import CHUNK, ArtifactId, StagedArtifacts
from statewright.adapters.runtime.errors import BadInput, BadOption, IncompatibleSchema
from statewright.adapters.runtime.postgres import (
    DEFAULT_SCHEMA,
    PostgresStore,
    _connect,
    _mapped,
    _NAME,
    _redact,
)
from statewright.adapters.runtime.shielded import shielded
from statewright.adapters.runtime.store import Catalog

__all__ = ["PostgresArtifacts"]

T = TypeVar("T")
COLUMNS = {"artifacts": ["id", "kind", "size", "created", "blob"], "artifact_chunks": ["blob", "n", "bytes"]}


class PostgresArtifacts(StagedArtifacts):
    """An `artifacts.ArtifactStore` in a PostgreSQL database (one connection; the examples need a server:
    ``tests/adapters/test_artifacts.py``)."""

    def __init__(self, conn: Any, schema: str, where: str, *, chunk: int, clock: Callable[[], float]) -> None:
        """Use `PostgresArtifacts.open`."""
        self._conn = conn
        self._s = f'"{schema}"'
        self._schema = schema
        self._where = where
        self._chunk = chunk
        self._clock = clock
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, dsn: str, *, schema: str = DEFAULT_SCHEMA, chunk: int = CHUNK, busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> PostgresArtifacts:
        """Connect to ``dsn`` and return the artifacts of the store in ``schema``, creating what is missing."""
        if not (isinstance(chunk, int) and chunk > 0):
            raise BadInput(f"chunk must be a positive number of bytes, got {chunk!r}")
        if not _NAME.fullmatch(schema):
            raise BadOption(f"schema name {schema!r} is not a plain lower-case identifier")
        await (await PostgresStore.open(dsn, Catalog({}), schema=schema, busy_timeout=busy_timeout)).close()
        where = f"artifacts of {_redact(dsn)}"
        conn = await _connect(dsn, where, busy_timeout)
        self = cls(conn, schema, where, chunk=chunk, clock=clock)
        try:
            await self._transaction(self._create)
        except BaseException:
            conn.terminate()
            raise
        return self

    async def _create(self) -> None:
        s = self._s
        await self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('statewright artifacts ' || $1))", self._schema)
        await self._conn.execute(f"""CREATE TABLE IF NOT EXISTS {s}.artifacts (
            id text PRIMARY KEY, kind text NOT NULL, size bigint NOT NULL, created double precision NOT NULL,
            blob text NOT NULL)""")
        await self._conn.execute(f"""CREATE TABLE IF NOT EXISTS {s}.artifact_chunks (
            blob text NOT NULL, n integer NOT NULL, bytes bytea NOT NULL, PRIMARY KEY (blob, n))""")
        rows = await self._conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1 "
            "AND table_name = ANY($2::text[]) ORDER BY table_name, ordinal_position", self._schema, list(COLUMNS))
        found: dict[str, list[str]] = {}
        for table, column in rows:
            found.setdefault(str(table), []).append(str(column))
        for table, columns in COLUMNS.items():
            if found.get(table) != columns:
                raise IncompatibleSchema(f"{self._where}: table {table} has columns {', '.join(found.get(table, []))}, "
                                         f"not {', '.join(columns)}")

    async def close(self) -> None:
        if not self._conn.is_closed():
            with _mapped(None, self._where):
                await self._conn.close()

    async def sweep(self) -> int:
        """Delete chunks no artifact points at (a killed put's); returns how many. Not while puts are running."""
        async def delete() -> int:
            status = await self._conn.execute(
                f"DELETE FROM {self._s}.artifact_chunks WHERE blob NOT IN (SELECT blob FROM {self._s}.artifacts)")
            return int(status.rsplit(" ", 1)[-1])

        return await self._transaction(delete)

    # -- the SQL of `StagedArtifacts` ---------------------------------------------

    async def _stage(self, blob: str, n: int, chunk: bytes) -> None:
        await self._run(f"INSERT INTO {self._s}.artifact_chunks (blob, n, bytes) VALUES ($1, $2, $3)", blob, n, chunk)

    async def _publish(self, id: ArtifactId, kind: str, size: int, created: float, blob: str) -> None:
        s = self._s
        status = await self._conn.execute(
            f"INSERT INTO {s}.artifacts (id, kind, size, created, blob) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (id) DO NOTHING", id, kind, size, created, blob)
        if status.rsplit(" ", 1)[-1] != "1":  # the same bytes were already there
            await self._conn.execute(f"DELETE FROM {s}.artifact_chunks WHERE blob = $1", blob)

    async def _drop(self, blob: str) -> None:
        await self._run(f"DELETE FROM {self._s}.artifact_chunks WHERE blob = $1 "
                        f"AND blob NOT IN (SELECT blob FROM {self._s}.artifacts)", blob)

    async def _chunk_at(self, blob: str, n: int) -> bytes | None:
        row = await self._one(f"SELECT bytes FROM {self._s}.artifact_chunks WHERE blob = $1 AND n = $2", blob, n)
        return None if row is None else bytes(row[0])

    async def _artifact_row(self, id: ArtifactId) -> Any:
        return await self._one(f"SELECT kind, size, created, blob FROM {self._s}.artifacts WHERE id = $1", id)

    # -- plumbing ---------------------------------------------------------------

    async def _run(self, sql: str, *args: Any) -> None:
        async with self._lock:
            with _mapped(None, self._where, self._conn):
                await self._conn.execute(sql, *args)

    async def _one(self, sql: str, *args: Any) -> Any:
        async with self._lock:
            with _mapped(None, self._where, self._conn):
                return await self._conn.fetchrow(sql, *args)

    async def _transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        """``BEGIN`` .. ``COMMIT`` around ``body``, as a task the caller's cancellation lets finish."""
        async def run() -> T:
            async with self._lock:
                with _mapped(None, self._where, self._conn):
                    async with self._conn.transaction():
                        return await body()

        return await shielded(run)
