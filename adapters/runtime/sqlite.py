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

Two tables hold everything::

    instances(key PRIMARY KEY, machine, state, version)
    events(key, seq, kind, data, terminal, PRIMARY KEY (key, seq))
    UNIQUE INDEX events_one_terminal ON events(key) WHERE terminal = 1

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
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

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
    InvalidState,
    NotFound,
    Op,
    Record,
    StoreError,
    canonical_json,
)

__all__ = ["SqliteStore"]

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

    def __init__(self, db: aiosqlite.Connection, catalog: Catalog) -> None:
        """Use `SqliteStore.open`; this wraps a connection already set up by it."""
        self.catalog = catalog
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: str | Path, catalog: Catalog, *, busy_timeout: float = 5.0
    ) -> SqliteStore:
        """Open (creating if needed) the store at ``path``: WAL mode, busy timeout, schema."""
        db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
        try:
            await db.execute(f"PRAGMA busy_timeout = {max(0, round(busy_timeout * 1000))}")
            async with db.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            mode = str(row[0]).lower() if row else ""
            if mode not in ("wal", "memory"):  # "memory": a ":memory:" database cannot use WAL
                raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode!r})")
            store = cls(db, catalog)
            async with store._transaction(None):
                for statement in SCHEMA:
                    await db.execute(statement)
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
        return [Event(key, seq, kind, _decode_data(key, seq, data), bool(terminal)) for seq, kind, data, terminal in rows]

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

    async def commit(self, ops: Sequence[Op]) -> None:
        await self._write(ops)

    async def _write(self, ops: Sequence[Op]) -> list[Record | int]:
        """Validate and serialise ``ops``, then apply them in one ``BEGIN IMMEDIATE`` transaction."""
        prepared = [_prepare(self.catalog, op) for op in ops]
        key = ops[0].key if ops else None
        async with self._lock, self._transaction(key):
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
            assert op.machine is not None and text is not None  # _prepare guarantees both
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

    @asynccontextmanager
    async def _transaction(self, key: str | None) -> AsyncIterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; anything raised inside rolls back. Hold ``_lock``."""
        async with _mapped(key):
            await self._db.execute("BEGIN IMMEDIATE")
        try:
            async with _mapped(key):
                yield
                await self._db.execute("COMMIT")
        except BaseException:
            try:
                await self._db.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass  # SQLite already rolled back (e.g. a failed COMMIT); nothing is open
            raise

    async def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        async with self._db.execute(sql, params) as cur:
            return await cur.fetchone()

    def _decode_state(self, key: str, machine: str, text: str) -> Any:
        try:
            return self.catalog.load(machine, text, key=key)
        except InvalidState:  # a machine this catalog does not know
            raise Corrupt(f"record {key!r} names unknown machine {machine!r}", key=key) from None


def _prepare(catalog: Catalog, op: Op) -> Any:
    """Everything about ``op`` that needs no SQL: validation and serialisation.

    Returns the state's JSON for a `Cas` (None when its machine must be read
    from the row), the events' ``(kind, json)`` pairs for an `Append`, and the
    terminal event's JSON for an `AppendTerminal`.
    """
    if isinstance(op, Cas):
        if op.machine is None:
            if op.expected == 0:
                raise InvalidState(f"creating {op.key!r} needs the machine name", key=op.key)
            return None
        return catalog.dump(op.machine, op.state, key=op.key)
    if isinstance(op, Append):
        return [(kind, canonical_json(data)) for kind, data in op.events]
    if isinstance(op, AppendTerminal):
        return canonical_json(op.data)
    raise InvalidState(f"not a store operation: {op!r}")


def _decode_data(key: str, seq: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Corrupt(f"event {seq} of {key!r} cannot be decoded: {exc}", key=key) from None


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
