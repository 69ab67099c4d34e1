"""`Pool`: executor processes sharing the runs of one store, each run driven by the holder of its partition's lease.

Theory of operation
-------------------
Runs are spread over ``partitions`` by their record's key (`readside.partition_of`),
and a pool process drives the runs of the partitions it holds a lease on --
the read side's consumers and leases, the ones the `dispatch.Dispatcher` uses,
under the consumer name ``executor``. Several processes on one machine or
many, sharing one PostgreSQL (or one SQLite file on one machine), divide the
partitions between them.

Sharing: each process also leases one *membership* slot (consumer
``executor.members``) and renews it with its partitions, so the live
processes can be counted; a process holds at most its fair share,
``ceil(partitions / members)`` (and at most ``max_partitions``). A process
that finds itself above its share -- a newcomer joined -- gives back the
excess, partitions with no run in flight first (a busy one at most once a
lease, its runs resumed by whoever takes it); one that finds fewer members
-- a process died, its leases ran out -- takes up the partitions left free.
So a second process shares the work of the first, and a survivor takes
over all of a dead one's runs.

Each partition's cursor is a *low-water mark*: every run whose record was
created above it may still be live. A holder reads the ``created`` events
above the cursor, drives every run created there (`executor.Executor.drive`,
one task per run), and moves the cursor up to just below the oldest run still
live. A run stays live until a drive of it returns, not merely until its
record's ``terminal`` event: after the run's last input the drive still
records the final snapshot and seals the fact log, and a process killed in
between leaves those to the next holder, whose drive of the ended run does
them. So a process that takes a partition over -- because its holder died
and the lease ran out after ``lease`` seconds, or let it go -- finds every
unfinished run of it and resumes each from its records: the attempt in
flight runs again unless its outcome was recorded, and every input is fed
with a request id, so nothing is applied twice (executor module doc).

Leases are renewed at half their length by the loop, not by the runs, so a
long operation keeps its partition while its process lives. A process that
finds its lease gone (it stood still past the lease: a pause, a partition
from the network) cancels the drives of that partition at once. The pool
also *fences* its executor (`executor.Executor.fence`): before an attempt's
function is called, a partition whose renewal is due is renewed there and
then, and a lost one cancels the drive instead of calling anything. What
remains is a process that stands still between that check and the call --
the reason operations with side effects carry ``ctx.idempotency_key``.

A drive that fails (the store unreachable, a plan its code no longer gives)
is logged on ``statewright.pool`` and tried again after ``retry_after``
seconds; the pool itself keeps going.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from statewright.adapters.runtime.errors import Busy, Conflict, LeaseLost, StoreError
from statewright.adapters.runtime.executor import Executor, RunReport
from statewright.adapters.runtime.readside import Consumer, ReadStore, horizon
from statewright.adapters.runtime.store import Advance

__all__ = ["Pool"]

log = logging.getLogger("statewright.pool")

_PREFIX = "runs/"
MEMBER_SLOTS = 256
"""Membership slots (partitions of ``<consumer>.members``): at most this many processes are counted."""


def _run_of(key: str, data: Any) -> str | None:
    """The run id of a run record's key (``runs/<id>``; not its fact log), else None."""
    if not key.startswith(_PREFIX) or key.endswith("/facts"):
        return None
    if isinstance(data, dict) and "machine" in data and data["machine"] != "run":
        return None
    return key[len(_PREFIX):]


@dataclass(slots=True)
class _Held:
    """A partition this process holds: its cursor, how far it has read, and its live runs (id -> created position)."""

    row: Consumer
    renew_at: float
    seen: int
    live: dict[str, int] = field(default_factory=dict)


class Pool:
    """Drives the runs of the partitions this process leases; see the module doc.

    >>> import asyncio
    >>> from statewright.adapters.runtime.artifacts import MemoryArtifacts
    >>> from statewright.adapters.runtime.executor import Executor, runs_catalog
    >>> from statewright.adapters.runtime.memory import MemoryStore
    >>> from statewright.adapters.runtime.operations import Operations
    >>> from statewright.machines.pipeline import Pipeline, Step
    >>> ops = Operations()
    >>> _ = ops.op("hello", "v1")(lambda ctx: {"said": "hello"})
    >>> async def demo():
    ...     store = MemoryStore(runs_catalog())
    ...     executor = Executor(store, MemoryArtifacts(), ops, adopt_children=False)
    ...     ids = [await executor.launch(Pipeline("greet", "v1", (Step("s", "hello", "v1"),))) for _ in range(3)]
    ...     async with Pool(executor, partitions=4) as pool:
    ...         while pool.finished < len(ids):
    ...             await pool.run_once()
    ...             await asyncio.sleep(0.01)
    ...     return sorted({(await executor.report(i)).phase.value for i in ids})
    >>> asyncio.run(demo())
    ['completed']
    """

    def __init__(
        self,
        executor: Executor,
        *,
        consumer: str = "executor",
        partitions: int = 16,
        lease: float = 10.0,
        owner: str | None = None,
        max_partitions: int | None = None,
        poll: float = 0.5,
        retry_after: float = 1.0,
        window: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if lease <= 0 or poll <= 0 or retry_after < 0:
            raise ValueError("lease and poll must be positive, retry_after not negative")
        if max_partitions is not None and not 1 <= max_partitions <= partitions:
            raise ValueError(f"max_partitions must be between 1 and partitions ({partitions}), got {max_partitions}")
        if not hasattr(executor.store, "lease"):
            raise TypeError("a pool needs a store with a read side (memory, SQLite or PostgreSQL)")
        if executor.adopt_children:
            raise ValueError("a pool's executor must not adopt child runs (Executor(..., adopt_children=False)): "
                             "the holder of a child's partition drives it")
        self.executor = executor
        executor.fence = self._fence
        self.store: ReadStore = executor.store  # type: ignore[assignment]
        self.consumer = consumer
        self.partitions = partitions
        self.lease = lease
        self.owner = owner if owner is not None else f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        self.max_partitions = partitions if max_partitions is None else max_partitions
        self.poll = poll
        self.retry_after = retry_after
        self.window = window
        self._held: dict[int, _Held] = {}
        self._tasks: dict[str, asyncio.Task[RunReport]] = {}
        self._resting: dict[str, float] = {}  # run id -> loop time before which a failed drive is not retried
        self._registered = False
        self._clock = clock  # the stores' clock, which dates their leases (`Consumer.until`)
        self._slot: int | None = None  # this process's membership slot
        self._slot_renew_at = 0.0
        self._share = self.max_partitions
        self._share_at = -math.inf  # loop time of the last count of members
        self._shed_at = -math.inf  # loop time a busy partition was last given back
        self._stop = asyncio.Event()
        self._wake: asyncio.Event | None = None
        self.finished = 0
        """Runs this process drove to their end."""

    @property
    def held(self) -> tuple[int, ...]:
        """The partitions this process holds now."""
        return tuple(sorted(self._held))

    @property
    def driving(self) -> tuple[str, ...]:
        """The runs this process is driving now."""
        return tuple(sorted(self._tasks))

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop`: take and renew leases, drive the live runs, wait for commits. Releases on the way out."""
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                except (Busy, StoreError) as exc:
                    log.warning("%s: %s: %s; trying again", self.owner, type(exc).__name__, exc)
                await self._nap()
        finally:
            await self.release()

    def stop(self) -> None:
        """Ask `run` to return; the drives in flight are cancelled and resumed by the next holder."""
        self._stop.set()

    async def run_once(self) -> int:
        """One pass: renew or take leases, read what was created and ended, start a drive per live run; runs driven."""
        if not self._registered:
            await self.store.register(self.consumer, partitions=self.partitions, start="earliest")
            await self.store.register(self.members, partitions=MEMBER_SLOTS, start="latest")
            self._registered = True
        clock = asyncio.get_running_loop().time
        await self._membership()
        await self._shed()
        order = [*sorted(self._held), *(p for p in range(self.partitions) if p not in self._held)]
        for p in order:
            held = self._held.get(p)
            if held is None and len(self._held) >= self._share:
                continue
            if held is not None and clock() < held.renew_at:
                continue
            taken = clock()
            row = await self.store.lease(self.consumer, p, self.owner, self.lease)
            if row is None or (held is not None and row.cursor != held.row.cursor):
                if held is not None:
                    self._lose(p, "the lease ran out and another process took the partition")
                continue
            if held is None:
                held = self._held[p] = _Held(row, taken + self.lease / 2, row.cursor)
                log.info("%s: took partition %d at cursor %d", self.owner, p, row.cursor)
            else:
                held.row, held.renew_at = row, taken + self.lease / 2
        for p, held in list(self._held.items()):
            try:
                await self._discover(held)
                await self._advance(held)
            except (Conflict, LeaseLost):
                self._lose(p, "the cursor moved under this process")
        self._start_drives()
        return len(self._tasks)

    @property
    def members(self) -> str:
        """The consumer whose leased slots count the live processes of this pool."""
        return f"{self.consumer}.members"

    async def _membership(self) -> None:
        """Hold a membership slot, and count the live members (at most every quarter lease): the fair share."""
        clock = asyncio.get_running_loop().time
        if self._slot is None or clock() >= self._slot_renew_at:
            taken = clock()
            slots = [self._slot] if self._slot is not None else []
            for slot in [*slots, *(n for n in range(MEMBER_SLOTS) if n != self._slot)]:
                if await self.store.lease(self.members, slot, self.owner, self.lease) is not None:
                    self._slot, self._slot_renew_at = slot, taken + self.lease / 2
                    break
            else:
                self._slot = None  # every slot taken: counted as one more below
        if clock() < self._share_at + self.lease / 4:
            return
        self._share_at = clock()
        now = self._clock()
        live = {r.owner for r in await self.store.consumers()
                if r.name == self.members and r.owner is not None and r.until > now}
        count = len(live | {self.owner})
        share = min(self.max_partitions, math.ceil(self.partitions / count))
        if share != self._share:
            log.info("%s: %d live process(es): holding at most %d of %d partitions", self.owner, count, share,
                     self.partitions)
        self._share = share

    async def _shed(self) -> None:
        """Give back the partitions above the fair share: idle ones first, a busy one at most once a lease."""
        excess = len(self._held) - self._share
        if excess <= 0:
            return
        def busy(p: int) -> int:
            return sum(1 for r in self._held[p].live if r in self._tasks)
        now = asyncio.get_running_loop().time()
        for p in sorted(self._held, key=lambda p: (busy(p), -p))[:excess]:
            if busy(p):
                if now < self._shed_at + self.lease:
                    break
                self._shed_at = now
            self._lose(p, f"above this process's share of {self._share}")
            try:
                await self.store.release(self.consumer, p, self.owner)
            except StoreError:
                pass  # it expires by itself

    async def _discover(self, held: _Held) -> None:
        """Read the partition's created events above what this process has seen; add their runs to the live ones."""
        while True:
            latest = await self.store.latest_cursor()
            events = await self.store.read(held.seen, limit=self.window, partition=(held.row.partition, self.partitions),
                                           kinds=("created",))
            for e in events:
                run_id = _run_of(e.key, e.data)
                if run_id is not None:
                    held.live[run_id] = e.position
            held.seen = horizon(held.seen, latest, events, self.window)
            if len(events) < self.window:
                return

    async def _advance(self, held: _Held) -> None:
        """Move the cursor up to just below the oldest live run (or to what was seen, when none is live)."""
        target = min(held.live.values()) - 1 if held.live else held.seen
        if target <= held.row.cursor:
            return
        await self.store.commit([Advance(self.consumer, held.row.partition, held.row.cursor, target, self.owner)])
        held.row = dataclasses.replace(held.row, cursor=target)

    def _start_drives(self) -> None:
        now = asyncio.get_running_loop().time()
        for held in self._held.values():
            for run_id in held.live:
                if run_id in self._tasks or self._resting.get(run_id, 0.0) > now:
                    continue
                task = asyncio.ensure_future(self.executor.drive(run_id))
                self._tasks[run_id] = task
                task.add_done_callback(functools.partial(self._done, run_id))

    def _done(self, run_id: str, task: asyncio.Task[RunReport]) -> None:
        if self._tasks.get(run_id) is task:
            del self._tasks[run_id]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.finished += 1
            for held in self._held.values():
                held.live.pop(run_id, None)  # ended, final snapshot recorded, facts sealed: the cursor may move now
            self._stop_waiting()
            return
        log.error("%s: driving run %r failed: %s: %s; trying again in %.1f s", self.owner, run_id,
                  type(exc).__name__, exc, self.retry_after)
        self._resting[run_id] = asyncio.get_running_loop().time() + self.retry_after

    async def _fence(self, run_id: str) -> None:
        """Before an attempt's function is called: hold the run's partition now, or cancel the drive."""
        partition = next((p for p, h in self._held.items() if run_id in h.live), None)
        if partition is None:
            raise asyncio.CancelledError(f"{self.owner}: run {run_id!r} is in no partition this process holds")
        held = self._held[partition]
        if asyncio.get_running_loop().time() < held.renew_at:
            return
        taken = asyncio.get_running_loop().time()
        row = await self.store.lease(self.consumer, partition, self.owner, self.lease)
        if row is None or self._held.get(partition) is not held:
            self._lose(partition, "the lease ran out and another process took the partition")
            raise asyncio.CancelledError(f"{self.owner}: lost partition {partition} before calling {run_id!r}")
        held.renew_at = taken + self.lease / 2  # the cursor is the loop's to compare and move

    def _lose(self, partition: int, why: str) -> None:
        held = self._held.pop(partition, None)
        if held is None:
            return
        log.warning("%s: lost partition %d (%s); stopping its %d run(s)", self.owner, partition, why,
                    sum(1 for r in held.live if r in self._tasks))
        for run_id in held.live:
            task = self._tasks.pop(run_id, None)
            if task is not None:
                task.cancel()

    # -- waiting and leaving -------------------------------------------------------------------

    async def _nap(self) -> None:
        """Wait for a commit, the next renewal, a drive ending, or ``poll`` seconds -- whichever comes first."""
        clock = asyncio.get_running_loop().time
        due = min((h.renew_at for h in self._held.values()), default=clock() + self.poll)
        if self._slot is not None:
            due = min(due, self._slot_renew_at)
        timeout = max(0.001, min(self.poll, due - clock()))
        self._wake = asyncio.Event()
        seen = max((h.seen for h in self._held.values()), default=0)
        waiter = asyncio.ensure_future(self.store.wait(seen, timeout))
        woken = asyncio.ensure_future(self._wake.wait())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({waiter, woken, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, woken, stopped):
                t.cancel()
            await asyncio.gather(waiter, woken, stopped, return_exceptions=True)

    def _stop_waiting(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def release(self) -> None:
        """Cancel the drives in flight and give up every lease, so another process need not wait for expiry."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        leases = [(self.consumer, p) for p in sorted(self._held)]
        if self._slot is not None:
            leases.append((self.members, self._slot))
        for consumer, p in leases:
            try:
                await asyncio.shield(self.store.release(consumer, p, self.owner))
            except StoreError:
                pass  # it expires by itself
        self._held.clear()
        self._slot = None

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        await self.release()
