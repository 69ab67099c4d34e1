"""What the SQL backends share about running a write as a task its caller's cancellation cannot cut.

Both `SqliteStore` and `PostgresStore` run each write transaction, from
``BEGIN`` to ``COMMIT`` or ``ROLLBACK``, as one task shielded from the caller:
a cancelled caller flags it, waits for it with `settle`, and only then
re-raises its `asyncio.CancelledError`, so a connection is never left inside
a half transaction. A task that gives up because of that flag raises
`CallerCancelled` and rolls back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from statewright.kernel.renamed import renamed

__all__ = ["CallerCancelled", "settle", "shielded"]


class CallerCancelled(Exception):
    """A write rolled back because its caller was cancelled first; the caller sees `CancelledError`.

    Named for why the write stopped; it was ``Aborted``, the name the command
    line gives a second signal while checking (an alias warns for one release).
    """


async def settle(job: asyncio.Future[Any]) -> None:
    """Wait for ``job`` to finish, ignoring further cancellations of the waiter.

    The job's own outcome is retrieved and dropped: the waiter re-raises its
    cancellation instead, whatever the job ended with.
    """
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            continue
        except BaseException:
            break
    if not job.cancelled():
        job.exception()


T = TypeVar("T")


async def shielded(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``fn(*args)`` as a task a cancelled caller waits for (`settle`) before re-raising: never left mid-statement."""
    job = asyncio.ensure_future(fn(*args))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await settle(job)
        raise


# -- renamed names ------------------------------------------------------------------

_RENAMED = {"Aborted": "CallerCancelled"}

if TYPE_CHECKING:
    Aborted = CallerCancelled
else:
    __getattr__ = renamed(__name__, _RENAMED, globals())
