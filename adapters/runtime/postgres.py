"""`PostgresStore`: the store port on PostgreSQL (asyncpg), for stores shared by many processes or hosts.

Theory of operation
-------------------
Same semantics as `SqliteStore`, checked by the same contract suite; what
differs is how the database keeps concurrent writers apart. SQLite has one
write lock per file; PostgreSQL locks rows, so writers of different keys run
in parallel. Every write transaction runs at READ COMMITTED and begins by
locking the instance row of every key it touches -- ``SELECT ... FOR UPDATE``
in one statement, in byte order of the keys, so two batches never take the
same two rows in opposite orders and never deadlock -- and reads their
versions. With the rows locked nobody else can move them, so each later
statement (a fresh snapshot at READ COMMITTED) sees the current version and
log head, and the compare-and-swap is decided on them as in SQLite.

A key that does not exist yet has no row to lock, so a batch that creates
keys first takes a transaction-level advisory lock on each of them
(`creation_locks`: a 64-bit hash of schema and key, taken in ascending
order, like the row locks in one global order). Two batches creating the
same keys, in whatever order, queue on the first lock they share: the second
then finds the rows the first created and fails with `Conflict`, as in
SQLite -- without the locks each inserted one key and waited on the other's
insert, a deadlock PostgreSQL broke after a second. The constraints still
guard a key created by a writer that took no such lock: ``instances`` has
primary key ``key``, ``events`` ``(key, seq)`` and a partial unique index
allows one terminal event per key, so a lost race is always caught by the
database (a unique violation, `Conflict`), never written.

Three tables and a version live in their own schema (default
``statewright``; a PostgreSQL database is shared, and other tables in it are
none of our business)::

    instances(key PRIMARY KEY, machine, state, version)
    events(key, seq, kind, data, terminal, PRIMARY KEY (key, seq))
    UNIQUE INDEX events_one_terminal ON events(key) WHERE terminal
    batches(id PRIMARY KEY, at, digest, outcome)
                                   -- ids of committed batches, with their Unix time, the digest
                                   -- of their operations and the outcome recorded with them
    statewright_schema(version)    -- one row: SCHEMA_VERSION

States and event data are ``text`` holding `Catalog.dump`'s and
`canonical_json`'s canonical JSON, so the stored bytes are exactly those of
the other backends (``jsonb`` would re-serialise them). `PostgresStore.open`
creates the schema under a transaction-level advisory lock, so processes
opening one database at once create it once; a newer version or our tables
with other columns is `IncompatibleSchema`.

Exactly once: after the row locks, the batch id is claimed with ``INSERT ...
ON CONFLICT DO NOTHING``. A concurrent re-submission of the same batch waits
on the first one's row locks (or on its uncommitted id) and, when that one
commits, finds the id taken and returns as the first did (or, for other
operations under the id, raises `AlreadyApplied`); when it rolls back, the
re-submission applies. A failed batch rolls its claim back with it.

A lost connection
-----------------
A connection that dies is replaced: the next call reconnects (up to
``_RECONNECTS`` attempts, a short backoff between them; `Io` when the server
stays gone). A read that lost its connection is read again on the new one; a
write that lost it before ``COMMIT`` was sent was rolled back by the server
(a transaction whose client is gone never commits) and is run again. A
connection lost after ``COMMIT`` was sent leaves the outcome unknown -- the
server may have committed and the reply been lost -- so that write raises
`UnknownOutcome`, never `Io`; re-submitting the batch by its id settles it
(the `Driver` does). A log's head is read through the ``(key, seq)`` index and
the one-terminal index, never by scanning the log.

Lock waits end after ``busy_timeout`` (the session's ``lock_timeout``) with
`Busy`: never a hang, never a `Conflict`.

Cost: a single-key Cas+Append batch with a batch id is seven round trips
(``BEGIN``, lock, claim, log heads, ``UPDATE``, ``INSERT``, ``COMMIT``), each a
prepared statement after the first -- and so is a batch of thousands of
keys: it is decided in memory (`bulk.Plan`, on the locked rows and heads) and
each kind of row is written as arrays through ``unnest`` in one statement,
or several when its text passes `MAX_STATEMENT_BYTES`. ``tests/benchmarks/bench_store.py``
measured, on a shared 2-core machine (medians, +-30% between runs),
PostgreSQL 15 over a Unix socket with fsync on: about 440 batches/s from one
process and 500/s from four, against `SqliteStore`'s 400/s and 510/s on the
same machine; with fsync off about 825/s and 730/s (SQLite: 585/s, 530/s).
Row locks let writers of different keys proceed together, where SQLite
queues them all on its one write lock.

Cancellation
------------
As in `SqliteStore`, each write transaction -- ``BEGIN`` through ``COMMIT``
or ``ROLLBACK`` -- is one task shielded from its caller. A cancelled caller
flags it and, unless ``COMMIT`` (or the rollback) has already been sent,
cancels the task: asyncpg then asks the server to cancel the running
statement (a lock wait ends at once), and the task rolls back. Only when the
task is done does the caller see `CancelledError`, with the connection idle,
no lock held, and usable. A connection that cannot be rolled back is closed,
so the next call fails with `Io` instead of writing into a half transaction.

Errors
------
Every call into asyncpg goes through `_mapped`, which turns driver and server
errors into typed store errors by SQLSTATE: lock timeouts, deadlocks and
serialisation failures are `Busy`; unique violations `Conflict`; a read-only
transaction `ReadOnly`; a privilege the role lacks (SQLSTATE 42501, e.g. a
role that may only ``SELECT``, writing) `PermissionDenied`; a full disk or memory `Full`; data corruption
`Corrupt`; a lost or refused connection `Io`. Messages are one line and name
the DSN without its password.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "statewright's PostgreSQL store needs asyncpg, which is not installed: "
        "pip install 'statewright[postgres]'"
    ) from _missing

from statewright.adapters.runtime.bulk import Plan, machine_less
from statewright.adapters.runtime.shielded import CallerCancelled, settle
from statewright.adapters.runtime.store import (
    KEEP_BATCHES,
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
    check_options,
    decode_event,
    decode_receipt,
    keyed,
    open_log,
    prepare_batch,
    prepare_outcome,
    recorded_before,
)
from statewright.kernel.renamed import renamed

__all__ = ["DEFAULT_SCHEMA", "KEEP_BATCHES", "MAX_STATEMENT_BYTES", "SCHEMA_VERSION", "PostgresReader", "PostgresStore", "creation_locks", "is_dsn"]

DEFAULT_SCHEMA = "statewright"
"""The PostgreSQL schema (namespace) the store's tables live in unless `PostgresStore.open` is told another."""

SCHEMA_VERSION = 3
"""The version in ``statewright_schema``; a newer one is refused with `IncompatibleSchema`.

Version 1 kept batch ids without their time; `PostgresStore.open` upgrades it (under the
schema's advisory lock, in one transaction) by adding ``batches.at``, dated at the upgrade.
Version 2 kept them without their operations' digest and an outcome: the upgrade adds
``batches.digest`` and ``batches.outcome``, null for the ids already there (which then count
as the same batch whatever is re-submitted under them, as they did).
"""

COLUMNS = {
    "instances": ("key", "machine", "state", "version"),
    "events": ("key", "seq", "kind", "data", "terminal"),
    "batches": ("id", "at", "digest", "outcome"),
    "statewright_schema": ("version",),
}
"""The columns each of our tables must have, exactly: a table of another shape is another schema."""
UPGRADABLE: dict[str, dict[tuple[str, ...], int]] = {"batches": {("id",): 1, ("id", "at"): 2}}
"""Older shapes of a table, each with the newest version that had it: `PostgresStore.open` upgrades them."""
_RECONNECTS = 3
"""Attempts to reconnect after a lost connection before a call gives up with `Io`."""

T = TypeVar("T")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _ddl(s: str) -> tuple[str, ...]:
    """The statements that create (or complete) the schema ``s`` (already quoted) and set its version."""
    return (
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.instances (
            key text PRIMARY KEY, machine text NOT NULL, state text NOT NULL, version bigint NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.events (
            key text NOT NULL, seq bigint NOT NULL, kind text NOT NULL, data text NOT NULL,
            terminal boolean NOT NULL DEFAULT false, PRIMARY KEY (key, seq))""",
        f"CREATE UNIQUE INDEX IF NOT EXISTS events_one_terminal ON {s}.events (key) WHERE terminal",
        f"CREATE TABLE IF NOT EXISTS {s}.batches (id text PRIMARY KEY, at bigint NOT NULL, digest text, outcome text)",
        f"ALTER TABLE {s}.batches ADD COLUMN IF NOT EXISTS at bigint NOT NULL DEFAULT 0",  # version 1
        f"UPDATE {s}.batches SET at = floor(extract(epoch FROM now())) WHERE at = 0",
        f"ALTER TABLE {s}.batches ADD COLUMN IF NOT EXISTS digest text",  # version 2
        f"ALTER TABLE {s}.batches ADD COLUMN IF NOT EXISTS outcome text",
        f"CREATE INDEX IF NOT EXISTS batches_at ON {s}.batches (at)",
        f"CREATE TABLE IF NOT EXISTS {s}.statewright_schema (version integer NOT NULL)",
        f"DELETE FROM {s}.statewright_schema",
        f"INSERT INTO {s}.statewright_schema (version) VALUES ({SCHEMA_VERSION})",
    )


class _Statements:
    """The store's SQL, built once per store from its schema name."""

    def __init__(self, schema: str) -> None:
        s = f'"{schema}"'
        self.ddl = _ddl(s)
        self.lock = (
            f'SELECT key, machine, version FROM {s}.instances WHERE key = ANY($1::text[]) '
            f'ORDER BY key COLLATE "C" FOR UPDATE'
        )
        self.creating = "SELECT pg_advisory_xact_lock(h) FROM unnest($1::bigint[]) AS h"  # in the array's order
        self.claim = (f"INSERT INTO {s}.batches (id, at, digest, outcome) VALUES ($1, $2, $3, $4) "
                      "ON CONFLICT DO NOTHING RETURNING id")
        self.receipt = f"SELECT digest, outcome FROM {s}.batches WHERE id = $1"
        self.prune = f"DELETE FROM {s}.batches WHERE at < $1"
        # each key's last seq (backwards down the (key, seq) index) and whether it has a terminal
        # event (the one-terminal index): two index probes a key, never a scan of a log
        last = f"(SELECT e.seq FROM {s}.events e WHERE e.key = k.key ORDER BY e.seq DESC LIMIT 1)"
        ended = f"EXISTS (SELECT 1 FROM {s}.events e WHERE e.key = k.key AND e.terminal)"
        self.heads = f"SELECT k.key, {last}, {ended} FROM unnest($1::text[]) AS k(key)"
        self.create = (
            f"INSERT INTO {s}.instances (key, machine, state, version) "
            f"SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])"
        )
        self.update = (
            f"UPDATE {s}.instances AS i SET state = u.state, version = u.version "
            f"FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(key, state, version, expected) "
            f"WHERE i.key = u.key AND i.version = u.expected"
        )
        self.update_one = f"UPDATE {s}.instances SET state = $1, version = $2 WHERE key = $3 AND version = $4"
        self.append = (
            f"INSERT INTO {s}.events (key, seq, kind, data, terminal) "
            f"SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[])"
        )
        self.load = f"SELECT machine, state, version FROM {s}.instances WHERE key = $1"
        self.log = f"SELECT seq, kind, data, terminal FROM {s}.events WHERE key = $1 AND seq >= $2"
        self.keys = f"SELECT key FROM {s}.instances"
        self.version = f"SELECT max(version) FROM {s}.statewright_schema"
        self.schema_lock = "SELECT pg_advisory_xact_lock(hashtext('statewright schema ' || $1))"
        self.columns = (
            "SELECT c.relname, a.attname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname, a.attnum"
        )


@dataclass(slots=True)
class _Flags:
    """What the caller and the transaction task tell each other about one write."""

    abort: bool = False  # the caller was cancelled: roll back unless COMMIT was sent
    ending: bool = False  # COMMIT or ROLLBACK was sent: too late to cancel the task


class PostgresStore(SingleWrites):
    """An `adapters.runtime.store.Store` in a PostgreSQL database (one connection per store).

    ``PostgresStore.open(dsn, catalog)`` connects, checks or creates the
    schema, and returns the store; ``async with`` closes it. The examples
    need a server, so they live in ``tests/adapters/test_postgres.py``.
    """

    def __init__(
        self, conn: Any, catalog: Catalog, *, schema: str, busy_timeout: float, where: str,
        keep_batches: float = KEEP_BATCHES, clock: Callable[[], float] = time.time, dsn: str | None = None,
    ) -> None:
        """Use `PostgresStore.open`; this wraps a connection already set up by it (``dsn``: to reconnect)."""
        self._retention = Retention(keep_batches, clock)
        self.catalog = catalog
        self._conn = conn
        self._dsn = dsn
        self._closed = False
        self._schema = schema
        self._sql = _Statements(schema)
        self._busy_timeout = busy_timeout
        self._where = where
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, dsn: str, catalog: Catalog, *, busy_timeout: float = 5.0, schema: str = DEFAULT_SCHEMA,
        keep_batches: float = KEEP_BATCHES, clock: Callable[[], float] = time.time,
    ) -> PostgresStore:
        """Connect to ``dsn`` and return the store in its ``schema``, creating the schema if needed.

        Lock waits of this store's writes end after ``busy_timeout`` seconds
        with `Busy`. A schema of a newer version, or our tables with other
        columns, raise `IncompatibleSchema`; a schema holding only other tables
        raises `NotAStore`; a server that cannot be reached or refuses the
        connection raises `Io`; a role without the privileges to read our tables
        `PermissionDenied` -- all before anything is written. A ``busy_timeout``,
        ``keep_batches`` or ``schema`` no store can honour (`check_options`) raises
        `BadOption` before connecting.

        Batch ids are remembered ``keep_batches`` seconds (default a week) by
        ``clock`` (this process's: clocks of several machines need only agree to
        well within that); older ones are deleted as new ones are recorded, at
        most every tenth of that and at most hourly. A re-submission later than
        that, of a batch that had landed, is no longer recognised.
        """
        check_options(busy_timeout=busy_timeout, keep_batches=keep_batches)
        if not _NAME.fullmatch(schema):
            raise BadOption(f"schema name {schema!r} is not a plain lower-case identifier")
        where = _redact(dsn)
        conn = await _connect(dsn, where, busy_timeout)
        store = cls(conn, catalog, schema=schema, busy_timeout=busy_timeout, where=where,
                    keep_batches=keep_batches, clock=clock, dsn=dsn)
        try:
            with _mapped(None, where, conn):
                current = await store._inspect()
            if not current:
                await store._guarded(None, store._create_schema)
            return store
        except BaseException:
            conn.terminate()
            raise

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- reads ------------------------------------------------------------------

    async def load(self, key: str) -> Record:
        row = await self._read(key, lambda conn: conn.fetchrow(self._sql.load, key))
        if row is None:
            raise NotFound(f"no instance {key!r}", key=key)
        machine, text, version = str(row[0]), str(row[1]), int(row[2])
        return Record(key, machine, self.catalog.load(machine, text, key=key), version)

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        sql, params = self._sql.log, [key, _int8(start)]
        if stop is not None:
            sql, params = sql + " AND seq < $3", [*params, _int8(stop)]
        rows = await self._read(key, lambda conn: conn.fetch(sql + " ORDER BY seq", *params))
        return [Event(key, int(seq), str(kind), decode_event(key, int(seq), data), bool(end)) for seq, kind, data, end in rows]

    async def log_head(self, key: str) -> tuple[int, bool]:
        (_, head, ended), = await self._read(key, lambda conn: conn.fetch(self._sql.heads, [key]))
        return (0 if head is None else int(head)), bool(ended)

    async def receipt(self, batch: str) -> Receipt | None:
        row = await self._read(None, lambda conn: conn.fetchrow(self._sql.receipt, batch))
        return None if row is None else decode_receipt(batch, row[0], row[1])

    async def keys(self) -> list[str]:
        rows = await self._read(None, lambda conn: conn.fetch(self._sql.keys))
        return sorted(str(key) for (key,) in rows)

    async def _read(self, key: str | None, query: Callable[[Any], Awaitable[T]]) -> T:
        """Run one read on a live connection; a read that lost its connection is read again on a new one."""
        async with self._lock:
            for tries in (1, 2):
                await self._live(key)
                conn = self._conn
                try:
                    with _mapped(key, self._where, conn):
                        return await query(conn)
                except Io:
                    if tries == 2 or not conn.is_closed():
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

    async def _live(self, key: str | None) -> None:
        """Make sure the store has an open connection: reconnect a lost one, `Io` when the server stays gone."""
        if self._closed:
            raise StoreError(f"{self._where}: the store is closed", key=key)
        if not self._conn.is_closed():
            return
        if self._dsn is None:
            raise Io(f"{self._where}: the connection was lost and this store cannot reconnect", key=key)
        last: StoreError | None = None
        for attempt in range(_RECONNECTS):
            if attempt:
                await asyncio.sleep(0.05 * 2 ** (attempt - 1))
            try:
                self._conn = await _connect(self._dsn, self._where, self._busy_timeout)
                return
            except Io as exc:
                last = exc
        raise Io(f"{self._where}: the connection was lost and {_RECONNECTS} attempts to reconnect failed ({last})",
                 key=key) from last

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._conn.is_closed():
                return
            try:
                await self._conn.close(timeout=max(self._busy_timeout, 1.0))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                self._conn.terminate()  # the server went away: nothing is left to close politely

    # -- writes -----------------------------------------------------------------

    async def _write(self, ops: Sequence[Op], batch: str | None = None, outcome: Any = None) -> list[Record | int]:
        """Validate and serialise ``ops`` (no SQL yet), then apply them in one guarded transaction."""
        prepared = prepare_batch(self.catalog, ops, batch)
        noted = prepare_outcome(self.catalog, batch, outcome)
        digest = batch_digest(ops, prepared, limits=self.catalog.limits) if batch is not None else ""
        key = ops[0].key if ops and isinstance(ops[0], (Cas, Append, AppendTerminal)) else None
        return await self._guarded(key, lambda: self._batch(ops, list(prepared), batch, digest, noted))

    async def _batch(self, ops: Sequence[Op], prepared: list[Any], batch: str | None, digest: str,
                     noted: str | None) -> list[Record | int]:
        """The body of a write transaction: lock the keys, claim the batch id, decide in memory, then write.

        The id is claimed with its operations' ``digest`` and the outcome
        ``noted``; an id recorded before answers at once (nothing applied when
        the digest is this batch's, `AlreadyApplied` when another's). The whole
        batch is decided on the locked rows and log heads (`bulk.Plan`: the
        port's rules, op by op) before anything is written; then each kind of
        row is written with one statement of arrays (`_flush`).
        """
        created = {op.key for op in ops if isinstance(op, Cas) and op.expected == 0}
        if created:  # keys with no row to lock yet: their advisory locks, in one global order, come first
            await self._conn.execute(self._sql.creating, creation_locks(self._schema, created))
        keys = sorted({op.key for op in keyed(ops)})
        rows = {str(k): (str(m), int(v)) for k, m, v in await self._conn.fetch(self._sql.lock, keys)}
        if batch is not None:
            now = self._retention.clock()
            if await self._conn.fetchval(self._sql.claim, batch, int(now), digest, noted) is None:
                row = await self._conn.fetchrow(self._sql.receipt, batch)
                found = None if row is None else decode_receipt(batch, row[0], row[1])
                if recorded_before(batch, digest, found):
                    return []  # committed before: that was its outcome, and nothing is applied twice
                raise AssertionError(f"batch {batch[:16]} was claimed and is not recorded")  # pragma: no cover
            cutoff = self._retention.cutoff(now)
            if cutoff is not None:  # forget ids past their retention, in this same transaction
                await self._conn.execute(self._sql.prune, math.ceil(cutoff))  # `at` is whole seconds
        machine_less(self.catalog, ops, prepared, rows)  # InvalidState before any version or head is compared
        logs = sorted({op.key for op in keyed(ops) if not isinstance(op, Cas)})
        heads: dict[str, tuple[int, bool]] = {}
        if logs:
            heads = {str(k): (0 if h is None else int(h), bool(e))
                     for k, h, e in await self._conn.fetch(self._sql.heads, logs)}
        plan = Plan(self.catalog, dict(rows), heads)
        out = [plan.apply(op, payload) for op, payload in zip(ops, prepared)]
        await self._flush(plan)
        return out

    async def _flush(self, plan: Plan) -> None:
        """Write a decided batch: new instances, changed instances and events, each as arrays through ``unnest``.

        Each kind of row goes in as few statements as `MAX_STATEMENT_BYTES` allows
        (one, unless the batch carries hundreds of megabytes); a row alone over
        it is `InvalidState` before its statement is sent.
        """
        inserts = [(k, m, text, v) for k, (m, text, v) in plan.inserts.items()]
        for chunk in _chunks(inserts, lambda r: (r[0], r[1], r[2]), "a state"):
            await self._conn.execute(self._sql.create, *map(list, zip(*chunk)))
        updates = [(k, text, v, read) for k, (text, v, read) in plan.updates.items()]
        for changed in _chunks(updates, lambda r: (r[0], r[1]), "a state"):
            if len(changed) == 1:  # the driver's usual batch: a plain update by key is cheaper than a join
                key, text, version, read = changed[0]
                status = await self._conn.execute(self._sql.update_one, text, version, key, read)
            else:
                status = await self._conn.execute(self._sql.update, *map(list, zip(*changed)))
            if status != f"UPDATE {len(changed)}":  # cannot happen on locked rows; never write past it
                raise Conflict(f"an instance of the batch moved under it ({status} of {len(changed)})")
        for events in _chunks(plan.events, lambda r: (r[0], r[2], r[3]), "an event"):
            await self._conn.execute(self._sql.append, *map(list, zip(*events)))

    # -- schema -----------------------------------------------------------------

    async def _inspect(self) -> bool:
        """Refuse a schema this release cannot use; True when it is ours and current (no write needed)."""
        shapes: dict[str, list[str]] = {}
        for table, column in await self._conn.fetch(self._sql.columns, self._schema):
            shapes.setdefault(str(table), []).append(str(column))
        version = 0
        if "statewright_schema" in shapes and shapes["statewright_schema"] == ["version"]:
            version = int(await self._conn.fetchval(self._sql.version) or 0)
        where = f"{self._where} (schema {self._schema})"
        if version > SCHEMA_VERSION:
            raise IncompatibleSchema(
                f"{where}: schema version {version} is newer than this statewright's ({SCHEMA_VERSION}); upgrade statewright"
            )
        if shapes and not {"instances", "statewright_schema"} & shapes.keys():
            raise NotAStore(f"{where}: not a statewright store (it holds {', '.join(sorted(shapes))})")
        for table, columns in shapes.items():
            if (table in COLUMNS and tuple(columns) != COLUMNS[table]
                    and version > UPGRADABLE.get(table, {}).get(tuple(columns), -1)):
                raise IncompatibleSchema(
                    f"{where}: table {table} has columns {', '.join(columns)}, not {', '.join(COLUMNS[table])}"
                )
        return version == SCHEMA_VERSION and COLUMNS.keys() <= shapes.keys()

    async def _create_schema(self) -> None:
        """Create (or complete) the schema, serialised with other processes by an advisory lock."""
        await self._conn.execute(self._sql.schema_lock, self._schema)
        if await self._inspect():
            return  # another process created it while this one waited for the lock
        for statement in self._sql.ddl:
            await self._conn.execute(statement)

    # -- plumbing ---------------------------------------------------------------

    async def _guarded(self, key: str | None, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction, as a task the caller's cancellation cannot interrupt.

        A cancelled caller flags the task, cancels it unless COMMIT or ROLLBACK
        was already sent (the task then rolls back), waits for it to finish,
        and only then re-raises: the connection is idle and holds no lock.
        """
        async with self._lock:
            for tries in (1, 2):
                await self._live(key)
                conn = self._conn
                flags = _Flags()
                job = asyncio.ensure_future(self._transaction(key, body, flags))
                try:
                    return await asyncio.shield(job)
                except asyncio.CancelledError:
                    flags.abort = True
                    if not flags.ending:
                        job.cancel()
                    await settle(job)
                    raise
                except Io:
                    # the connection died before COMMIT was sent (after it: UnknownOutcome),
                    # so the server rolled the transaction back: run it again on a new one
                    if tries == 2 or not conn.is_closed():
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

    async def _transaction(self, key: str | None, body: Callable[[], Awaitable[T]], flags: _Flags) -> T:
        """``BEGIN`` ... ``COMMIT``; anything raised (a cancellation too) rolls back first.

        A connection lost once ``COMMIT`` was sent is `UnknownOutcome`: the
        server may have committed, and only the reply been lost.
        """
        try:
            with _mapped(key, self._where, self._conn):
                await self._conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                out = await body()
                if flags.abort:
                    raise CallerCancelled("the caller was cancelled before COMMIT")
                flags.ending = True
                try:
                    await self._conn.execute("COMMIT")
                except BaseException as exc:
                    if _lost_connection(exc):
                        raise UnknownOutcome(
                            f"{self._where}: the connection was lost after COMMIT was sent, so the write may or may "
                            f"not have committed; re-submit it by its batch id to know ({_line(exc)})", key=key,
                        ) from exc
                    raise
            return out
        except BaseException:
            flags.ending = True
            await self._rollback()
            raise

    async def _rollback(self) -> None:
        """``ROLLBACK`` (a no-op after a failed COMMIT); a connection that cannot do it is closed."""
        if self._conn.is_closed():
            return
        try:
            await self._conn.execute("ROLLBACK")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            self._conn.terminate()  # never leave a half transaction for the next write to join


MAX_STATEMENT_BYTES = 1_000_000_000
"""The most text one statement of a write carries, in UTF-8 bytes.

PostgreSQL refuses a protocol message, and a single value, over 1 GiB
(1,073,741,823 bytes) and then drops the connection; this ceiling keeps a
margin under that for the statement's other parameters and framing. A batch
over it is written in several statements; a single row over it (a state, or
an event, of a gigabyte: `Limits` raised that far) is `InvalidState` before
anything of it is sent, and the store stays usable. (SQLite's own ceiling,
1,000,000,000 bytes a value, answers the same way.)
"""

_ROW_OVERHEAD = 64  # bytes a row costs a statement besides its text: lengths, numbers, array headers


def _chunks(rows: list[T], texts: Callable[[T], tuple[str, ...]], what: str) -> Iterator[list[T]]:
    """``rows`` cut into runs whose text stays within `MAX_STATEMENT_BYTES`; `InvalidState` for a row alone over it."""
    limit = MAX_STATEMENT_BYTES
    chunk: list[T] = []
    size = 0
    for row in rows:
        cost = _ROW_OVERHEAD + sum(_utf8_size(t) for t in texts(row))
        if cost > limit:
            key = texts(row)[0]
            raise InvalidState(f"{key!r}: {what} of {cost - _ROW_OVERHEAD:,} bytes is over PostgreSQL's limit of "
                               f"{limit:,} bytes for one statement; nothing was written", key=key)
        if chunk and size + cost > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += cost
    if chunk:
        yield chunk


def _utf8_size(text: str) -> int:
    """UTF-8 bytes of ``text``, without encoding it when it is ASCII (a flag CPython keeps on every str)."""
    return len(text) if text.isascii() else len(text.encode())


def creation_locks(schema: str, keys: Iterable[str]) -> list[int]:
    """The advisory lock ids a batch creating ``keys`` takes first, sorted: one 64-bit hash per key and schema.

    Every creating batch takes them in this one order before any row lock, so
    two batches creating the same keys in opposite orders queue on the first
    id they share instead of deadlocking on each other's inserts. Two keys
    sharing an id (a hash collision) only serialise their creators.

    >>> a = creation_locks("statewright", ["y", "x"])
    >>> a == sorted(a) == creation_locks("statewright", ["x", "y", "x"]) != creation_locks("other", ["x", "y"])
    True
    """
    ids = {int.from_bytes(hashlib.blake2b(f"{schema}\0{key}".encode(), digest_size=8).digest(), "big", signed=True)
           for key in keys}
    return sorted(ids)


async def _connect(dsn: str, where: str, busy_timeout: float) -> Any:
    """A new connection for a store: its lock timeout is the busy timeout; `Io` when the server cannot be reached."""
    millis = max(1, round(busy_timeout * 1000))  # 0 would mean "wait forever" to PostgreSQL
    with _mapped(None, where, opening=True):
        try:
            return await asyncpg.connect(
                dsn,
                timeout=max(busy_timeout, 10.0),
                server_settings={"lock_timeout": f"{millis}ms", "application_name": "statewright"},
            )
        except ValueError as exc:  # a DSN asyncpg cannot parse
            raise StoreError(f"{where}: not a usable PostgreSQL DSN ({_line(exc)})") from None


def _lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone (not that the server refused the statement)."""
    if isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return True
    state = str(getattr(exc, "sqlstate", "") or "") if isinstance(exc, asyncpg.PostgresError) else ""
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


def is_dsn(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://`` URL).

    >>> is_dsn("postgresql://app@db/orders"), is_dsn("shop.db")
    (True, False)
    """
    return text.startswith(("postgresql://", "postgres://"))


class PostgresReader:
    """A read-only look at a store's rows, raw, in one database snapshot: what ``statewright inspect`` reads.

    `PostgresReader.open` connects with ``default_transaction_read_only`` set, checks
    that the schema is a statewright store this release reads (`NotAStore`,
    `IncompatibleSchema` otherwise; a missing database or server is `Io`), and
    begins one ``REPEATABLE READ READ ONLY`` transaction, so every later read
    sees the same moment and nothing can be written through it. Rows come back
    undecoded -- deciding what is damaged is the reader's business.
    """

    def __init__(self, conn: Any, sql: _Statements, where: str) -> None:
        self._conn, self._sql, self.where = conn, sql, where

    @classmethod
    async def open(cls, dsn: str, *, schema: str = DEFAULT_SCHEMA, timeout: float = 10.0) -> PostgresReader:
        if not _NAME.fullmatch(schema):
            raise BadOption(f"schema name {schema!r} is not a plain lower-case identifier")
        where = _redact(dsn)
        with _mapped(None, where, opening=True):
            try:
                conn = await asyncpg.connect(
                    dsn, timeout=timeout,
                    server_settings={"default_transaction_read_only": "on", "application_name": "statewright inspect"},
                )
            except ValueError as exc:
                raise StoreError(f"{where}: not a usable PostgreSQL DSN ({_line(exc)})") from None
        try:
            with _mapped(None, where, conn):
                shapes: dict[str, list[str]] = {}
                for table, column in await conn.fetch(_Statements(schema).columns, schema):
                    shapes.setdefault(str(table), []).append(str(column))
                if "instances" not in shapes or "events" not in shapes:
                    raise NotAStore(f"{where}: not a statewright store (no tables in schema {schema})")
                sql = _Statements(schema)
                version = int(await conn.fetchval(sql.version) or 0) if "statewright_schema" in shapes else 0
                if version > SCHEMA_VERSION:
                    raise IncompatibleSchema(
                        f"{where}: schema version {version} is newer than this statewright reads ({SCHEMA_VERSION}): "
                        "inspect it with the statewright that wrote it"
                    )
                for table in ("instances", "events"):
                    if tuple(shapes[table]) != COLUMNS[table]:
                        raise IncompatibleSchema(f"{where}: table {table} has columns {', '.join(shapes[table])}")
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return cls(conn, sql, where)
        except BaseException:
            conn.terminate()
            raise

    async def keys(self) -> list[str]:
        """Every instance key, sorted."""
        with _mapped(None, self.where, self._conn):
            return sorted(str(k) for (k,) in await self._conn.fetch(self._sql.keys))

    async def record(self, key: str) -> tuple[str, str, int] | None:
        """``(machine, state text, version)`` of ``key``, undecoded; None when it has no row."""
        with _mapped(key, self.where, self._conn):
            row = await self._conn.fetchrow(self._sql.load, key)
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))

    async def log(self, key: str) -> list[tuple[int, str, str, bool]]:
        """``(seq, kind, data text, terminal)`` of every event of ``key``, in order, undecoded."""
        with _mapped(key, self.where, self._conn):
            rows = await self._conn.fetch(self._sql.log + " ORDER BY seq", key, 1)
        return [(int(seq), str(kind), str(data), bool(end)) for seq, kind, data, end in rows]

    async def close(self) -> None:
        """End the snapshot and the connection (a read-only transaction has nothing to commit)."""
        self._conn.terminate()


# -- the error boundary -------------------------------------------------------------

_BY_STATE: dict[str, type[StoreError]] = {
    "55P03": Busy,  # lock_not_available: lock_timeout ran out
    "40P01": Busy,  # deadlock_detected
    "40001": Busy,  # serialization_failure
    "57014": Busy,  # query_canceled (a statement_timeout)
    "23505": Conflict,  # unique_violation: a race the constraints caught
    "25006": ReadOnly,  # read_only_sql_transaction
    "42501": PermissionDenied,  # insufficient_privilege: a role that may only read, writing
    "53000": Full,  # insufficient_resources
    "53100": Full,  # disk_full
    "53200": Full,  # out_of_memory
    "XX001": Corrupt,  # data_corrupted
    "XX002": Corrupt,  # index_corrupted
    "57P01": Io,  # admin_shutdown
    "57P02": Io,  # crash_shutdown
    "57P03": Io,  # cannot_connect_now
    "3D000": Io,  # invalid_catalog_name: no such database
    "28000": Io,  # invalid_authorization_specification
    "28P01": Io,  # invalid_password
    "58030": Io,  # io_error
}


@contextmanager
def _mapped(key: str | None, where: str, conn: Any = None, *, opening: bool = False) -> Iterator[None]:
    """Turn every asyncpg and OS error raised inside into a typed `StoreError` with a one-line message.

    A driver that lost track of its protocol (``InternalClientError``: seen
    when the server ends the session between two statements) cannot be used
    again, so ``conn`` is closed and the error is `Io`, like any lost connection.
    """
    try:
        yield
    except StoreError:
        raise
    except asyncpg.PostgresError as exc:
        state = str(getattr(exc, "sqlstate", "") or "")
        kind = _BY_STATE.get(state) or (Io if state.startswith("08") else StoreError)
        raise kind(_message(kind, key, where, _line(exc), opening), key=key) from exc
    except asyncpg.InterfaceError as exc:
        closed = "closed" in str(exc) or "connection" in type(exc).__name__.lower()
        kind = Io if closed else StoreError
        raise kind(_message(kind, key, where, _line(exc), opening), key=key) from exc
    except asyncpg.InternalClientError as exc:
        if conn is not None:
            conn.terminate()
        raise Io(_message(Io, key, where, _line(exc), opening), key=key) from exc
    except OSError as exc:  # also TimeoutError, connection refused or reset
        raise Io(_message(Io, key, where, _line(exc), opening), key=key) from exc


def _message(kind: type[StoreError], key: str | None, where: str, detail: str, opening: bool) -> str:
    if opening:
        return f"{where}: cannot open the store: {detail}"
    if kind is Busy:
        return f"{where}: stayed locked past the busy timeout ({detail})"
    if kind is Conflict:
        return f"{key or 'a write'} lost a race the database caught: {detail}"
    if kind is Io:
        return f"{where}: the server cannot be reached or went away ({detail})"
    return f"{where}: {detail}"


def _int8(n: int) -> int:
    """``n`` clamped to PostgreSQL's bigint, which holds every sequence number a log can reach."""
    return min(max(n, -(2**63)), 2**63 - 1)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _redact(dsn: str) -> str:
    """``dsn`` without its password (in the URL's user part or a ``password=`` parameter)."""
    dsn = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|[^&\s]+)", r"\1***", dsn, flags=re.IGNORECASE)


# -- renamed names ------------------------------------------------------------------

_RENAMED = {"Snapshot": "PostgresReader"}

if TYPE_CHECKING:
    Snapshot = PostgresReader
else:
    __getattr__ = renamed(__name__, _RENAMED, globals())
