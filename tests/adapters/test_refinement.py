"""Refinement: the driver over a real store follows the pure model, and a broken store is caught.

Every lifecycle spec that is a single machine, and the session_inputs and
loop_frame systems, run through `adapters.testing.refinement.run_refinement` against
a fresh SQLite file per program (one against the memory store). Then the
same suite runs against SQLite stores broken on purpose: one whose writes
compare nothing (CAS without the version, append without the head) and one
whose appends ignore the head; both must fail with a printed program. A CAS
that ignores only the version is *not* observable through the driver, which
checks the log head in the same batch (every version bump moves the head):
that is pinned down too.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import Driver
from statewright.adapters.testing.refinement import StoreFactory, catalog_for, memory_store, run_refinement, sqlite_store
from statewright.adapters.runtime.serialize import event_json
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Append, Cas, Catalog, Event, Op, Record, Store
from statewright.machines.input import InputPhase, Queue, Stage
from statewright.specs import REGISTRY

MACHINES = ("input", "run", "task", "token", "operator", "session")
SYSTEMS = ("session_inputs", "loop_frame")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("operator", *SYSTEMS) else n
                                  for n in MACHINES + SYSTEMS])
def test_sqlite_store_refines_the_model(name: str) -> None:
    result = run_refinement(REGISTRY.get(name).spec(), sqlite_store, examples=6, steps=12)
    assert result.passed, result.failure
    assert result.examples == 6
    assert result.steps >= 6 * 6  # every program takes steps (a race or an interleave counts two)


def test_memory_store_refines_the_model() -> None:
    result = run_refinement(REGISTRY.get("token").spec(), memory_store, examples=10, steps=15)
    assert result.passed, result.failure
    assert result.examples == 10


class BrokenStore(SqliteStore):
    """A SQLite store that skips some of its compare-and-swap checks.

    It rewrites each operation to expect what is stored before the store
    decides the batch, so the store's own comparisons always pass.
    """

    compare_version = True
    compare_head = True

    async def _batch(self, ops: Sequence[Op], prepared: list[Any], batch: str | None, digest: str,
                     noted: str | None) -> list[Record | int]:
        rewritten: list[Op] = []
        for op in ops:
            if isinstance(op, Cas) and op.expected != 0 and not self.compare_version:
                row = await self._one("SELECT version FROM instances WHERE key = ?", (op.key,))
                if row is not None:  # the bug: no version compared -- whoever writes last wins
                    op = replace(op, expected=row[0])
            elif isinstance(op, Append) and not self.compare_head:
                row = await self._one("SELECT COALESCE(MAX(seq), 0) FROM events WHERE key = ?", (op.key,))
                assert row is not None  # the bug: appended at the real head, not checked against op.expected
                op = replace(op, expected=row[0])
            rewritten.append(op)
        return await super()._batch(rewritten, prepared, batch, digest, noted)


def broken(*, version: bool, head: bool) -> StoreFactory:
    cls: type[BrokenStore] = type("Broken", (BrokenStore,), {"compare_version": version, "compare_head": head})

    @asynccontextmanager
    async def stores(catalog: Catalog) -> AsyncIterator[Store]:
        folder = tempfile.mkdtemp(prefix="broken-")
        try:
            async with await cls.open(Path(folder) / "store.db", catalog) as store:
                yield store
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return stores


@pytest.mark.slow
@pytest.mark.parametrize("name", ["input", "session_inputs"])
def test_a_store_that_compares_nothing_is_caught(name: str) -> None:
    result = run_refinement(REGISTRY.get(name).spec(), broken(version=False, head=False),
                            examples=50, steps=15, seed=1)
    assert not result.passed
    assert result.failure is not None
    # shrunk to one interleave: A's batch, decided before B's input, overwrites it (a lost update)
    assert result.failure.startswith("RefinementError: driver A:"), result.failure
    assert "state.interleave(data=data(...))" in result.failure
    assert result.failure.count("\nstate.") == 2  # the interleave, then teardown


@pytest.mark.slow
def test_a_store_whose_appends_ignore_the_head_is_caught() -> None:
    result = run_refinement(REGISTRY.get("input").spec(), broken(version=True, head=False),
                            examples=50, steps=15, seed=1)
    assert not result.passed
    assert result.failure is not None
    # A's rejection, decided on the state before B's input, is recorded after it: a stale rejection
    assert "accepted=False, the model says True" in result.failure, result.failure
    assert "state.interleave(data=data(...))" in result.failure


@pytest.mark.slow
def test_a_cas_that_ignores_only_the_version_is_masked_by_the_head_check() -> None:
    """Every batch that bumps a version also appends at an expected head, so the driver stays correct."""
    result = run_refinement(REGISTRY.get("input").spec(), broken(version=False, head=True),
                            examples=20, steps=15, seed=1)
    assert result.passed, result.failure


class _Between:
    """A store that runs another driver's whole input at one moment of a feed (its first load or log-head read)."""

    def __init__(self, inner: Store, other: Driver, key: str, event: Any, moment: str) -> None:
        self.inner, self.catalog = inner, inner.catalog
        self.pending: tuple[Driver, str, Any] | None = (other, key, event)
        self.moment = moment

    async def _maybe(self, moment: str) -> None:
        if self.pending is not None and moment == self.moment:
            other, k, event = self.pending
            self.pending = None
            await other.feed(k, event)

    async def load(self, key: str) -> Record:
        await self._maybe("load")
        return await self.inner.load(key)

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        await self._maybe("read_log")
        return await self.inner.read_log(key, start, stop)

    async def log_head(self, key: str) -> tuple[int, bool]:
        await self._maybe("log_head")
        return await self.inner.log_head(key)

    async def commit(self, ops: Sequence[Op]) -> None:
        await self.inner.commit(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("moment", ["log_head", "load"])
def test_a_rejection_is_never_decided_on_a_stale_record(moment: str) -> None:
    """Another writer commits while a feed is reading; the feed must decide on what the store holds."""
    spec = REGISTRY.get("input").spec()

    async def go(folder: str) -> tuple[Any, list[str]]:
        async with await SqliteStore.open(Path(folder) / "s.db", catalog_for(spec)) as store:
            b = Driver(store)
            await b.create("in1", "input")
            a = Driver(_Between(store, b, "in1", Queue(), moment))
            fed = await a.feed("in1", Stage("r1"))  # ACCEPTED refuses Stage; QUEUED (after B's Queue) takes it
            log = await store.read_log("in1")
            assert fed.accepted == (fed.record.state.phase is InputPhase.STAGED)
            return (await store.load("in1")).state.phase, [e.kind for e in log if e.data == event_json(Stage("r1"))
                                                           or e.kind == "rejected"]

    folder = tempfile.mkdtemp(prefix="stale-")
    try:
        phase, stage_events = asyncio.run(go(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # sequentially (B's Queue, then A's Stage) the input is staged and Stage is logged as an input
    assert (phase, stage_events) == (InputPhase.STAGED, ["input"])
