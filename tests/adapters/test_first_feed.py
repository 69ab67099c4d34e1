"""A fresh `Driver`'s first feed costs the same whatever the length of the key's log.

A driver needs a key's log head (and whether the log has ended) to append at
it. It used to find it by reading the whole log once per driver (200,000
events: 1.77 s on SQLite), and every append's head check aggregated over the
whole log inside the transaction. Now `HeadStore.log_head` and the stores'
own head checks go down the ``(key, seq)`` index to the last event and look
the terminal event up in the one-terminal index. These tests count what the
first feed reads -- events handed back by the store, SQLite virtual-machine
instructions, PostgreSQL rows read from the events table -- for a short log
and a long one, and require the same count; never a clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Event, Store
from tests.adapters import _workers as W

SHORT, LONG = 10, 20_000  # events in the two logs (LONG is enough to dwarf anything a short log costs)


class Counting:
    """A store that counts its calls by name, and the events ``read_log`` hands back."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.catalog = inner, inner.catalog
        self.calls: Counter[str] = Counter()
        self.events = 0

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        self.calls["read_log"] += 1
        events = await self.inner.read_log(key, start, stop)
        self.events += len(events)
        return events

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


async def logs(store: Store) -> None:
    """Two tallies: ``short`` with SHORT events in its log and ``long`` with LONG (one append each)."""
    for key, size in (("short", SHORT), ("long", LONG)):
        await Driver(store).create(key, "tally")
        await store.append(key, 1, [("input", {"type": "Add", "amount": 0})] * (size - 1))


async def first_feed(store: Store, key: str) -> None:
    fed = await Driver(store).feed(key, W.Add(1))
    assert fed.accepted


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_a_fresh_drivers_first_feed_reads_no_event(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Whatever the log's length: one log-head read, one load, one commit; no event read back."""
    dsn = str(request.getfixturevalue("postgres_dsn")) if backend == "postgres" else ""

    async def main() -> dict[str, tuple[dict[str, int], int]]:
        inner: Any
        if backend == "memory":
            inner = MemoryStore(W.ONCE_CATALOG)
        elif backend == "sqlite":
            inner = await SqliteStore.open(tmp_path / "s.db", W.ONCE_CATALOG)
        else:
            from statewright.adapters.runtime.postgres import PostgresStore

            inner = await PostgresStore.open(dsn, W.ONCE_CATALOG)
        try:
            await logs(inner)
            seen = {}
            for key in ("short", "long"):
                store = Counting(inner)
                await first_feed(store, key)  # type: ignore[arg-type]
                seen[key] = (dict(store.calls), store.events)
            assert [e.seq for e in await inner.read_log("long", LONG)] == [LONG, LONG + 1, LONG + 2]
            return seen
        finally:
            await inner.close()

    seen = asyncio.run(main())
    assert seen["short"] == seen["long"] == ({"log_head": 1, "load": 1, "commit": 1}, 0)


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[first feed] {text}")


def test_sqlite_does_the_same_work_for_a_first_feed_on_a_short_log_and_a_long_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counted in SQLite virtual-machine instructions (a progress handler called at every one): equal."""

    async def main() -> dict[str, int]:
        async with await SqliteStore.open(tmp_path / "s.db", W.ONCE_CATALOG) as store:
            await logs(store)
            steps = {}
            for key in ("short", "long"):
                count = [0]

                def tick() -> int:
                    count[0] += 1
                    return 0

                await store._db.set_progress_handler(tick, 1)
                await first_feed(store, key)
                await store._db.set_progress_handler(None, 1)  # type: ignore[arg-type]
                steps[key] = count[0]
            return steps

    steps = asyncio.run(main())
    assert steps["short"] == steps["long"] and steps["short"] > 0, steps
    say(capsys, f"sqlite: {steps['short']} VM instructions with {SHORT} events in the log and with {LONG:,}")


def test_postgres_reads_the_same_rows_for_a_first_feed_on_a_short_log_and_a_long_one(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counted as rows of the events table PostgreSQL read (index entries returned plus heap rows scanned): equal."""
    import asyncpg  # type: ignore[import-untyped]

    from statewright.adapters.runtime.postgres import PostgresStore

    read = ("SELECT (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE schemaname = 'statewright' "
            "AND relname = 'events') + (SELECT seq_tup_read FROM pg_stat_user_tables WHERE schemaname = 'statewright' "
            "AND relname = 'events')")

    async def main() -> dict[str, int]:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            async with await PostgresStore.open(postgres_dsn, W.ONCE_CATALOG) as store:
                await logs(store)

                async def rows_read() -> int:
                    await store._conn.execute("SELECT pg_stat_force_next_flush()")  # the store's counts, published
                    await admin.execute("SELECT pg_stat_clear_snapshot()")
                    return int(await admin.fetchval(read))

                counts = {}
                for key in ("short", "long"):
                    before = await rows_read()
                    await first_feed(store, key)
                    counts[key] = await rows_read() - before
                return counts
        finally:
            await admin.close()

    counts = asyncio.run(main())
    assert counts["short"] == counts["long"], counts
    say(capsys, f"postgres: {counts['short']} rows of events read with {SHORT} events in the log and with {LONG:,}")
