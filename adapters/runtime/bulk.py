"""What a batch writes, decided in memory: the port's rules applied op by op, gathered into one list per statement.

Both SQL backends read the instance rows and log heads of every key a batch
touches with one statement each (under their write lock or row locks) and
hand them to a `Plan`. The plan applies the operations in order -- each sees
the ones before it, as the port requires -- by `store.cas_machine` and
`store.open_log`, the rules every backend asks, and gathers what to write:
the instances to insert and to update, each once at its final state (an
update guarded by the version the batch read), and the events to insert.
The backend then writes each list with one statement (``executemany`` on
SQLite, arrays through ``unnest`` on PostgreSQL), so a batch of 40,000
operations costs a handful of statements instead of some 100,000 round
trips, and a failing operation raises before anything is sent.

The read side's operations are decided the same way, on the consumer rows
the batch read (`consumers_of` names them): an `Advance` by
`store.advance_cursor` (lease, then compare-and-swap), gathered as one
guarded cursor update per partition; a `DeadLetter` by `store.check_lease`,
gathered once per (consumer, position) -- the backend inserts it only if that
position has no dead letter yet, so recording one twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statewright.adapters.runtime.readside import bucket_of
from statewright.adapters.runtime.store import (
    Advance,
    Append,
    AppendTerminal,
    Cas,
    Catalog,
    DeadLetter,
    Op,
    Record,
    advance_cursor,
    cas_machine,
    check_lease,
    open_log,
)

__all__ = ["Plan", "consumers_of", "machine_less"]


@dataclass(slots=True)
class Plan:
    """One batch's writes, decided on ``rows`` (key -> machine, version) and ``heads`` (key -> head, ended).

    ``rows`` and ``heads`` are what the batch read of its keys; keys absent
    have no instance or no events. `apply` each operation with its prepared
    payload (`store.prepare`), in order; then ``inserts``, ``updates`` and
    ``events`` are the rows to write.

    >>> from statewright.machines.input import INPUT, Input
    >>> plan = Plan(Catalog({"input": INPUT}), {}, {})
    >>> plan.apply(Cas("in1", 0, Input(), machine="input"), '{"phase":"accepted"}').version
    1
    >>> plan.apply(Append("in1", 0, (("Queue", {}),)), [("Queue", "{}")])
    1
    >>> plan.inserts, plan.updates, plan.events
    ({'in1': ('input', '{"phase":"accepted"}', 1)}, {}, [('in1', 1, 'Queue', '{}', False)])
    """

    catalog: Catalog
    rows: dict[str, tuple[Any, Any]]
    heads: dict[str, tuple[int, bool]]
    inserts: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    """Keys this batch creates: machine, state text and version, at their last write in the batch."""
    updates: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """Keys that existed: state text, new version, and the version read (the update's guard)."""
    events: list[tuple[str, int, str, str, bool]] = field(default_factory=list)
    """``(key, seq, kind, data, terminal)`` of every event appended."""
    consumers: dict[tuple[str, int], tuple[int, str | None]] = field(default_factory=dict)
    """What the batch read of the consumer partitions it names (`consumers_of`): (consumer, partition) -> (cursor,
    owner); absent: never registered. A backend that reads none refuses every `Advance` with `NotFound`."""
    advances: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    """Cursors this batch moves: (consumer, partition) -> (new cursor, the cursor read: the update's guard)."""
    dead: dict[tuple[str, int], tuple[int, str, int, str, str, str, str, int]] = field(default_factory=dict)
    """Dead letters to record unless recorded before: (consumer, position) -> (partition, key, seq, kind, data,
    code, error, attempts); the first of a batch wins, as the first ever recorded does."""

    def apply(self, op: Op, payload: Any) -> Record | int:
        """Apply one operation (a `Record` for a `Cas`, the new head for an append, the new cursor for an
        `Advance`, the position for a `DeadLetter`), or raise as the port says."""
        if isinstance(op, Cas):
            return self._cas(op, payload)
        if isinstance(op, Advance):
            return self._advance(op)
        if isinstance(op, DeadLetter):
            check_lease(op.consumer, op.partition, op.owner, self.consumers.get((op.consumer, op.partition)))
            self.dead.setdefault((op.consumer, op.position), (
                op.partition, op.key, op.seq, op.kind, payload, op.code, op.error, op.attempts))
            return op.position
        head, ended = self.heads.get(op.key, (0, False))
        open_log(op.key, op.key in self.rows, head, ended, expected=op.expected if isinstance(op, Append) else None)
        if isinstance(op, AppendTerminal):
            self.events.append((op.key, head + 1, op.kind, payload, True))
            self.heads[op.key] = (head + 1, True)
            return head + 1
        self.events.extend((op.key, head + i, kind, data, False) for i, (kind, data) in enumerate(payload, start=1))
        self.heads[op.key] = (head + len(payload), False)
        return head + len(payload)

    def numbered(self, last: int) -> list[tuple[str, int, str, str, bool, int, int]]:
        """The events with their positions -- ``last + 1``, ``last + 2``, ... in batch order -- and buckets.

        ``last`` is the last position taken before this batch, read under the
        lock the batch commits under: ``(key, seq, kind, data, terminal,
        position, bucket)``.
        """
        return [(k, seq, kind, data, end, last + i, bucket_of(k))
                for i, (k, seq, kind, data, end) in enumerate(self.events, start=1)]

    def _advance(self, op: Advance) -> int:
        where = (op.consumer, op.partition)
        cursor = advance_cursor(op, self.consumers.get(where))
        read = self.advances[where][1] if where in self.advances else op.expected
        self.advances[where] = (cursor, read)
        self.consumers[where] = (cursor, op.owner)
        return cursor

    def _cas(self, op: Cas, text: str | None) -> Record:
        machine = cas_machine(op, self.rows.get(op.key))
        if text is None:  # a no-machine Cas on a row this batch created: validated now, on its machine
            text = self.catalog.dump(machine, op.state, key=op.key)
        version = op.expected + 1
        if op.expected == 0 or op.key in self.inserts:
            self.inserts[op.key] = (machine, text, version)
        else:
            read = self.updates[op.key][2] if op.key in self.updates else op.expected
            self.updates[op.key] = (text, version, read)
        self.rows[op.key] = (machine, version)
        # the state was checked to read back through its type as an equal value (`Catalog.dump`): no decode needed
        return Record(op.key, machine, op.state, version)


def machine_less(catalog: Catalog, ops: Sequence[Op], prepared: list[Any],
                 rows: Mapping[str, tuple[Any, Any]]) -> None:
    """Serialise every `Cas` that names no machine against its stored row's machine, in ``prepared``.

    Done before any operation is applied, so that `InvalidState` wins over a
    version or head that moved (the port's rule); a key with no row is left
    for `Plan.apply` to find missing (or created earlier in the batch).
    """
    for i, op in enumerate(ops):
        if isinstance(op, Cas) and prepared[i] is None and op.key in rows:
            prepared[i] = catalog.dump(rows[op.key][0], op.state, key=op.key)


def consumers_of(ops: Sequence[Op]) -> list[tuple[str, int]]:
    """The consumer partitions a batch's `Advance` and `DeadLetter` operations name, sorted: the rows to read."""
    return sorted({(op.consumer, op.partition) for op in ops if isinstance(op, (Advance, DeadLetter))})
