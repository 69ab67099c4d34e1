"""One code path for the reliability tests on SQLite and on PostgreSQL: a store *locator* names either.

A locator is a SQLite file path, or a PostgreSQL DSN (``postgresql://...``)
that other OS processes can use too. `open_store` opens the right store for
it; the rest gives each backend's way of doing what a test does *behind the
store's back* -- hold the write lock from another connection, ask whether the
lock is free, garble a row -- so a test says what it does once:

=================  ==========================================  =============================================
                   SQLite                                      PostgreSQL
=================  ==========================================  =============================================
hold the lock      ``BEGIN IMMEDIATE`` + an uncommitted write  ``LOCK TABLE instances IN EXCLUSIVE MODE``
                                                               (readers pass, writers wait: like WAL's lock)
lock is free       ``BEGIN IMMEDIATE`` with no wait succeeds   the same ``LOCK TABLE ... NOWAIT`` succeeds
garble a row       ``UPDATE instances SET state = ...``        the same, through asyncpg
=================  ==========================================  =============================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import pytest

from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import BatchStore, Catalog
from tests.adapters.test_store_contract import CATALOG

BACKENDS = ("sqlite", "postgres")
POSTGRES = "postgresql://"


class OpenStore(BatchStore, Protocol):
    """A `BatchStore` that closes itself as an async context manager, as both backends do."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def is_postgres(locator: str) -> bool:
    return locator.startswith(POSTGRES)


def backend_name(locator: str) -> str:
    """``"postgres"`` or ``"sqlite"``, as the locator says (for the figures the tests print)."""
    return "postgres" if is_postgres(locator) else "sqlite"


def locator(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of ``backend``: a file under ``tmp_path``, or the ``postgres_dsn`` fixture's database."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_dsn"))
    return str(tmp_path / "s.db")


async def open_store(locator: str, catalog: Catalog = CATALOG, *, busy_timeout: float = 5.0) -> OpenStore:
    """`SqliteStore.open` or `PostgresStore.open`, as ``locator`` says."""
    if is_postgres(locator):
        from statewright.adapters.runtime.postgres import PostgresStore  # only where PostgreSQL is tested

        store: OpenStore = await PostgresStore.open(locator, catalog, busy_timeout=busy_timeout)
        return store
    return await SqliteStore.open(locator, catalog, busy_timeout=busy_timeout)


def _instances() -> str:
    """The PostgreSQL store's instances table, in the schema `PostgresStore.open` uses by default."""
    from statewright.adapters.runtime.postgres import DEFAULT_SCHEMA

    return f'"{DEFAULT_SCHEMA}".instances'


class Holder:
    """Another connection that takes the store's write lock and keeps it until `release`.

    Built by `Holder.connect`; `hold` takes the lock (``wait=False``: only if it
    is free now, returning whether it got it), `release` rolls back.
    """

    def __init__(self, locator: str, sqlite: sqlite3.Connection | None, pg: Any) -> None:
        self.locator = locator
        self._sqlite = sqlite
        self._pg = pg
        self._transaction: Any = None  # PostgreSQL: the open transaction that holds the table lock

    @classmethod
    async def connect(cls, locator: str) -> Holder:
        if is_postgres(locator):
            import asyncpg  # type: ignore[import-untyped]

            return cls(locator, None, await asyncpg.connect(locator))
        return cls(locator, sqlite3.connect(locator, isolation_level=None, timeout=0), None)

    async def hold(self, *, wait: bool = True) -> bool:
        """Take the write lock and keep it (an open transaction); False when ``wait=False`` and it is taken.

        With ``wait=True`` PostgreSQL waits for the lock; SQLite (no busy wait on this connection) raises.
        """
        if self._sqlite is not None:
            try:
                self._sqlite.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                if wait:
                    raise
                return False
            self._sqlite.execute("UPDATE instances SET version = version + 100")  # never committed
        else:
            import asyncpg

            transaction = self._pg.transaction()
            await transaction.start()
            try:
                await self._pg.execute(f"LOCK TABLE {_instances()} IN EXCLUSIVE MODE{'' if wait else ' NOWAIT'}")
            except asyncpg.LockNotAvailableError:
                await transaction.rollback()
                return False
            self._transaction = transaction
        return True

    async def can_hold(self) -> bool:
        """Take the lock without waiting and let it go at once: is it free right now?"""
        if not await self.hold(wait=False):
            return False
        await self.release()
        return True

    async def release(self) -> None:
        """Roll back: the lock is free again."""
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
        else:
            await self._transaction.rollback()

    @property
    def in_transaction(self) -> bool:
        if self._sqlite is not None:
            return self._sqlite.in_transaction
        return bool(self._pg.is_in_transaction())

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        else:
            await self._pg.close()


async def lock_is_free(locator: str) -> bool:
    """Can another connection take the write lock right now (without waiting)?"""
    holder = await Holder.connect(locator)
    try:
        return await holder.can_hold()
    finally:
        await holder.close()


def store_idle(store: Any) -> bool:
    """The store's own connection holds no open transaction (so no lock) between calls."""
    if isinstance(store, SqliteStore):
        return not store._db.in_transaction
    return not store._conn.is_in_transaction()  # PostgresStore: one asyncpg connection


async def garble(locator: str, key: str, text: str) -> None:
    """Overwrite ``key``'s stored state with ``text`` behind the store's back; fail if there is no such row."""
    if is_postgres(locator):
        import asyncpg

        conn = await asyncpg.connect(locator)
        try:
            status = await conn.execute(f"UPDATE {_instances()} SET state = $1 WHERE key = $2", text, key)
        finally:
            await conn.close()
        changed = int(status.split()[-1])
    else:
        db = sqlite3.connect(locator, isolation_level=None, timeout=10)
        try:
            changed = db.execute("UPDATE instances SET state = ? WHERE key = ?", (text, key)).rowcount
        finally:
            db.close()
    if changed != 1:
        raise AssertionError(f"no row {key!r} to garble")


def run_together(procs: Sequence[BaseProcess], barrier: Barrier, *, start_within: float, join_within: float) -> None:
    """Start ``procs``, release them together once all wait on ``barrier``, join them; kill any left over.

    Each process waits on ``barrier`` once its store is open, so imports and
    start-up do not spread the race out; a process still alive after
    ``join_within`` seconds is killed (a hang fails the caller's exit-code check).
    """
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=start_within)
        for p in procs:
            p.join(join_within)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
