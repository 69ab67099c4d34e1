"""`SqliteStore`: the store port on SQLite (aiosqlite), the embedded default.

Theory of operation
-------------------
One connection per store, in WAL mode so readers never wait for the writer,
opened with ``isolation_level=None`` so the module, not the driver, decides
where transactions begin and end. Every write starts with ``BEGIN IMMEDIATE``:
the write lock is taken up front, so two writers never both read and then
race to upgrade (the deferred-transaction deadlock SQLite answers with an
instant ``SQLITE_BUSY``). A writer that cannot get the lock waits up to
``busy_timeout`` seconds and then fails with `Busy`, never with `Conflict`.

Three tables hold everything::

    instances(key PRIMARY KEY, machine, state, version)
    events(key, seq, kind, data, terminal, PRIMARY KEY (key, seq))
    UNIQUE INDEX events_one_terminal ON events(key) WHERE terminal = 1
    batches(id PRIMARY KEY)  -- ids of committed batches, written in their transaction

so "one terminal event per instance" is a fact the database enforces, not
only a check this module makes. States are written as `Catalog.dump`'s
canonical JSON and read back through `Catalog.load`; event data through
`canonical_json`. Validation and serialisation happen before the write lock
is taken, so an invalid state or a float in an event costs no SQL; the one
exception is a `Cas` that names no machine, whose machine is read from its
row inside the transaction and validated there, before anything is written.

A batch (`commit`) is one transaction: the operations run in order, each
seeing the ones before it, and any failure rolls the whole batch back. An
`asyncio.Lock` keeps other tasks' statements out of an open transaction.

Cancellation
------------
aiosqlite runs a queued statement even after the task awaiting it was
cancelled, so a transaction driven statement by statement from asyncio can
be left open (holding the write lock, refusing the next ``BEGIN``) by a
cancellation. Here every write transaction -- ``BEGIN IMMEDIATE`` through
``COMMIT`` or ``ROLLBACK`` -- runs as ONE task shielded from the caller
(`asyncio.shield`), entered inside its own guarded region. A cancelled caller
flags the task and waits for it: still waiting for the lock, or not yet at
``COMMIT``, it rolls back; past that it commits. Only then does the caller see `CancelledError`, with the
connection idle and holding no lock. The lock wait is our own 5 ms poll
(SQLite's busy handler cannot be interrupted), bounded by ``busy_timeout``.
Whether a cancelled write committed is unknown to its caller; re-submitting
it with the same ``batch`` id (`BatchStore`) settles it exactly once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Busy,
    Cas,
    Catalog,
    Conflict,
    Corrupt,
    Event,
    IncompatibleSchema,
    InvalidState,
    NotAStore,
    NotFound,
    Op,
    Record,
    StoreError,
    decode_event,
    prepare,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = 1
"""The store's schema, in the file's ``PRAGMA user_version``.

A release that changes the schema bumps it and upgrades older files in `SqliteStore.open`, in
one transaction, before anything else touches them (version 0 -- files written before the
schema was versioned -- becomes 1 by gaining the ``batches`` table); a file whose version is
newer than the release's is refused with `IncompatibleSchema` and not touched.
"""
COLUMNS = {
    "instances": ("key", "machine", "state", "version"),
    "events": ("key", "seq", "kind", "data", "terminal"),
}
"""The columns each table must have, exactly: a table of another shape is another schema."""

T = TypeVar("T")
_POLL = 0.005  # seconds between tries for the write lock; also how soon a cancelled waiter gives up

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS instances (
        key TEXT PRIMARY KEY,
        machine TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        terminal INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key, seq)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_one_terminal ON events(key) WHERE terminal = 1",
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY) WITHOUT ROWID",
)


async def _check_schema(db: aiosqlite.Connection, path: str | Path) -> None:
    """Refuse a file that is not a store of a schema this release reads, without writing to it."""
    try:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
            tables = {str(r[0]) for r in await cur.fetchall()}
        shapes = {}
        for table in COLUMNS:
            if table in tables:
                async with db.execute(f"PRAGMA table_info({table})") as cur:
                    shapes[table] = tuple(str(r[1]) for r in await cur.fetchall())
    except sqlite3.DatabaseError as exc:
        raise NotAStore(f"{path}: not a statewright store ({exc})") from None
    if version > SCHEMA_VERSION:
        raise IncompatibleSchema(
            f"{path}: schema version {version} is newer than this statewright's ({SCHEMA_VERSION}); upgrade statewright"
        )
    if tables and "instances" not in tables:
        raise NotAStore(f"{path}: not a statewright store (it holds {', '.join(sorted(tables))})")
    for table, columns in shapes.items():
        if columns != COLUMNS[table]:
            raise IncompatibleSchema(
                f"{path}: table {table} has columns {', '.join(columns)}, not {', '.join(COLUMNS[table])}"
            )


class SqliteStore:
    """An `adapters.runtime.store.Store` in one SQLite file.

    >>> import asyncio, tempfile, pathlib
    >>> from statewright.machines.input import INPUT, Input, authorize_seed
    >>> async def demo(path):
    ...     async with await SqliteStore.open(path, Catalog({"input": INPUT}, {"input": authorize_seed})) as store:
    ...         await store.cas("in1", 0, Input(), machine="input")
    ...         return (await store.load("in1")).version
    >>> with tempfile.TemporaryDirectory() as d:
    ...     asyncio.run(demo(pathlib.Path(d) / "s.db"))
    1
    """

    def __init__(self, db: aiosqlite.Connection, catalog: Catalog, *, busy_timeout: float = 5.0) -> None:
        """Use `SqliteStore.open`; this wraps a connection already set up by it."""
        self.catalog = catalog
        self._db = db
        self._busy_timeout = busy_timeout
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: str | Path, catalog: Catalog, *, busy_timeout: float = 5.0
    ) -> SqliteStore:
        """Open (creating if needed) the store at ``path``: WAL mode, busy timeout, schema.

        A new file is created readable by its owner only (0600; SQLite gives its
        ``-wal`` and ``-shm`` files the same mode). A file that is not a database,
        or holds other tables and none of ours, raises `NotAStore`; a newer schema
        version or a table of another shape raises `IncompatibleSchema` -- both
        before the file is switched to WAL or written in any way.
        """
        if str(path) != ":memory:" and not str(path).startswith("file:"):
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"{path}: cannot create the store: {exc.strerror or exc}") from None
        db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        try:
            await db.execute(f"PRAGMA busy_timeout = {_millis(busy_timeout)}")
            await _check_schema(db, path)
            async with db.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            mode = str(row[0]).lower() if row else ""
            if mode not in ("wal", "memory"):  # "memory": a ":memory:" database cannot use WAL
                raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode!r})")
            store = cls(db, catalog, busy_timeout=busy_timeout)

            async def schema() -> None:
                for statement in SCHEMA:
                    try:
                        await db.execute(statement)
                    except sqlite3.IntegrityError as exc:  # the one-terminal index over a log with two
                        raise Corrupt(f"{path}: a log has two terminal events ({exc})") from None
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

            await store._guarded(None, schema)
            return store
        except BaseException:
            await db.close()
            raise

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- reads ------------------------------------------------------------------

    async def load(self, key: str) -> Record:
        async with self._lock, _mapped(key):
            row = await self._one("SELECT machine, state, version FROM instances WHERE key = ?", (key,))
        if row is None:
            raise NotFound(f"no instance {key!r}", key=key)
        machine, text, version = row
        return Record(key, machine, self._decode_state(key, machine, text), version)

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        sql = "SELECT seq, kind, data, terminal FROM events WHERE key = ? AND seq >= ?"
        params: tuple[Any, ...] = (key, start)
        if stop is not None:
            sql += " AND seq < ?"
            params += (stop,)
        async with self._lock, _mapped(key):
            rows = await self._db.execute_fetchall(sql + " ORDER BY seq", params)
        return [Event(key, seq, kind, decode_event(key, seq, data), bool(terminal)) for seq, kind, data, terminal in rows]

    async def keys(self) -> list[str]:
        async with self._lock, _mapped(None):
            rows = await self._db.execute_fetchall("SELECT key FROM instances")
        return sorted(key for (key,) in rows)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    # -- writes -----------------------------------------------------------------

    async def cas(self, key: str, expected: int, state: Any, *, machine: str | None = None) -> Record:
        result = (await self._write([Cas(key, expected, state, machine)]))[0]
        assert isinstance(result, Record)
        return result

    async def append(self, key: str, expected: int, events: Sequence[tuple[str, Any]]) -> int:
        result = (await self._write([Append(key, expected, tuple(events))]))[0]
        assert isinstance(result, int)
        return result

    async def append_terminal(self, key: str, kind: str, data: Any) -> int:
        result = (await self._write([AppendTerminal(key, kind, data)]))[0]
        assert isinstance(result, int)
        return result

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None) -> None:
        await self._write(ops, batch)

    async def _write(self, ops: Sequence[Op], batch: str | None = None) -> list[Record | int]:
        """Validate and serialise ``ops``, then apply them in one guarded ``BEGIN IMMEDIATE`` transaction."""
        prepared = [prepare(self.catalog, op) for op in ops]
        key = ops[0].key if ops else None
        return await self._guarded(key, lambda: self._batch(ops, prepared, batch))

    async def _batch(self, ops: Sequence[Op], prepared: list[Any], batch: str | None) -> list[Record | int]:
        """The body of a write transaction; ``batch``, if given, is recorded with it, and an old one skips it."""
        if batch is not None and await self._one("SELECT 1 FROM batches WHERE id = ?", (batch,)) is not None:
            return []  # committed before: that was its outcome, and nothing is applied twice
        # a Cas naming no machine is validated against the stored row's machine
        # before any version or head is compared, so InvalidState always wins
        for i, op in enumerate(ops):
            if isinstance(op, Cas) and prepared[i] is None:
                row = await self._one("SELECT machine FROM instances WHERE key = ?", (op.key,))
                if row is not None:
                    prepared[i] = self.catalog.dump(row[0], op.state, key=op.key)
        out: list[Record | int] = []
        for op, payload in zip(ops, prepared):
            async with _mapped(op.key):
                out.append(await self._apply(op, payload))
        if batch is not None:
            await self._db.execute("INSERT INTO batches (id) VALUES (?)", (batch,))
        return out

    async def _apply(self, op: Op, payload: Any) -> Record | int:
        if isinstance(op, Cas):
            return await self._cas(op, payload)
        if isinstance(op, Append):
            head = await self._open_log(op.key)
            if head != op.expected:
                raise Conflict(f"{op.key!r}'s log head is {head}, not {op.expected}", key=op.key)
            rows = [(op.key, head + i, kind, data) for i, (kind, data) in enumerate(payload, start=1)]
            await self._db.executemany("INSERT INTO events (key, seq, kind, data) VALUES (?, ?, ?, ?)", rows)
            return head + len(rows)
        head = await self._open_log(op.key)
        await self._db.execute(
            "INSERT INTO events (key, seq, kind, data, terminal) VALUES (?, ?, ?, ?, 1)",
            (op.key, head + 1, op.kind, payload),
        )
        return head + 1

    async def _cas(self, op: Cas, text: str | None) -> Record:
        row = await self._one("SELECT machine, version FROM instances WHERE key = ?", (op.key,))
        if op.expected == 0:
            if row is not None:
                raise Conflict(f"{op.key!r} already exists (version {row[1]})", key=op.key)
            assert op.machine is not None and text is not None  # prepare guarantees both
            machine = op.machine
            await self._db.execute(
                "INSERT INTO instances (key, machine, state, version) VALUES (?, ?, ?, 1)", (op.key, machine, text)
            )
        else:
            if row is None:
                raise NotFound(f"no instance {op.key!r}", key=op.key)
            machine, version = row
            if version != op.expected:
                raise Conflict(f"{op.key!r} is at version {version}, not {op.expected}", key=op.key)
            if op.machine is not None and op.machine != machine:
                raise InvalidState(f"{op.key!r} holds a {machine}, not a {op.machine}", key=op.key)
            if text is None:
                text = self.catalog.dump(machine, op.state, key=op.key)
            async with self._db.execute(
                "UPDATE instances SET state = ?, version = ? WHERE key = ? AND version = ?",
                (text, op.expected + 1, op.key, op.expected),
            ) as cur:
                if cur.rowcount != 1:
                    raise Conflict(f"{op.key!r} moved past version {op.expected}", key=op.key)
        return Record(op.key, machine, self._decode_state(op.key, machine, text), op.expected + 1)

    async def _open_log(self, key: str) -> int:
        """The head of ``key``'s log; `NotFound` without an instance, `Conflict` once it has ended."""
        if await self._one("SELECT 1 FROM instances WHERE key = ?", (key,)) is None:
            raise NotFound(f"no instance {key!r}", key=key)
        row = await self._one("SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(terminal), 0) FROM events WHERE key = ?", (key,))
        assert row is not None
        head, ended = row
        if ended:
            raise Conflict(f"{key!r}'s log already ended with a terminal event", key=key)
        return int(head)

    # -- plumbing ---------------------------------------------------------------

    async def _guarded(self, key: str | None, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction, as a task the caller's cancellation cannot interrupt.

        A cancelled caller flags the task (which then rolls back if it is still
        waiting for the lock or has not reached ``COMMIT``), waits for it to
        finish, and only then re-raises: the connection is idle and holds no lock.
        """
        async with self._lock:
            abort = asyncio.Event()
            job = asyncio.ensure_future(self._transaction(key, body, abort))
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                abort.set()
                await _settle(job)
                raise

    async def _transaction(self, key: str | None, body: Callable[[], Awaitable[T]], abort: asyncio.Event) -> T:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; anything raised, or ``abort`` before ``COMMIT``, rolls back."""
        await self._begin(key, abort)
        try:
            async with _mapped(key):
                out = await body()
                if abort.is_set():
                    raise _Aborted("the caller was cancelled before COMMIT")
                await self._db.execute("COMMIT")
            return out
        except BaseException:
            if self._db.in_transaction:  # a failed COMMIT may have rolled back already
                await self._db.execute("ROLLBACK")
            raise

    async def _begin(self, key: str | None, abort: asyncio.Event) -> None:
        """Take the write lock, polling so that ``abort`` ends the wait; `Busy` past the timeout."""
        deadline = time.monotonic() + self._busy_timeout
        await self._db.execute("PRAGMA busy_timeout = 0")  # SQLite's own wait cannot be interrupted
        try:
            while True:
                if abort.is_set():
                    raise _Aborted("the caller was cancelled while waiting for the write lock")
                try:
                    await self._db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    left = deadline - time.monotonic()
                    if not _busy(exc):
                        raise
                    if left <= 0:
                        raise Busy(f"the database stayed locked past the busy timeout ({exc})", key=key) from exc
                await asyncio.sleep(min(_POLL, max(left, 0)))
        finally:
            await self._db.execute(f"PRAGMA busy_timeout = {_millis(self._busy_timeout)}")

    async def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        async with self._db.execute(sql, params) as cur:
            return await cur.fetchone()

    def _decode_state(self, key: str, machine: str, text: str) -> Any:
        try:
            return self.catalog.load(machine, text, key=key)
        except InvalidState:  # a machine this catalog does not know
            raise Corrupt(f"record {key!r} names unknown machine {machine!r}", key=key) from None


class _Aborted(Exception):
    """A write rolled back because its caller was cancelled first; the caller sees `CancelledError`."""


async def _settle(job: asyncio.Future[Any]) -> None:
    """Wait for ``job`` to finish, ignoring further cancellations of the waiter."""
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            continue
        except BaseException:
            break
    if not job.cancelled():
        job.exception()  # retrieved: the caller re-raises its own CancelledError instead


def _millis(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_BUSY:
        return True
    return "database is locked" in str(exc)


@asynccontextmanager
async def _mapped(key: str | None) -> AsyncIterator[None]:
    """Turn SQLite's lock timeouts into `Busy` and constraint failures into `Conflict`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if _busy(exc):
            raise Busy(f"the database stayed locked past the busy timeout ({exc})", key=key) from exc
        raise
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"{key or 'a write'} lost a race the database caught: {exc}", key=key) from exc
