"""The dispatcher under attack: kill -9 mid-handler and mid-cursor-advance, cancellation at every await, hangs, poison.

Separate OS processes (`tests.adapters._dispatchers`, from a ``forkserver``)
run the ``audit`` (plain handler) and ``shop`` (a route and a transactional
handler) consumers on one SQLite file or PostgreSQL database while a writer
process places, pays and ships orders; the parent SIGKILLs dispatchers at
random moments and at armed points (inside a handler, just before or after an
`Advance`'s commit, in a retry's backoff) and starts them again. At the end a
final dispatcher drains what is left, and:

* every committed effect was delivered at least once to the plain handler;
* each routed ``Request`` was fed once (the payment's version 2, one request);
* each transactional note row exists once (version 1, no log);
* per key, effects were delivered in log order within every process (a lost
  lease sends a process back to its durable cursor: `_dispatchers.order_violations`),
  and first delivered in log order across processes;
* every cursor is at the latest position; no dead letters unless provoked, then
  one per poisoned effect;
* the store calls every process recorded (the port's, not the read side's) are
  linearizable.

Each test prints its figures. Sizes are small by default; for a soak run set
``STATEWRIGHT_ATTACK_KILLS`` (kills per kill test), ``STATEWRIGHT_ATTACK_CANCELS``
(random cancels of ``run``) and ``STATEWRIGHT_ATTACK_SEED``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.readside import ReadStore
from statewright.adapters.testing.linearizability import load_history
from tests.adapters import _backends as B
from tests.adapters import _dispatchers as D
from tests.adapters._shop import Note, PaymentPhase, shop_catalog

CTX = D.context()
SEED = int(os.environ.get("STATEWRIGHT_ATTACK_SEED", "20261207"))
KILLS = {"sqlite": 16, "postgres": 10}
POISON_KILLS = {"sqlite": 6, "postgres": 4}
RUN_CANCELS = {"memory": 30, "sqlite": 20, "postgres": 12}
KILL_DELAY = 0.3  # seconds; the longest random wait before an unarmed SIGKILL
ARMED_WAIT = 5.0  # seconds to wait for an armed point to be reached
START_WITHIN = 60.0


def kills(table: dict[str, int], backend: str) -> int:
    return int(os.environ.get("STATEWRIGHT_ATTACK_KILLS", table[backend]))


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[dispatch attack] {text}")


def backend_of(locator: str) -> str:
    return "postgres" if B.is_postgres(locator) else "sqlite"


def until(cond: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


# -- the fleet of dispatcher processes ---------------------------------------------------------


@dataclass
class Slot:
    index: int
    incarnation: int = -1
    proc: Any = None
    arm: Any = None
    stage: Any = None

    @property
    def process(self) -> str:
        return f"d{self.index}.{self.incarnation}"


@dataclass
class Fleet:
    """Dispatcher processes on one store: started, armed, killed, started again."""

    locator: str
    folder: Path
    options: D.Options
    slots: list[Slot] = field(default_factory=list)
    killed: int = 0

    def start(self, slot: Slot, *, hang: bool = False) -> None:
        slot.incarnation += 1
        slot.arm, slot.stage = CTX.Value("i", 0, lock=False), CTX.Value("i", 0, lock=False)
        ready = CTX.Event()
        slot.proc = CTX.Process(target=D.dispatcher, args=(
            self.locator, str(self.folder), slot.process, self.options.json(), hang, ready, slot.arm, slot.stage))
        slot.proc.start()
        if not ready.wait(START_WITHIN):
            self.check_errors()
            raise AssertionError(f"{slot.process} never opened the store")

    def kill(self, slot: Slot) -> None:
        self.check_errors()
        os.kill(slot.proc.pid, signal.SIGKILL)
        slot.proc.join(30)
        assert slot.proc.exitcode == -signal.SIGKILL, (slot.process, slot.proc.exitcode, D.errors(self.folder))
        self.killed += 1

    def stopped_at(self, point: int) -> Slot | None:
        """Arm every process at ``point``; the first to stop there (the others disarmed), or None after a while."""
        for s in self.slots:
            s.arm.value = point

        def first() -> Slot | None:
            return next((s for s in self.slots if s.stage.value == point), None)

        until(lambda: first() is not None, ARMED_WAIT)
        found = first()
        for s in self.slots:
            if s is not found:
                s.arm.value = D.NOWHERE
        return found

    def check_errors(self) -> None:
        errors = D.errors(self.folder)
        assert not errors, errors[0]

    def close(self) -> None:
        for s in self.slots:
            if s.proc is not None and s.proc.is_alive():
                s.proc.kill()
                s.proc.join()


@dataclass
class Writer:
    """The writer process: orders placed, paid and shipped at a steady pace until stopped."""

    proc: Any
    stop: Any
    done: Any

    @classmethod
    def start(cls, locator: str, folder: Path, *, most: int = 10_000, pace: float = 0.01) -> Writer:
        ready, stop, done = CTX.Event(), CTX.Event(), CTX.Value("q", 0)
        proc = CTX.Process(target=D.writer, args=(locator, str(folder), 0, most, pace, ready, stop, done))
        proc.start()
        assert ready.wait(START_WITHIN), "the writer never opened the store"
        return cls(proc, stop, done)

    def finish(self) -> int:
        self.stop.set()
        self.proc.join(60)
        assert self.proc.exitcode == 0, f"the writer failed: {self.proc.exitcode}"
        return int(self.done.value)


# -- the end state, judged --------------------------------------------------------------------


@dataclass
class Outcome:
    orders: int
    effects: int
    latest: int
    calls: D.Calls
    dead: list[Any]
    linearizable: str
    dropped: int
    chains: str = ""

    @property
    def audit_line(self) -> str:
        return (f"{self.effects:,} effects, {len(self.calls.delivered.get(D.AUDIT, {})):,} delivered at least once "
                f"({self.calls.calls(D.AUDIT):,} calls, {self.calls.redelivered(D.AUDIT)} re-delivered)")

    @property
    def shop_line(self) -> str:
        return (f"{self.orders} routes fed and {self.orders} notes written exactly once "
                f"({self.calls.redelivered(D.SHOP)} re-delivered)")


async def drain(store: ReadStore, watched: Any, log: D.CallLog, options: D.Options, owner: str,
                *, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, wait: float = 60.0) -> int:
    """A final dispatcher pair (all partitions) passes until every cursor is at the latest position; passes made."""
    opts = replace(options, max_partitions=None, hang=0.0)
    ds = D.wire(watched, D.Handlers(log, opts), opts, owner=owner)
    deadline = time.monotonic() + wait
    passes = 0
    while True:
        for d in ds:
            await d.run_once()
        passes += 1
        latest = await store.latest_cursor()
        if all(r.cursor == latest for r in await store.consumers()):
            return passes
        assert time.monotonic() < deadline, [(r.name, r.partition, r.cursor, r.owner) for r in await store.consumers()]
        await sleep(0.02)


async def judged_end(store: ReadStore, watched: Any, folder: Path, options: D.Options,
                     poisoned: set[str] = frozenset()) -> Outcome:  # type: ignore[assignment]
    """Check the end state (see the module doc) through ``watched``'s recorded loads; the figures."""
    events = [e for e in await store.replay_all() if e.kind == "effect"]
    latest = await store.latest_cursor()
    calls = D.read_calls(folder, options.partitions)
    assert not calls.violations, calls.violations[:5]
    audit = calls.delivered.get(D.AUDIT, {})
    missing = [(e.key, e.seq) for e in events if (e.key, e.seq) not in audit]
    assert not missing, f"never delivered to the plain handler: {missing[:5]}"
    orders = sorted({e.key for e in events})
    for e in events:
        kind = e.data["type"]
        if kind == "PaymentRequested":
            pay = await watched.load(f"pay-{e.key}")
            assert (pay.version, pay.state.phase, pay.state.requests) == (2, PaymentPhase.REQUESTED, 1), (e.key, pay)
        else:
            assert kind == "Shipped", e
            note = await watched.load(f"note-{e.key}")
            assert (note.version, note.state) == (1, Note(text=D.note_text(e.key, e.data["amount"]))), (e.key, note)
            assert await watched.read_log(f"note-{e.key}") == []
    assert sum(1 for e in events if e.data["type"] == "Shipped") == len(orders)
    rows = await store.consumers()
    assert sorted({r.name for r in rows}) == [D.AUDIT, D.SHOP]
    assert all(r.cursor == latest for r in rows), [(r.name, r.partition, r.cursor) for r in rows]
    dead = await store.dead_letters()
    want = sorted((e.key, e.seq) for e in events if e.key in poisoned)
    assert sorted((d.key, d.seq) for d in dead) == want, dead
    assert all(d.consumer == D.AUDIT and d.code == "handler_error" and d.attempts == options.attempts for d in dead)
    moves, cut, landed = D.check_cursors(folder, {(r.name, r.partition): r.cursor for r in rows})
    chains = (f"{len(rows)} cursors, each moved by one chain of compare-and-swaps ({moves:,} advances in all; "
              f"{cut} cut short, {landed} of them on a chain)")
    return Outcome(len(orders), len(events), latest, calls, dead, "", 0, chains)


def finish(locator: str, folder: Path, options: D.Options, poisoned: set[str] = frozenset()) -> Outcome:  # type: ignore[assignment]
    """In the parent: drain with a final dispatcher, judge the end, check the histories."""

    async def main() -> Outcome:
        async with D.opened(locator, folder, "final") as (inner, watched, log):
            await drain(inner, watched, log, options, "final")
            return await judged_end(inner, watched, folder, options, poisoned)

    outcome = asyncio.run(main())
    checked = D.judge(folder)
    outcome.linearizable = f"{checked.summary()} (checked in {checked.seconds:.2f} s)"
    outcome.dropped = D.dropped_count(folder)
    return outcome


# -- 1. kill -9 mid-handler and mid-cursor-advance ------------------------------------------------


def kill_run(locator: str, folder: Path, options: D.Options, trials: int, points: list[int | None],
             rng: random.Random) -> dict[str, int]:
    """Dispatchers under a writer, killed ``trials`` times at ``points`` (None: at random); where each kill hit."""
    where: dict[str, int] = {"at random": 0, **{D.POINTS[p]: 0 for p in points if p is not None},
                             "armed, not reached": 0}
    fleet = Fleet(locator, folder, options, [])
    writer = Writer.start(locator, folder)
    try:
        for i in range(3):
            fleet.slots.append(Slot(i))
            fleet.start(fleet.slots[-1])
        for _ in range(trials):
            point = rng.choice(points)
            if point is None:
                time.sleep(rng.uniform(0, KILL_DELAY))
                victim = rng.choice(fleet.slots)
                where["at random"] += 1
            else:
                stopped = fleet.stopped_at(point)
                victim = stopped if stopped is not None else rng.choice(fleet.slots)
                where[D.POINTS[point] if stopped is not None else "armed, not reached"] += 1
            fleet.kill(victim)
            fleet.start(victim)
        writer.finish()
        time.sleep(rng.uniform(0, KILL_DELAY))  # the survivors work on; then they die too
        for s in fleet.slots:
            fleet.kill(s)
        fleet.check_errors()
    finally:
        fleet.close()
        if writer.proc.is_alive():
            writer.proc.kill()
    where["kills"] = fleet.killed
    return where


@pytest.mark.slow
def test_kill_9_mid_handler_and_mid_advance_loses_nothing_and_applies_once(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = backend_of(store_at)
    options = D.Options(window=16)  # passes of a few effects: many advances to be killed around
    points: list[int | None] = [None, D.IN_HANDLER, D.BEFORE_ADVANCE, D.AFTER_ADVANCE]
    where = kill_run(store_at, tmp_path, options, kills(KILLS, backend), points, random.Random(SEED))
    out = finish(store_at, tmp_path, options)
    assert where["kills"] >= kills(KILLS, backend)
    hits = ", ".join(f"{n} {w}" for w, n in where.items() if w != "kills")
    say(capsys, f"{backend} dispatch kill -9: {where['kills']} kills ({hits}; the last 3 the survivors), "
                f"{out.calls.processes - 1} dispatcher incarnations; {out.orders} orders, {out.audit_line}; "
                f"{out.shop_line}; per-key order held ({out.calls.lost_marks} lost leases); cursors at "
                f"{out.latest:,}; no dead letters")
    say(capsys, f"{backend} dispatch kill -9: {out.linearizable}; {out.dropped} refused cursor commits left out; "
                f"{out.chains}")


def test_the_judges_catch_what_they_are_for() -> None:
    """The order and cursor judges are not vacuous: a seq going back, two advances from one cursor, fail them."""
    line = {"c": D.AUDIT, "k": "order-0001", "p": 0, "e": "Shipped", "t": 0}
    seqs = [{**line, "s": s, "a": 1} for s in (3, 6, 3)]
    assert D.order_violations("p", seqs, 1) == ["p audit order-0001: seq 3 after 6 (attempt 1)"]
    assert D.order_violations("p", [seqs[0], seqs[1], {"lost": [D.AUDIT, 0]}, seqs[2]], 1) == []
    assert D.order_violations("p", [seqs[0], {**seqs[0], "a": 2}], 1) == []  # a retry
    move = D._Move("p", 0, 5, "o", 10, 20, True)
    assert D._chain([move, replace(move, expected=5, cursor=9, invoke=30, returned=40)], 0, 9) is not None
    assert D._chain([move, replace(move, cursor=7, invoke=30, returned=40)], 0, 7) is None  # two from cursor 0
    assert D._chain([move, replace(move, expected=5, cursor=9, ok=False)], 0, 9) is None  # a refused one, used
    assert D._chain([move, replace(move, expected=5, cursor=9, invoke=0, returned=5)], 0, 9) is None  # time
    cut = replace(move, expected=5, cursor=9, returned=None, ok=None)
    assert D._chain([move, cut], 0, 9) == [move, cut] and D._chain([move, cut], 0, 5) == [move]


# -- 4. dead letters under kills -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_poisoned_key_is_dead_lettered_once_per_effect_under_kills(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = backend_of(store_at)
    poisoned = {D.order_key(n) for n in (1, 4)}
    options = D.Options(poison=",".join(sorted(poisoned)), attempts=4, backoff=0.05)
    points: list[int | None] = [D.IN_RETRY, D.IN_RETRY, D.BEFORE_ADVANCE, None]
    where = kill_run(store_at, tmp_path, options, kills(POISON_KILLS, backend), points, random.Random(SEED + 1))
    out = finish(store_at, tmp_path, options, poisoned)
    audit = out.calls.delivered[D.AUDIT]
    tries = sum(n for (k, _), n in audit.items() if k in poisoned)
    again = sum(n - 1 for (k, _), n in audit.items() if k not in poisoned)
    hits = ", ".join(f"{n} {w}" for w, n in where.items() if w != "kills")
    say(capsys, f"{backend} dispatch poison: {where['kills']} kills ({hits}); {len(poisoned)} poisoned orders, "
                f"{tries} failing calls, {len(out.dead)} dead letters (one per poisoned effect, "
                f"{options.attempts} attempts each); the other {out.orders - len(poisoned)} orders' "
                f"{out.effects - len(out.dead)} effects all delivered ({again} re-delivered)")
    say(capsys, f"{backend} dispatch poison: {out.linearizable}; {out.chains}")


# -- 3. a handler hanging past its lease -------------------------------------------------------------


async def seed(locator: str, folder: Path, orders: int) -> None:
    async with D.opened(locator, folder, "writer") as (_, watched, _log):
        driver = Driver(watched)
        for n in range(orders):
            await D.place(driver, n)


def hung_calls(folder: Path, process: str) -> list[tuple[str, str, int]]:
    lines = [json.loads(t) for t in (folder / "calls" / f"{process}.jsonl").read_text().splitlines() if t.strip()]
    return [(line["hung"][0], line["hung"][1], line["hung"][2]) for line in lines if "hung" in line]


def delivered_by(folder: Path, process: str) -> dict[tuple[str, str, int], list[int]]:
    """(consumer, key, seq) -> the times ``process`` delivered it."""
    out: dict[tuple[str, str, int], list[int]] = {}
    for t in (folder / "calls" / f"{process}.jsonl").read_text().splitlines():
        line = json.loads(t) if t.strip() else {}
        if "c" in line:
            out.setdefault((line["c"], line["k"], line["s"]), []).append(line["t"])
    return out


def hang_ends(folder: Path, process: str) -> dict[str, int]:
    """Consumer -> when ``process``'s hang in its handler ended."""
    lines = [json.loads(t) for t in (folder / "calls" / f"{process}.jsonl").read_text().splitlines() if t.strip()]
    return {line["hung"][0]: line["t"] for line in lines if "hung" in line}


@pytest.mark.slow
def test_a_handler_hanging_past_its_lease_is_taken_over_without_a_double_apply(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Process 0's plain handler awaits 1 s and its transactional handler blocks the whole process 1 s; lease 0.3 s."""
    backend = backend_of(store_at)
    options = D.Options(max_partitions=None, hang=1.0)
    asyncio.run(seed(store_at, tmp_path, 12))
    fleet = Fleet(store_at, tmp_path, options, [Slot(0), Slot(1)])
    try:
        hung, taker = fleet.slots
        fleet.start(hung, hang=True)
        assert until(lambda: hung.stage.value == D.HANGING, 30), "process 0 never hung"
        fleet.start(taker)
        assert until(lambda: hung.stage.value == D.HUNG, 30), "process 0 never came back"
        time.sleep(3 * options.lease)  # what process 0 does when it comes back: commits refused, or applied once
        for s in fleet.slots:
            fleet.kill(s)
    finally:
        fleet.close()
    out = finish(store_at, tmp_path, options)
    stuck = hung_calls(tmp_path, hung.process)
    assert sorted(c for c, _, _ in stuck) == [D.AUDIT, D.SHOP]
    took = delivered_by(tmp_path, taker.process)
    assert all(call in took for call in stuck), (stuck, sorted(took)[:5])  # taken over by the other process
    mine = delivered_by(tmp_path, hung.process)
    both = {c: sum(1 for call in mine if call in took and call[0] == c) for c in (D.AUDIT, D.SHOP)}
    # once back, the hung process calls no handler for what the other process took over: its lease ran out
    ends = hang_ends(tmp_path, hung.process)
    last = max(ends.values())
    late = sorted(call for call, times in mine.items() if call in took and max(times) > last)
    assert not late, f"{len(late)} effects delivered again by the process whose lease ran out: {late[:4]}"
    refused = D.refused_commits(tmp_path, hung.process)
    say(capsys, f"{backend} dispatch hang: process 0 hung 1.0 s in its plain handler (awaiting) and 1.0 s in its "
                f"transactional one (blocking), lease {options.lease} s; process 1 took over and delivered "
                f"both hung effects; {both[D.AUDIT]} plain and {both[D.SHOP]} shop effects delivered by both; "
                f"{out.shop_line}; process 0's late commits: {refused}; {out.audit_line}")
    say(capsys, f"{backend} dispatch hang: {out.linearizable}; {out.chains}")


# -- 2. cancellation at every await --------------------------------------------------------------------


async def open_inproc(kind: str, locator: str | None, clock: Callable[[], float]) -> Any:
    if kind == "memory":
        return MemoryStore(shop_catalog(), clock=clock)
    if kind == "sqlite":
        from statewright.adapters.runtime.sqlite import SqliteStore

        return await SqliteStore.open(str(locator), shop_catalog(), clock=clock)
    from statewright.adapters.runtime.postgres import PostgresStore

    return await PostgresStore.open(str(locator), shop_catalog(), clock=clock)


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def usable(kind: str, inner: Any, locator: str | None) -> None:
    """No lock held, the connection idle, another connection can take the write lock now."""
    if kind == "memory":
        assert not inner._lock.locked()
        return
    assert B.store_idle(inner)
    assert await B.lock_is_free(str(locator))


MAX_CALLS = 2_000


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memory", *B.BACKENDS])
def test_a_dispatcher_cancelled_at_every_await_loses_nothing_and_applies_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pass (run_once of both consumers) cancelled at its k-th store call, k = 1, 2, ... until one completes first.

    Twice: with the call in flight, and just after it returned. On memory,
    where every await is a loop turn, also after k turns. Each cancel is
    followed by a fresh dispatcher that drains (once the cancelled one's
    leases ran out, by the store's injected clock); the store must be idle
    and its lock free after each. Then run() cancelled at random calls: it
    must release its leases itself (the clock does not move for those).
    """
    locator = None if kind == "memory" else B.locator(kind, tmp_path, request)
    options = D.Options(partitions=2, max_partitions=None)
    now = [1_000_000.0]
    rng = random.Random(SEED + 2)
    cancels = int(os.environ.get("STATEWRIGHT_ATTACK_CANCELS", RUN_CANCELS[kind]))
    figures = {"cut": 0, "turns": 0, "run": 0, "calls": 0}
    cuts = ((D.DURING, "in flight"), (D.AFTER, "just after"))

    async def main() -> Outcome:
        inner = await open_inproc(kind, locator, lambda: now[0])
        try:
            with ExitStack() as files:
                writer, _ = D.watch(inner, tmp_path, "writer", files)
                driver = Driver(writer)
                trial = iter(range(10**6))

                async def cancelled(cut: tuple[int, int] | None, turns_first: int | None) -> bool:
                    """One new order, one pass cut as told; True when the pass completed before the cut."""
                    await D.place(driver, next(trial) + 10**4)
                    name = f"c{len(list(tmp_path.joinpath('calls').glob('c*')))}"
                    watched, log = D.watch(inner, tmp_path, name, files)
                    watched.cut = cut
                    ds = D.wire(watched, D.Handlers(log, options), options, owner=name)
                    # return_exceptions: a cancelled gather returns only once every child has finished
                    task = asyncio.ensure_future(asyncio.gather(*(d.run_once() for d in ds), return_exceptions=True))
                    watched.victim = task
                    if turns_first is not None:
                        await turns(turns_first)
                        if not task.done():
                            task.cancel()
                    try:
                        results = await task
                        finished = True
                    except asyncio.CancelledError:
                        finished = False
                    else:
                        assert not [r for r in results if isinstance(r, BaseException)], results
                    if cut is not None:
                        assert finished == (watched.count < cut[0]), (cut, watched.count)  # no cancel swallowed
                        figures["calls"] = max(figures["calls"], watched.count)
                    figures["cut"] += not finished
                    now[0] += 2 * options.lease  # the cancelled dispatcher's leases run out
                    await fresh_drain(f"f{name}")
                    now[0] += 2 * options.lease
                    await usable(kind, inner, locator)
                    return finished

                async def fresh_drain(name: str) -> None:
                    watched, log = D.watch(inner, tmp_path, name, files)
                    await drain(inner, watched, log, options, name)

                for phase, _ in cuts:
                    k = 1
                    while not await cancelled((k, phase), None):
                        k += 1
                        assert k < MAX_CALLS
                if kind == "memory":
                    k = 0
                    while not await cancelled(None, k):
                        k += 1
                        assert k < MAX_CALLS
                    figures["turns"] = k
                for j in range(cancels):  # run() cut at random: it releases its leases itself
                    await D.place(driver, next(trial) + 10**4)
                    name = f"r{j}"
                    watched, log = D.watch(inner, tmp_path, name, files)
                    watched.cut = (rng.randrange(1, figures["calls"] + 1), rng.choice(cuts)[0])
                    ds = D.wire(watched, D.Handlers(log, options), options, owner=name)
                    task = asyncio.ensure_future(asyncio.gather(*(d.run() for d in ds), return_exceptions=True))
                    watched.victim = task
                    with pytest.raises(asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(task), 30)
                    figures["run"] += 1
                    rows = await inner.consumers()
                    assert not [r for r in rows if r.owner is not None and r.owner.startswith(f"{name}-")], (
                        watched.cut, rows)
                    await fresh_drain(f"g{j}")
                    for r in await inner.consumers():  # the drain's leases, let go as a stop would
                        if r.owner is not None:
                            await inner.release(r.name, r.partition, r.owner)
                    await usable(kind, inner, locator)
                final, _ = D.watch(inner, tmp_path, "final", files)
                return await judged_end(inner, final, tmp_path, options)
        finally:
            await inner.close()

    out = asyncio.run(main())
    checked = D.judge(tmp_path)
    pending = sum(1 for o in load_history(sorted((tmp_path / "judged").glob("*.jsonl"))) if o.result is None)
    turned = f", and after k = 0..{figures['turns']} loop turns" if kind == "memory" else ""
    say(capsys, f"{kind} dispatch cancelled: a pass cut at each of its store calls 1..{figures['calls']} (in flight "
                f"and just after){turned}: {figures['cut']} passes cut short; {figures['run']} run() cut at random "
                f"calls released their leases; each followed by a fresh drain, the store idle and its lock free "
                f"after each; {out.orders} orders, {out.audit_line}; {out.shop_line}; per-key order held")
    say(capsys, f"{kind} dispatch cancelled: {checked.summary()} ({pending} pending; "
                f"checked in {checked.seconds:.2f} s); {out.chains}")


# -- 6. a store locked past its busy timeout ------------------------------------------------------------


BURSTS = 8
BURST = 0.25  # seconds another connection holds the write lock; the dispatcher's store waits 0.05 s at most


@pytest.mark.slow
def test_a_store_locked_past_its_busy_timeout_does_not_stop_run(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another connection holds the write lock longer than the dispatcher's busy timeout, again and again.

    `Busy` is the store saying "not now": run() must go on (nothing advanced,
    the effects come again), and every effect be handled in the end.
    """
    backend = backend_of(store_at)
    options = D.Options(max_partitions=None, attempts=20, backoff=0.05)

    async def main() -> Outcome:
        inner: Any = await B.open_store(store_at, shop_catalog(), busy_timeout=0.05)  # a ReadStore too
        feeder = await B.open_store(store_at, shop_catalog(), busy_timeout=10.0)
        holder = await B.Holder.connect(store_at)
        try:
            with ExitStack() as files:
                writer, _ = D.watch(feeder, tmp_path, "writer", files)
                driver = Driver(writer)
                watched, log = D.watch(inner, tmp_path, "d", files)
                ds = D.wire(watched, D.Handlers(log, options), options, owner="d")
                running = asyncio.ensure_future(asyncio.gather(*(d.run() for d in ds), return_exceptions=True))
                for n in range(BURSTS):
                    await D.place(driver, n)
                    await asyncio.sleep(0.01)
                    while not await holder.hold(wait=False):  # SQLite: not while the dispatcher writes
                        await asyncio.sleep(0.002)
                    await asyncio.sleep(BURST)
                    await holder.release()
                deadline = time.monotonic() + 60
                while not running.done() and time.monotonic() < deadline:
                    latest = await inner.latest_cursor()
                    if all(r.cursor == latest for r in await inner.consumers()):
                        break
                    await asyncio.sleep(0.05)
                for d in ds:
                    d.stop()
                results = await asyncio.wait_for(running, 30)
                failed = [r for r in results if isinstance(r, BaseException)]
                assert not failed, f"run() stopped: {failed[0]!r}"
                final, _ = D.watch(inner, tmp_path, "final", files)
                return await judged_end(inner, final, tmp_path, options)
        finally:
            await holder.close()
            await feeder.close()
            await inner.close()

    out = asyncio.run(main())
    checked = D.judge(tmp_path)
    say(capsys, f"{backend} dispatch busy: the write lock held {BURSTS} times {BURST} s by another connection, "
                f"busy timeout 0.05 s; run() went on; {out.orders} orders, {out.audit_line}; {out.shop_line}; "
                f"{checked.summary()}; {out.chains}")
