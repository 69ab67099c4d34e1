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
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

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
from statewright.adapters.runtime.errors import BadInput, BadOption, Corrupt, IncompatibleSchema
from statewright.adapters.runtime.postgres import (
    DEFAULT_SCHEMA,
    PostgresStore,
    _connect,
    _mapped,
    _NAME,
    _redact,
)
from statewright.adapters.runtime.shielded import settle
from statewright.adapters.runtime.store import Catalog

__all__ = ["PostgresArtifacts"]

T = TypeVar("T")
COLUMNS = {"artifacts": ["id", "kind", "size", "created", "blob"], "artifact_chunks": ["blob", "n", "bytes"]}


class PostgresArtifacts:
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

    async def __aenter__(self) -> PostgresArtifacts:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._conn.is_closed():
            with _mapped(None, self._where):
                await self._conn.close()

    # -- writes -----------------------------------------------------------------

    async def put(self, kind: Kind, data: Data) -> ArtifactId:
        text = kind_text(kind)
        blob = secrets.token_hex(16)
        hasher = Hasher()
        s = self._s
        try:
            async for chunk in chunks_of(data, self._chunk):
                n = hasher.size // self._chunk
                hasher.update(chunk)
                await self._shielded(self._run, f"INSERT INTO {s}.artifact_chunks (blob, n, bytes) VALUES ($1, $2, $3)",
                                     blob, n, chunk)
            id = hasher.id
            size = hasher.size

            async def publish() -> None:
                status = await self._conn.execute(
                    f"INSERT INTO {s}.artifacts (id, kind, size, created, blob) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (id) DO NOTHING", id, text, size, float(self._clock()), blob)
                if status.rsplit(" ", 1)[-1] != "1":  # the same bytes were already there
                    await self._conn.execute(f"DELETE FROM {s}.artifact_chunks WHERE blob = $1", blob)

            await self._transaction(publish)
            return id
        except BaseException:
            await self._discard(blob)
            raise

    async def sweep(self) -> int:
        """Delete chunks no artifact points at (a killed put's); returns how many. Not while puts are running."""
        async def delete() -> int:
            status = await self._conn.execute(
                f"DELETE FROM {self._s}.artifact_chunks WHERE blob NOT IN (SELECT blob FROM {self._s}.artifacts)")
            return int(status.rsplit(" ", 1)[-1])

        return await self._transaction(delete)

    async def _discard(self, blob: str) -> None:
        try:
            await self._shielded(self._run, f"DELETE FROM {self._s}.artifact_chunks WHERE blob = $1 "
                                 f"AND blob NOT IN (SELECT blob FROM {self._s}.artifacts)", blob)
        except Exception:
            pass  # nothing points at them: `sweep` takes them later

    async def _run(self, sql: str, *args: Any) -> None:
        async with self._lock:
            with _mapped(None, self._where, self._conn):
                await self._conn.execute(sql, *args)

    # -- reads ------------------------------------------------------------------

    async def get(self, id: str) -> bytes:
        return await read_all(self.stream(id))

    async def stream(self, id: str) -> AsyncIterator[bytes]:
        info, blob = await self._row(id)

        async def stored() -> AsyncIterator[bytes]:
            n = 0
            while True:
                row = await self._one(f"SELECT bytes FROM {self._s}.artifact_chunks WHERE blob = $1 AND n = $2",
                                      blob, n)
                if row is None:
                    return
                yield bytes(row[0])
                n += 1

        async for chunk in verified(info.id, info.size, stored()):
            yield chunk

    async def exists(self, id: str) -> bool:
        return await self._one(f"SELECT 1 FROM {self._s}.artifacts WHERE id = $1", artifact_id(id)) is not None

    async def stat(self, id: str) -> ArtifactInfo:
        return (await self._row(id))[0]

    async def _row(self, id: str) -> tuple[ArtifactInfo, str]:
        key = artifact_id(id)
        row = await self._one(f"SELECT kind, size, created, blob FROM {self._s}.artifacts WHERE id = $1", key)
        if row is None:
            raise not_found(key)
        kind, size, created, blob = row
        if type(size) is not int or not isinstance(created, float) or not isinstance(blob, str):
            raise Corrupt(f"artifact {key}'s row is garbled: size {size!r}, created {created!r}", key=key)
        return ArtifactInfo(key, kind_from_text(kind, key), size, created), blob

    async def _one(self, sql: str, *args: Any) -> Any:
        async with self._lock:
            with _mapped(None, self._where, self._conn):
                return await self._conn.fetchrow(sql, *args)

    # -- plumbing ---------------------------------------------------------------

    async def _transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        """``BEGIN`` .. ``COMMIT`` around ``body``, as a task the caller's cancellation lets finish."""
        async def run() -> T:
            async with self._lock:
                with _mapped(None, self._where, self._conn):
                    async with self._conn.transaction():
                        return await body()

        return await self._shielded(run)

    async def _shielded(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        job = asyncio.ensure_future(fn(*args))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            await settle(job)
            raise
