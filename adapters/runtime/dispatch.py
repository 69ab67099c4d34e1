"""`Dispatcher`: carries committed effects out -- to handlers, and to other instances as their inputs.

The `Driver` commits a decision and its effects together; nothing else
happens inside that batch. A dispatcher then reads the committed effects
from the store's global log (`readside.ReadStore`) and hands each to the
handler registered for its type: commit, then dispatch, as the source
runtimes do it. Whatever a handler does, the committed state stays.

Theory of operation
-------------------
A dispatcher serves one named *consumer* (``"mailer"``): the store keeps the
consumer's cursor per partition (keys are spread over ``partitions`` by
`readside.partition_of`), and a dispatcher process works on a partition only
while it holds that partition's lease. For each leased partition it reads the
committed events above the cursor (a gap-free prefix: nothing committed
later can appear below it), groups the effects by key and handles each key's
effects one after another, in log order, different keys concurrently.

* A *plain* handler (returns None) is called at least once per effect: a crash
  between the call and the cursor's advance calls it again after a restart.
  It gets a `Delivery` whose ``idempotency_key`` is the same on every
  re-delivery, in every process, for the handler's own deduplication.
* A *transactional* handler returns store operations (`store.Cas`,
  `store.Append`, ...): they are committed as one batch whose id is derived
  from (consumer, key, seq), together with the cursor's `readside.Advance`
  when the effect is next in line. A re-delivered effect whose batch had
  committed is recognised by the store and not applied again: exactly once.
* A *route* (`Dispatcher.route`) feeds an input to another instance through
  the `Driver`, with a request id derived from (consumer, key, seq): the
  driver's exactly-once requests make a re-delivery return the recorded
  outcome instead of feeding twice. A rejected delivery is recorded in the
  target's log (the driver records every rejection), and also dead-lettered
  when the route says ``on_reject="dead_letter"``.

A handler that raises is retried with backoff (`Retry`, through the injected
``sleep``); after its last attempt the effect is recorded as a dead letter
(`readside.DeadLetter`, with the error's type, message and ``file:line``) and
its key goes on. The cursor then moves (`readside.Advance`, a compare-and-swap
from the value read, refused to anyone not holding the lease) to the end of
what was read, since every effect up to there is handled or dead-lettered.

Stopping: `Dispatcher.stop` lets the handlers in flight finish, advances the
cursor and releases the leases. A cancelled or killed dispatcher loses only
what it had not yet advanced past: the effects above the durable cursor are
delivered again by the next holder of the lease (after ``lease`` seconds, when
the dead one cannot release it).

>>> import asyncio
>>> from dataclasses import dataclass
>>> from statewright.adapters.runtime.memory import MemoryStore
>>> from statewright.adapters.runtime.store import Catalog
>>> from statewright.machines.input import INPUT, InputQueued, Queue, authorize_seed
>>> async def demo() -> list[str]:
...     store = MemoryStore(Catalog({"input": INPUT}, {"input": authorize_seed}))
...     driver = Driver(store)
...     await driver.create("in1", "input")
...     await driver.feed("in1", Queue())
...     seen: list[str] = []
...     dispatcher = Dispatcher(store, "audit", driver=driver)
...     dispatcher.handle(InputQueued, lambda e, d: seen.append(f"{d.key}#{d.seq} {type(e).__name__}"))
...     await dispatcher.run_once()
...     await dispatcher.run_once()  # nothing new: the cursor moved past it
...     return seen
>>> asyncio.run(demo())
['in1#3 InputQueued']
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from statewright.adapters.runtime.driver import Driver, FedRejected
from statewright.adapters.runtime.readback import raised_at
from statewright.adapters.runtime.readside import (
    Advance,
    Consumer,
    DeadLetter,
    LeaseLost,
    ReadStore,
    Start,
    horizon,
)
from statewright.adapters.runtime.serialize import untagged
from statewright.adapters.runtime.store import (
    AlreadyApplied,
    Append,
    Busy,
    AppendTerminal,
    Cas,
    Conflict,
    Event,
    Op,
    StoreError,
    UNSTORABLE,
)
from statewright.kernel.system import System, route_targets

__all__ = [
    "BadHandler",
    "Delivery",
    "Dispatcher",
    "HandlerFailed",
    "Retry",
    "dispatch_batch",
    "route_request",
]

log = logging.getLogger("statewright.dispatch")
"""Retries (warning), dead letters (error) and idle passes (debug) are logged here."""

E = TypeVar("E")
Sleep = Callable[[float], Awaitable[Any]]
Handled = None | Sequence[Op]
Handler = Callable[[E, "Delivery"], Handled | Awaitable[Handled]]
Target = tuple[str, Any]
Router = Callable[[E, "Delivery"], Target | Sequence[Target] | None | Awaitable[Target | Sequence[Target] | None]]
OnReject = Literal["record", "dead_letter"]
OPS = (Cas, Append, AppendTerminal, Advance, DeadLetter)
"""What a transactional handler may return: the store's operations."""
EFFECT = "effect"
"""The kind of log event `Driver` writes for each effect (`driver` module doc)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where an effect came from, handed to its handler with it.

    ``idempotency_key`` is ``consumer/key/seq``: the same for every delivery
    of this effect to this consumer, in every process, so a plain handler can
    make its own side effects idempotent (an email's message id, a payment's
    idempotency key). ``index`` is the effect's place among the effects of
    the input that emitted it (0 for the first); ``attempt`` counts this
    process's tries (1, 2, ...).
    """

    consumer: str
    key: str
    seq: int
    position: int
    index: int
    attempt: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.consumer}/{self.key}/{self.seq}"


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently to retry a failing handler: ``attempts`` in all, backoff between them.

    >>> [Retry().delay(n) for n in (1, 2, 3, 4)]
    [0.1, 0.2, 0.4, 0.8]
    """

    attempts: int = 5
    first: float = 0.1
    factor: float = 2.0
    most: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Retry.attempts must be at least 1, got {self.attempts}")
        if self.first < 0 or self.most < 0 or self.factor < 1:
            raise ValueError("Retry needs first >= 0, most >= 0 and factor >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.most, self.first * self.factor ** (attempt - 1)))


class HandlerFailed(Exception):
    """A handler raised; the message names the handler, the effect and the ``file:line`` it raised at."""

    code = "handler_error"


class BadHandler(TypeError):
    """A handler or route returned something it may not: a programming error, dead-lettered without retries."""

    code = "bad_handler"


def dispatch_batch(consumer: str, key: str, seq: int) -> str:
    """The batch id a transactional handler's operations commit under: the same in every process.

    >>> dispatch_batch("mailer", "order-1", 3) == dispatch_batch("mailer", "order-1", 3)
    True
    """
    return hashlib.sha256(f"dispatch\x00{consumer}\x00{key}\x00{seq}".encode()).hexdigest()


def route_request(consumer: str, key: str, seq: int, target: int = 0) -> str:
    """The request id a routed input is fed with: derived from the effect, so re-deliveries feed once.

    >>> route_request("router", "order-1", 3)
    'route/router/order-1/3/0'
    """
    return f"route/{consumer}/{key}/{seq}/{target}"


@dataclass(slots=True)
class _Registered(Generic[E]):
    kind: type[E]
    call: Callable[..., Any]
    route: bool
    on_reject: OnReject
    adapter: TypeAdapter[E]


@dataclass(slots=True)
class _Failure:
    code: str
    error: str


@dataclass(slots=True)
class _Partition:
    """One leased partition during a pass: the cursor read, and the first position not yet done."""

    row: Consumer
    renew_at: float = 0.0  # by the loop's clock: half the lease after it was taken
    advanced_at: float = 0.0  # by the loop's clock: when this process last moved the cursor
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    horizon: int = 0  # how far this pass has seen (`readside.horizon`): the cursor may move up to here
    pending: list[int] = dataclasses.field(default_factory=list)  # effect positions not yet done, ascending
    done: int = 0  # effects of a registered type handled or dead-lettered in this pass


class Dispatcher:
    """Delivers a consumer's committed effects to handlers and routes; see the module doc.

    ``consumer`` names the durable cursor(s) this dispatcher advances: two
    dispatchers with the same name share one stream of effects, with different
    names each sees every effect. ``driver`` feeds routed inputs (`route`).
    ``partitions`` spreads keys over that many cursors (fixed once the consumer
    is registered); ``start`` is where a new consumer begins: ``"earliest"``
    (every effect still stored) or ``"latest"`` (only effects committed from now
    on). ``retry`` says how often a failing handler is tried before its effect is
    dead-lettered, ``sleep`` waits between tries (injected in tests).
    ``owner`` names this process in leases (default: host-pid-random);
    ``lease`` is how long a lease lasts without renewal, so how soon another
    process takes over from a dead one; ``window`` is how many events one pass
    reads per partition; ``max_partitions`` caps how many partitions this
    process holds (run N processes with ``partitions / N`` each to share the
    work); ``poll`` bounds how long `run` waits for a commit before looking
    again (the store wakes it sooner: `readside.ReadStore.wait`).
    """

    def __init__(
        self,
        store: ReadStore,
        consumer: str,
        *,
        driver: Driver | None = None,
        partitions: int = 1,
        start: Start = "earliest",
        owner: str | None = None,
        lease: float = 30.0,
        window: int = 500,
        max_partitions: int | None = None,
        retry: Retry = Retry(),
        poll: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if lease <= 0:
            raise ValueError(f"lease must be positive, got {lease}")
        if max_partitions is not None and not 1 <= max_partitions <= partitions:
            raise ValueError(f"max_partitions must be between 1 and partitions ({partitions}), got {max_partitions}")
        if poll <= 0:
            raise ValueError(f"poll must be positive, got {poll}")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        self.store = store
        self.consumer = consumer
        self.driver = driver
        self.partitions = partitions
        self.start = start
        self.owner = owner if owner is not None else f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease = lease
        self.window = window
        self.max_partitions = partitions if max_partitions is None else max_partitions
        self.retry = retry
        self.poll = poll
        self._sleep = sleep
        self._by_name: dict[str, _Registered[Any]] = {}
        self._registered = False
        self._stopping: asyncio.Event | None = None
        self._stop_asked = False
        self._held: set[int] = set()
        self._kept: dict[int, _Partition] = {}  # each held partition as its last pass left it
        self._full = False  # some pass read a whole window: there may be more already

    # -- registration ---------------------------------------------------------------------

    def handle(self, effect: type[E], handler: Handler[E]) -> None:
        """Call ``handler(effect, delivery)`` for every effect of type ``effect``; plain or async.

        Returning store operations makes it transactional (exactly once, see the
        module doc); returning None makes it plain (at least once).
        """
        self._register(effect, handler, route=False, on_reject="record")

    def route(self, effect: type[E], to: Router[E], *, on_reject: OnReject = "record") -> None:
        """Deliver every effect of type ``effect`` as an input to another instance, through the driver.

        ``to(effect, delivery)`` names the target: ``(key, input)``, a list of
        them, or None (not routed). Each is fed with a request id derived from the
        effect (`route_request`), so it is applied once however often the effect
        is re-delivered. A rejection is recorded in the target's log; with
        ``on_reject="dead_letter"`` it is also dead-lettered here.
        """
        if self.driver is None:
            raise ValueError(f"{self.consumer}: routes feed inputs through a Driver; pass driver=")
        if on_reject not in ("record", "dead_letter"):
            raise ValueError(f"on_reject must be 'record' or 'dead_letter', got {on_reject!r}")
        self._register(effect, to, route=True, on_reject=on_reject)

    def follow(self, system: System[Any], keys: Mapping[str, str], *, on_reject: OnReject = "record") -> None:
        """Route ``system``'s routes between instances stored under separate ``keys`` (instance -> key).

        The routes `kernel.system` applies atomically inside one `Driver.act`
        are, here, delivered after the source's commit, one input at a time --
        what the asynchronous composition spec (docs/dispatch.md) checks.
        """
        instance_of = {key: name for name, key in keys.items()}
        for r in system.routes:
            def to(effect: Any, d: Delivery, r: Any = r) -> list[Target]:
                source = instance_of.get(d.key)
                if source is None:
                    return []
                return [(keys[name], value) for name, value in route_targets(r.to(effect, source))]
            self.route(r.effect, to, on_reject=on_reject)

    def _register(self, effect: type[Any], call: Callable[..., Any], *, route: bool, on_reject: OnReject) -> None:
        if self._registered:
            raise RuntimeError(f"{self.consumer}: register every handler and route before the first pass; effects "
                               f"of a type with no handler are passed over for good, so a late {effect!r} would "
                               f"miss the ones already passed")
        if not isinstance(effect, type):
            raise TypeError(f"{self.consumer}: register an effect class, got {effect!r}")
        name = effect.__name__
        known = self._by_name.get(name)
        if known is not None:
            what = "a route" if known.route else "a handler"
            raise ValueError(f"{self.consumer}: {name} already has {what} ({_where(known.call)})")
        self._by_name[name] = _Registered(effect, call, route, on_reject, TypeAdapter(effect))

    # -- running --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """One pass over every partition this process can lease: handle what is committed now.

        Returns how many effects were handled or dead-lettered. Leases taken are
        kept (and renewed by the next pass) until `stop` or their expiry.
        """
        await self._register_consumer()
        if self._stop_asked:
            return 0
        rows: dict[int, _Partition] = {}
        clock = asyncio.get_running_loop().time
        self._full = False
        for partition in [*sorted(self._held), *(p for p in range(self.partitions) if p not in self._held)]:
            if len(rows) >= self.max_partitions:
                break
            kept = self._kept.get(partition)
            if kept is not None and partition in self._held and clock() < kept.renew_at:
                # under half the lease spent: no renewal, and the cursor is the one this process last wrote
                rows[partition] = _Partition(kept.row, renew_at=kept.renew_at, advanced_at=kept.advanced_at)
                continue
            taken = clock()
            self._held.add(partition)  # before the call: `_release` lets go of a lease taken by a cancelled one
            row = await self.store.lease(self.consumer, partition, self.owner, self.lease)
            if row is None:
                self._held.discard(partition)
                self._kept.pop(partition, None)
            else:
                rows[partition] = _Partition(row, renew_at=taken + self.lease / 2,
                                             advanced_at=taken if kept is None else kept.advanced_at)
        if not rows:
            log.debug("%s: no partition to work on (each is leased by another process, or %s already)",
                      self.consumer, self.owner)
        counts = await asyncio.gather(*(self._serve(part) for part in rows.values()), return_exceptions=True)
        for count in counts:  # raised once every partition's pass has ended: none goes on behind the caller
            if isinstance(count, BaseException):
                raise count
        return sum(c for c in counts if isinstance(c, int))

    async def _serve(self, part: _Partition) -> int:
        """One pass over a partition whose lease this process holds; effects handled (0 if the lease is lost)."""
        partition = part.row.partition
        try:
            handled = await self._pass(part)
        except (LeaseLost, _Lost):
            self._held.discard(partition)
            self._kept.pop(partition, None)
            return 0
        except BaseException:
            self._kept.pop(partition, None)  # the cursor is not known for sure now: read it with the next lease
            raise
        self._kept[partition] = part
        return handled

    async def run(self) -> None:
        """Deliver forever: pass over the partitions, then wait for the next commit (or ``poll`` seconds).

        Returns after `stop`, once the handlers in flight finished, the cursors
        advanced and the leases were released.
        """
        self._stopping = asyncio.Event()
        if self._stop_asked:
            self._stopping.set()
        seen = await self.store.latest_cursor()
        try:
            while not self._stop_asked:
                try:
                    handled = await self.run_once()
                except Busy:
                    handled = 0  # locked past the busy timeout: nothing advanced, so look again after the wait
                if self._stop_asked:
                    break
                if self._full:
                    continue  # a pass read a whole window: there is more already
                waiter = asyncio.ensure_future(self.store.wait(seen, self.poll))
                stopper = asyncio.ensure_future(self._stopping.wait())
                try:
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (waiter, stopper):
                        if not task.done():
                            task.cancel()
                    await asyncio.gather(waiter, stopper, return_exceptions=True)
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    seen = max(seen, waiter.result())
        finally:
            await self._release()

    def stop(self) -> None:
        """Ask `run` to return after the handlers in flight finish; safe to call from a handler or another task."""
        self._stop_asked = True
        if self._stopping is not None:
            self._stopping.set()

    async def release(self) -> None:
        """Give up every lease this process holds, so another process (or the next run of a script) need not wait.

        `run` does it when it returns; a script that calls `run_once` should do it
        before it exits (or use the dispatcher as an ``async with`` block), or the
        next run finds the partitions leased until the lease runs out (``lease``
        seconds) and handles nothing meanwhile.
        """
        await self._release()

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        await self._release()

    async def _release(self) -> None:
        for partition in sorted(self._held):
            try:
                await asyncio.shield(self.store.release(self.consumer, partition, self.owner))
            except StoreError:
                pass  # it expires by itself
        self._held.clear()
        self._kept.clear()

    async def _register_consumer(self) -> None:
        if not self._registered:
            await self.store.register(self.consumer, partitions=self.partitions, start=self.start)
            self._registered = True

    # -- one partition ----------------------------------------------------------------------

    async def _pass(self, part: _Partition) -> int:
        """Handle one window of a leased partition, then advance its cursor to the end of what was read."""
        row = part.row
        latest = await self.store.latest_cursor()
        events = await self.store.read(row.cursor, limit=self.window, partition=(row.partition, self.partitions))
        seen = part.horizon = horizon(row.cursor, latest, events, self.window)
        self._full = self._full or len(events) >= self.window
        effects = [e for e in events if e.kind == EFFECT]
        part.pending = [e.position for e in effects]
        lanes: dict[str, list[Event]] = {}
        for e in effects:
            lanes.setdefault(e.key, []).append(e)
        indexes = await self._indexes(events, lanes)
        results = await asyncio.gather(
            *(self._lane(part, lane, indexes) for lane in lanes.values()), return_exceptions=True)
        for outcome in results:
            if isinstance(outcome, BaseException):
                raise outcome  # a lost lease, or the store failing: the cursor stays where it is
        now = asyncio.get_running_loop().time()
        lag = seen - part.row.cursor
        if lag > 0 and (events or lag >= self.window or now >= part.advanced_at + self.lease / 2):
            await self._advance(part, seen)  # a partition with nothing of its own catches up now and then
        return part.done

    async def _lane(self, part: _Partition, lane: list[Event], indexes: Mapping[int, int]) -> None:
        """One key's effects, in order: each handled (or dead-lettered) before the next is looked at."""
        for event in lane:
            await self._deliver(part, event, indexes.get(event.position, 0))

    async def _deliver(self, part: _Partition, event: Event, index: int) -> None:
        """Hand one effect to its handler or route, with retries; dead-letter it when they run out."""
        data = event.data if isinstance(event.data, Mapping) else {}
        registered = self._by_name.get(str(data.get("type", "")))
        if registered is None:  # not this consumer's business: passed over, not counted
            await self._finish(part, event, [], counted=False)
            return
        try:
            effect = _decode(registered, data)
        except ValidationError as exc:
            await self._dead(part, event, _Failure("bad_effect", f"{registered.kind.__name__}: {exc}"), 1)
            return
        attempt = 1
        while True:
            await self._hold(part)
            delivery = Delivery(self.consumer, event.key, event.seq, event.position, index, attempt)
            try:
                if registered.route:
                    failure = await self._routed(registered, effect, delivery)
                    if failure is not None:
                        await self._dead(part, event, failure, attempt)
                    else:
                        await self._finish(part, event, [])
                    return
                ops = _operations(await _called(registered.call, effect, delivery), registered.call)
                await self._finish(part, event, list(ops or ()),
                                   batch=dispatch_batch(self.consumer, event.key, event.seq) if ops else None)
                return
            except (LeaseLost, _Lost, asyncio.CancelledError):
                raise
            except AlreadyApplied:
                await self._finish(part, event, [])  # its batch committed before, under another decision
                return
            except Exception as exc:  # noqa: BLE001 -- a handler's failure is data: retried, then dead-lettered
                failure = _failure(exc, registered.call, registered.kind.__name__, event)
                if attempt >= self.retry.attempts or isinstance(exc, BadHandler):
                    log.error("%s: dead-lettered %r#%d after %d attempt(s): %s", self.consumer, event.key,
                              event.seq, attempt, _storable(failure.error))
                    await self._dead(part, event, failure, attempt)
                    return
                log.warning("%s: attempt %d of %d failed, retrying in %.2f s: %s", self.consumer, attempt,
                            self.retry.attempts, self.retry.delay(attempt), _storable(failure.error))
                await self._sleep(self.retry.delay(attempt))
                attempt += 1

    async def _routed(self, registered: _Registered[Any], effect: Any, d: Delivery) -> _Failure | None:
        """Feed each target its input through the driver, by request id; a failure to dead-letter, or None."""
        assert self.driver is not None  # route() refuses to register without one
        pairs = _targets(await _called(registered.call, effect, d), registered.call)
        problems: list[str] = []
        for j, (key, value) in enumerate(pairs):
            fed = await self.driver.feed(key, value, request=route_request(self.consumer, d.key, d.seq, j))
            if not isinstance(fed, FedRejected):
                continue
            declared = self.driver.catalog.machine(fed.record.machine).input_types
            if type(value) not in declared:  # not a refusal by the target: a route wired to the wrong machine
                raise BadHandler(f"{_where(registered.call)} routed {type(value).__name__} to {key!r}, a "
                                 f"{fed.record.machine} whose inputs are {', '.join(t.__name__ for t in declared)}")
            if registered.on_reject == "dead_letter":
                problems.append(f"{key}: {fed.rejection.message}")
        return _Failure("rejected", "; ".join(problems)) if problems else None

    async def _finish(self, part: _Partition, event: Event, ops: list[Op], *, batch: str | None = None,
                      counted: bool = True) -> None:
        """Mark ``event`` done: commit the handler's ``ops`` (and the cursor, when it is next in line)."""
        async with part.lock:
            first = bool(part.pending) and part.pending[0] == event.position
            if ops and first:  # next in line: the cursor moves up to the next effect still pending
                to = part.pending[1] - 1 if len(part.pending) > 1 else part.horizon
                await self._commit(part, ops + [self._advance_op(part, to)], batch, to)
            elif ops:
                await self._commit(part, ops, batch, None)
            part.pending.remove(event.position)
            part.done += counted

    async def _dead(self, part: _Partition, event: Event, failure: _Failure, attempts: int) -> None:
        op = DeadLetter(self.consumer, part.row.partition, event.position, event.key, event.seq, event.kind,
                        event.data, failure.code, _storable(failure.error), attempts, self.owner)
        await self._finish(part, event, [op], batch=None)

    async def _commit(self, part: _Partition, ops: list[Op], batch: str | None, advanced: int | None) -> None:
        try:
            await self.store.commit(ops, batch=batch) if batch is not None else await self.store.commit(ops)
        except Conflict:
            if advanced is None:
                raise
            fresh = await self._row(part)
            if fresh.cursor != part.row.cursor:
                raise _Lost(f"{self.consumer}[{part.row.partition}]: the cursor moved under this process") from None
            raise
        if advanced is not None:
            part.row = dataclasses.replace(part.row, cursor=advanced)
            part.advanced_at = asyncio.get_running_loop().time()

    async def _hold(self, part: _Partition) -> None:
        """Renew the lease once half of it is spent, before a handler is called; `_Lost` if it is gone.

        A pass can outlast its lease (a slow or hanging handler, a process that
        stood still): another process then takes the partition over, and this
        one must call no more handlers for it -- its cursor is no longer this
        process's to move. Renewed under the partition's lock, so no advance of
        this process is in flight: a cursor other than the one this process
        last wrote means another process moved it.
        """
        clock = asyncio.get_running_loop().time
        if clock() < part.renew_at:
            return
        async with part.lock:
            taken = clock()
            row = await self.store.lease(self.consumer, part.row.partition, self.owner, self.lease)
            if row is None or row.cursor != part.row.cursor:
                raise _Lost(f"{self.consumer}[{part.row.partition}]: the lease ran out and was taken over")
            part.renew_at = taken + self.lease / 2

    def _advance_op(self, part: _Partition, position: int) -> Advance:
        return Advance(self.consumer, part.row.partition, part.row.cursor, position, self.owner)

    async def _advance(self, part: _Partition, horizon: int) -> None:
        async with part.lock:
            if horizon <= part.row.cursor:
                return
            try:
                await self.store.commit([self._advance_op(part, horizon)])
            except Conflict:
                raise _Lost(f"{self.consumer}[{part.row.partition}]: the cursor moved under this process") from None
            part.row = dataclasses.replace(part.row, cursor=horizon)
            part.advanced_at = asyncio.get_running_loop().time()

    async def _row(self, part: _Partition) -> Consumer:
        for row in await self.store.consumers():
            if row.name == self.consumer and row.partition == part.row.partition:
                return row
        raise _Lost(f"{self.consumer}[{part.row.partition}] is no longer registered")

    async def _indexes(self, events: Sequence[Event], lanes: Mapping[str, list[Event]]) -> dict[int, int]:
        """Each effect's index among its input's effects, from the events read (and a look back where needed)."""
        out: dict[int, int] = {}
        by_key: dict[str, dict[int, Event]] = {}
        for e in events:
            by_key.setdefault(e.key, {})[e.seq] = e
        for key, lane in lanes.items():
            seen = by_key[key]
            first = lane[0].seq
            if first > 1 and first - 1 not in seen:  # the window starts inside an input's effects
                for b in await self.store.read_range(key, max(1, first - _LOOK_BACK), first - 1):
                    seen.setdefault(b.seq, b)
            for e in lane:
                out[e.position] = _count_back(seen, e.seq)
        return out


_LOOK_BACK = 256
"""How far back to read a key's log for an effect's index when a window starts among its input's effects."""


class _Lost(Exception):
    """This process no longer owns the partition's cursor: stop working on it, deliver nothing more."""


def _count_back(seen: Mapping[int, Event], seq: int) -> int:
    n, s = 0, seq - 1
    while s in seen and seen[s].kind == EFFECT:
        n, s = n + 1, s - 1
    return n


def _operations(out: Any, call: Callable[..., Any]) -> list[Op] | None:
    """What a handler returned, as operations to commit (None for a plain handler); `TypeError` otherwise."""
    if out is None:
        return None
    if isinstance(out, (list, tuple)) and all(isinstance(op, OPS) for op in out):
        return list(out)
    if isinstance(out, (list, tuple)):
        bad = next(op for op in out if not isinstance(op, OPS))
        what = f"a {type(out).__name__} holding {type(bad).__name__}"
    else:
        what = type(out).__name__
    raise BadHandler(f"{_where(call)} returned {what}; a handler returns None or a list of "
                     f"store operations ({', '.join(t.__name__ for t in OPS)})")


def _targets(out: Any, call: Callable[..., Any]) -> list[Target]:
    """What a route returned, as (key, input) pairs; `BadHandler` naming the route for anything else."""
    pairs = [] if out is None else [out] if isinstance(out, tuple) else out
    if isinstance(pairs, list) and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                       for p in pairs):
        return pairs
    raise BadHandler(f"{_where(call)} returned {type(out).__name__} {_short(out)}; a route returns "
                     f"(key, input), a list of them, or None")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode(registered: _Registered[E], data: Mapping[str, Any]) -> E:
    body = {k: v for k, v in data.items() if k not in ("type", "instance")}
    return registered.adapter.validate_python(untagged(registered.kind, body))


async def _called(call: Callable[..., Any], *args: Any) -> Any:
    out = call(*args)
    return await out if inspect.isawaitable(out) else out


def _failure(exc: Exception, call: Callable[..., Any], effect: str, event: Event) -> _Failure:
    code = exc.code if isinstance(exc, (StoreError, BadHandler)) else HandlerFailed.code
    where = raised_at(exc, call)
    text = f"{_name(call)} on {effect} of {event.key!r}#{event.seq}: {type(exc).__name__}: {exc} (at {where})"
    return _Failure(code, text)


def _storable(text: str, most: int = 4096) -> str:
    """``text`` as a store can hold it: NUL and lone surrogates escaped, at most ``most`` characters."""
    clean = UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return clean if len(clean) <= most else clean[:most - 1] + "…"



def _name(call: Callable[..., Any]) -> str:
    return str(getattr(call, "__qualname__", None) or type(call).__name__)


def _where(call: Callable[..., Any]) -> str:
    code = getattr(call, "__code__", None)
    return f"{_name(call)} at {code.co_filename}:{code.co_firstlineno}" if code is not None else _name(call)

