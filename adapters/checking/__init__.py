"""`statewright.check`: the kernel's check, with the shell's clock, memory gauge and worker processes.

The kernel (`statewright.kernel.checker`) reads no clock, measures no memory
and starts no process; its `check` takes all three as arguments. This room
fills them in -- ``time.perf_counter``, the process's resident set size and
forked workers -- so that one function serves every engine:
``check(spec)`` on one core, ``check(spec, workers=4)`` on four processes
with the same report. Platforms without ``fork`` run the workers' jobs in
this process (same report, one core).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import Any

from statewright.adapters.checking.memory import available_memory, in_use, rss
from statewright.kernel.checker import engine
from statewright.kernel.checker.report import Progress, Report, StopReason
from statewright.kernel.checker.spec import Spec

__all__ = ["available_memory", "check", "check_parallel", "default_workers", "in_use", "rss"]


def check(
    spec: Spec,
    *,
    workers: int = 1,
    max_depth: int | None = None,
    max_states: int | None = None,
    time_limit: float | None = None,
    max_memory: int | None = None,
    symmetry: bool = False,
    keep_going: bool = False,
    clock: Callable[[], float] | None = time.perf_counter,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 1 << 16,
    should_stop: Callable[[], StopReason | None] | None = None,
) -> Report:
    """Check ``spec`` on ``workers`` processes (the same report for every number of them).

    ``max_depth``, ``max_states``, ``time_limit`` (seconds) and
    ``max_memory`` (bytes in use by this process and its workers,
    `memory.in_use`) cut the search short and make
    the report BOUNDED; ``symmetry`` explores one state per permutation class
    of the spec's declared symmetry; ``keep_going`` reports every violated
    property instead of stopping at the first. ``progress`` is called every
    ``progress_every`` expanded states and ``should_stop`` polled every
    1,024 (see `statewright.kernel.checker.check`).

    >>> from statewright.specs import REGISTRY
    >>> spec = REGISTRY.get("two_phase").spec()
    >>> check(spec).distinct_states, check(spec, workers=2).distinct_states
    (288, 288)
    """
    pool = None
    if workers > 1:
        from statewright.adapters.checking.fork import (  # multiprocessing, only when asked for
            can_fork,
            fork_pool,
        )

        pool = fork_pool if can_fork() else None
    return engine.check(spec, workers=workers, max_depth=max_depth, max_states=max_states, time_limit=time_limit,
                        max_memory=max_memory, symmetry=symmetry, keep_going=keep_going, clock=clock,
                        memory=in_use if max_memory is not None else None, progress=progress,
                        progress_every=progress_every, should_stop=should_stop, pool=pool)


def default_workers() -> int:
    """The cores this process may use (its CPU affinity where the platform says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_parallel(spec: Spec, *, workers: int, **options: Any) -> Report:
    """Deprecated: `check` (``check(spec, workers=N)``) does this now."""
    warnings.warn("check_parallel(spec, workers=N) is now check(spec, workers=N); the old name goes "
                  "in the next release", DeprecationWarning, stacklevel=2)
    return check(spec, workers=workers, **options)
