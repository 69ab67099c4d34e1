"""The read side of the store port: one global, gap-free log over all keys, and its consumers.

Every event a store appends (`store.Event`) also takes a *position*: 1, 2,
3, ... over all keys together, in commit order, with no gaps and never
reused (not after `ReadStore.prune` nor `ReadStore.clear`). A reader that
has seen position ``p`` has seen every position below it, and a position is
never handed out to a batch that then rolls back. That is what makes a
cursor -- one integer -- enough to say "everything up to here is handled".

The classic outbox gap
----------------------
A reader passes position 11 while 10 is still uncommitted, moves its cursor
to 11, and never sees 10. It cannot happen here, because positions are taken
under a lock that is held until the batch commits, so the batches that take
positions commit one after another, in position order:

* memory: under the store's lock, published with the batch;
* SQLite: under the write lock (``BEGIN IMMEDIATE``), from a counter row in the
  same transaction -- one writer at a time is SQLite's own rule;
* PostgreSQL: from a counter row updated as the batch's *last* statement
  before ``COMMIT``; the row lock serialises only that tail of the
  transaction, and a batch rolled back rolls its counter update back with it.

A store is asked for the gap-free prefix only: `ReadStore.latest_cursor` is
the last position committed, and every position at or below it is readable.

Consumers
---------
A *consumer* is a name (``"mailer"``) with one cursor per *partition*: the
keys are spread over ``partitions`` by `partition_of`, so several dispatcher
processes can share a consumer's work -- each holds a lease on some
partitions -- while one key's events always go to one partition, in order.
A cursor moves only by the `Advance` operation, a compare-and-swap on the
cursor that a lease holder commits, in the same batch as whatever a handler
wants written (which is how a handler that writes to the same store applies
each effect exactly once). An effect that keeps failing is recorded with a
`DeadLetter` operation. `ReadStore.prune` and `ReadStore.clear` never drop an
event some registered consumer's cursor has not passed.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from statewright.adapters.runtime.errors import BadOption, LeaseLost, Unacknowledged
from statewright.adapters.runtime.store import DEFAULT_LIMITS, Advance, DeadLetter, Event, Limits, RequestStore, check_name

__all__ = [
    "Advance",
    "BUCKETS",
    "Consumer",
    "DeadLetter",
    "DeadLettered",
    "LeaseLost",
    "ReadStore",
    "Start",
    "Unacknowledged",
    "Wakeup",
    "bucket_of",
    "check_range",
    "check_read",
    "check_register",
    "check_ttl",
    "follow",
    "horizon",
    "partition_of",
    "refuse_lagging",
    "wait_for_commit",
]

BUCKETS = 4096
"""Keys are hashed into this many buckets (`bucket_of`), stored with each event; a partition is a set of buckets."""

Start = Literal["earliest", "latest"]


def bucket_of(key: str) -> int:
    """The bucket of ``key``: CRC-32 of its UTF-8 bytes modulo `BUCKETS`, the same in every process and release.

    >>> bucket_of("order-1"), bucket_of("order-1") == bucket_of("order-1")
    (4079, True)
    """
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % BUCKETS


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``: its bucket modulo ``partitions``.

    >>> [partition_of(k, 4) for k in ("order-1", "order-2", "order-3")]
    [3, 1, 3]
    """
    return bucket_of(key) % partitions


@dataclass(frozen=True, slots=True)
class Consumer:
    """One partition of a named consumer: its cursor and who holds its lease until when.

    ``cursor`` is the last position this partition has handled (0: none);
    ``owner`` and ``until`` (seconds by the store's clock) name the current
    lease, ``owner`` is None when nobody holds one.
    """

    name: str
    partition: int
    partitions: int
    cursor: int
    owner: str | None = None
    until: float = 0.0


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """A dead letter as read back (`ReadStore.dead_letters`); ``at`` is when it was recorded."""

    consumer: str
    partition: int
    position: int
    key: str
    seq: int
    kind: str
    data: Any
    code: str
    error: str
    attempts: int
    at: float


@runtime_checkable
class ReadStore(RequestStore, Protocol):
    """A `store.Store` with the read side: global positions, consumers, leases and dead letters.

    `Store.commit` takes `Advance` and `DeadLetter` beside `store.Cas` and the
    appends, all in one transaction.
    """

    async def read(self, after: int = 0, *, limit: int = 1000, partition: tuple[int, int] | None = None,
                   kinds: Sequence[str] | None = None) -> list[Event]:
        """Events at positions above ``after``, in position order, at most ``limit``, each with its ``position``.

        ``partition=(p, n)`` keeps the events of keys in partition ``p`` of ``n``
        (`partition_of`); ``kinds`` keeps those kinds. Only committed events, and
        only a gap-free prefix: everything at or below the last position returned
        has been returned, filtered out or pruned. When fewer than ``limit`` come
        back, the same holds up to a `latest_cursor` read *before* this call --
        which is how a reader whose filter keeps nothing still moves its cursor
        on (`horizon`). ``after`` is an int >= 0 and ``limit`` an int >= 1
        (`store.BadOption` otherwise).
        """
        ...

    async def latest_cursor(self) -> int:
        """The last position committed (0 when nothing was ever appended); never goes back, not even after `clear`."""
        ...

    async def replay_all(self) -> list[Event]:
        """Every event still stored, in position order."""
        ...

    async def read_range(self, key: str, start: int, end: int | None = None) -> list[Event]:
        """``key``'s events with ``start <= seq <= end`` (both inclusive, the source's bounds; ``end=None``: to the head)."""
        ...

    async def wait(self, after: int, timeout: float) -> int:
        """Return `latest_cursor` as soon as it is above ``after``, or whatever it is after ``timeout`` seconds.

        Wakes at once for a commit through this store object; for commits by
        other connections or processes, PostgreSQL wakes on ``NOTIFY`` and
        SQLite polls (every ``poll`` seconds the store was opened with).
        """
        ...

    def subscribe(self, after: int = 0, *, limit: int = 1000) -> AsyncIterator[Event]:
        """Every event above ``after`` as it commits, forever (until the iterator is closed or cancelled)."""
        ...

    async def prune(self, older_than: float) -> int:
        """Delete events appended before ``older_than`` (the store clock's seconds); return how many.

        Never deletes an event a registered consumer's cursor has not passed, nor
        the last event of a key (it holds the log's head and its terminal mark,
        which every later append is checked against).
        """
        ...

    async def clear(self) -> int:
        """Delete every instance, event, batch id and dead letter; return the number of events deleted.

        Raises `Unacknowledged` (deleting nothing) when a registered consumer's
        cursor is below `latest_cursor`. Consumers stay, and positions go on
        from where they were, so their cursors stay valid.
        """
        ...

    async def register(self, consumer: str, *, partitions: int = 1, start: Start = "earliest") -> list[Consumer]:
        """Register ``consumer`` with ``partitions`` cursors at 0 (``earliest``) or `latest_cursor` (``latest``).

        Registering again with the same number of partitions returns the existing
        cursors unchanged; with another number it is `store.BadOption`.
        """
        ...

    async def unregister(self, consumer: str, *, force: bool = False) -> None:
        """Forget ``consumer`` and its dead letters; `Unacknowledged` if it lags, unless ``force``."""
        ...

    async def consumers(self) -> list[Consumer]:
        """Every registered consumer's partitions, by name then partition."""
        ...

    async def lease(self, consumer: str, partition: int, owner: str, ttl: float) -> Consumer | None:
        """Take or renew the lease of one partition for ``ttl`` seconds; None while another owner holds it.

        A lease whose ``until`` has passed (by the store's clock) is free to take.
        `NotFound` for a consumer or partition never registered.
        """
        ...

    async def release(self, consumer: str, partition: int, owner: str) -> None:
        """Give the lease up, if ``owner`` holds it (otherwise nothing happens)."""
        ...

    async def dead_letters(self, consumer: str | None = None, *, limit: int = 1000) -> list[DeadLettered]:
        """Dead letters (of ``consumer``, or of all), oldest position first."""
        ...


# -- what every backend shares --------------------------------------------------------


def check_read(after: Any, limit: Any, partition: Any = None, kinds: Any = None) -> None:
    """`BadOption` unless `ReadStore.read`'s arguments are ones every backend answers alike."""
    if type(after) is not int or after < 0:
        raise BadOption(f"after must be an int >= 0, got {after!r}")
    if type(limit) is not int or limit < 1:
        raise BadOption(f"limit must be an int >= 1, got {limit!r}")
    if partition is not None:
        ok = isinstance(partition, tuple) and len(partition) == 2 and all(type(x) is int for x in partition)
        if not (ok and 0 <= partition[0] < partition[1]):
            raise BadOption(f"partition must be (p, n) with 0 <= p < n, got {partition!r}")
    if kinds is not None and (isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds)):
        raise BadOption(f"kinds must be a sequence of event kinds, got {kinds!r}")


def check_range(start: Any, end: Any) -> None:
    """`BadOption` unless `ReadStore.read_range`'s bounds are ints (``end`` may be None)."""
    if type(start) is not int or not (end is None or type(end) is int):
        raise BadOption(f"read_range takes int bounds, got {start!r} and {end!r}")


MAX_PARTITIONS = BUCKETS
"""The most partitions a consumer may have: one per bucket."""


def check_register(consumer: Any, partitions: Any, start: Any, *, limits: Limits = DEFAULT_LIMITS) -> None:
    """`BadOption` unless `ReadStore.register` can honour ``partitions`` and ``start``; `InvalidState` for a bad name."""
    check_name(consumer, "a consumer name", limits=limits)
    if type(partitions) is not int or not 1 <= partitions <= MAX_PARTITIONS:
        raise BadOption(f"partitions must be an int from 1 to {MAX_PARTITIONS}, got {partitions!r}")
    if start not in ("earliest", "latest"):
        raise BadOption(f"start must be 'earliest' or 'latest', got {start!r}")


def check_ttl(ttl: Any) -> None:
    """`BadOption` unless ``ttl`` is a lease's length a store can keep: more than 0 seconds, under ~31 years."""
    if not (isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and 0 < ttl < 1e9):
        raise BadOption(f"a lease's ttl must be a positive number of seconds, got {ttl!r}")


def refuse_lagging(cursors: Sequence[tuple[str, int, int]], last: int, what: str) -> None:
    """`Unacknowledged` when one of ``cursors`` -- (consumer, partition, cursor) -- is below ``last``."""
    lagging = sorted(c for c in cursors if c[2] < last)
    if lagging:
        name, p, cursor = lagging[0]
        raise Unacknowledged(f"{what} would drop events consumer {name!r} partition {p} has not passed "
                             f"(cursor {cursor} < {last}); nothing was deleted")


def horizon(after: int, latest: int, events: Sequence[Event], limit: int) -> int:
    """How far a reader has seen after ``events = await store.read(after, limit=limit, ...)``.

    ``latest`` is `ReadStore.latest_cursor` read *before* that read. A full
    page ends at its last event; a short one covers everything up to
    ``latest`` too (the rest was filtered out or pruned).

    >>> horizon(0, 7, [], 10), horizon(0, 7, [Event("k", 1, "A", {}, position=9)], 1)
    (7, 9)
    """
    last = events[-1].position if events else after
    return last if len(events) >= limit else max(after, latest, last)


class Wakeup:
    """Wakes the tasks waiting for a commit (`wait_for_commit`) as soon as this process commits.

    A backend calls `notify` after each commit that took positions; a waiter
    `arm`s a future *before* it reads the cursor, so a commit between the read
    and the wait is not missed. Futures, not one `asyncio.Event`, so a store
    may be used from one event loop after another.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def arm(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        return future

    def disarm(self, future: asyncio.Future[None]) -> None:
        self._waiters.discard(future)

    def notify(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()


async def wait_for_commit(latest: Callable[[], Awaitable[int]], wakeup: Wakeup, after: int, timeout: float,
                          poll: float | None) -> int:
    """`ReadStore.wait` for every backend: ``latest()`` once above ``after``, or after ``timeout`` seconds.

    Woken at once by ``wakeup``; with a ``poll`` interval it also reads
    ``latest()`` that often, for commits it is not told of (other processes).
    """
    deadline = time.monotonic() + max(0.0, float(timeout))
    while True:
        future = wakeup.arm()
        try:
            now = await latest()
            left = deadline - time.monotonic()
            if now > after or left <= 0:
                return now
            await asyncio.wait({future}, timeout=left if poll is None else min(left, poll))
        finally:
            wakeup.disarm(future)


async def follow(store: ReadStore, after: int, limit: int, *, idle: float = 60.0) -> AsyncIterator[Event]:
    """`ReadStore.subscribe` for every backend: `ReadStore.read` pages, and `ReadStore.wait` when caught up."""
    check_read(after, limit)
    cursor = after
    while True:
        latest = await store.latest_cursor()
        events = await store.read(cursor, limit=limit)
        for event in events:
            yield event
        cursor = horizon(cursor, latest, events, limit)
        if len(events) < limit:
            await store.wait(cursor, idle)
