"""Exactly once, end to end: request ids a caller supplies, and commits whose reply was lost.

A `Driver.feed` (or `Driver.act`) given ``request="..."`` is answered at most
once per request id and key, across drivers, processes and restarts: the
store records the batch under an id derived from the key and the request,
with what the request was and what it was decided from, so a retry returns
the original outcome (``replayed=True``) and applies nothing -- even when the
model would now decide otherwise. These tests kill real client processes
(SIGKILL) right after their COMMIT and at random moments and retry from a new
process; cut a PostgreSQL connection after COMMIT was sent (a proxy that drops
the reply, or drops the COMMIT itself) and check the `UnknownOutcome` the
store gives and the driver's re-submission that settles it; and check that a
request id reused for another input is refused (`RequestReused`).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import Driver, FedAccepted, FedRejected
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    BadInput,
    Cas,
    Catalog,
    Op,
    Record,
    RequestReused,
    Store,
    UnknownOutcome,
    batch_id,
)
from statewright.kernel.step import Reason
from statewright.kernel.system import Action
from statewright.machines import loop_frame as lf
from statewright.machines.input import Apply, InputPhase, Queue
from tests.adapters import _backends as B
from tests.adapters import _workers as W
from tests.adapters.test_driver import CATALOG as DRIVER_CATALOG
from tests.adapters.test_driver import FLOW, FLOW_KEYS, FLOW_PREFIX

CATALOG = Catalog({**DRIVER_CATALOG.machines, "tally": W.TALLY}, DRIVER_CATALOG.authorize)


def _context() -> ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.adapters._workers"])
    return ctx


CTX = _context()
KILL_DELAY = 0.3  # seconds; the longest random wait before SIGKILL
ENDLESS = 10**6  # requests a killed client is given: it never gets through them


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[exactly-once] {text}")


# -- kill -9, then a new process retries ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Killed:
    """What a run of kill trials left: requests answered, the tally's count, answers by request, replays."""

    requests: int
    adds: int
    inputs: int
    answers: dict[int, list[dict[str, Any]]]
    replayed: int


def kill_trials(locator: str, folder: Path, trials: int, *, after_commit: bool, request_ids: bool = True,
                seed: int = 17) -> Killed:
    """Run ``trials`` client processes one after another, each killed with SIGKILL, then one that finishes.

    ``after_commit``: each client kills itself right after its 1st to 3rd
    commit has returned (the request applied, unanswered); otherwise the parent
    kills it after a random wait. Each new client first re-sends the request the
    journal says was in flight (`_workers.once_client`).
    """
    rng = random.Random(seed)

    async def create() -> None:
        async with W.recorded(locator, "parent", folder / "parent.jsonl", catalog=W.ONCE_CATALOG) as store:
            await Driver(store).create(W.TALLY_KEY, "tally")

    asyncio.run(create())
    for trial in range(trials):
        ready = CTX.Event()
        kill = rng.randint(1, 3) if after_commit else None
        child = CTX.Process(target=W.once_client,
                            args=(locator, str(folder), f"c{trial}", ENDLESS, kill, request_ids, ready))
        child.start()
        try:
            assert ready.wait(60), f"trial {trial}: the client never opened the store"
            if not after_commit:
                time.sleep(rng.uniform(0, KILL_DELAY))
                os.kill(child.pid or 0, signal.SIGKILL)
            child.join(60)
        finally:
            if child.is_alive():
                child.kill()
                child.join()
        assert child.exitcode == -signal.SIGKILL, f"trial {trial}: the client stopped by itself ({child.exitcode})"
    last = int((folder / "journal").read_text())
    ready = CTX.Event()  # held here: the child unpickles it after start() returns
    child = CTX.Process(target=W.once_client, args=(locator, str(folder), "final", last + 1, None, request_ids, ready))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0, "the last client did not finish its requests"

    async def final() -> tuple[int, int]:
        async with W.recorded(locator, "parent", folder / "parent.jsonl", catalog=W.ONCE_CATALOG) as store:
            record = await store.load(W.TALLY_KEY)
            log = await store.read_log(W.TALLY_KEY)
            return record.state.adds, sum(1 for e in log if e.kind == "input")

    adds, inputs = asyncio.run(final())
    answers = _answers(folder)
    replayed = sum(1 for lines in answers.values() for a in lines if a["replayed"])
    return Killed(last + 1, adds, inputs, answers, replayed)


def _answers(folder: Path) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    path = folder / "answers"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                a = json.loads(line)
                out.setdefault(a["n"], []).append(a)
    return out


# -- request ids, in one process, on every backend ---------------------------------------------------

Test = Callable[[Store], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def go(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Test], None]:
    """Run a test against a fresh store of each backend."""
    dsn = str(request.getfixturevalue("postgres_dsn")) if request.param == "postgres" else ""

    def run(test: Test) -> None:
        async def main() -> None:
            store: Store
            if request.param == "memory":
                store = MemoryStore(CATALOG)
            elif request.param == "postgres":
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


async def inputs(store: Store, key: str) -> list[str]:
    return [e.kind for e in await store.read_log(key)]


def test_a_retried_request_is_answered_with_its_first_outcome(go: Callable[[Test], None]) -> None:
    """Another driver (as a new process would be) retrying a request gets the original `Fed`, marked replayed."""

    async def test(store: Store) -> None:
        await Driver(store).create("t", "tally")
        first = await Driver(store).feed("t", W.Add(5), request="r1")
        again = await Driver(store).feed("t", W.Add(5), request="r1")
        assert type(first) is FedAccepted and not first.replayed
        assert first.record == Record("t", "tally", W.Tally(total=5, adds=1), 2) and first.effects == (W.Added(5),)
        assert again == FedAccepted(first.record, first.effects, first.attempts, replayed=True)
        assert (await store.load("t")).version == 2 and await inputs(store, "t") == ["created", "input", "effect"]
        # the tally moves on, and then ends: the model would refuse Add(5) now; the retry still gets its outcome
        await Driver(store).feed("t", W.Add(1), request="r2")
        await Driver(store).feed("t", W.Close(), request="r3")
        late = await Driver(store).feed("t", W.Add(5), request="r1")
        assert late == again and late.record.version == 2
        assert (await store.load("t")) == Record("t", "tally", W.Tally(W.TallyPhase.CLOSED, total=6, adds=2), 4)
        assert await inputs(store, "t") == ["created"] + ["input", "effect"] * 2 + ["input", "terminal"]

    go(test)


def test_a_retried_rejection_is_answered_with_the_rejection_it_had(go: Callable[[Test], None]) -> None:
    async def test(store: Store) -> None:
        await Driver(store).create("in1", "input")
        refused = await Driver(store).feed("in1", Apply("r0"), request="a")
        assert type(refused) is FedRejected and refused.rejection.reason is Reason.NO_TRANSITION
        await Driver(store).feed("in1", Queue(), request="q")
        again = await Driver(store).feed("in1", Apply("r0"), request="a")  # decided now, it would be refused in QUEUED
        assert again == FedRejected(refused.record, refused.rejection, 1, replayed=True)
        assert again.rejection.phase is InputPhase.ACCEPTED
        assert await inputs(store, "in1") == ["created", "rejected", "input", "effect"]  # one rejection recorded

    go(test)


def test_a_request_id_reused_for_another_input_is_refused(go: Callable[[Test], None]) -> None:
    async def test(store: Store) -> None:
        driver = Driver(store)
        await driver.create("t", "tally")
        await driver.create("u", "tally")
        await driver.feed("t", W.Add(1), request="r1")
        before = await store.read_log("t")
        for other in (W.Add(2), W.Close()):
            with pytest.raises(RequestReused) as info:
                await Driver(store).feed("t", other, request="r1")
            assert info.value.code == "request_reused" and info.value.key == "t"
            assert "request id 'r1' was used for Add, and now comes with" in str(info.value)
        assert await store.read_log("t") == before and (await store.load("t")).version == 2
        assert (await driver.feed("u", W.Add(2), request="r1")).record.state.total == 2  # another key: its own request
        with pytest.raises(BadInput):
            await driver.feed("t", W.Add(1), request="")
        with pytest.raises(BadInput):
            await driver.feed("t", W.Add(1), request="nul\x00")

    go(test)


def test_a_request_decided_by_two_drivers_at_once_is_applied_once(go: Callable[[Test], None]) -> None:
    """A decides r1 at version 1; before its commit lands, r2 and then B's r1 (decided at version 2) commit.

    A's batch then finds its id taken by another decision (`AlreadyApplied`)
    and answers with B's outcome; r1 counts once.
    """

    async def test(store: Store) -> None:
        await Driver(store).create("t", "tally")
        b = Driver(store)
        theirs: list[Any] = []

        async def rival() -> None:
            await Driver(store).feed("t", W.Add(10), request="r2")
            theirs.append(await b.feed("t", W.Add(1), request="r1"))

        a = Driver(_Hooked(store, rival))
        mine = await a.feed("t", W.Add(1), request="r1")
        assert theirs[0].record == Record("t", "tally", W.Tally(total=11, adds=2), 3) and not theirs[0].replayed
        assert mine == FedAccepted(theirs[0].record, theirs[0].effects, 1, replayed=True)
        assert (await store.load("t")).state == W.Tally(total=11, adds=2)

    go(test)


def test_an_action_by_request_id_is_applied_once(go: Callable[[Test], None]) -> None:
    async def test(store: Store) -> None:
        await Driver(store).create_all(FLOW, FLOW_KEYS)
        for n, action in enumerate(FLOW_PREFIX):
            await Driver(store).act(FLOW, FLOW_KEYS, action, request=f"p{n}")
        start = Action("loop", lf.StartLoop())
        acted = await Driver(store).act(FLOW, FLOW_KEYS, start, request="start")
        after = {k: await store.load(k) for k in FLOW_KEYS.values()}
        again = await Driver(store).act(FLOW, FLOW_KEYS, start, request="start")
        assert acted.accepted and again.replayed and again.state == acted.state and again.records == acted.records
        assert again.effects == acted.effects
        assert {k: await store.load(k) for k in FLOW_KEYS.values()} == after
        with pytest.raises(RequestReused):  # the id names an action now: a feed under it is another request
            await Driver(store).feed(FLOW_KEYS["loop"], lf.RequestBody(), request="start")

    go(test)


class _Hooked:
    """A store that runs ``hook`` once, before its first commit."""

    def __init__(self, inner: Store, hook: Callable[[], Awaitable[None]]) -> None:
        self.inner, self.catalog, self._hook = inner, inner.catalog, hook

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            await hook()
        await self.inner.commit(ops, batch=batch, outcome=outcome)  # type: ignore[call-arg]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- a COMMIT whose reply is lost ------------------------------------------------------------------


def tally_ops(version: int) -> list[Op]:
    """Add 1 to the tally at ``version`` (its log head is ``2 * version - 1``), as a driver would write it."""
    after = W.Tally(total=version, adds=version)
    return [Cas(W.TALLY_KEY, version, after, "tally"),
            Append(W.TALLY_KEY, 2 * version - 1, (("input", {"type": "Add", "amount": 1}),
                                                  ("effect", {"type": "Added", "total": version})))]


@pytest.mark.parametrize("cut", ["after_reply", "before_server"])
def test_a_lost_commit_reply_is_an_unknown_outcome_that_resubmission_settles(
    postgres_server: Any, cut: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL: the connection dies once COMMIT is sent -- after the server committed, or before it got it.

    The store cannot know which, so it says `UnknownOutcome` (never `Io`,
    which means nothing was written); the same batch re-submitted by its id, on
    a new connection, settles it: applied once either way.
    """
    from statewright.adapters.runtime.postgres import PostgresStore
    from tests.adapters._postgres import CommitCutter

    direct = postgres_server.database()

    async def main() -> None:
        async with CommitCutter(postgres_server) as proxy, \
                await PostgresStore.open(proxy.dsn(direct), W.ONCE_CATALOG) as store:
            await Driver(store).create(W.TALLY_KEY, "tally")
            for version in range(1, 6):
                ops = tally_ops(version)
                proxy.arm(cut)
                with pytest.raises(UnknownOutcome) as info:
                    await store.commit(ops, batch=batch_id(ops))
                assert info.value.code == "unknown_outcome" and "\n" not in str(info.value)
                landed = (await store.load(W.TALLY_KEY)).version == version + 1  # reconnected to read
                assert landed == (cut == "after_reply")
                await store.commit(ops, batch=batch_id(ops))  # re-submitted: recognised, or applied now
                assert (await store.load(W.TALLY_KEY)).state.adds == version
            assert proxy.cuts == 5

    asyncio.run(main())
    postgres_server.drop(direct)


@pytest.mark.slow
def test_a_driver_settles_a_lost_commit_reply_itself(postgres_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: 20 feeds whose COMMIT reply is lost; each used to raise `Io`, and a retry applied it twice.

    Now the driver re-submits the batch by id on a new connection and returns
    the input's outcome: 20 feeds, 20 adds.
    """
    from statewright.adapters.runtime.postgres import PostgresStore
    from tests.adapters._postgres import Cut, CommitCutter

    direct = postgres_server.database()

    async def main() -> int:
        async with CommitCutter(postgres_server) as proxy, \
                await PostgresStore.open(proxy.dsn(direct), W.ONCE_CATALOG) as store:
            driver = Driver(store)
            await driver.create(W.TALLY_KEY, "tally")
            for n in range(1, 21):
                proxy.arm(Cut.AFTER_REPLY if n % 2 else Cut.BEFORE_SERVER)
                fed = await driver.feed(W.TALLY_KEY, W.Add(1))
                assert fed.accepted and fed.record.state.adds == n
                assert (await store.load(W.TALLY_KEY)).state.adds == n
            assert await inputs(store, W.TALLY_KEY) == ["created"] + ["input", "effect"] * 20
            return proxy.cuts

    cuts = asyncio.run(main())
    assert cuts == 20
    postgres_server.drop(direct)
    say(capsys, "postgres: 20 feeds whose COMMIT reply was lost (10 committed, 10 not): 20 adds, each applied once")


def test_a_sqlite_commit_failing_with_an_io_error_is_an_unknown_outcome(tmp_path: Path) -> None:
    """An I/O error from COMMIT (a WAL write or fsync) may have left a commit record: `UnknownOutcome`, not `Io`.

    Faults are injected at COMMIT, once after it ran (it committed) and once
    instead of it (it did not); the driver settles both by re-submitting by id.
    """

    async def main() -> None:
        async with await SqliteStore.open(tmp_path / "s.db", W.ONCE_CATALOG) as store:
            await Driver(store).create(W.TALLY_KEY, "tally")
            for committed in (True, False):
                _fail_next_commit(store, committed)
                ops = tally_ops((await store.load(W.TALLY_KEY)).version)
                with pytest.raises(UnknownOutcome) as info:
                    await store.commit(ops, batch=batch_id(ops))
                assert "COMMIT failed with an I/O error" in str(info.value)
                await store.commit(ops, batch=batch_id(ops))
            assert (await store.load(W.TALLY_KEY)).state.adds == 2
            for committed in (True, False):
                _fail_next_commit(store, committed)
                fed = await Driver(store).feed(W.TALLY_KEY, W.Add(1))  # settled inside the driver
                assert fed.accepted and not store._db.in_transaction
            assert (await store.load(W.TALLY_KEY)).state.adds == 4
            assert await inputs(store, W.TALLY_KEY) == ["created"] + ["input", "effect"] * 4

    asyncio.run(main())


def _fail_next_commit(store: SqliteStore, committed: bool) -> None:
    """Make the store's next ``COMMIT`` raise SQLITE_IOERR_FSYNC, after committing or instead of it."""
    import sqlite3

    db = store._db
    execute = db.execute

    def failing(sql: str, parameters: Any = None) -> Any:
        if sql != "COMMIT":
            return execute(sql, parameters)

        async def fail() -> Any:
            db.execute = execute  # type: ignore[method-assign]
            if committed:
                await execute(sql)
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = 1034  # type: ignore[attr-defined]  # SQLITE_IOERR_FSYNC
            error.sqlite_errorname = "SQLITE_IOERR_FSYNC"  # type: ignore[attr-defined]
            raise error

        return fail()

    db.execute = failing  # type: ignore[method-assign]


# -- kill -9 tests ------------------------------------------------------------------------------------


def judge(folder: Path) -> Any:
    return W.judge(sorted(folder.glob("*.jsonl")))


@pytest.mark.slow
def test_a_client_killed_right_after_commit_retries_from_a_new_process_and_applies_once(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five clients each SIGKILL themselves right after a COMMIT returned (applied, unanswered); each next one
    re-sends that request with its id: every retry is answered from the record (replayed), nothing twice."""
    killed = kill_trials(store_at, tmp_path, 5, after_commit=True)
    assert killed.adds == killed.inputs == killed.requests  # each request applied exactly once
    assert killed.replayed == 5  # each kill came after a commit: each retry finds its request recorded
    for n, answers in killed.answers.items():
        assert {a["adds"] for a in answers} == {n + 1}, answers  # a replay is the first answer
    checked = judge(tmp_path)
    assert (checked.processes, checked.keys) == (5 + 2, 1)  # the clients, the last one, the parent
    say(capsys, f"{B.backend_name(store_at)} kill -9 right after COMMIT: 5 clients, {killed.requests} requests, "
                f"{killed.adds} applied, 5 retries answered from the record; {checked.summary()}")


@pytest.mark.slow
def test_clients_killed_at_random_moments_apply_every_request_once(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = 30 if B.backend_name(store_at) == "sqlite" else 20
    killed = kill_trials(store_at, tmp_path, trials, after_commit=False, seed=29)
    assert killed.adds == killed.inputs == killed.requests
    for n, answers in killed.answers.items():
        assert {a["adds"] for a in answers} == {n + 1}, answers
    checked = judge(tmp_path)
    assert (checked.processes, checked.keys) == (trials + 2, 1)
    say(capsys, f"{B.backend_name(store_at)} kill -9 at random: {trials} clients, {killed.requests} requests, "
                f"{killed.adds} applied, {killed.replayed} retries answered from the record; {checked.summary()}")
