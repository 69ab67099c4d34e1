"""The dispatcher on every backend: handlers, transactional handlers, routes, retries, dead letters, leases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.dispatch import Delivery, Dispatcher, Retry, dispatch_batch, route_request
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.readside import ReadStore
from statewright.adapters.runtime.store import Append, Cas, Op
from tests.adapters._shop import (
    Capture,
    Captured,
    Note,
    Order,
    OrderPhase,
    Paid,
    Payment,
    PaymentPhase,
    PaymentRequested,
    Place,
    Request,
    Ship,
    Shipped,
    shop_catalog,
)

BACKENDS = ("memory", "sqlite", "postgres")


Go = Callable[[Callable[[ReadStore], Awaitable[None]]], None]


@pytest.fixture(params=BACKENDS)
def go(request: pytest.FixtureRequest, tmp_path: Path) -> Go:
    """Run a test's coroutine against a fresh store of the current backend, in a fresh event loop."""
    backend = str(request.param)
    dsn = str(request.getfixturevalue("postgres_dsn")) if backend == "postgres" else ""

    def run(test: Callable[[ReadStore], Awaitable[None]]) -> None:
        async def main() -> None:
            catalog = shop_catalog()
            opened: Any
            if backend == "memory":
                opened = MemoryStore(catalog)
            elif backend == "sqlite":
                from statewright.adapters.runtime.sqlite import SqliteStore

                opened = await SqliteStore.open(tmp_path / "shop.db", catalog)
            else:
                from statewright.adapters.runtime.postgres import PostgresStore

                opened = await PostgresStore.open(dsn, catalog)
            try:
                if not isinstance(opened, ReadStore):
                    pytest.skip(f"{backend} has no read side yet")
                await test(opened)
            finally:
                await opened.close()

        asyncio.run(main())

    return run


def on_backends(test: Callable[[ReadStore], Awaitable[None]]) -> Callable[[Go], None]:
    """A test of one store, run on every backend (through `go`)."""
    def run(go: Go) -> None:
        go(test)

    run.__name__ = run.__qualname__ = test.__name__
    run.__doc__ = test.__doc__
    return run


async def shop(store: ReadStore, orders: int = 2) -> Driver:
    """``orders`` orders placed (each emits PaymentRequested), their payments created."""
    driver = Driver(store)
    for n in range(orders):
        await driver.create(f"order-{n}", "order")
        await driver.create(f"pay-order-{n}", "payment")
        await driver.feed(f"order-{n}", Place(10 * (n + 1)))
    return driver


class NoSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def recorder(owner: str, seen: list[tuple[str, str]]) -> Any:
    def record(e: Any, w: Delivery) -> None:
        seen.append((owner, w.key))
    return record


@on_backends
async def test_a_plain_handler_sees_each_effect_once_with_where_it_came_from(store: ReadStore) -> None:
    driver = await shop(store)
    seen: list[tuple[PaymentRequested, Delivery]] = []
    d = Dispatcher(store, "audit", driver=driver)
    d.handle(PaymentRequested, lambda e, where: seen.append((e, where)))
    assert await d.run_once() == 2
    assert await d.run_once() == 0  # the cursor moved past them
    assert sorted((e.amount, w.key, w.seq, w.index, w.attempt) for e, w in seen) == [
        (10, "order-0", 3, 0, 1), (20, "order-1", 3, 0, 1)]
    first = min(seen, key=lambda s: s[1].position)[1]
    assert first.idempotency_key == f"audit/{first.key}/3"
    [row] = await store.consumers()
    assert (row.name, row.cursor, row.owner) == ("audit", await store.latest_cursor(), d.owner)


@on_backends
async def test_effects_of_one_key_arrive_in_log_order_and_keys_do_not_wait_for_each_other(store: ReadStore) -> None:
    driver = await shop(store, orders=3)
    for n in range(3):
        await driver.feed(f"order-{n}", Paid())
        await driver.feed(f"order-{n}", Ship())
    order: list[tuple[str, str]] = []
    gate = asyncio.Event()

    async def slow(e: Any, d: Delivery) -> None:
        if d.key == "order-0" and isinstance(e, PaymentRequested):
            await gate.wait()  # order-0 is held up; the others go on
        order.append((d.key, type(e).__name__))
        if len(order) == 4:
            gate.set()

    d = Dispatcher(store, "audit")
    d.handle(PaymentRequested, slow)
    d.handle(Shipped, slow)
    assert await d.run_once() == 6
    for n in range(3):
        mine = [kind for key, kind in order if key == f"order-{n}"]
        assert mine == ["PaymentRequested", "Shipped"]
    assert order[-2:] == [("order-0", "PaymentRequested"), ("order-0", "Shipped")]


@on_backends
async def test_a_transactional_handler_applies_each_effect_exactly_once_across_a_crash(store: ReadStore) -> None:
    driver = await shop(store)
    for n in range(2):
        await driver.feed(f"order-{n}", Paid())
        await driver.feed(f"order-{n}", Ship())
    calls: list[str] = []
    out_of_line = asyncio.Event()

    async def notify(e: Shipped, d: Delivery) -> list[Op]:
        if d.key == "order-0":
            await out_of_line.wait()  # order-1's batch commits first, out of line: without the cursor
        calls.append(d.key)
        return [Cas(f"note-{d.key}", 0, Note(text=f"{d.key} shipped ({e.amount})"), machine="note")]

    class Crash(BaseException):
        pass

    real = store.commit
    committed: list[list[str]] = []

    async def crashing(ops: Any, **kw: Any) -> None:  # the process dies as it commits a batch moving the cursor
        kinds = [type(op).__name__ for op in ops]
        if "Advance" in kinds:
            raise Crash()
        await real(ops, **kw)
        committed.append(kinds)
        out_of_line.set()

    first = Dispatcher(store, "mailer", lease=0.2)
    first.handle(Shipped, notify)
    store.commit = crashing  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await first.run_once()
    store.commit = real  # type: ignore[method-assign]
    assert committed == [["Cas"]] and calls == ["order-1", "order-0"]
    assert (await store.consumers())[0].cursor == 0
    await asyncio.sleep(0.3)  # the dead process's lease runs out
    second = Dispatcher(store, "mailer", lease=0.2)
    second.handle(Shipped, notify)
    await second.run_once()
    notes = {k: (await store.load(k)) for k in ("note-order-0", "note-order-1")}
    assert {k: (r.version, r.state.text) for k, r in notes.items()} == {
        "note-order-0": (1, "order-0 shipped (10)"), "note-order-1": (1, "order-1 shipped (20)")}
    assert await store.read_log("note-order-0") == []
    [row] = await store.consumers()
    assert row.cursor == await store.latest_cursor()
    assert sorted(calls[2:]) == ["order-0", "order-1"]  # both delivered again; order-1's batch was not re-applied


@on_backends
async def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered_and_others_go_on(store: ReadStore) -> None:
    driver = await shop(store, orders=3)
    sleep = NoSleep()
    handled: list[str] = []

    def flaky(e: PaymentRequested, d: Delivery) -> None:
        if d.key == "order-1":
            raise RuntimeError("payment service down")
        handled.append(d.key)

    d = Dispatcher(store, "payments", driver=driver, retry=Retry(attempts=3, first=0.5), sleep=sleep)
    d.handle(PaymentRequested, flaky)
    assert await d.run_once() == 3
    assert sorted(handled) == ["order-0", "order-2"]
    assert sleep.slept == [0.5, 1.0]
    [dead] = await store.dead_letters("payments")
    assert (dead.key, dead.seq, dead.code, dead.attempts) == ("order-1", 3, "handler_error", 3)
    assert "flaky on PaymentRequested of 'order-1'#3: RuntimeError: payment service down (at " in dead.error
    assert "test_dispatch.py:" in dead.error
    assert dead.data == {"type": "PaymentRequested", "amount": 20}
    [row] = await store.consumers()
    assert row.cursor == await store.latest_cursor()


@on_backends
async def test_routes_feed_other_instances_once_and_the_flow_completes(store: ReadStore) -> None:
    driver = await shop(store)
    d = Dispatcher(store, "router", driver=driver)
    d.route(PaymentRequested, lambda e, w: (f"pay-{w.key}", Request(e.amount)))
    d.route(Captured, lambda e, w: (w.key.removeprefix("pay-"), Paid()))
    await d.run_once()
    for n in range(2):
        await driver.feed(f"pay-order-{n}", Capture())
    await d.run_once()
    for n in range(2):
        order, pay = await store.load(f"order-{n}"), await store.load(f"pay-order-{n}")
        assert (order.state.phase, pay.state.phase, pay.state.requests) == (
            OrderPhase.PAID, PaymentPhase.CAPTURED, 1)
    # a second consumer routing the same effects is a second request: told apart by the consumer in the id
    assert route_request("router", "order-0", 3) != route_request("other", "order-0", 3)


@on_backends
async def test_a_redelivered_route_is_fed_once(store: ReadStore) -> None:
    driver = await shop(store, orders=1)
    fed: list[str] = []

    def to(e: PaymentRequested, w: Delivery) -> tuple[str, Any]:
        fed.append(w.key)
        return (f"pay-{w.key}", Request(e.amount))

    for owner in ("a", "b"):  # b sees a's effect again: a's cursor is put back as if its advance were lost
        d = Dispatcher(store, "router", driver=driver, owner=owner)
        d.route(PaymentRequested, to)
        await d.run_once()
        await _rewind(store, "router")
    assert fed == ["order-0", "order-0"]
    pay = await store.load("pay-order-0")
    assert (pay.state.requests, pay.version) == (1, 2)
    assert [e.kind for e in await store.read_log("pay-order-0")] == ["created", "input"]


async def _rewind(store: ReadStore, consumer: str) -> None:
    """Put a consumer's cursor back to 0 as if its advance had been lost: unregister and register again."""
    await store.unregister(consumer, force=True)
    await store.register(consumer)


@on_backends
async def test_a_rejected_route_is_recorded_in_the_target_and_dead_lettered_when_asked(store: ReadStore) -> None:
    driver = await shop(store, orders=2)
    await driver.feed("pay-order-1", Request(5))  # order-1's payment was already requested: Request is refused
    d = Dispatcher(store, "router", driver=driver)
    d.route(PaymentRequested, lambda e, w: (f"pay-{w.key}", Request(e.amount)), on_reject="dead_letter")
    await d.run_once()
    log = [e.kind for e in await store.read_log("pay-order-1")]
    assert log == ["created", "input", "rejected"]
    [dead] = await store.dead_letters("router")
    assert (dead.key, dead.code) == ("order-1", "rejected")
    assert "pay-order-1" in dead.error
    source = await store.load("order-1")
    assert source.state == Order(OrderPhase.PLACED, 20)  # the committed source state stays


@on_backends
async def test_a_second_process_gets_nothing_while_the_first_holds_the_lease(store: ReadStore) -> None:
    driver = await shop(store)
    a, b = Dispatcher(store, "audit", owner="a"), Dispatcher(store, "audit", owner="b")
    seen: list[tuple[str, str]] = []
    for d in (a, b):
        d.handle(PaymentRequested, recorder(d.owner, seen))
    assert await b.run_once() == 2
    await driver.create("order-5", "order")
    await driver.feed("order-5", Place(1))
    assert await a.run_once() == 0
    assert await b.run_once() == 1
    assert [owner for owner, _ in seen] == ["b", "b", "b"]


@on_backends
async def test_partitions_share_a_consumer_without_double_delivery(store: ReadStore) -> None:
    driver = await shop(store, orders=12)
    seen: list[tuple[str, str]] = []
    ds = [Dispatcher(store, "audit", partitions=4, max_partitions=2, owner=o) for o in ("a", "b")]
    for d in ds:
        d.handle(PaymentRequested, recorder(d.owner, seen))
    assert sum([await d.run_once() for d in ds]) == 12
    assert sorted(k for _, k in seen) == sorted(f"order-{n}" for n in range(12))
    rows = await store.consumers()
    assert sorted((r.partition, r.owner) for r in rows) == [(0, "a"), (1, "a"), (2, "b"), (3, "b")]


@on_backends
async def test_run_delivers_as_commits_happen_and_stop_releases_the_lease(store: ReadStore) -> None:
    driver = await shop(store, orders=1)
    seen: list[str] = []
    d = Dispatcher(store, "audit", poll=0.05)
    d.handle(PaymentRequested, lambda e, w: seen.append(w.key))

    async def later() -> None:
        await asyncio.sleep(0.05)
        await driver.create("order-9", "order")
        await driver.feed("order-9", Place(1))
        for _ in range(200):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        d.stop()

    await asyncio.wait_for(asyncio.gather(d.run(), later()), 10)
    assert seen == ["order-0", "order-9"]
    [row] = await store.consumers()
    assert row.owner is None


@on_backends
async def test_a_cancelled_dispatcher_loses_nothing(store: ReadStore) -> None:
    driver = await shop(store, orders=4)
    for n in range(4):
        await driver.feed(f"order-{n}", Paid())
        await driver.feed(f"order-{n}", Ship())
    started = asyncio.Event()

    async def notify(e: Shipped, d: Delivery) -> list[Op]:
        started.set()
        await asyncio.sleep(0.01)
        return [Cas(f"note-{d.key}", 0, Note(text=d.key), machine="note")]

    first = Dispatcher(store, "mailer", lease=0.1)
    first.handle(Shipped, notify)
    task = asyncio.ensure_future(first.run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    second = Dispatcher(store, "mailer", lease=0.1)
    second.handle(Shipped, notify)
    await asyncio.sleep(0.15)
    await second.run_once()
    for n in range(4):
        assert (await store.load(f"note-order-{n}")).version == 1


@on_backends
async def test_effect_data_that_no_longer_decodes_is_dead_lettered(store: ReadStore) -> None:
    driver = await shop(store, orders=1)
    head = len(await store.read_log("order-0"))
    await store.commit([Append("order-0", head, (("effect", {"type": "Shipped", "amount": "lots"}),))])
    d = Dispatcher(store, "mailer", sleep=NoSleep())
    d.handle(Shipped, lambda e, w: None)
    await d.run_once()
    [dead] = await store.dead_letters()
    assert (dead.code, dead.attempts, dead.seq) == ("bad_effect", 1, head + 1)


def test_registration_errors_are_clear() -> None:
    d = Dispatcher(MemoryStore(shop_catalog()), "c")
    d.handle(Shipped, lambda e, w: None)
    with pytest.raises(ValueError, match="Shipped already has a handler"):
        d.handle(Shipped, lambda e, w: None)
    with pytest.raises(ValueError, match="routes feed inputs through a Driver"):
        d.route(PaymentRequested, lambda e, w: None)
    with pytest.raises(TypeError, match="register an effect class"):
        d.handle(Shipped(1), lambda e, w: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_reject"):
        Dispatcher(MemoryStore(shop_catalog()), "c", driver=Driver(MemoryStore(shop_catalog()))).route(
            Captured, lambda e, w: None, on_reject="drop")  # type: ignore[arg-type]
    bad: dict[str, Any]
    for bad in ({"partitions": 0}, {"window": 0}, {"lease": 0}, {"max_partitions": 2}, {"max_partitions": 0},
                {"poll": 0}, {"start": "middle"}):
        with pytest.raises(ValueError):
            Dispatcher(MemoryStore(shop_catalog()), "c", **bad)
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)


def test_batch_and_request_ids_are_stable() -> None:
    assert dispatch_batch("m", "k", 1) == dispatch_batch("m", "k", 1) != dispatch_batch("m", "k", 2)
    assert route_request("r", "k", 4, 1) == "route/r/k/4/1"
    assert Payment().phase is PaymentPhase.NONE


@on_backends
async def test_follow_delivers_a_systems_routes_between_separately_stored_instances(store: ReadStore) -> None:
    from statewright.kernel.system import Route, System
    from tests.adapters._shop import ORDER, PAYMENT

    system: System[Any] = System("shop", {"order": ORDER, "payment": PAYMENT}, routes=[
        Route(PaymentRequested, lambda e, source: ("payment", Request(e.amount))),
        Route(Captured, lambda e, source: ("order", Paid())),
    ])
    driver = await shop(store, orders=1)
    d = Dispatcher(store, "router", driver=driver)
    d.follow(system, {"order": "order-0", "payment": "pay-order-0"})
    await d.run_once()
    await driver.feed("pay-order-0", Capture())
    await d.run_once()
    assert (await store.load("order-0")).state.phase is OrderPhase.PAID
    assert [e.kind for e in await store.read_log("order-0")] == ["created", "input", "effect", "input"]


@on_backends
async def test_a_handler_returning_something_else_is_a_typed_failure_naming_it(store: ReadStore) -> None:
    await shop(store, orders=1)
    d = Dispatcher(store, "c", sleep=NoSleep(), retry=Retry(attempts=2))

    def confused(e: PaymentRequested, w: Delivery) -> Any:
        return "done"

    d.handle(PaymentRequested, confused)
    await d.run_once()
    [dead] = await store.dead_letters()
    assert dead.code == "bad_handler" and dead.attempts == 1  # a programming error: not retried
    assert "confused at " in dead.error and "returned str; a handler returns None or a list" in dead.error


@on_backends
async def test_a_route_returning_the_wrong_shape_or_wired_to_the_wrong_machine_is_dead_lettered_at_once(
        store: ReadStore) -> None:
    driver = await shop(store, orders=2)
    d = Dispatcher(store, "router", driver=driver, sleep=NoSleep())

    def to(e: PaymentRequested, w: Delivery) -> Any:
        return f"pay-{w.key}" if w.key == "order-0" else (f"pay-{w.key}", Paid())  # Paid is an order's input

    d.route(PaymentRequested, to)
    await d.run_once()
    dead = {x.key: x for x in await store.dead_letters()}
    assert {k: (x.code, x.attempts) for k, x in dead.items()} == {
        "order-0": ("bad_handler", 1), "order-1": ("bad_handler", 1)}
    assert "returned str 'pay-order-0'; a route returns (key, input)" in dead["order-0"].error
    assert "routed Paid to 'pay-order-1', a payment whose inputs are Request, Capture" in dead["order-1"].error


def test_handlers_are_registered_before_the_first_pass() -> None:
    async def main() -> None:
        d = Dispatcher(MemoryStore(shop_catalog()), "c")
        await d.run_once()
        with pytest.raises(RuntimeError, match="before the first pass"):
            d.handle(Shipped, lambda e, w: None)

    asyncio.run(main())


@on_backends
async def test_a_script_that_releases_its_leases_lets_the_next_run_work_at_once(store: ReadStore) -> None:
    driver = await shop(store, orders=1)
    seen: list[str] = []
    async with Dispatcher(store, "script") as first:
        first.handle(PaymentRequested, lambda e, w: seen.append(w.key))
        assert await first.run_once() == 1
    assert (await store.consumers())[0].owner is None
    await driver.create("order-7", "order")
    await driver.feed("order-7", Place(7))
    second = Dispatcher(store, "script")  # another run of the script: another owner
    second.handle(PaymentRequested, lambda e, w: seen.append(w.key))
    assert await second.run_once() == 1
    await second.release()
    assert seen == ["order-0", "order-7"] and (await store.consumers())[0].owner is None


@on_backends
async def test_an_error_message_no_store_can_hold_is_escaped_in_the_dead_letter(store: ReadStore) -> None:
    await shop(store, orders=1)
    d = Dispatcher(store, "c", sleep=NoSleep(), retry=Retry(attempts=1))

    def hostile(e: PaymentRequested, w: Delivery) -> None:
        raise ValueError("nul \x00 and a lone \ud800 surrogate" + "x" * 10_000)

    d.handle(PaymentRequested, hostile)
    await d.run_once()
    [dead] = await store.dead_letters()
    assert "nul \\u0000 and a lone \\ud800 surrogate" in dead.error
    assert len(dead.error) == 4096 and dead.error.endswith("…")
