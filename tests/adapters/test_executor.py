"""The executor's behaviour, in process: runs, retries, resume after a cancelled drive, launch, child runs, replay.

Most cases run on the memory store; a representative subset (a run, a
resume, a replay) runs on SQLite and PostgreSQL too, through the ``place``
fixture. Each test pins what the model fixes: the run log's events in order,
the fact log's keys in order, attempt numbers, and the delays handed to the
injected sleep. Every run log a test leaves is checked to hold exactly one
``RunCompleted`` and to be the replay of its own inputs through the run
machine (`check_log`). The shared pipeline, `_pipelines.SHOP`, has three
steps, a flaky one and a child run.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.artifacts import ArtifactStore, MemoryArtifacts
from statewright.adapters.runtime.artifacts_sqlite import SqliteArtifacts
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.executor import (
    Context,
    Executor,
    ReplayReport,
    RunReport,
    facts_key,
    run_key,
    runs_catalog,
)
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.operations import ErrorInfo, OpFailed, Operations
from statewright.adapters.runtime.run_errors import (
    MissingFact,
    MissingFactKey,
    PlanChanged,
    PlanRefused,
    ReplayDiverged,
    RunError,
    RunExists,
    RunNotFinished,
    RunNotFound,
)
from statewright.adapters.runtime.store import Catalog, Event, Store
from statewright.kernel.jsonable import event_json
from statewright.kernel.step import Accepted, step
from statewright.machines.input import INPUT
from statewright.machines.pipeline import Pipeline, Step, linear_op
from statewright.machines.run import Outcome, Run, RunPhase
from tests.adapters import _backends as B
from tests.adapters import _pipelines as P

# -- where the runs live ------------------------------------------------------------------


class Place:
    """A store and an artifact store on one backend; `executor` opens them afresh, as a new process would."""

    def __init__(self, name: str, locator: str) -> None:
        self.name = name
        self.locator = locator
        self._memory = (MemoryStore(runs_catalog()), MemoryArtifacts()) if name == "memory" else None

    @asynccontextmanager
    async def executor(self, ops: Operations, **options: Any) -> AsyncIterator[Executor]:
        """A new `Executor` over this place's stores (the same memory objects, or new connections); closed after."""
        if self._memory is not None:
            yield Executor(*self._memory, ops, **options)
            return
        store = await B.open_store(self.locator, runs_catalog())
        try:
            artifacts: ArtifactStore
            if B.is_postgres(self.locator):
                from statewright.adapters.runtime.artifacts_postgres import PostgresArtifacts

                artifacts = await PostgresArtifacts.open(self.locator)  # the store's default schema
            else:
                artifacts = await SqliteArtifacts.open(self.locator)  # the store's file
            try:
                yield Executor(store, artifacts, ops, **options)
            finally:
                await artifacts.close()
        finally:
            await store.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "memory":
        return Place("memory", "")
    return Place(str(request.param), B.locator(str(request.param), tmp_path, request))


class Sleeps:
    """The injected sleep: records each delay instead of waiting it."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def memory_executor(ops: Operations, **options: Any) -> Executor:
    options.setdefault("sleep", Sleeps())
    return Executor(MemoryStore(runs_catalog()), MemoryArtifacts(), ops, **options)


def go(test: Callable[[], Any]) -> Any:
    return asyncio.run(test())


async def crash(executor: Executor, *tasks: asyncio.Task[Any]) -> None:
    """Stop everything ``executor`` was doing at its next await, as a process that dies would: its drives
    (``tasks``) and the child runs it adopted are cancelled; what it committed stays."""
    doomed = [*tasks, *executor._tasks.values()]  # the child drives it started itself
    for task in doomed:
        task.cancel()
    await asyncio.gather(*doomed, return_exceptions=True)


# -- reading the logs ---------------------------------------------------------------------

ORDER = ("state_id", "attempt", "retryable", "will_retry", "outcome", "phase", "child")


def line(event: Event) -> str:
    """An event in a word or three: ``Enter shop.fetch.run``, ``StateFailed shop.price.run 1 True``."""
    if event.kind == "created":
        return "created"
    head = event.data.get("type", event.kind)
    return " ".join([head, *(str(event.data[k]) for k in ORDER if k in event.data)])


async def run_log(store: Store, run_id: str) -> list[str]:
    return [line(e) for e in await store.read_log(run_key(run_id))]


async def linkage(store: Store, run_id: str) -> list[str]:
    """The child-run linkage events of a run's fact log."""
    return [line(e) for e in await store.read_log(facts_key(run_id))
            if e.kind == "effect" and e.data["type"] in ("ChildRunSpawned", "ChildRunCompleted")]


async def fact_keys(executor: Executor, run_id: str) -> list[str]:
    return list((await executor.fact_log(run_id)).keys())


async def check_log(store: Store, run_id: str, *, ended: bool = True) -> Run:
    """One ``RunCompleted`` (none while ``ended`` is False), and the stored run is the replay of its log.

    Folds each logged input through the run machine with `kernel.step.step`
    from the logged created state: each must be accepted, the effects it gives
    must be the effects logged after it, and the last state the stored one.
    """
    events = await store.read_log(run_key(run_id))
    assert len([e for e in events if line(e).startswith("RunCompleted")]) == (1 if ended else 0)
    assert events[0].kind == "created"
    state = store.catalog.load("run", json.dumps(events[0].data["state"]), key=run_key(run_id))
    machine, driver = store.catalog.machine("run"), Driver(store)
    folded: list[Any] = []
    logged: list[Any] = []
    for event in events[1:]:
        if event.kind == "input":
            result = step(machine, state, driver.parse("run", event.data))
            assert isinstance(result, Accepted), (event, state)
            state = result.state
            folded += [event_json(effect) for effect in result.effects]
        elif event.kind == "effect":
            logged.append(event.data)
    assert folded == logged
    assert state == (await store.load(run_key(run_id))).state
    assert isinstance(state, Run)
    return state


SHOP_LOG = [
    "created",
    "Start", "RunStarted",
    "Enter shop.fetch.run", "StateEntered shop.fetch.run 1",
    "Succeed shop.fetch.run", "StateCompleted shop.fetch.run",
    "Enter shop.price.run", "StateEntered shop.price.run 1",
    "Fail shop.price.run True", "StateFailed shop.price.run 1 True", "StateEntered shop.price.run 2",
    "Succeed shop.price.run", "StateCompleted shop.price.run",
    "Enter shop.report.run", "StateEntered shop.report.run 1",
    "Succeed shop.report.run", "StateCompleted shop.report.run", "RunCompleted completed",
    "terminal completed",
]
"""The run log of a run of `SHOP`: ``price`` fails once (the quote times out) and succeeds on attempt 2."""

SHOP_FACTS = [
    "snapshot/base",
    "clock/shop.fetch.run/1/1", "outcome/shop.fetch.run/1", "snapshot/state/shop.fetch.run",
    "clock/shop.price.run/1/1", "outcome/shop.price.run/1", "snapshot/failure/shop.price.run/1",
    "clock/shop.price.run/2/1", "io/quote", "outcome/shop.price.run/2", "snapshot/state/shop.price.run",
    "child/dbl", "child_done/dbl", "outcome/shop.report.run/1", "snapshot/state/shop.report.run",
    "snapshot/final",
]
"""The fact log's keys of a run of `SHOP`, in the order they were recorded."""

SUB_LOG = [
    "created", "Start", "RunStarted", "Enter sub.d.run", "StateEntered sub.d.run 1",
    "Succeed sub.d.run", "StateCompleted sub.d.run", "RunCompleted completed", "terminal completed",
]
SUB_FACTS = ["snapshot/base", "outcome/sub.d.run/1", "snapshot/state/sub.d.run", "snapshot/final"]


def quote_line() -> str:
    """``file:line`` of the quote service's timeout in `_pipelines`."""
    source = Path(P.__file__).read_text().splitlines()
    at = next(i for i, text in enumerate(source, 1) if 'raise TimeoutError("quote service timed out")' in text)
    return f"{P.__file__}:{at}"


def shop_report(run_id: str) -> RunReport:
    message = f"Shop._register.<locals>.price: TimeoutError: quote service timed out (at {quote_line()})"
    return RunReport(run_id, RunPhase.COMPLETED, Outcome.COMPLETED, P.STATES, P.OUTPUTS,
                     "shop.price.run", ErrorInfo("op_raised", message, True))


async def check_shop(executor: Executor, run_id: str) -> None:
    """A finished run of `SHOP` and its child, as its logs, facts and report must be."""
    store = executor.store
    assert await executor.report(run_id) == shop_report(run_id)
    assert await run_log(store, run_id) == SHOP_LOG
    assert await fact_keys(executor, run_id) == SHOP_FACTS
    child = f"{run_id}.dbl"
    assert await run_log(store, child) == SUB_LOG
    assert await fact_keys(executor, child) == SUB_FACTS
    assert (await executor.fact_log(child)).parent == run_id
    assert await linkage(store, run_id) == [f"ChildRunSpawned {child}", f"ChildRunCompleted completed {child}"]
    for run in (run_id, child):
        await check_log(store, run)


# -- a run -----------------------------------------------------------------------------------


def test_the_shop_runs_to_completed_with_one_retry_and_its_child(place: Place) -> None:
    shop, sleeps = P.Shop(), Sleeps()

    async def main() -> None:
        async with place.executor(shop.ops, sleep=sleeps) as executor:
            report = await executor.run(P.SHOP, run_id="r1")
            assert report == shop_report("r1")
            await check_shop(executor, "r1")
            assert sorted(await executor.store.keys()) == ["runs/r1", "runs/r1.dbl", "runs/r1.dbl/facts",
                                                           "runs/r1/facts"]

    go(main)
    assert sleeps.delays == [0.1]  # the default backoff: exponential from 100 ms, before attempt 2
    assert shop.calls == {"fetch": 1, "price": 2, "report": 1, "double": 1}
    assert shop.quotes == 2
    key = "r1:shop.price.run:quote"
    assert shop.keys == [("shop.fetch.run", 1, "r1:shop.fetch.run"), ("shop.price.run", 1, key),
                         ("shop.price.run", 2, key), ("shop.report.run", 1, "r1:shop.report.run"),
                         ("sub.d.run", 1, "r1.dbl:sub.d.run")]


def test_imports_come_from_the_latest_earlier_step_exporting_the_port() -> None:
    ops = Operations()
    seen: list[Mapping[str, Any]] = []

    @ops.op("emit", "v1", exports=("x",))
    def emit(ctx: Context) -> dict[str, Any]:
        return {"x": ctx.config["x"]}

    @ops.op("take", "v1", imports=("x",), exports=("y",))
    def take(ctx: Context) -> dict[str, Any]:
        seen.append(dict(ctx.inputs))
        return {"y": ctx.inputs["x"] * 10}

    pipeline = Pipeline("wire", "v1", (Step("a", "emit", "v1", {"x": 1}), Step("b", "take", "v1"),
                                       Step("c", "emit", "v1", {"x": 2}), Step("d", "take", "v1")))

    async def main() -> None:
        executor = memory_executor(ops)
        report = await executor.run(pipeline, run_id="w")
        assert report.outputs == {"wire.a.run": {"x": 1}, "wire.b.run": {"y": 10}, "wire.c.run": {"x": 2},
                                  "wire.d.run": {"y": 20}}
        assert report.failed_state is None and report.error is None
        await check_log(executor.store, "w")

    go(main)
    assert seen == [{"x": 1}, {"x": 2}]


def test_a_plain_function_and_one_returning_none_run() -> None:
    ops = Operations()

    @ops.op("noop", "v1")
    def noop(ctx: Context) -> None:
        return None

    async def main() -> None:
        executor = memory_executor(ops)
        report = await executor.run(Pipeline("n", "v1", (Step("s", "noop", "v1"),)), run_id="n")
        assert (report.outcome, report.outputs) == (Outcome.COMPLETED, {"n.s.run": {}})

    go(main)


# -- retries ---------------------------------------------------------------------------------


def failing(until: int, *, retryable: bool = True) -> tuple[Operations, list[int]]:
    """Operation ``flaky`` failing (`OpFailed` ``busy``, naming the attempt) while attempt <= ``until``."""
    ops, attempts = Operations(), []

    @ops.op("flaky", "v1", exports=("ok",))
    def flaky(ctx: Context) -> dict[str, Any]:
        attempts.append(ctx.attempt)
        if ctx.attempt <= until:
            raise OpFailed("busy", f"attempt {ctx.attempt}", retryable=retryable)
        return {"ok": ctx.attempt}

    return ops, attempts


FLAKY = Pipeline("f", "v1", (Step("s", "flaky", "v1"),))


@pytest.mark.parametrize(
    ("run_config", "until", "delays", "outcome"),
    [
        ({"retry": {"max_attempts": 3, "backoff": {"fixed": {"delay_ms": 250}}}}, 99, [0.25, 0.25], Outcome.FAILED),
        ({"retry": {"max_attempts": 3, "backoff": {"fixed": {"delay_ms": 250}}}}, 2, [0.25, 0.25], Outcome.COMPLETED),
        ({"retry": {"max_attempts": 5, "backoff": {"exponential": {"initial_ms": 100, "factor": 3, "max_ms": 500}}}},
         99, [0.1, 0.3, 0.5, 0.5], Outcome.FAILED),
        ({"retry": {"max_attempts": 5, "backoff": {"exponential": {"initial_ms": 100, "factor": 3, "max_ms": 500}}}},
         3, [0.1, 0.3, 0.5], Outcome.COMPLETED),
        (None, 99, [0.1, 0.2], Outcome.FAILED),  # the defaults: 3 attempts, 100 ms doubling
        ({"retry": {"max_attempts": 1}}, 99, [], Outcome.FAILED),
    ],
)
def test_a_retryable_failure_retries_with_the_run_configs_backoff(
    run_config: Any, until: int, delays: list[float], outcome: Outcome
) -> None:
    ops, attempts = failing(until)
    sleeps = Sleeps()
    made = len(delays) + 1

    async def main() -> None:
        executor = memory_executor(ops, sleep=sleeps)
        report = await executor.run(FLAKY, run_config=run_config, run_id="r")
        assert report.outcome is outcome
        last_failed = made if outcome is Outcome.FAILED else made - 1
        assert (report.failed_state, report.error) == ("f.s.run", ErrorInfo("busy", f"attempt {last_failed}"))
        log = await run_log(executor.store, "r")
        retries = [line for n in range(1, made) for line in
                   (f"Fail f.s.run True", f"StateFailed f.s.run {n} True", f"StateEntered f.s.run {n + 1}")]
        end = (["Fail f.s.run True", f"StateFailed f.s.run {made} False", "RunCompleted failed", "terminal failed"]
               if outcome is Outcome.FAILED else
               ["Succeed f.s.run", "StateCompleted f.s.run", "RunCompleted completed", "terminal completed"])
        assert log == ["created", "Start", "RunStarted", "Enter f.s.run", "StateEntered f.s.run 1", *retries, *end]
        outcomes = [f"outcome/f.s.run/{n}" for n in range(1, made + 1)]
        assert [k for k in await fact_keys(executor, "r") if k.startswith("outcome/")] == outcomes
        assert [k for k in await fact_keys(executor, "r") if k.startswith("snapshot/failure/")] == \
            [f"snapshot/failure/f.s.run/{n}" for n in range(1, last_failed + 1)]
        await check_log(executor.store, "r")

    go(main)
    assert attempts == list(range(1, made + 1))
    assert sleeps.delays == delays


def test_a_failure_that_is_not_retryable_fails_the_run_at_once() -> None:
    ops, attempts = failing(99, retryable=False)
    sleeps = Sleeps()

    async def main() -> None:
        executor = memory_executor(ops, sleep=sleeps)
        report = await executor.run(FLAKY, run_config={"retry": {"max_attempts": 5}}, run_id="r")
        assert report == RunReport("r", RunPhase.FAILED, Outcome.FAILED, (), {}, "f.s.run",
                                   ErrorInfo("busy", "attempt 1", False))
        assert (await run_log(executor.store, "r"))[-5:] == [
            "StateEntered f.s.run 1", "Fail f.s.run False", "StateFailed f.s.run 1 False", "RunCompleted failed",
            "terminal failed"]
        assert await fact_keys(executor, "r") == ["snapshot/base", "outcome/f.s.run/1", "snapshot/failure/f.s.run/1",
                                                  "snapshot/final"]
        await check_log(executor.store, "r")

    go(main)
    assert (attempts, sleeps.delays) == ([1], [])


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (1.5, "float, not a dict of exports (str keys) or None"),
        ([1, 2], "list, not a dict of exports (str keys) or None"),
        ({1: "a"}, "dict, not a dict of exports (str keys) or None"),
        ("text", "str, not a dict of exports (str keys) or None"),
        ({"x": 0.5}, "exports that are not JSON data without floats: "),
    ],
)
def test_an_output_that_is_not_a_dict_of_json_is_bad_output_and_not_retried(output: Any, problem: str) -> None:
    ops, calls = Operations(), []

    @ops.op("odd", "v1", exports=("x",))
    def odd(ctx: Context) -> Any:
        calls.append(ctx.attempt)
        return output

    async def main() -> None:
        executor = memory_executor(ops)
        report = await executor.run(Pipeline("o", "v1", (Step("s", "odd", "v1"),)), run_id="o")
        assert (report.outcome, report.failed_state) == (Outcome.FAILED, "o.s.run")
        assert report.error is not None and (report.error.code, report.error.retryable) == ("bad_output", False)
        name = "test_an_output_that_is_not_a_dict_of_json_is_bad_output_and_not_retried.<locals>.odd"
        assert report.error.message.startswith(f"{name} returned {problem}")
        if not problem.endswith(": "):
            assert report.error.message == f"{name} returned {problem}"
        await check_log(executor.store, "o")

    go(main)
    assert calls == [1]


def test_a_raising_operation_fails_retryably_naming_the_function_and_where_it_raised() -> None:
    ops = Operations()

    def parse(text: str) -> int:
        return int(text)

    @ops.op("broken", "v1")
    def broken(ctx: Context) -> None:
        parse("twelve")

    async def main() -> RunReport:
        return await memory_executor(ops).run(Pipeline("b", "v1", (Step("s", "broken", "v1"),)),
                                              run_config={"retry": {"max_attempts": 2}}, run_id="b")

    report = go(main)
    name = "test_a_raising_operation_fails_retryably_naming_the_function_and_where_it_raised.<locals>.broken"
    where = f"{__file__}:{parse.__code__.co_firstlineno + 1}"  # the deepest frame in the function's own file
    assert report.error == ErrorInfo(
        "op_raised", f"{name}: ValueError: invalid literal for int() with base 10: 'twelve' (at {where})", True)
    assert (report.outcome, report.failed_state) == (Outcome.FAILED, "b.s.run")


# -- resume ----------------------------------------------------------------------------------


def test_a_drive_cancelled_inside_an_operation_resumes_on_a_new_executor(place: Place) -> None:
    """``price`` is cancelled in attempt 1; a new executor runs attempt 1 again (same number, same key), never fetch."""
    shop = P.Shop()
    gate = shop.hold("price")

    async def main() -> None:
        async with place.executor(shop.ops, sleep=Sleeps()) as first:
            drive = asyncio.ensure_future(first.run(P.SHOP, run_id="r1"))
            await gate.entered.wait()
            await crash(first, drive)
            assert await fact_keys(first, "r1") == SHOP_FACTS[:4]  # fetch's outcome and snapshot are recorded
            assert await run_log(first.store, "r1") == SHOP_LOG[:9]  # price's attempt 1 is in flight
            await check_log(first.store, "r1", ended=False)
        shop.release("price")
        sleeps = Sleeps()
        async with place.executor(shop.ops, sleep=sleeps) as second:
            assert await second.resume("r1") == shop_report("r1")
            await check_shop(second, "r1")
        assert sleeps.delays == [0.1]

    go(main)
    key = "r1:shop.price.run:quote"
    assert shop.calls == {"fetch": 1, "price": 3, "report": 1, "double": 1}
    assert [k for k in shop.keys if k[0] == "shop.price.run"] == [
        ("shop.price.run", 1, key), ("shop.price.run", 1, key), ("shop.price.run", 2, key)]
    assert shop.quotes == 2  # the cancelled call never reached the quote service


def test_an_attempt_cancelled_after_a_retry_runs_again_under_its_own_number() -> None:
    """Cancelled in attempt 2: the resumed drive runs attempt 2, not 1 or 3, and waits its backoff again."""
    shop = P.Shop()
    gate = shop.hold("price", attempt=2)
    sleeps = Sleeps()
    store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()

    async def main() -> None:
        first = Executor(store, artifacts, shop.ops, sleep=sleeps)
        drive = asyncio.ensure_future(first.run(P.SHOP, run_id="r1"))
        await gate.entered.wait()
        await crash(first, drive)
        assert (await store.load(run_key("r1"))).state.attempt == 2
        assert await fact_keys(first, "r1") == SHOP_FACTS[:7]
        shop.release("price")
        second = Executor(store, artifacts, shop.ops, sleep=sleeps)
        assert await second.resume("r1") == shop_report("r1")
        await check_shop(second, "r1")

    go(main)
    key = "r1:shop.price.run:quote"
    assert [k for k in shop.keys if k[0] == "shop.price.run"] == [
        ("shop.price.run", 1, key), ("shop.price.run", 2, key), ("shop.price.run", 2, key)]
    assert sleeps.delays == [0.1, 0.1]  # the wait is not recorded: a restarted attempt 2 waits it again
    assert shop.quotes == 2


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_crash_between_recording_an_outcome_and_feeding_it_calls_nothing_again(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after ``outcome/shop.fetch.run/1`` is recorded, before ``Succeed``: the resumed drive feeds
    ``Succeed`` from the recorded outcome, once, without calling fetch again."""
    shop = P.Shop()
    where = Place(backend, str(tmp_path / "s.db"))

    async def main() -> None:
        async with where.executor(shop.ops, sleep=Sleeps()) as first:
            feed = first._feed

            async def dies_before_succeed(run_id: str, value: Any, request: str) -> Any:
                if request == "done/shop.fetch.run/1":
                    raise RuntimeError("killed")
                return await feed(run_id, value, request)

            monkeypatch.setattr(first, "_feed", dies_before_succeed)
            with pytest.raises(RuntimeError, match="killed"):
                await first.run(P.SHOP, run_id="r1")
            assert await fact_keys(first, "r1") == SHOP_FACTS[:4]
            assert await run_log(first.store, "r1") == SHOP_LOG[:5]
        async with where.executor(shop.ops, sleep=Sleeps()) as second:
            assert await second.resume("r1") == shop_report("r1")
            await check_shop(second, "r1")
            assert (await run_log(second.store, "r1")).count("Succeed shop.fetch.run") == 1

    go(main)
    assert shop.calls == {"fetch": 1, "price": 2, "report": 1, "double": 1}


def test_an_outcome_recorded_by_someone_else_is_taken_and_the_function_not_called() -> None:
    """A fact ``outcome/<state>/<attempt>`` recorded through the executor's API before the drive reaches the
    attempt (as a racing executor would) is the attempt's outcome: the function is never called."""
    ops, attempts = failing(0)

    async def main() -> None:
        executor = memory_executor(ops)
        await executor.launch(FLAKY, run_id="r")
        await executor.record_value("r", "outcome/f.s.run/1", {"ok": True, "output": {"ok": 41}})
        report = await executor.drive("r")
        assert (report.outcome, report.outputs) == (Outcome.COMPLETED, {"f.s.run": {"ok": 41}})
        await check_log(executor.store, "r")

    go(main)
    assert attempts == []


def test_two_executors_racing_on_one_run_both_finish_with_one_outcome_per_attempt() -> None:
    ops, calls = Operations(), []

    @ops.op("count", "v1", exports=("n",))
    async def count(ctx: Context) -> dict[str, Any]:
        calls.append(ctx.state_id)
        for _ in range(3):
            await asyncio.sleep(0)  # let the other executor in
        return {"n": len(calls)}  # differs between the racers: only the first recorded counts

    pipeline = Pipeline("race", "v1", (Step("a", "count", "v1"), Step("b", "count", "v1")))
    store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()

    async def main() -> None:
        one, two = (Executor(store, artifacts, ops, sleep=Sleeps()) for _ in range(2))
        await one.launch(pipeline, run_id="r")
        first, second = await asyncio.gather(one.drive("r"), two.drive("r"))
        assert first == second and first.outcome is Outcome.COMPLETED
        recorded = [json.loads(await artifacts.get(a)) for k, a in (await one.fact_log("r")).facts
                    if k.startswith("outcome/")]
        assert [r["output"] for r in recorded] == [first.outputs["race.a.run"], first.outputs["race.b.run"]]
        assert [k for k in await fact_keys(one, "r") if k.startswith("outcome/")] == [
            "outcome/race.a.run/1", "outcome/race.b.run/1"]
        assert await run_log(store, "r") == [
            "created", "Start", "RunStarted", "Enter race.a.run", "StateEntered race.a.run 1", "Succeed race.a.run",
            "StateCompleted race.a.run", "Enter race.b.run", "StateEntered race.b.run 1", "Succeed race.b.run",
            "StateCompleted race.b.run", "RunCompleted completed", "terminal completed"]
        await check_log(store, "r")

    go(main)
    assert calls == ["race.a.run", "race.a.run", "race.b.run", "race.b.run"]  # both called each: a true race


# -- launching -------------------------------------------------------------------------------


def calc() -> tuple[Operations, list[int]]:
    ops, calls = Operations(), []

    @ops.op("double", "v1", exports=("n",))
    def double(ctx: Context) -> dict[str, Any]:
        calls.append(ctx.input)
        return {"n": ctx.input * 2}

    return ops, calls


CALC = Pipeline("calc", "v1", (Step("twice", "double", "v1"),))


def test_launching_the_same_run_id_with_the_same_manifest_again_changes_nothing() -> None:
    ops, calls = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        assert await executor.launch(CALC, 21, run_id="r") == "r"
        assert await executor.launch(CALC, 21, run_id="r") == "r"
        assert await run_log(executor.store, "r") == ["created"]
        assert await fact_keys(executor, "r") == ["snapshot/base"]
        report = await executor.drive("r")
        assert (report.outcome, report.outputs) == (Outcome.COMPLETED, {"calc.twice.run": {"n": 42}})
        log, facts = await run_log(executor.store, "r"), await fact_keys(executor, "r")
        assert await executor.launch(CALC, 21, run_id="r") == "r"  # a finished run too: nothing runs again
        assert await executor.drive("r") == report
        assert (await run_log(executor.store, "r"), await fact_keys(executor, "r")) == (log, facts)
        await check_log(executor.store, "r")

    go(main)
    assert calls == [21]


def test_launching_a_taken_run_id_with_another_manifest_is_run_exists() -> None:
    ops, _ = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        await executor.launch(CALC, 21, run_id="r")
        for other in ({"input": 22}, {"input": 21, "run_config": {"retry": {"max_attempts": 1}}}):
            with pytest.raises(RunExists) as info:
                await executor.launch(CALC, other["input"], run_config=other.get("run_config"), run_id="r")
            assert info.value.code == "run_exists" and info.value.run_id == "r"
            assert str(info.value) == "run 'r' already exists with another manifest; resume it, or launch a new run"
        assert await run_log(executor.store, "r") == ["created"]

    go(main)


def test_a_second_launch_of_a_pipeline_whose_run_completed_is_a_new_run() -> None:
    """The source's run-id bug: a start re-attached to the completed run of the same pipeline. Here it never can."""
    ops, calls = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        first = await executor.run(CALC, 21)
        log = await run_log(executor.store, first.run_id)
        second = await executor.run(CALC, 21)
        assert first.run_id != second.run_id
        assert first.outcome is second.outcome is Outcome.COMPLETED
        assert await run_log(executor.store, first.run_id) == log == await run_log(executor.store, second.run_id)
        for run in (first.run_id, second.run_id):
            await check_log(executor.store, run)

    go(main)
    assert calls == [21, 21]


def test_a_state_with_no_function_is_op_not_found_and_nothing_is_stored() -> None:
    ops = Operations()
    ops.add(linear_op("two", "v1", ("prep", "run")), {"run": lambda ctx: None})

    async def main() -> None:
        executor = memory_executor(ops)
        with pytest.raises(PlanRefused) as info:
            await executor.launch(Pipeline("p", "v1", (Step("s", "two", "v1"),)), run_id="r")
        assert info.value.code == "op_not_found"
        assert (info.value.failure.step_id, info.value.failure.state_id) == ("s", "p.s.prep")
        assert str(info.value) == (
            "run 'r': op_not_found: step 's': operation 'two' version 'v1' has no function for state 'prep'")
        with pytest.raises(PlanRefused) as info:
            await executor.launch(Pipeline("p", "v1", (Step("s", "three", "v1"),)), run_id="r")
        assert str(info.value) == (  # not registered at all: the planner's own check
            "run 'r': op_not_found: step 's': operation 'three' version 'v1' is not in the registry")
        assert await executor.store.keys() == []

    go(main)


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts must be an integer from 1 to 100, got 0"),
        ({"retry": {"backoff": {"linear": {}}}}, "retry.backoff: unknown kind 'linear' (fixed or exponential)"),
        ({"retries": 3}, "run_config: unknown field 'retries'"),
    ],
)
def test_an_invalid_run_config_is_refused_at_launch(run_config: Any, message: str) -> None:
    ops, calls = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        with pytest.raises(PlanRefused) as info:
            await executor.launch(CALC, 1, run_config=run_config, run_id="r")
        assert info.value.code == "invalid_run_config"
        assert str(info.value) == f"run 'r': invalid_run_config: {message}"
        assert await executor.store.keys() == []

    go(main)
    assert calls == []


def test_a_run_whose_plan_changed_since_it_started_is_plan_changed() -> None:
    ops, calls = calc()
    store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()
    changed = Operations()
    changed.add(linear_op("double", "v1", ("check", "run"), exports=("n",)),
                {"check": lambda ctx: None, "run": lambda ctx: {"n": 0}})

    async def main() -> None:
        await Executor(store, artifacts, ops).launch(CALC, 21, run_id="r")
        with pytest.raises(PlanChanged) as info:
            await Executor(store, artifacts, changed).drive("r")
        assert info.value.code == "plan_changed"
        assert str(info.value) == (
            "run 'r': the stored plan differs from the plan its manifest gives now (stored states calc.twice.run; "
            "now calc.twice.check, calc.twice.run); register the operations the run was started with")
        assert await run_log(store, "r") == ["created"]
        report = await Executor(store, artifacts, ops).drive("r")  # with the operations it started with, it runs
        assert report.outputs == {"calc.twice.run": {"n": 42}}

    go(main)
    assert calls == [21]


def test_an_unknown_run_is_run_not_found() -> None:
    ops, _ = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        for call in (executor.drive, executor.report, executor.replay, executor.fact_log):
            with pytest.raises(RunNotFound) as info:
                await call("nope")
            assert (info.value.code, str(info.value)) == ("run_not_found", "no run 'nope' in this store")

    go(main)


@pytest.mark.parametrize("run_id", ["", "../etc", "-r", "a" * 201, "r 1"])
def test_a_run_id_that_is_not_a_plain_name_is_refused(run_id: str) -> None:
    ops, _ = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        with pytest.raises(RunError, match="must be 1-200 letters, digits"):
            await executor.launch(CALC, 1, run_id=run_id)
        assert await executor.store.keys() == []

    go(main)


def test_the_executor_refuses_a_store_whose_catalog_lacks_its_machines() -> None:
    ops, _ = calc()
    message = "the store's catalog must hold the executor's {!r} machine: open the store with runs_catalog()"
    with pytest.raises(ValueError) as info:
        Executor(MemoryStore(Catalog({"input": INPUT})), MemoryArtifacts(), ops)
    assert str(info.value) == message.format("run")
    with pytest.raises(ValueError) as info:
        Executor(MemoryStore(Catalog({**runs_catalog().machines, "fact_log": INPUT})), MemoryArtifacts(), ops)
    assert str(info.value) == message.format("fact_log")
    assert Executor(MemoryStore(runs_catalog({"input": INPUT})), MemoryArtifacts(), ops).store is not None


# -- child runs ------------------------------------------------------------------------------


def test_a_parent_cancelled_after_spawning_and_resumed_twice_links_its_child_once() -> None:
    """Cancelled while its child runs, twice: ``ChildRunSpawned`` and ``ChildRunCompleted`` each once, one child."""
    shop = P.Shop()
    store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()

    async def main() -> None:
        for n in range(2):
            gate = shop.hold("double")
            executor = Executor(store, artifacts, shop.ops, sleep=Sleeps())
            drive = asyncio.ensure_future(executor.run(P.SHOP, run_id="r1") if n == 0 else executor.resume("r1"))
            await gate.entered.wait()  # the parent waits for its child, whose state is in flight
            await crash(executor, drive)
            assert await linkage(store, "r1") == ["ChildRunSpawned r1.dbl"]
            assert await fact_keys(executor, "r1.dbl") == ["snapshot/base"]
        shop.release("double")
        last = Executor(store, artifacts, shop.ops, sleep=Sleeps())
        assert await last.resume("r1") == shop_report("r1")
        await check_shop(last, "r1")
        assert (await run_log(store, "r1.dbl")).count("created") == 1

    go(main)
    assert shop.calls == {"fetch": 1, "price": 2, "report": 3, "double": 3}
    assert [k for k in shop.keys if k[0] == "sub.d.run"] == [("sub.d.run", 1, "r1.dbl:sub.d.run")] * 3


def test_a_child_that_fails_reports_its_outcome_to_the_parent() -> None:
    ops = Operations()
    sub = Pipeline("sub", "v1", (Step("s", "refuse", "v1"),))

    @ops.op("refuse", "v1")
    def refuse(ctx: Context) -> None:
        raise OpFailed("no", retryable=False)

    @ops.op("parent", "v1", exports=("outcome",))
    async def parent(ctx: Context) -> dict[str, Any]:
        done = await ctx.wait_for(await ctx.spawn(sub, key="kid"), key="kid")
        return {"outcome": done.outcome, "child": done.run_id}

    async def main() -> None:
        executor = memory_executor(ops)
        report = await executor.run(Pipeline("p", "v1", (Step("s", "parent", "v1"),)), run_id="p")
        assert report.outputs == {"p.s.run": {"outcome": "failed", "child": "p.kid"}}
        assert await linkage(executor.store, "p") == ["ChildRunSpawned p.kid", "ChildRunCompleted failed p.kid"]
        assert (await executor.report("p.kid")).outcome is Outcome.FAILED
        for run in ("p", "p.kid"):
            await check_log(executor.store, run)

    go(main)


# -- replay ----------------------------------------------------------------------------------


def test_a_finished_run_with_a_retry_and_a_child_replays_identical_without_live_io(place: Place) -> None:
    shop = P.Shop()

    async def main() -> None:
        async with place.executor(shop.ops, sleep=Sleeps()) as executor:
            await executor.run(P.SHOP, run_id="r1")
        calls, quotes = dict(shop.calls), shop.quotes
        async with place.executor(shop.ops) as executor:
            replayed = await executor.replay("r1")
            assert replayed == ReplayReport("r1", len(SHOP_LOG) + 37, True, None, 0)  # 37: the fact log's events
            await check_shop(executor, "r1")  # the original's records are untouched
        assert shop.quotes == quotes  # no live IO
        # every successful attempt ran again, answered from its facts; failed ones and the child were not run
        assert shop.calls == {k: v + (k != "double") for k, v in calls.items()}

    go(main)


def one_step(fn: Callable[[Context], Any], *, exports: tuple[str, ...] = ()) -> tuple[Operations, Pipeline]:
    ops = Operations()
    ops.op("only", "v1", exports=exports)(fn)
    return ops, Pipeline("one", "v1", (Step("s", "only", "v1"),))


def test_an_operation_that_is_not_deterministic_replays_as_diverged() -> None:
    async def dice(ctx: Context) -> dict[str, Any]:
        return {"n": random.randrange(1 << 60)}  # not through ctx.random: nothing records it

    ops, pipeline = one_step(dice, exports=("n",))

    async def main() -> None:
        executor = memory_executor(ops)
        await executor.run(pipeline, run_id="d")
        with pytest.raises(ReplayDiverged) as info:
            await executor.replay("d")
        assert info.value.code == "replay_diverged"
        assert str(info.value).startswith("run 'd': outcome/one.s.run/1 was sha256:")
        assert "in the original run, sha256:" in str(info.value) and str(info.value).endswith(" in the replay")

    go(main)


def test_an_io_call_without_a_fact_key_cannot_be_replayed() -> None:
    made: list[int] = []

    def transport() -> int:
        made.append(1)
        return len(made)

    async def unkeyed(ctx: Context) -> dict[str, Any]:
        return {"n": await ctx.io.call(None, transport)}

    ops, pipeline = one_step(unkeyed, exports=("n",))

    async def main() -> None:
        executor = memory_executor(ops)
        assert (await executor.run(pipeline, run_id="u")).outputs == {"one.s.run": {"n": 1}}
        assert executor.transport_calls == 1
        assert await fact_keys(executor, "u") == ["snapshot/base", "outcome/one.s.run/1", "snapshot/state/one.s.run",
                                                  "snapshot/final"]  # the answer was not recorded
        with pytest.raises(MissingFactKey) as info:
            await executor.replay("u")
        assert info.value.code == "missing_fact_key"
        assert str(info.value) == "run 'u': an IO call without a fact key cannot be replayed"

    go(main)
    assert made == [1]


@pytest.mark.parametrize("retryable", [False, True])
def test_a_fact_key_the_original_never_recorded_replays_as_missing_fact(retryable: bool) -> None:
    asked = ["first"]

    async def asks(ctx: Context) -> dict[str, Any]:
        return {"n": await ctx.io.call(asked[0], lambda: 7)}

    ops, pipeline = one_step(asks, exports=("n",))

    async def main() -> None:
        executor = memory_executor(ops)
        await executor.run(pipeline, run_config={"replay_missing_fact_retryable": retryable}, run_id="m")
        asked[0] = "second"
        with pytest.raises(MissingFact) as info:
            await executor.replay("m")
        assert (info.value.code, info.value.key, info.value.retryable) == ("missing_fact", "io/second", retryable)
        assert str(info.value) == "no fact recorded under 'io/second'" + (" (retryable)" if retryable else "")

    go(main)


def test_replaying_a_run_that_has_not_ended_is_run_not_finished() -> None:
    shop = P.Shop()
    gate = shop.hold("price")

    async def main() -> None:
        executor = memory_executor(shop.ops)
        await executor.launch(P.SHOP, run_id="p")
        with pytest.raises(RunNotFinished) as info:
            await executor.replay("p")
        assert (info.value.code, str(info.value)) == (
            "run_not_finished", "run 'p' is pending; only a finished run can be replayed")
        drive = asyncio.ensure_future(executor.drive("p"))
        await gate.entered.wait()
        with pytest.raises(RunNotFinished, match="run 'p' is running; only a finished run can be replayed"):
            await executor.replay("p")
        gate.opened.set()
        assert (await drive).outcome is Outcome.COMPLETED
        assert (await executor.replay("p")).identical

    go(main)


def test_now_and_random_give_the_same_values_in_replay() -> None:
    seen: list[tuple[float, float, float]] = []

    async def clocked(ctx: Context) -> None:
        seen.append((await ctx.now(), await ctx.random(), await ctx.random()))

    ops, pipeline = one_step(clocked)

    async def main() -> None:
        executor = memory_executor(ops)
        await executor.run(pipeline, run_id="c")
        assert await fact_keys(executor, "c") == [
            "snapshot/base", "clock/one.s.run/1/1", "random/one.s.run/1/1", "random/one.s.run/1/2",
            "outcome/one.s.run/1", "snapshot/state/one.s.run", "snapshot/final"]
        replayed = await executor.replay("c")
        assert (replayed.identical, replayed.transport_calls) == (True, 0)

    go(main)
    assert len(seen) == 2 and seen[0] == seen[1]
    now, one, two = seen[0]
    assert 0 <= one < 1 and 0 <= two < 1 and one != two and now > 1.5e9


def test_a_failed_run_and_a_failed_attempt_that_spawned_a_child_replay_identical() -> None:
    """Attempt 1 spawns and awaits a child, reads the clock, then fails; replay copies its facts, linkage included."""
    ops = Operations()
    sub = Pipeline("sub", "v1", (Step("s", "noop", "v1"),))
    ops.op("noop", "v1")(lambda ctx: None)
    calls: list[int] = []

    @ops.op("parent", "v1", exports=("child",))
    async def parent(ctx: Context) -> dict[str, Any]:
        calls.append(ctx.attempt)
        child = await ctx.spawn(sub, key="kid")
        await ctx.wait_for(child, key="kid")
        await ctx.now()
        if ctx.attempt == 1 or ctx.config.get("always"):
            raise OpFailed("later", "try again")
        return {"child": child}

    async def main() -> None:
        executor = memory_executor(ops)
        for run_id, config in (("ok", {}), ("bad", {"always": True})):
            report = await executor.run(Pipeline("p", "v1", (Step("s", "parent", "v1", config),)),
                                        run_config={"retry": {"max_attempts": 2}}, run_id=run_id)
            assert report.outcome is (Outcome.COMPLETED if run_id == "ok" else Outcome.FAILED)
            assert await fact_keys(executor, run_id) == [
                "snapshot/base", "child/kid", "child_done/kid", "clock/p.s.run/1/1", "outcome/p.s.run/1",
                "snapshot/failure/p.s.run/1", "clock/p.s.run/2/1", "outcome/p.s.run/2",
                "snapshot/state/p.s.run" if run_id == "ok" else "snapshot/failure/p.s.run/2", "snapshot/final"]
            assert await linkage(executor.store, run_id) == [
                f"ChildRunSpawned {run_id}.kid", f"ChildRunCompleted completed {run_id}.kid"]
            replayed = await executor.replay(run_id)
            assert (replayed.identical, replayed.difference, replayed.transport_calls) == (True, None, 0)
            await check_log(executor.store, run_id)

    go(main)
    assert calls == [1, 2, 2, 1, 2]  # ok: 1, 2, replay of 2; bad: 1, 2 (a failed run replays every attempt's fact)


@pytest.mark.parametrize(
    ("ask", "code", "message"),
    [
        ("spawn", "unsatisfied_import",
         "run 'p.kid': unsatisfied_import: step 's': import 'rows' is not exported by any earlier step"),
        ("taken", "run_exists",
         "run 'p.kid' already exists with another manifest; resume it, or launch a new run"),
        ("wait", "run_not_found", "no run 'ghost' in this store"),
        ("badkey", "invalid_run_id",
         "run id 'p.a b' must be 1-200 letters, digits, '_', '.', '-', starting with a letter or digit"),
    ],
)
def test_a_child_run_the_executor_refuses_fails_the_attempt_for_good(ask: str, code: str, message: str) -> None:
    """An operation asking for a child that cannot be: its attempt fails, not retryable -- the drive does not stop
    (every resume would stop at the same place, for ever)."""
    ops, calls = Operations(), []
    ops.op("needs", "v1", imports=("rows",))(lambda ctx: None)
    ops.op("noop", "v1")(lambda ctx: None)

    @ops.op("parent", "v1")
    async def parent(ctx: Context) -> None:
        calls.append(ctx.attempt)
        if ask == "wait":
            await ctx.wait_for("ghost", key="kid")
        elif ask == "badkey":
            await ctx.spawn(Pipeline("sub", "v1", (Step("s", "noop", "v1"),)), key="a b")
        elif ask == "spawn":
            await ctx.spawn(Pipeline("bad", "v1", (Step("s", "needs", "v1"),)), key="kid")
        else:
            await ctx.spawn(Pipeline("sub", "v1", (Step("s", "noop", "v1"),)), key="kid")

    async def main() -> None:
        executor = memory_executor(ops)
        if ask == "taken":
            await executor.launch(Pipeline("other", "v1", (Step("s", "noop", "v1"),)), run_id="p.kid")
        report = await executor.run(Pipeline("p", "v1", (Step("s", "parent", "v1"),)), run_id="p")
        assert (report.outcome, report.failed_state, report.error) == (
            Outcome.FAILED, "p.s.run", ErrorInfo(code, message, False))
        assert await linkage(executor.store, "p") == []
        await check_log(executor.store, "p")
        assert (await executor.replay("p")).identical

    go(main)
    assert calls == [1]


def test_a_run_two_executors_raced_on_replays_identical() -> None:
    """Both executors call fetch and record its clock; the loser's write is refused (a ``rejected`` event in the
    fact log, which no replay has), and the replay is still identical."""
    shop = P.Shop()
    gate = shop.hold("fetch")
    store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()

    async def main() -> None:
        one, two = (Executor(store, artifacts, shop.ops, sleep=Sleeps()) for _ in range(2))
        await one.launch(P.SHOP, run_id="r1")
        both = asyncio.gather(one.drive("r1"), two.drive("r1"))
        while shop.calls["fetch"] < 2:
            await asyncio.sleep(0.001)
        gate.opened.set()
        first, second = await both
        assert first == second == shop_report("r1")
        await check_shop(one, "r1")
        assert [e.kind for e in await store.read_log(facts_key("r1"))].count("rejected") >= 1  # the race happened
        replayed = await one.replay("r1")
        assert (replayed.identical, replayed.events, replayed.transport_calls) == (True, len(SHOP_LOG) + 37, 0)

    go(main)


def test_a_launch_that_stopped_before_the_runs_record_is_finished_by_resume() -> None:
    """A process killed between the fact log and the run's record left a launch half done: `drive` completes it."""
    ops, calls = calc()

    async def main() -> None:
        executor = memory_executor(ops)
        real = executor.driver.create

        async def dies_at_the_run_record(key: str, machine: str, state: Any = None) -> Any:
            if machine == "run":
                raise asyncio.CancelledError
            return await real(key, machine, state)

        executor.driver.create = dies_at_the_run_record  # type: ignore[method-assign]
        with pytest.raises(asyncio.CancelledError):
            await executor.launch(CALC, 4, run_id="half")
        assert await executor.store.keys() == [facts_key("half")]
        report = await memory_executor_on(executor, ops).drive("half")
        assert report.outcome is Outcome.COMPLETED
        await check_log(executor.store, "half")

    go(main)
    assert calls == [4]


def memory_executor_on(other: Executor, ops: Operations) -> Executor:
    """A new executor over ``other``'s memory stores, as a new process would open them."""
    return Executor(other.store, other.artifacts, ops, sleep=Sleeps())


def test_an_operation_that_leaves_out_a_declared_export_is_bad_output() -> None:
    ops, pipeline = one_step(lambda ctx: {"other": 1}, exports=("total",))

    async def main() -> None:
        report = await memory_executor(ops).run(pipeline, run_id="r")
        assert report.outcome is Outcome.FAILED and report.error is not None
        assert (report.error.code, report.error.retryable) == ("bad_output", False)
        assert report.error.message.endswith("returned no value for its declared export 'total'")

    go(main)


@pytest.mark.parametrize(("fn", "shown"), [
    (lambda: None, "<lambda>()"),
    (lambda ctx, extra: None, "<lambda>(ctx, extra)"),
])
def test_a_function_that_cannot_take_its_context_is_refused_at_registration(fn: Any, shown: str) -> None:
    with pytest.raises(TypeError) as info:
        Operations().op("only", "v1")(fn)
    assert str(info.value) == (f"only v1: the function for 'run' has the signature {shown}; a state's function "
                               f"takes one argument, its Context (def run(ctx): ...)")


def test_a_missing_await_is_named_as_such() -> None:
    async def forgot(ctx: Context) -> dict[str, Any]:
        return {"rows": ctx.io.call("rows", lambda: [1])}  # no await

    ops, pipeline = one_step(forgot, exports=("rows",))

    async def main() -> None:
        report = await memory_executor(ops).run(pipeline, run_id="r")
        assert report.error is not None and (report.error.code, report.error.retryable) == ("bad_output", False)
        assert "an awaitable under 'rows': an `await` is missing" in report.error.message

    go(main)


def test_an_io_answer_that_cannot_be_recorded_fails_the_attempt_for_good() -> None:
    asked: list[int] = []

    async def floats(ctx: Context) -> None:
        await ctx.io.call("t", lambda: asked.append(1) or 1.5)

    ops, pipeline = one_step(floats)

    async def main() -> None:
        report = await memory_executor(ops).run(pipeline, run_id="r")
        assert report.error is not None
        assert (report.error.code, report.error.retryable) == ("unstorable_fact", False)
        assert report.error.message.startswith("fact 'io/t' is not JSON data without floats")

    go(main)
    assert asked == [1]  # not asked again: it could never be recorded
