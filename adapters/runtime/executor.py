"""`Executor`: runs pipelines of Python operations durably -- through the run machine, the `Driver` and the stores.

Theory of operation
-------------------
A run is two stored records and some artifacts. ``runs/<id>`` holds the run
machine (`machines.run`): its plan, phase, completed states and the attempt
in flight; every decision about it is an input fed through the `Driver`, so
its log is the run's history and its state is the replay of that log.
``runs/<id>/facts`` holds its fact log (`machines.fact_log`): the manifest's
artifact id, the parent run, and each fact recorded, once. Values live in the
content-addressed artifact store (`artifacts`).

`Executor.launch` stores the pipeline's canonical manifest (`machines.pipeline.manifest`)
as an artifact, checks the plan and the run config, and creates both records
and the *base* snapshot; a run id already taken by another manifest is
`run_errors.RunExists` -- a new run never re-attaches to an old one, the
source's run-id bug. `Executor.drive` then loops, always deciding from the
stored state, so a fresh process resumes where a dead one stopped:

* PENDING: feed ``Start``; nothing in flight: feed ``Enter`` of the next ready state;
* state ``x`` in flight at attempt ``a``: if ``outcome/x/a`` is recorded, the
  attempt has finished -- its function is **not** called again; otherwise
  wait the backoff (after a failed attempt), call the state's function with a
  `Context` whose inputs come from the *boundary* snapshot (the per-state
  snapshot of the last completed state, or the base one: never a failure
  snapshot), and record its outcome. Then the per-state snapshot (success) or
  the failure snapshot, and ``Succeed(x)`` or ``Fail(x, retryable)``;
* terminal: record the *final* snapshot and seal the fact log.

Every input is fed with a request id derived from the run, state and attempt,
so two executors -- one of them a zombie whose lease ran out -- apply each
decision once; facts are first-writer-wins, so both see the same outcome.
A crash is not a failure: the attempt in flight is run again under the same
attempt number (the source's resume is not in the text we have; `machines.run`
says why). An operation with an idempotency key is therefore called again
only when the process died *before* its outcome was recorded -- and gets the
same ``ctx.idempotency_key`` every time.

Replay (`Executor.replay`) runs a finished run again against a scratch
memory store, in replay IO mode: every recorded failure is taken from its
fact (with the facts its attempt recorded before failing, copied in the
original's order), every successful attempt calls its function again with
IO answered from the recorded facts and nothing live, and the replay's logs
must equal the original's byte for byte (canonical JSON), leaving out the
writes a racing executor was refused (``rejected`` events).

>>> import asyncio
>>> from statewright.adapters.runtime.artifacts import MemoryArtifacts
>>> from statewright.adapters.runtime.memory import MemoryStore
>>> from statewright.adapters.runtime.operations import Operations
>>> from statewright.machines.pipeline import Pipeline, Step
>>> ops = Operations()
>>> @ops.op("double", "v1", exports=("n",))
... def double(ctx):
...     return {"n": ctx.config["n"] * 2}
>>> async def demo():
...     executor = Executor(MemoryStore(runs_catalog()), MemoryArtifacts(), ops)
...     report = await executor.run(Pipeline("calc", "v1", (Step("twice", "double", "v1", {"n": 21}),)))
...     return report.outcome.value, report.outputs
>>> asyncio.run(demo())
('completed', {'calc.twice.run': {'n': 42}})
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from statewright.adapters.runtime.artifacts import ArtifactKind, ArtifactStore, MemoryArtifacts, canonical
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.errors import Conflict, InvalidState, NotFound
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.operations import ErrorInfo, OpFailed, Operations
from statewright.adapters.runtime.readback import raised_at
from statewright.adapters.runtime.run_errors import (
    InvalidRunId,
    UnstorableFact,
    MissingFact,
    PlanChanged,
    PlanRefused,
    ReplayDiverged,
    RunError,
    RunExists,
    RunNotFinished,
    RunNotFound,
)
from statewright.adapters.runtime.runio import NONE, Mode, RunIo
from statewright.adapters.runtime.store import Catalog, Store
from statewright.kernel.machine import Machine
from statewright.machines.fact_log import FACT_LOG, ChildDone, FactLog, Record, Seal, SpawnChild
from statewright.machines.pipeline import (
    Code,
    ExecutionPlan,
    Pipeline,
    PlanFailure,
    PlannedState,
    RunConfig,
    manifest_bytes,
    read_run_config,
    replan,
)
from statewright.machines.run import (
    TERMINAL,
    Enter,
    Fail,
    Outcome,
    Plan,
    Run,
    RunPhase,
    Start,
    Succeed,
    next_ready,
    run_machine,
)

__all__ = [
    "ChildResult",
    "Context",
    "Executor",
    "ReplayReport",
    "RunReport",
    "facts_key",
    "run_key",
    "runs_catalog",
]

RUN = run_machine(Plan(("run",)))
"""The run machine as a catalog holds it (each run's state carries its own plan; the table is shared)."""

_CACHED = 4096
"""How many artifacts' JSON values an executor keeps (`Executor._json`); the cache is emptied when full."""
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")
Observer = Callable[[str, Any], None]


def run_key(run_id: str) -> str:
    """The key of a run's record: ``runs/<id>``."""
    return f"runs/{run_id}"


def facts_key(run_id: str) -> str:
    """The key of a run's fact log: ``runs/<id>/facts``."""
    return f"runs/{run_id}/facts"


def runs_catalog(machines: Mapping[str, Machine[Any]] | None = None) -> Catalog:
    """A catalog holding the executor's two machines (``run``, ``fact_log``) beside ``machines``."""
    return Catalog({**(machines or {}), "run": RUN, "fact_log": FACT_LOG})


@dataclass(frozen=True, slots=True)
class ChildResult:
    """How a child run ended (``outcome`` is a `machines.run.Outcome` value) and its states' outputs."""

    run_id: str
    outcome: str
    outputs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunReport:
    """Where a run stands: ``outcome`` once it ended (else None), and the error of its last failed attempt."""

    run_id: str
    phase: RunPhase
    outcome: Outcome | None
    completed: tuple[str, ...]
    outputs: Mapping[str, Any]
    failed_state: str | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """A replay's verdict: ``identical`` when its logs equal the original's, byte for byte (canonical JSON)."""

    run_id: str
    events: int
    identical: bool
    difference: str | None
    transport_calls: int


@dataclass(slots=True)
class _Open:
    """A run as its driver sees it: plan, config, input, and its fact log as last read or written."""

    run_id: str
    plan: ExecutionPlan
    config: RunConfig
    input: Any
    facts: FactLog
    states: dict[str, PlannedState] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)  # step id -> op config


class Context:
    """What a state's function gets: its config, its imports, the run's input, and IO that can be replayed.

    ``inputs`` maps each port the operation imports to the value the latest
    earlier step exporting it returned. ``idempotency_key`` (the state's
    declared key, qualified by run and state) is the same in every attempt,
    resume and process: pass it to the outside world with any side effect.
    ``io.call(key, fn)`` makes a call that a resume reuses and a replay answers
    (`runio.RunIo`); `now` and `random` are recorded the same way. A
    `spawn` or `wait_for` the executor refuses (`run_errors.PlanRefused`,
    `RunExists`, `RunNotFound`) fails the attempt, not retryable, with the
    refusal's code.
    """

    __slots__ = ("attempt", "config", "idempotency_key", "input", "inputs", "io", "op_id", "op_version", "run_id",
                 "state_id", "step_id", "_executor")

    def __init__(self, executor: Executor, opened: _Open, planned: PlannedState, attempt: int,
                 inputs: dict[str, Any], config: Any) -> None:
        self._executor = executor
        self.run_id = opened.run_id
        self.state_id = planned.state_id
        self.step_id = planned.step_id
        self.op_id = planned.op_id
        self.op_version = planned.op_version
        self.attempt = attempt
        self.config = config
        self.input = opened.input
        self.inputs = inputs
        key = planned.idempotency_key
        self.idempotency_key = f"{opened.run_id}:{planned.state_id}" + (f":{key}" if key else "")
        self.io = RunIo(executor, opened.run_id, planned.state_id, attempt)

    async def now(self) -> float:
        return await self.io.now()

    async def random(self) -> float:
        return await self.io.random()

    async def recorded(self) -> tuple[str, ...]:
        """The keys of the facts this run has recorded, read from the store now."""
        return (await self._executor.fact_log(self.run_id)).keys()

    async def spawn(self, pipeline: Pipeline, input: Any = None, *, key: str, run_config: Any = None) -> str:
        """Start child run ``<run id>.<key>`` of ``pipeline`` once, however often this attempt runs; its id.

        The fact ``child/<key>`` and the ``ChildRunSpawned`` event are recorded in
        one step (`machines.fact_log`), so the linkage is emitted exactly once.
        """
        return await self._executor.spawn_child(self.run_id, pipeline, input, key, run_config)

    async def wait_for(self, child: str, *, key: str) -> ChildResult:
        """Wait for child run ``child`` to end; its result, recorded as ``child_done/<key>`` with ``ChildRunCompleted``."""
        return await self._executor.wait_for_child(self.run_id, child, key)


class Executor:
    """Launches, drives, resumes and replays runs of pipelines; see the module doc.

    ``store`` must hold the ``run`` and ``fact_log`` machines (`runs_catalog`);
    ``artifacts`` holds manifests, outcomes, facts and snapshots. ``sleep``
    waits the retry backoff (injected in tests); ``poll`` bounds how long a
    parent waits between looks at a child it awaits. ``adopt_children``: drive
    the child runs this process spawns or awaits (a `pool.Pool` leaves them to
    whoever holds their partition). ``observer(run_id, effect)`` sees every
    effect of every run input this executor commits (a progress display).
    """

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        operations: Operations,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        poll: float = 0.5,
        adopt_children: bool = True,
        observer: Observer | None = None,
        mode: Mode = Mode.LIVE,
        source: Mapping[str, FactLog] | None = None,
    ) -> None:
        for name, machine in (("run", RUN), ("fact_log", FACT_LOG)):
            held = store.catalog.machines.get(name)
            if held is None or type(held.initial) is not type(machine.initial):
                raise ValueError(f"the store's catalog must hold the executor's {name!r} machine: "
                                 f"open the store with runs_catalog()")
        self.store = store
        self.artifacts = artifacts
        self.operations = operations
        self.driver = Driver(store)
        self.mode = mode
        self.poll = poll
        self.adopt_children = adopt_children
        self.observer = observer
        self.fence: Callable[[str], Awaitable[None]] | None = None
        """Awaited with the run id just before an attempt's function is called; a `pool.Pool` sets it to make sure
        it still holds the run's partition (it cancels the drive when not)."""
        self.transport_calls = 0
        self._sleep = sleep
        self._source = dict(source or {})
        self._opened: dict[str, _Open] = {}
        self._tasks: dict[str, asyncio.Task[RunReport]] = {}
        self._values: dict[str, Any] = {}  # artifact id -> its JSON value (`_json`)

    # -- launching ----------------------------------------------------------------------

    async def launch(self, pipeline: Pipeline, input: Any = None, *, run_config: Any = None,
                     run_id: str | None = None, parent: str | None = None) -> str:
        """Store the manifest and create the run (PENDING); its id. Nothing runs until `drive`.

        Launching again under the same ``run_id`` with the same manifest and
        parent is a no-op (a launch that crashed half way completes); with
        another manifest it is `RunExists`.
        """
        data = manifest_bytes(pipeline, input, run_config)
        if isinstance(data, PlanFailure):
            raise PlanRefused(data, run_id)
        run_id = _new_run_id() if run_id is None else _checked_run_id(run_id)
        manifest = await self.artifacts.put(ArtifactKind.MANIFEST, data)
        await self._create(run_id, manifest, data, parent)
        return run_id

    async def run(self, pipeline: Pipeline, input: Any = None, *, run_config: Any = None,
                  run_id: str | None = None) -> RunReport:
        """Launch a run and drive it to its end: `launch` then `drive`."""
        return await self.drive(await self.launch(pipeline, input, run_config=run_config, run_id=run_id))

    async def _create(self, run_id: str, manifest: str, data: bytes, parent: str | None) -> None:
        plan, config, _ = self._plan(run_id, manifest, data)
        log = FactLog(run_id, manifest, parent)
        try:
            await self.driver.create(facts_key(run_id), "fact_log", log)
        except Conflict:
            existing = (await self.store.load(facts_key(run_id))).state
            if (existing.manifest, existing.parent) != (manifest, parent):
                raise RunExists(run_id) from None
        opened = await self._open(run_id)
        await self._ensure(opened, "snapshot/base", {"input": opened.input, "outputs": {}})
        try:
            await self.driver.create(run_key(run_id), "run", Run(plan.plan, max_attempts=config.retry.max_attempts))
        except Conflict:
            pass  # the launch had got this far before: the run is there, with this plan (checked on open)

    def _plan(self, run_id: str, manifest: str, data: bytes) -> tuple[ExecutionPlan, RunConfig, dict[str, Any]]:
        """The plan, config and parsed JSON of manifest ``data``, judged as a launch judges them."""
        planned = replan(data, self.operations.registry, manifest.removeprefix("sha256:"))
        if isinstance(planned, PlanFailure):
            raise PlanRefused(planned, run_id)
        value = json.loads(data)
        config = read_run_config(value.get("run_config"))
        if isinstance(config, PlanFailure):
            raise PlanRefused(config, run_id)
        for st in planned.states:
            local = st.state_id.rsplit(".", 1)[1]
            if self.operations.function(st.op_id, st.op_version, local) is None:
                raise PlanRefused(PlanFailure(
                    Code.OP_NOT_FOUND, f"step {st.step_id!r}: operation {st.op_id!r} version {st.op_version!r} has "
                    f"no function for state {local!r}", st.step_id, st.state_id), run_id)
        return planned, config, value

    async def _open(self, run_id: str) -> _Open:
        opened = self._opened.get(run_id)
        if opened is not None:
            return opened
        log = await self._load_facts(run_id)
        data = await self.artifacts.get(log.manifest)
        plan, config, value = self._plan(run_id, log.manifest, data)
        params = value["input_params"]
        opened = _Open(run_id, plan, config, params["input"], log, {st.state_id: st for st in plan.states},
                       {s["step_id"]: s.get("op_config", {}) for s in params["pipeline"]["steps"]})
        self._opened[run_id] = opened
        return opened

    async def _load_facts(self, run_id: str) -> FactLog:
        try:
            state = (await self.store.load(facts_key(run_id))).state
        except NotFound:
            raise RunNotFound(run_id) from None
        if not isinstance(state, FactLog):
            raise RunNotFound(run_id)
        return state

    async def fact_log(self, run_id: str) -> FactLog:
        """The run's fact log as stored now."""
        return await self._load_facts(run_id)

    def config_of(self, run_id: str) -> RunConfig:
        opened = self._opened.get(run_id)
        return opened.config if opened is not None else RunConfig()

    # -- driving --------------------------------------------------------------------------

    async def drive(self, run_id: str) -> RunReport:
        """Run ``run_id`` to its end from wherever its records stand; its report. One driver per run per process."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            task = self._tasks[run_id] = asyncio.ensure_future(self._drive(run_id))
        return await task

    resume = drive

    async def _drive(self, run_id: str) -> RunReport:
        try:
            return await self._driven(run_id)
        finally:
            if self._tasks.get(run_id) is asyncio.current_task():
                del self._tasks[run_id]
            self._opened.pop(run_id, None)

    async def _driven(self, run_id: str) -> RunReport:
        opened = await self._open(run_id)
        opened.facts = await self._load_facts(run_id)  # what another process recorded since this one last looked
        try:
            stored = await self._load_run(run_id)
        except RunNotFound:
            # a launch that stopped after the fact log and before the run's record: finish it, as a launch would
            await self._create(run_id, opened.facts.manifest, await self.artifacts.get(opened.facts.manifest),
                               opened.facts.parent)
            stored = await self._load_run(run_id)
        self._check_plan(opened, stored.state)
        stuck = 0
        while True:
            run: Run = stored.state
            if run.phase in TERMINAL:
                opened.facts = await self._load_facts(run_id)  # the final snapshot, if another process recorded it
                await self._finish(opened, run)
                return await self._report(opened, run)
            if run.phase is RunPhase.PENDING:
                fed = await self._feed(run_id, Start(), "start")
            elif run.current is None:
                nxt = _next(run)
                fed = await self._feed(run_id, Enter(nxt), f"enter/{nxt}")
            else:
                error = await self._attempt(opened, run, run.current, run.attempt)
                x, a = run.current, run.attempt
                fed = (await self._feed(run_id, Succeed(x), f"done/{x}/{a}") if error is None
                       else await self._feed(run_id, Fail(x, error.retryable), f"done/{x}/{a}"))
            fresh = fed.record if fed.accepted and not fed.replayed else await self._load_run(run_id)
            stuck = stuck + 1 if fresh.version == stored.version else 0
            if stuck >= 3:
                raise RunError(f"run {run_id!r} does not move: {fed!r}")
            stored = fresh

    async def _feed(self, run_id: str, value: Any, request: str) -> Any:
        fed = await self.driver.feed(run_key(run_id), value, request=f"{run_id}/{request}")
        if fed.accepted and not fed.replayed and self.observer is not None:
            for effect in fed.effects:
                self.observer(run_id, effect)
        return fed

    async def _load_run(self, run_id: str) -> Any:
        try:
            return await self.store.load(run_key(run_id))
        except NotFound:
            raise RunNotFound(run_id) from None

    @staticmethod
    def _check_plan(opened: _Open, run: Run) -> None:
        if run.plan != opened.plan.plan:
            stored, now = run.plan, opened.plan.plan
            detail = (f"stored states {', '.join(stored.states)}; now {', '.join(now.states)}"
                      if stored.states != now.states else "the dependency edges differ")
            raise PlanChanged(opened.run_id, detail)

    async def _attempt(self, opened: _Open, run: Run, x: str, a: int) -> ErrorInfo | None:
        """The outcome of attempt ``a`` of state ``x``: recorded, or made now (the function called once)."""
        key = f"outcome/{x}/{a}"
        if self.mode is Mode.LIVE:  # another process may have moved the run on while this one stood still
            opened.facts = await self._load_facts(opened.run_id)
        boundary_key = _boundary(run)
        boundary = await self._value(opened, boundary_key)
        recorded = self._lookup(opened, key)
        if recorded is not None and (self.mode is Mode.LIVE or not (await self._json(recorded))["ok"]):
            outcome = await self._json(recorded)
            if self.mode is Mode.REPLAY:
                await self._catch_up(opened, key)
            await self._have(opened, Record(key, recorded))
        else:
            if a > 1 and recorded is None:
                await self._sleep(opened.config.retry.delay(a - 1))
            if self.fence is not None and self.mode is Mode.LIVE:
                await self.fence(opened.run_id)
            outcome = await self._call(opened, opened.states[x], a, boundary)
            made = await self._ensure(opened, key, outcome)
            outcome = await self._json(made)
        if outcome["ok"]:
            await self._ensure(opened, f"snapshot/state/{x}",
                               {"input": opened.input, "outputs": {**boundary["outputs"], x: outcome["output"]}})
            return None
        boundary_id = self._lookup(opened, boundary_key)
        await self._ensure(opened, f"snapshot/failure/{x}/{a}",
                           {"boundary": boundary_id, "state_id": x, "attempt": a, "error": outcome["error"]})
        return ErrorInfo.from_json(outcome["error"])

    async def _catch_up(self, opened: _Open, key: str) -> None:
        """Replay, before failed attempt ``key``'s outcome: record what the original recorded during the attempt.

        A failed attempt is taken from its fact, not run again, so the facts it
        recorded before failing (its clock, dice, IO answers, child runs) are
        copied from the original log, in its order, or the logs would differ.
        Only when the replay's log so far is the original's prefix: otherwise the
        comparison of the logs reports where they part.
        """
        source = self._source.get(opened.run_id)
        mine = opened.facts.facts
        if source is None or source.facts[:len(mine)] != mine:
            return
        for k, artifact in source.facts[len(mine):source.keys().index(key)]:
            value = await self._json(artifact)
            if k.startswith("child/"):
                await self._have(opened, SpawnChild(k, artifact, value["run_id"]))
            elif k.startswith("child_done/"):
                await self._have(opened, ChildDone(k, artifact, value["run_id"], value["outcome"]))
            else:
                await self._have(opened, Record(k, artifact))

    async def _call(self, opened: _Open, planned: PlannedState, attempt: int, boundary: Any) -> dict[str, Any]:
        """Call the state's function; its outcome as JSON: ``{"ok": true, "output": ...}`` or the error."""
        local = planned.state_id.rsplit(".", 1)[1]
        fn = self.operations.function(planned.op_id, planned.op_version, local)
        assert fn is not None  # _plan refused a plan with a state that has no function
        outputs: Mapping[str, Any] = boundary["outputs"]
        inputs: dict[str, Any] = {}
        for port, op_path in planned.imports:
            for sid in opened.plan.plan.states:
                out = outputs.get(sid)
                if sid.startswith(op_path + ".") and isinstance(out, dict) and port in out:
                    inputs[port] = out[port]
        ctx = Context(self, opened, planned, attempt, inputs, opened.configs.get(planned.step_id, {}))
        name = getattr(fn, "__qualname__", type(fn).__name__)
        try:
            out = fn(ctx)
            if inspect.isawaitable(out):
                out = await out
        except OpFailed as exc:
            return {"ok": False, "error": exc.info.json()}
        except MissingFact as exc:
            if self.mode is Mode.REPLAY:
                raise
            return {"ok": False, "error": ErrorInfo(exc.code, str(exc), exc.retryable).json()}
        except (PlanRefused, RunExists, RunNotFound, InvalidRunId, UnstorableFact) as exc:
            if self.mode is Mode.REPLAY:
                raise
            # refused what the operation asked of its context (a child pipeline that cannot be planned, a child
            # id another run has, a child that does not exist): the same answer every time, so the attempt fails
            # for good -- raised out of the drive, it would stop every resume at the same place
            return {"ok": False, "error": ErrorInfo(exc.code, str(exc), False).json()}
        except RunError:
            raise
        except Exception as exc:  # noqa: BLE001 -- an operation's failure is data: recorded, retried
            message = f"{name}: {type(exc).__name__}: {exc} (at {raised_at(exc, fn)})"
            return {"ok": False, "error": ErrorInfo("op_raised", message, True).json()}
        problem = _bad_output(out) or self._missing_exports(opened, planned, outputs, out)
        if problem is not None:
            return {"ok": False, "error": ErrorInfo("bad_output", f"{name} returned {problem}", False).json()}
        return {"ok": True, "output": dict(out or {})}

    def _missing_exports(self, opened: _Open, planned: PlannedState, outputs: Mapping[str, Any],
                         out: Mapping[str, Any] | None) -> str | None:
        """At an operation's last state: the exports it declares that none of its states returned."""
        mine = [sid for sid in opened.plan.plan.states if opened.states[sid].op_path == planned.op_path]
        if mine[-1] != planned.state_id:
            return None
        operation = self.operations.registry.ops.get((planned.op_id, planned.op_version))
        if operation is None:
            return None
        returned = set(out or {})
        for sid in mine[:-1]:
            returned |= set(outputs.get(sid) or {})
        declared = operation.ports(opened.configs.get(planned.step_id, {})).exports
        missing = [port for port in declared if port not in returned]
        return f"no value for its declared export {missing[0]!r}" if missing else None

    async def _finish(self, opened: _Open, run: Run) -> None:
        if opened.facts.get("snapshot/final") is not None:
            return
        outputs = (await self._value(opened, _boundary(run)))["outputs"]
        final = {"outcome": run.phase.value, "completed": list(run.completed), "outputs": outputs}
        await self._ensure(opened, "snapshot/final", final, as_input=Seal)

    async def report(self, run_id: str) -> RunReport:
        """Where run ``run_id`` stands, read from the store."""
        opened = await self._open(run_id)
        run: Run = (await self._load_run(run_id)).state
        opened.facts = await self._load_facts(run_id)
        return await self._report(opened, run)

    async def _report(self, opened: _Open, run: Run) -> RunReport:
        last = _boundary(run)
        outputs = (await self._value(opened, last))["outputs"] if self._lookup(opened, last) else {}
        failed, error = None, None
        for k, artifact in reversed(opened.facts.facts):
            if k.startswith("snapshot/failure/"):
                body = await self._json(artifact)
                failed, error = body["state_id"], ErrorInfo.from_json(body["error"])
                break
        outcome = Outcome(run.phase.value) if run.phase in TERMINAL else None
        return RunReport(opened.run_id, run.phase, outcome, run.completed, outputs, failed, error)

    # -- facts ------------------------------------------------------------------------------

    def _lookup(self, opened: _Open, key: str) -> str | None:
        """The artifact recorded under ``key``: this run's own, or (replay) the original run's."""
        mine = opened.facts.get(key)
        if mine is not None or self.mode is Mode.LIVE:
            return mine
        source = self._source.get(opened.run_id)
        return source.get(key) if source is not None else None

    async def _json(self, artifact: str) -> Any:
        """The JSON value of ``artifact``: read once, then from this process's cache (artifacts never change).

        Callers must not mutate what they get: the cache hands the same object out again.
        """
        value = self._values.get(artifact, NONE)
        if value is NONE:
            value = self._remember(artifact, await self.artifacts.get(artifact))
        return value

    def _remember(self, artifact: str, data: bytes) -> Any:
        if len(self._values) >= _CACHED:
            self._values.clear()
        value = self._values[artifact] = json.loads(data)
        return value

    async def _value(self, opened: _Open, key: str) -> Any:
        artifact = self._lookup(opened, key)
        if artifact is None:
            raise RunError(f"run {opened.run_id!r}: fact {key!r} is not recorded")
        return await self._json(artifact)

    async def recorded_value(self, run_id: str, key: str) -> Any:
        """The value recorded under ``key`` (recording it in this run's log if only the original had it), or NONE."""
        opened = await self._open(run_id)
        artifact = self._lookup(opened, key)
        if artifact is None:
            return NONE
        await self._have(opened, Record(key, artifact))
        return await self._json(artifact)

    async def record_value(self, run_id: str, key: str, value: Any) -> Any:
        """Record ``value`` under ``key`` (first writer wins); the value that is recorded."""
        opened = await self._open(run_id)
        artifact = await self._ensure(opened, key, value, ArtifactKind.FACT_PAYLOAD)
        return await self._json(artifact)

    async def _ensure(self, opened: _Open, key: str, value: Any,
                      kind: ArtifactKind = ArtifactKind.CONTEXT_SNAPSHOT,
                      as_input: type[Record] | type[Seal] = Record) -> str:
        """Record ``value`` under ``key`` unless something is recorded there; the artifact recorded.

        ``as_input`` is the fact log's input that records it: `Record`, or `Seal` for the final snapshot.
        """
        have = opened.facts.get(key)
        if have is not None:
            return have
        try:
            data = canonical(value)
        except InvalidState as exc:
            raise UnstorableFact(f"fact {key!r} is not JSON data without floats: {exc}") from None
        artifact = await self.artifacts.put(
            ArtifactKind.OUTPUT if key.startswith("outcome/") else kind, data)
        self._remember(artifact, data)
        self._diverges(opened, key, artifact)
        return await self._have(opened, as_input(key, artifact))

    def _diverges(self, opened: _Open, key: str, artifact: str) -> None:
        if self.mode is Mode.REPLAY:
            source = self._source.get(opened.run_id)
            original = source.get(key) if source is not None else None
            if original != artifact:
                raise ReplayDiverged(f"run {opened.run_id!r}: {key} was {original} in the original run, "
                                     f"{artifact} in the replay")

    async def _have(self, opened: _Open, value: Record | SpawnChild | ChildDone | Seal) -> str:
        """Feed ``value`` to the fact log unless its key is recorded; the artifact recorded under the key."""
        have = opened.facts.get(value.key)
        if have is not None:
            return have
        request = f"{type(value).__name__}/{value.key}/{value.artifact}"
        fed = await self.driver.feed(facts_key(opened.run_id), value, request=request)
        if fed.accepted and not fed.replayed:
            opened.facts = fed.record.state
        else:
            opened.facts = await self._load_facts(opened.run_id)
        recorded = opened.facts.get(value.key)
        if recorded is None:
            raise RunError(f"run {opened.run_id!r}: could not record {value.key!r}: "
                           f"{fed.rejection.message if fed.rejection else 'the fact log is sealed'}")
        return recorded

    # -- child runs -------------------------------------------------------------------------

    async def spawn_child(self, run_id: str, pipeline: Pipeline, input: Any, key: str, run_config: Any) -> str:
        """`Context.spawn`: launch the child once, record ``child/<key>`` with ``ChildRunSpawned``."""
        opened = await self._open(run_id)
        fact = f"child/{key}"
        artifact = self._lookup(opened, fact)
        if artifact is None:
            if self.mode is Mode.REPLAY:
                raise MissingFact(fact, opened.config.replay_missing_fact_retryable)
            child = f"{run_id}.{key}"
            await self.launch(pipeline, input, run_config=run_config, run_id=child, parent=run_id)
            artifact = await self.artifacts.put(ArtifactKind.FACT_PAYLOAD, canonical({"run_id": child}))
        child = (await self._json(artifact))["run_id"]
        await self._have(opened, SpawnChild(fact, artifact, child))
        if self.mode is Mode.LIVE:
            self._adopt(child)
        return str(child)

    async def wait_for_child(self, run_id: str, child: str, key: str) -> ChildResult:
        """`Context.wait_for`: the child's result once it ended, recorded as ``child_done/<key>``."""
        opened = await self._open(run_id)
        fact = f"child_done/{key}"
        artifact = self._lookup(opened, fact)
        if artifact is None and self.mode is Mode.REPLAY:
            raise MissingFact(fact, opened.config.replay_missing_fact_retryable)
        while artifact is None:
            log = await self._load_facts(child)
            final = log.get("snapshot/final")
            if final is not None:
                body = await self._json(final)
                result = {"run_id": child, "outcome": body["outcome"], "outputs": body["outputs"]}
                artifact = await self.artifacts.put(ArtifactKind.FACT_PAYLOAD, canonical(result))
                break
            task = self._adopt(child)
            if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                raise RunError(f"run {run_id!r}: its child {child!r} stopped: {task.exception()!r}")
            await self.store.wait(await self.store.latest_cursor(), self.poll)  # type: ignore[attr-defined]
        value = await self._json(artifact)
        await self._have(opened, ChildDone(fact, artifact, child, value["outcome"]))
        return ChildResult(value["run_id"], value["outcome"], value["outputs"])

    def _adopt(self, child: str) -> asyncio.Task[RunReport] | None:
        if not self.adopt_children:
            return None
        task = self._tasks.get(child)
        if task is None:
            task = self._tasks[child] = asyncio.ensure_future(self._drive(child))
        return task

    # -- replay -----------------------------------------------------------------------------

    async def replay(self, run_id: str) -> ReplayReport:
        """Run finished run ``run_id`` again in replay mode in a scratch store; compare the logs byte for byte.

        Rejected events are left out of the comparison: they record writes a racing executor was refused.
        """
        original = await self._load_facts(run_id)
        run = (await self._load_run(run_id)).state
        if run.phase not in TERMINAL:
            raise RunNotFinished(run_id, run.phase.value)
        scratch = MemoryStore(self.store.catalog)
        replayer = Executor(scratch, _ReadThrough(self.artifacts), self.operations, sleep=_no_sleep,
                            adopt_children=False, mode=Mode.REPLAY, source={run_id: original})
        data = await self.artifacts.get(original.manifest)
        await replayer._create(run_id, original.manifest, data, original.parent)
        await replayer.drive(run_id)
        events = 0
        for key in (run_key(run_id), facts_key(run_id)):
            # a rejected event is a racing writer's refused write (a zombie's fact, first writer wins): it
            # changed nothing, and a replay has no racer
            mine = [_event_bytes(e) for e in await self.store.read_log(key) if e.kind != "rejected"]
            theirs = [_event_bytes(e) for e in await scratch.read_log(key) if e.kind != "rejected"]
            events += len(mine)
            if mine != theirs:
                at = next((i for i, (m, t) in enumerate(zip(mine, theirs)) if m != t), min(len(mine), len(theirs)))
                left = mine[at].decode() if at < len(mine) else "(end of log)"
                right = theirs[at].decode() if at < len(theirs) else "(end of log)"
                return ReplayReport(run_id, events, False, f"{key} event {at + 1}: original {left}, replay {right}",
                                    replayer.transport_calls)
        return ReplayReport(run_id, events, True, None, replayer.transport_calls)


class _ReadThrough:
    """Artifacts a replay writes go to memory; reads fall back to the original store (which is never written)."""

    def __init__(self, original: ArtifactStore) -> None:
        self._original = original
        self._mine = MemoryArtifacts()

    async def put(self, kind: Any, data: Any) -> Any:
        return await self._mine.put(kind, data)

    async def get(self, id: str) -> bytes:
        if await self._mine.exists(id):
            return await self._mine.get(id)
        return await self._original.get(id)

    def stream(self, id: str) -> Any:
        return self._original.stream(id)

    async def exists(self, id: str) -> bool:
        return await self._mine.exists(id) or await self._original.exists(id)

    async def stat(self, id: str) -> Any:
        return await self._mine.stat(id) if await self._mine.exists(id) else await self._original.stat(id)

    async def close(self) -> None:
        await self._mine.close()


async def _no_sleep(seconds: float) -> None:
    return None


def _event_bytes(event: Any) -> bytes:
    return canonical({"kind": event.kind, "data": event.data})


def _boundary(run: Run) -> str:
    """The fact key of the snapshot the next attempt starts from: the last completed state's, or the base one."""
    return f"snapshot/state/{run.completed[-1]}" if run.completed else "snapshot/base"


def _next(run: Run) -> str:
    nxt = next_ready(run)
    assert nxt is not None  # a RUNNING run with nothing in flight has a ready state (specs.run: recoverable)
    return nxt


def _bad_output(out: Any) -> str | None:
    if out is None:
        return None
    if not isinstance(out, Mapping) or not all(isinstance(k, str) for k in out):
        return f"{type(out).__name__}, not a dict of exports (str keys) or None"
    for port, value in out.items():
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never to be awaited: no "was never awaited" warning on top of this message
            return (f"an awaitable under {port!r}: an `await` is missing (ctx.io.call, ctx.now, ctx.random, "
                    f"ctx.spawn and ctx.wait_for are coroutines; the function must be `async def`)")
    try:
        canonical(dict(out))
    except InvalidState as exc:
        return f"exports that are not JSON data without floats: {exc}"
    return None


def _new_run_id() -> str:
    return "r" + secrets.token_hex(8)


def _checked_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise InvalidRunId(f"run id {run_id!r} must be 1-200 letters, digits, '_', '.', '-', starting with a letter "
                       f"or digit")
    return run_id
