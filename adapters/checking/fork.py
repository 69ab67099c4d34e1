"""Workers as forked processes: the `Pool` `statewright.check` gives the kernel's coordinator.

The coordinator (`kernel.checker.workers.Coordinator`) closes the local tables
before it asks for a pool, so every forked worker holds the same local ids
and the user's code without pickling either. Each worker serves messages
over its own pipe, one at a time (`kernel.checker.workers.Worker.serve`); an
exception in a worker is sent back as text and becomes `WorkerFailed`, and
the caller answers with the one-core `Search` instead.
"""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.connection import Connection, wait
from typing import Any

from statewright.kernel.checker.packed import Packing
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.checker.workers import Worker, WorkerFailed

__all__ = ["ForkPool", "can_fork", "fork_pool"]


def can_fork() -> bool:
    """Whether this platform starts processes by forking (the workers rely on it)."""
    return "fork" in multiprocessing.get_all_start_methods()


class ForkPool:
    """``n`` forked workers, each serving jobs over its own pipe, one job at a time."""

    shared = False

    def __init__(self, spec: Spec, space: StateSpace, packing: Packing, n: int) -> None:
        context = multiprocessing.get_context("fork")
        self.size = n
        self.connections: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(n):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, spec, space, packing), daemon=True)
            process.start()
            theirs.close()
            self.connections.append(mine)
            self.processes.append(process)

    def close(self) -> None:
        """Ask every worker to stop; kill those that do not."""
        for c in self.connections:
            try:
                c.send(("stop",))
            except OSError:
                pass
            c.close()
        for p in self.processes:
            p.join(timeout=1)
            if p.is_alive():
                p.kill()
                p.join()

    def ask(self, w: int, message: tuple[Any, ...]) -> None:
        try:
            self.connections[w].send(message)
        except OSError as exc:
            raise WorkerFailed(f"worker {w} is gone: {exc}") from exc

    def answers(self, busy: set[int]) -> list[tuple[int, Any]]:
        """Wait for at least one busy worker's answer; every answer ready now."""
        ready = wait([self.connections[w] for w in busy])
        out = []
        for w in sorted(busy):
            c = self.connections[w]
            if c in ready:
                try:
                    status, value = c.recv()
                except (EOFError, OSError) as exc:
                    raise WorkerFailed(f"worker {w} died") from exc
                if status != "ok":
                    raise WorkerFailed(f"worker {w}: {value}")
                out.append((w, value))
        return out


def fork_pool(spec: Spec, space: StateSpace, packing: Packing, n: int) -> ForkPool:
    """The `kernel.checker.workers.PoolFactory` of forked processes."""
    return ForkPool(spec, space, packing, n)


def _serve(conn: Connection, spec: Spec, space: StateSpace, packing: Packing) -> None:
    """A worker's loop: jobs in, answers out, until told to stop (or the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides what an interrupt means
    worker = Worker(spec, space, packing, forked=True)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        try:
            answer = worker.serve(message)
            conn.send(("ok", answer))
        except BaseException as exc:  # reported, not raised: the coordinator falls back to Search
            try:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            except Exception:
                return
