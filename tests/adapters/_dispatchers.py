"""Dispatcher processes for the attack tests (`tests.adapters.test_dispatch_attacks`), and what judges them.

One world, `_shop`'s: a *writer* places, pays and ships orders (each order
emits `PaymentRequested`, then `Shipped`); every *dispatcher process* serves
two consumers over the same store:

* ``audit``: a plain handler for both effects that appends each call to its
  own file -- one JSON line, flushed -- *before* it returns (what a killed
  process did is on disk);
* ``shop``: a route (`PaymentRequested` -> ``Request`` fed to ``pay-<order>``,
  exactly once by request id) and a transactional handler (`Shipped` -> a
  ``note-<order>`` row, exactly once by batch id), both also logging their calls.

The parent arms a *point* in a process (a shared ``arm`` value), the process
stops dead there -- its event loop too --, says so (``stage``) and waits for
its SIGKILL: inside a handler, just before or just after the store commit of a
cursor `Advance`, or in the backoff sleep between two retries (`stop_if_armed`).
In one process, `Watched.cut` cancels a task at its k-th store call instead,
while the call is in flight or just after it returned.

What each process leaves in ``calls/<process>.jsonl``: every handler call; a
``lost`` mark when a pass over a partition it held ends without its advance
(a lease refused or failing, an `Advance` refused or failing, a read failing),
since a re-read from the durable cursor may then deliver again what it
delivered before -- per-key order is judged between such marks
(`order_violations`); and every commit that moves a cursor, at its start and
its end, so that `check_cursors` can find each cursor's history to be one
chain of compare-and-swaps.

Every store call of the port (loads, receipts, the writes) goes through a
`SideRecorder` into ``hist/<process>.jsonl`` for the linearizability checker
(`judge`); the read side (read, leases, cursors) has no sequential model
there and is passed through. A commit that carries an `Advance` or
`DeadLetter` besides its writes is recorded with its writes only -- the
read-side operations ride in its digest -- and one such commit refused (a
lost lease, a moved cursor) wrote nothing and is left out of the history
(``hist/<process>.drops``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import multiprocessing as mp
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import IO, Any

from statewright.adapters.runtime.dispatch import Delivery, Dispatcher, Retry
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.readside import Advance, DeadLetter, partition_of
from statewright.adapters.runtime.store import Cas, Conflict, LeaseLost, NotFound, Op, StoreError
from statewright.adapters.testing.linearizability import (
    HistoryCheck,
    HistoryVerdict,
    Operation,
    Recorder,
    check_history,
    load_history,
)
from statewright.adapters.testing.linearizability import _op_json as op_json
from tests.adapters import _backends as B
from tests.adapters._shop import Note, PaymentRequested, Place, Paid, Request, Ship, Shipped, shop_catalog

AUDIT, SHOP = "audit", "shop"
NOWHERE, IN_HANDLER, BEFORE_ADVANCE, AFTER_ADVANCE, IN_RETRY, HANGING, HUNG = 0, 1, 2, 3, 4, 5, 6
"""Points a process can be armed to stop at (and `HANGING`/`HUNG`: a hang began, ended)."""
DURING, AFTER = 0, 1
"""Where `Watched.cut` cancels: while its store call is in flight, or just after it returned."""
POINTS = {IN_HANDLER: "in a handler", BEFORE_ADVANCE: "just before an Advance's commit",
          AFTER_ADVANCE: "just after an Advance's commit", IN_RETRY: "in a retry's backoff"}
STOPPED_FOR = 10.0  # seconds an armed process waits for its SIGKILL before going on


def context() -> ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.adapters._dispatchers"])
    return ctx


@dataclass(frozen=True, slots=True)
class Options:
    """How the dispatcher processes run; JSON-able, handed to each."""

    partitions: int = 6
    max_partitions: int | None = 2
    lease: float = 0.3
    poll: float = 0.02
    window: int = 500
    attempts: int = 3
    backoff: float = 0.02
    poison: str = ""  # the audit handler always fails for these keys (comma-separated)
    hang: float = 0.0  # the first incarnation's first calls hang this long (audit: awaiting; shop: blocking)

    def json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


# -- the store a dispatcher process works through ------------------------------------------


class SideRecorder(Recorder):
    """A `Recorder` that also takes the read side's operations inside a commit (see the module doc)."""

    drops: IO[str] | None = None

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        side = [o for o in ops if isinstance(o, (Advance, DeadLetter))]
        if not side:
            await super().commit(ops, batch=batch, outcome=outcome)
            return
        writes = [o for o in ops if not isinstance(o, (Advance, DeadLetter))]
        inner: Any = self.inner
        if not writes:  # a cursor or a dead letter alone: nothing the model holds
            await inner.commit(ops, batch=batch)
            return
        entries = [op_json(o) for o in writes]
        entries[0] = {**entries[0], "with": [_side_json(o) for o in side]}
        line: dict[str, Any] = {"kind": "commit", "ops": entries, "batch": batch}
        index = self.index
        try:
            await self._record(line, inner.commit(ops, batch=batch), lambda _: None)
        except (LeaseLost, Conflict, NotFound):
            if self.drops is not None:
                self.drops.write(json.dumps({"process": self.process, "index": index}) + "\n")
                self.drops.flush()
            raise


def _side_json(op: Advance | DeadLetter) -> dict[str, Any]:
    if isinstance(op, Advance):
        return {"advance": [op.consumer, op.partition, op.expected, op.cursor, op.owner]}
    return {"dead": [op.consumer, op.partition, op.position, op.owner]}


class Watched:
    """The store as a dispatcher process sees it: recorded, stoppable at armed points, marking lost leases."""

    def __init__(self, inner: Any, recorder: SideRecorder, log: CallLog, arm: Any, stage: Any) -> None:
        self.inner, self.recorder, self.log, self.arm, self.stage = inner, recorder, log, arm, stage
        self.catalog = inner.catalog
        self.held: set[tuple[str, int]] = set()  # (consumer, partition) leased by this process
        self.count = 0  # store calls made through this object
        self.cut: tuple[int, int] | None = None  # (call, DURING or AFTER): where to cancel `victim`
        self.victim: asyncio.Future[Any] | None = None

    async def _counted(self, call: Awaitable[Any]) -> Any:
        """Count a store call; at the `cut` one, cancel `victim` while it is in flight, or right after it returned."""
        self.count += 1
        hit = self.cut is not None and self.cut[0] == self.count and self.victim is not None
        if hit and self.cut is not None and self.cut[1] == DURING and self.victim is not None:
            self.victim.cancel()  # the CancelledError arrives at the call's first suspension
        value = await call
        if hit and self.cut is not None and self.cut[1] == AFTER and self.victim is not None:
            self.victim.cancel()
            await asyncio.sleep(0)  # the result is lost here
        return value

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        advances = [o for o in ops if isinstance(o, Advance)]
        line = self.log.advancing(advances) if advances else None
        if advances:
            stop_if_armed(self.arm, self.stage, BEFORE_ADVANCE)
        try:
            await self._counted(self.recorder.commit(ops, batch=batch, outcome=outcome))
        except StoreError:
            if line is not None:
                self.log.advanced(line, ok=False)
            for a in advances:  # the pass ends without its advance: the next one reads from the durable cursor
                self.held.add((a.consumer, a.partition))  # (a pass may run on a lease kept from an earlier one)
                self._lost(a.consumer, a.partition)
            raise
        for a in advances:  # whoever moves a cursor works on that partition, whether or not it leased it just now
            self.held.add((a.consumer, a.partition))
        if line is not None:
            self.log.advanced(line, ok=True)
            stop_if_armed(self.arm, self.stage, AFTER_ADVANCE)

    async def lease(self, consumer: str, partition: int, owner: str, ttl: float) -> Any:
        try:
            row = await self._counted(self.inner.lease(consumer, partition, owner, ttl))
        except StoreError:
            self._lost(consumer, partition)
            raise
        if row is None:
            self._lost(consumer, partition)
        else:
            self.held.add((consumer, partition))
        return row

    def _lost(self, consumer: str, partition: int) -> None:
        """Mark a partition this process held as gone back to its durable cursor (and no longer held)."""
        if (consumer, partition) in self.held:
            self.held.discard((consumer, partition))
            self.log.lost(consumer, partition)

    async def load(self, key: str) -> Any:
        return await self._counted(self.recorder.load(key))

    async def receipt(self, batch: str) -> Any:
        return await self._counted(self.recorder.receipt(batch))

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> Any:
        return await self._counted(self.recorder.read_log(key, start, stop))

    async def log_head(self, key: str) -> Any:
        return await self._counted(self.recorder.log_head(key))

    def __getattr__(self, name: str) -> Any:  # the read side, passed through (and counted)
        found = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(found):
            return found

        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return await self._counted(found(*args, **kwargs))
            except StoreError:  # a read failed: the passes it served end, and start again from their cursors
                for consumer, partition in sorted(self.held):
                    self._lost(consumer, partition)
                raise

        return counted


def stop_if_armed(arm: Any, stage: Any, point: int) -> None:
    """Stop this whole process (the event loop too) at ``point`` if the parent armed it, until it is killed."""
    if arm is None or arm.value != point:
        return
    stage.value = point
    deadline = time.monotonic() + STOPPED_FOR
    while arm.value == point and time.monotonic() < deadline:  # the parent disarms the ones it spares
        time.sleep(0.002)
    arm.value = stage.value = NOWHERE


class CallLog:
    """One process's handler calls, a JSON line each, flushed before the handler returns."""

    def __init__(self, f: IO[str]) -> None:
        self.f = f
        self.n = 0  # cursor commits started

    def call(self, consumer: str, d: Delivery, what: str) -> None:
        self.f.write(json.dumps({"c": consumer, "k": d.key, "s": d.seq, "p": d.position, "a": d.attempt,
                                 "e": what, "t": time.monotonic_ns()}) + "\n")
        self.f.flush()

    def advancing(self, advances: Sequence[Advance]) -> dict[str, Any]:
        """A commit with cursor `Advance`s starts: written now, so a kill leaves it pending."""
        line = {"advances": [[a.consumer, a.partition, a.expected, a.cursor, a.owner] for a in advances],
                "invoke": time.monotonic_ns(), "return": None, "ok": None, "n": self.n}
        self.n += 1
        self._write(line)
        return line

    def advanced(self, line: dict[str, Any], *, ok: bool) -> None:
        self._write({**line, "return": time.monotonic_ns(), "ok": ok})

    def _write(self, line: dict[str, Any]) -> None:
        self.f.write(json.dumps(line) + "\n")
        self.f.flush()

    def lost(self, consumer: str, partition: int) -> None:
        self.f.write(json.dumps({"lost": [consumer, partition], "t": time.monotonic_ns()}) + "\n")
        self.f.flush()


class Handlers:
    """The two consumers' handlers of one process, logging every call first."""

    def __init__(self, log: CallLog, options: Options, arm: Any = None, stage: Any = None, *,
                 hang: bool = False) -> None:
        self.log, self.options, self.arm, self.stage = log, options, arm, stage
        self.hang_audit = self.hang_shop = hang
        self.hangs_left = 2 if hang else 0
        self.hung: list[tuple[str, str, int]] = []  # (consumer, key, seq) of the calls that hung

    def _hung(self, consumer: str, d: Delivery) -> None:
        self.hangs_left -= 1
        self.log.f.write(json.dumps({"hung": [consumer, d.key, d.seq], "t": time.monotonic_ns()}) + "\n")
        self.log.f.flush()
        self.stage.value = HUNG if self.hangs_left == 0 else HANGING

    async def audit(self, effect: Any, d: Delivery) -> None:
        self.log.call(AUDIT, d, type(effect).__name__)
        stop_if_armed(self.arm, self.stage, IN_HANDLER)
        if self.hang_audit:
            self.hang_audit = False
            self.stage.value = HANGING
            await asyncio.sleep(self.options.hang)  # longer than the lease; the loop goes on
            self._hung(AUDIT, d)
        if d.key in self.options.poison.split(","):
            raise RuntimeError(f"{d.key} is poisoned")

    def pay(self, effect: PaymentRequested, d: Delivery) -> tuple[str, Any]:
        self.log.call(SHOP, d, "PaymentRequested")
        stop_if_armed(self.arm, self.stage, IN_HANDLER)
        return (f"pay-{d.key}", Request(effect.amount))

    def notify(self, effect: Shipped, d: Delivery) -> list[Op]:
        self.log.call(SHOP, d, "Shipped")
        stop_if_armed(self.arm, self.stage, IN_HANDLER)
        if self.hang_shop:
            self.hang_shop = False
            self.stage.value = HANGING
            time.sleep(self.options.hang)  # the whole process stands still, as in a long GC pause
            self._hung(SHOP, d)
        return [Cas(f"note-{d.key}", 0, Note(text=note_text(d.key, effect.amount)), machine="note")]

    async def sleep(self, seconds: float) -> None:
        stop_if_armed(self.arm, self.stage, IN_RETRY)
        await asyncio.sleep(seconds)


def note_text(key: str, amount: int) -> str:
    return f"{key} shipped, {amount} paid"


def wire(store: Any, handlers: Handlers, options: Options, owner: str | None = None) -> list[Dispatcher]:
    """The ``audit`` and ``shop`` dispatchers of one process, on ``store``."""
    driver = Driver(store)
    common: dict[str, Any] = {"partitions": options.partitions, "max_partitions": options.max_partitions,
                              "lease": options.lease, "poll": options.poll, "window": options.window,
                              "retry": Retry(options.attempts, first=options.backoff), "sleep": handlers.sleep}
    audit = Dispatcher(store, AUDIT, owner=None if owner is None else f"{owner}-a", **common)
    audit.handle(PaymentRequested, handlers.audit)
    audit.handle(Shipped, handlers.audit)
    shop = Dispatcher(store, SHOP, driver=driver, owner=None if owner is None else f"{owner}-s", **common)
    shop.route(PaymentRequested, handlers.pay)
    shop.handle(Shipped, handlers.notify)
    return [audit, shop]


# -- the worker processes ------------------------------------------------------------------------


def folders(folder: str | Path) -> tuple[Path, Path]:
    """The call logs' and the histories' folders under a test's ``folder``."""
    calls, hist = Path(folder) / "calls", Path(folder) / "hist"
    calls.mkdir(parents=True, exist_ok=True)
    hist.mkdir(parents=True, exist_ok=True)
    return calls, hist


def watch(inner: Any, folder: str | Path, process: str, files: ExitStack, arm: Any = None,
          stage: Any = None) -> tuple[Watched, CallLog]:
    """``inner`` as ``process`` sees it (recorded into ``folder``), and its call log; ``files`` closes them."""
    calls, hist = folders(folder)
    recorder = SideRecorder(inner, process, files.enter_context(open(hist / f"{process}.jsonl", "a", encoding="utf-8")))
    recorder.drops = files.enter_context(open(hist / f"{process}.drops", "a", encoding="utf-8"))
    log = CallLog(files.enter_context(open(calls / f"{process}.jsonl", "a", encoding="utf-8")))
    return Watched(inner, recorder, log, arm, stage), log


@asynccontextmanager
async def opened(locator: str, folder: str | Path, process: str, arm: Any = None,
                 stage: Any = None) -> AsyncIterator[tuple[Any, Watched, CallLog]]:
    """The store at ``locator`` (closed at the end), as ``process`` sees it (`watch`), and its call log."""
    inner = await B.open_store(locator, shop_catalog())
    try:
        with ExitStack() as files:
            watched, log = watch(inner, folder, process, files, arm, stage)
            yield inner, watched, log
    finally:
        await inner.close()


def dispatcher(locator: str, folder: str, process: str, options: dict[str, Any], hang: bool,
               ready: MpEvent, arm: Any, stage: Any) -> None:
    """Run both dispatchers until killed; an error of theirs goes to ``<folder>/errors/<process>``."""

    async def body() -> None:
        opts = Options(**options)
        async with opened(locator, folder, process, arm, stage) as (_, store, log):
            handlers = Handlers(log, opts, arm, stage, hang=hang)
            ds = wire(store, handlers, opts, owner=process)
            ready.set()
            await asyncio.gather(*(d.run() for d in ds))

    try:
        asyncio.run(body())
    except BaseException:
        errors = Path(folder) / "errors"
        errors.mkdir(exist_ok=True)
        (errors / process).write_text(traceback.format_exc())
        raise


def order_key(n: int) -> str:
    return f"order-{n:04d}"


def writer(locator: str, folder: str, first: int, most: int, pace: float, ready: MpEvent, stop: MpEvent,
           done: Any) -> None:
    """Place, pay and ship orders ``first``, ``first + 1``, ... until ``stop`` (at most ``most``); count in ``done``."""

    async def body() -> None:
        async with opened(locator, folder, "writer") as (_, store, _log):
            driver = Driver(store)
            ready.set()
            for n in range(first, first + most):
                if stop.is_set():
                    break
                await place(driver, n)
                done.value = n - first + 1
                await asyncio.sleep(pace)

    asyncio.run(body())


async def place(driver: Driver, n: int) -> None:
    """Order ``n`` and its payment created; placed (PaymentRequested), paid and shipped (Shipped)."""
    key = order_key(n)
    await driver.create(key, "order")
    await driver.create(f"pay-{key}", "payment")
    for step in (Place(10 + n), Paid(), Ship()):
        fed = await driver.feed(key, step)
        assert fed.accepted, (key, step, fed)


# -- judging what happened -------------------------------------------------------------------------


@dataclass
class Calls:
    """Every process's handler calls, read back: per consumer, (key, seq) -> how often, and the order's verdict."""

    delivered: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    lost_marks: int = 0
    processes: int = 0

    def redelivered(self, consumer: str) -> int:
        return sum(n - 1 for n in self.delivered.get(consumer, {}).values())

    def calls(self, consumer: str) -> int:
        return sum(self.delivered.get(consumer, {}).values())


def read_calls(folder: str | Path, partitions: int) -> Calls:
    """Read every call log; judge per-key order within each process's file (see `order_violations`)."""
    out = Calls()
    firsts: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for path in sorted((Path(folder) / "calls").glob("*.jsonl")):
        lines = [json.loads(t) for t in path.read_text().splitlines() if t.strip()]
        out.processes += 1
        out.lost_marks += sum(1 for line in lines if "lost" in line)
        out.violations += order_violations(path.stem, lines, partitions)
        for line in lines:
            if "c" not in line:
                continue
            seen = out.delivered.setdefault(line["c"], {})
            where = (line["k"], line["s"])
            seen[where] = seen.get(where, 0) + 1
            firsts.setdefault((line["c"], line["k"]), []).append((line["t"], line["s"]))
    for (consumer, key), times in firsts.items():  # across processes: first deliveries in log order
        first: dict[int, int] = {}
        for t, s in sorted(times):
            first.setdefault(s, t)
        seqs = [s for s, _ in sorted(first.items(), key=lambda st: st[1])]
        if seqs != sorted(seqs):
            out.violations.append(f"{consumer} {key}: first delivered in the order {seqs}")
    return out


def order_violations(process: str, lines: Iterable[dict[str, Any]], partitions: int) -> list[str]:
    """Within one process: a key's seqs go up; a repeat is a retry (attempt > 1) or follows a ``lost`` mark.

    A lost lease (or a refused `Advance`) sends the process back to the durable
    cursor, so what it delivered above it may come again: the mark starts a new
    epoch for that (consumer, partition).
    """
    epoch: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, str], tuple[int, int]] = {}  # (consumer, key) -> (epoch, seq)
    bad: list[str] = []
    for line in lines:
        if "lost" not in line and "c" not in line:
            continue
        if "lost" in line:
            c, p = line["lost"]
            epoch[c, p] = epoch.get((c, p), 0) + 1
            continue
        c, k, s = line["c"], line["k"], line["s"]
        now = epoch.get((c, partition_of(k, partitions)), 0)
        before = last.get((c, k))
        if before is not None and before[0] == now:
            if s < before[1] or (s == before[1] and line["a"] == 1):
                bad.append(f"{process} {c} {k}: seq {s} after {before[1]} (attempt {line['a']})")
        last[c, k] = (now, s)
    return bad


def judge(folder: str | Path, *, max_steps: int = 8_000_000) -> HistoryCheck:
    """Every process's recorded store calls, less the refused read-side commits, checked: fail unless linearizable."""
    hist = Path(folder) / "hist"
    dropped: set[tuple[str, int]] = set()
    for path in hist.glob("*.drops"):
        for t in path.read_text().splitlines():
            if t.strip():
                d = json.loads(t)
                dropped.add((d["process"], d["index"]))
    kept = Path(folder) / "judged"
    kept.mkdir(exist_ok=True)
    for path in sorted(hist.glob("*.jsonl")):
        lines = [t for t in path.read_text().splitlines() if t.strip()]
        (kept / path.name).write_text("".join(
            t + "\n" for t in lines if (lambda o: (o["process"], o["index"]))(json.loads(t)) not in dropped))
    history: list[Operation] = load_history(sorted(kept.glob("*.jsonl")))
    result = check_history(history, max_steps=max_steps)
    assert result.verdict is HistoryVerdict.LINEARIZABLE, result.report()
    return result


@dataclass(frozen=True, slots=True)
class _Move:
    process: str
    expected: int
    cursor: int
    owner: str
    invoke: int
    returned: int | None
    ok: bool | None


def check_cursors(folder: str | Path, final: dict[tuple[str, int], int]) -> tuple[int, int, int]:
    """Every partition's cursor history is one chain of compare-and-swaps from 0 to its ``final`` cursor.

    A cursor is a register moved only by `Advance` (expected -> cursor). Every
    acknowledged one must lie on the chain, once; a refused one must not; one
    cut short (its process killed or cancelled) may or may not. Along the
    chain each move was in flight no earlier than the one before it returned
    (real time), and the cursor only goes up. Returns (moves on the chains,
    pending ones among them).
    """
    moves: dict[tuple[str, int], list[_Move]] = {}
    for path in sorted((Path(folder) / "calls").glob("*.jsonl")):
        last: dict[int, dict[str, Any]] = {}
        for t in path.read_text().splitlines():
            if t.strip():
                line = json.loads(t)
                if "advances" in line:
                    last[line["n"]] = line
        for line in last.values():
            for c, p, expected, cursor, owner in line["advances"]:
                moves.setdefault((c, p), []).append(
                    _Move(path.stem, expected, cursor, owner, line["invoke"], line["return"], line["ok"]))
    on_chain = pending = 0
    cut = sum(1 for ms in moves.values() for m in ms if m.ok is None)
    for where, end in final.items():
        chain = _chain(moves.get(where, []), 0, end)
        assert chain is not None, f"{where}: no chain of advances from 0 to {end}: " + repr(
            sorted((m.expected, m.cursor, m.ok, m.process) for m in moves.get(where, []))[:40])
        on_chain += len(chain)
        pending += sum(1 for m in chain if m.ok is None)
    return on_chain, cut, pending


def _chain(moves: list[_Move], at: int, end: int) -> list[_Move] | None:
    """The moves from cursor ``at`` to ``end``, every acknowledged one used once, or None: a search that
    backtracks only over moves cut short (an acknowledged move from the cursor reached must come next)."""
    stack: list[tuple[int, list[_Move], list[_Move]]] = [(at, [], moves)]  # (cursor, chain so far, moves left)
    while stack:
        at, chain, left = stack.pop()
        if at == end and not any(m.ok for m in left):
            return chain
        here = [m for m in left if m.expected == at and m.ok is not False and m.cursor > at]
        sure = [m for m in here if m.ok]
        if len(sure) > 1:
            continue  # two acknowledged compare-and-swaps from one cursor: not this way
        before = chain[-1] if chain else None
        for m in reversed(sure or here):
            if before is not None and m.returned is not None and m.returned < before.invoke:
                continue  # it returned before the move it would follow was invoked
            stack.append((m.cursor, [*chain, m], [x for x in left if x is not m]))
    return None


def refused_commits(folder: str | Path, process: str) -> dict[str, int]:
    """How ``process``'s recorded commits were refused, by error code (the dropped ones as ``lease_lost/conflict``)."""
    out: dict[str, int] = {}
    for op in load_history([Path(folder) / "hist" / f"{process}.jsonl"]):
        if op.result is not None and op.result.error is not None:
            out[op.result.error] = out.get(op.result.error, 0) + 1
    return out


def dropped_count(folder: str | Path) -> int:
    return sum(len([t for t in p.read_text().splitlines() if t.strip()])
               for p in (Path(folder) / "hist").glob("*.drops"))


def errors(folder: str | Path) -> list[str]:
    where = Path(folder) / "errors"
    return [p.read_text() for p in sorted(where.glob("*"))] if where.exists() else []

