"""Batches at bulk speed: a batch is decided in memory (`bulk.Plan`) and written with one statement per kind of row.

One 40,000-operation batch held SQLite's write lock for 43 s (PostgreSQL:
20,000 operations in 5.6 s): every operation cost its own few round trips.
Times are not asserted here (``tests/benchmarks/bench_batch.py`` measures
them); what is, is the cause: the statements a batch sends do not grow with
its operations (on SQLite only its key lookups do, 500 keys a statement),
and the plan follows the port's rules op by op, each seeing the ones before.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime import sqlite as sqlite_module
from statewright.adapters.runtime.bulk import Plan
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Cas,
    Conflict,
    InvalidState,
    NotFound,
    Op,
    batch_id,
)
from statewright.machines.input import Input
from tests.adapters.test_store_contract import CATALOG, QUEUED


class Counting:
    """A stand-in for a store's connection that counts the statements sent through it (one call each)."""

    SENDS = ("execute", "executemany", "execute_fetchall", "fetch", "fetchval", "fetchrow")

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._conn, name)
        if name not in self.SENDS:
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.sent += 1
            return found(*args, **kwargs)

        return counted


def creating(n: int, prefix: str = "k") -> list[Op]:
    return [op for i in range(n) for op in (Cas(f"{prefix}{i}", 0, Input(), machine="input"),
                                            Append(f"{prefix}{i}", 0, (("created", {"i": i}),)))]


def feeding(n: int, prefix: str = "k") -> list[Op]:
    return [op for i in range(n) for op in (Cas(f"{prefix}{i}", 1, QUEUED),
                                            Append(f"{prefix}{i}", 1, (("input", {"type": "Queue"}),
                                                                       ("effect", {"type": "InputQueued"}))))]


async def sent(store: Any, attribute: str, ops: list[Op]) -> int:
    """Statements ``store`` sends to commit ``ops`` with a batch id."""
    counting = Counting(getattr(store, attribute))
    setattr(store, attribute, counting)
    try:
        await store.commit(ops, batch=batch_id(ops))
    finally:
        setattr(store, attribute, counting._conn)
    return counting.sent


def test_sqlite_sends_no_more_statements_for_1200_keys_than_for_2_but_its_key_lookups(tmp_path: Path) -> None:
    async def main() -> None:
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG) as store:
            await sent(store, "_db", creating(1, "w"))  # the first batch id recorded also prunes old ones
            for shape in (creating, feeding):
                small, big = await sent(store, "_db", shape(2, "s")), await sent(store, "_db", shape(1200, "b"))
                assert big == small + 2 * (math.ceil(1200 / sqlite_module._CHUNK) - 1), (shape.__name__, small, big)
            assert (await store.load("b1199")).version == 2 and len(await store.read_log("b1199")) == 3

    asyncio.run(main())


def test_postgres_sends_as_many_statements_for_1200_keys_as_for_2(postgres_dsn: str) -> None:
    from statewright.adapters.runtime.postgres import PostgresStore

    async def main() -> None:
        async with await PostgresStore.open(postgres_dsn, CATALOG) as store:
            await sent(store, "_conn", creating(1, "w"))  # the first batch id recorded also prunes old ones
            for shape in (creating, feeding):
                small, big = await sent(store, "_conn", shape(2, "s")), await sent(store, "_conn", shape(1200, "b"))
                assert big == small, (shape.__name__, small, big)
            assert (await store.load("b1199")).version == 2 and len(await store.read_log("b1199")) == 3

    asyncio.run(main())


# -- the plan: the port's rules, op by op, in memory ------------------------------------------


def plan(rows: dict[str, tuple[str, int]] | None = None, heads: dict[str, tuple[int, bool]] | None = None) -> Plan:
    return Plan(CATALOG, dict(rows or {}), dict(heads or {}))


def text(state: Input) -> str:
    return CATALOG.dump("input", state)


def test_each_operation_sees_the_ones_before_it() -> None:
    p = plan()
    assert p.apply(Cas("a", 0, Input(), machine="input"), text(Input())).version == 1
    assert p.apply(Cas("a", 1, QUEUED), None).state == QUEUED  # created above, then moved: one insert
    assert p.apply(Append("a", 0, (("x", {}), ("y", {}))), [("x", "{}"), ("y", "{}")]) == 2
    assert p.apply(AppendTerminal("a", "terminal", {}), "{}") == 3
    assert p.inserts == {"a": ("input", text(QUEUED), 2)} and p.updates == {}
    assert p.events == [("a", 1, "x", "{}", False), ("a", 2, "y", "{}", False), ("a", 3, "terminal", "{}", True)]


def test_an_existing_row_is_updated_once_guarded_by_the_version_read() -> None:
    p = plan({"a": ("input", 4)}, {"a": (7, False)})
    p.apply(Cas("a", 4, QUEUED), text(QUEUED))
    p.apply(Cas("a", 5, Input()), text(Input()))
    assert p.apply(Append("a", 7, (("x", {}),)), [("x", "{}")]) == 8
    assert p.updates == {"a": (text(Input()), 6, 4)} and p.inserts == {}


RULES: list[tuple[str, Callable[[Plan], Any], type[Exception]]] = [
    ("create an existing key", lambda p: p.apply(Cas("a", 0, Input(), machine="input"), text(Input())), Conflict),
    ("a stale version", lambda p: p.apply(Cas("a", 3, QUEUED), text(QUEUED)), Conflict),
    ("no such key", lambda p: p.apply(Cas("zz", 1, QUEUED), text(QUEUED)), NotFound),
    ("another machine", lambda p: p.apply(Cas("a", 4, QUEUED, machine="run"), text(QUEUED)), InvalidState),
    ("a stale head", lambda p: p.apply(Append("a", 6, (("x", {}),)), [("x", "{}")]), Conflict),
    ("a log of no instance", lambda p: p.apply(Append("zz", 0, ()), []), NotFound),
    ("after the terminal event", lambda p: p.apply(AppendTerminal("t", "terminal", {}), "{}"), Conflict),
]


@pytest.mark.parametrize("name, write, error", RULES, ids=[r[0] for r in RULES])
def test_the_plan_refuses_what_the_port_refuses(name: str, write: Callable[[Plan], Any], error: type[Exception]) -> None:
    p = plan({"a": ("input", 4), "t": ("input", 2)}, {"a": (7, False), "t": (3, True)})
    with pytest.raises(error):
        write(p)
    assert (p.inserts, p.updates, p.events) == ({}, {}, [])  # a refused operation adds nothing
