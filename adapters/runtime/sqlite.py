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

These tables hold everything::

    instances(key PRIMARY KEY, machine, state, version)
    events(key, seq, kind, data, terminal, position, at, bucket, PRIMARY KEY (key, seq))
    UNIQUE INDEX events_one_terminal ON events(key) WHERE terminal = 1
    UNIQUE INDEX events_position ON events(position)
    batches(id PRIMARY KEY, at, digest, outcome)
        -- ids of committed batches, written in their transaction, with its Unix time, the
        -- digest of its operations and the outcome its committer recorded (`RequestStore`);
        -- INDEX batches_at ON batches(at)
    positions(id = 0, last)       -- one row: the last position taken
    consumers(name, partition, partitions, cursor, owner, until, PRIMARY KEY (name, partition))
    dead_letters(consumer, position, partition, key, seq, kind, data, code, error, attempts, at,
                 PRIMARY KEY (consumer, position))

so "one terminal event per instance" is a fact the database enforces, not
only a check this module makes. States are written as `Catalog.dump`'s
canonical JSON and read back through `Catalog.load`; event data through
`canonical_json`. Validation and serialisation happen before the write lock
is taken, so an invalid state or a float in an event costs no SQL; the one
exception is a `Cas` that names no machine, whose machine is read from its
row inside the transaction and validated there, before anything is written.

A batch (`commit`) is one transaction: the operations run in order, each
seeing the ones before it, and any failure rolls the whole batch back. The
order is kept in memory: the rows and log heads of the batch's keys are read
with one statement each (500 keys a statement), `bulk.Plan` applies the
port's rules op by op, and new instances, changed instances and events are
then written with one ``executemany`` each -- so the write lock is held for a
handful of statements, whatever the size of the batch. An `asyncio.Lock`
keeps other tasks' statements out of an open transaction.

Errors
------
Every sqlite3 error and `OSError` that could escape a public method passes
through one boundary, `_mapped`, which turns it into the port's typed error by
SQLite's primary result code (``sqlite_errorcode & 0xFF``), not its message:

==========================  ==================================================
BUSY, LOCKED                `Busy` (retryable)
CORRUPT                     `Corrupt`
NOTADB                      `NotAStore` while opening, `Corrupt` afterwards
READONLY (any extended)     `ReadOnly`: a read-only file, directory or URI
FULL                        `Full` (the transaction was rolled back whole)
IOERR, CANTOPEN, PERM       `Io`; an `OSError` likewise (EROFS: `ReadOnly`,
                            ENOSPC: `Full`)
AUTH                        `PermissionDenied`: an authorizer refused it
TOOBIG                      `InvalidState`: a value over SQLite's length limit
                            (nothing was written)
CONSTRAINT                  `Conflict`: a race the database caught
anything else               `StoreError` naming the operation
==========================  ==================================================

A text cell that is not UTF-8, or a row whose columns have the wrong types,
is `Corrupt` naming its key. Opening a store whose schema is current writes
nothing, so a store on a read-only file or directory (or a ``mode=ro`` URI)
opens, reads, and refuses writes with `ReadOnly`.

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

A ``COMMIT`` that fails with an I/O error (``SQLITE_IOERR``: a failed write or
fsync of the WAL) may have left a commit record that the next open replays,
so it raises `UnknownOutcome`, not `Io`: the same batch re-submitted by its id
settles it. (A ``COMMIT`` that fails with ``SQLITE_FULL`` or ``SQLITE_BUSY``
was not applied, and says so.)

The read side (`readside.ReadStore`)
------------------------------------
A batch takes its events' positions from the ``positions`` row inside its
``BEGIN IMMEDIATE`` transaction, once `bulk.Plan` has decided the whole batch:
one writer at a time holds that lock until ``COMMIT``, so batches commit in
position order, a batch that rolls back gives its positions back, and every
reader's snapshot (WAL: whole transactions) is a gap-free prefix -- the outbox
gap cannot happen. ``events.bucket`` (`readside.bucket_of`) lets ``read``
filter a partition in SQL; ``events.at`` (the store's ``clock``) dates events
for `prune`. `wait` wakes at once for commits through this store object and
reads the counter every ``poll`` seconds for the others'.

Reading a log's end (`log_head`, and the head check of every append) is two
index lookups -- the last event by ``(key, seq)``, a terminal event by the
one-terminal index -- whatever the log's length.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite
import aiosqlite.core

from statewright.adapters.runtime.bulk import Plan, consumers_of, machine_less
from statewright.adapters.runtime.readside import (
    Consumer,
    DeadLettered,
    Start,
    Wakeup,
    bucket_of,
    check_range,
    check_read,
    check_register,
    check_ttl,
    follow,
    refuse_lagging,
    wait_for_commit,
)
from statewright.adapters.runtime.shielded import CallerCancelled, settle
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    BadOption,
    Busy,
    Cas,
    Catalog,
    Conflict,
    Corrupt,
    Event,
    Full,
    IncompatibleSchema,
    InvalidState,
    Io,
    NotAStore,
    NotFound,
    Op,
    KEEP_BATCHES,
    PermissionDenied,
    ReadOnly,
    Receipt,
    Record,
    Retention,
    SingleWrites,
    StoreError,
    UnknownOutcome,
    batch_digest,
    cas_machine,
    check_name,
    check_options,
    decode_event,
    decode_receipt,
    is_name,
    keyed,
    open_log,
    prepare_batch,
    prepare_outcome,
    recorded_before,
)

__all__ = ["KEEP_BATCHES", "POLL", "SCHEMA_VERSION", "SqliteStore"]

POLL = 0.05
"""How often (seconds) a waiting reader looks for commits of other processes by default: their latency bound."""

SCHEMA_VERSION = 4
"""The store's schema, in the file's ``PRAGMA user_version``.

A release that changes the schema bumps it and upgrades older files in `SqliteStore.open`, in
one transaction, before anything else touches them: version 0 (files written before the schema
was versioned) gains the ``batches`` table; version 1 gains ``batches.at``, the time each
recorded id was committed (ids already there are dated at the upgrade), so that ids can be
forgotten after a retention; version 2 gains ``batches.digest`` and ``batches.outcome`` (null
for the ids already there, which then count as the same batch whatever is re-submitted, as
they did); version 3 gains the read side: ``events.position``, ``.at`` and ``.bucket`` (the
events already there take positions 1, 2, ... in the order they were written -- rowid order --
and are dated at the upgrade), the ``positions`` counter and the ``consumers`` and
``dead_letters`` tables. A file whose version is newer than the release's is refused with
`IncompatibleSchema` and not touched.
"""
COLUMNS = {
    "instances": ("key", "machine", "state", "version"),
    "events": ("key", "seq", "kind", "data", "terminal", "position", "at", "bucket"),
    "batches": ("id", "at", "digest", "outcome"),
    "positions": ("id", "last"),
    "consumers": ("name", "partition", "partitions", "cursor", "owner", "until"),
    "dead_letters": ("consumer", "position", "partition", "key", "seq", "kind", "data", "code", "error", "attempts",
                     "at"),
}
"""The columns each table must have, exactly: a table of another shape is another schema."""
UPGRADABLE: dict[str, dict[tuple[str, ...], int]] = {
    "batches": {("id",): 1, ("id", "at"): 2},
    "events": {("key", "seq", "kind", "data", "terminal"): 3},
}
"""Older shapes of a table, each with the newest version that had it: `SqliteStore.open` upgrades them."""
INDEXES = ("events_one_terminal", "events_position", "batches_at")
"""The indexes a current store holds (besides the tables' own keys)."""

T = TypeVar("T")
_HEADS = ("(SELECT seq FROM events WHERE key = wanted.key ORDER BY seq DESC LIMIT 1), "
          "EXISTS (SELECT 1 FROM events WHERE key = wanted.key AND terminal = 1)")
"""A log's head and whether it has ended, as columns of a select over a table ``wanted`` of keys:
the head one step down the ``(key, seq)`` index to the last event, the terminal event through the
one-terminal index -- wherever it is, so a flag written behind the store's back ends the log too.
Never a scan of the log, whatever its length (`SqliteStore._heads`)."""
_POLL = 0.005  # seconds between tries for the write lock; also how soon a cancelled waiter gives up
_CHUNK = 500  # keys per ``IN (...)``: far under SQLite's limit on parameters (999 before 3.32)

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
        position INTEGER NOT NULL,
        at REAL NOT NULL,
        bucket INTEGER NOT NULL,
        PRIMARY KEY (key, seq)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_one_terminal ON events(key) WHERE terminal = 1",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_position ON events(position)",
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, at INTEGER NOT NULL, digest TEXT, outcome TEXT) "
    "WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS batches_at ON batches(at)",
    "CREATE TABLE IF NOT EXISTS positions (id INTEGER PRIMARY KEY CHECK (id = 0), last INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO positions (id, last) VALUES (0, (SELECT coalesce(max(position), 0) FROM events))",
    """CREATE TABLE IF NOT EXISTS consumers (
        name TEXT NOT NULL,
        partition INTEGER NOT NULL,
        partitions INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        owner TEXT,
        until REAL NOT NULL,
        PRIMARY KEY (name, partition)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        consumer TEXT NOT NULL,
        position INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        code TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (consumer, position)
    ) WITHOUT ROWID""",
)


async def _check_schema(db: aiosqlite.Connection, path: str | Path) -> bool:
    """Refuse a file that is not a store of a schema this release reads, without writing to it.

    A database holding any object -- table, view, index or trigger (SQLite's
    own ``sqlite_*`` ones aside) -- but not our ``instances`` table is someone
    else's: `NotAStore`. A store may hold objects of its user's beside ours
    (an index on ``events``, say). True when the file already holds the
    current schema (every table and the one-terminal index), so that opening
    it needs no write.
    """
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    async with db.execute("SELECT type, name FROM sqlite_master") as cur:  # tables, indexes, views, triggers
        objects = {(str(r[0]), str(r[1])) for r in await cur.fetchall() if not str(r[1]).startswith("sqlite_")}
    tables = {name for kind, name in objects if kind == "table"}
    shapes = {}
    for table in COLUMNS:
        if table in tables:
            async with db.execute(f"PRAGMA table_info({table})") as cur:
                shapes[table] = tuple(str(r[1]) for r in await cur.fetchall())
    if version > SCHEMA_VERSION:
        raise IncompatibleSchema(
            f"{path}: schema version {version} is newer than this statewright's ({SCHEMA_VERSION}); upgrade statewright"
        )
    if objects and "instances" not in tables:  # anything at all, and not our table: someone else's database
        held = ", ".join(f"{kind} {name}" for kind, name in sorted(objects))
        raise NotAStore(f"{path}: not a statewright store (it holds {held})")
    for table, columns in shapes.items():
        if columns != COLUMNS[table] and version > UPGRADABLE.get(table, {}).get(columns, -1):
            raise IncompatibleSchema(
                f"{path}: table {table} has columns {', '.join(columns)}, not {', '.join(COLUMNS[table])}"
            )
    return version == SCHEMA_VERSION and {("table", t) for t in COLUMNS} | {("index", i) for i in INDEXES} <= objects


async def _upgrade(db: aiosqlite.Connection, now: int) -> None:
    """Bring an older file's tables to the current shapes (inside `SqliteStore.open`'s schema transaction)."""
    async with db.execute("PRAGMA table_info(batches)") as cur:
        columns = tuple(str(r[1]) for r in await cur.fetchall())
    if columns == ("id",):  # version 1: ids without their time; date them now
        await db.execute("ALTER TABLE batches ADD COLUMN at INTEGER NOT NULL DEFAULT 0")
        await db.execute("UPDATE batches SET at = ?", (now,))
        columns += ("at",)
    if columns == ("id", "at"):  # version 2: ids without their operations' digest or an outcome
        await db.execute("ALTER TABLE batches ADD COLUMN digest TEXT")
        await db.execute("ALTER TABLE batches ADD COLUMN outcome TEXT")
    async with db.execute("PRAGMA table_info(events)") as cur:
        columns = tuple(str(r[1]) for r in await cur.fetchall())
    if columns == COLUMNS["events"][:5]:  # version 3: no read side; positions in the order the events were written
        for column, kind in (("position", "INTEGER"), ("at", "REAL"), ("bucket", "INTEGER")):
            await db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind} NOT NULL DEFAULT 0")
        rows = await db.execute_fetchall("SELECT rowid, key FROM events ORDER BY rowid")
        await db.executemany("UPDATE events SET position = ?, at = ?, bucket = ? WHERE rowid = ?",
                             [(n, now, bucket_of(str(key)), rowid) for n, (rowid, key) in enumerate(rows, start=1)])


class SqliteStore(SingleWrites):
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

    def __init__(
        self, db: aiosqlite.Connection, catalog: Catalog, *, busy_timeout: float = 5.0,
        keep_batches: float = KEEP_BATCHES, clock: Callable[[], float] = time.time, poll: float = POLL,
    ) -> None:
        """Use `SqliteStore.open`; this wraps a connection already set up by it."""
        self.catalog = catalog
        self._db = db
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._poll = poll
        self._wakeup = Wakeup()
        self._lock = asyncio.Lock()
        self._closed = False
        self._retention = Retention(keep_batches, clock)
        self._label = "a connection"  # what `__del__`'s warning names; `open` gives the path

    def __del__(self) -> None:
        """A store dropped unclosed warns, as an unclosed file does, and stops its worker thread quietly.

        aiosqlite's own finaliser would post the stop to the event loop the
        store last used, usually closed by then, which printed ``RuntimeError:
        Event loop is closed`` tracebacks at exit; this closes the connection
        on its worker thread with no loop involved. (A store still referenced
        when the interpreter exits does not hold it up: its worker thread is a
        daemon, and SQLite recovers an unclosed file as after a crash.)
        """
        db = getattr(self, "_db", None)
        connection = getattr(db, "_connection", None)
        if db is None or connection is None or getattr(self, "_closed", True):
            return
        warnings.warn(f"unclosed SqliteStore on {self._label}", ResourceWarning, source=self, stacklevel=2)
        db._connection = None  # so that aiosqlite's finaliser, which runs next, leaves it to us
        db._running = False
        stop = getattr(aiosqlite.core, "_STOP_RUNNING_SENTINEL", None)

        def close() -> object:
            connection.close()
            return stop

        db._tx.put_nowait((None, close))  # no future: the worker answers nobody, and ends on ``stop``

    @classmethod
    async def open(
        cls, path: str | Path, catalog: Catalog, *, busy_timeout: float = 5.0,
        keep_batches: float = KEEP_BATCHES, clock: Callable[[], float] = time.time, poll: float = POLL,
    ) -> SqliteStore:
        """Open (creating if needed) the store at ``path``: WAL mode, busy timeout, schema.

        A new file is created readable by its owner only (0600; SQLite gives its
        ``-wal`` and ``-shm`` files the same mode). A file that is not a database,
        or holds anything (tables, views, indexes, triggers) but not our tables,
        raises `NotAStore`; a newer schema version or a table of another shape
        raises `IncompatibleSchema` -- both before the file is switched to WAL or
        written in any way. A store whose schema is current is not written at
        all. A ``busy_timeout`` or ``keep_batches`` no store can honour (`check_options`)
        raises `BadOption` before the file is even created.

        Batch ids (`BatchStore`) are remembered ``keep_batches`` seconds (default
        a week) by ``clock``: the store forgets older ones as it records new ones
        (at most every tenth of that, and at most hourly), so the table stays
        bounded. A re-submission later than that, of a batch that had landed,
        is no longer recognised -- it conflicts on the version it names, and a
        driver then decides its input afresh.

        ``clock`` also dates events (`prune`) and judges leases. ``poll`` is how
        often (seconds, default 0.05) `wait` and `subscribe` look for commits
        made by other connections or processes: the latency bound of delivery
        across processes (commits through this store object wake them at once).
        """
        check_options(busy_timeout=busy_timeout, keep_batches=keep_batches)
        if not (isinstance(poll, (int, float)) and not isinstance(poll, bool) and 0 < poll <= 3600):
            raise BadOption(f"poll must be a number of seconds above 0, at most 3600, got {poll!r}")
        what = f"opening {path}"
        if str(path) != ":memory:" and not str(path).startswith("file:"):
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise _os_error(exc, f"{path}: cannot create the store") from None
        connecting = aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout, uri=str(path).startswith("file:"))
        connecting._thread.daemon = True  # an unclosed store must not keep the interpreter from exiting
        try:
            async with _mapped(None, what, opening=True):
                db = await connecting
        except BaseException:
            await _stopped(connecting)
            raise
        try:
            async with _mapped(None, what, opening=True):
                await db.execute(f"PRAGMA busy_timeout = {_millis(busy_timeout)}")
                current = await _check_schema(db, path)
                async with db.execute("PRAGMA journal_mode = WAL") as cur:
                    row = await cur.fetchone()
            mode = str(row[0]).lower() if row else ""
            if mode not in ("wal", "memory"):  # "memory": a ":memory:" database cannot use WAL
                raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode!r})")
            store = cls(db, catalog, busy_timeout=busy_timeout, keep_batches=keep_batches, clock=clock, poll=poll)
            store._label = str(path)

            async def schema() -> None:
                await _upgrade(db, int(clock()))
                for statement in SCHEMA:
                    try:
                        await db.execute(statement)
                    except sqlite3.IntegrityError as exc:  # the one-terminal index over a log with two
                        raise Corrupt(f"{path}: a log has two terminal events ({exc})") from None
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

            if not current:
                await store._guarded(None, schema, what)
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
        if not is_name(key, limits=self.catalog.limits):
            raise NotFound(f"no instance {key!r}", key=key)  # no write could have made it
        async with self._lock, _mapped(key, f"loading {key!r}"):
            self._open()
            row = await self._one("SELECT machine, state, version FROM instances WHERE key = ?", (key,))
        if row is None:
            raise NotFound(f"no instance {key!r}", key=key)
        machine, text, version = row
        if not isinstance(machine, str) or type(version) is not int:
            raise Corrupt(f"record {key!r} is garbled: machine {machine!r}, version {version!r}", key=key)
        return Record(key, machine, self.catalog.load(machine, text, key=key), version)

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        if not is_name(key, limits=self.catalog.limits):
            return []
        sql = "SELECT seq, kind, data, terminal, position FROM events WHERE key = ? AND seq >= ?"
        params: tuple[Any, ...] = (key, start)
        if stop is not None:
            sql += " AND seq < ?"
            params += (stop,)
        async with self._lock, _mapped(key, f"reading the log of {key!r}"):
            self._open()
            rows = await self._db.execute_fetchall(sql + " ORDER BY seq", params)
        return [_event(key, *row) for row in rows]

    async def log_head(self, key: str) -> tuple[int, bool]:
        if not is_name(key, limits=self.catalog.limits):
            return 0, False
        async with self._lock, _mapped(key, f"reading the head of {key!r}'s log"):
            self._open()
            heads = await self._heads([key])
        return heads.get(key, (0, False))

    async def receipt(self, batch: str) -> Receipt | None:
        if not is_name(batch, limits=self.catalog.limits):
            return None
        async with self._lock, _mapped(None, f"reading batch {batch[:16]}"):
            self._open()
            row = await self._one("SELECT digest, outcome FROM batches WHERE id = ?", (batch,))
        return None if row is None else decode_receipt(batch, row[0], row[1])

    async def keys(self) -> list[str]:
        async with self._lock, _mapped(None, "listing the keys"):
            self._open()
            rows = await self._db.execute_fetchall("SELECT key FROM instances")
        keys = [key for (key,) in rows]
        garbled = [key for key in keys if not isinstance(key, str)]
        if garbled:
            raise Corrupt(f"the store holds a key that is not text: {garbled[0]!r}")
        return sorted(keys)

    # -- the read side (`readside.ReadStore`) ----------------------------------------

    async def read(self, after: int = 0, *, limit: int = 1000, partition: tuple[int, int] | None = None,
                   kinds: Sequence[str] | None = None) -> list[Event]:
        """Events above ``after`` in position order: one statement, one snapshot, so a gap-free prefix."""
        check_read(after, limit, partition, kinds)
        sql = "SELECT key, seq, kind, data, terminal, position FROM events WHERE position > ?"
        params: list[Any] = [after]
        if partition is not None:
            sql += " AND bucket % ? = ?"
            params += [partition[1], partition[0]]
        if kinds is not None:
            sql += " AND kind IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(kinds)))
        async with self._lock, _mapped(None, f"reading the log after position {after}"):
            self._open()
            rows = await self._db.execute_fetchall(sql + " ORDER BY position LIMIT ?", (*params, limit))
        return [_keyed_event(*row) for row in rows]

    async def latest_cursor(self) -> int:
        async with self._lock, _mapped(None, "reading the last position"):
            self._open()
            row = await self._one("SELECT last FROM positions WHERE id = 0", ())
        if row is None or type(row[0]) is not int:
            raise Corrupt("the store's position counter is missing or garbled")
        return int(row[0])

    async def replay_all(self) -> list[Event]:
        async with self._lock, _mapped(None, "reading the whole log"):
            self._open()
            rows = await self._db.execute_fetchall(
                "SELECT key, seq, kind, data, terminal, position FROM events ORDER BY position")
        return [_keyed_event(*row) for row in rows]

    async def read_range(self, key: str, start: int, end: int | None = None) -> list[Event]:
        check_range(start, end)
        return await self.read_log(key, start, None if end is None else end + 1)

    async def wait(self, after: int, timeout: float) -> int:
        """`readside.ReadStore.wait`: woken at once by this store's commits, polling every ``poll`` s for others'."""
        return await wait_for_commit(self.latest_cursor, self._wakeup, after, timeout, self._poll)

    def subscribe(self, after: int = 0, *, limit: int = 1000) -> AsyncIterator[Event]:
        return follow(self, after, limit)

    async def prune(self, older_than: float) -> int:
        """Delete events dated before ``older_than`` that every consumer passed, except each key's last event."""
        if not (isinstance(older_than, (int, float)) and not isinstance(older_than, bool)):
            raise BadOption(f"older_than must be a number of seconds, got {older_than!r}")

        async def body() -> int:
            async with self._db.execute(
                "DELETE FROM events WHERE at < ? "
                "AND position <= coalesce((SELECT min(cursor) FROM consumers), (SELECT last FROM positions)) "
                "AND seq < (SELECT max(seq) FROM events AS later WHERE later.key = events.key)", (older_than,),
            ) as cur:
                return max(cur.rowcount, 0)

        return await self._guarded(None, body, "pruning the log")

    async def clear(self) -> int:
        async def body() -> int:
            await self._refuse_lagging(None, "clearing the store")
            row = await self._one("SELECT count(*) FROM events", ())
            for table in ("instances", "events", "batches", "dead_letters"):
                await self._db.execute(f"DELETE FROM {table}")
            return int(row[0]) if row is not None else 0

        return await self._guarded(None, body, "clearing the store")

    async def _refuse_lagging(self, consumer: str | None, what: str) -> None:
        last = await self._one("SELECT last FROM positions WHERE id = 0", ())
        sql = "SELECT name, partition, cursor FROM consumers"
        rows = await self._db.execute_fetchall(sql + (" WHERE name = ?" if consumer is not None else ""),
                                               () if consumer is None else (consumer,))
        refuse_lagging([(str(n), int(p), int(c)) for n, p, c in rows], int(last[0]) if last else 0, what)

    async def register(self, consumer: str, *, partitions: int = 1, start: Start = "earliest") -> list[Consumer]:
        check_register(consumer, partitions, start, limits=self.catalog.limits)

        async def body() -> None:
            rows = await self._db.execute_fetchall("SELECT DISTINCT partitions FROM consumers WHERE name = ?",
                                                   (consumer,))
            held = {r[0] for r in rows}
            if held and held != {partitions}:
                raise BadOption(f"consumer {consumer!r} is registered with partitions={sorted(held)[0]}, "
                                f"not {partitions}")
            if not held:
                last = await self._one("SELECT last FROM positions WHERE id = 0", ())
                cursor = 0 if start == "earliest" or last is None else int(last[0])
                await self._db.executemany(
                    "INSERT INTO consumers (name, partition, partitions, cursor, owner, until) "
                    "VALUES (?, ?, ?, ?, NULL, 0)", [(consumer, p, partitions, cursor) for p in range(partitions)])

        await self._guarded(None, body, f"registering consumer {consumer!r}")
        return [c for c in await self.consumers() if c.name == consumer]

    async def unregister(self, consumer: str, *, force: bool = False) -> None:
        async def body() -> None:
            if await self._one("SELECT 1 FROM consumers WHERE name = ?", (consumer,)) is None:
                raise NotFound(f"no consumer {consumer!r}")
            if not force:
                await self._refuse_lagging(consumer, f"unregistering {consumer!r}")
            await self._db.execute("DELETE FROM consumers WHERE name = ?", (consumer,))
            await self._db.execute("DELETE FROM dead_letters WHERE consumer = ?", (consumer,))

        await self._guarded(None, body, f"unregistering consumer {consumer!r}")

    async def consumers(self) -> list[Consumer]:
        async with self._lock, _mapped(None, "reading the consumers"):
            self._open()
            rows = await self._db.execute_fetchall(
                "SELECT name, partition, partitions, cursor, owner, until FROM consumers ORDER BY name, partition")
        return [_consumer(*row) for row in rows]

    async def lease(self, consumer: str, partition: int, owner: str, ttl: float) -> Consumer | None:
        check_name(owner, "a lease owner", limits=self.catalog.limits)
        check_ttl(ttl)

        async def body() -> Consumer | None:
            row = await self._one("SELECT name, partition, partitions, cursor, owner, until FROM consumers "
                                  "WHERE name = ? AND partition = ?", (consumer, partition))
            if row is None:
                raise NotFound(f"no consumer {consumer!r} with a partition {partition}")
            held = _consumer(*row)
            now = self._clock()
            if held.owner not in (None, owner) and held.until > now:
                return None
            await self._db.execute("UPDATE consumers SET owner = ?, until = ? WHERE name = ? AND partition = ?",
                                   (owner, now + ttl, consumer, partition))
            return Consumer(consumer, partition, held.partitions, held.cursor, owner, now + ttl)

        return await self._guarded(None, body, f"leasing consumer {consumer!r} partition {partition}")

    async def release(self, consumer: str, partition: int, owner: str) -> None:
        async def body() -> None:
            await self._db.execute("UPDATE consumers SET owner = NULL, until = 0 "
                                   "WHERE name = ? AND partition = ? AND owner = ?", (consumer, partition, owner))

        await self._guarded(None, body, f"releasing consumer {consumer!r} partition {partition}")

    async def dead_letters(self, consumer: str | None = None, *, limit: int = 1000) -> list[DeadLettered]:
        sql = ("SELECT consumer, partition, position, key, seq, kind, data, code, error, attempts, at "
               "FROM dead_letters")
        params: tuple[Any, ...] = ()
        if consumer is not None:
            sql, params = sql + " WHERE consumer = ?", (consumer,)
        async with self._lock, _mapped(None, "reading the dead letters"):
            self._open()
            rows = await self._db.execute_fetchall(sql + " ORDER BY position, consumer LIMIT ?", (*params, limit))
        return [_dead_letter(*row) for row in rows]

    async def close(self) -> None:
        async with self._lock, _mapped(None, "closing the store"):
            self._closed = True
            await self._db.close()

    def _open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    # -- writes -----------------------------------------------------------------

    async def _write(self, ops: Sequence[Op], batch: str | None = None, outcome: Any = None) -> list[Record | int]:
        """Validate and serialise ``ops``, then apply them in one guarded ``BEGIN IMMEDIATE`` transaction."""
        prepared = prepare_batch(self.catalog, ops, batch)
        noted = prepare_outcome(self.catalog, batch, outcome)
        digest = batch_digest(ops, prepared, limits=self.catalog.limits) if batch is not None else ""
        key = ops[0].key if ops and isinstance(ops[0], (Cas, Append, AppendTerminal)) else None
        what = f"writing {key!r}" if len(ops) == 1 else f"writing a batch of {len(ops)} operations"
        out = await self._guarded(key, lambda: self._batch(ops, prepared, batch, digest, noted), what)
        self._wakeup.notify()  # committed: wake this process's waiters at once (the others poll)
        return out

    async def _batch(self, ops: Sequence[Op], prepared: list[Any], batch: str | None, digest: str,
                     noted: str | None) -> list[Record | int]:
        """The body of a write transaction; ``batch``, if given, is recorded with it, and an old one skips it.

        An id recorded before answers at once: nothing applied when its digest
        is this batch's, `AlreadyApplied` when it is another's
        (`store.recorded_before`). Otherwise reads the rows and log heads of
        every key with one statement each, decides the whole batch in memory
        (`bulk.Plan`: the port's rules, op by op), writes each kind of row with
        one ``executemany``, and records the id with ``digest`` and the
        outcome ``noted``.
        """
        if batch is not None:
            row = await self._one("SELECT digest, outcome FROM batches WHERE id = ?", (batch,))
            if recorded_before(batch, digest, None if row is None else decode_receipt(batch, row[0], row[1])):
                return []  # committed before: that was its outcome, and nothing is applied twice
        keys = sorted({op.key for op in keyed(ops)})
        rows = {k: (m, v) for k, m, v in await self._in_keys(
            "SELECT key, machine, version FROM instances WHERE key IN ({marks})", keys)}
        heads = await self._heads(sorted({op.key for op in keyed(ops) if not isinstance(op, Cas)}))
        machine_less(self.catalog, ops, prepared, rows)  # InvalidState before any version or head is compared
        plan = Plan(self.catalog, rows, heads, consumers=await self._consumer_rows(consumers_of(ops)))
        out = [plan.apply(op, payload) for op, payload in zip(ops, prepared)]
        key = ops[0].key if len(ops) == 1 and isinstance(ops[0], (Cas, Append, AppendTerminal)) else None
        async with _mapped(key, f"writing {key!r}" if key is not None else f"writing a batch of {len(ops)} operations"):
            await self._flush(plan, await self._take_positions(len(plan.events)))
        if batch is not None:
            now = self._retention.clock()
            cutoff = self._retention.cutoff(now)
            if cutoff is not None:  # forget ids past their retention, in this same transaction
                await self._db.execute("DELETE FROM batches WHERE at < ?", (cutoff,))
            await self._db.execute("INSERT INTO batches (id, at, digest, outcome) VALUES (?, ?, ?, ?)",
                                   (batch, int(now), digest, noted))
        return out

    async def _take_positions(self, n: int) -> int:
        """Take ``n`` positions from the counter, in this transaction (under the write lock): the last one before them.

        The counter row is updated in the same transaction as the events that
        carry its positions, and only one transaction writes at a time: the
        batches commit in position order, and one that rolls back gives its
        positions back -- no gap, no position reused, no outbox gap.
        """
        if n == 0:
            return 0
        row = await self._one("SELECT last FROM positions WHERE id = 0", ())
        if row is None or type(row[0]) is not int:
            raise Corrupt("the store's position counter is missing or garbled")
        await self._db.execute("UPDATE positions SET last = ? WHERE id = 0", (row[0] + n,))
        return int(row[0])

    async def _consumer_rows(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, str | None]]:
        """The (cursor, owner) of each consumer partition a batch names, read in its transaction."""
        out: dict[tuple[str, int], tuple[int, str | None]] = {}
        for name, partition in wanted:
            row = await self._one("SELECT cursor, owner FROM consumers WHERE name = ? AND partition = ?",
                                  (name, partition))
            if row is not None:
                out[(name, partition)] = _cursor_row(name, partition, row[0], row[1])
        return out

    async def _flush(self, plan: Plan, last: int = 0) -> None:
        """Write a decided batch: one ``executemany`` each for new instances, changed instances, events, cursors
        and dead letters; the events take positions from ``last + 1`` on (`_take_positions`)."""
        if plan.inserts:
            await self._db.executemany(
                "INSERT INTO instances (key, machine, state, version) VALUES (?, ?, ?, ?)",
                [(k, m, text, v) for k, (m, text, v) in plan.inserts.items()])
        if plan.updates:
            async with self._db.executemany(
                "UPDATE instances SET state = ?, version = ? WHERE key = ? AND version = ?",
                [(text, v, k, read) for k, (text, v, read) in plan.updates.items()],
            ) as cur:
                if cur.rowcount != len(plan.updates):  # cannot happen under the write lock; never write past it
                    raise Conflict(f"{len(plan.updates) - cur.rowcount} of the batch's instances moved under it")
        if plan.events:
            now = self._clock()
            await self._db.executemany(
                "INSERT INTO events (key, seq, kind, data, terminal, position, at, bucket) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(k, seq, kind, data, int(end), position, now, bucket)
                 for k, seq, kind, data, end, position, bucket in plan.numbered(last)])
        if plan.advances:
            async with self._db.executemany(
                "UPDATE consumers SET cursor = ? WHERE name = ? AND partition = ? AND cursor = ?",
                [(cursor, name, p, read) for (name, p), (cursor, read) in plan.advances.items()],
            ) as cur:
                if cur.rowcount != len(plan.advances):  # cannot happen under the write lock
                    raise Conflict("a consumer's cursor moved under the batch")
        if plan.dead:
            now = self._clock()
            await self._db.executemany(
                "INSERT OR IGNORE INTO dead_letters (consumer, position, partition, key, seq, kind, data, code, "
                "error, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(name, position, *rest, now) for (name, position), rest in plan.dead.items()])

    async def _heads(self, keys: list[str]) -> dict[str, tuple[int, bool]]:
        """The heads of ``keys``' logs that have events (`_HEADS`: two index lookups a key), 500 keys a statement."""
        found = await self._in_keys(f"WITH wanted(key) AS (VALUES {{marks}}) SELECT key, {_HEADS} FROM wanted", keys,
                                    "(?)")
        return {k: _head(k, seq, ended) for k, seq, ended in found if seq is not None or ended}

    async def _in_keys(self, sql: str, keys: list[str], mark: str = "?") -> list[Any]:
        """``sql`` with ``{marks}`` standing for ``keys`` (each a ``mark``), in chunks within SQLite's limits."""
        out: list[Any] = []
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            out += await self._db.execute_fetchall(sql.format(marks=", ".join([mark] * len(chunk))), chunk)
        return out

    # -- plumbing ---------------------------------------------------------------

    async def _guarded(self, key: str | None, body: Callable[[], Awaitable[T]], what: str) -> T:
        """Run ``body`` in one write transaction, as a task the caller's cancellation cannot interrupt.

        A cancelled caller flags the task (which then rolls back if it is still
        waiting for the lock or has not reached ``COMMIT``), waits for it to
        finish, and only then re-raises: the connection is idle and holds no lock.
        """
        async with self._lock:
            self._open()
            abort = asyncio.Event()
            job = asyncio.ensure_future(self._transaction(key, body, abort, what))
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                abort.set()
                await settle(job)
                raise

    async def _transaction(
        self, key: str | None, body: Callable[[], Awaitable[T]], abort: asyncio.Event, what: str
    ) -> T:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; anything raised, or ``abort`` before ``COMMIT``, rolls back.

        Everything, the rollback included, runs inside `_mapped`: no sqlite3
        error leaves the transaction untyped.
        """
        async with _mapped(key, what):
            await self._begin(key, abort)
            committing = False
            try:
                out = await body()
                if abort.is_set():
                    raise CallerCancelled("the caller was cancelled before COMMIT")
                committing = True
                await self._db.execute("COMMIT")
                return out
            except BaseException as exc:
                lost = committing and _lost_commit(exc)
                try:
                    if self._db.in_transaction:  # a failed COMMIT may have rolled back already
                        await self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    if not lost:
                        raise  # (after a lost COMMIT the unknown outcome is the news, not the rollback)
                if lost:
                    raise UnknownOutcome(f"{what}: COMMIT failed with an I/O error, so the batch may or may not "
                                         f"have committed; re-submit it by its batch id to know ({exc})",
                                         key=key) from exc
                raise

    async def _begin(self, key: str | None, abort: asyncio.Event) -> None:
        """Take the write lock, polling so that ``abort`` ends the wait; `Busy` past the timeout."""
        deadline = time.monotonic() + self._busy_timeout
        await self._db.execute("PRAGMA busy_timeout = 0")  # SQLite's own wait cannot be interrupted
        try:
            while True:
                if abort.is_set():
                    raise CallerCancelled("the caller was cancelled while waiting for the write lock")
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


async def _stopped(connection: aiosqlite.Connection) -> None:
    """Wait for the worker thread of a connection that failed to open.

    aiosqlite stops it without waiting; a thread still finishing after the
    event loop has closed fails in the background instead of ending quietly.
    """
    thread = getattr(connection, "_thread", None)
    if thread is not None and thread.is_alive():
        await asyncio.to_thread(thread.join, 5.0)


def _head(key: str, seq: Any, ended: Any) -> tuple[int, bool]:
    """A log head as `_HEADS` reads it: 0 for a log with no event; `Corrupt` when the last seq is not an int."""
    if seq is None:
        return 0, bool(ended)
    if type(seq) is not int:
        raise Corrupt(f"the last event of {key!r} is garbled: seq {seq!r}", key=key)
    return seq, bool(ended)


def _lost_commit(exc: BaseException) -> bool:
    """Whether a failed ``COMMIT`` may still have committed: an I/O error (a WAL write or fsync that failed)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, OSError) or (
        isinstance(exc, sqlite3.Error) and isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_IOERR)


def _millis(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(exc)


_IO = frozenset({sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM})


def _typed(exc: sqlite3.Error, key: str | None, what: str, *, opening: bool) -> StoreError:
    """The port's error for one sqlite3 error, chosen by its primary result code (see the module doc)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    detail = f"{exc} [{name}]"
    if primary is None and "Could not decode to UTF-8" in str(exc):  # raised by the sqlite3 module, no code
        return Corrupt(f"{what}: a stored text is not UTF-8 ({exc})", key=key)
    if _busy(exc):
        return Busy(f"the database stayed locked past the busy timeout ({exc})", key=key)
    if primary == sqlite3.SQLITE_CONSTRAINT or (primary is None and isinstance(exc, sqlite3.IntegrityError)):
        return Conflict(f"{key or 'a write'} lost a race the database caught: {exc}", key=key)
    if primary == sqlite3.SQLITE_NOTADB:
        if opening:
            return NotAStore(f"{what}: not a statewright store ({exc})", key=key)
        return Corrupt(f"{what}: the file is no longer a database ({detail})", key=key)
    if primary == sqlite3.SQLITE_CORRUPT:
        return Corrupt(f"{what}: the database file is damaged ({detail})", key=key)
    if primary == sqlite3.SQLITE_READONLY:
        return ReadOnly(f"{what}: the database is read-only ({detail})", key=key)
    if primary == sqlite3.SQLITE_FULL:
        return Full(f"{what}: the database or disk is full; nothing was written ({detail})", key=key)
    if primary in _IO:
        return Io(f"{what}: {detail}", key=key)
    if primary == sqlite3.SQLITE_AUTH:
        return PermissionDenied(f"{what}: not authorized ({detail})", key=key)
    if primary == sqlite3.SQLITE_TOOBIG:
        return InvalidState(f"{what}: a value is over SQLite's length limit; nothing was written ({detail})", key=key)
    return StoreError(f"{what}: {detail}", key=key)


def _os_error(exc: OSError, what: str, key: str | None = None) -> StoreError:
    """The port's error for an `OSError`: EROFS is `ReadOnly`, ENOSPC/EDQUOT `Full`, the rest `Io`."""
    text = f"{what}: {exc.strerror or exc}"
    if exc.errno == errno.EROFS:
        return ReadOnly(text, key=key)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Full(text, key=key)
    return Io(text, key=key)


@asynccontextmanager
async def _mapped(key: str | None, what: str, *, opening: bool = False) -> AsyncIterator[None]:
    """The one boundary between SQLite and the port: every sqlite3 error and `OSError` leaves typed.

    ``what`` names the operation (``loading 'in1'``) in messages; ``opening``
    tells a file that is not a database (`NotAStore`) from one that stopped
    being one under an open store (`Corrupt`). Our own `StoreError`s,
    cancellation and everything else pass through untouched.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise _typed(exc, key, what, opening=opening) from exc
    except OSError as exc:
        raise _os_error(exc, what, key) from exc


def _event(key: str, seq: Any, kind: Any, data: Any, terminal: Any, position: Any) -> Event:
    """One stored event row; `Corrupt` when its columns are not the types the schema writes."""
    if type(seq) is not int or not isinstance(kind, str) or terminal not in (0, 1) or type(position) is not int:
        raise Corrupt(f"an event of {key!r} is garbled: seq {seq!r}, kind {kind!r}, terminal {terminal!r}, "
                      f"position {position!r}", key=key)
    return Event(key, seq, kind, decode_event(key, seq, data), bool(terminal), position)


def _cursor_row(name: str, partition: int, cursor: Any, owner: Any) -> tuple[int, str | None]:
    if type(cursor) is not int or not (owner is None or isinstance(owner, str)):
        raise Corrupt(f"consumer {name!r} partition {partition} is garbled: cursor {cursor!r}, owner {owner!r}")
    return cursor, owner


def _consumer(name: Any, partition: Any, partitions: Any, cursor: Any, owner: Any, until: Any) -> Consumer:
    """One consumer row; `Corrupt` when its columns are not the types the schema writes."""
    if not (isinstance(name, str) and type(partition) is int and type(partitions) is int
            and isinstance(until, (int, float))):
        raise Corrupt(f"a consumer row is garbled: {name!r} partition {partition!r}")
    cursor, owner = _cursor_row(name, partition, cursor, owner)
    return Consumer(name, partition, partitions, cursor, owner, float(until))


def _dead_letter(consumer: Any, partition: Any, position: Any, key: Any, seq: Any, kind: Any, data: Any, code: Any,
                 error: Any, attempts: Any, at: Any) -> DeadLettered:
    """One dead-letter row; `Corrupt` when its columns are not the types the schema writes."""
    texts = (consumer, key, kind, code, error)
    if not all(isinstance(t, str) for t in texts) or not all(type(n) is int for n in (partition, position, seq,
                                                                                        attempts)):
        raise Corrupt(f"a dead letter of {consumer!r} at position {position!r} is garbled")
    return DeadLettered(consumer, partition, position, key, seq, kind, decode_event(key, seq, data), code, error,
                        attempts, float(at))


def _keyed_event(key: Any, *rest: Any) -> Event:
    """A row of the global log (key first); `Corrupt` when the key is not text."""
    if not isinstance(key, str):
        raise Corrupt(f"the store holds an event under a key that is not text: {key!r}")
    return _event(key, *rest)
