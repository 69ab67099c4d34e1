"""What carries the level engine's jobs: the `Pool` protocol and the factory `Options.pool` holds.

A pool is workers reached by number: ask one a message, wait for answers
(`kernel.checker.workers` says which messages). The kernel's `LocalPool`
answers in this process; the shell's forks processes
(`statewright.adapters.checking.fork`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from statewright.kernel.checker.packed import Packing
    from statewright.kernel.checker.space import StateSpace
    from statewright.kernel.checker.spec import Spec

__all__ = ["Pool", "PoolFactory"]


class Pool(Protocol):
    """Workers reached by number: ask one a message, wait for answers.

    ``shared`` says whether the workers count into this process's own local
    tables (then their coverage needs no ``fired`` message).
    """

    size: int
    shared: bool

    def ask(self, w: int, message: tuple[Any, ...]) -> None: ...

    def answers(self, busy: set[int], timeout: float | None = None) -> list[tuple[int, Any]]:
        """The answers ready among ``busy`` workers, waiting up to ``timeout`` seconds (None: for at least one)."""
        ...

    def interrupt(self, busy: set[int]) -> None:
        """Ask ``busy`` workers to drop the job they are doing: each answers ``("stopped",)`` instead."""
        ...

    def close(self) -> None: ...


PoolFactory = Callable[["Spec", "StateSpace", "Packing", int], "Pool | None"]
"""Starts ``n`` workers for a closed space: what `Options.pool` gives (the shell's forks processes).

None when no workers can be started here (threads are running, say): the
coordinator then keeps the work in its own process, with the same report."""
