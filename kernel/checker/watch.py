"""What stops a search from outside its model: the time limit, the memory budget, the caller -- and progress.

Every engine polls one `Watch` between units of work (every 1,024 states
for `Search`, between chunks for the level engine, every 1,024 visited
states for the simulator). The kernel reads no clock and measures no memory
itself: both arrive as the caller's callables in `Options`.
"""

from __future__ import annotations

from statewright.kernel.checker.options import Options
from statewright.kernel.checker.report import Progress, StopReason

__all__ = ["POLL", "Watch"]

POLL = 1023
"""Engines poll when ``i & POLL == 0``: every 1,024 states."""


class Watch:
    """Polls the cut-offs that come from outside the model, and reports progress."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.started = options.clock() if options.clock is not None else 0.0
        self.progress_due = options.progress_every if options.progress is not None else 0

    def elapsed(self) -> float:
        """Seconds since the search started (0.0 without a clock)."""
        clock = self.options.clock
        return clock() - self.started if clock is not None else 0.0

    def poll(self, expanded: int, distinct: int, generated: int, depth: int) -> StopReason | None:
        """Why the search must stop now -- time, memory or the caller -- or None; reports progress when due.

        ``expanded`` states of ``distinct`` known are expanded so far.
        """
        o = self.options
        now = self.elapsed()
        if o.time_limit is not None and now > o.time_limit:
            return StopReason.TIME_LIMIT
        if o.max_memory is not None and o.memory is not None and o.memory() > o.max_memory:
            return StopReason.MEMORY
        if o.should_stop is not None:
            stop = o.should_stop()
            if stop is not None:
                return stop
        if o.progress is not None and expanded >= self.progress_due:
            self.progress_due = expanded + o.progress_every
            o.progress(Progress(distinct, generated, depth, distinct - expanded, now))
        return None
