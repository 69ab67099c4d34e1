"""`MemoryStore`: the store port in memory, for tests and single-process use.

Same semantics as the SQLite backend, checked by the same contract suite and
a differential test: every write is validated and serialised by the shared
`store.prepare_batch` before anything is compared, and a `Cas` naming no
machine is then validated against the stored row's machine, in the same order
as SQLite does it -- so a memory store refuses exactly what a SQLite store
refuses, with the same code, and hands back fresh copies, never shared
objects. Each write runs against an overlay of the
keys it touches and is published only if every operation in it succeeded,
so a batch is all-or-nothing; an `asyncio.Lock` makes each write atomic with
respect to other tasks.

Cancellation: once a write holds the lock it runs to the end without another
await, so a cancelled write either never started or fully happened. Applied
batch ids are kept with their digest and outcome, published with the batch,
so re-submitting a batch (`Store.commit` with ``batch``) behaves exactly as in
SQLite; they are kept for the store's life (no retention).

The read side (`readside.ReadStore`): a batch numbers its events from the
store's last position while it holds the lock, and publishes them with
everything else, so the global log only ever grows by a whole batch at its
end -- a reader, which never awaits while it reads, sees a gap-free prefix.
Waiters (`wait`, `subscribe`) are woken by the commit itself. Events are
dated, and leases judged, by ``clock`` (default `time.time`).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from statewright.adapters.runtime.store import (
    Advance,
    Append,
    AppendTerminal,
    BadOption,
    Cas,
    Catalog,
    DeadLetter,
    Event,
    NotFound,
    Op,
    Receipt,
    Record,
    SingleWrites,
    Unacknowledged,
    advance_cursor,
    batch_digest,
    cas_machine,
    check_lease,
    check_name,
    decode_event,
    decode_receipt,
    is_name,
    open_log,
    prepare_batch,
    prepare_outcome,
    recorded_before,
)

__all__ = ["MemoryStore"]


@dataclass
class _Row:
    machine: str
    state: str
    version: int


@dataclass(frozen=True, slots=True)
class _Ev:
    """One stored event: its log's ``seq``, its global ``position`` and when it was appended (``at``)."""

    key: str
    seq: int
    kind: str
    data: str
    terminal: bool
    position: int
    at: float

    def event(self) -> Event:
        return Event(self.key, self.seq, self.kind, decode_event(self.key, self.seq, self.data), self.terminal,
                     self.position)


@dataclass
class _Log:
    events: list[_Ev] = field(default_factory=list)

    @property
    def head(self) -> int:
        return self.events[-1].seq if self.events else 0


@dataclass
class _Cursor:
    """One consumer partition's row."""

    partitions: int
    cursor: int
    owner: str | None = None
    until: float = 0.0


class MemoryStore(SingleWrites):
    """An in-memory `adapters.runtime.store.Store` and `readside.ReadStore`.

    >>> import asyncio
    >>> from statewright.machines.input import INPUT, Input, authorize_seed
    >>> store = MemoryStore(Catalog({"input": INPUT}, {"input": authorize_seed}))
    >>> asyncio.run(store.cas("in1", 0, Input(), machine="input")).version
    1
    """

    def __init__(self, catalog: Catalog, *, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self._clock = clock
        self._rows: dict[str, _Row] = {}
        self._logs: dict[str, _Log] = {}
        self._log: list[_Ev] = []  # every stored event, in position order
        self._last = 0  # the last position taken
        self._batches: dict[str, tuple[str, str | None]] = {}  # id -> (digest, outcome JSON)
        self._consumers: dict[tuple[str, int], _Cursor] = {}
        self._dead: dict[tuple[str, int], DeadLettered] = {}
        self._lock = asyncio.Lock()
        self._wakeup = Wakeup()

    async def load(self, key: str) -> Record:
        row = self._rows.get(key) if is_name(key, limits=self.catalog.limits) else None
        if row is None:
            raise NotFound(f"no instance {key!r}", key=key)
        return Record(key, row.machine, self.catalog.load(row.machine, row.state, key=key), row.version)

    async def _write(self, ops: Sequence[Op], batch: str | None = None, outcome: Any = None) -> list[Any]:
        """Apply ``ops`` to an overlay; publish the overlay (and ``batch``) only if every op succeeded.

        The order of checks is SQLite's: `prepare_batch` and the batch's digest,
        then a batch id seen before (the same batch: success, nothing applied;
        another: `AlreadyApplied`), then each no-machine `Cas` against its row as
        it was before the batch, then the ops in order.
        """
        prepared = prepare_batch(self.catalog, ops, batch)
        noted = prepare_outcome(self.catalog, batch, outcome)
        digest = batch_digest(ops, prepared, limits=self.catalog.limits) if batch is not None else ""
        async with self._lock:
            if batch is not None and recorded_before(batch, digest, self._receipt(batch)):
                return []  # applied before: its outcome was success, and nothing is applied twice
            for i, op in enumerate(ops):
                if isinstance(op, Cas) and prepared[i] is None:
                    row = self._rows.get(op.key)
                    if row is not None:
                        prepared[i] = self.catalog.dump(row.machine, op.state, key=op.key)
            txn = _Txn(self, self._clock())
            out = [txn.apply(op, payload) for op, payload in zip(ops, prepared)]
            self._publish(txn)
            if batch is not None:
                self._batches[batch] = (digest, noted)
            return out

    def _publish(self, txn: _Txn) -> None:
        """Make a whole transaction visible at once (no await: readers see all of it or none)."""
        self._rows.update(txn.rows)
        for key, events in txn.logs.items():
            self._logs[key] = _Log(events)
        for where, row in txn.consumers.items():
            self._consumers[where] = row
        for where, dead in txn.dead.items():
            self._dead.setdefault(where, dead)
        if txn.fresh:
            self._log.extend(txn.fresh)
            self._last = txn.fresh[-1].position
            self._wakeup.notify()

    def _receipt(self, batch: str) -> Receipt | None:
        found = self._batches.get(batch)
        return None if found is None else decode_receipt(batch, *found)

    async def receipt(self, batch: str) -> Receipt | None:
        return self._receipt(batch) if is_name(batch, limits=self.catalog.limits) else None

    async def log_head(self, key: str) -> tuple[int, bool]:
        log = self._logs.get(key) if is_name(key, limits=self.catalog.limits) else None
        if log is None or not log.events:
            return 0, False
        return log.head, log.events[-1].terminal

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        log = self._logs.get(key, _Log()) if is_name(key, limits=self.catalog.limits) else _Log()
        return [ev.event() for ev in log.events if start <= ev.seq and (stop is None or ev.seq < stop)]

    async def keys(self) -> list[str]:
        return sorted(self._rows)

    async def close(self) -> None:
        return None

    # -- the read side ----------------------------------------------------------------

    async def read(self, after: int = 0, *, limit: int = 1000, partition: tuple[int, int] | None = None,
                   kinds: Sequence[str] | None = None) -> list[Event]:
        check_read(after, limit, partition, kinds)
        wanted = None if kinds is None else frozenset(kinds)
        out: list[Event] = []
        for ev in self._log[bisect.bisect_right(self._log, after, key=lambda e: e.position):]:
            if partition is not None and bucket_of(ev.key) % partition[1] != partition[0]:
                continue
            if wanted is not None and ev.kind not in wanted:
                continue
            out.append(ev.event())
            if len(out) >= limit:
                break
        return out

    async def latest_cursor(self) -> int:
        return self._last

    async def replay_all(self) -> list[Event]:
        return [ev.event() for ev in self._log]

    async def read_range(self, key: str, start: int, end: int | None = None) -> list[Event]:
        check_range(start, end)
        return await self.read_log(key, start, None if end is None else end + 1)

    async def wait(self, after: int, timeout: float) -> int:
        return await wait_for_commit(self.latest_cursor, self._wakeup, after, timeout, None)

    def subscribe(self, after: int = 0, *, limit: int = 1000) -> AsyncIterator[Event]:
        return follow(self, after, limit)

    async def prune(self, older_than: float) -> int:
        async with self._lock:
            floor = min((row.cursor for row in self._consumers.values()), default=self._last)
            gone = {ev.position for ev in self._log
                    if ev.at < older_than and ev.position <= floor and self._logs[ev.key].events[-1] is not ev}
            if gone:
                self._log = [ev for ev in self._log if ev.position not in gone]
                for log in self._logs.values():
                    log.events = [ev for ev in log.events if ev.position not in gone]
            return len(gone)

    async def clear(self) -> int:
        async with self._lock:
            refuse_lagging(_cursors(self._consumers), self._last, "clearing the store")
            n = len(self._log)
            self._rows.clear()
            self._logs.clear()
            self._log.clear()
            self._batches.clear()
            self._dead.clear()
            return n

    async def register(self, consumer: str, *, partitions: int = 1, start: Start = "earliest") -> list[Consumer]:
        check_register(consumer, partitions, start, limits=self.catalog.limits)
        async with self._lock:
            found = [self._consumers[(consumer, p)] for p in range(partitions) if (consumer, p) in self._consumers]
            held = {row.partitions for (name, _), row in self._consumers.items() if name == consumer}
            if held and held != {partitions}:
                raise BadOption(f"consumer {consumer!r} is registered with partitions={held.pop()}, not {partitions}")
            if not found:
                cursor = 0 if start == "earliest" else self._last
                for p in range(partitions):
                    self._consumers[(consumer, p)] = _Cursor(partitions, cursor)
            return [self._consumer(consumer, p) for p in range(partitions)]

    async def unregister(self, consumer: str, *, force: bool = False) -> None:
        async with self._lock:
            rows = {where: row for where, row in self._consumers.items() if where[0] == consumer}
            if not rows:
                raise NotFound(f"no consumer {consumer!r}")
            if not force:
                refuse_lagging(_cursors(rows), self._last, f"unregistering {consumer!r}")
            for where in rows:
                del self._consumers[where]
            for where in [w for w in self._dead if w[0] == consumer]:
                del self._dead[where]

    async def consumers(self) -> list[Consumer]:
        return [self._consumer(*where) for where in sorted(self._consumers)]

    async def lease(self, consumer: str, partition: int, owner: str, ttl: float) -> Consumer | None:
        check_name(owner, "a lease owner", limits=self.catalog.limits)
        check_ttl(ttl)
        async with self._lock:
            row = self._consumers.get((consumer, partition))
            if row is None:
                raise NotFound(f"no consumer {consumer!r} with a partition {partition}")
            now = self._clock()
            if row.owner not in (None, owner) and row.until > now:
                return None
            row.owner, row.until = owner, now + ttl
            return self._consumer(consumer, partition)

    async def release(self, consumer: str, partition: int, owner: str) -> None:
        async with self._lock:
            row = self._consumers.get((consumer, partition))
            if row is not None and row.owner == owner:
                row.owner, row.until = None, 0.0

    async def dead_letters(self, consumer: str | None = None, *, limit: int = 1000) -> list[DeadLettered]:
        found = sorted((d for d in self._dead.values() if consumer is None or d.consumer == consumer),
                       key=lambda d: (d.position, d.consumer))
        return found[:limit]

    def _consumer(self, name: str, partition: int) -> Consumer:
        row = self._consumers[(name, partition)]
        return Consumer(name, partition, row.partitions, row.cursor, row.owner, row.until)


def _cursors(rows: dict[tuple[str, int], _Cursor]) -> list[tuple[str, int, int]]:
    return [(name, p, row.cursor) for (name, p), row in rows.items()]


class _Txn:
    """Changes of one transaction, read through to the live store until published."""

    def __init__(self, store: MemoryStore, now: float) -> None:
        self._store = store
        self._now = now
        self.rows: dict[str, _Row] = {}
        self.logs: dict[str, list[_Ev]] = {}
        self.consumers: dict[tuple[str, int], _Cursor] = {}
        self.dead: dict[tuple[str, int], DeadLettered] = {}
        self.fresh: list[_Ev] = []  # the events appended, positions taken in order

    def apply(self, op: Op, payload: Any) -> Record | int:
        if isinstance(op, Cas):
            return self._cas(op, payload)
        if isinstance(op, Append):
            return self._append(op.key, op.expected, [(kind, data, False) for kind, data in payload])
        if isinstance(op, AppendTerminal):
            return self._append(op.key, None, [(op.kind, payload, True)])
        if isinstance(op, Advance):
            row = self._consumer(op.consumer, op.partition)
            cursor = advance_cursor(op, None if row is None else (row.cursor, row.owner))
            assert row is not None
            self.consumers[(op.consumer, op.partition)] = _Cursor(row.partitions, cursor, row.owner, row.until)
            return cursor
        row = self._consumer(op.consumer, op.partition)
        check_lease(op.consumer, op.partition, op.owner, None if row is None else (row.cursor, row.owner))
        where = (op.consumer, op.position)
        if where not in self._store._dead and where not in self.dead:
            self.dead[where] = DeadLettered(op.consumer, op.partition, op.position, op.key, op.seq, op.kind,
                                            decode_event(op.key, op.seq, payload), op.code, op.error, op.attempts,
                                            self._now)
        return op.position

    def row(self, key: str) -> _Row | None:
        return self.rows.get(key) or self._store._rows.get(key)

    def _consumer(self, name: str, partition: int) -> _Cursor | None:
        return self.consumers.get((name, partition)) or self._store._consumers.get((name, partition))

    def _cas(self, op: Cas, text: str | None) -> Record:
        current = self.row(op.key)
        machine = cas_machine(op, None if current is None else (current.machine, current.version))
        catalog = self._store.catalog
        if text is None:  # a no-machine Cas on a row this batch created
            text = catalog.dump(machine, op.state, key=op.key)
        self.rows[op.key] = _Row(machine, text, op.expected + 1)
        return Record(op.key, machine, catalog.load(machine, text, key=op.key), op.expected + 1)

    def _append(self, key: str, expected: int | None, events: list[tuple[str, str, bool]]) -> int:
        """Append to ``key``'s log as this transaction sees it, once `open_log` allows; positions follow the last."""
        exists = self.row(key) is not None
        log = self._log(key) if exists else []
        head = log[-1].seq if log else 0
        open_log(key, exists, head, bool(log) and log[-1].terminal, expected=expected)
        last = self.fresh[-1].position if self.fresh else self._store._last
        for i, (kind, data, terminal) in enumerate(events, start=1):
            ev = _Ev(key, head + i, kind, data, terminal, last + i, self._now)
            log.append(ev)
            self.fresh.append(ev)
        return head + len(events)

    def _log(self, key: str) -> list[_Ev]:
        if key not in self.logs:
            base = self._store._logs.get(key)
            self.logs[key] = list(base.events) if base is not None else []
        return self.logs[key]
