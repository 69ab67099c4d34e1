"""The executor pool under kill -9: real processes (`statewright serve`'s code) on SQLite and PostgreSQL.

Three pool processes (`tests.adapters._executors.pool_process`, from a
``forkserver``) serve one store while runs of a three-step pipeline are
launched at a steady pace -- ``fetch``, which for every third run spawns a
child run and waits for it, a slow ``crunch`` whose first attempt sometimes
fails, and ``charge``, which applies a side effect with an idempotency key. The parent SIGKILLs a random pool process at random moments,
starting a replacement each time, waits until every run has ended, stops the
survivors with SIGTERM, and then:

* every run's log holds exactly one ``RunCompleted``, and its state is the
  fold of its logged inputs through the run machine from its created state
  (each logged effect checked on the way: `_executors.fold`); so do the child
  runs', and each parent's fact log links its child once
  (``ChildRunSpawned``, then ``ChildRunCompleted``);
* no operation started after an ok outcome of its state had been recorded:
  each one says, at its start, which outcomes it saw (`_executors.ledger`);
* the external service applied each idempotency key once (its raw calls and
  distinct keys are printed: a kill between its call and the recorded fact
  makes a second call, which the service answers without applying);
* every finished run, and every child run, replays identical with no
  transport call.

Then a take-over with a known kill point: the holder of the only run is
killed while its slow step is in flight, and the time from the kill to the
other process's first call of that step is printed (at most the lease plus
a poll, plus a margin for two loaded cores); and a holder paused (SIGSTOP)
past its lease, then woken, which must stop its drives while the runs still
complete once and apply once.

Quick tests beside them show that the judges catch what they are for (an
executor that calls a finished attempt again; a log that does not explain a
state), run ``statewright serve`` as a user does (a line per run, a graceful
SIGTERM/SIGINT that releases the leases, one-line usage errors), and pin two
bugs the kill tests found (a failed attempt's IO in a replay; a run whose
process died between its last input and its final snapshot; a drive that
stood still while another process moved its run on).

Sizes are small by default; for a soak set ``STATEWRIGHT_EXECUTOR_KILLS``
(kills per backend), ``STATEWRIGHT_EXECUTOR_RUNS`` and
``STATEWRIGHT_EXECUTOR_SEED``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.cli.serving import open_runs
from statewright.adapters.runtime.artifacts import MemoryArtifacts
from statewright.adapters.runtime.executor import Executor, runs_catalog
from tests.adapters import _backends as B
from tests.adapters import _executors as X


def _context() -> ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.adapters._executors"])
    return ctx


CTX = _context()
SEED = int(os.environ.get("STATEWRIGHT_EXECUTOR_SEED", "20261207"))
KILLS = int(os.environ.get("STATEWRIGHT_EXECUTOR_KILLS", "6"))
RUNS = int(os.environ.get("STATEWRIGHT_EXECUTOR_RUNS", "40"))
OPTIONS: dict[str, Any] = {"partitions": 6, "max_partitions": 3, "lease": 1.5, "poll": 0.05, "slow": 0.4}
START_WITHIN = 60.0
END_WITHIN = 180.0
MARGIN = 5.0  # seconds over lease + poll a take-over may take on two loaded cores (the suite runs on every core)


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[executor kill] {text}")


def until(cond: Callable[[], bool], seconds: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


@dataclass
class Fleet:
    """Pool processes on one store: started, killed (SIGKILL), replaced, stopped (SIGTERM)."""

    locator: str
    folder: Path
    options: dict[str, Any]
    procs: dict[int, tuple[str, Any]] = field(default_factory=dict)
    incarnations: Counter[int] = field(default_factory=Counter)
    killed: int = 0

    def start(self, slot: int, **options: Any) -> str:
        name = f"p{slot}.{self.incarnations[slot]}"
        self.incarnations[slot] += 1
        ready = CTX.Event()
        proc = CTX.Process(target=X.pool_process,
                           args=(self.locator, str(self.folder), name, {**self.options, **options}, ready))
        proc.start()
        self.procs[slot] = (name, proc)
        if not ready.wait(START_WITHIN):
            self.check_errors()
            raise AssertionError(f"{name} never opened the store")
        return name

    def kill(self, slot: int) -> float:
        """SIGKILL the process in ``slot``; the time of the kill."""
        self.check_errors()
        name, proc = self.procs.pop(slot)
        at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL, (name, proc.exitcode, X.errors(self.folder))
        self.killed += 1
        return at

    def stop(self) -> None:
        """SIGTERM every live process: each stops gracefully, releases its leases and exits 0."""
        for name, proc in self.procs.values():
            os.kill(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.values():
            proc.join(30)
            assert proc.exitcode == 0, (name, proc.exitcode, X.errors(self.folder))
            err = (self.folder / "out" / f"{name}.err").read_text()
            assert "leases released" in err.splitlines()[-1], err[-500:]
        self.procs.clear()

    def check_errors(self) -> None:
        errors = X.errors(self.folder)
        assert not errors, errors[0]

    def close(self) -> None:
        for _, proc in self.procs.values():
            if proc.is_alive():
                proc.kill()
                proc.join()


def launcher(locator: str, count: int, pace: float) -> Any:
    """A process launching ``count`` runs, one per ``pace`` seconds."""
    proc = CTX.Process(target=_launch, args=(locator, count, pace))
    proc.start()
    return proc


def _launch(locator: str, count: int, pace: float) -> None:
    asyncio.run(X.launch(locator, count, pace=pace))


def wait_ended(locator: str, run_ids: list[str], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        done = asyncio.run(X.ended(locator, run_ids))
        if done == len(run_ids) or time.monotonic() > deadline:
            return done
        time.sleep(0.3)


# -- 1. kill -9 at random moments ------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_at_random_moments_every_run_completes_once_and_applies_once(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = B.backend_name(store_at)
    rng = random.Random(SEED)
    X.configure(tmp_path)
    fleet = Fleet(store_at, tmp_path, OPTIONS)
    run_ids = [f"k{n:04d}" for n in range(RUNS)]
    began = time.monotonic()
    try:
        for slot in range(3):
            fleet.start(slot)
        feeding = launcher(store_at, RUNS, 0.2)
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.6))
            slot = rng.randrange(3)
            fleet.kill(slot)
            fleet.start(slot)
        feeding.join(120)
        assert feeding.exitcode == 0, "the launcher failed"
        done = wait_ended(store_at, run_ids, END_WITHIN)
        took = time.monotonic() - began
        fleet.check_errors()
        assert done == RUNS, f"{done} of {RUNS} runs ended within {END_WITHIN} s"
        fleet.stop()
    finally:
        fleet.close()
    judged = asyncio.run(X.judge(store_at, tmp_path, run_ids))
    assert not judged.late, f"operations run after their completion was recorded: {judged.late[:3]}"
    assert judged.completed == RUNS
    assert judged.reexecuted > 0, "no kill landed in an operation in flight: the kills proved nothing"
    takes = X.takes(tmp_path)
    takeovers = len(takes) - len({p for _, p in takes})
    say(capsys, f"{backend}: {RUNS} runs, 3 pool processes, {fleet.killed} kills -9 (each replaced), "
                f"{takeovers} partition take-overs, {took:.1f} s from the first launch to the last run's end")
    say(capsys, f"{backend}: {judged.completed} RunCompleted (one per run), {judged.children} child runs spawned "
                f"and awaited once each; every state = its log's inputs folded "
                f"through the run machine ({judged.rejected} refused inputs logged); {judged.calls} operation calls "
                f"for {judged.attempts} attempts ({judged.reexecuted} re-executed after a kill), none after its "
                f"outcome was recorded; charge: {judged.charge_calls} raw calls, {judged.charge_keys} distinct "
                f"keys applied once each; {X.failed_drives(tmp_path)} drives failed and were retried")
    children = [f"{r}.sub" for r in run_ids if int(r[1:]) % 3 == 0]
    replayed = asyncio.run(replay_all(store_at, run_ids + children))
    assert replayed == (RUNS + len(children), 0), replayed
    say(capsys, f"{backend}: all {RUNS} runs and their {len(children)} child runs replay identical, byte for "
                f"byte, with 0 transport calls")


async def replay_all(locator: str, run_ids: list[str]) -> tuple[int, int]:
    """Replay each run; (identical replays, transport calls made)."""
    identical = calls = 0
    async with open_runs(locator) as (store, artifacts):
        executor = Executor(store, artifacts, X.OPS, adopt_children=False)
        for run_id in run_ids:
            report = await executor.replay(run_id)
            assert report.identical, report.difference
            identical += 1
            calls += report.transport_calls
    return identical, calls


# -- 2. a take-over with a known kill point ---------------------------------------------------------------


def first_line(folder: Path, state: str, process: str, seconds: float) -> dict[str, Any]:
    """The first ledger line ``process`` wrote for ``state``, waiting up to ``seconds`` for it."""
    def find() -> dict[str, Any] | None:
        return next((x for x in X.read_lines(folder / "ledger.jsonl")
                     if x["state"] == state and x["process"] == process), None)

    assert until(lambda: find() is not None, seconds), f"{process} never started {state}"
    found = find()
    assert found is not None
    return found


async def leases_end(locator: str, partition: int | None = None) -> float:
    """When the partition leases held now run out (the latest ``until``, by the store's clock: this machine's),
    or that of one ``partition``."""
    async with open_runs(locator) as (store, _):
        rows = await store.consumers()  # type: ignore[attr-defined]
    return float(max(r.until for r in rows if r.owner and r.name == "executor"
                     and (partition is None or r.partition == partition)))


@pytest.mark.slow
def test_a_holder_killed_mid_step_is_taken_over_within_lease_and_poll(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Process A holds both partitions and hangs in the slow step of the only run; process B joins and gets the
    idle partition (its fair share). A is killed mid-step: B takes A's partition once A's lease runs out and
    calls the step again (same attempt)."""
    backend = B.backend_name(store_at)
    options = {**OPTIONS, "partitions": 2, "max_partitions": None}
    lease, poll = float(options["lease"]), float(options["poll"])
    X.configure(tmp_path)
    fleet = Fleet(store_at, tmp_path, options)
    crunch = X.STATES[1]
    try:
        holder = fleet.start(0, hang=60.0)
        assert until(lambda: len(X.takes(tmp_path)) == 2, 30), "A never took both partitions"
        [run_id] = asyncio.run(X.launch(store_at, 1, first=1))
        first_line(tmp_path, crunch, holder, 30)
        taker = fleet.start(1)
        # two live processes: A gives back the partition with nothing in flight, and B takes it
        assert until(lambda: len(X.takes(tmp_path)) == 3, 30), "B never got its share"
        [given] = [p for who, p in X.takes(tmp_path) if who == taker]
        expiry = asyncio.run(leases_end(store_at, 1 - given))
        killed = fleet.kill(0)
        again = first_line(tmp_path, crunch, taker, lease + poll + 30)
        assert wait_ended(store_at, [run_id], 60) == 1
        fleet.stop()
    finally:
        fleet.close()
    judged = asyncio.run(X.judge(store_at, tmp_path, [run_id]))
    assert (judged.calls, judged.attempts, judged.reexecuted, judged.late) == (4, 3, 1, [])
    assert again["attempt"] == 1 and again["outcomes"] == []  # a crash is not a failure: the same attempt again
    assert sorted(p for _, p in X.takes(tmp_path)) == [0, 0, 1, 1]
    recovery = again["t"] - killed
    assert recovery <= lease + poll + MARGIN, f"{recovery:.2f} s from the kill to the new holder's call"
    say(capsys, f"{backend}: holder killed mid-step; the other process called the step again {recovery:.2f} s "
                f"after the kill, {again['t'] - expiry:+.2f} s after the holder's lease ran out "
                f"(lease {lease:g} s, poll {poll:g} s); the run completed once, its charge applied once")


@pytest.mark.slow
def test_a_holder_paused_past_its_lease_stops_its_drives_when_it_wakes(
    store_at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Process A holds both partitions, gives one to B when B joins (its fair share), and is paused (SIGSTOP) with
    runs in flight, past its lease; B takes A's runs over and finishes them; then A goes on (SIGCONT). A finds its leases gone and stops its drives; the runs
    still complete once each, each key is applied once, and what A did after waking is printed: it may finish a
    call it was in (its outcome is then B's, first writer wins) or start one B has not finished (the window
    operations' idempotency keys are for)."""
    backend = B.backend_name(store_at)
    options = {**OPTIONS, "partitions": 2, "max_partitions": None, "slow": 1.0}
    X.configure(tmp_path)
    fleet = Fleet(store_at, tmp_path, options)
    try:
        paused = fleet.start(0)
        assert until(lambda: len(X.takes(tmp_path)) == 2, 30), "A never took both partitions"
        taker = fleet.start(1)
        # two live processes: A gives one partition back (its fair share is 1 of 2) and B takes it
        assert until(lambda: len(X.takes(tmp_path)) == 3, 30), "B never got its share"
        run_ids = asyncio.run(X.launch(store_at, 6, first=1))
        first_line(tmp_path, X.STATES[1], paused, 30)
        pid = fleet.procs[0][1].pid
        pauses, taken = 0, False
        while not taken and pauses < 10:
            if pauses:
                time.sleep(0.2)  # let A finish the transaction it was stopped in
            pauses += 1
            os.kill(pid, signal.SIGSTOP)
            stopped = time.time()
            try:
                # B takes A's other partition only once A's lease ran out: A stood still past it
                taken = until(lambda: len(X.takes(tmp_path)) == 4, float(options["lease"]) + 3)
            finally:
                os.kill(pid, signal.SIGCONT)
            # not taken: A stopped inside a write transaction and holds the store's write lock (SQLite's one
            # writer; on PostgreSQL the lock of a row B needs), so nobody can write until it goes on -- the
            # limit docs/runs.md states; pause it again at another moment
        assert taken, f"B took nothing over in {pauses} pauses"
        woke = time.time()
        assert wait_ended(store_at, run_ids, 60) == len(run_ids)
        err = tmp_path / "out" / f"{paused}.err"
        assert until(lambda: err.read_text().count(": lost partition ") == 2, 30), err.read_text()
        fleet.stop()
    finally:
        fleet.close()
    judged = asyncio.run(X.judge(store_at, tmp_path, run_ids))
    after = [x for x in X.read_lines(tmp_path / "ledger.jsonl") if x["process"] == paused and x["t"] > woke]
    say(capsys, f"{backend}: holder paused {woke - stopped:.1f} s (lease {options['lease']:g} s; pause "
                f"{pauses}, the earlier ones inside a write transaction) with runs in "
                f"flight; the other process took its partition over; {len(run_ids)} runs completed once each; "
                f"{judged.calls} operation calls for {judged.attempts} attempts; after waking the paused process "
                f"started {len(after)} operation(s), {len(judged.late)} after its outcome was recorded; charge: "
                f"{judged.charge_calls} raw calls, {judged.charge_keys} keys applied once each")


# -- 3. the ledger's judge catches an operation run after its completion was recorded -------------------------


class _Died(Exception):
    """A simulated crash: raised where the process would have died."""


class _DiesBeforeSucceed(Executor):
    """Dies after the outcome of ``kill.crunch.run`` is recorded, before its ``Succeed`` is fed."""

    async def _feed(self, run_id: str, value: Any, request: str) -> Any:
        if type(value).__name__ == "Succeed" and getattr(value, "state_id", None) == X.STATES[1]:
            raise _Died
        return await super()._feed(run_id, value, request)


class _IgnoresRecordedOutcomes(Executor):
    """Broken on purpose: it does not see recorded outcomes, so a resume calls a finished attempt again."""

    def _lookup(self, opened: Any, key: str) -> str | None:
        return None if key.startswith("outcome/") else super()._lookup(opened, key)


@pytest.mark.parametrize("resumer", [Executor, _IgnoresRecordedOutcomes])
def test_the_ledger_judge_catches_an_operation_run_after_its_completion_was_recorded(
    resumer: type[Executor], tmp_path: Path
) -> None:
    """A process dies between recording crunch's ok outcome and feeding Succeed; a resume must not call crunch
    again. The real executor does not; one that ignores recorded outcomes does, and the judge says so."""
    from statewright.adapters.runtime.memory import MemoryStore

    X.configure(tmp_path, slow=0.0)

    async def main() -> tuple[list[dict[str, Any]], int]:
        store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()
        dying = _DiesBeforeSucceed(store, artifacts, X.OPS)
        run_id = await dying.launch(X.pipeline(), {"n": 1}, run_config=X.RUN_CONFIG)
        with pytest.raises(_Died):
            await dying.drive(run_id)
        report = await resumer(store, artifacts, X.OPS).drive(run_id)
        assert report.outcome is not None and report.outcome.value == "completed"
        lines = X.read_lines(tmp_path / "ledger.jsonl")
        return await X.judge_ledger(Executor(store, artifacts, X.OPS), lines), len(lines)

    late, calls = asyncio.run(main())
    if resumer is Executor:
        assert (late, calls) == ([], 3)
    else:
        assert calls == 4 and [(x["state"], x["attempt"], x["outcomes"]) for x in late] == [
            (X.STATES[1], 1, [f"outcome/{X.STATES[1]}/1"])]


def test_the_fold_judge_catches_a_log_that_does_not_explain_the_state(tmp_path: Path) -> None:
    """`_executors.fold` recomputes a run's state and effects from its log: an input or an effect left out fails it."""
    from statewright.adapters.runtime.memory import MemoryStore

    X.configure(tmp_path, slow=0.0)

    class Dropping:
        """The store, with one event of a run's log left out when read."""

        def __init__(self, inner: Any, kind: str) -> None:
            self.inner, self.catalog, self.kind = inner, inner.catalog, kind

        async def read_log(self, key: str) -> list[Any]:
            log: list[Any] = await self.inner.read_log(key)
            drop = max(i for i, e in enumerate(log) if e.kind == self.kind)
            return log[:drop] + log[drop + 1:]

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    async def main() -> None:
        store = MemoryStore(runs_catalog())
        report = await Executor(store, MemoryArtifacts(), X.OPS).run(X.pipeline(), {"n": 4}, run_config=X.RUN_CONFIG)
        record = await store.load(f"runs/{report.run_id}")
        state, completed, rejected = await X.fold(store, report.run_id)
        assert (state, completed, rejected) == (record.state, 1, 0)
        for kind in ("input", "effect"):
            with pytest.raises(AssertionError):  # the effects that follow no longer match what the step emits
                await X.fold(Dropping(store, kind), report.run_id)

    asyncio.run(main())


# -- 4. statewright serve ----------------------------------------------------------------------------------

SERVE_OPS = """\
from statewright.adapters.runtime.operations import Operations

OPS = Operations()
OPS.op("hello", "v1", exports=("said",))(lambda ctx: {"said": "hello " + ctx.input})
NOT_OPS = 42
"""


def _serve_ops() -> Any:
    from statewright.adapters.runtime.operations import Operations

    ops = Operations()
    ops.op("hello", "v1", exports=("said",))(lambda ctx: {"said": "hello " + ctx.input})
    return ops


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_drives_the_runs_and_stops_gracefully(tmp_path: Path, signum: int) -> None:
    """``statewright serve`` as a user starts it: a line per run finished; SIGTERM or SIGINT stops it with exit 0,
    its leases released."""
    from statewright.machines.pipeline import Pipeline, Step

    (tmp_path / "ops.py").write_text(SERVE_OPS)
    db = tmp_path / "runs.db"

    async def launch() -> list[str]:
        async with open_runs(str(db)) as (store, artifacts):
            executor = Executor(store, artifacts, _serve_ops(), adopt_children=False)
            greet = Pipeline("greet", "v1", (Step("s", "hello", "v1"),))
            return [await executor.launch(greet, name, run_id=f"g-{name}") for name in ("ada", "bob", "cy")]

    ids = asyncio.run(launch())
    proc = subprocess.Popen(
        [sys.executable, "-m", "statewright", "serve", "--store", str(db), "--operations", "ops.py:OPS",
         "--partitions", "4", "--lease", "30", "--poll", "0.05"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while len(lines) < 3:
            line = proc.stdout.readline()
            assert line, f"serve ended early: {proc.wait()}, {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.split(" ", 2)[2].strip())
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert sorted(lines) == [f"run {r} completed" for r in ids] and out == ""
    err_lines = [line.split(" ", 2)[2] for line in err.splitlines()]
    assert err_lines[0].startswith("serving as ") and err_lines[0].endswith(": 4 partitions, lease 30 s, poll 0.05 s")
    assert sum(": took partition " in line for line in err_lines) == 4
    assert err_lines[-1] == "stopped: 3 run(s) ended here; leases released"

    async def owners() -> dict[str, set[str | None]]:
        async with open_runs(str(db)) as (store, _):
            out: dict[str, set[str | None]] = {}
            for r in await store.consumers():  # type: ignore[attr-defined]
                out.setdefault(r.name, set()).add(r.owner)
            return out

    # released: another process takes the partitions at once, not in 30 s; and this one is no longer counted
    assert asyncio.run(owners()) == {"executor": {None}, "executor.members": {None}}


@pytest.mark.parametrize("argv, message", [
    (["--operations", "nowhere.py:OPS"], "error: no file nowhere.py"),  # as `resume --operations` says them
    (["--operations", "ops.py"], "error: ops.py: name the object, as in ops.py:NAME"),
    (["--operations", "ops.py:MISSING"], "error: ops.py has no attribute 'MISSING'"),
    (["--operations", "ops.py:NOT_OPS"], "error: ops.py:NOT_OPS is an int, not Operations or a Program"),
    (["--operations", "ops.py:OPS", "--partitions", "2", "--max-partitions", "3"],
     "--max-partitions (3) is more than --partitions (2)"),
    (["--operations", "ops.py:OPS", "--lease", "0"], "--lease"),
])
def test_serve_refuses_what_it_cannot_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    from statewright.adapters.cli import run

    (tmp_path / "ops.py").write_text(SERVE_OPS)
    monkeypatch.chdir(tmp_path)
    assert run(["serve", "--store", str(tmp_path / "runs.db"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("statewright: error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs.db").exists()  # refused before anything was opened


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


# -- found by a SIGSTOP probe: a drive that stood still while another process moved its run on ----------------


@pytest.mark.parametrize("where", ["before an attempt", "before its end"])
def test_a_drive_that_stood_still_decides_from_the_facts_recorded_meanwhile(tmp_path: Path, where: str) -> None:
    """Process A loaded a run and stood still -- a pause past its lease -- while B took the run over and finished
    it. When A goes on it must not call crunch again, whose ok outcome B recorded, nor fail on the snapshots it
    has not seen: it reads the facts again before it decides."""
    from statewright.adapters.runtime.memory import MemoryStore

    X.configure(tmp_path, slow=0.0)

    class StandsStill(Executor):
        """Stands still once while ``meanwhile`` runs: at the start of its first crunch attempt, or just after
        a drive read the fact log and before it reads the run (which B then ends)."""

        meanwhile: Any = None

        async def _pause(self) -> None:
            meanwhile, self.meanwhile = self.meanwhile, None
            if meanwhile is not None:
                await meanwhile()

        async def _attempt(self, opened: Any, run: Any, x: str, a: int) -> Any:
            if where == "before an attempt" and x == X.STATES[1]:
                await self._pause()
            return await super()._attempt(opened, run, x, a)

        async def _load_run(self, run_id: str) -> Any:
            if where == "before its end":
                await self._pause()
            return await super()._load_run(run_id)

    async def main() -> tuple[str, list[dict[str, Any]], int]:
        store, artifacts = MemoryStore(runs_catalog()), MemoryArtifacts()
        a = StandsStill(store, artifacts, X.OPS, adopt_children=False)
        run_id = await a.launch(X.pipeline(), {"n": 1}, run_config=X.RUN_CONFIG)

        async def b_takes_over() -> None:
            await Executor(store, artifacts, X.OPS, adopt_children=False).drive(run_id)

        a.meanwhile = b_takes_over
        report = await a.drive(run_id)
        lines = X.read_lines(tmp_path / "ledger.jsonl")
        return report.phase.value, await X.judge_ledger(a, lines), len(lines)

    assert asyncio.run(main()) == ("completed", [], 3)  # each operation called once, by A or by B
