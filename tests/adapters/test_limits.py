"""`Limits` and bad input: what the driver refuses as `BadInput`, what a store refuses as `InvalidState`, and digests.

Each driver test runs on a memory store and a SQLite file. Inputs from outside
that are not inputs (a lone surrogate, 100,000 levels of nesting, 20 MB of
text, JSON that is not an object) are `BadInput` with nothing written; stored
values past the limits are `InvalidState`; a rejected input over
``digest_above`` is logged as its type, SHA-256 and size, so refused traffic
cannot grow a store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from statewright import Machine, Transition
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    DEFAULT_LIMITS,
    BadInput,
    Catalog,
    InvalidState,
    Limits,
    Store,
    StoreError,
    canonical_json,
)
from statewright.machines.input import INPUT, Apply, Input, InputPhase, Queue, Stage, authorize_seed

KiB, MiB = 1024, 1024 * 1024
CATALOG = Catalog({"input": INPUT}, {"input": authorize_seed})


def test_the_defaults_are_the_documented_ones() -> None:
    assert DEFAULT_LIMITS == Limits() == Limits(
        max_input_bytes=64 * KiB, max_record_bytes=1 * MiB, max_depth=64, digest_above=1 * KiB, max_key_bytes=1 * KiB
    )
    assert CATALOG.limits is DEFAULT_LIMITS


@pytest.mark.parametrize("bad", [{"max_depth": 0}, {"max_input_bytes": -1}, {"digest_above": 1.5}, {"max_key_bytes": True}])
def test_limits_are_positive_ints(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be a positive int"):
        Limits(**bad)


Test = Callable[[Store, Driver], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite"])
def go(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., None]:
    """Run a test against a fresh store of each backend, with a driver, and an input ``in1`` in QUEUED."""

    def run(test: Test, catalog: Catalog = CATALOG) -> None:
        async def main() -> None:
            store: Store
            if request.param == "memory":
                store = MemoryStore(catalog)
            else:
                store = await SqliteStore.open(tmp_path / "s.db", catalog)
            try:
                driver = Driver(store)
                await driver.create("in1", "input")
                await driver.feed("in1", Queue())
                await test(store, driver)
            finally:
                await store.close()

        asyncio.run(main())

    return run


async def contents(store: Store) -> list[Any]:
    return [(await store.load(k), await store.read_log(k)) for k in await store.keys()]


async def bad_input(store: Store, work: Awaitable[Any]) -> BadInput:
    before = await contents(store)
    with pytest.raises(BadInput) as info:
        await work
    assert info.value.code == "bad_input" and isinstance(info.value, StoreError)
    assert await contents(store) == before
    return info.value


NOT_INPUTS: dict[str, str | bytes] = {
    "lone surrogate escape": '{"type": "Stage", "run_id": "\\ud800"}',
    "lone surrogate key": '{"type": "Stage", "run_id": "r1", "\\udfff": 1}',
    "raw lone surrogate": '{"type": "Stage", "run_id": "\ud800"}',
    "100,000 levels": '{"type": "Stage", "run_id": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "65 levels": '{"type": "Stage", "run_id": ' + "[" * 64 + "]" * 64 + "}",
    "20 MB run_id": '{"type": "Stage", "run_id": "' + "r" * (20 * MiB) + '"}',
    "64 KiB + 1": '{"type": "Stage", "run_id": "' + "r" * (64 * KiB - 30) + '"}',
    "an array": "[1, 2]",
    "a number": "12",
    "a string": '"Stage"',
    "null": "null",
    "not UTF-8": b'{"type": "Stage", "run_id": "\xff"}',
    "a 5000-digit int": '{"type": "Stage", "run_id": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("text", list(NOT_INPUTS), ids=list(NOT_INPUTS))
def test_feed_json_refuses_what_is_not_an_input(go: Callable[..., None], text: str) -> None:
    async def test(store: Store, driver: Driver) -> None:
        await bad_input(store, driver.feed_json("in1", NOT_INPUTS[text]))

    go(test)


def test_the_input_limit_is_exact(go: Callable[..., None]) -> None:
    """``max_input_bytes`` is the UTF-8 size of the text: one byte more is refused."""

    async def test(store: Store, driver: Driver) -> None:
        text = '{"type": "Apply", "run_id": "' + "é" * 40 + "r" * (64 * KiB - 31 - 80) + '"}'
        assert len(text.encode()) == 64 * KiB and len(text) < 64 * KiB
        fed = await driver.feed_json("in1", text)  # Apply in QUEUED: rejected and recorded
        assert not fed.accepted
        await bad_input(store, driver.feed_json("in1", text[:-2] + 'r"}'))

    go(test)


@pytest.mark.parametrize(
    "data",
    [[1, 2], "Stage", None, {"type": "Stage", "run_id": "\ud800"}, {"type": "Stage", "run_id": [[[]]]}],
    ids=["list", "str", "None", "surrogate", "too deep"],
)
def test_parse_refuses_what_is_not_an_input(data: Any) -> None:
    driver = Driver(MemoryStore(Catalog({"input": INPUT}, limits=Limits(max_depth=3))))
    with pytest.raises(BadInput):
        driver.parse("input", data, key="in1")


@dataclass(frozen=True, slots=True)
class Odd:
    """Not an input any store could record: an object pydantic cannot serialise."""

    value: object


@pytest.mark.parametrize(
    "event", [Stage("\ud800"), Stage("r" * (64 * KiB)), Stage(1.5), Odd(object())],  # type: ignore[arg-type]
    ids=["surrogate", "over max_input_bytes", "float", "not JSON"],
)
def test_feed_refuses_a_value_no_log_could_record(go: Callable[..., None], event: Any) -> None:
    async def test(store: Store, driver: Driver) -> None:
        await bad_input(store, driver.feed("in1", event))

    go(test)


def test_a_rejected_input_over_digest_above_is_logged_as_its_digest(go: Callable[..., None]) -> None:
    async def test(store: Store, driver: Driver) -> None:
        small = await driver.feed("in1", Apply("r1"))  # QUEUED takes no Apply: rejected
        big = await driver.feed("in1", Apply("r" * 5000))
        assert not small.accepted and not big.accepted
        log = await store.read_log("in1")
        assert [e.kind for e in log][-2:] == ["rejected", "rejected"]
        assert log[-2].data["input"] == {"type": "Apply", "run_id": "r1"}
        text = canonical_json({"type": "Apply", "run_id": "r" * 5000}).encode()
        assert log[-1].data["input"] == {"type": "Apply", "sha256": hashlib.sha256(text).hexdigest(), "bytes": 5028}
        assert len(text) == 5028 and log[-1].data["reason"] == "no_transition"

    go(test)


def test_an_accepted_input_is_logged_in_full(go: Callable[..., None]) -> None:
    async def test(store: Store, driver: Driver) -> None:
        fed = await driver.feed("in1", Stage("r" * 5000))
        assert fed.accepted
        log = await store.read_log("in1")
        assert log[-2].kind == "input" and log[-2].data == {"type": "Stage", "run_id": "r" * 5000}

    go(test)


@pytest.mark.slow
def test_fifty_rejected_megabyte_inputs_leave_a_small_file(tmp_path: Path) -> None:
    """The finding: 50 rejected 1 MB inputs made a 50 MB database. Now each is logged as a ~150-byte digest."""
    path = tmp_path / "s.db"
    catalog = Catalog({"input": INPUT}, {"input": authorize_seed}, limits=Limits(max_input_bytes=2 * MiB))
    text = json.dumps({"type": "Apply", "run_id": "r" * MiB})

    async def main() -> None:
        async with await SqliteStore.open(path, catalog) as store:
            driver = Driver(store)
            await driver.create("in1", "input")
            await driver.feed("in1", Queue())
            for _ in range(50):
                assert not (await driver.feed_json("in1", text)).accepted
            log = await store.read_log("in1")
            assert len(log) == 53 and all(e.data["input"]["bytes"] == MiB + 28 for e in log[3:])
            raw = max(len(canonical_json(e.data)) for e in log)
            assert raw < 300

    asyncio.run(main())
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size < MiB, size


def test_with_default_limits_a_megabyte_input_is_bad_input_and_writes_nothing(go: Callable[..., None]) -> None:
    async def test(store: Store, driver: Driver) -> None:
        text = json.dumps({"type": "Apply", "run_id": "r" * MiB})
        for _ in range(50):
            await bad_input(store, driver.feed_json("in1", text))
        assert len(await store.read_log("in1")) == 3

    go(test)


def test_a_state_over_max_record_bytes_is_an_invalid_state(go: Callable[..., None]) -> None:
    catalog = Catalog({"input": INPUT}, {"input": authorize_seed},
                      limits=Limits(max_record_bytes=4 * KiB, max_input_bytes=8 * KiB))

    async def test(store: Store, driver: Driver) -> None:
        before = await contents(store)
        with pytest.raises(InvalidState, match="over the limit of 4096"):
            await driver.feed("in1", Stage("r" * 5000))  # a fine input, but the state it makes is too big
        with pytest.raises(InvalidState, match="over the limit of 4096"):
            await store.append("in1", 2, [("Note", {"text": "x" * 5000})])
        with pytest.raises(InvalidState, match="over the limit of 4096"):
            await store.cas("in2", 0, Input(InputPhase.STAGED, attempts=1, run_id="r" * 5000), machine="input")
        assert await contents(store) == before
        assert (await driver.feed("in1", Stage("r" * 4000))).accepted  # under it: fine

    go(test, catalog)


def test_a_key_over_max_key_bytes_is_an_invalid_state(go: Callable[..., None]) -> None:
    async def test(store: Store, driver: Driver) -> None:
        await store.cas("k" * 1024, 0, Input(), machine="input")
        with pytest.raises(InvalidState, match="over the limit of 1024"):
            await store.cas("é" * 513, 0, Input(), machine="input")

    go(test)


class Lamp(Enum):
    OFF = "off"
    ON = "on"


@dataclass(frozen=True, slots=True)
class Flip:
    pass


@dataclass(frozen=True, slots=True)
class Lit:
    what: Any


def _deep(levels: int) -> Any:
    value: Any = ()
    for _ in range(levels):
        value = (value,)
    return value


EFFECTS = {"object()": object(), "200,000 levels": _deep(200_000)}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("what", list(EFFECTS))
def test_an_effect_no_log_could_record_is_an_invalid_state_naming_it_and_its_row(
    tmp_path: Path, backend: str, what: str
) -> None:
    """Was a raw PydanticSerializationError (or RecursionError) out of Driver.feed."""
    lamp = Machine("lamp", initial=Lamp.OFF, transitions=[
        Transition(Lamp.OFF, Flip, Lamp.ON, emit=lambda s, i: (Lit(EFFECTS[what]),)),
        Transition(Lamp.ON, Flip, Lamp.OFF)])

    async def main() -> None:
        catalog = Catalog({"lamp": lamp})
        store: Store = MemoryStore(catalog) if backend == "memory" else await SqliteStore.open(tmp_path / "s.db", catalog)
        try:
            driver = Driver(store)
            await driver.create("hall", "lamp")
            before = await contents(store)
            with pytest.raises(InvalidState) as info:
                await driver.feed("hall", Flip())
            message = str(info.value)
            assert message.startswith("'hall': effect Lit of transition #0 (OFF --Flip--> ON) is not JSON data "
                                      "a store can record: "), message
            assert info.value.code == "invalid_state" and info.value.key == "hall" and "\n" not in message
            assert await contents(store) == before
        finally:
            await store.close()

    asyncio.run(main())


def test_a_created_state_no_store_could_hold_is_an_invalid_state() -> None:
    @dataclass(frozen=True, slots=True)
    class Holder:
        phase: Lamp = Lamp.OFF
        what: Any = None

    machine = Machine("holder", initial=Holder(), phase=lambda s: s.phase,
                      transitions=[Transition(Lamp.OFF, Flip, Lamp.ON), Transition(Lamp.ON, Flip, Lamp.OFF)])

    async def main() -> None:
        store = MemoryStore(Catalog({"holder": machine}))
        with pytest.raises(InvalidState, match="^'h1': a holder state is not JSON data a store can record: "):
            await Driver(store).create("h1", "holder", Holder(what=object()))
        assert await store.keys() == []

    asyncio.run(main())
