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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Cas,
    Catalog,
    Op,
    Record,
    cas_machine,
    open_log,
)

__all__ = ["Plan", "machine_less"]


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

    def apply(self, op: Op, payload: Any) -> Record | int:
        """Apply one operation (a `Record` for a `Cas`, the new head for an append), or raise as the port says."""
        if isinstance(op, Cas):
            return self._cas(op, payload)
        head, ended = self.heads.get(op.key, (0, False))
        open_log(op.key, op.key in self.rows, head, ended, expected=op.expected if isinstance(op, Append) else None)
        if isinstance(op, AppendTerminal):
            self.events.append((op.key, head + 1, op.kind, payload, True))
            self.heads[op.key] = (head + 1, True)
            return head + 1
        self.events.extend((op.key, head + i, kind, data, False) for i, (kind, data) in enumerate(payload, start=1))
        self.heads[op.key] = (head + len(payload), False)
        return head + len(payload)

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
