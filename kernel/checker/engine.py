"""`check(spec, ...) -> Report`: one entry point for every engine.

Which engine explores is a matter of speed, never of the answer: every
engine gives the same report (states, numbers, depths, verdicts, traces,
coverage), and the tests compare them whole.

* ``workers=1`` -- `Search`, breadth-first on one core over tuple keys;
* ``workers=N`` -- the level engine (`kernel.checker.levels`) under a
  `Coordinator`: packed 64-bit keys, 24 bytes a state, levels cut into chunks
  that N workers expand and judge. The workers are the ``pool`` the caller
  gives (`statewright.check` forks processes); without one, the chunks are
  taken in this process. Where the level engine does not apply (temporal
  properties, ``max_depth``/``max_states``, a lone machine, a closure too big)
  or meets an unexpected violation, the answer is `Search`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from statewright.kernel.checker.options import Options
from statewright.kernel.checker.report import Progress, Report, StopReason
from statewright.kernel.checker.search import Search
from statewright.kernel.checker.spec import Spec

if TYPE_CHECKING:
    from statewright.kernel.checker.pool import PoolFactory

__all__ = ["check", "explore"]


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
    clock: Callable[[], float] | None = None,
    memory: Callable[[], int] | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 1 << 16,
    should_stop: Callable[[], StopReason | None] | None = None,
    pool: PoolFactory | None = None,
) -> Report:
    """Explore every reachable state of ``spec`` breadth-first and judge its properties.

    By default the search stops at the first unexpected violation (its trace is
    a shortest one); ``keep_going=True`` explores everything and reports the
    first (shortest) trace of every violated property. The other options are
    `Options`' (cut-offs, ``workers``, ``symmetry`` and the caller's hooks):
    ``clock`` (e.g. ``time.perf_counter``) enables timings and ``time_limit``;
    ``should_stop`` is polled every 1,024 expanded states, and a `StopReason`
    it returns (say ``INTERRUPTED`` from a signal handler's flag) ends the
    search with a BOUNDED report of what was explored so far.

    This is the kernel's check: it reads no clock and starts no process.
    `statewright.check` is the same function with the real clock, memory
    gauge and process pool filled in.

    >>> from statewright.kernel.checker.properties import always
    >>> from statewright.kernel.checker.spec import Spec
    >>> from statewright.kernel.machine import Machine, Transition
    >>> from enum import Enum
    >>> from dataclasses import dataclass, replace
    >>> class P(Enum):
    ...     COUNTING = 1
    >>> @dataclass(frozen=True, slots=True)
    ... class Counter:
    ...     phase: P = P.COUNTING
    ...     n: int = 0
    >>> @dataclass(frozen=True, slots=True)
    ... class Inc: pass
    >>> def below_3(s, i): return s.n < 3
    >>> counter = Machine("counter", initial=Counter(), transitions=[
    ...     Transition(P.COUNTING, Inc, P.COUNTING, guard=below_3,
    ...                update=lambda s, i: replace(s, n=s.n + 1))])
    >>> report = check(Spec("count", counter, [Inc()], [always("small", lambda s: s.n <= 3)],
    ...                     deadlock=False))
    >>> report.verdict, report.distinct_states, report.depth
    (<Verdict.OK: 'ok'>, 4, 4)
    """
    options = Options(max_depth=max_depth, max_states=max_states, time_limit=time_limit, max_memory=max_memory,
                      workers=workers, symmetry=symmetry, keep_going=keep_going, clock=clock, memory=memory,
                      progress=progress, progress_every=progress_every, should_stop=should_stop, pool=pool)
    return explore(spec, options)


def explore(spec: Spec, options: Options) -> Report:
    """`check` with its options given as one `Options` value: pick the engine and run it."""
    options = options.of(spec)
    if options.workers > 1:
        # the level engine needs numpy: imported here, so that one-core checks (and `import statewright`) never do
        from statewright.kernel.checker.levels import FellBack, prepare_levels
        from statewright.kernel.checker.workers import Coordinator, UserCodeInWorker, WorkerFailed

        planned = prepare_levels(spec, options)
        if planned is not None:
            try:
                return Coordinator(spec, *planned, options).run()
            except FellBack:
                pass  # an unexpected violation: the report, cut there, is the one-core search's
            except UserCodeInWorker:
                pass  # the one-core search raises the user's error where its order meets it first
            except WorkerFailed as exc:
                warnings.warn(f"a worker failed ({exc}); the check goes on in one process", RuntimeWarning,
                              stacklevel=3)
    return Search(spec, options).run()
