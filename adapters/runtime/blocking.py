"""The synchronous face of the shell: a `Portal` (one event loop in a thread), `SyncDriver` and `SyncDispatcher`.

Theory of operation
-------------------
Flask, Django and scripts call functions; the store and the `Driver` are
coroutines. A `Portal` owns one event loop running in a daemon thread, started
when it opens and stopped when it closes (it is a context manager). Every
blocking call hands a coroutine to that loop with
`asyncio.run_coroutine_threadsafe` and waits for its result, so the store's
connection, its `asyncio.Lock` and its write tasks all live on one loop however
many threads call in. `SyncDriver` opens a store inside a portal and wraps a
`Driver`: the same methods, the same signatures and return types, minus
``await``. Calls of one `SyncDriver` on the same key are taken one at a time
(a lock per key, in the loop), so the threads of one WSGI process queue
instead of racing each other into `Conflict`; other keys go concurrently, and
the store serialises its own writes. `SyncDispatcher` runs the `Dispatcher`
in the same portal -- one pass at a time (`run_once`) or in the background
(`start` / `stop`) -- and calls plain handlers in worker threads, so they may
block and may use the `SyncDriver` without holding up the loop.

What a caller can rely on -- errors keep their type, a timeout or Ctrl-C
cancels the call and waits for it to wind down, a call from the loop's own
thread or after close or after a fork is a typed error -- is the portal's,
and `portal` says it in full.

>>> from statewright.adapters.runtime.store import Catalog
>>> from statewright.machines.input import INPUT, Queue, Stage, authorize_seed
>>> with SyncDriver.memory(Catalog({"input": INPUT}, {"input": authorize_seed})) as d:
...     _ = d.create("in1", "input")
...     _ = d.feed("in1", Queue())
...     fed = d.feed("in1", Stage("r1"))
...     fed.record.state.phase.name, fed.record.version, [e.kind for e in d.read_log("in1")]
('STAGED', 3, ['created', 'input', 'effect', 'input', 'effect'])
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from statewright.adapters.runtime.dispatch import Delivery, Dispatcher, Handler, OnReject, Retry, Router
from statewright.adapters.runtime.driver import (
    ActedAccepted,
    ActedBlocked,
    Driver,
    FedAccepted,
    FedRejected,
)
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.portal import (
    Portal,
    PortalClosed,
    PortalError,
    PortalForked,
    PortalThread,
    PortalTimeout,
)
from statewright.adapters.runtime.readside import Consumer, DeadLettered, ReadStore, Start
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import KEEP_BATCHES, Catalog, Event, Record, Store
from statewright.kernel.step import UNSET
from statewright.kernel.system import Action, System

__all__ = [
    "Portal", "PortalClosed", "PortalError", "PortalForked", "PortalThread", "PortalTimeout", "SyncDispatcher",
    "SyncDriver",
]

T = TypeVar("T")
E = TypeVar("E")


class _KeyLocks:
    """One `asyncio.Lock` per key, dropped when nobody holds or waits for it; used in the loop only."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def holding(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``keys``, taken in sorted order (so two calls over shared keys cannot deadlock)."""
        ordered = sorted(set(keys))
        for key in ordered:
            lock, users = self._locks.get(key, (None, 0))
            self._locks[key] = (lock or asyncio.Lock(), users + 1)
        taken: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks[key][0]
                await lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in taken:
                lock.release()
            for key in ordered:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class SyncDriver:
    """A `Driver` with blocking methods, over a store opened inside its own `Portal`; a context manager.

    Open one with `SyncDriver.sqlite`, `SyncDriver.postgres`, `SyncDriver.memory`
    or `SyncDriver.open` (any async store factory); it owns the portal and the
    store, and `close` closes both. One per process (after any fork), shared
    by its threads. ``timeout`` is the default of every call's ``timeout``
    (None: no limit); ``retries`` and ``backoff`` are the `Driver`'s.
    """

    def __init__(self, portal: Portal, driver: Driver, *, timeout: float | None = None) -> None:
        """Use the constructors; this wraps a driver whose store lives in ``portal`` (which it then owns)."""
        self.portal = portal
        self.driver = driver
        self.timeout = timeout
        self._locks = _KeyLocks()
        self._dispatchers: list[SyncDispatcher] = []  # stopped, gracefully, before the store closes

    @classmethod
    def open(
        cls, opener: Callable[[], Awaitable[Store]], catalog: Catalog | None = None, *, retries: int = 5,
        backoff: float = 0.005, timeout: float | None = None, grace: float = 30.0,
    ) -> SyncDriver:
        """Start a portal and open a store in it by awaiting ``opener()``; the store's error is raised as it is."""
        portal = Portal(grace=grace).open()
        try:
            store = portal.call(_opened(opener), timeout=timeout)
            try:
                driver = Driver(store, catalog, retries=retries, backoff=backoff)
            except BaseException:
                portal.call(store.close())
                raise
        except BaseException:
            portal.close()
            raise
        return cls(portal, driver, timeout=timeout)

    @classmethod
    def sqlite(
        cls, path: str | Path, catalog: Catalog, *, busy_timeout: float = 5.0, keep_batches: float = KEEP_BATCHES,
        retries: int = 5, backoff: float = 0.005, timeout: float | None = None, grace: float = 30.0,
    ) -> SyncDriver:
        """A driver over `SqliteStore.open` ``(path, catalog, ...)``, which creates the file if needed."""
        return cls.open(lambda: SqliteStore.open(path, catalog, busy_timeout=busy_timeout, keep_batches=keep_batches),
                        retries=retries, backoff=backoff, timeout=timeout, grace=grace)

    @classmethod
    def postgres(
        cls, dsn: str, catalog: Catalog, *, busy_timeout: float = 5.0, schema: str | None = None,
        keep_batches: float = KEEP_BATCHES, retries: int = 5, backoff: float = 0.005, timeout: float | None = None,
        grace: float = 30.0,
    ) -> SyncDriver:
        """A driver over `PostgresStore.open` ``(dsn, catalog, ...)`` (``schema``: the store's default when None)."""
        from statewright.adapters.runtime.postgres import PostgresStore

        async def opener() -> Store:
            if schema is None:
                return await PostgresStore.open(dsn, catalog, busy_timeout=busy_timeout, keep_batches=keep_batches)
            return await PostgresStore.open(dsn, catalog, busy_timeout=busy_timeout, schema=schema,
                                            keep_batches=keep_batches)

        return cls.open(opener, retries=retries, backoff=backoff, timeout=timeout, grace=grace)

    @classmethod
    def memory(
        cls, catalog: Catalog, *, retries: int = 5, backoff: float = 0.005, timeout: float | None = None,
        grace: float = 30.0,
    ) -> SyncDriver:
        """A driver over a new, empty `MemoryStore` (for tests and scripts: it lives as long as the driver)."""

        async def opener() -> Store:
            return MemoryStore(catalog)

        return cls.open(opener, retries=retries, backoff=backoff, timeout=timeout, grace=grace)

    # -- the driver's methods, blocking -------------------------------------------

    @property
    def store(self) -> Store:
        """The store, which lives in the portal's loop: call its coroutines through `call`."""
        return self.driver.store

    @property
    def catalog(self) -> Catalog:
        return self.driver.catalog

    def create(self, key: str, machine: str, state: Any = None, *, timeout: float | None = None) -> Record:
        """`Driver.create`: a new instance at version 1; `Conflict` if ``key`` exists."""
        return self.call(self._keyed([key], lambda: self.driver.create(key, machine, state)), timeout=timeout)

    def create_all(self, system: System[Any], keys: Mapping[str, str], *,
                   timeout: float | None = None) -> dict[str, Record]:
        """`Driver.create_all`: every instance of ``system`` in one batch."""
        return self.call(self._keyed(keys.values(), lambda: self.driver.create_all(system, keys)), timeout=timeout)

    def feed(self, key: str, input: Any, *, choice: Any = UNSET, request: str | None = None,
             timeout: float | None = None) -> FedAccepted | FedRejected:
        """`Driver.feed`: step ``key``'s instance with ``input`` and commit (or record the rejection)."""
        return self.call(self._keyed([key], lambda: self.driver.feed(key, input, choice=choice, request=request)),
                         timeout=timeout)

    def feed_json(self, key: str, text: str | bytes, *, request: str | None = None,
                  timeout: float | None = None) -> FedAccepted | FedRejected:
        """`Driver.feed_json`: an input as ``{"type": ..., ...fields}`` from outside; `BadInput` if it is not one."""
        return self.call(self._keyed([key], lambda: self.driver.feed_json(key, text, request=request)), timeout=timeout)

    def act(self, system: System[Any], keys: Mapping[str, str], action: Action, *, request: str | None = None,
            timeout: float | None = None) -> ActedAccepted | ActedBlocked:
        """`Driver.act`: one atomic system action as one batch over every record it touches."""
        return self.call(self._keyed(keys.values(), lambda: self.driver.act(system, keys, action, request=request)),
                         timeout=timeout)

    def parse(self, machine: str, data: Mapping[str, Any], *, key: str | None = None) -> Any:
        """`Driver.parse`: an input of ``machine`` from JSON data (no IO: runs in the calling thread)."""
        return self.driver.parse(machine, data, key=key)

    def load(self, key: str, *, timeout: float | None = None) -> Record:
        """The instance under ``key`` (`NotFound` if none)."""
        return self.call(self.store.load(key), timeout=timeout)

    def read_log(self, key: str, start: int = 1, stop: int | None = None, *,
                 timeout: float | None = None) -> list[Event]:
        """``key``'s log from ``start`` up to (not including) ``stop``."""
        return self.call(self.store.read_log(key, start, stop), timeout=timeout)

    def keys(self, *, timeout: float | None = None) -> list[str]:
        """Every key the store holds, sorted."""
        return self.call(self.store.keys(), timeout=timeout)

    # -- the read side ----------------------------------------------------------------

    @property
    def read_store(self) -> ReadStore:
        """The store as a `readside.ReadStore` (every bundled store is one); `TypeError` for a store that is not."""
        store = self.store
        if not isinstance(store, ReadStore):
            raise TypeError(f"{type(store).__name__} has no read side (it is not a ReadStore)")
        return store

    def consumers(self, *, timeout: float | None = None) -> list[Consumer]:
        """Every registered consumer's partitions: cursor, lease owner and expiry."""
        return self.call(self.read_store.consumers(), timeout=timeout)

    def dead_letters(self, consumer: str | None = None, *, limit: int = 1000,
                     timeout: float | None = None) -> list[DeadLettered]:
        """Dead letters (of ``consumer``, or of all), oldest position first."""
        return self.call(self.read_store.dead_letters(consumer, limit=limit), timeout=timeout)

    def latest_cursor(self, *, timeout: float | None = None) -> int:
        """The last position committed (`readside.ReadStore.latest_cursor`)."""
        return self.call(self.read_store.latest_cursor(), timeout=timeout)

    def prune(self, older_than: float, *, timeout: float | None = None) -> int:
        """`readside.ReadStore.prune`: events appended before ``older_than`` that every consumer passed."""
        return self.call(self.read_store.prune(older_than), timeout=timeout)

    def clear(self, *, timeout: float | None = None) -> int:
        """`readside.ReadStore.clear`: everything but the consumers; `Unacknowledged` while one lags."""
        return self.call(self.read_store.clear(), timeout=timeout)

    def unregister(self, consumer: str, *, force: bool = False, timeout: float | None = None) -> None:
        """`readside.ReadStore.unregister`: forget ``consumer``; `Unacknowledged` if it lags, unless ``force``."""
        self.call(self.read_store.unregister(consumer, force=force), timeout=timeout)

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run any coroutine in the portal (e.g. one of the store's), with this driver's default ``timeout``."""
        return self.portal.call(coro, timeout=self.timeout if timeout is None else timeout)

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Stop its running dispatchers, close the store, then the portal. Idempotent; a forked child's closes nothing.

        A dispatcher whose run had failed re-raises its error here, after the
        store and the portal are closed all the same.
        """
        if self.portal.is_open:
            try:
                for dispatcher in list(self._dispatchers):
                    dispatcher.stop(timeout=self.portal.grace)
            finally:
                try:
                    self.portal.call(self.store.close(), timeout=self.portal.grace)
                finally:
                    self.portal.close()
        else:
            self.portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def _keyed(self, keys: Iterable[str], call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Await ``call()`` holding the locks of ``keys``: one call at a time per key in this process.

        The driver's coroutine is made here, in the loop, so a call refused or
        cancelled before it starts leaves no coroutine that was never awaited.
        """
        async with self._locks.holding(keys):
            return await call()


class SyncDispatcher:
    """A `Dispatcher` for a `SyncDriver`'s store, run in the driver's portal: `run_once`, or `start` and `stop`.

    Handlers may be plain functions: each call of one runs in a worker thread
    (``asyncio.to_thread``), so it may block -- an ORM, an HTTP call -- and may
    use the `SyncDriver`, without holding up the loop every other call goes
    through. Async handlers run in the loop and must ``await`` the async API
    instead. A route's ``to`` runs in the loop: keep it a pure mapping. The
    options are the `Dispatcher`'s; routes feed through the driver's `Driver`.
    Register every handler and route before `start`.
    """

    def __init__(
        self, driver: SyncDriver, consumer: str, *, partitions: int = 1, start: Start = "earliest",
        owner: str | None = None, lease: float = 30.0, window: int = 500, max_partitions: int | None = None,
        retry: Retry = Retry(), poll: float = 1.0, timeout: float | None = None,
    ) -> None:
        store = driver.store
        if not isinstance(store, ReadStore):
            raise TypeError(f"{type(store).__name__} has no read side (it is not a ReadStore): nothing to dispatch")
        self.sync_driver = driver
        self.portal = driver.portal
        self.timeout = driver.timeout if timeout is None else timeout
        self.dispatcher = Dispatcher(store, consumer, driver=driver.driver, partitions=partitions, start=start,
                                     owner=owner, lease=lease, window=window, max_partitions=max_partitions,
                                     retry=retry, poll=poll)
        self._running: concurrent.futures.Future[None] | None = None
        driver._dispatchers.append(self)  # stopped (its leases released) before the store closes

    @property
    def consumer(self) -> str:
        return self.dispatcher.consumer

    def handle(self, effect: type[E], handler: Handler[E]) -> None:
        """`Dispatcher.handle`: a plain handler is called in a worker thread (class doc), an async one in the loop."""
        self.dispatcher.handle(effect, handler if _is_async(handler) else _InThread(handler))

    def route(self, effect: type[E], to: Router[E], *, on_reject: OnReject = "record") -> None:
        """`Dispatcher.route`: feed each such effect to the instance ``to`` names, exactly once."""
        self.dispatcher.route(effect, to, on_reject=on_reject)

    def follow(self, system: System[Any], keys: Mapping[str, str], *, on_reject: OnReject = "record") -> None:
        """`Dispatcher.follow`: ``system``'s routes between instances stored under separate ``keys``."""
        self.dispatcher.follow(system, keys, on_reject=on_reject)

    def run_once(self, *, timeout: float | None = None) -> int:
        """One pass over everything committed now; how many effects were handled or dead-lettered."""
        return self.portal.call(self.dispatcher.run_once(), timeout=self.timeout if timeout is None else timeout)

    def start(self) -> None:
        """Run `Dispatcher.run` as a background task in the portal until `stop` (once per dispatcher)."""
        if self._running is not None:
            raise RuntimeError(f"{self.consumer}: this dispatcher was started already; make a new one to run again")
        self._running = self.portal.spawn(self.dispatcher.run())

    @property
    def running(self) -> bool:
        """True from `start` until the run returns (after `stop`) or fails."""
        return self._running is not None and not self._running.done()

    def stop(self, *, timeout: float | None = None) -> None:
        """Stop gracefully: the handlers in flight finish, the cursors advance, the leases are released.

        Returns once the run has returned; re-raises the error it failed with,
        if it failed. Never started (a script calling `run_once`): releases the
        leases its passes took, so the next run of the script need not wait
        for them to run out. The `SyncDriver`'s `close` stops it too.
        """
        running = self._running
        if self in self.sync_driver._dispatchers:
            self.sync_driver._dispatchers.remove(self)
        if running is None:
            if self.portal.is_open:
                self.portal.call(self.dispatcher.release(), timeout=self.timeout if timeout is None else timeout)
            return
        if not running.done():
            self.portal.call(self._stopped(running), timeout=self.timeout if timeout is None else timeout)
        if not running.cancelled():
            running.result()

    def dead_letters(self, *, limit: int = 1000, timeout: float | None = None) -> list[DeadLettered]:
        """This consumer's dead letters, oldest first."""
        store = self.dispatcher.store
        return self.portal.call(store.dead_letters(self.consumer, limit=limit),
                                timeout=self.timeout if timeout is None else timeout)

    def consumers(self, *, timeout: float | None = None) -> list[Consumer]:
        """This consumer's partitions: cursor, lease owner and expiry (the store's `consumers`, filtered)."""
        rows = self.portal.call(self.dispatcher.store.consumers(), timeout=self.timeout if timeout is None else timeout)
        return [row for row in rows if row.name == self.consumer]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _stopped(self, running: concurrent.futures.Future[None]) -> None:
        self.dispatcher.stop()  # in the loop: it sets the run's asyncio.Event
        await asyncio.wait([asyncio.wrap_future(running)])


class _InThread:
    """A plain handler, called in a worker thread so that it may block without holding up the portal's loop.

    It carries the handler's ``__qualname__`` and ``__code__``, which is what
    the dispatcher names a handler by, and where it finds the line a failure
    was raised at, in dead letters and errors.
    """

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler
        self.__qualname__ = getattr(handler, "__qualname__", None) or type(handler).__name__
        code = getattr(handler, "__code__", None)
        if code is not None:
            self.__code__ = code

    async def __call__(self, effect: Any, delivery: Delivery) -> Any:
        return await asyncio.to_thread(self.handler, effect, delivery)


def _is_async(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None))


async def _opened(opener: Callable[[], Awaitable[Store]]) -> Store:
    return await opener()
