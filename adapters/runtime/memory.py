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
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Cas,
    Catalog,
    Event,
    NotFound,
    Op,
    Receipt,
    Record,
    SingleWrites,
    batch_digest,
    cas_machine,
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


@dataclass
class _Log:
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (kind, data json, terminal)

    @property
    def head(self) -> int:
        return len(self.events)


class MemoryStore(SingleWrites):
    """An in-memory `adapters.runtime.store.Store`.

    >>> import asyncio
    >>> from statewright.machines.input import INPUT, Input, authorize_seed
    >>> store = MemoryStore(Catalog({"input": INPUT}, {"input": authorize_seed}))
    >>> asyncio.run(store.cas("in1", 0, Input(), machine="input")).version
    1
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._rows: dict[str, _Row] = {}
        self._logs: dict[str, _Log] = {}
        self._batches: dict[str, tuple[str, str | None]] = {}  # id -> (digest, outcome JSON)
        self._lock = asyncio.Lock()

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
            txn = _Txn(self._rows, self._logs)
            out: list[Any] = []
            for op, payload in zip(ops, prepared):
                if isinstance(op, Cas):
                    out.append(self._cas(txn, op, payload))
                elif isinstance(op, Append):
                    out.append(self._append(txn, op, payload))
                else:
                    out.append(self._terminal(txn, op, payload))
            self._rows.update(txn.rows)
            for key, events in txn.logs.items():
                self._logs[key] = _Log(events)
            if batch is not None:
                self._batches[batch] = (digest, noted)
            return out

    def _receipt(self, batch: str) -> Receipt | None:
        found = self._batches.get(batch)
        return None if found is None else decode_receipt(batch, *found)

    async def receipt(self, batch: str) -> Receipt | None:
        return self._receipt(batch) if is_name(batch, limits=self.catalog.limits) else None

    async def log_head(self, key: str) -> tuple[int, bool]:
        log = self._logs.get(key) if is_name(key, limits=self.catalog.limits) else None
        if log is None or not log.events:
            return 0, False
        return log.head, log.events[-1][2]

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        log = self._logs.get(key, _Log()) if is_name(key, limits=self.catalog.limits) else _Log()
        end = log.head + 1 if stop is None else min(stop, log.head + 1)
        return [
            Event(key, seq, kind, decode_event(key, seq, data), terminal)
            for seq, (kind, data, terminal) in enumerate(log.events, start=1)
            if start <= seq < end
        ]

    async def keys(self) -> list[str]:
        return sorted(self._rows)

    async def close(self) -> None:
        return None

    # -- the write rules, applied to a transaction overlay, in SQLite's order --

    def _cas(self, txn: _Txn, op: Cas, text: str | None) -> Record:
        current = txn.row(op.key)
        machine = cas_machine(op, None if current is None else (current.machine, current.version))
        if text is None:  # a no-machine Cas on a row this batch created
            text = self.catalog.dump(machine, op.state, key=op.key)
        txn.rows[op.key] = _Row(machine, text, op.expected + 1)
        return Record(op.key, machine, self.catalog.load(machine, text, key=op.key), op.expected + 1)

    def _open_log(self, txn: _Txn, key: str, expected: int | None = None) -> list[tuple[str, str, bool]]:
        """``key``'s events as this transaction sees them, once `open_log` allows appending to them."""
        exists = txn.row(key) is not None
        events = txn.log(key) if exists else []
        open_log(key, exists, len(events), bool(events) and events[-1][2], expected=expected)
        return events

    def _append(self, txn: _Txn, op: Append, payload: list[tuple[str, str]]) -> int:
        events = self._open_log(txn, op.key, op.expected)
        events.extend((kind, data, False) for kind, data in payload)
        return len(events)

    def _terminal(self, txn: _Txn, op: AppendTerminal, payload: str) -> int:
        events = self._open_log(txn, op.key)
        events.append((op.kind, payload, True))
        return len(events)


class _Txn:
    """Changes of one transaction, read through to the live maps until published."""

    def __init__(self, rows: dict[str, _Row], logs: dict[str, _Log]) -> None:
        self._base_rows = rows
        self._base_logs = logs
        self.rows: dict[str, _Row] = {}
        self.logs: dict[str, list[tuple[str, str, bool]]] = {}

    def row(self, key: str) -> _Row | None:
        return self.rows.get(key) or self._base_rows.get(key)

    def log(self, key: str) -> list[tuple[str, str, bool]]:
        if key not in self.logs:
            base = self._base_logs.get(key)
            self.logs[key] = list(base.events) if base is not None else []
        return self.logs[key]
