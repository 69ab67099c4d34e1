"""Pool processes for the kill -9 tests (`tests.adapters.test_executor_kill`) and the benchmark, and what judges them.

One pipeline, ``kill``: three steps, each a one-state operation --

* ``fetch`` reads the run's input ``n``; when ``n`` is a multiple of 3 it
  spawns child run ``<run id>.sub`` (one step, ``sub.double.run``, doubling
  ``n``) and waits for it -- the child is driven by whichever process holds
  its own partition;
* ``crunch`` is the slow one (``SLOW`` seconds, more for a process told to
  ``hang``), so kills land in it; it reads a quote through ``ctx.io.call``
  and the recorded clock, and its first attempt fails (retryably) when ``n``
  is a multiple of 4, so outcomes that are not ok are recorded too;
* ``charge`` applies a side effect (``SideEffects.APPLY``, idempotency key
  ``charge``): it sends ``ctx.idempotency_key`` to an *external service* --
  a folder where each call appends a line to ``calls.jsonl`` (raw calls) and
  creates ``applied/<key>`` with ``O_EXCL`` (the service's own dedup: the
  first call per key applies it, later ones are answered "already applied").

Every operation, at its start, reads ``await ctx.recorded()`` and appends one
line to ``ledger.jsonl`` (``O_APPEND``, one ``write``: a kill leaves whole
lines) with its run, state, attempt, process, time and the
``outcome/<state>/*`` keys already recorded. `judge` reads each such key's
outcome afterwards (facts are never overwritten) and reports any line that
started after an ok outcome of its state was recorded -- an operation run
again after its completion was recorded.

`pool_process` is a process entry point (``forkserver``) running
`adapters.cli.serving.serve`, the code ``statewright serve`` runs, with its
stdout and stderr in ``out/<name>.out`` / ``.err``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from statewright.adapters.cli.serving import open_runs, serve
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.executor import RUN, Context, Executor, facts_key, run_key
from statewright.adapters.runtime.operations import OpFailed, Operations
from statewright.adapters.runtime.runio import Mode
from statewright.kernel.step import Accepted, step
from statewright.machines.fact_log import FactLogPhase
from statewright.machines.pipeline import Pipeline, SideEffects, Step
from statewright.machines.run import RunPhase

OPS = Operations()
MACHINE = "kill"
STATES = tuple(f"{MACHINE}.{s}.run" for s in ("fetch", "crunch", "charge"))
CHARGE = STATES[2]
SUB = Pipeline("sub", "v1", (Step("double", "double", "v1"),))
SUB_STATE = "sub.double.run"
RUN_CONFIG = {"retry": {"max_attempts": 3, "backoff": {"fixed": {"delay_ms": 20}}}}


@dataclass
class Setting:
    """What this process's operations do: where they write, how slow ``crunch`` is, who they say they are."""

    folder: Path | None = None
    slow: float = 0.3
    hang: float = 0.0  # crunch sleeps this long instead (the first attempt this process makes), when > 0
    process: str = "parent"
    hung: set[str] = field(default_factory=set)


SETTING = Setting()


def configure(folder: Path, *, slow: float = 0.3, hang: float = 0.0, process: str = "parent") -> None:
    """Point this process's operations at ``folder`` (ledger, external service)."""
    global SETTING
    SETTING = Setting(folder, slow, hang, process)
    (folder / "applied").mkdir(parents=True, exist_ok=True)


def pipeline() -> Pipeline:
    return Pipeline(MACHINE, "v1", (Step("fetch", "fetch", "v1"), Step("crunch", "crunch", "v1"),
                                    Step("charge", "charge", "v1")))


def _append(name: str, line: dict[str, Any]) -> None:
    """One line, one ``write`` on an ``O_APPEND`` descriptor: whole lines whatever is killed when."""
    assert SETTING.folder is not None, "configure() first"
    fd = os.open(SETTING.folder / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


async def ledger(ctx: Context) -> None:
    """The line an operation writes at its start: which of its state's outcomes were recorded already."""
    if ctx.io.mode is Mode.REPLAY:
        return  # a replay calls the functions again on purpose, against a scratch store
    keys = await ctx.recorded()
    mine = [k for k in keys if k.startswith(f"outcome/{ctx.state_id}/")]
    _append("ledger.jsonl", {"run": ctx.run_id, "state": ctx.state_id, "attempt": ctx.attempt,
                             "process": SETTING.process, "pid": os.getpid(), "t": time.time(), "outcomes": mine})


def external_charge(key: str, amount: int) -> dict[str, Any]:
    """The external service: every call logged raw, applied once per key (``O_EXCL``), its receipt returned."""
    assert SETTING.folder is not None
    _append("calls.jsonl", {"key": key, "amount": amount, "process": SETTING.process, "t": time.time()})
    path = SETTING.folder / "applied" / key
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return {"receipt": key, "new": False}
    try:
        os.write(fd, str(amount).encode())
    finally:
        os.close(fd)
    return {"receipt": key, "new": True}


@OPS.op("fetch", "v1", exports=("n",))
async def fetch(ctx: Context) -> dict[str, Any]:
    await ledger(ctx)
    n = ctx.input["n"]
    if n % 3 == 0:
        child = await ctx.spawn(SUB, {"n": n}, key="sub")
        done = await ctx.wait_for(child, key="sub")
        assert done.outputs[SUB_STATE] == {"n2": 2 * n}, done
    return {"n": n}


@OPS.op("double", "v1", exports=("n2",))
async def double(ctx: Context) -> dict[str, Any]:
    await ledger(ctx)
    return {"n2": 2 * ctx.input["n"]}


@OPS.op("crunch", "v1", imports=("n",), exports=("m",))
async def crunch(ctx: Context) -> dict[str, Any]:
    await ledger(ctx)
    if ctx.io.mode is Mode.LIVE:
        hang = SETTING.hang > 0 and ctx.run_id not in SETTING.hung
        if hang:
            SETTING.hung.add(ctx.run_id)
        await asyncio.sleep(SETTING.hang if hang else SETTING.slow)
    await ctx.now()
    quote = await ctx.io.call("quote", lambda: {"rate": 3})
    n = ctx.inputs["n"]
    if ctx.attempt == 1 and n % 4 == 0:
        raise OpFailed("flaky", f"n={n}: the first attempt always fails")
    return {"m": n * quote["rate"]}


@OPS.op("charge", "v1", imports=("m",), exports=("receipt",), side_effects=SideEffects.APPLY,
        idempotency_key="charge")
async def charge(ctx: Context) -> dict[str, Any]:
    await ledger(ctx)
    key, amount = ctx.idempotency_key, ctx.inputs["m"]
    done = await ctx.io.call("charge", lambda: external_charge(key, amount))
    return {"receipt": done["receipt"]}


# -- the process --------------------------------------------------------------------------------


def pool_process(locator: str, folder: str, name: str, options: dict[str, Any], ready: MpEvent) -> None:
    """Serve ``locator`` as one pool process (`serving.serve`) until killed or sent SIGTERM."""
    out_dir = Path(folder) / "out"
    out_dir.mkdir(exist_ok=True)
    configure(Path(folder), slow=options.get("slow", 0.3), hang=options.get("hang", 0.0), process=name)
    with open(out_dir / f"{name}.out", "a", encoding="utf-8") as out, \
            open(out_dir / f"{name}.err", "a", encoding="utf-8") as err:
        try:
            code = asyncio.run(serve(locator, OPS, out=out, err=err, partitions=options["partitions"],
                                     max_partitions=options.get("max_partitions"), lease=options["lease"],
                                     poll=options["poll"], ready=lambda pool: ready.set()))
        except BaseException:
            import traceback

            err.write("ERROR " + traceback.format_exc())
            err.flush()
            raise
    sys.exit(code)


# -- reading what happened ----------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def errors(folder: Path) -> list[str]:
    """Tracebacks the pool processes wrote (``ERROR`` lines), and drives that failed (``driving run``)."""
    found = []
    for p in sorted((folder / "out").glob("*.err")) if (folder / "out").exists() else []:
        text = p.read_text()
        if "ERROR " in text:
            found.append(f"{p.name}: {text[text.index('ERROR '):][:3000]}")
    return found


def takes(folder: Path) -> list[tuple[str, int]]:
    """(process, partition) for every ``took partition`` line the pool processes logged."""
    out = []
    for p in sorted((folder / "out").glob("*.err")):
        for line in p.read_text().splitlines():
            if ": took partition " in line:
                out.append((p.stem, int(line.split(": took partition ")[1].split()[0])))
    return out


def failed_drives(folder: Path) -> int:
    return sum(p.read_text().count("failed: ") for p in (folder / "out").glob("*.err"))


@dataclass
class Judged:
    """What `judge` found, and the figures the tests print."""

    runs: int
    completed: int
    calls: int  # operation calls (ledger lines)
    attempts: int  # distinct (run, state, attempt)
    rejected: int  # inputs the run machine refused (logged, not applied)
    replayed_inputs: int = 0
    late: list[dict[str, Any]] = field(default_factory=list)  # ledger lines after an ok outcome of their state
    charge_calls: int = 0  # raw calls to the external service
    charge_keys: int = 0  # distinct keys it applied
    children: int = 0  # child runs, each spawned and awaited once

    @property
    def reexecuted(self) -> int:
        return self.calls - self.attempts


async def fold(store: Any, run_id: str) -> tuple[Any, int, int]:
    """Replay run ``run_id``'s logged inputs through the run machine from its created state, checking each
    logged effect: (the state reached, RunCompleted effects logged, rejected inputs logged)."""
    log = await store.read_log(run_key(run_id))
    assert log and log[0].kind == "created", (run_id, log[:1])
    state = store.catalog.load("run", json.dumps(log[0].data["state"]), key=run_key(run_id))
    parse = Driver(store).parse
    expected: list[Any] = []
    completed = rejected = 0
    for e in log[1:]:
        if e.kind == "input":
            assert not expected, (run_id, e.seq, "effects missing from the log", expected)
            result = step(RUN, state, parse("run", e.data))
            assert isinstance(result, Accepted), (run_id, e.seq, result)
            state = result.state
            expected = [json.loads(json.dumps(_effect_json(x))) for x in result.effects]
        elif e.kind == "effect":
            assert expected and e.data == expected[0], (run_id, e.seq, e.data, expected[:1])
            expected.pop(0)
            completed += e.data["type"] == "RunCompleted"
        elif e.kind == "rejected":
            rejected += 1
        else:
            assert e.kind == "terminal" and e.terminal, (run_id, e.seq, e.kind)
    assert not expected, (run_id, "effects missing at the end", expected)
    return state, completed, rejected


def _effect_json(effect: Any) -> Any:
    from statewright.kernel.jsonable import event_json

    return event_json(effect)


async def outcome_ok(executor: Executor, run_id: str, keys: Iterable[str]) -> list[str]:
    """Those of ``keys`` (outcome facts of run ``run_id``) whose recorded outcome is ok."""
    log = await executor.fact_log(run_id)
    ok = []
    for k in keys:
        artifact = log.get(k)
        assert artifact is not None, (run_id, k, "seen at an operation's start, not recorded now")
        if json.loads(await executor.artifacts.get(artifact))["ok"]:
            ok.append(k)
    return ok


async def judge_ledger(executor: Executor, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger lines written after an ok outcome of their state was recorded (see the module doc)."""
    late = []
    for line in lines:
        if line["outcomes"] and await outcome_ok(executor, line["run"], line["outcomes"]):
            late.append(line)
    return late


async def judge(locator: str, folder: Path, run_ids: list[str]) -> Judged:
    """Check every run's log and state, the ledger and the external service; the figures."""
    async with open_runs(locator) as (store, artifacts):
        executor = Executor(store, artifacts, OPS, adopt_children=False)
        completed = rejected = children = 0
        for run_id in run_ids:
            n = int(run_id[1:])  # `launch` names run n k<n>
            spawned = await linkage(store, run_id)
            if n % 3 == 0:
                child = f"{run_id}.sub"
                assert spawned == [("ChildRunSpawned", child), ("ChildRunCompleted", child)], (run_id, spawned)
                state, done, refused = await fold(store, child)
                assert (state.phase, state.completed, done) == (RunPhase.COMPLETED, (SUB_STATE,), 1), (child, state)
                assert state == (await store.load(run_key(child))).state, child
                assert (await executor.report(child)).outputs == {SUB_STATE: {"n2": 2 * n}}, child
                children += 1
            else:
                assert spawned == [], (run_id, spawned)
            state, done, refused = await fold(store, run_id)
            record = await store.load(run_key(run_id))
            assert state == record.state, (run_id, state, record.state)
            assert done == 1, (run_id, f"{done} RunCompleted effects")
            assert state.phase is RunPhase.COMPLETED and state.completed == STATES, (run_id, state)
            assert (await executor.fact_log(run_id)).get("snapshot/final") is not None, run_id
            report = await executor.report(run_id)
            assert report.outputs[CHARGE] == {"receipt": f"{run_id}:{CHARGE}:charge"}, (run_id, report.outputs)
            completed += done
            rejected += refused
            assert (await store.load(facts_key(run_id))).state.phase is FactLogPhase.SEALED, run_id
        lines = read_lines(folder / "ledger.jsonl")
        late = await judge_ledger(executor, lines)
    calls = read_lines(folder / "calls.jsonl")
    applied = sorted(p.name for p in (folder / "applied").iterdir())
    assert applied == sorted(f"{r}:{CHARGE}:charge" for r in run_ids), (len(applied), len(run_ids))
    assert {c["key"] for c in calls} == set(applied)
    attempts = Counter((x["run"], x["state"], x["attempt"]) for x in lines)
    return Judged(len(run_ids), completed, len(lines), len(attempts), rejected, late=late,
                  charge_calls=len(calls), charge_keys=len(applied), children=children)


async def linkage(store: Any, run_id: str) -> list[tuple[str, str]]:
    """The child-run linkage events in run ``run_id``'s fact log: (type, child), in order."""
    return [(e.data["type"], e.data["child"]) for e in await store.read_log(facts_key(run_id))
            if e.kind == "effect" and e.data["type"] in ("ChildRunSpawned", "ChildRunCompleted")]


async def launch(locator: str, count: int, *, pace: float = 0.0, first: int = 0) -> list[str]:
    """Launch ``count`` runs of `pipeline` (input ``n`` = ``first``, ``first + 1``, ...), one per ``pace`` seconds."""
    async with open_runs(locator) as (store, artifacts):
        executor = Executor(store, artifacts, OPS, adopt_children=False)
        ids = []
        for n in range(first, first + count):
            ids.append(await executor.launch(pipeline(), {"n": n}, run_config=RUN_CONFIG, run_id=f"k{n:04d}"))
            if pace:
                await asyncio.sleep(pace)
        return ids


async def ended(locator: str, run_ids: list[str]) -> int:
    """How many of ``run_ids`` have ended and been sealed (final snapshot recorded): a drive finished them."""
    async with open_runs(locator) as (store, _):
        return sum([(await store.load(facts_key(r))).state.phase is FactLogPhase.SEALED for r in run_ids])
