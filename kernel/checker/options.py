"""How to search a spec -- cut-offs, workers, symmetry, and the hooks the shell supplies -- apart from the model.

A `Spec` is the model: what is explored and what must hold. `Options` say how
one check goes about it:

* cut-offs that make a report BOUNDED when they stop the search early:
  ``max_depth`` (BFS levels; the initial states are level 1, as in TLC),
  ``max_states`` (stop once at least that many distinct states are known),
  ``time_limit`` (seconds, read from ``clock``) and ``max_memory`` (bytes,
  read from ``memory``);
* ``workers``: how many processes explore (the report is the same for every
  number), with ``pool`` the transport that starts them;
* ``symmetry``: explore one state per permutation class of the spec's
  declared symmetry (TLC's SYMMETRY);
* ``keep_going``: explore everything and report every violated property
  instead of stopping at the first unexpected violation.

The kernel reads no clock and measures no memory: ``clock`` and ``memory``
are the caller's, as are ``progress`` (called with a `Progress` every
``progress_every`` expanded states) and ``should_stop`` (polled every 1,024
states; a `StopReason` it returns ends the search there). `statewright.check`
supplies the real clock, memory gauge and process pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from statewright.kernel.checker.report import Progress, StopReason
from statewright.kernel.errors import DefinitionError

if TYPE_CHECKING:
    from statewright.kernel.checker.pool import PoolFactory
    from statewright.kernel.checker.spec import Spec

__all__ = ["Options"]


@dataclass(frozen=True, slots=True)
class Options:
    """How one check searches (see the module docstring).

    >>> Options(max_depth=3).max_depth
    3
    >>> Options(workers=0)
    Traceback (most recent call last):
    ...
    statewright.kernel.errors.DefinitionError: workers must be a positive int, got 0
    """

    max_depth: int | None = None
    max_states: int | None = None
    time_limit: float | None = None
    max_memory: int | None = None
    workers: int = 1
    symmetry: bool = False
    keep_going: bool = False
    clock: Callable[[], float] | None = None
    memory: Callable[[], int] | None = None
    progress: Callable[[Progress], None] | None = None
    progress_every: int = 1 << 16
    should_stop: Callable[[], StopReason | None] | None = None
    pool: PoolFactory | None = None

    def __post_init__(self) -> None:
        for label in ("max_depth", "max_states", "max_memory", "workers", "progress_every"):
            v = getattr(self, label)
            if v is not None and (type(v) is not int or v < 1):
                raise DefinitionError(f"{label} must be a positive int, got {v!r}")
        limit = self.time_limit
        if limit is not None and (not isinstance(limit, (int, float)) or isinstance(limit, bool) or not limit > 0):
            raise DefinitionError(f"time_limit must be a positive number of seconds, got {limit!r}")
        if limit is not None and self.clock is None:
            raise DefinitionError("a time_limit needs a clock (check(spec, clock=time.monotonic), as statewright.check "
                                  "gives)")
        if self.max_memory is not None and self.memory is None:
            raise DefinitionError("a max_memory needs a memory gauge (check(spec, memory=...), as statewright.check "
                                  "gives)")

    @property
    def bounded(self) -> bool:
        """Whether a cut-off whose exact cut point only the one-core search reproduces is set."""
        return self.max_depth is not None or self.max_states is not None

    def of(self, spec: Spec) -> Options:
        """These options with the cut-offs a spec still carries in its deprecated ``bounds`` filled in."""
        bounds = spec.bounds
        if bounds is None:
            return self
        changes: dict[str, Any] = {}
        for label in ("max_depth", "max_states", "time_limit"):
            if getattr(self, label) is None and getattr(bounds, label) is not None:
                changes[label] = getattr(bounds, label)
        if not changes:
            return self
        if "time_limit" in changes and self.clock is None:
            raise DefinitionError(f"spec {spec.name!r}: a time_limit needs a clock (check(spec, "
                                  "clock=time.monotonic))")
        return replace(self, **changes)
