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

The tables and a version live in their own schema (default
``statewright``; a PostgreSQL database is shared, and other tables in it are
none of our business)::

    instances(key PRIMARY KEY, machine, state, version)
    events(key, seq, kind, data, terminal, position, at, bucket, PRIMARY KEY (key, seq))
    UNIQUE INDEX events_one_terminal ON events(key) WHERE terminal
    UNIQUE INDEX events_position ON events(position)   -- the read side's global log (`readside`)
    positions(last)                -- one row: the last position taken
    consumers(name, partition, partitions, cursor, owner, until, PRIMARY KEY (name, partition))
    dead_letters(consumer, partition, position, key, seq, kind, data, code, error, attempts, at,
                 PRIMARY KEY (consumer, position))
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

Positions
---------
Every event takes a position from the one row of ``positions``: the
statement that inserts a batch's events is ``WITH c AS (UPDATE positions
SET last = last + n RETURNING ...) INSERT INTO events ... SELECT pg_notify(...)``,
the batch's *last* before ``COMMIT``. Its row lock orders the batches that
append: a second one waits at that statement until the first commits (or
rolls back) and then, at READ COMMITTED, updates the row as the first left
it. So the lock is held only from the last statement to the commit -- the
locks, reads and writes of instance rows before it run in parallel -- and a
batch that rolls back rolls its update back: its numbers are taken by the
next one, no gap. A batch with no events (an `Advance`, a `Cas`) never
touches the row. (One whose events pass `MAX_STATEMENT_BYTES` takes its
positions by a plain update first and holds the lock for its inserts.)

Why no reader sees position p+1 committed while p is not: the batch that
took p+1 updated the row only after the one that took p let it go (a row
lock is a wait on the holder's transaction id lock), and PostgreSQL releases
a transaction's locks only after its commit is visible (``CommitTransaction``:
the commit record, then ``ProcArrayEndTransaction``, which makes it visible
to new snapshots, then the locks). Any snapshot that sees p+1's batch was
taken after it committed, hence after p's was visible.
`read` is one statement, one snapshot: the events above a cursor that it
returns are a gap-free prefix. ``tests/adapters/test_postgres_readside.py``
checks it with concurrent writers (connections and processes) and shows the
same checker catching the gaps of positions taken from a ``SEQUENCE`` at
the start of each transaction (the classic outbox gap).

Consumers' rows are locked (``FOR UPDATE``, in name and partition order)
after the instance rows and before the counter, so a batch with `Advance` or
`DeadLetter` keeps the one lock order; `lease` is one conditional
``UPDATE`` (free, expired by the store's clock, or the owner's own).
`clear` locks ``instances`` against writers first (every appending batch
holds a row lock there from its first statement to its commit), so no event
commits between its check that no consumer lags and its deletes.

Waking on commit
----------------
The ``pg_notify`` on the channel named after the schema (payload: the last
position) is delivered by PostgreSQL at commit, to every connection that
listens. `wait` opens one listening connection per store, lazily, and opens
it again when it is lost (its loss wakes the waiters, who read the counter
before they sleep again); it also reads the counter every ``poll`` seconds
(default `POLL`), so a missed notification costs at most that. Commits
through the store itself wake its waiters at once. ``close`` closes it.

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

Positions cost no round trip (the counter's update and the ``NOTIFY`` ride in
the statement that inserts the events), but the counter's lock is held
through ``COMMIT`` -- its WAL flush included -- so appending batches no longer
share a flush (group commit) and commit one at a time. Measured before and
after on one server, alternating rounds (fsync on, the same batch; medians of
6 rounds, on a shared 2-core machine whose load made absolute figures swing
2-4x between runs, the ratios much less): one process 0.85-0.99x, four 0.69-0.70x;
with fsync off one 1.0x, four 0.77x.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
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

from statewright.adapters.runtime.bulk import Plan, consumers_of, machine_less
from statewright.adapters.runtime.readside import (
    BUCKETS,
    Consumer,
    DeadLettered,
    Start,
    Unacknowledged,
    Wakeup,
    bucket_of,
    check_read,
    follow,
    wait_for_commit,
)
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
    check_name,
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

SCHEMA_VERSION = 4
"""The version in ``statewright_schema``; a newer one is refused with `IncompatibleSchema`.

Version 1 kept batch ids without their time; `PostgresStore.open` upgrades it (under the
schema's advisory lock, in one transaction) by adding ``batches.at``, dated at the upgrade.
Version 2 kept them without their operations' digest and an outcome: the upgrade adds
``batches.digest`` and ``batches.outcome``, null for the ids already there (which then count
as the same batch whatever is re-submitted under them, as they did).
Version 3 had no read side: the upgrade adds ``events.position``, ``at`` and ``bucket`` --
numbering the events already there 1, 2, 3, ... in the byte order of their keys, then by
seq (there is no commit order to recover), dated at the upgrade by the store's clock --
and the ``positions``, ``consumers`` and ``dead_letters`` tables.
"""

COLUMNS = {
    "instances": ("key", "machine", "state", "version"),
    "events": ("key", "seq", "kind", "data", "terminal", "position", "at", "bucket"),
    "batches": ("id", "at", "digest", "outcome"),
    "positions": ("last",),
    "consumers": ("name", "partition", "partitions", "cursor", "owner", "until"),
    "dead_letters": ("consumer", "partition", "position", "key", "seq", "kind", "data", "code", "error", "attempts",
                     "at"),
    "statewright_schema": ("version",),
}
"""The columns each of our tables must have, exactly: a table of another shape is another schema."""
UPGRADABLE: dict[str, dict[tuple[str, ...], int]] = {
    "batches": {("id",): 1, ("id", "at"): 2},
    "events": {("key", "seq", "kind", "data", "terminal"): 3},
}
"""Older shapes of a table, each with the newest version that had it: `PostgresStore.open` upgrades them."""
_RECONNECTS = 3
"""Attempts to reconnect after a lost connection before a call gives up with `Io`."""
POLL = 0.5
"""Seconds `PostgresStore.wait` waits for a ``NOTIFY`` before it reads the counter anyway (a missed one)."""

T = TypeVar("T")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _ddl(s: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The statements that create (or complete) the schema ``s`` (already quoted), in two runs.

    Between the two, `PostgresStore._number_events` gives the events of a
    version 3 schema their positions, times and buckets; the second run then
    makes those columns required, indexes them and sets the version.
    """
    first = (
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.instances (
            key text PRIMARY KEY, machine text NOT NULL, state text NOT NULL, version bigint NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.events (
            key text NOT NULL, seq bigint NOT NULL, kind text NOT NULL, data text NOT NULL,
            terminal boolean NOT NULL DEFAULT false, position bigint, at double precision, bucket integer,
            PRIMARY KEY (key, seq))""",
        f"ALTER TABLE {s}.events ADD COLUMN IF NOT EXISTS position bigint, "  # version 3
        "ADD COLUMN IF NOT EXISTS at double precision, ADD COLUMN IF NOT EXISTS bucket integer",
        f"CREATE UNIQUE INDEX IF NOT EXISTS events_one_terminal ON {s}.events (key) WHERE terminal",
        f"CREATE TABLE IF NOT EXISTS {s}.batches (id text PRIMARY KEY, at bigint NOT NULL, digest text, outcome text)",
        f"ALTER TABLE {s}.batches ADD COLUMN IF NOT EXISTS at bigint NOT NULL DEFAULT 0",  # version 1
        f"UPDATE {s}.batches SET at = floor(extract(epoch FROM now())) WHERE at = 0",
        f"ALTER TABLE {s}.batches ADD COLUMN IF NOT EXISTS digest text",  # version 2
        f"ALTER TABLE {s}.batches ADD COLUMN IF NOT EXISTS outcome text",
        f"CREATE INDEX IF NOT EXISTS batches_at ON {s}.batches (at)",
    )
    second = (
        f"ALTER TABLE {s}.events ALTER COLUMN position SET NOT NULL, ALTER COLUMN at SET NOT NULL, "
        "ALTER COLUMN bucket SET NOT NULL",
        f"CREATE UNIQUE INDEX IF NOT EXISTS events_position ON {s}.events (position)",
        f"CREATE TABLE IF NOT EXISTS {s}.positions (last bigint NOT NULL)",
        f"INSERT INTO {s}.positions (last) SELECT coalesce(max(position), 0) FROM {s}.events "
        f"WHERE NOT EXISTS (SELECT 1 FROM {s}.positions)",
        f"""CREATE TABLE IF NOT EXISTS {s}.consumers (
            name text NOT NULL, partition integer NOT NULL, partitions integer NOT NULL, cursor bigint NOT NULL,
            owner text, until double precision NOT NULL DEFAULT 0, PRIMARY KEY (name, partition))""",
        f"""CREATE TABLE IF NOT EXISTS {s}.dead_letters (
            consumer text NOT NULL, partition integer NOT NULL, position bigint NOT NULL, key text NOT NULL,
            seq bigint NOT NULL, kind text NOT NULL, data text NOT NULL, code text NOT NULL, error text NOT NULL,
            attempts integer NOT NULL, at double precision NOT NULL, PRIMARY KEY (consumer, position))""",
        f"CREATE TABLE IF NOT EXISTS {s}.statewright_schema (version integer NOT NULL)",
        f"DELETE FROM {s}.statewright_schema",
        f"INSERT INTO {s}.statewright_schema (version) VALUES ({SCHEMA_VERSION})",
    )
    return first, second


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
        # the events with their positions, in ONE statement that is the batch's last before COMMIT: it takes
        # the counter row's lock (held to COMMIT) and queues the NOTIFY, which PostgreSQL delivers at COMMIT
        columns = "key, seq, kind, data, terminal, position, at, bucket"
        self.append = (
            f"WITH c AS (UPDATE {s}.positions SET last = last + $6::bigint RETURNING last - $6::bigint AS base), "
            f"e AS (INSERT INTO {s}.events ({columns}) "
            f"SELECT u.key, u.seq, u.kind, u.data, u.terminal, c.base + u.n, $7::float8, u.bucket FROM c, "
            f"unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[], $8::integer[]) "
            f"WITH ORDINALITY AS u(key, seq, kind, data, terminal, bucket, n)) "
            f"SELECT c.base + $6::bigint, pg_notify($9::text, (c.base + $6::bigint)::text) FROM c"
        )
        # a batch whose events span several statements takes its positions first, then inserts them numbered
        self.take = (f"UPDATE {s}.positions SET last = last + $1::bigint "
                     "RETURNING last, pg_notify($2::text, last::text)")
        self.append_numbered = (
            f"INSERT INTO {s}.events ({columns}) SELECT u.key, u.seq, u.kind, u.data, u.terminal, u.position, "
            f"$7::float8, u.bucket FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[], "
            f"$6::bigint[], $8::integer[]) AS u(key, seq, kind, data, terminal, position, bucket)"
        )
        self.load = f"SELECT machine, state, version FROM {s}.instances WHERE key = $1"
        self.log = f"SELECT seq, kind, data, terminal FROM {s}.events WHERE key = $1 AND seq >= $2"
        self.log_at = f"SELECT seq, kind, data, terminal, position FROM {s}.events WHERE key = $1 AND seq >= $2"
        # -- the read side
        event = "key, seq, kind, data, terminal, position"
        self.latest = f"SELECT last FROM {s}.positions"
        self.read = (
            f"SELECT {event} FROM {s}.events WHERE position > $1 "
            "AND ($2::integer IS NULL OR bucket % $2::integer = $3::integer) "
            "AND ($4::text[] IS NULL OR kind = ANY($4::text[])) ORDER BY position LIMIT $5"
        )
        self.replay = f"SELECT {event} FROM {s}.events ORDER BY position"
        self.range = f"SELECT {event} FROM {s}.events WHERE key = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq"
        # events appended before $1, at or below every consumer's cursor, and not the last of their key: a scan of
        # the position index up to that cursor (no index on `at`, which every append would pay for; prune is rare)
        self.prune_events = (
            f"DELETE FROM {s}.events e WHERE e.at < $1::float8 AND e.position <= "
            f"(SELECT coalesce(min(c.cursor), (SELECT last FROM {s}.positions)) FROM {s}.consumers c) "
            f"AND EXISTS (SELECT 1 FROM {s}.events l WHERE l.key = e.key AND l.seq > e.seq)"
        )
        # the partitions (of consumer $1, or of all) whose cursor is below the last position: they lag
        self.lagging = (f"SELECT c.name, c.partition, c.cursor, p.last FROM {s}.consumers c, {s}.positions p "
                        'WHERE ($1::text IS NULL OR c.name = $1) AND c.cursor < p.last '
                        'ORDER BY c.name COLLATE "C", c.partition')
        self.block_writers = f"LOCK TABLE {s}.instances IN EXCLUSIVE MODE"
        self.clear = tuple(f"DELETE FROM {s}.{table}" for table in ("events", "instances", "batches", "dead_letters"))
        consumer = "name, partition, partitions, cursor, owner, until"
        self.register = (
            f"INSERT INTO {s}.consumers ({consumer}) SELECT $1, p, $2::integer, $3::bigint, NULL, 0 "
            "FROM generate_series(0, $2::integer - 1) AS p ON CONFLICT DO NOTHING"
        )
        self.consumer = f"SELECT {consumer} FROM {s}.consumers WHERE name = $1 ORDER BY partition"
        self.consumer_lock = self.consumer + " FOR UPDATE"
        self.consumers = f'SELECT {consumer} FROM {s}.consumers ORDER BY name COLLATE "C", partition'
        self.unregister = (f"DELETE FROM {s}.consumers WHERE name = $1",
                           f"DELETE FROM {s}.dead_letters WHERE consumer = $1")
        self.lease = (
            f"UPDATE {s}.consumers SET owner = $3, until = $4::float8 + $5::float8 "
            "WHERE name = $1 AND partition = $2 AND (owner IS NULL OR owner = $3 OR until <= $4::float8) "
            f"RETURNING {consumer}"
        )
        self.exists = f"SELECT 1 FROM {s}.consumers WHERE name = $1 AND partition = $2"
        self.lock_consumers = (
            f"SELECT c.name, c.partition, c.cursor, c.owner FROM {s}.consumers c "
            "JOIN unnest($1::text[], $2::integer[]) AS u(name, partition) "
            'ON c.name = u.name AND c.partition = u.partition ORDER BY c.name COLLATE "C", c.partition FOR UPDATE OF c'
        )
        self.advance = (
            f"UPDATE {s}.consumers AS c SET cursor = u.cursor "
            "FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[]) AS u(name, partition, cursor, read) "
            "WHERE c.name = u.name AND c.partition = u.partition AND c.cursor = u.read"
        )
        self.dead_letter = (
            f"INSERT INTO {s}.dead_letters (consumer, partition, position, key, seq, kind, data, code, error, attempts, "
            "at) SELECT u.*, $11::float8 FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[], "
            "$5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::integer[]) "
            "AS u(consumer, partition, position, key, seq, kind, data, code, error, attempts) ON CONFLICT DO NOTHING"
        )
        self.release = (f"UPDATE {s}.consumers SET owner = NULL, until = 0 "
                        "WHERE name = $1 AND partition = $2 AND owner = $3")
        letter = "consumer, partition, position, key, seq, kind, data, code, error, attempts, at"
        self.dead_letters = (f"SELECT {letter} FROM {s}.dead_letters WHERE $1::text IS NULL OR consumer = $1 "
                             'ORDER BY position, consumer COLLATE "C" LIMIT $2')
        self.lags = (f'SELECT {consumer}, p.last - c.cursor FROM {s}.consumers c, {s}.positions p '
                     'ORDER BY name COLLATE "C", partition')
        # -- the upgrade from version 3: buckets, then positions in key (byte) order and seq, then times
        self.unbucketed = f"SELECT DISTINCT key FROM {s}.events WHERE bucket IS NULL"
        self.set_buckets = (f"UPDATE {s}.events e SET bucket = u.bucket FROM unnest($1::text[], $2::integer[]) "
                            "AS u(key, bucket) WHERE e.key = u.key AND e.bucket IS NULL")
        self.set_positions = (
            f"UPDATE {s}.events e SET position = n.base + n.n FROM ("
            f"SELECT key, seq, row_number() OVER (ORDER BY key COLLATE \"C\", seq) AS n, "
            f"(SELECT coalesce(max(position), 0) FROM {s}.events) AS base "
            f"FROM {s}.events WHERE position IS NULL) AS n WHERE e.key = n.key AND e.seq = n.seq"
        )
        self.set_times = f"UPDATE {s}.events SET at = $1 WHERE at IS NULL"
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
        poll: float = POLL,
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
        self._poll = poll
        self._wakeup = Wakeup()
        self._listener = _Listener(dsn, where, schema, self._wakeup, busy_timeout, poll)

    @classmethod
    async def open(
        cls, dsn: str, catalog: Catalog, *, busy_timeout: float = 5.0, schema: str = DEFAULT_SCHEMA,
        keep_batches: float = KEEP_BATCHES, clock: Callable[[], float] = time.time, poll: float = POLL,
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

        `wait` (and `subscribe`) wake on the ``NOTIFY`` of a commit, and read
        the counter every ``poll`` seconds besides, in case one was missed.
        """
        check_options(busy_timeout=busy_timeout, keep_batches=keep_batches)
        if not (isinstance(poll, (int, float)) and not isinstance(poll, bool) and 0 < poll <= 3600):
            raise BadOption(f"poll must be a number of seconds in (0, 3600], got {poll!r}")
        if not _NAME.fullmatch(schema):
            raise BadOption(f"schema name {schema!r} is not a plain lower-case identifier")
        where = _redact(dsn)
        conn = await _connect(dsn, where, busy_timeout)
        store = cls(conn, catalog, schema=schema, busy_timeout=busy_timeout, where=where,
                    keep_batches=keep_batches, clock=clock, dsn=dsn, poll=float(poll))
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
        sql, params = self._sql.log_at, [key, _int8(start)]
        if stop is not None:
            sql, params = sql + " AND seq < $3", [*params, _int8(stop)]
        rows = await self._read(key, lambda conn: conn.fetch(sql + " ORDER BY seq", *params))
        return [Event(key, int(seq), str(kind), decode_event(key, int(seq), data), bool(end), int(at))
                for seq, kind, data, end, at in rows]

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
        await self._listener.close()
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
        out = await self._guarded(key, lambda: self._batch(ops, list(prepared), batch, digest, noted))
        if any(isinstance(op, (Append, AppendTerminal)) for op in ops):
            self._wakeup.notify()  # this store's own waiters wake at once, without the NOTIFY's round trip
        return out

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
        partitions = consumers_of(ops)
        consumers: dict[tuple[str, int], tuple[int, str | None]] = {}
        if partitions:  # the consumer rows the batch's Advance and DeadLetter name, locked in (name, partition) order
            names, numbers = [c for c, _ in partitions], [p for _, p in partitions]
            consumers = {(str(c), int(p)): (int(cur), None if o is None else str(o))
                         for c, p, cur, o in await self._conn.fetch(self._sql.lock_consumers, names, numbers)}
        plan = Plan(self.catalog, dict(rows), heads, consumers=consumers)
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
        if plan.advances:
            moved = [(c, p, cur, read) for (c, p), (cur, read) in plan.advances.items()]
            status = await self._conn.execute(self._sql.advance, *map(list, zip(*moved)))
            if status != f"UPDATE {len(moved)}":  # cannot happen on locked rows; never write past it
                raise Conflict(f"a consumer's cursor moved under the batch ({status} of {len(moved)})")
        if plan.dead:
            letters = [(c, part, pos, k, seq, kind, data, code, err, n)
                       for (c, pos), (part, k, seq, kind, data, code, err, n) in plan.dead.items()]
            for part in _chunks(letters, lambda r: (r[3], r[6], r[8]), "a dead letter"):
                await self._conn.execute(self._sql.dead_letter, *map(list, zip(*part)), self._retention.clock())
        if plan.events:  # last: it takes the positions (and a batch without events never touches the counter)
            await self._append_events(plan.events, self._retention.clock())

    async def _append_events(self, events: list[tuple[str, int, str, str, bool]], at: float) -> int:
        """Insert a batch's events with their positions; the last position taken.

        The positions come from the counter row, by the statement that inserts
        the events -- the batch's last before ``COMMIT`` -- so the row lock that
        orders the position-taking batches is held only from there to the commit
        (see "Positions" in the module's doc). A batch whose events need several
        statements takes its positions first, then inserts them (holding the lock longer).
        """
        buckets: dict[str, int] = {}
        for key, *_ in events:
            if key not in buckets:
                buckets[key] = bucket_of(key)
        chunks = list(_chunks(events, lambda r: (r[0], r[2], r[3]), "an event"))
        if len(chunks) == 1:
            keys, seqs, kinds, datas, ends = map(list, zip(*events))
            row = await self._conn.fetchrow(self._sql.append, keys, seqs, kinds, datas, ends, len(events), at,
                                            [buckets[k] for k in keys], self._schema)
            if row is None:
                raise Corrupt(f"{self._where}: the position counter of schema {self._schema} is missing")
            return int(row[0])
        last = await self._conn.fetchval(self._sql.take, len(events), self._schema)
        if last is None:
            raise Corrupt(f"{self._where}: the position counter of schema {self._schema} is missing")
        position = int(last) - len(events)
        for chunk in chunks:
            keys, seqs, kinds, datas, ends = map(list, zip(*chunk))
            numbers = list(range(position + 1, position + 1 + len(chunk)))
            position += len(chunk)
            await self._conn.execute(self._sql.append_numbered, keys, seqs, kinds, datas, ends, numbers, at,
                                     [buckets[k] for k in keys])
        return int(last)

    # -- the read side ----------------------------------------------------------

    async def latest_cursor(self) -> int:
        last = await self._read(None, lambda conn: conn.fetchval(self._sql.latest))
        return 0 if last is None else int(last)

    async def read(self, after: int = 0, *, limit: int = 1000, partition: tuple[int, int] | None = None,
                   kinds: Sequence[str] | None = None) -> list[Event]:
        """Events above position ``after`` (`readside.ReadStore.read`): one statement, one snapshot.

        Every position at or below the highest one committed is committed (see
        "Positions"), so one snapshot's events above ``after`` are a gap-free prefix.
        """
        check_read(after, limit, partition, kinds)
        part, parts = (None, None) if partition is None else partition
        names = None if kinds is None else list(kinds)
        rows = await self._read(None, lambda conn: conn.fetch(self._sql.read, _int8(after), parts, part, names, limit))
        return _events(rows)

    async def replay_all(self) -> list[Event]:
        return _events(await self._read(None, lambda conn: conn.fetch(self._sql.replay)))

    async def read_range(self, key: str, start: int, end: int | None = None) -> list[Event]:
        if type(start) is not int or not (end is None or type(end) is int):
            raise BadOption(f"read_range takes int bounds, got {start!r} and {end!r}")
        last = 2**63 - 1 if end is None else _int8(end)
        return _events(await self._read(key, lambda conn: conn.fetch(self._sql.range, key, _int8(start), last)))

    async def wait(self, after: int, timeout: float) -> int:
        """`latest_cursor` once it is above ``after``, or after ``timeout`` seconds, whichever is first.

        Each round arms the wake-up, listens (opening the listening connection
        the first time, or again after it was lost), reads the counter, and
        sleeps until a ``NOTIFY`` or this store's own commit wakes it, or
        ``poll`` seconds pass: a commit after the arming wakes it, one before
        the ``LISTEN`` is in the counter it reads, so none is missed.
        """
        check_read(after, 1)

        async def latest() -> int:
            await self._listener.listen()
            return await self.latest_cursor()

        return await wait_for_commit(latest, self._wakeup, after, timeout, self._poll)

    def subscribe(self, after: int = 0, *, limit: int = 1000) -> AsyncIterator[Event]:
        return follow(self, after, limit)

    async def prune(self, older_than: float) -> int:
        async def body() -> int:
            return _rowcount(await self._conn.execute(self._sql.prune_events, float(older_than)))

        return await self._guarded(None, body)

    async def clear(self) -> int:
        """Delete instances, events, batch ids and dead letters (`readside.ReadStore.clear`), all or nothing.

        The instances table is locked against writers first: every batch that
        appends locks instance rows from its first statement to its commit, so
        from then on no event commits behind the check that no consumer lags.
        """
        async def body() -> int:
            await self._conn.execute(self._sql.block_writers)
            _refuse_lagging(await self._conn.fetch(self._sql.lagging, None), "clearing the store")
            deleted = _rowcount(await self._conn.execute(self._sql.clear[0]))
            for statement in self._sql.clear[1:]:
                await self._conn.execute(statement)
            return deleted

        return await self._guarded(None, body)

    async def register(self, consumer: str, *, partitions: int = 1, start: Start = "earliest") -> list[Consumer]:
        name = check_name(consumer, "a consumer name", limits=self.catalog.limits)
        _count(partitions, "partitions", least=1, most=BUCKETS)
        if start not in ("earliest", "latest"):
            raise BadOption(f"start must be 'earliest' or 'latest', got {start!r}")

        async def body() -> list[Consumer]:
            cursor = 0
            if start == "latest":
                cursor = int(await self._conn.fetchval(self._sql.latest) or 0)
            await self._conn.execute(self._sql.register, name, partitions, cursor)
            found = [_consumer(r) for r in await self._conn.fetch(self._sql.consumer, name)]
            if len(found) != partitions or any(c.partitions != partitions for c in found):
                raise BadOption(f"consumer {name!r} is registered with partitions={found[0].partitions}, "
                                f"not {partitions}")
            return found

        return await self._guarded(None, body)

    async def unregister(self, consumer: str, *, force: bool = False) -> None:
        async def body() -> None:
            if not await self._conn.fetch(self._sql.consumer_lock, consumer):
                raise NotFound(f"no consumer {consumer!r}")
            if not force:
                _refuse_lagging(await self._conn.fetch(self._sql.lagging, consumer), f"unregistering {consumer!r}")
            for statement in self._sql.unregister:
                await self._conn.execute(statement, consumer)

        await self._guarded(None, body)

    async def consumers(self) -> list[Consumer]:
        return [_consumer(r) for r in await self._read(None, lambda conn: conn.fetch(self._sql.consumers))]

    async def lease(self, consumer: str, partition: int, owner: str, ttl: float) -> Consumer | None:
        """Take or renew a partition's lease with one conditional ``UPDATE`` (free, expired, or ours already)."""
        check_name(owner, "a lease owner", limits=self.catalog.limits)
        _count(partition, "a partition", least=0, most=BUCKETS - 1)
        if not (isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and 0 < ttl < 10**9):
            raise BadOption(f"a lease's ttl must be a positive number of seconds, got {ttl!r}")

        async def body() -> Consumer | None:
            now = float(self._retention.clock())
            row = await self._conn.fetchrow(self._sql.lease, consumer, partition, owner, now, float(ttl))
            if row is not None:
                return _consumer(row)
            if await self._conn.fetchval(self._sql.exists, consumer, partition) is None:
                raise NotFound(f"no consumer {consumer!r} with a partition {partition}")
            return None

        return await self._guarded(None, body)

    async def release(self, consumer: str, partition: int, owner: str) -> None:
        async def body() -> None:
            await self._conn.execute(self._sql.release, consumer, partition, owner)

        await self._guarded(None, body)

    async def dead_letters(self, consumer: str | None = None, *, limit: int = 1000) -> list[DeadLettered]:
        _count(limit, "limit", least=0)
        rows = await self._read(None, lambda conn: conn.fetch(self._sql.dead_letters, consumer, limit))
        return [DeadLettered(str(c), int(p), int(pos), str(k), int(seq), str(kind), decode_event(str(k), int(seq), d),
                             str(code), str(err), int(n), float(at))
                for c, p, pos, k, seq, kind, d, code, err, n, at in rows]

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
        first, second = self._sql.ddl
        for statement in first:
            await self._conn.execute(statement)
        await self._number_events()
        for statement in second:
            await self._conn.execute(statement)

    async def _number_events(self) -> None:
        """Give events without a position (a version 3 schema's) their bucket, position and time.

        Positions go on from the highest one there, in the byte order of the
        keys and then by seq: deterministic, since no commit order was kept.
        """
        keys = [str(k) for (k,) in await self._conn.fetch(self._sql.unbucketed)]
        if keys:
            await self._conn.execute(self._sql.set_buckets, keys, [bucket_of(k) for k in keys])
        await self._conn.execute(self._sql.set_positions)
        await self._conn.execute(self._sql.set_times, float(self._retention.clock()))

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


# -- the read side's plumbing -----------------------------------------------------------


class _Listener:
    """The connection `PostgresStore.wait` listens on: opened on first use, opened again after it is lost.

    Its only statement is ``LISTEN``; every notification on the schema's
    channel, and the loss of the connection, wakes the store's waiters. While
    the server cannot be reached it tries again at most every ``poll``
    seconds, and waiters fall back to reading the counter that often.
    """

    def __init__(self, dsn: str | None, where: str, channel: str, wakeup: Wakeup, busy_timeout: float,
                 poll: float) -> None:
        self._dsn, self._where, self.channel, self._wakeup = dsn, where, channel, wakeup
        self._busy_timeout, self._poll = busy_timeout, poll
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._closed = False
        self.opened = 0
        """How many listening connections were opened (1 + reconnections): for tests and ``inspect``."""

    @property
    def live(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def listen(self) -> None:
        """Make sure a connection is listening; when that fails, leave it to the poll (never raises `Io`)."""
        if self.live or self._dsn is None or self._closed:
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self.live or self._closed or loop.time() < self._retry_at:
                return
            try:
                conn = await _connect(self._dsn, self._where, self._busy_timeout)
            except Io:
                self._retry_at = loop.time() + self._poll
                return
            try:
                with _mapped(None, self._where, conn):
                    await conn.add_listener(self.channel, self._notified)
            except BaseException as exc:
                conn.terminate()
                if isinstance(exc, Io):
                    self._retry_at = loop.time() + self._poll
                    return
                raise
            conn.add_termination_listener(self._lost)
            self._conn = conn
            self.opened += 1

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._wakeup.notify()

    def _lost(self, conn: Any) -> None:
        self._wakeup.notify()  # waiters wake, find it gone, and listen again (reading the counter in between)

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is None or conn.is_closed():
                return
            conn.remove_termination_listener(self._lost)
            try:
                await conn.close(timeout=max(self._busy_timeout, 1.0))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                conn.terminate()


def _events(rows: Iterable[Any]) -> list[Event]:
    """Rows of ``key, seq, kind, data, terminal, position`` as `Event`s, their data decoded."""
    return [Event(str(k), int(seq), str(kind), decode_event(str(k), int(seq), data), bool(end), int(at))
            for k, seq, kind, data, end, at in rows]


def _consumer(row: Any) -> Consumer:
    name, partition, partitions, cursor, owner, until = row[:6]
    return Consumer(str(name), int(partition), int(partitions), int(cursor),
                    None if owner is None else str(owner), float(until))


def _count(value: Any, what: str, *, least: int, most: int = 2**63 - 1) -> int:
    """``value`` when it is an int in ``[least, most]``; `BadOption` otherwise."""
    if type(value) is not int or not least <= value <= most:
        raise BadOption(f"{what} must be an int in [{least}, {most}], got {value!r}")
    return value


def _refuse_lagging(rows: Sequence[Any], what: str) -> None:
    """`Unacknowledged` naming the first lagging partition of ``rows`` (``name, partition, cursor, last``), if any."""
    if rows:
        name, partition, cursor, last = rows[0]
        raise Unacknowledged(f"{what} would drop events consumer {name!r} partition {partition} has not passed "
                             f"(cursor {cursor} < {last}); nothing was deleted")


def _rowcount(status: str) -> int:
    """The row count of a command status (``DELETE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


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


_ARTIFACT_COLUMNS = {"artifacts": ("id", "kind", "size", "created", "blob"), "artifact_chunks": ("blob", "n", "bytes")}
"""The artifact tables `artifacts_postgres` creates beside a store's (which cannot be imported here: it imports us)."""


class PostgresReader:
    """A read-only look at a store's rows, raw, in one database snapshot: what ``statewright inspect`` reads.

    `PostgresReader.open` connects with ``default_transaction_read_only`` set, checks
    that the schema is a statewright store this release reads (`NotAStore`,
    `IncompatibleSchema` otherwise; a missing database or server is `Io`), and
    begins one ``REPEATABLE READ READ ONLY`` transaction, so every later read
    sees the same moment and nothing can be written through it. Rows come back
    undecoded -- deciding what is damaged is the reader's business.
    """

    def __init__(self, conn: Any, sql: _Statements, where: str, tables: frozenset[str] = frozenset(),
                 schema: str = DEFAULT_SCHEMA) -> None:
        self._conn, self._sql, self.where = conn, sql, where
        self._tables = tables  # what the schema holds: one of version 3 has no read side to show
        self._schema = f'"{schema}"'

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
                    if tuple(shapes[table]) != COLUMNS[table] and tuple(shapes[table]) not in UPGRADABLE.get(table, {}):
                        raise IncompatibleSchema(f"{where}: table {table} has columns {', '.join(shapes[table])}")
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            read_side = {t for t in ("positions", "consumers", "dead_letters") if tuple(shapes.get(t, ())) == COLUMNS[t]}
            artifacts = {t for t, columns in _ARTIFACT_COLUMNS.items() if tuple(shapes.get(t, ())) == columns}
            return cls(conn, sql, where, frozenset(read_side | artifacts), schema)
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

    async def latest(self) -> int:
        """The last position committed (0 for a schema without a read side)."""
        if "positions" not in self._tables:
            return 0
        with _mapped(None, self.where, self._conn):
            return int(await self._conn.fetchval(self._sql.latest) or 0)

    async def consumers(self) -> list[tuple[Consumer, int]]:
        """Every consumer's partitions, by name then partition, each with its lag: `latest` minus its cursor."""
        if not {"positions", "consumers"} <= self._tables:
            return []
        with _mapped(None, self.where, self._conn):
            rows = await self._conn.fetch(self._sql.lags)
        return [(_consumer(row), int(row[6])) for row in rows]

    async def dead_letters(self, consumer: str | None = None, *, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Dead letters, oldest position first, raw: ``(consumer, partition, position, key, seq, kind, data text,
        code, error, attempts, at)``."""
        if "dead_letters" not in self._tables:
            return []
        with _mapped(None, self.where, self._conn):
            rows = await self._conn.fetch(self._sql.dead_letters, consumer, _count(limit, "limit", least=1))
        return [tuple(row) for row in rows]

    async def artifacts(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        """``id -> (kind, size)`` of the artifacts among ``ids`` that are stored (none without artifact tables)."""
        if "artifacts" not in self._tables or not ids:
            return {}
        with _mapped(None, self.where, self._conn):
            rows = await self._conn.fetch(f"SELECT id, kind, size FROM {self._schema}.artifacts "
                                          "WHERE id = ANY($1::text[])", ids)
        return {str(i): (str(kind), int(size)) for i, kind, size in rows}

    async def artifact(self, id: str) -> bytes | None:
        """The bytes of artifact ``id`` as stored (unverified), or None when it is not there."""
        if not {"artifacts", "artifact_chunks"} <= self._tables:
            return None
        with _mapped(None, self.where, self._conn):
            blob = await self._conn.fetchval(f"SELECT blob FROM {self._schema}.artifacts WHERE id = $1", id)
            if blob is None:
                return None
            rows = await self._conn.fetch(f"SELECT bytes FROM {self._schema}.artifact_chunks WHERE blob = $1 "
                                          "ORDER BY n", blob)
        return b"".join(bytes(chunk) for (chunk,) in rows)

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
