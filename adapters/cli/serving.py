"""``statewright serve``: one pool process -- it drives the runs of a store's partitions it leases, until stopped.

    statewright serve --store STORE --operations FILE.py:NAME [--partitions N] [--max-partitions K]
                      [--lease SECONDS] [--poll SECONDS]

STORE is a SQLite file or a PostgreSQL DSN (``postgresql://user@host/db``),
as ``inspect`` takes it; the runs and their artifacts are both kept there.
``--operations`` names the `Operations` the runs' steps need, loaded the way
spec targets are (``FILE.py:NAME`` or ``MODULE:NAME``, `adapters.project.targets`).
Start as many of these as you like, on one machine or -- sharing one
PostgreSQL -- on many: they divide the partitions between them
(`adapters.runtime.pool.Pool`), and when one dies, another takes its
partitions over once its lease has run out and resumes every run it left.

It prints one line per run it ended (the run's last input committed here:
``... run r5d1c0a7e2b9f4431 completed``), and on stderr a line when it takes
or loses a partition. SIGTERM or SIGINT stops it gracefully: the runs in flight
are cancelled (the next holder resumes them) and its leases are released, so
another process takes its partitions at once instead of after ``--lease``
seconds; it then exits 0.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_arguments(p)
>>> args = p.parse_args(["--store", "shop.db", "--operations", "shop.py:OPS", "--partitions", "8"])
>>> args.store, args.operations, args.partitions, args.max_partitions, args.lease, args.poll
('shop.db', 'shop.py:OPS', 8, None, 10.0, 0.5)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from statewright.adapters.cli.checking import positive_float, positive_int
from statewright.adapters.project.errors import UsageError
from statewright.adapters.project.targets import Loader, _split

if TYPE_CHECKING:  # the runtime (pydantic, asyncio stores) is imported when a pool starts, not with the parser
    from statewright.adapters.runtime.artifacts import ArtifactStore
    from statewright.adapters.runtime.operations import Operations
    from statewright.adapters.runtime.pool import Pool
    from statewright.adapters.runtime.store import Store

__all__ = ["add_arguments", "load_operations", "open_runs", "serve", "serve_command"]

EXIT_OK = 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``statewright serve``."""
    p.add_argument("--store", required=True, metavar="STORE",
                   help="a SQLite file, or a PostgreSQL DSN (postgresql://user@host/db): the runs and their artifacts")
    p.add_argument("--operations", required=True, metavar="FILE.py:NAME",
                   help="the Operations the runs need: FILE.py:NAME or MODULE:NAME")
    p.add_argument("--partitions", type=positive_int, default=16, metavar="N",
                   help="partitions the runs are spread over; every process of a pool must say the same (default 16)")
    p.add_argument("--max-partitions", type=positive_int, default=None, metavar="K",
                   help="take at most K partitions, leaving the others to other processes (default: all of them)")
    p.add_argument("--lease", type=positive_float, default=10.0, metavar="SECONDS",
                   help="a partition's lease: how long after this process dies another one may take it over "
                        "(default 10)")
    p.add_argument("--poll", type=positive_float, default=0.5, metavar="SECONDS",
                   help="the longest wait between two looks for new runs and free partitions (default 0.5)")


def load_operations(loader: Loader, text: str) -> Operations:
    """The `Operations` named by ``FILE.py:NAME`` or ``MODULE:NAME``, imported as a spec target's file or module is."""
    from statewright.adapters.runtime.operations import Operations

    where = "--operations: "
    left, sep, attribute = _split(text.strip(), loader.cwd)
    if not sep or attribute is None:
        raise UsageError(f"{where}name the Operations object too: FILE.py:NAME or MODULE:NAME, got {text!r}")
    if left.endswith(".py") or "/" in left or "\\" in left:
        path = (loader.cwd / left).resolve()
        if not path.is_file():
            raise UsageError(f"{where}no file {left}")
        module = loader._import_file(path, where)
    else:
        module = loader._import_module(left, loader.cwd, where)
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UsageError(f"{where}{left} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not isinstance(value, Operations):
        raise UsageError(f"{where}{left}:{attribute} is a {type(value).__name__}, not an Operations "
                         "(statewright.adapters.runtime.operations.Operations)")
    return value


@asynccontextmanager
async def open_runs(store: str) -> AsyncIterator[tuple[Store, ArtifactStore]]:
    """The run store and the artifact store at ``store`` (a SQLite file or a PostgreSQL DSN), closed on the way out."""
    from statewright.adapters.runtime.executor import runs_catalog

    catalog = runs_catalog()
    if store.startswith(("postgresql://", "postgres://")):
        from statewright.adapters.runtime.artifacts_postgres import PostgresArtifacts
        from statewright.adapters.runtime.postgres import PostgresStore

        runs: Any = await PostgresStore.open(store, catalog)
        try:
            artifacts: Any = await PostgresArtifacts.open(store)
        except BaseException:
            await runs.close()
            raise
    else:
        from statewright.adapters.runtime.artifacts_sqlite import SqliteArtifacts
        from statewright.adapters.runtime.sqlite import SqliteStore

        runs = await SqliteStore.open(Path(store), catalog)
        try:
            artifacts = await SqliteArtifacts.open(Path(store))
        except BaseException:
            await runs.close()
            raise
    try:
        yield runs, artifacts
    finally:
        try:
            await artifacts.close()
        finally:
            await runs.close()


async def serve(store: str, operations: Operations, *, out: TextIO, err: TextIO, partitions: int = 16,
                max_partitions: int | None = None, lease: float = 10.0, poll: float = 0.5,
                ready: Callable[[Pool], None] | None = None) -> int:
    """Run one pool process on ``store`` until SIGTERM or SIGINT; the exit code (see the module doc).

    ``ready(pool)`` is called once the stores are open and the pool is built,
    before its first pass (a test's or a supervisor's hook).
    """
    from statewright.adapters.runtime.executor import Executor
    from statewright.adapters.runtime.pool import Pool
    from statewright.machines.run import RunCompleted

    ended: list[str] = []

    def finished(run_id: str, effect: Any) -> None:
        if isinstance(effect, RunCompleted):
            ended.append(run_id)
            print(f"{_now()} run {run_id} {effect.outcome.value}", file=out, flush=True)

    async with open_runs(store) as (runs, artifacts):
        executor = Executor(runs, artifacts, operations, adopt_children=False, observer=finished)
        pool = Pool(executor, partitions=partitions, max_partitions=max_partitions, lease=lease, poll=poll)
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            loop.add_signal_handler(signum, pool.stop)
        handler, logger = _LogLines(err), logging.getLogger("statewright.pool")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            print(f"{_now()} serving as {pool.owner}: {partitions} partitions"
                  f"{f', at most {max_partitions} here' if max_partitions else ''}, lease {lease:g} s, "
                  f"poll {poll:g} s", file=err, flush=True)
            if ready is not None:
                ready(pool)
            await pool.run()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            for signum in signals:
                loop.remove_signal_handler(signum)
        print(f"{_now()} stopped: {len(ended)} run(s) ended here; leases released", file=err, flush=True)
    return EXIT_OK


def serve_command(args: argparse.Namespace, loader: Loader, out: TextIO, err: TextIO) -> int:
    """``statewright serve``: load the operations, then `serve`."""
    if args.max_partitions is not None and args.max_partitions > args.partitions:
        raise UsageError(f"--max-partitions ({args.max_partitions}) is more than --partitions ({args.partitions})")
    operations = load_operations(loader, args.operations)
    return asyncio.run(serve(args.store, operations, out=out, err=err, partitions=args.partitions,
                             max_partitions=args.max_partitions, lease=args.lease, poll=args.poll))


class _LogLines(logging.Handler):
    """The pool's log records as lines on ``err``, timed like the run lines."""

    def __init__(self, err: TextIO) -> None:
        super().__init__(logging.INFO)
        self._err = err

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"{_now()} {record.getMessage()}", file=self._err, flush=True)
        except Exception:  # noqa: BLE001 -- a closed stream must not stop the pool
            self.handleError(record)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
