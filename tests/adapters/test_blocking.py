"""The synchronous face (`adapters.runtime.blocking`): the portal's hazards, one test each, and `SyncDriver` on them.

Each hazard of calling an event loop from threads is pinned here: a call
from the loop's own thread, a call after close (and one in flight at close),
a timeout and a Ctrl-C while a write is in flight (the cancellation reaches
the coroutine, the write rolls back or commits whole, and feeding the same
input again applies it exactly once), a fork after open, sixteen threads
feeding different keys and one key, and an error raised in the coroutine
arriving with its type and traceback. The last tests run ``mypy --strict`` on
a small user program.
"""

from __future__ import annotations

import asyncio
import gc
import os
import runpy
import signal
import sqlite3
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.blocking import (
    Portal,
    PortalClosed,
    PortalForked,
    PortalThread,
    PortalTimeout,
    SyncDispatcher,
    SyncDriver,
)
from statewright.adapters.runtime.dispatch import Delivery, Retry
from statewright.adapters.runtime.readside import ReadStore
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.store import Catalog, Conflict, NotAStore, NotFound, Op, Store
from statewright.kernel.machine import Machine, Transition
from statewright.kernel.system import Action
from statewright.machines.input import INPUT, Apply, InputApplied, InputQueued, InputStaged, Queue, Stage, authorize_seed


class Phase(Enum):
    COUNTING = "counting"


@dataclass(frozen=True, slots=True)
class Count:
    phase: Phase = Phase.COUNTING
    n: int = 0


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class Ticked:
    n: int


COUNTER = Machine("counter", initial=Count(), transitions=[
    Transition(Phase.COUNTING, Tick, Phase.COUNTING, update=lambda s, i: replace(s, n=s.n + 1),
               emit=lambda s, i: (Ticked(s.n),))])
CATALOG = Catalog({"counter": COUNTER, "input": INPUT}, {"input": authorize_seed})


class Boom(Exception):
    pass


async def deep_in_the_coroutine() -> None:
    await asyncio.sleep(0)
    raise Boom("from the loop")


async def forever(seen: list[str], started: threading.Event | None = None) -> str:
    """Wait until cancelled; record the cancellation, and that the clean-up after it ran to its end."""
    if started is not None:
        started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        seen.append("cancelled")
        await asyncio.sleep(0.05)  # a clean-up that takes a while: the caller must wait for it
        seen.append("wound down")
        raise
    return "never"


def portal_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("statewright-portal")]


@pytest.fixture
def portal() -> Iterator[Portal]:
    with Portal() as p:
        yield p
    assert not portal_threads()


# -- the portal ---------------------------------------------------------------------


def test_a_call_runs_in_the_portals_one_thread_and_returns_its_result(portal: Portal) -> None:
    async def where(x: int) -> tuple[str, int]:
        await asyncio.sleep(0)
        return threading.current_thread().name, x + 1

    assert portal.call(where(1)) == ("statewright-portal", 2)
    assert portal.call(where(2), timeout=5.0) == ("statewright-portal", 3)
    assert portal.is_open


def test_an_exception_in_the_coroutine_keeps_its_type_object_and_traceback(portal: Portal) -> None:
    with pytest.raises(Boom, match="from the loop") as caught:
        portal.call(deep_in_the_coroutine())
    frames = [f.name for f in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[0] == "test_an_exception_in_the_coroutine_keeps_its_type_object_and_traceback"
    assert frames[-1] == "deep_in_the_coroutine"  # the raising frame, in the loop thread, is kept


def test_a_call_from_the_portals_own_thread_raises_instead_of_deadlocking(portal: Portal) -> None:
    async def inner() -> int:
        return 1

    async def reenter() -> int:
        return portal.call(inner())  # a blocking call inside the loop: it would wait for itself

    with pytest.raises(PortalThread, match="await the coroutine instead") as caught:
        portal.call(reenter(), timeout=5.0)
    assert caught.value.code == "portal_thread"

    async def close_from_inside() -> None:
        portal.close()

    with pytest.raises(PortalThread, match="close"):
        portal.call(close_from_inside(), timeout=5.0)
    assert portal.call(inner()) == 1  # still open and usable


def test_a_call_after_close_raises_portal_closed_and_leaves_no_unawaited_coroutine() -> None:
    async def one() -> int:
        return 1

    portal = Portal()
    with pytest.raises(PortalClosed, match="new"):
        portal.call(one())
    with portal:
        assert portal.call(one()) == 1
    assert not portal.is_open and not portal_threads()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(PortalClosed, match="the portal is closed") as caught:
            portal.call(one())
        with pytest.raises(PortalClosed):
            portal.spawn(one())
        gc.collect()
    assert caught.value.code == "portal_closed"
    assert [str(w.message) for w in seen] == []  # the refused coroutines were closed, not dropped
    portal.close()  # idempotent
    with pytest.raises(PortalClosed, match="opens once"):
        portal.open()


def test_a_call_in_flight_when_the_portal_closes_is_cancelled_and_raises_portal_closed() -> None:
    portal = Portal().open()
    seen: list[str] = []
    raised: list[BaseException] = []
    started = threading.Event()

    def caller() -> None:
        try:
            portal.call(forever(seen, started))
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    assert started.wait(5)
    portal.close()
    thread.join(5)
    assert seen == ["cancelled", "wound down"]
    assert [type(e) for e in raised] == [PortalClosed]
    assert "closed while the call was in flight" in str(raised[0])


def test_a_timeout_cancels_the_coroutine_and_returns_only_once_it_has_wound_down(portal: Portal) -> None:
    seen: list[str] = []
    start = time.monotonic()
    with pytest.raises(PortalTimeout, match="within 0.1 s; it was cancelled and has wound down") as caught:
        portal.call(forever(seen), timeout=0.1)
    assert time.monotonic() - start >= 0.15  # the timeout, then the clean-up
    assert seen == ["cancelled", "wound down"]  # the cancellation reached the coroutine, which finished
    assert isinstance(caught.value, TimeoutError) and caught.value.code == "portal_timeout"


def test_a_call_that_finishes_while_being_cancelled_returns_its_result(portal: Portal) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "finished anyway"  # it chose to finish: that is its outcome
        return "slept"

    assert portal.call(stubborn(), timeout=0.05) == "finished anyway"


def test_a_timeout_raised_by_the_coroutine_itself_is_its_own_error(portal: Portal) -> None:
    async def times_out() -> None:
        raise TimeoutError("the coroutine's own")

    with pytest.raises(TimeoutError, match="the coroutine's own") as caught:
        portal.call(times_out(), timeout=5.0)
    assert not isinstance(caught.value, PortalTimeout)


def interrupt_main_in(seconds: float) -> threading.Timer:
    """Send SIGINT to the main thread after ``seconds``: a real signal, which wakes a blocked wait."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt handler here")
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_in_the_calling_thread_cancels_the_coroutine_and_waits_for_it(portal: Portal) -> None:
    seen: list[str] = []
    interrupt_main_in(0.1)
    with pytest.raises(KeyboardInterrupt):
        portal.call(forever(seen))
    assert seen == ["cancelled", "wound down"]
    assert portal.call(asyncio.sleep(0, "still usable")) == "still usable"


def test_a_background_task_is_cancelled_when_the_portal_closes() -> None:
    seen: list[str] = []
    with Portal() as portal:
        future = portal.spawn(forever(seen))
        time.sleep(0.05)
        assert not future.done()
    assert future.cancelled() and seen == ["cancelled", "wound down"]


def test_a_fork_after_open_is_detected_in_the_child() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    with SyncDriver.memory(CATALOG) as d:
        d.create("c1", "counter")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12 warns of fork with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports by its exit status
            code = 1
            try:
                d.feed("c1", Tick())
            except PortalForked as exc:
                code = 0 if "forked from it" in str(exc) else 2
            except BaseException:
                code = 3
            try:
                d.close()  # closes nothing of the parent's, raises nothing
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert d.feed("c1", Tick()).record.version == 2  # the parent's is untouched


# -- SyncDriver ----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncDriver]:
    d = SyncDriver.memory(CATALOG) if request.param == "memory" else SyncDriver.sqlite(tmp_path / "s.db", CATALOG)
    with d:
        yield d
    assert not portal_threads()


def test_sync_driver_feeds_acts_and_reads_as_the_driver_does(driver: SyncDriver) -> None:
    from statewright.specs.session import session_inputs
    from statewright.kernel.system import System

    assert driver.create("in1", "input").version == 1
    assert driver.feed("in1", Queue(), request="q-1").accepted
    bad = driver.feed_json("in1", '{"type": "Apply", "run_id": "r1"}')
    assert not bad.accepted and bad.rejection.reason.value == "no_transition"
    fed = driver.feed_json("in1", '{"type": "Stage", "run_id": "r1"}')
    assert fed.accepted and fed.record.version == 3
    again = driver.feed("in1", Queue(), request="q-1")
    assert again.replayed and again.record.version == 2
    assert driver.parse("input", {"type": "Stage", "run_id": "r2"}) == Stage("r2")
    assert [e.kind for e in driver.read_log("in1")] == ["created", "input", "effect", "rejected", "input", "effect"]
    assert [e.seq for e in driver.read_log("in1", 2, 4)] == [2, 3]
    assert driver.load("in1").state.phase.name == "STAGED"

    system = session_inputs().model
    assert isinstance(system, System)
    catalog_keys = {name: f"s/{name}" for name in system.names}
    with SyncDriver.memory(Catalog({"session": system.instances["session"], "input": INPUT},
                                   {"input": authorize_seed})) as d:
        created = d.create_all(system, catalog_keys)
        assert sorted(created) == sorted(system.names)
        from statewright.machines.session import AttachExecutor
        acted = d.act(system, catalog_keys, Action("session", AttachExecutor()))
        assert acted.accepted and acted.records["session"].version == 2
        assert d.keys() == sorted(catalog_keys.values())


def test_a_store_error_arrives_with_its_type_and_the_drivers_frames(driver: SyncDriver) -> None:
    with pytest.raises(NotFound, match="no instance 'nobody'") as caught:
        driver.feed("nobody", Tick())
    files = {Path(f.filename).name for f in traceback.extract_tb(caught.value.__traceback__)}
    assert {"test_blocking.py", "blocking.py", "driver.py"} <= files
    driver.create("c1", "counter")
    with pytest.raises(Conflict):
        driver.create("c1", "counter")


def test_opening_a_file_that_is_not_a_store_raises_its_error_and_stops_the_portal(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not a database file, not at all" * 100)
    with pytest.raises(NotAStore):
        SyncDriver.sqlite(path, CATALOG)
    assert not portal_threads()


def test_a_closed_driver_refuses_calls_and_closes_once(tmp_path: Path) -> None:
    d = SyncDriver.sqlite(tmp_path / "s.db", CATALOG)
    d.create("c1", "counter")
    d.close()
    d.close()
    with pytest.raises(PortalClosed):
        d.feed("c1", Tick())
    with SyncDriver.sqlite(tmp_path / "s.db", CATALOG) as again:  # the file was closed cleanly
        assert again.load("c1").version == 1


def test_a_blocking_call_from_an_async_function_in_the_portal_raises(driver: SyncDriver) -> None:
    driver.create("c1", "counter")

    async def misuse() -> None:
        driver.feed("c1", Tick())

    with pytest.raises(PortalThread):
        driver.call(misuse())
    assert driver.load("c1").version == 1


class Gated(MemoryStore):
    """A memory store whose commits hang (until cancelled) while ``gating``: before they land, or after."""

    def __init__(self, catalog: Catalog, *, after: bool) -> None:
        super().__init__(catalog)
        self.after = after
        self.gating = False
        self.hanging = threading.Event()

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        gating = self.gating
        if gating and not self.after:
            await self._hang()
        await super().commit(ops, batch=batch, outcome=outcome)
        if gating and self.after:
            await self._hang()

    async def _hang(self) -> None:
        self.hanging.set()
        await asyncio.Event().wait()


@pytest.mark.parametrize("after", [False, True], ids=["before-it-landed", "after-it-landed"])
def test_a_timed_out_write_is_applied_exactly_once_when_fed_again(after: bool) -> None:
    """The cancellation reaches the driver mid-commit, so it remembers the batch and re-submits it by id.

    Had the portal abandoned the coroutine instead, the write that had landed
    would be decided afresh and applied twice (version 3).
    """
    store = Gated(CATALOG, after=after)

    async def opener() -> Store:
        return store

    with SyncDriver.open(opener) as d:
        d.create("c1", "counter")
        store.gating = True
        with pytest.raises(PortalTimeout):
            d.feed("c1", Tick(), timeout=0.1)
        assert store.hanging.is_set()
        store.gating = False
        assert d.load("c1").version == (2 if after else 1)  # what the caller could not know
        fed = d.feed("c1", Tick())
        assert fed.accepted and fed.record.version == 2 and fed.effects == (Ticked(1),)
        assert [e.kind for e in d.read_log("c1")] == ["created", "input", "effect"]



def hold_the_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection that holds SQLite's write lock until it rolls back."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE instances SET version = version WHERE 0")
    return holder


@pytest.mark.slow
def test_sqlite_a_write_waiting_for_the_lock_rolls_back_on_a_timeout_and_on_ctrl_c(tmp_path: Path) -> None:
    """A real store: the write waits for the lock, the caller gives up, the write rolls back whole."""
    with SyncDriver.sqlite(tmp_path / "s.db", CATALOG, busy_timeout=5.0) as d:
        d.create("c1", "counter")
        holder = hold_the_write_lock(tmp_path / "s.db")
        start = time.monotonic()
        with pytest.raises(PortalTimeout):
            d.feed("c1", Tick(), timeout=0.2)
        assert time.monotonic() - start < 2.0  # well before the busy timeout: cancelled while waiting
        interrupt_main_in(0.2)
        with pytest.raises(KeyboardInterrupt):
            d.feed("c1", Tick())
        holder.rollback()
        holder.close()
        assert d.load("c1").version == 1  # neither landed, and the connection holds no lock
        assert d.feed("c1", Tick()).record.version == 2
        assert d.feed("c1", Tick()).record.version == 3
        assert [e.kind for e in d.read_log("c1")] == ["created", "input", "effect", "input", "effect"]


def feed_from_threads(d: SyncDriver, threads: int, rounds: int) -> list[BaseException]:
    """``threads`` threads, started together, each feeding its own key and the shared one ``rounds`` times."""
    for i in range(threads):
        d.create(f"own-{i}", "counter")
    d.create("shared", "counter")
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                assert d.feed(f"own-{i}", Tick()).accepted
                assert d.feed("shared", Tick()).accepted
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


def check_counts(d: SyncDriver, threads: int, rounds: int) -> None:
    for i in range(threads):
        assert d.load(f"own-{i}").version == 1 + rounds
        assert len(d.read_log(f"own-{i}")) == 1 + 2 * rounds
    shared = d.load("shared")
    assert shared.version == 1 + threads * rounds and shared.state.n == threads * rounds
    log = d.read_log("shared")
    assert len(log) == 1 + 2 * threads * rounds
    assert [e.data["n"] for e in log if e.kind == "effect"] == list(range(1, 1 + threads * rounds))  # in order, no gaps


def test_sixteen_threads_feeding_their_own_keys_and_one_shared_key_memory() -> None:
    with SyncDriver.memory(CATALOG) as d:
        assert feed_from_threads(d, threads=16, rounds=10) == []
        check_counts(d, threads=16, rounds=10)


@pytest.mark.slow
def test_sixteen_threads_feeding_their_own_keys_and_one_shared_key_sqlite(tmp_path: Path) -> None:
    """No `Conflict` reaches a thread: one call at a time per key in the portal, the store serialising writes."""
    with SyncDriver.sqlite(tmp_path / "s.db", CATALOG) as d:
        assert feed_from_threads(d, threads=16, rounds=10) == []
        check_counts(d, threads=16, rounds=10)
    with SyncDriver.sqlite(tmp_path / "s.db", CATALOG) as d:  # and it is all on disk
        check_counts(d, threads=16, rounds=10)


@pytest.mark.slow
def test_sync_driver_on_postgres_from_sixteen_threads(postgres_dsn: str) -> None:
    """The same face over PostgreSQL: sixteen threads on their own keys and one shared key."""
    with SyncDriver.postgres(postgres_dsn, CATALOG, timeout=30.0) as d:
        assert feed_from_threads(d, threads=16, rounds=3) == []
        check_counts(d, threads=16, rounds=3)


@pytest.mark.slow
def test_sync_dispatcher_on_postgres(postgres_dsn: str) -> None:
    with SyncDriver.postgres(postgres_dsn, CATALOG, timeout=30.0) as d:
        if not isinstance(d.store, ReadStore):
            with pytest.raises(TypeError, match="no read side"):
                SyncDispatcher(d, "audit")
            pytest.skip("PostgresStore has no read side on this branch yet (h/pg)")
        d.create("c1", "counter")
        d.create("c2", "counter")
        for _ in range(3):
            d.feed("c1", Tick())
            d.feed("c2", Tick())
        seen: list[tuple[str, int]] = []
        dispatcher = SyncDispatcher(d, "audit")
        dispatcher.handle(Ticked, lambda e, where: seen.append((where.key, e.n)))
        assert dispatcher.run_once() == 6
        assert [n for key, n in seen if key == "c1"] == [1, 2, 3]  # per key, in log order
        assert sorted(seen) == [("c1", 1), ("c1", 2), ("c1", 3), ("c2", 1), ("c2", 2), ("c2", 3)]


# -- SyncDispatcher ------------------------------------------------------------------


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_a_plain_handler_runs_in_a_worker_thread_and_may_use_the_sync_driver(driver: SyncDriver) -> None:
    """A blocking handler does not hold up the loop, and calling the driver from it is not a call from the loop."""
    driver.create("c1", "counter")
    driver.create("c2", "counter")
    seen: list[tuple[str, int, int, str]] = []

    def handler(effect: Ticked, d: Delivery) -> None:
        version = driver.load(d.key).version  # a blocking call back into the portal
        seen.append((d.key, effect.n, version, threading.current_thread().name))

    dispatcher = SyncDispatcher(driver, "audit")
    dispatcher.handle(Ticked, handler)
    for key in ("c1", "c2", "c1"):
        driver.feed(key, Tick())
    assert dispatcher.run_once(timeout=10.0) == 3
    assert dispatcher.run_once() == 0  # the cursor moved past them
    assert sorted(s[:3] for s in seen) == [("c1", 1, 3), ("c1", 2, 3), ("c2", 1, 2)]
    assert all(name != "statewright-portal" for *_, name in seen)
    assert [c.cursor for c in dispatcher.consumers()] == [driver.call(dispatcher.dispatcher.store.latest_cursor())]


def test_start_delivers_as_inputs_commit_and_stop_releases_the_lease(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(effect: Ticked, d: Delivery) -> None:  # async: runs in the loop
        seen.append((d.key, effect.n))

    with SyncDriver.sqlite(tmp_path / "s.db", CATALOG) as d:
        d.create("src", "counter")
        d.create("dst", "counter")
        dispatcher = SyncDispatcher(d, "audit", poll=0.05)
        dispatcher.handle(Ticked, handler)
        router = SyncDispatcher(d, "router", poll=0.05)
        router.route(Ticked, lambda e, dl: ("dst", Tick()) if dl.key == "src" else None)
        dispatcher.start()
        router.start()
        assert dispatcher.running and router.running
        with pytest.raises(RuntimeError, match="started already"):
            dispatcher.start()
        for _ in range(3):
            d.feed("src", Tick())
        wait_for(lambda: len(seen) == 6)  # src's three, and dst's three that the router fed
        assert d.load("dst").version == 4
        dispatcher.stop(timeout=10.0)
        assert not dispatcher.running
        assert [c.owner for c in dispatcher.consumers()] == [None]  # released
        dispatcher.stop()  # a no-op now
    # the driver stopped the router before closing the store: its lease is released too
    with SyncDriver.sqlite(tmp_path / "s.db", CATALOG) as d:
        again = SyncDispatcher(d, "router")
        assert [c.owner for c in again.consumers()] == [None]
        assert again.run_once() == 0
        assert sorted(seen) == sorted([("src", 1), ("src", 2), ("src", 3), ("dst", 1), ("dst", 2), ("dst", 3)])


def test_a_failing_plain_handler_is_dead_lettered_with_its_own_line(driver: SyncDriver) -> None:
    driver.create("c1", "counter")

    def refuses(effect: Ticked, d: Delivery) -> None:
        raise ValueError(f"no {effect.n}")

    line = refuses.__code__.co_firstlineno + 1
    dispatcher = SyncDispatcher(driver, "picky", retry=Retry(attempts=2, first=0.0))
    dispatcher.handle(Ticked, refuses)
    driver.feed("c1", Tick())
    assert dispatcher.run_once() == 1
    (dead,) = dispatcher.dead_letters()
    assert (dead.key, dead.seq, dead.attempts, dead.code) == ("c1", 3, 2, "handler_error")
    assert "refuses" in dead.error and "ValueError: no 1" in dead.error
    assert f"test_blocking.py:{line}" in dead.error


def test_a_script_calling_run_once_leaves_no_lease_behind(tmp_path: Path) -> None:
    """Each run of a script is a new owner: the lease of the last run must not make it wait (or do nothing)."""
    path = tmp_path / "script.db"
    seen: list[str] = []
    for n in range(3):
        with SyncDriver.sqlite(path, CATALOG) as d:
            if n == 0:
                d.create("in1", "input")
            d.feed("in1", Queue() if n == 0 else Stage(f"r{n}") if n == 1 else Apply("r1"))
            dispatcher = SyncDispatcher(d, "script")
            for effect in (InputQueued, InputStaged, InputApplied):
                dispatcher.handle(effect, lambda e, w: seen.append(type(e).__name__))
            assert dispatcher.run_once() == 1  # the SyncDriver's close releases the lease
    assert seen == ["InputQueued", "InputStaged", "InputApplied"]


# -- the types a user's mypy sees ----------------------------------------------------------

PROGRAM = '''\
import sys

from statewright import Catalog, Record
from statewright.adapters.runtime.blocking import PortalTimeout, SyncDispatcher, SyncDriver
from statewright.adapters.runtime.dispatch import Delivery
from statewright.machines.input import INPUT, Apply, InputStaged, Queue, Stage, authorize_seed


def staged(effect: InputStaged, delivery: Delivery) -> None:
    print(f"{{delivery.idempotency_key}}: staged for {{effect.run_id}}")


def main(path: str) -> None:
    with SyncDriver.sqlite(path, Catalog({{"input": INPUT}}, {{"input": authorize_seed}}), timeout=10.0) as d:
        created: Record = d.create("in1", "input")
        print("created at version", created.version)
        for command in (Queue(), Apply("r1"), Stage("r1")):
            try:
                fed = d.feed("in1", command, request=f"in1/{{type(command).__name__}}", timeout=5.0)
            except PortalTimeout:
                print("timed out: feed it again with the same request id")
                continue
            print(type(command).__name__, {fed})
        print([event.kind for event in d.read_log("in1")], d.load("in1").version)
        with SyncDispatcher(d, "audit") as dispatcher:
            dispatcher.handle(InputStaged, staged)
            handled: int = dispatcher.run_once()
        print("handled", handled, [(c.name, c.cursor == d.latest_cursor(), c.owner) for c in d.consumers()])
        print("dead letters", len(d.dead_letters("audit")), "pruned", d.prune(0.0))


main(sys.argv[1])
'''

NARROWED = '"accepted" if fed.accepted else f"rejected: {fed.rejection.message}"'
UNTESTED = 'f"rejected: {fed.rejection.message}"'


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy_cache")


@pytest.mark.slow
def test_a_user_program_with_sync_driver_type_checks_strictly_and_runs(
    tmp_path: Path, mypy_cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.adapters.test_driver_typing import mypy_on

    source = tmp_path / "app.py"
    source.write_text(PROGRAM.format(fed=NARROWED))
    assert mypy_on(source, mypy_cache) == []
    monkeypatch.setattr("sys.argv", ["app.py", str(tmp_path / "app.db")])
    runpy.run_path(str(source), run_name="__main__")
    assert capsys.readouterr().out.splitlines() == [
        "created at version 1",
        "Queue accepted",
        "Apply rejected: can't take Apply in QUEUED: no transition",
        "Stage accepted",
        "['created', 'input', 'effect', 'rejected', 'input', 'effect'] 3",
        "audit/in1/6: staged for r1",
        "handled 1 [('audit', True, None)]",
        "dead letters 0 pruned 0",
    ]


@pytest.mark.slow
def test_sync_driver_results_are_typed_not_any(tmp_path: Path, mypy_cache: Path) -> None:
    """The narrowing works because ``feed`` returns ``FedAccepted | FedRejected``, not Any: untested, mypy objects."""
    from tests.adapters.test_driver_typing import mypy_on

    source = tmp_path / "app.py"
    source.write_text(PROGRAM.format(fed=UNTESTED))
    line = 1 + PROGRAM.splitlines().index("            print(type(command).__name__, {fed})")
    assert mypy_on(source, mypy_cache) == [
        f'{line}: error: Item "None" of "Rejected | None" has no attribute "message"  [union-attr]',
    ]
