"""``statewright run``, ``resume`` and ``replay``: runs of pipelines against a store, from the command line.

``run PLAN`` launches a run of a program -- a `program.Program` named as
``file.py:NAME`` (loaded as spec files are), or a JSON plan naming its
operations -- and drives it to its end with the `executor.Executor`, one line
per state entered, completed or failed (the executor's ``observer``), child
runs included. The run id comes first, with the command that resumes it:
a run whose process dies is resumed by ``resume RUN_ID``, from its last
recorded boundary, given the operations again (code is never stored with a
run). ``replay RUN_ID`` runs a finished run and its child runs again in
replay mode and says whether their logs are byte-identical.

A store is a SQLite file (created by ``run``; ``resume`` and ``replay`` want
one that exists) or a PostgreSQL DSN, the same forms ``inspect`` takes; the
artifacts live beside the records in the same file or database.

Exit codes: 0 when the run completed (a replay was identical), 1 when it
failed or was cancelled -- printing the error of its last failed attempt --
(a replay differed), 2 for a usage error, an executor's refusal
(``statewright: error: CODE: ...`` with a `run_errors` code: ``run_not_found``,
``run_exists``, the planner's codes, ...) or a store's typed error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from statewright.adapters.project.errors import UsageError, shown_path
from statewright.adapters.project.targets import Loader
from statewright.adapters.runtime.artifacts import ArtifactStore, MemoryArtifacts
from statewright.adapters.runtime.executor import Executor, RunReport, run_key, runs_catalog
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.operations import Operations
from statewright.adapters.runtime.program import Program, read_plan
from statewright.adapters.runtime.run_errors import (
    MissingFact,
    MissingFactKey,
    PlanRefused,
    ReplayDiverged,
    RunError,
    RunNotFinished,
)
from statewright.adapters.runtime.store import Store
from statewright.machines.pipeline import Pipeline
from statewright.machines.run import Outcome, Run, RunCompleted, RunStarted, StateCompleted, StateEntered, StateFailed

__all__ = ["Progress", "load_target", "open_stores", "replay_command", "resume_command", "run_command"]

EXIT_OK, EXIT_FAILED = 0, 1


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What a PLAN or ``--operations`` target gave: the operations, and (a program or plan) what to run."""

    operations: Operations
    pipeline: Pipeline | None = None
    input: Any = None
    run_config: Any = None


class Progress:
    """The progress display: a line per run started or ended and per state entered, completed or failed.

    It is the executor's ``observer``, called as each run input commits, so a
    line is printed (and flushed) once the store holds what it says.

    >>> import io
    >>> out = io.StringIO()
    >>> show = Progress(out)
    >>> show("order-7", StateEntered("shop.charge.run", 1)); show("order-7", StateFailed("shop.charge.run", 1, True))
    >>> print(out.getvalue(), end="")
    order-7  entered    shop.charge.run (attempt 1)
    order-7  failed     shop.charge.run (attempt 1, will retry)
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, run_id: str, effect: Any) -> None:
        line = _progress_line(effect)
        if line is not None:
            print(f"{run_id}  {line}", file=self.out, flush=True)


def _progress_line(effect: Any) -> str | None:
    match effect:
        case RunStarted():
            return "started"
        case StateEntered(state_id=state, attempt=attempt):
            return f"{'entered':<10} {state} (attempt {attempt})"
        case StateCompleted(state_id=state):
            return f"{'completed':<10} {state}"
        case StateFailed(state_id=state, attempt=attempt, will_retry=again):
            return f"{'failed':<10} {state} (attempt {attempt}, {'will retry' if again else 'no retry'})"
        case RunCompleted(outcome=outcome):
            return f"run {outcome.value}"
    return None


# -- the commands ---------------------------------------------------------------------------


def run_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Launch a run of PLAN and drive it to its end (``--detach``: only launch it)."""
    loaded = load_target(args.plan, loader, program=True)
    assert loaded.pipeline is not None
    value = loaded.input if args.input is None else _json_option(args.input, "--input")
    pipeline = loaded.pipeline
    _judge(loaded.operations, pipeline, value, loaded.run_config, args.run_id)

    async def body(executor: Executor, store: Store) -> int:
        run_id = await executor.launch(pipeline, value, run_config=loaded.run_config, run_id=args.run_id)
        resume = shlex.join(["statewright", "resume", run_id, "--store", _shown_store(args.store),
                             "--operations", args.plan])
        if args.detach:
            serve = shlex.join(["statewright", "serve", "--store", _shown_store(args.store), "--operations", args.plan])
            print(f"run {run_id} launched (a pool drives it: {serve}; or this process: {resume})", file=out,
                  flush=True)
            return EXIT_OK
        print(f"run {run_id} (if it stops: {resume})", file=out, flush=True)
        return await _drive(executor, store, run_id, out)

    return _with_executor(args.store, loaded.operations, out, body, create=True)


def resume_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Drive run RUN_ID to its end from wherever its records stand."""
    loaded = load_target(args.operations, loader, program=False)

    async def body(executor: Executor, store: Store) -> int:
        report = await executor.report(args.run_id)  # run_not_found, or the plan checked against the operations
        run = await _run_state(store, args.run_id)
        total = len(run.plan.states)
        where = f"at {run.current} (attempt {run.attempt}), " if run.current and report.outcome is None else ""
        print(f"run {args.run_id}: {report.phase.value}, {where}{len(run.completed)} of {total} states completed",
              file=out, flush=True)
        return await _drive(executor, store, args.run_id, out)

    return _with_executor(args.store, loaded.operations, out, body, create=False)


def replay_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Replay finished run RUN_ID and its child runs; exit 0 when every replay is identical."""
    loaded = load_target(args.operations, loader, program=False)

    async def body(executor: Executor, store: Store) -> int:
        differ = False
        for run_id in await _family(executor, args.run_id):
            try:
                report = await executor.replay(run_id)
            except RunNotFinished as exc:
                if run_id == args.run_id:
                    raise
                # a child its parent never waited for (the parent failed first) has nothing to compare yet
                print(f"replay of {run_id}: not replayed -- {exc.code}: {_one_line(exc)}", file=out, flush=True)
                continue
            except (ReplayDiverged, MissingFact, MissingFactKey) as exc:
                differ = True
                print(f"replay of {run_id}: different -- {exc.code}: {_one_line(exc)}", file=out, flush=True)
                continue
            calls = f"{report.transport_calls} transport call{'' if report.transport_calls == 1 else 's'}"
            if report.identical:
                print(f"replay of {run_id}: identical ({report.events} events, {calls})", file=out, flush=True)
            else:
                differ = True
                print(f"replay of {run_id}: different ({calls}) -- {report.difference}", file=out, flush=True)
        return EXIT_FAILED if differ else EXIT_OK

    return _with_executor(args.store, loaded.operations, out, body, create=False)


# -- driving and reporting --------------------------------------------------------------------


async def _drive(executor: Executor, store: Store, run_id: str, out: TextIO) -> int:
    """Drive the run to its end and print how it ended; the exit code."""
    report = await executor.drive(run_id)
    run = await _run_state(store, run_id)
    return _ended(report, run, out)


def _ended(report: RunReport, run: Run, out: TextIO) -> int:
    total = len(run.plan.states)
    if report.outcome is Outcome.COMPLETED:
        print(f"run {report.run_id} completed: {len(report.completed)} of {total} states", file=out)
        if report.completed:
            last = report.completed[-1]
            print(f"output of {last}: {json.dumps(report.outputs.get(last), sort_keys=True)}", file=out)
        return EXIT_OK
    done = f"({len(report.completed)} of {total} states completed)"
    error = f"{report.error.code}: {report.error.message}" if report.error is not None else None
    if report.outcome is Outcome.FAILED and error is not None:
        print(f"run {report.run_id} failed at {report.failed_state}: {error} {done}", file=out)
        return EXIT_FAILED
    outcome = report.outcome.value if report.outcome is not None else report.phase.value
    print(f"run {report.run_id} {outcome} {done}", file=out)
    if error is not None:  # cancelled: its last failed attempt, which may have been retried
        print(f"last failed attempt: {report.failed_state}: {error}", file=out)
    return EXIT_FAILED


async def _run_state(store: Store, run_id: str) -> Run:
    state = (await store.load(run_key(run_id))).state
    assert isinstance(state, Run)  # the executor opened the run (its fact log) before
    return state


async def _family(executor: Executor, run_id: str) -> list[str]:
    """``run_id`` and its child runs, depth first in the order they were spawned."""
    out = [run_id]
    log = await executor.fact_log(run_id)
    for key, artifact in log.facts:
        if key.startswith("child/"):
            child = json.loads(await executor.artifacts.get(artifact))["run_id"]
            out += await _family(executor, str(child))
    return out


# -- loading programs and operations -------------------------------------------------------------


def load_target(target: str, loader: Loader, *, program: bool) -> _Loaded:
    """A PLAN (``program``: a `Program` or a JSON plan) or an ``--operations`` target (also bare `Operations`)."""
    if target.endswith(".json"):
        return _json_plan(Path(target), loader)
    value, label = loader.attribute(target)
    if isinstance(value, Program):
        return _Loaded(value.operations, value.pipeline, value.input, value.run_config)
    if isinstance(value, Operations) and not program:
        return _Loaded(value)
    wanted = "a Program" if program else "Operations or a Program"
    raise UsageError(f"{label} is {_kind(value)}, not {wanted} (statewright.adapters.runtime.program.Program"
                     f"{'' if program else ', statewright.adapters.runtime.operations.Operations'})")


def _kind(value: Any) -> str:
    """What ``value`` is, for an error: ``a class``, ``an Operations``, ``a dict``."""
    if isinstance(value, type):
        return "a class"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _json_plan(path: Path, loader: Loader) -> _Loaded:
    """A JSON plan's pipeline, input and run config, and its operations loaded relative to the plan's folder."""
    shown = shown_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no file {shown}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {shown}: {exc}") from None
    try:
        plan = read_plan(json.loads(text))
    except RecursionError:
        raise UsageError(f"{shown}: nested too deep") from None
    except ValueError as exc:  # json.JSONDecodeError is one
        raise UsageError(f"{shown}: {_one_line(exc)}") from None
    value, label = loader.attribute(plan.operations, base=path.resolve().parent, where=f"{shown}: operations: ")
    operations = value.operations if isinstance(value, Program) else value
    if not isinstance(operations, Operations):
        raise UsageError(f"{shown}: operations: {label} is {_kind(value)}, not Operations")
    return _Loaded(operations, plan.pipeline, plan.input, plan.run_config)


def _json_option(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{option}: not JSON ({_one_line(exc)})") from None


# -- stores -----------------------------------------------------------------------------------------


def _is_dsn(locator: str) -> bool:
    return locator.startswith(("postgresql://", "postgres://"))


def _shown_store(locator: str) -> str:
    """The store as the user gave it, without a DSN's password."""
    if not _is_dsn(locator):
        return locator
    from statewright.adapters.runtime.postgres import _redact

    return _redact(locator)


@asynccontextmanager
async def open_stores(locator: str, *, create: bool) -> AsyncIterator[tuple[Store, ArtifactStore]]:
    """The store of runs and its artifacts at ``locator``; a SQLite file must exist unless ``create``."""
    catalog = runs_catalog()
    store: Any
    artifacts: Any
    if _is_dsn(locator):
        try:
            from statewright.adapters.runtime.artifacts_postgres import PostgresArtifacts
            from statewright.adapters.runtime.postgres import PostgresStore
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        store = await PostgresStore.open(locator, catalog)
        try:
            artifacts = await PostgresArtifacts.open(locator)
        except BaseException:
            await store.close()
            raise
    else:
        from statewright.adapters.runtime.artifacts_sqlite import SqliteArtifacts
        from statewright.adapters.runtime.sqlite import SqliteStore

        path = Path(locator)
        if not create and not path.is_file():
            raise UsageError(f"no store at {locator}" + (" (a folder)" if path.is_dir() else ""))
        store = await SqliteStore.open(path, catalog)
        try:
            artifacts = await SqliteArtifacts.open(path)
        except BaseException:
            await store.close()
            raise
    try:
        yield store, artifacts
    finally:
        try:
            await artifacts.close()
        finally:
            await store.close()


def _judge(operations: Operations, pipeline: Pipeline, value: Any, run_config: Any, run_id: str | None) -> None:
    """Launch the run in memory first: the executor's own checks (manifest, plan, run config, functions, run id)
    refuse a bad plan before the store is opened, so a SQLite file is not created for nothing."""

    async def launch() -> None:
        executor = Executor(MemoryStore(runs_catalog()), MemoryArtifacts(), operations)
        await executor.launch(pipeline, value, run_config=run_config, run_id=run_id)

    try:
        asyncio.run(launch())
    except RunError as exc:
        raise UsageError(_coded(exc)) from exc


def _coded(exc: RunError) -> str:
    """``CODE: message``: a refused plan as the planner says it (the run it names was not created), any other
    refusal with its code in front."""
    text = _one_line(exc.failure if isinstance(exc, PlanRefused) else exc)
    return text if text.startswith(f"{exc.code}: ") else f"{exc.code}: {text}"


def _with_executor(locator: str, operations: Operations, out: TextIO,
                   body: Callable[[Executor, Store], Awaitable[int]], *, create: bool) -> int:
    """Open the stores, run ``body`` with an executor showing its progress on ``out``; the executor's
    refusals become one-line usage errors with their code."""

    async def main() -> int:
        async with open_stores(locator, create=create) as (store, artifacts):
            executor = Executor(store, artifacts, operations, observer=Progress(out))
            return await body(executor, store)

    try:
        return asyncio.run(main())
    except RunError as exc:
        raise UsageError(_coded(exc)) from exc


def _one_line(exc: object) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
