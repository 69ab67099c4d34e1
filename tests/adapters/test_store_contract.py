"""One contract for every store backend, then what only SQLite can show.

Each contract test runs once per backend (``memory``, ``sqlite``, ``postgres``)
through the ``go`` fixture, which opens a fresh store over real machines, runs
the test's coroutine with `asyncio.run` and closes the store again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    BatchStore,
    Busy,
    Cas,
    Catalog,
    Conflict,
    Corrupt,
    InvalidState,
    NotFound,
    Op,
    Record,
    Store,
    StoreError,
    batch_id,
    takes_batch,
)
from statewright.machines.input import INPUT, AbandonReason, Abandoned, Consumed, Input, InputPhase, Superseded, authorize_seed
from statewright.machines.run import Plan, Run, RunPhase, run_machine

RUN = run_machine(Plan(("fetch", "build"), (("fetch", "build"),)))
CATALOG = Catalog({"input": INPUT, "run": RUN}, authorize={"input": authorize_seed})

QUEUED = Input(InputPhase.QUEUED)
STAGED = Input(InputPhase.STAGED, attempts=1, run_id="r1")
STAGED_WITHOUT_RUN = Input(InputPhase.STAGED)  # authorize_seed refuses it
RUNNING = replace(RUN.initial, phase=RunPhase.RUNNING, completed=("fetch",), current="build", attempt=1)

Test = Callable[[Store], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def go(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[Test], None]:
    """Run one contract test against a fresh store of the current backend."""
    # only the postgres backend asks for a server (and a fresh database of it)
    dsn = str(request.getfixturevalue("postgres_dsn")) if backend == "postgres" else ""

    def run(test: Test) -> None:
        async def main() -> None:
            store: Store
            if backend == "memory":
                store = MemoryStore(CATALOG)
            elif backend == "postgres":
                from statewright.adapters.runtime.postgres import PostgresStore

                store = await PostgresStore.open(dsn, CATALOG)
            else:
                store = await SqliteStore.open(tmp_path / "s.db", CATALOG)
            try:
                await test(store)
            finally:
                await store.close()

        asyncio.run(main())

    return run


async def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a store holds, to compare before and after a refused write."""
    keys = await store.keys()
    records = [await store.load(k) for k in keys]
    logs = [await store.read_log(k) for k in sorted({*keys, "in1", "in2", "run1"})]
    return keys, records, logs


async def seed(store: Store) -> None:
    """Two inputs and a run, each with a short log; in2's log has ended."""
    await store.cas("in1", 0, Input(), machine="input")
    await store.cas("in2", 0, QUEUED, machine="input")
    await store.cas("run1", 0, RUN.initial, machine="run")
    await store.append("in1", 0, [("Queue", {}), ("Stage", {"run_id": "r1"})])
    await store.append("in2", 0, [("Queue", {})])
    await store.append_terminal("in2", "Abandon", {"reason": "cancelled"})
    await store.append("run1", 0, [("Start", {})])


async def refused(store: Store, error: type[StoreError], write: Awaitable[Any]) -> StoreError:
    """``write`` raises ``error`` and leaves the store byte-identical."""
    before = await snapshot(store)
    with pytest.raises(error) as info:
        await write
    assert await snapshot(store) == before
    return info.value


# -- the contract -------------------------------------------------------------------


def test_the_backend_is_a_store(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        assert isinstance(store, Store)
        assert store.catalog is CATALOG

    go(t)


def test_create_load_and_cas_bump_the_version(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        created = await store.cas("in1", 0, Input(), machine="input")
        assert created == Record("in1", "input", Input(), 1)
        assert await store.load("in1") == created
        moved = await store.cas("in1", 1, QUEUED)
        assert moved == Record("in1", "input", QUEUED, 2)
        again = await store.cas("in1", 2, STAGED, machine="input")
        assert again == Record("in1", "input", STAGED, 3)
        assert await store.load("in1") == again

    go(t)


@pytest.mark.parametrize(
    "state",
    [
        Input(InputPhase.CONSUMED, attempts=1, run_id="r1", outcome=Consumed()),
        Input(InputPhase.SUPERSEDED, outcome=Superseded("in9")),
        Input(InputPhase.ABANDONED, attempts=3, run_id="r3", outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 3)),
    ],
    ids=["consumed", "superseded", "abandoned"],
)
def test_states_round_trip_unchanged(go: Callable[[Test], None], state: Input) -> None:
    async def t(store: Store) -> None:
        await store.cas("in1", 0, state, machine="input")
        await store.cas("run1", 0, RUNNING, machine="run")
        assert (await store.load("in1")).state == state
        loaded_run = (await store.load("run1")).state
        assert loaded_run == RUNNING and isinstance(loaded_run, Run)

    go(t)


def test_a_lost_cas_changes_nothing(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        await store.cas("in1", 1, QUEUED)
        for stale in (1, 3, 99):
            error = await refused(store, Conflict, store.cas("in1", stale, STAGED))
            assert error.key == "in1" and error.code == "conflict"
        assert (await store.load("in1")).version == 2

    go(t)


def test_creating_twice_conflicts(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        await refused(store, Conflict, store.cas("in1", 0, Input(), machine="input"))
        await refused(store, Conflict, store.cas("run1", 0, Input(), machine="input"))

    go(t)


def test_missing_instances_are_not_found(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        error = await refused(store, NotFound, store.load("nope"))
        assert (error.code, error.key) == ("not_found", "nope")
        await refused(store, NotFound, store.cas("nope", 1, QUEUED, machine="input"))
        await refused(store, NotFound, store.append("nope", 0, [("Queue", {})]))
        await refused(store, NotFound, store.append_terminal("nope", "Abandon", {}))

    go(t)


def test_append_only_at_the_head(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await store.cas("in1", 0, Input(), machine="input")
        assert await store.read_log("in1") == []
        assert await store.append("in1", 0, [("Queue", {}), ("Stage", {"run_id": "r1"})]) == 2
        assert await store.append("in1", 2, [("Apply", {"run_id": "r1"})]) == 3
        assert await store.append("in1", 3, []) == 3
        for wrong in (0, 2, 4):
            await refused(store, Conflict, store.append("in1", wrong, [("Apply", {"run_id": "r1"})]))
        log = await store.read_log("in1")
        assert [(e.key, e.seq, e.kind, e.data, e.terminal) for e in log] == [
            ("in1", 1, "Queue", {}, False),
            ("in1", 2, "Stage", {"run_id": "r1"}, False),
            ("in1", 3, "Apply", {"run_id": "r1"}, False),
        ]

    go(t)


def test_one_terminal_event_ends_the_log(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await store.cas("in1", 0, Input(), machine="input")
        await store.append("in1", 0, [("Queue", {})])
        assert await store.append_terminal("in1", "Consume", {"run_id": "r1", "n": [1, None, "x"]}) == 2
        await refused(store, Conflict, store.append_terminal("in1", "Consume", {"run_id": "r2"}))
        await refused(store, Conflict, store.append("in1", 2, [("Queue", {})]))
        await refused(store, Conflict, store.commit([Append("in1", 2, (("Queue", {}),))]))
        last = (await store.read_log("in1"))[-1]
        assert (last.seq, last.kind, last.data, last.terminal) == (2, "Consume", {"n": [1, None, "x"], "run_id": "r1"}, True)
        # A terminal event may also be the first one.
        await store.cas("in2", 0, Input(), machine="input")
        assert await store.append_terminal("in2", "Abandon", {"reason": "cancelled"}) == 1

    go(t)


def test_commit_applies_every_op_in_order(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        await store.commit([
            Cas("in3", 0, Input(), machine="input"),
            Cas("in3", 1, QUEUED),
            Append("in3", 0, (("Queue", {}),)),
            Append("in3", 1, (("Stage", {"run_id": "r7"}),)),
            Cas("in1", 1, QUEUED),
            AppendTerminal("in3", "Supersede", {"by": "in4"}),
        ])
        assert await store.load("in3") == Record("in3", "input", QUEUED, 2)
        assert (await store.load("in1")).version == 2
        assert [(e.seq, e.kind, e.terminal) for e in await store.read_log("in3")] == [
            (1, "Queue", False), (2, "Stage", False), (3, "Supersede", True),
        ]
        await store.commit([])
        assert await store.keys() == ["in1", "in2", "in3", "run1"]

    go(t)


GOOD_OPS: tuple[Op, ...] = (
    Cas("in1", 1, QUEUED),
    Append("run1", 1, (("Enter", {"state_id": "fetch"}),)),
    Cas("in9", 0, Input(), machine="input"),
)
CONFLICTING: dict[str, Op] = {
    "stale cas": Cas("run1", 7, RUNNING),
    "create existing": Cas("in2", 0, QUEUED, machine="input"),
    "wrong head": Append("in1", 0, (("Queue", {}),)),
    "second terminal": AppendTerminal("in2", "Abandon", {"reason": "stopped"}),
    "append after terminal": Append("in2", 2, (("Queue", {}),)),
    "repeat within the batch": GOOD_OPS[0],
}


@pytest.mark.parametrize("k", [0, 1, 2, 3], ids=["first", "second", "third", "last"])
@pytest.mark.parametrize("bad", list(CONFLICTING))
def test_commit_is_all_or_nothing(go: Callable[[Test], None], k: int, bad: str) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        ops = list(GOOD_OPS)
        ops.insert(k, CONFLICTING[bad])
        if bad == "repeat within the batch" and k == 0:
            ops.insert(0, ops.pop(1))  # the repeat must come after the op it repeats
        await refused(store, Conflict, store.commit(ops))
        # The same batch without the bad op goes through.
        await store.commit(list(GOOD_OPS))
        assert (await store.load("in9")).version == 1

    go(t)


INVALID: dict[str, tuple[str | None, Any]] = {
    "wrong type": ("input", RUN.initial),
    "not a dataclass": ("input", "queued"),
    "seed refused": ("input", STAGED_WITHOUT_RUN),
    "outcome without terminal phase": ("input", Input(InputPhase.QUEUED, outcome=Consumed())),
    "unknown machine": ("nope", QUEUED),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_states_are_refused_before_writing(go: Callable[[Test], None], case: str) -> None:
    machine, state = INVALID[case]

    async def t(store: Store) -> None:
        await seed(store)
        error = await refused(store, InvalidState, store.cas("new", 0, state, machine=machine))
        assert error.code == "invalid_state"
        await refused(store, InvalidState, store.commit([*GOOD_OPS, Cas("new", 0, state, machine=machine)]))
        if machine == "input":
            await refused(store, InvalidState, store.cas("in1", 1, state))
            await refused(store, InvalidState, store.cas("in1", 1, state, machine="input"))
            await refused(store, InvalidState, store.commit([*GOOD_OPS, Cas("in2", 1, state)]))

    go(t)


def test_other_malformed_writes_are_refused(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        await refused(store, InvalidState, store.cas("new", 0, QUEUED))  # creating needs a machine
        await refused(store, InvalidState, store.cas("in1", 1, QUEUED, machine="run"))  # in1 is an input
        await refused(store, InvalidState, store.commit([*GOOD_OPS, "not an op"]))  # type: ignore[list-item]

    go(t)


@pytest.mark.parametrize("data", [1.5, {"at": 0.0}, [1, [2, 3.25]], {"nested": {"deep": [float("nan")]}}])
def test_floats_in_events_are_refused(go: Callable[[Test], None], data: Any) -> None:
    async def t(store: Store) -> None:
        await seed(store)
        await refused(store, InvalidState, store.append("in1", 2, [("Apply", {"run_id": "r1"}), ("Bad", data)]))
        await refused(store, InvalidState, store.append_terminal("in1", "Bad", data))
        await refused(store, InvalidState, store.commit([*GOOD_OPS, Append("in1", 2, (("Bad", data),))]))
        await refused(store, InvalidState, store.commit([AppendTerminal("run1", "Bad", data), *GOOD_OPS]))

    go(t)


def test_keys_are_sorted(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        assert await store.keys() == []
        for key in ("b", "a10", "a2", "B", "é", "a"):
            await store.cas(key, 0, Input(), machine="input")
        assert await store.keys() == ["B", "a", "a10", "a2", "b", "é"]

    go(t)


def test_read_log_ranges(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await store.cas("in1", 0, Input(), machine="input")
        await store.append("in1", 0, [(f"e{i}", {"i": i}) for i in range(1, 6)])

        async def seqs(start: int = 1, stop: int | None = None) -> list[int]:
            return [e.seq for e in await store.read_log("in1", start, stop)]

        assert await seqs() == [1, 2, 3, 4, 5]
        assert await seqs(3) == [3, 4, 5]
        assert await seqs(2, 4) == [2, 3]
        assert await seqs(1, 1) == []
        assert await seqs(4, 2) == []
        assert await seqs(6) == []
        assert await seqs(0, 3) == [1, 2]
        assert await seqs(5, 100) == [5]
        assert [e.data for e in await store.read_log("in1", 2, 3)] == [{"i": 2}]
        assert await store.read_log("no such key") == []

    go(t)


def test_racing_writers_have_one_winner(go: Callable[[Test], None]) -> None:
    async def t(store: Store) -> None:
        await store.cas("in1", 0, Input(), machine="input")
        results = await asyncio.gather(*(store.cas("in1", 1, QUEUED) for _ in range(8)), return_exceptions=True)
        assert sum(isinstance(r, Record) for r in results) == 1
        assert sum(isinstance(r, Conflict) for r in results) == 7
        heads = await asyncio.gather(*(store.append("in1", 0, [("Queue", {})]) for _ in range(8)), return_exceptions=True)
        assert heads.count(1) == 1 and sum(isinstance(h, Conflict) for h in heads) == 7
        ends = await asyncio.gather(*(store.append_terminal("in1", "Consume", {}) for _ in range(8)), return_exceptions=True)
        assert ends.count(2) == 1 and sum(isinstance(e, Conflict) for e in ends) == 7

    go(t)


def test_an_invalid_state_is_reported_before_a_stale_version(go: Callable[[Test], None]) -> None:
    bad = Input(phase=InputPhase.CONSUMED)  # a terminal phase without its outcome

    async def test(store: Store) -> None:
        await seed(store)
        await refused(store, InvalidState, store.cas("in1", 7, bad))
        await refused(store, InvalidState, store.commit([Cas("in1", 7, Input()), Cas("in2", 1, bad)]))

    go(test)


def test_error_codes_are_stable() -> None:
    assert {cls.__name__: cls.code for cls in (StoreError, Conflict, Busy, NotFound, Corrupt, InvalidState)} == {
        "StoreError": "store_error",
        "Conflict": "conflict",
        "Busy": "busy",
        "NotFound": "not_found",
        "Corrupt": "corrupt",
        "InvalidState": "invalid_state",
    }
    assert all(issubclass(cls, StoreError) for cls in (Conflict, Busy, NotFound, Corrupt, InvalidState))
    assert Busy("x", key="k").key == "k" and Busy("x").code == "busy"


# -- SQLite only ------------------------------------------------------------------------


def sqlite_test(tmp_path: Path, test: Callable[[SqliteStore, Path], Awaitable[None]], **options: Any) -> None:
    path = tmp_path / "s.db"

    async def main() -> None:
        store = await SqliteStore.open(path, CATALOG, **options)
        try:
            await test(store, path)
        finally:
            await store.close()

    asyncio.run(main())


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=0)


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    async def t(store: SqliteStore, path: Path) -> None:
        with raw(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    sqlite_test(tmp_path, t)


def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        async with await SqliteStore.open(path, CATALOG) as store:
            await seed(store)
            before = await snapshot(store)
        async with await SqliteStore.open(path, CATALOG) as store:
            assert await snapshot(store) == before
            assert await store.cas("in1", 1, QUEUED) == Record("in1", "input", QUEUED, 2)

    asyncio.run(main())


def test_sqlite_writes_begin_immediate(tmp_path: Path) -> None:
    async def t(store: SqliteStore, path: Path) -> None:
        statements: list[str] = []
        await store._db.set_trace_callback(statements.append)
        await seed(store)
        await store.commit(list(GOOD_OPS))
        with pytest.raises(Conflict):
            await store.commit([Cas("in9", 1, QUEUED), Cas("in9", 1, QUEUED)])
        begins = [s for s in statements if s.split()[0].upper() == "BEGIN"]
        assert begins and set(begins) == {"BEGIN IMMEDIATE"}
        assert len(begins) == 9  # 7 writes in seed, 2 commits
        assert statements.count("COMMIT") == 8 and statements.count("ROLLBACK") == 1

    sqlite_test(tmp_path, t)


def test_sqlite_garbled_state_is_corrupt_for_that_key_only(tmp_path: Path) -> None:
    async def t(store: SqliteStore, path: Path) -> None:
        await seed(store)
        with raw(path) as db:
            db.execute("UPDATE instances SET state = ? WHERE key = ?", ('{"phase": "queued", "attempts":', "in1"))
            db.execute("UPDATE instances SET state = ? WHERE key = ?", ('{"phase": "flying"}', "in2"))
            db.execute("UPDATE events SET data = ? WHERE key = ? AND seq = 2", ("{not json", "in1"))
        for key in ("in1", "in2"):
            with pytest.raises(Corrupt) as info:
                await store.load(key)
            assert info.value.key == key and info.value.code == "corrupt" and repr(key) in str(info.value)
        with pytest.raises(Corrupt) as log_info:
            await store.read_log("in1")
        assert log_info.value.key == "in1"
        assert [e.kind for e in await store.read_log("in1", 1, 2)] == ["Queue"]
        assert await store.keys() == ["in1", "in2", "run1"]
        assert await store.load("run1") == Record("run1", "run", RUN.initial, 1)
        assert await store.cas("run1", 1, RUNNING) == Record("run1", "run", RUNNING, 2)
        assert await store.append("run1", 1, [("Enter", {"state_id": "fetch"})]) == 2
        await store.cas("in3", 0, QUEUED, machine="input")
        # A garbled row can be overwritten by a writer that knows its version.
        assert (await store.cas("in1", 1, QUEUED)).state == QUEUED

    sqlite_test(tmp_path, t)


def test_sqlite_unknown_machine_row_is_corrupt(tmp_path: Path) -> None:
    async def t(store: SqliteStore, path: Path) -> None:
        await seed(store)
        with raw(path) as db:
            db.execute("UPDATE instances SET machine = 'gone' WHERE key = 'in1'")
        with pytest.raises(Corrupt) as info:
            await store.load("in1")
        assert info.value.key == "in1"
        assert (await store.load("in2")).state == QUEUED

    sqlite_test(tmp_path, t)


def test_sqlite_enforces_one_terminal_event(tmp_path: Path) -> None:
    async def t(store: SqliteStore, path: Path) -> None:
        await seed(store)
        with raw(path) as db:
            (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events_one_terminal'").fetchone()
            assert "UNIQUE" in sql and "WHERE terminal = 1" in sql
            with pytest.raises(sqlite3.IntegrityError):
                db.execute("INSERT INTO events (key, seq, kind, data, terminal, position, at, bucket) "
                           "VALUES ('in2', 3, 'X', '{}', 1, 100, 0, 0)")
            with pytest.raises(sqlite3.IntegrityError):
                db.execute("UPDATE events SET terminal = 1 WHERE key = 'in2' AND seq = 1")
            db.execute("INSERT INTO events (key, seq, kind, data, terminal, position, at, bucket) "
                       "VALUES ('in2', 3, 'X', '{}', 0, 100, 0, 0)")
            # A terminal flag however it got there ends the log for the store too.
            db.execute("UPDATE events SET terminal = 1 WHERE key = 'in1' AND seq = 1")
        assert [e.terminal for e in await store.read_log("in2")] == [False, True, False]
        with pytest.raises(Conflict):
            await store.append("in1", 2, [("Apply", {"run_id": "r1"})])
        with pytest.raises(Conflict):
            await store.append_terminal("in1", "Consume", {})

    sqlite_test(tmp_path, t)


def lock_waiting_writes(store: Store) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One write of each kind on a `seed`ed store, each of which must wait for a lock another connection holds."""
    return {
        "cas": lambda: store.cas("in1", 1, QUEUED),
        "create": lambda: store.cas("in7", 0, QUEUED, machine="input"),
        "append": lambda: store.append("in1", 2, [("Apply", {"run_id": "r1"})]),
        "terminal": lambda: store.append_terminal("in1", "Consume", {}),
        "commit": lambda: store.commit(list(GOOD_OPS)),
    }


@pytest.mark.parametrize("write", ["cas", "create", "append", "terminal", "commit"])
def test_sqlite_busy_is_not_a_conflict(tmp_path: Path, write: str) -> None:
    async def t(store: SqliteStore, path: Path) -> None:
        await seed(store)
        before = await snapshot(store)
        attempts = lock_waiting_writes(store)
        holder = raw(path)
        try:
            holder.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(Busy) as info:
                await attempts[write]()
            elapsed = time.monotonic() - started
            assert info.value.code == "busy" and not isinstance(info.value, Conflict)
            assert 0.15 <= elapsed < 5.0
            assert await snapshot(store) == before  # reads go on while the writer waits
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await attempts[write]()  # once the lock is free the same write succeeds
        assert await snapshot(store) != before

    sqlite_test(tmp_path, t, busy_timeout=0.2)


# -- exactly-once batches (both backends) ----------------------------------------------------


def test_both_backends_take_batch_ids(go: Callable[[Test], None]) -> None:
    async def test(store: Store) -> None:
        assert takes_batch(store) and isinstance(store, BatchStore)

    go(test)


def test_a_batch_id_applies_once(go: Callable[[Test], None]) -> None:
    async def test(store: Store) -> None:
        assert isinstance(store, BatchStore)
        await seed(store)
        ops = list(GOOD_OPS)
        await store.commit(ops, batch=batch_id(ops))
        after = await snapshot(store)
        await store.commit(ops, batch=batch_id(ops))  # re-submitted: the first outcome, nothing applied twice
        assert await snapshot(store) == after
        with pytest.raises(Conflict):
            await store.commit(ops)  # without the id it is just a stale batch

    go(test)


def test_a_failed_batch_leaves_no_id(go: Callable[[Test], None]) -> None:
    async def test(store: Store) -> None:
        assert isinstance(store, BatchStore)
        await seed(store)
        before = await snapshot(store)
        with pytest.raises(Conflict):
            await store.commit([Cas("in1", 1, QUEUED), Cas("in2", 9, QUEUED)], batch="b1")
        assert await snapshot(store) == before
        await store.commit([Cas("in1", 1, QUEUED)], batch="b1")  # the id was not spent by the failure
        assert (await store.load("in1")).version == 2

    go(test)


def test_batch_ids_are_stable() -> None:
    ops: list[Op] = [Cas("in1", 1, QUEUED), Append("in1", 2, (("Queue", {}),))]
    assert batch_id(ops) == batch_id(list(ops)) and len(batch_id(ops)) == 64
    assert batch_id(ops) != batch_id(ops[:1]) != batch_id([Cas("in1", 2, QUEUED)])


async def forgets_after_retention(store: BatchStore, now: list[float]) -> list[str]:
    """Batch ids at t = 0..4, 50 and 103.5 under a 100 s retention (``now`` drives the store's clock).

    Ids older than 100 s go as new ones are recorded, younger ones still make a
    re-submission a no-op, and a forgotten one is decided as a new batch. The
    ids the store still holds are for the caller to return (its table is its own).
    """
    await store.cas("in1", 0, QUEUED, machine="input")
    for i in range(5):  # one batch id a second, at t = 0..4
        now[0] = float(i)
        await store.commit([Cas("in1", i + 1, QUEUED)], batch=f"b{i}")
    now[0] = 50.0
    await store.commit([Cas("in1", 6, QUEUED)], batch="b5")  # within the window: nothing to forget
    now[0] = 103.5  # b0..b3 are past 100 s now; b4 is not
    await store.commit([Cas("in1", 7, QUEUED)], batch="b6")
    await store.commit([Cas("in1", 5, QUEUED)], batch="b4")  # still remembered: a no-op
    assert (await store.load("in1")).version == 8
    with pytest.raises(Conflict):  # forgotten: decided as a new batch, and its version has moved on
        await store.commit([Cas("in1", 1, QUEUED)], batch="b0")
    return ["b4", "b5", "b6"]
