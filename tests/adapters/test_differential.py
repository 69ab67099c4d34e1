"""Every backend gives every batch the same outcome and ends holding the same records and logs.

The same random batches -- compare-and-swaps at right and wrong versions,
naming no machine, the right one or another; valid states, states the machine
refuses, states with fields of the wrong type or strings no store can hold;
appends at right and wrong heads, terminal events, payloads with floats, lone
surrogates, NUL, deep nesting and 5000-digit ints; batch ids fresh, repeated
after a success and after a failure, some with an outcome recorded -- are
committed to each backend in lockstep. After each batch the outcomes
(success, or the error's ``code`` and ``key``) and what each store recorded of
the batch's id (`RequestStore.receipt`) must be equal, and every 250 batches
and at the end so must everything the stores hold (keys, records, logs, log
heads, the receipt of every id used).

Why a seeded `random.Random` loop and not hypothesis: the point is one long
history per backend, each batch running against the state every earlier batch
left, and opening one SQLite file (or PostgreSQL database) per example would
cost more than all 2,000 batches do. The seed is fixed, so CI replays the same
2,000 batches every run (``STATEWRIGHT_DIFFERENTIAL_SEED`` and ``..._BATCHES``
explore others); a mismatch reports the batch's number, its operations and
each backend's outcome, which is all it takes to replay it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.readside import ReadStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Cas,
    Catalog,
    InvalidState,
    NotFound,
    Op,
    RequestStore,
    StoreError,
)
from statewright.machines.input import (
    INPUT,
    AbandonReason,
    Abandoned,
    Consumed,
    Input,
    InputPhase,
    Superseded,
    authorize_seed,
)
from statewright.machines.run import Plan, RunPhase, run_machine

SEED = int(os.environ.get("STATEWRIGHT_DIFFERENTIAL_SEED", "20261130"))
BATCHES = int(os.environ.get("STATEWRIGHT_DIFFERENTIAL_BATCHES", "2000"))
CHECK_EVERY = 250

RUN = run_machine(Plan(("fetch", "build"), (("fetch", "build"),)))
CATALOG = Catalog({"input": INPUT, "run": RUN}, {"input": authorize_seed})
KEYS = ("k0", "k1", "k2", "k3")
BAD_KEYS: tuple[Any, ...] = ("\ud800", "nul\x00", "k" * 1025, 7)
KINDS = ("Queue", "Stage", "effect", "é", "line\nbreak")
BAD_KINDS: tuple[Any, ...] = ("\udfff", "a\x00b", 3)

VALID: dict[str, tuple[Any, ...]] = {
    "input": (
        Input(),
        Input(InputPhase.QUEUED),
        Input(InputPhase.STAGED, attempts=1, run_id="r1"),
        Input(InputPhase.STAGED, attempts=2, run_id="é\n"),
        Input(InputPhase.CONSUMED, attempts=1, run_id="r1", outcome=Consumed()),
        Input(InputPhase.SUPERSEDED, outcome=Superseded("in9")),
        Input(InputPhase.ABANDONED, attempts=3, run_id="r3", outcome=Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 3)),
    ),
    "run": (
        RUN.initial,
        replace(RUN.initial, phase=RunPhase.RUNNING, completed=("fetch",), current="build", attempt=1),
    ),
}
INVALID: tuple[Any, ...] = (
    Input(InputPhase.STAGED),  # authorize_seed: no run id, no attempt
    Input(InputPhase.QUEUED, outcome=Consumed()),
    replace(Input(), attempts="2"),  # type: ignore[arg-type]  # reads back as an int
    replace(Input(), attempts=True),
    replace(Input(), max_attempts=3.0),  # type: ignore[arg-type]  # a float
    Input(InputPhase.STAGED, attempts=1, run_id="\ud800"),  # no store can hold it
    Input(InputPhase.STAGED, attempts=1, run_id="nul\x00ok"),  # NUL inside JSON is escaped: valid
    "not a state",
    None,
)

Outcome = tuple[str, Any]


class Batches:
    """Random batches, aimed by a view of the reference store so that about half of them succeed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids: list[str] = []
        self.fresh = 0

    def payload(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if r < 0.02:
            return 0.5 if self.rng.random() < 0.5 else float("nan")
        if r < 0.03:
            return self.rng.choice(["\ud800", {"\udc00": 1}, 10**5000])
        if r < 0.04:
            nested: Any = 0
            for _ in range(self.rng.choice([63, 64, 65, 300])):  # the top object adds one level
                nested = [nested]
            return nested
        if depth >= 3 or r < 0.45:
            return self.rng.choice([0, -1, 2**70, "", "é", "a\x00b", "\u2028", True, False, None])
        if r < 0.75:
            return [self.payload(depth + 1) for _ in range(self.rng.randrange(4))]
        return {self.rng.choice(["a", "b", "type", "é", "1"]): self.payload(depth + 1) for _ in range(self.rng.randrange(4))}

    def key(self) -> Any:
        r = self.rng.random()
        if r < 0.03:
            return self.rng.choice(BAD_KEYS)
        if r < 0.2:
            return f"ghost{self.rng.randrange(1000)}"  # most never created: not_found
        return self.rng.choice(KEYS)

    def kind(self) -> Any:
        return self.rng.choice(BAD_KINDS) if self.rng.random() < 0.03 else self.rng.choice(KINDS)

    def cas(self, key: Any, view: dict[Any, tuple[str, int, int]]) -> Cas:
        machine_now, version, _ = view.get(key, (self.rng.choice(list(VALID)), 0, 0))
        r = self.rng.random()
        expected = version if r < 0.7 else self.rng.choice([0, version + 1, max(version - 1, 0), 5])
        r = self.rng.random()
        if r < 0.4 and expected:
            machine = None
        elif r < 0.9:
            machine = machine_now
        else:
            machine = "run" if machine_now == "input" else "input"
        of = machine or machine_now
        state = self.rng.choice(INVALID) if self.rng.random() < 0.15 else self.rng.choice(VALID[of])
        op = Cas(key, expected, state, machine)
        if isinstance(key, str):
            view[key] = (of, expected + 1, view.get(key, ("", 0, 0))[2])
        return op

    def append(self, key: Any, view: dict[Any, tuple[str, int, int]]) -> Append:
        machine, version, head = view.get(key, ("input", 0, 0))
        expected = head if self.rng.random() < 0.75 else self.rng.choice([0, head + 1, max(head - 1, 0)])
        events = tuple((self.kind(), self.payload()) for _ in range(self.rng.randrange(4)))
        if isinstance(key, str):
            view[key] = (machine, version, expected + len(events))
        return Append(key, expected, events)

    def batch(self, view: dict[Any, tuple[str, int, int]]) -> tuple[list[Op], str | None, Any]:
        ops, batch = self._batch(view)
        if batch is None or self.rng.random() < 0.6:
            return ops, batch, None
        return ops, batch, {"n": self.fresh, "note": self.rng.choice(["é", "a\x00b", 0, None, [1, 2]])}

    def _batch(self, view: dict[Any, tuple[str, int, int]]) -> tuple[list[Op], str | None]:
        ops: list[Op] = []
        for _ in range(self.rng.choice([0, 1, 1, 2, 2, 3, 4])):
            key, r = self.key(), self.rng.random()
            if r < 0.45:
                ops.append(self.cas(key, view))
            elif r < 0.9:
                ops.append(self.append(key, view))
            else:
                ops.append(AppendTerminal(key, self.kind(), self.payload()))
        r = self.rng.random()
        if r < 0.35:
            return ops, None
        if r < 0.85 or not self.ids:
            self.fresh += 1
            self.ids.append(f"batch-{self.fresh}")
            return ops, self.ids[-1]
        return ops, self.rng.choice(self.ids)  # repeated: after a success it is a no-op, after a failure it runs


async def view_of(store: RequestStore) -> dict[Any, tuple[str, int, int]]:
    """Machine, version and log head of every key, read from the reference backend."""
    out = {}
    for key in await store.keys():
        record = await store.load(key)
        out[key] = (record.machine, record.version, len(await store.read_log(key)))
    return out


async def outcome(store: RequestStore, ops: Sequence[Op], batch: str | None, noted: Any) -> Outcome:
    try:
        await store.commit(ops, batch=batch, outcome=noted)
    except StoreError as exc:
        return exc.code, exc.key
    except Exception as exc:  # noqa: BLE001 - a raw error is a finding: it never matches
        return f"raw {type(exc).__name__}", str(exc)[:200]
    return "ok", None if batch is None else await store.receipt(batch)


async def contents(store: RequestStore, ids: Sequence[str]) -> tuple[Any, ...]:
    """Everything a store holds: its logs' events compare with their global positions, which must agree
    exactly -- the same batches, refused or not, must give every event the same place in the gap-free log."""
    keys = await store.keys()
    log = [(e.key, e.seq, e.position) for e in await store.replay_all()] if isinstance(store, ReadStore) else None
    latest = await store.latest_cursor() if isinstance(store, ReadStore) else None
    return (keys, [await store.load(k) for k in keys], [await store.read_log(k) for k in (*KEYS, *keys)],
            [await store.log_head(k) for k in (*KEYS, *keys)], [await store.receipt(i) for i in ids], log, latest)


Opener = Callable[[], Awaitable[dict[str, RequestStore]]]


@pytest.fixture(params=[("memory", "sqlite"), ("memory", "sqlite", "postgres")], ids=["memory+sqlite", "all-three"])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Open one fresh store per backend of the set; PostgreSQL only where its fixture can give a database."""
    names: tuple[str, ...] = request.param
    dsn: str | None = None
    if "postgres" in names:
        dsn = str(request.getfixturevalue("postgres_dsn"))  # skips (or, in CI, fails) without a server

    async def open_all() -> dict[str, RequestStore]:
        stores: dict[str, RequestStore] = {}
        for name in names:
            if name == "memory":
                stores[name] = MemoryStore(CATALOG)
            elif name == "sqlite":
                stores[name] = await SqliteStore.open(tmp_path / "s.db", CATALOG)
            else:
                from statewright.adapters.runtime.postgres import PostgresStore

                assert dsn is not None
                stores[name] = await PostgresStore.open(dsn, CATALOG, busy_timeout=5.0)
        return stores

    return open_all


@pytest.mark.slow
def test_every_backend_agrees_on_every_batch(backends: Opener) -> None:
    tally: dict[str, int] = {}

    async def main() -> None:
        stores = await backends()
        reference = stores["memory"]
        batches = Batches(random.Random(SEED))
        try:
            for n in range(1, BATCHES + 1):
                ops, batch, noted = batches.batch(await view_of(reference))
                outcomes = {name: await outcome(store, ops, batch, noted) for name, store in stores.items()}
                if len(set(map(repr, outcomes.values()))) != 1:
                    pytest.fail(f"batch {n} (seed {SEED}): {ops!r} batch={batch!r} outcome={noted!r}\n  {outcomes}")
                tally[outcomes["memory"][0]] = tally.get(outcomes["memory"][0], 0) + 1
                if n % CHECK_EVERY == 0 or n == BATCHES:
                    held = {name: await contents(store, batches.ids) for name, store in stores.items()}
                    for name, contents_ in held.items():
                        assert contents_ == held["memory"], f"after batch {n}, {name} holds other contents than memory"
                    log, latest = held["memory"][-2:]
                    assert [p for _, _, p in log] == list(range(1, latest + 1))  # gap-free: nothing is pruned here
        finally:
            for store in stores.values():
                await store.close()

    started = time.perf_counter()
    asyncio.run(main())
    print(f"\n[differential] {BATCHES} batches, seed {SEED}: {dict(sorted(tally.items()))} "
          f"in {time.perf_counter() - started:.1f}s")
    # the mix is aimed: every outcome is common enough to be compared many times
    assert sum(tally.values()) == BATCHES
    for code in ("ok", "conflict", "invalid_state", "not_found"):
        assert tally.get(code, 0) >= BATCHES // 25, tally


@pytest.mark.parametrize(
    "ops",
    [
        [Append("k1", 5, ()), Cas("k2", 0, Input(), None)],  # the trial's finding: a failing op, then a no-machine create
        [Cas("k1", 9, Input()), Cas("k1", 1, Input(InputPhase.STAGED))],
        [Append("k9", 0, ()), AppendTerminal("k1", "x", {"at": 0.5})],
        [Cas("k1", 0, Input(), "input"), Cas("k2", 1, "nope")],
    ],
    ids=["no-machine create", "no-machine invalid", "float after not found", "wrong type after conflict"],
)
def test_invalid_state_wins_on_every_backend(backends: Opener, ops: list[Op]) -> None:
    """Every op is validated and serialised before any version or head is compared, on every backend."""

    async def main() -> None:
        stores = await backends()
        try:
            for name, store in stores.items():
                await store.cas("k1", 0, Input(), machine="input")
                await store.cas("k2", 0, Input(), machine="input")
                with pytest.raises(InvalidState):
                    await store.commit(ops)
                assert (await store.load("k1")).version == 1, name
        finally:
            for store in stores.values():
                await store.close()

    asyncio.run(main())


def test_a_batch_id_repeated_after_success_is_a_no_op_and_after_failure_runs(backends: Opener) -> None:
    async def main() -> None:
        stores = await backends()
        try:
            for store in stores.values():
                await store.commit([Cas("k1", 0, Input(), "input")], batch="b1")
                await store.commit([Cas("k1", 0, Input(), "input")], batch="b1")  # the same: a no-op
                with pytest.raises(NotFound):
                    await store.commit([Cas("k2", 1, Input())], batch="b2")
                await store.commit([Cas("k2", 0, Input(), "input")], batch="b2")  # failed before: runs now
                assert [(await store.load(k)).version for k in ("k1", "k2")] == [1, 1]
        finally:
            for store in stores.values():
                await store.close()

    asyncio.run(main())
