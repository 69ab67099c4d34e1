"""`Portal`: one event loop in a daemon thread, for calling coroutines from plain functions.

Flask, Django and scripts call functions; the shell's stores and drivers are
coroutines. A portal owns one event loop running in a daemon thread, started
when it opens and stopped when it closes (it is a context manager). Every
blocking call hands a coroutine to that loop with
`asyncio.run_coroutine_threadsafe` and waits for its result, so a store's
connection, its `asyncio.Lock` and its write tasks all live on one loop however
many threads call in. `blocking.SyncDriver` and `blocking.SyncDispatcher` are
built on it.

What a caller can rely on:

* **Errors keep their type and traceback.** An exception raised in the
  coroutine is re-raised in the calling thread as the same object: ``except
  NotFound`` works, and the traceback shows the coroutine's frames below the
  caller's.
* **A timeout or Ctrl-C cancels the call, then waits for it to wind down.**
  When ``timeout`` passes, or `KeyboardInterrupt` reaches the waiting thread,
  the coroutine is cancelled -- as an `asyncio.CancelledError` at its current
  ``await``, exactly as an async caller's cancellation would be -- and the
  caller waits (up to the portal's ``grace``) until it has finished. A write
  in flight has then rolled back or committed *whole* (the stores run each
  transaction as a task a cancellation cannot cut), never half. Which of the
  two the caller cannot know from the exception: the `Driver` remembers the
  batch, so feeding the same input to the same key again re-submits it by id
  and returns the original result if it had landed, applying nothing twice;
  across processes, pass ``request=`` ids. A timeout raises `PortalTimeout`
  (a `TimeoutError`), unless the call finished before the cancellation
  reached it: then its result (or its own error) is what the caller gets.
  KeyboardInterrupt is re-raised after the wind-down; a second one stops
  waiting for it.
* **A call from the portal's own thread raises `PortalThread`** instead of
  deadlocking: code running *in* the loop (an async handler, a coroutine given
  to `Portal.call`) must ``await`` the async API. Calling from a thread that
  runs some other event loop works but blocks that loop while it waits.
* **A call after close raises `PortalClosed`**; so does a call still waiting
  when the portal closes (its coroutine is cancelled).
* **A fork after open is detected**: the child has the portal object but not
  its thread, nor a usable copy of the store's connection, so every call in
  the child raises `PortalForked`. Open the `SyncDriver` in each worker after
  the fork (gunicorn: in ``post_fork``, or lazily on the first request), not in
  the master before it.

>>> async def double(x: int) -> int:
...     return 2 * x
>>> with Portal() as portal:
...     portal.call(double(21))
42
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import threading
from collections.abc import Coroutine
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

__all__ = ["Portal", "PortalClosed", "PortalError", "PortalForked", "PortalThread", "PortalTimeout"]

T = TypeVar("T")


class PortalError(RuntimeError):
    """Base of the portal's own failures; ``code`` is stable, as the store errors' are."""

    code = "portal_error"


class PortalClosed(PortalError):
    """The portal is closed (or was never opened), or closed while this call waited; nothing more runs in it."""

    code = "portal_closed"


class PortalThread(PortalError):
    """A blocking call from the portal's own loop thread, which would wait for itself forever: ``await`` instead."""

    code = "portal_thread"


class PortalForked(PortalError):
    """A call in a process forked after the portal opened: its loop thread and connections stayed in the parent."""

    code = "portal_forked"


class PortalTimeout(PortalError, TimeoutError):
    """The call did not finish in time; it was cancelled and has wound down (a write rolled back or committed whole)."""

    code = "portal_timeout"


class _Phase(Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class _Call:
    """One call's task, so the calling thread can cancel it in the loop, even before it has started."""

    __slots__ = ("cancelled", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """Run in the loop: cancel the task, or make it cancel itself as it starts."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()


class Portal:
    """One event loop in a daemon thread: run coroutines to completion from any other thread.

    ``grace`` bounds how long a cancelled call (a timeout, Ctrl-C) and, on
    close, the tasks still running are waited for while they wind down.

    >>> async def double(x: int) -> int:
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> with Portal() as portal:
    ...     portal.call(double(21))
    42
    """

    def __init__(self, *, name: str = "statewright-portal", grace: float = 30.0) -> None:
        self.name = name
        self.grace = grace
        self._phase = _Phase.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._guard = threading.Lock()

    # -- opening and closing ----------------------------------------------------

    def open(self) -> Self:
        """Start the loop thread; `PortalClosed` if this portal was opened before (open a new one)."""
        with self._guard:
            if self._phase is not _Phase.NEW:
                raise PortalClosed(f"{self.name}: a portal opens once; this one is {self._phase.value}")
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._serve, args=(loop, ready), name=self.name, daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread, self._pid = loop, thread, os.getpid()
            self._phase = _Phase.OPEN
        return self

    def close(self) -> None:
        """Stop the loop: tasks still running are cancelled and waited for (up to ``grace``). Idempotent.

        In a forked child it only marks the portal closed: the thread to stop
        is the parent's.
        """
        with self._guard:
            if self._phase is not _Phase.OPEN:
                self._phase = _Phase.CLOSED
                return
            if self._inside():
                raise PortalThread(f"{self.name}: close() from the portal's own thread would wait for itself")
            self._phase = _Phase.CLOSED
            loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        if os.getpid() != self._pid:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    @property
    def is_open(self) -> bool:
        """True between `open` and `close`, in the process that opened it."""
        return self._phase is _Phase.OPEN and os.getpid() == self._pid

    def __enter__(self) -> Self:
        return self.open() if self._phase is _Phase.NEW else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        """The loop thread: run until stopped, then cancel what is left and let it wind down."""
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                if left:
                    loop.run_until_complete(asyncio.wait(left, timeout=self.grace))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    # -- calling ----------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` in the loop and return its result; its exception is re-raised here, type and traceback kept.

        ``timeout`` (seconds; None or ``math.inf``: no limit) cancels the call
        when it passes, waits for it to wind down, and raises `PortalTimeout`
        -- unless it finished first. See the module doc for Ctrl-C.
        """
        try:
            loop = self._usable()
        except BaseException:
            coro.close()  # never to run: no "coroutine was never awaited" warning
            raise
        call = _Call()
        future = asyncio.run_coroutine_threadsafe(self._run(coro, call), loop)
        limit = None if timeout is None or math.isinf(timeout) else max(0.0, timeout)
        try:
            done, _ = concurrent.futures.wait([future], timeout=limit)
        except BaseException:  # KeyboardInterrupt, or another signal handler's exception, while waiting
            self._wind_down(loop, call, future)
            raise
        if not done:
            self._wind_down(loop, call, future)
            if not future.done():
                raise PortalTimeout(f"{self.name}: the call did not finish within {timeout} s and, cancelled, "
                                    f"was still winding down after {self.grace} s")
            if future.cancelled():
                raise PortalTimeout(f"{self.name}: the call did not finish within {timeout} s; it was cancelled "
                                    "and has wound down (a write in it rolled back or committed whole)")
        return self._outcome(future)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` as a background task in the loop; its future (cancelled, in the loop, on close)."""
        try:
            loop = self._usable()
        except BaseException:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _outcome(self, future: concurrent.futures.Future[T]) -> T:
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self._phase is _Phase.CLOSED:
                raise PortalClosed(f"{self.name}: closed while the call was in flight; it was cancelled") from None
            raise

    def _wind_down(self, loop: asyncio.AbstractEventLoop, call: _Call, future: concurrent.futures.Future[Any]) -> None:
        """Cancel ``call`` in the loop and wait (up to ``grace``) until it has finished, whatever its end."""
        try:
            loop.call_soon_threadsafe(call.cancel)
        except RuntimeError:  # the loop closed meanwhile: the call was cancelled by the close
            return
        concurrent.futures.wait([future], timeout=self.grace)

    @staticmethod
    async def _run(coro: Coroutine[Any, Any, T], call: _Call) -> T:
        if call.cancelled:  # cancelled before it started: it never runs
            coro.close()
            raise asyncio.CancelledError
        call.task = asyncio.current_task()
        return await coro

    def _usable(self) -> asyncio.AbstractEventLoop:
        """The loop to call into, or why there is none."""
        if self._phase is not _Phase.OPEN or self._loop is None:
            raise PortalClosed(f"{self.name}: the portal is {self._phase.value}")
        if os.getpid() != self._pid:
            raise PortalForked(f"{self.name}: opened in process {self._pid}, called in {os.getpid()}, forked from "
                               "it: open a new one in this process (after the fork, e.g. in gunicorn's post_fork)")
        if self._inside():
            raise PortalThread(f"{self.name}: a blocking call from the portal's own loop thread would wait for "
                               "itself forever; await the coroutine instead")
        return self._loop

    def _inside(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident
