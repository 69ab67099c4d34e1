"""What stops a search from outside its model: the time limit, the memory budget, the caller -- and progress.

Every engine asks one `Watch` whether a poll is `due` and then `poll`s it:
`Search` per expanded state, the level engine between chunks and while it
waits for its workers, the simulator per visited state. The kernel reads no
clock and measures no memory itself: both arrive as the caller's callables
in `Options`.

How often: every `EVERY` (1,024) states when nothing tells the watch to
hurry. A poll that comes more than `SLOW` seconds after the one before
halves the interval (a state whose user code is slow, a Ctrl-C that must be
answered), down to one state; quick polls double it back. Under a memory
budget the interval is also cut so that, at the growth seen since the last
poll, the next poll comes before a quarter of what is left of the budget is
spent -- states of megabytes are polled every few states, so the budget holds
where a fixed interval of 1,024 would overshoot it by gigabytes.
"""

from __future__ import annotations

from statewright.kernel.checker.options import Options
from statewright.kernel.checker.report import Progress, StopReason

__all__ = ["EVERY", "SLOW", "Watch"]

EVERY = 1024
"""The most states between two polls."""
SLOW = 0.25
"""Seconds between polls past which the interval halves (and under a tenth of which it doubles)."""


class Watch:
    """Polls the cut-offs that come from outside the model, reports progress, and paces itself.

    >>> ticks = iter(range(1_000_000))
    >>> watch = Watch(Options(clock=lambda: float(next(ticks))))   # a clock that moves a second per reading
    >>> watch.due(1024), watch.poll(1024, 1024, 0, 1), watch.every   # polls a second apart: halve
    (True, None, 512)
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self.started = options.clock() if options.clock is not None else 0.0
        self.progress_due = options.progress_every if options.progress is not None else 0
        self.every = 1 if options.max_memory is not None else EVERY
        """States between polls now (under a memory budget it starts at one and grows while memory allows)."""
        self.next = self.every
        """Poll when this many states are expanded."""
        self.last_time = 0.0
        self.last_memory: int | None = None

    def elapsed(self) -> float:
        """Seconds since the search started (0.0 without a clock)."""
        clock = self.options.clock
        return clock() - self.started if clock is not None else 0.0

    def due(self, expanded: int) -> bool:
        """Whether a poll is due once ``expanded`` states are expanded (or visited)."""
        return expanded >= self.next

    def poll(self, expanded: int, distinct: int, generated: int, depth: int) -> StopReason | None:
        """Why the search must stop now -- time, memory or the caller -- or None; reports progress when due.

        ``expanded`` states of ``distinct`` known are expanded so far.
        """
        o = self.options
        now = self.elapsed()
        memory = o.memory() if o.max_memory is not None and o.memory is not None else None
        self._pace(now, memory)
        self.next = expanded + self.every
        if o.time_limit is not None and now > o.time_limit:
            return StopReason.TIME_LIMIT
        if memory is not None and o.max_memory is not None and memory > o.max_memory:
            return StopReason.MEMORY
        if o.should_stop is not None:
            stop = o.should_stop()
            if stop is not None:
                return stop
        if o.progress is not None and expanded >= self.progress_due:
            self.progress_due = expanded + o.progress_every
            o.progress(Progress(distinct, generated, depth, distinct - expanded, now))
        return None

    def _pace(self, now: float, memory: int | None) -> None:
        """The interval to the next poll, from the time and the memory the last interval took."""
        every = self.every
        if self.options.clock is not None:
            took = now - self.last_time
            if took > SLOW:
                every = max(1, every // 2)
            elif took < SLOW / 10:
                every = min(EVERY, every * 2)
            self.last_time = now
        elif self.options.max_memory is not None:
            every = min(EVERY, every * 2)
        budget = self.options.max_memory
        if memory is not None and budget is not None:
            if self.last_memory is not None and memory > self.last_memory:
                per_state = (memory - self.last_memory) / self.every
                every = max(1, min(every, int(max(budget - memory, 0) / 4 / per_state)))
            self.last_memory = memory
        self.every = every
