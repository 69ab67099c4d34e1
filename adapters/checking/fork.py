"""Workers as forked processes: the `Pool` `statewright.check` gives the kernel's coordinator.

The coordinator (`kernel.checker.workers.Coordinator`) closes the local
tables before it asks for a pool, so every forked worker holds the same local
ids and the user's code without pickling either. Each worker serves messages
over its own pipe, one at a time (`kernel.checker.workers.Worker.serve`); an
exception in a worker is sent back as text and becomes `WorkerFailed`, and
the caller answers with the one-core `Search` instead.

What can go wrong with processes, and what this module does about it:

* **The coordinator dies** (SIGKILL, the OOM killer). Each worker closes
  every pipe end it inherited but its own, so the pipe reaches end-of-file
  when the coordinator is gone, and on Linux it also asks the kernel to kill
  it when its parent dies (``PR_SET_PDEATHSIG``): no worker outlives a
  coordinator, even in the middle of a job.
* **A stop request arrives while workers are busy** (Ctrl-C, the time limit,
  the memory budget). `ForkPool.interrupt` sends SIGUSR1; the worker drops the
  job and answers ``("stopped",)``, and stays alive to send its counts.
* **Threads are running when the check starts** (a spec module that started
  one holding a lock). Forking copies the locks but not the threads that would
  release them, so a worker could hang forever: `fork_pool` forks nothing,
  says why in a `RuntimeWarning`, and the coordinator keeps the work in its own
  process -- the same report, on one core.
* **Memory.** The workers' pids are registered with
  `statewright.adapters.checking.memory`, so a memory budget counts them too.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from multiprocessing.connection import Connection, wait
from typing import Any

from statewright.adapters.checking import memory
from statewright.kernel.checker.packed import Packing
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.checker.workers import UserCodeInWorker, Worker, WorkerFailed
from statewright.kernel.errors import DefinitionError

__all__ = ["ForkPool", "Interrupted", "can_fork", "fork_pool"]

PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """Raised in a worker by SIGUSR1: drop the job. A BaseException, so no handler of user code swallows it."""


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
            inherited = [*self.connections, mine]  # the child closes these: only the coordinator holds them
            process = context.Process(target=_serve, args=(theirs, inherited, spec, space, packing), daemon=True)
            process.start()
            theirs.close()
            self.connections.append(mine)
            self.processes.append(process)
            assert process.pid is not None
            memory.watched.add(process.pid)
        for w in range(n):  # each worker says when it has let go of what it inherited and is ready for jobs
            self.answers({w})

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
            memory.watched.discard(p.pid)

    def ask(self, w: int, message: tuple[Any, ...]) -> None:
        try:
            self.connections[w].send(message)
        except OSError as exc:
            raise WorkerFailed(f"worker {w} is gone: {exc}") from exc

    def answers(self, busy: set[int], timeout: float | None = None) -> list[tuple[int, Any]]:
        """The answers ready among ``busy`` workers, waiting up to ``timeout`` seconds (None: for one at least)."""
        ready = wait([self.connections[w] for w in busy], timeout)
        out = []
        for w in sorted(busy):
            c = self.connections[w]
            if c in ready:
                try:
                    status, value = c.recv()
                except (EOFError, OSError) as exc:
                    raise WorkerFailed(f"worker {w} died") from exc
                if status == "user":
                    raise UserCodeInWorker(f"worker {w}: {value}")
                if status != "ok":
                    raise WorkerFailed(f"worker {w}: {value}")
                out.append((w, value))
        return out

    def interrupt(self, busy: set[int]) -> None:
        """Ask ``busy`` workers to drop their jobs (SIGUSR1); each still answers, with ``("stopped",)``."""
        for w in busy:
            process = self.processes[w]
            if process.is_alive():
                os.kill(process.pid, signal.SIGUSR1)


def fork_pool(spec: Spec, space: StateSpace, packing: Packing, n: int) -> ForkPool | None:
    """The `kernel.checker.pool.PoolFactory` of forked processes; None when forking is not safe here."""
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others:
        warnings.warn(f"{len(others)} other thread{'s are' if len(others) > 1 else ' is'} running "
                      f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): forking would copy "
                      "their locks but not the threads, so the check runs in this process", RuntimeWarning,
                      stacklevel=2)
        return None
    return ForkPool(spec, space, packing, n)


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the coordinator dies (no orphaned workers)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl: end-of-file on the pipe still stops us
        pass


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted()


INTERRUPTIBLE = frozenset({"expand", "judge"})
"""The jobs an interrupt may cut short (never ``fired``, whose counts the report needs)."""


def _serve(
    conn: Connection, inherited: list[Connection], spec: Spec, space: StateSpace, packing: Packing
) -> None:
    """A worker's loop: jobs in, answers out, until told to stop (or the coordinator is gone).

    SIGUSR1 stays blocked except while an interruptible job runs, and an
    interrupt still pending from a job already answered is discarded before
    the next one starts: an interrupt cuts only the job it was sent for, and
    never a message half read or half sent.
    """
    _die_with_parent()
    for c in inherited:
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides what an interrupt means
    signal.signal(signal.SIGUSR1, _interrupt)
    usr1 = {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, usr1)
    worker = Worker(spec, space, packing, forked=True)
    conn.send(("ok", ("ready",)))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        interruptible = message[0] in INTERRUPTIBLE
        try:
            if interruptible:
                signal.sigtimedwait(usr1, 0)  # an interrupt meant for the job before this one
                signal.pthread_sigmask(signal.SIG_UNBLOCK, usr1)
            try:
                answer: Any = worker.serve(message)
            finally:
                signal.pthread_sigmask(signal.SIG_BLOCK, usr1)
        except Interrupted:
            answer = ("stopped",)
        except DefinitionError as exc:  # the user's code (or model) at fault: Search reports it in its order
            try:
                conn.send(("user", f"{type(exc).__name__}: {exc}"))
            except Exception:
                return
            continue
        except BaseException as exc:  # reported, not raised: the coordinator falls back to Search
            try:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            except Exception:
                return
            continue
        try:
            conn.send(("ok", answer))
        except (OSError, EOFError):
            return
