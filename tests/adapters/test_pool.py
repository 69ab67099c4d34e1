"""The pool in process: partitions shared, the fence before an attempt, and what it refuses.

The kill -9 tests (test_executor_kill.py) run pools as real processes; these
pin the pool's own rules on one memory store with a clock the test moves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statewright.adapters.runtime.artifacts import MemoryArtifacts
from statewright.adapters.runtime.executor import Context, Executor, runs_catalog
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.operations import Operations
from statewright.adapters.runtime.pool import Pool
from statewright.machines.pipeline import Pipeline, Step
from statewright.machines.run import RunPhase

PIPELINE = Pipeline("p", "v1", (Step("a", "note", "v1"), Step("b", "note", "v1")))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def noting() -> tuple[Operations, list[str]]:
    ops, calls = Operations(), []

    @ops.op("note", "v1")
    def note(ctx: Context) -> None:
        calls.append(f"{ctx.run_id}:{ctx.step_id}")

    return ops, calls


def test_two_pools_divide_the_partitions_and_every_run_ends_once() -> None:
    ops, calls = noting()

    async def main() -> None:
        store = MemoryStore(runs_catalog())
        artifacts = MemoryArtifacts()
        first = Executor(store, artifacts, ops, adopt_children=False)
        second = Executor(store, artifacts, ops, adopt_children=False)
        ids = [await first.launch(PIPELINE, run_id=f"r{i}") for i in range(12)]
        async with Pool(first, partitions=4, max_partitions=2, owner="one") as a, \
                Pool(second, partitions=4, max_partitions=2, owner="two") as b:
            while a.finished + b.finished < len(ids):
                await a.run_once()
                await b.run_once()
                await asyncio.sleep(0.001)
            assert sorted(a.held + b.held) == [0, 1, 2, 3] and len(a.held) == len(b.held) == 2
            assert a.finished > 0 and b.finished > 0
        for run_id in ids:
            assert (await first.report(run_id)).phase is RunPhase.COMPLETED

    asyncio.run(main())
    assert sorted(calls) == sorted(f"r{i}:{s}" for i in range(12) for s in "ab")


def test_the_fence_cancels_a_drive_whose_partition_another_process_took() -> None:
    """The lease ran out (the clock moved past it) and another owner took the partition: the next attempt of a
    run in it is not called; the new holder runs it."""
    ops, calls = Operations(), []
    gate = asyncio.Event()

    @ops.op("note", "v1")
    async def note(ctx: Context) -> None:
        calls.append(f"{ctx.run_id}:{ctx.step_id}")
        if ctx.step_id == "a":
            await gate.wait()

    async def main() -> None:
        clock = Clock()
        store = MemoryStore(runs_catalog(), clock=clock)
        executor = Executor(store, MemoryArtifacts(), ops, adopt_children=False)
        await executor.launch(PIPELINE, run_id="r")
        pool = Pool(executor, partitions=1, lease=10.0, owner="one")
        await pool.run_once()
        while calls != ["r:a"]:
            await asyncio.sleep(0.001)
        clock.now += 11  # the lease ran out, by the store's clock ...
        assert await store.lease("executor", 0, "two", 10.0) is not None  # ... and another owner took it
        pool._held[0].renew_at = 0.0  # as if the loop had not run since: the fence must ask the store
        drive = next(iter(pool._tasks.values()))
        gate.set()  # step a ends; before step b is called, the fence finds the partition gone
        with pytest.raises(asyncio.CancelledError):
            await drive
        assert pool.held == () and pool.driving == ()
        assert calls == ["r:a"]

    asyncio.run(main())


def test_a_pool_refuses_an_executor_that_adopts_child_runs() -> None:
    ops, _ = noting()
    executor = Executor(MemoryStore(runs_catalog()), MemoryArtifacts(), ops)
    with pytest.raises(ValueError, match="must not adopt child runs"):
        Pool(executor)


@pytest.mark.parametrize(("options", "message"), [
    ({"partitions": 0}, "partitions must be at least 1"),
    ({"lease": 0}, "lease and poll must be positive"),
    ({"partitions": 2, "max_partitions": 3}, "max_partitions must be between 1 and partitions"),
])
def test_a_pool_refuses_options_it_cannot_honour(options: dict[str, Any], message: str) -> None:
    ops, _ = noting()
    executor = Executor(MemoryStore(runs_catalog()), MemoryArtifacts(), ops, adopt_children=False)
    with pytest.raises(ValueError, match=message):
        Pool(executor, **options)


def test_a_second_process_gets_half_and_a_survivor_takes_a_dead_ones_share() -> None:
    """No caps: the first process holds every partition until a second joins, then gives back the excess
    (idle partitions first); when one dies -- its leases run out by the store's clock -- the other takes up
    every partition, and the runs launched into them complete."""
    ops, calls = noting()

    async def main() -> None:
        clock = Clock()
        store = MemoryStore(runs_catalog(), clock=clock)
        artifacts = MemoryArtifacts()

        def pool(owner: str) -> Pool:
            return Pool(Executor(store, artifacts, ops, adopt_children=False), partitions=4, lease=10.0,
                        owner=owner, clock=clock)

        a, b = pool("a"), pool("b")
        await a.run_once()
        assert a.held == (0, 1, 2, 3)
        for _ in range(2):  # b counts two members and takes what a gave back
            await b.run_once()
            a._share_at = b._share_at = -1e9  # count again now, as a quarter lease later
            await a.run_once()
        await b.run_once()
        assert len(a.held) == len(b.held) == 2 and sorted(a.held + b.held) == [0, 1, 2, 3]
        clock.now += 11  # a dies: nothing renews its leases, which run out
        a._tasks.clear()
        b._share_at = -1e9
        for _ in range(2):
            await b.run_once()
        assert b.held == (0, 1, 2, 3)
        ids = [await b.executor.launch(PIPELINE, run_id=f"r{i}") for i in range(6)]
        while b.finished < len(ids):
            await b.run_once()
            await asyncio.sleep(0.001)
        await b.release()

    asyncio.run(main())
    assert sorted(calls) == sorted(f"r{i}:{s}" for i in range(6) for s in "ab")
