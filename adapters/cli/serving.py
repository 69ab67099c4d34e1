"""``statewright serve``: one pool process -- it drives the runs of a store's partitions it leases, until stopped.

    statewright serve --store DB|DSN --operations TARGET [--partitions N] [--max-partitions K]
                      [--lease SECONDS] [--poll SECONDS]

The store is a SQLite file or a PostgreSQL DSN (``postgresql://user@host/db``)
and ``--operations`` names the code the runs need -- `Operations`, a
`program.Program`, or a JSON plan -- both as ``statewright resume`` takes
them (`running`). Runs get there by ``statewright run PLAN --detach`` or
`executor.Executor.launch`. Start as many of these as you like, on one machine or -- sharing one
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
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TextIO

from statewright.adapters.cli.checking import positive_float, positive_int
from statewright.adapters.project.errors import UsageError
from statewright.adapters.project.targets import Loader

if TYPE_CHECKING:  # the runtime (pydantic, asyncio stores) is imported when a pool starts, not with the parser
    from statewright.adapters.runtime.artifacts import ArtifactStore
    from statewright.adapters.runtime.operations import Operations
    from statewright.adapters.runtime.pool import Pool
    from statewright.adapters.runtime.store import Store

__all__ = ["add_arguments", "load_operations", "open_runs", "serve", "serve_command"]

EXIT_OK = 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``statewright serve``."""
    p.add_argument("--store", required=True, metavar="DB|DSN",
                   help="a SQLite file or a PostgreSQL DSN (postgresql://user@host/db) holding the runs and their "
                        "artifacts (a SQLite file is created)")
    p.add_argument("--operations", required=True, metavar="TARGET",
                   help="file.py:NAME naming the Operations (or a Program), or a JSON plan: the code the runs need")
    p.add_argument("--partitions", type=positive_int, default=16, metavar="N",
                   help="partitions the runs are spread over; every process of a pool must say the same (default 16)")
    p.add_argument("--max-partitions", type=positive_int, default=None, metavar="K",
                   help="take at most K partitions even when fewer processes share them (default: the fair "
                        "share, the partitions divided by the live processes)")
    p.add_argument("--lease", type=positive_float, default=10.0, metavar="SECONDS",
                   help="a partition's lease: how long after this process dies another one may take it over "
                        "(default 10)")
    p.add_argument("--poll", type=positive_float, default=0.5, metavar="SECONDS",
                   help="the longest wait between two looks for new runs and free partitions (default 0.5)")


def load_operations(loader: Loader, target: str) -> Operations:
    """The `Operations` ``--operations`` names, as ``resume`` and ``replay`` load them (`running`)."""
    from statewright.adapters.cli.running import load_target

    return load_target(target, loader, program=False).operations


def open_runs(store: str) -> AbstractAsyncContextManager[tuple[Store, ArtifactStore]]:
    """The run store and the artifact store at ``store`` (a SQLite file, created if missing, or a PostgreSQL DSN),
    opened as ``run`` opens them and closed on the way out."""
    from statewright.adapters.cli.running import open_stores

    return open_stores(store, create=True)


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
