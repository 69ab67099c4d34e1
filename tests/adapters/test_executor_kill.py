"""Executor and pool regressions found by the kill -9 tests (the tests themselves come next)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statewright.adapters.runtime.artifacts import MemoryArtifacts
from statewright.adapters.runtime.executor import Executor, runs_catalog


# -- found by the kill test: the IO of a failed attempt, replayed ----------------------------------------


def test_a_failed_attempt_that_did_io_replays_identical() -> None:
    """An attempt that read the clock, made an IO call and spawned and awaited a child, then failed: a replay
    takes the failure from its fact without calling the function, and records the facts it had recorded too."""
    from statewright.adapters.runtime.memory import MemoryStore
    from statewright.adapters.runtime.operations import OpFailed, Operations
    from statewright.machines.pipeline import Pipeline, Step

    ops = Operations()
    ops.op("one", "v1", exports=("x",))(lambda ctx: {"x": 1})
    child = Pipeline("sub", "v1", (Step("s", "one", "v1"),))

    @ops.op("flaky", "v1", exports=("t",))
    async def flaky(ctx: Any) -> dict[str, Any]:
        await ctx.now()
        await ctx.random()
        quote = await ctx.io.call("quote", lambda: {"rate": 3})
        spawned = await ctx.spawn(child, key="c")
        done = await ctx.wait_for(spawned, key="c")
        if ctx.attempt == 1:
            raise OpFailed("flaky", "the first attempt fails after its IO")
        return {"t": quote["rate"] + done.outputs["sub.s.run"]["x"]}

    async def main() -> list[Any]:
        executor = Executor(MemoryStore(runs_catalog()), MemoryArtifacts(), ops)
        report = await executor.run(Pipeline("p", "v1", (Step("f", "flaky", "v1"),)), run_config={
            "retry": {"backoff": {"fixed": {"delay_ms": 0}}}})
        assert report.outputs == {"p.f.run": {"t": 4}} and report.failed_state == "p.f.run"
        keys = (await executor.fact_log(report.run_id)).keys()
        assert keys.index("io/quote") < keys.index("child/c") < keys.index("outcome/p.f.run/1")
        replayed = await executor.replay(report.run_id)
        return [replayed.identical, replayed.difference, replayed.transport_calls]

    assert asyncio.run(main()) == [True, None, 0]


# -- found by the kill test: a run whose process died between its terminal input and its final snapshot ---


def test_a_run_ended_but_not_sealed_when_its_process_died_is_finished_by_the_pool() -> None:
    """The last input committed (the run's terminal event is in the log), then the process died before the
    final snapshot and the fact log's seal: the pool holding the partition drives the run once more to do them."""
    from statewright.adapters.runtime.memory import MemoryStore
    from statewright.adapters.runtime.operations import Operations
    from statewright.adapters.runtime.pool import Pool
    from statewright.machines.fact_log import FactLogPhase
    from statewright.machines.pipeline import Pipeline, Step

    ops = Operations()
    ops.op("one", "v1", exports=("x",))(lambda ctx: {"x": 1})

    class Died(Exception):
        pass

    class DiesBeforeItsFinalSnapshot(Executor):
        async def _finish(self, opened: Any, run: Any) -> None:
            raise Died

    async def main() -> tuple[str, FactLogPhase, int]:
        store = MemoryStore(runs_catalog())
        artifacts = MemoryArtifacts()
        first = DiesBeforeItsFinalSnapshot(store, artifacts, ops, adopt_children=False)
        run_id = await first.launch(Pipeline("p", "v1", (Step("s", "one", "v1"),)))
        with pytest.raises(Died):
            await first.drive(run_id)
        assert [e.kind for e in await store.read_log(f"runs/{run_id}")][-1] == "terminal"
        executor = Executor(store, artifacts, ops, adopt_children=False)
        async with Pool(executor, partitions=2) as pool:
            for _ in range(20):
                await pool.run_once()
                await asyncio.sleep(0.01)
                if pool.finished:
                    break
        facts = await executor.fact_log(run_id)
        return (await executor.report(run_id)).phase.value, facts.phase, pool.finished

    assert asyncio.run(main()) == ("completed", FactLogPhase.SEALED, 1)
