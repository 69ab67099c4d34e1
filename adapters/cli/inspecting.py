"""``statewright inspect``: the instances, event logs and consumers in a store, decoded through the right machines.

The store is a SQLite file, or a PostgreSQL database named by its DSN
(``postgresql://user@host/db``; the ``postgres`` extra), read in one
``REPEATABLE READ READ ONLY`` transaction on a connection whose transactions
are all read-only (`statewright.adapters.runtime.postgres.PostgresReader`).

The machines come from ``--spec TARGET`` (repeatable), else from the
project's specs, else from the bundled ones. A record naming a machine none of
them has is reported as ``unknown machine 'order': load its spec with --spec``
-- not as damage -- and its log is still shown.

Read-only, always
-----------------
Inspect is what a person points at a file they are not sure about, so it never
writes, converts or creates anything. It does not go through `SqliteStore`
(whose ``open`` switches the file to WAL, creates the tables and takes the
write lock); it opens one plain ``sqlite3`` connection with SQLite's read-only
URI. When the store has a live write-ahead log (``DB-wal`` and ``DB-shm`` both
there: a writer has it open, or crashed) the connection is ``mode=ro`` and
reads through that log like any WAL reader, so a writer holding the lock does
not stop it; otherwise there is nothing outside the main file to read and the
connection is ``mode=ro&immutable=1``, which takes no locks and creates no
``-wal``/``-shm`` sibling (a plain ``mode=ro`` reader would leave both behind),
so a read-only file or directory can be inspected too. (After a crash, SQLite
rebuilds the ``-shm`` index a ``mode=ro`` reader shares; the file and its log
are never written.) A writer that opens the file during an immutable read
writes to a new log, and its checkpoint may then change pages under the read
-- which read as ``database disk image is malformed``, though nothing is
damaged. So the output of a read is held until it is done, and if a writer
appeared meanwhile (its ``-wal`` is there, or the file's size, times or header
moved) the whole read is made again, now through the writer's log; a busy file
or a writer just starting is retried the same way, up to five reads, after
which it is one line asking to try again -- never ``CORRUPT``.

A missing path, an empty file, a file that is not SQLite, a truncated one, and a
SQLite database without statewright's tables are each one line, exit 2, naming
it "not a statewright store"; a file whose ``PRAGMA user_version`` is newer than
this version knows says so. Rows are read raw: a state that does not decode is
``CORRUPT``, an event whose data does not parse -- or is nested too deep to
decode -- is ``<garbled: ...>``, and both count as damage (exit 1) while later
rows and instances are still shown. Keys,
kinds and machine names are printed with backslashes and unprintable characters
escaped (``\\n``, ``\\x1b``), so no stored text can forge a line of the output.

The executor's records -- ``runs/<id>`` (the run machine) and
``runs/<id>/facts`` (its fact log), decoded with the executor's own machines
(`_Runs`) -- are not listed one by one but as a table of runs after the
instances (`adapters.cli.runs`); ``--run ID`` shows one run's attempts, facts
(each artifact's kind and size, read in the same snapshot) and child runs,
and ``--key runs/<id>`` a record as it is. A record that does not decode as
what its key says is shown, and counted, as the instance view shows damage.

After the instances come the store's consumers (`_ReadSide`), when it has
any: each partition's cursor, its lag behind the latest position, who holds
its lease until when (UTC; ``expired`` by this machine's clock, which is the
clock dispatchers lease by), then the dead letters -- read in the same
snapshot as the instances, with the same escaping. ``--key`` shows only its
instances, without this part.

    $ statewright inspect shop.db --spec orders.py
    order-42: order PAID (version 1)
        1 input      {"type": "Pay"}
    $ statewright inspect postgresql://app@db.internal/orders --spec orders.py
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from statewright.adapters.cli.runs import RunView, attempts, run_detail, runs_table, short
from statewright.adapters.cli.text import escaped
from statewright.adapters.project.errors import UsageError
from statewright.adapters.project.targets import Loader, machines_of
from statewright.adapters.runtime.store import Catalog, Corrupt, StoreError
from statewright.kernel.machine import Machine

__all__ = ["UnknownMachine", "inspect_command"]

EXIT_OK, EXIT_DAMAGED = 0, 1
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_WAIT = 2.0  # seconds; a WAL reader only waits out a recovery or a checkpoint's instant
ATTEMPTS = 5  # whole reads of a file that a writer keeps changing (or keeps busy) before giving up
COLUMNS = {
    "instances": "key, machine, state, version",
    "events": "key, seq, kind, data, terminal",
}
READ_SIDE = {  # schema 4's read side; a file of an older schema has none of it, and shows none
    "positions": "SELECT last FROM positions",
    "consumers": "SELECT name, partition, partitions, cursor, owner, until FROM consumers ORDER BY name, partition",
    "dead_letters": "SELECT consumer, partition, position, key, seq, kind, data, code, error, attempts, at "
                    "FROM dead_letters ORDER BY position, consumer LIMIT ?",
}
DEAD_SHOWN = 1000  # dead letters listed, oldest first; a line says how many more there are
_NAMED = 20  # instances an unknown --key's error names; the rest are counted


class UnknownMachine(Corrupt):
    """A record names a machine the inspecting catalog does not have (a missing ``--spec``, not damage)."""

    def __init__(self, machine: str, key: str) -> None:
        super().__init__(f"unknown machine {machine!r}: load its spec with --spec", key=key)
        self.machine = machine


class _Catalog(Catalog):
    """A catalog that tells an unknown machine apart from a record that does not decode."""

    def load(self, machine: str, text: str, *, key: str) -> Any:
        if machine not in self.machines:
            raise UnknownMachine(machine, key)
        return super().load(machine, text, key=key)


class _Unreadable(Exception):
    """SQLite could not read part of the file (a malformed page); the caller says where."""


class _Transient(UsageError):
    """The file is busy or a writer is just starting: worth another try, and the message if tries run out."""


@dataclass(frozen=True, slots=True)
class _Moment:
    """What a writer changes in a store's files: the main file's identity, size, times and header, and its siblings.

    An immutable read (no ``-wal``/``-shm`` at its start) takes no lock, so a
    writer that begins meanwhile is seen only here: while it is open its
    ``-wal`` and ``-shm`` exist; once it has checkpointed (and closed, which
    checkpoints) the main file's size, times or header moved.
    """

    main: tuple[int, ...] | None
    header: bytes
    siblings: tuple[bool, ...]

    @classmethod
    def of(cls, db: Path) -> _Moment:
        try:
            st = db.stat()
            with db.open("rb") as f:
                header = f.read(100)
            main: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            main, header = None, b""
        siblings = tuple(Path(f"{db}{suffix}").exists() for suffix in ("-wal", "-shm", "-journal"))
        return cls(main, header, siblings)


@dataclass(frozen=True, slots=True)
class _ReadSide:
    """The read side as stored, raw: the latest position, each consumer's partitions, the oldest dead letters.

    ``consumers`` rows are ``(name, partition, partitions, cursor, owner,
    until)``; ``dead`` rows ``(consumer, partition, position, key, seq, kind,
    data, code, error, attempts, at)``, at most `DEAD_SHOWN` of them, and
    ``more`` says whether there were others.
    """

    latest: Any
    consumers: list[tuple[Any, ...]]
    dead: list[tuple[Any, ...]]
    more: bool


def _machines(loader: Loader, specs: list[str]) -> dict[str, Machine[Any]]:
    from statewright.specs import REGISTRY

    if not specs and loader.project is None:
        return dict(REGISTRY.machines)
    targets = loader.select(specs, everything=not specs)
    out: dict[str, Machine[Any]] = {}
    for t in targets:
        for m in machines_of(t.spec()):
            out.setdefault(m.name, m)
    return out


def _is_dsn(target: str) -> bool:
    """A PostgreSQL DSN rather than a file (the same test as the adapter's `is_dsn`, without importing asyncpg)."""
    return target.startswith(("postgresql://", "postgres://"))


_escape = escaped


def _shown(value: Any) -> str:
    """A cell of a stored row as text that cannot break or forge a line."""
    return _escape(value) if isinstance(value, str) else f"<garbled: {value!r}>"


def _decode_text(raw: bytes) -> str:
    # invalid UTF-8 in a row is shown escaped, not a failure of the whole query
    return raw.decode("utf-8", "surrogateescape")


def _known_version() -> int:
    """The newest schema (``PRAGMA user_version``) this statewright reads; the store module owns the number."""
    from statewright.adapters.runtime import sqlite as store_module

    return int(getattr(store_module, "SCHEMA_VERSION", 0))


def _uri(db: Path) -> str:
    """How to open ``db`` so that SQLite writes nothing and creates no file (see the module docstring)."""
    path = db.resolve()
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if wal.exists() and shm.exists():
        return f"{path.as_uri()}?mode=ro"
    if wal.exists() and wal.stat().st_size > 0:
        raise _Transient(
            f"{db} has a write-ahead log but no {shm.name} index, and reading it would create one: "
            "inspect a copy of both files"
        )
    return f"{path.as_uri()}?mode=ro&immutable=1"


def _header(db: Path) -> None:
    """Refuse, before SQLite sees it, a path that is no file or a file that is not SQLite."""
    if not db.is_file():
        raise UsageError(f"no database at {db}")
    try:
        with db.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise UsageError(f"cannot read {db}: {exc.strerror or exc}") from None
    if not header:
        raise UsageError(f"{db} is empty: not a statewright store")
    if header != SQLITE_HEADER:
        raise UsageError(f"{db} is not a SQLite database, so not a statewright store")


class _Reader:
    """One read-only connection to a store file; every SQLite call goes through `_rows`."""

    def __init__(self, db: Path) -> None:
        _header(db)
        self.db = db
        uri = _uri(db)
        self.immutable = uri.endswith("immutable=1")
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=BUSY_WAIT, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open {db}: {exc}") from None
        self._conn.text_factory = _decode_text
        self.tables: frozenset[str] = frozenset()

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY or "locked" in str(exc):
                raise _Transient(f"{self.db} stayed locked for {BUSY_WAIT:g}s ({exc}); try again") from None
            raise _Unreadable(str(exc)) from None
        except sqlite3.Error as exc:  # DatabaseError: "file is not a database", "disk image is malformed"
            raise _Unreadable(str(exc)) from None

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._mapped():
            return self._conn.execute(sql, params).fetchall()

    def check(self) -> list[tuple[int, Any]]:
        """Refuse what is not a store this version reads, then begin one snapshot; ``(rowid, key)`` sorted by key."""
        try:
            version = self._rows("PRAGMA user_version")[0][0]
            tables = {name for (name,) in self._rows("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self.tables = frozenset(tables)
            for table in COLUMNS:
                if table not in tables:
                    raise UsageError(f"{self.db} is a SQLite database but not a statewright store (it has no {table} table)")
            known = _known_version()
            if version > known:
                raise UsageError(
                    f"{self.db} has schema version {version}, newer than this statewright reads ({known}): "
                    "inspect it with the statewright that wrote it"
                )
            for table, columns in COLUMNS.items():
                self._rows(f"SELECT {columns} FROM {table} LIMIT 0")
            self._rows("BEGIN")  # one snapshot for every read that follows
            keys = self._rows("SELECT rowid, key FROM instances")
        except _Unreadable as exc:
            raise UsageError(f"{self.db} is not a statewright store: {exc} (a damaged or truncated file?)") from None
        return sorted(keys, key=lambda row: (0, row[1]) if isinstance(row[1], str) else (1, repr(row[1])))

    def record(self, rowid: int) -> tuple[Any, Any, Any]:
        rows = self._rows("SELECT machine, state, version FROM instances WHERE rowid = ?", (rowid,))
        if not rows:  # only an immutable read can lose a row: a writer appeared after all
            raise _Unreadable("its row vanished while being read")
        return rows[0][0], rows[0][1], rows[0][2]

    def log(self, rowid: int) -> list[tuple[Any, Any, Any, Any]]:
        return self._rows(
            "SELECT seq, kind, data, terminal FROM events WHERE key = (SELECT key FROM instances WHERE rowid = ?) "
            "ORDER BY seq",
            (rowid,),
        )

    def read_side(self) -> _ReadSide | None:
        """The consumers and dead letters, in the snapshot `check` began; None for a schema without them."""
        if not set(READ_SIDE) <= self.tables:
            return None
        latest = self._rows(READ_SIDE["positions"])
        dead = self._rows(READ_SIDE["dead_letters"], (DEAD_SHOWN + 1,))
        return _ReadSide(latest[0][0] if latest else None, [tuple(r) for r in self._rows(READ_SIDE["consumers"])],
                         [tuple(r) for r in dead[:DEAD_SHOWN]], len(dead) > DEAD_SHOWN)

    def artifacts(self, ids: list[str]) -> dict[Any, tuple[Any, Any]]:
        """``id -> (kind, size)`` of the stored artifacts among ``ids``, raw (none in a file without artifacts)."""
        if "artifacts" not in self.tables:
            return {}
        out: dict[Any, tuple[Any, Any]] = {}
        for at in range(0, len(ids), 500):
            part = ids[at:at + 500]
            marks = ", ".join("?" * len(part))
            out.update((i, (kind, size)) for i, kind, size in
                       self._rows(f"SELECT id, kind, size FROM artifacts WHERE id IN ({marks})", tuple(part)))
        return out

    def artifact(self, id: str) -> bytes | None:
        """Artifact ``id``'s bytes as stored, unverified; None when it is not there."""
        if not {"artifacts", "artifact_chunks"} <= self.tables:
            return None
        rows = self._rows("SELECT blob FROM artifacts WHERE id = ?", (id,))
        if not rows:
            return None
        chunks = self._rows("SELECT bytes FROM artifact_chunks WHERE blob = ? ORDER BY n", (rows[0][0],))
        if not all(isinstance(c, bytes) for (c,) in chunks):
            raise _Unreadable(f"artifact {id}: a chunk is not bytes")
        return b"".join(c for (c,) in chunks)

    def close(self) -> None:
        self._conn.close()


class _PostgresReader:
    """The same reads as `_Reader`, from a PostgreSQL snapshot; an instance's id is its key."""

    def __init__(self, dsn: str) -> None:
        import asyncio

        try:
            from statewright.adapters.runtime.postgres import PostgresReader
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        self._loop = asyncio.new_event_loop()
        try:
            self._snapshot = self._loop.run_until_complete(PostgresReader.open(dsn))
        except StoreError as exc:
            self._loop.close()
            raise UsageError(str(exc)) from None
        except BaseException:
            self._loop.close()
            raise
        self.db = self._snapshot.where

    def _run(self, read: Any) -> Any:
        try:
            return self._loop.run_until_complete(read)
        except StoreError as exc:  # the server went away mid-inspection: that part cannot be read
            raise _Unreadable(str(exc)) from None

    def check(self) -> list[tuple[Any, Any]]:
        try:
            return [(key, key) for key in self._loop.run_until_complete(self._snapshot.keys())]
        except StoreError as exc:
            raise UsageError(str(exc)) from None

    def record(self, key: str) -> tuple[Any, Any, Any]:
        row = self._run(self._snapshot.record(key))
        if row is None:
            raise _Unreadable("its row vanished while being read")
        return tuple(row)

    def log(self, key: str) -> list[tuple[Any, Any, Any, Any]]:
        return list(self._run(self._snapshot.log(key)))

    def read_side(self) -> _ReadSide | None:
        """The consumers and dead letters, from the same snapshot (None for a schema without a read side)."""
        consumers = self._run(self._snapshot.consumers())
        dead = self._run(self._snapshot.dead_letters(limit=DEAD_SHOWN + 1))
        if not consumers and not dead:
            return None
        rows = [(c.name, c.partition, c.partitions, c.cursor, c.owner, c.until) for c, _ in consumers]
        return _ReadSide(self._run(self._snapshot.latest()), rows, dead[:DEAD_SHOWN], len(dead) > DEAD_SHOWN)

    def artifacts(self, ids: list[str]) -> dict[Any, tuple[Any, Any]]:
        return dict(self._run(self._snapshot.artifacts(ids)))

    def artifact(self, id: str) -> bytes | None:
        data = self._run(self._snapshot.artifact(id))
        return None if data is None else bytes(data)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._snapshot.close())
        finally:
            self._loop.close()


class _Inspection:
    """Prints each instance and its log from a `_Reader`, counting damaged rows instead of stopping at one."""

    def __init__(self, reader: _Reader | _PostgresReader, catalog: _Catalog, out: TextIO) -> None:
        self.reader, self.catalog, self.out = reader, catalog, out
        self.damaged = 0

    def _damage(self, line: str) -> None:
        self.damaged += 1
        print(line, file=self.out)

    def instance(self, rowid: Any, key: Any) -> None:
        shown = _shown(key)
        try:
            machine, text, version = self.reader.record(rowid)
            self._record(shown, key, machine, text, version)
            events = self.reader.log(rowid)
        except _Unreadable as exc:
            self._damage(f"  CORRUPT -- cannot read {shown}: {_escape(str(exc))}")
            return
        for seq, kind, data, terminal in events:
            self._event(seq, kind, data, terminal)

    def _record(self, shown: str, key: Any, machine: Any, text: Any, version: Any) -> None:
        if not (isinstance(key, str) and isinstance(machine, str) and isinstance(text, str) and type(version) is int):
            cells = ", ".join(repr(v) for v in (machine, text, version))  # repr: escaped, and types visible
            self._damage(f"{shown}: CORRUPT -- <garbled: machine, state, version = {cells}>")
            return
        try:
            state = self.catalog.load(machine, text, key=key)
        except UnknownMachine as exc:
            print(f"{shown}: {_escape(str(exc))}", file=self.out)
            return
        except Corrupt as exc:
            self._damage(f"{shown}: CORRUPT -- {_escape(str(exc))}")
            return
        try:
            phase = self.catalog.machine(machine).phase_of(state).name
        except Exception as exc:  # the user's phase_of on a state that decoded but makes no sense
            self._damage(f"{shown}: CORRUPT -- no phase for its state ({_escape(f'{type(exc).__name__}: {exc}')})")
            return
        print(f"{shown}: {_escape(machine)} {phase} (version {version})", file=self.out)

    def _event(self, seq: Any, kind: Any, data: Any, terminal: Any) -> None:
        mark = " [terminal]" if terminal else ""
        seq_text = str(seq) if type(seq) is int else _shown(seq)
        head = f"  {seq_text:>3} {_shown(kind):<10}"
        if not isinstance(data, str) or not isinstance(kind, str) or type(seq) is not int:
            self._damage(f"{head} <garbled: {data!r}>{mark}")
            return
        try:
            shown = json.dumps(json.loads(data), sort_keys=True)
        except RecursionError:  # no store writes JSON this deep (Limits.max_depth): damage, shown in one line
            self._damage(f"{head} <garbled: nested too deep to decode (past Python's recursion limit)>{mark}")
            return
        except ValueError as exc:
            self._damage(f"{head} <garbled: {_escape(data[:60])!s}: {exc}>{mark}")
            return
        print(f"{head} {shown}{mark}", file=self.out)


class _Runs:
    """The executor's records in a store (``runs/<id>`` and ``runs/<id>/facts``), decoded with its own machines.

    A record that is not what its key says, or does not decode, is left to
    the instance view, which shows it as it is (and counts the damage).
    """

    KEY = re.compile(r"runs/([^/]+?)(/facts)?")

    def __init__(self, reader: _Reader | _PostgresReader) -> None:
        from statewright.adapters.runtime.executor import runs_catalog

        self.reader = reader
        self.catalog = _Catalog(dict(runs_catalog().machines))
        self._records: dict[str, dict[str, tuple[Any, Any]]] = {}  # run id -> machine -> (rowid, state)

    def take(self, rowid: Any, key: Any) -> bool:
        """Collect ``key`` if it is a run's record that decodes; False leaves it to the instance view."""
        found = self.KEY.fullmatch(key) if isinstance(key, str) else None
        if found is None:
            return False
        machine = "fact_log" if found.group(2) else "run"
        try:
            stored, text, _ = self.reader.record(rowid)
            if stored != machine or not isinstance(text, str):
                return False
            state = self.catalog.load(machine, text, key=key)
        except (_Unreadable, Corrupt):
            return False
        self._records.setdefault(found.group(1), {})[machine] = (rowid, state)
        return True

    def views(self, effects_of: str | None = None) -> list[RunView]:
        """Every run collected, by id; ``effects_of``: that run's view carries its log's effects."""
        out = []
        for run_id, records in sorted(self._records.items()):
            run, facts = records.get("run", (None, None)), records.get("fact_log", (None, None))
            effects = self._effects(run[0]) if run_id == effects_of and run[0] is not None else ()
            out.append(RunView(run_id, run[1], facts[1], effects))
        return out

    def _effects(self, rowid: Any) -> tuple[dict[str, Any], ...]:
        out = []
        for _seq, kind, data, _terminal in self.reader.log(rowid):
            try:
                value = json.loads(data) if kind == "effect" and isinstance(data, str) else None
            except (ValueError, RecursionError):
                value = None  # the instance view (--key) shows what it is
            if isinstance(value, dict):
                out.append(value)
        return tuple(out)

    def show(self, run_id: str, inspection: _Inspection) -> int:
        """Print run ``run_id``: its attempts, facts (with their artifacts' kinds and sizes) and child runs."""
        views = self.views(effects_of=run_id)
        view = next((v for v in views if v.run_id == run_id), None)
        if view is None:
            names = [_escape(v.run_id) for v in views]
            known = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED:,} more" if len(names) > _NAMED else "")
            raise UsageError(f"no run {run_id!r} in {self.reader.db} (runs: {known or 'none'})")
        facts = view.facts.facts if view.facts is not None else ()
        found = self.reader.artifacts([artifact for _, artifact in facts])
        artifacts = {i: (_shown(kind), size if type(size) is int else -1) for i, (kind, size) in found.items()}
        errors = {}
        for attempt in attempts(view.effects):
            artifact = view.facts.get(f"outcome/{attempt.state_id}/{attempt.number}") if view.facts else None
            if attempt.outcome.startswith("failed") and artifact is not None:
                errors[(attempt.state_id, attempt.number)] = self._error(artifact, inspection)
        children = [v for v in views if v.facts is not None and v.facts.parent == run_id]
        for line in run_detail(view, children, artifacts, errors):
            print(line, file=inspection.out)
        return EXIT_DAMAGED if inspection.damaged else EXIT_OK

    def _error(self, artifact: str, inspection: _Inspection) -> str:
        """The error an attempt's recorded outcome holds, as ``code: message``; damage is shown and counted."""
        try:
            data = self.reader.artifact(artifact)
        except _Unreadable as exc:
            data, problem = None, str(exc)
        else:
            problem = "not stored"
        if data is not None:
            if "sha256:" + hashlib.sha256(data).hexdigest() != artifact:
                problem = "its bytes do not match its id"
            else:
                try:
                    error = json.loads(data)["error"]
                    return f"{error['code']}: {error['message']}"
                except (ValueError, KeyError, TypeError):
                    problem = "not an outcome"
        inspection.damaged += 1
        return f"CORRUPT -- outcome {short(artifact)}: {problem}"


class _Consumers:
    """Prints the read side (`_ReadSide`) as two tables, each cell checked: a garbled one is shown and counted."""

    def __init__(self, inspection: _Inspection) -> None:
        self.inspection = inspection
        self.garbled = 0

    def show(self, side: _ReadSide) -> None:
        out = self.inspection.out
        latest = self._int(side.latest)
        print(f"consumers (latest position {latest}):", file=out)
        rows: list[tuple[str, ...]] = [("consumer", "partition", "cursor", "lag", "lease")]
        for name, partition, partitions, cursor, owner, until in side.consumers:
            lag = str(side.latest - cursor) if type(side.latest) is int and type(cursor) is int else "?"
            rows.append((self._str(name), f"{self._int(partition)}/{self._int(partitions)}", self._int(cursor), lag,
                         self._lease(owner, until)))
        self._table(rows)
        if side.dead:
            print(f"dead letters ({len(side.dead)}{' oldest' if side.more else ''}):", file=out)
            letters: list[tuple[str, ...]] = [("consumer", "effect", "code", "attempts", "error")]
            for consumer, _p, _position, key, seq, _kind, _data, code, error, attempts, _at in side.dead:
                letters.append((self._str(consumer), f"{self._str(key)}#{self._int(seq)}", self._str(code),
                                self._int(attempts), self._str(error)))
            self._table(letters)
            if side.more:
                print(f"  ... and more: only the oldest {DEAD_SHOWN} dead letters are shown", file=out)
        self.inspection.damaged += self.garbled

    def _table(self, rows: list[tuple[str, ...]]) -> None:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
            print(("  " + "  ".join(cells)).rstrip(), file=self.inspection.out)

    def _garbled(self, value: Any) -> str:
        self.garbled += 1
        return f"<garbled: {value!r}>"

    def _int(self, value: Any) -> str:
        return str(value) if type(value) is int else self._garbled(value)

    def _str(self, value: Any) -> str:
        return _escape(value) if isinstance(value, str) else self._garbled(value)

    def _lease(self, owner: Any, until: Any) -> str:
        if owner is None:
            return "-"
        if not isinstance(until, (int, float)) or isinstance(until, bool) or not 0 <= until < 1e11:
            return f"{self._str(owner)} until {self._garbled(until)}"
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
        return f"{self._str(owner)} {'expired' if until <= time.time() else 'until'} {when}"


def inspect_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Print each instance and its log; exit 1 when a record is damaged. Reads the file, never writes it.

    A SQLite file read without a lock (immutable: no writer had it open) is
    read again, whole, when a writer changed it meanwhile (`_Moment`): what a
    checkpoint rewrote under the read is not damage. So is one that was busy
    or whose writer was just starting. The output is printed once, from the
    read that saw one moment of the store.
    """
    machines = _Lazy(loader, args.spec)
    if _is_dsn(args.db):
        reader = _PostgresReader(args.db)
        try:
            return _inspect(reader, args, machines, out)
        finally:
            reader.close()
    db = Path(args.db)
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(0.01 * 2**attempt)
        before = _Moment.of(db)
        printed = io.StringIO()
        try:
            sqlite = _Reader(db)
            try:
                code = _inspect(sqlite, args, machines, printed)
            finally:
                sqlite.close()
        except _Transient:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        except UsageError:
            if _Moment.of(db) == before:
                raise  # the file did not move: it is what it says
            continue
        if not sqlite.immutable or _Moment.of(db) == before:
            out.write(printed.getvalue())
            return code
    raise UsageError(f"{db} kept changing while it was read ({ATTEMPTS} tries; a writer is checkpointing): try again")


class _Lazy:
    """The machines to decode with, loaded from the specs the first time a read needs them (once for every retry)."""

    def __init__(self, loader: Loader, specs: list[str]) -> None:
        self._loader, self._specs = loader, specs
        self._catalog: _Catalog | None = None

    def catalog(self) -> _Catalog:
        if self._catalog is None:
            from statewright.machines.input import INPUT, authorize_seed

            from statewright.adapters.runtime.executor import runs_catalog

            machines = _machines(self._loader, self._specs)
            for name, machine in runs_catalog().machines.items():  # the executor's records (--key runs/ID/facts)
                machines.setdefault(name, machine)
            self._catalog = _Catalog(machines, {"input": authorize_seed} if machines.get("input") is INPUT else {})
        return self._catalog


def _inspect(reader: _Reader | _PostgresReader, args: argparse.Namespace, machines: _Lazy, out: TextIO) -> int:
    """One read of the whole store (or of ``--key``'s instances, or ``--run``'s run) through ``reader``, to ``out``."""
    keys = reader.check()
    inspection = _Inspection(reader, machines.catalog(), out)
    runs = _Runs(reader)
    if getattr(args, "run", None) is not None:
        if args.key:
            raise UsageError("--run shows one run, --key instances: give one of them")
        for rowid, key in keys:
            runs.take(rowid, key)
        return runs.show(args.run, inspection)
    rowids = {key: rowid for rowid, key in keys if isinstance(key, str)}
    for key in args.key:
        if key not in rowids:
            names = [_shown(k) for _, k in keys]
            known = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED:,} more" if len(names) > _NAMED else "")
            raise UsageError(f"no instance {key!r} in {reader.db} (instances: {known or 'none'})")
    for rowid, key in [(rowids[k], k) for k in args.key] or keys:
        if args.key or not runs.take(rowid, key):
            inspection.instance(rowid, key)
    if not args.key:
        views = runs.views()
        if views:
            print(f"runs ({len(views)}):", file=out)
            for line in runs_table(views):
                print(line, file=out)
        try:
            side = reader.read_side()
        except _Unreadable as exc:
            inspection._damage(f"consumers: CORRUPT -- cannot read them: {_escape(str(exc))}")
        else:
            if side is not None and (side.consumers or side.dead):
                _Consumers(inspection).show(side)
    return EXIT_DAMAGED if inspection.damaged else EXIT_OK
