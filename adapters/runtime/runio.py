"""An attempt's IO: calls with fact keys, recorded live and returned in replay; the recorded clock and dice.

Theory of operation
-------------------
An operation reaches the world only through its context's IO (`RunIo`), so a
run can be resumed and replayed (the source's ``LiveIo``/``ReplayIo``;
`machines.facts` is the model, `specs.fact_io` its proof):

* LIVE: ``await io.call("quote", fetch)`` returns the fact recorded under
  ``io/quote`` if the run has one (a resumed attempt, a later attempt), else
  calls ``fetch()``, stores its JSON result as a content-addressed artifact
  and records the fact -- first writer wins, so a racing executor's answer is
  the one everybody returns. A call with key None is made and not recorded.
* REPLAY: nothing is called. A recorded key returns its fact; a missing one
  raises `run_errors.MissingFact` (retryable when the run's config says
  ``replay_missing_fact_retryable``), a call with key None raises
  `run_errors.MissingFactKey`.

``now()`` and ``random()`` are IO too: recorded as facts keyed by state,
attempt and call number, so a replay sees the same time and the same dice.
The value of a fact must be JSON data without floats (a manifest's rule:
canonical bytes); ``now`` is kept in nanoseconds and ``random`` as a 53-bit
integer, so both round-trip exactly.
"""

from __future__ import annotations

import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Protocol

from statewright.adapters.runtime.run_errors import MissingFact, MissingFactKey
from statewright.machines.pipeline import RunConfig

__all__ = ["Mode", "Recorder", "RunIo"]


class Mode(Enum):
    LIVE = "live"
    REPLAY = "replay"


class Recorder(Protocol):
    """What an attempt's IO asks of the executor that runs it (`executor.Executor`; a protocol, not an import:
    the executor imports this module)."""

    mode: Mode
    transport_calls: int

    async def recorded_value(self, run_id: str, key: str) -> Any: ...

    async def record_value(self, run_id: str, key: str, value: Any) -> Any: ...

    def config_of(self, run_id: str) -> RunConfig: ...


class RunIo:
    """The IO of one attempt of one state of one run (see the module doc)."""

    def __init__(self, executor: Recorder, run_id: str, state_id: str, attempt: int) -> None:
        self._executor = executor
        self.run_id = run_id
        self._prefix = f"{state_id}/{attempt}"
        self._calls = {"clock": 0, "random": 0}

    @property
    def mode(self) -> Mode:
        return self._executor.mode

    async def call(self, key: str | None, fn: Callable[[], Any | Awaitable[Any]]) -> Any:
        """The fact under ``key``, or ``fn()``'s result recorded under it (live); see the module doc."""
        if key is None:
            if self.mode is Mode.REPLAY:
                raise MissingFactKey(f"run {self.run_id!r}: an IO call without a fact key cannot be replayed")
            return await self._transport(fn)
        if not isinstance(key, str) or not key:
            raise TypeError(f"a fact key is a non-empty str, got {key!r}")
        return await self.fact(f"io/{key}", fn)

    async def now(self) -> float:
        """Seconds since the epoch, recorded: the same number in every resume and replay of this attempt."""
        ns = await self._counted("clock", lambda: time.time_ns())
        return int(ns) / 1e9

    async def random(self) -> float:
        """A float in [0, 1), recorded like `now`."""
        bits = await self._counted("random", lambda: secrets.randbits(53))
        return int(bits) / (1 << 53)

    async def _counted(self, what: str, fn: Callable[[], int]) -> Any:
        self._calls[what] += 1
        return await self.fact(f"{what}/{self._prefix}/{self._calls[what]}", fn)

    async def fact(self, key: str, fn: Callable[[], Any | Awaitable[Any]]) -> Any:
        """The value recorded under the full fact ``key``, or (live) ``fn()``'s, recorded."""
        recorded = await self._executor.recorded_value(self.run_id, key)
        if recorded is not _NONE:
            return recorded
        if self.mode is Mode.REPLAY:
            raise MissingFact(key, self._executor.config_of(self.run_id).replay_missing_fact_retryable)
        value = await self._transport(fn)
        return await self._executor.record_value(self.run_id, key, value)

    async def _transport(self, fn: Callable[[], Any | Awaitable[Any]]) -> Any:
        self._executor.transport_calls += 1
        out = fn()
        if inspect.isawaitable(out):
            out = await out
        json.dumps(out)  # not JSON data: a TypeError naming the type, before anything is recorded
        return out


class _None:
    """No fact recorded (None is a value a fact may hold)."""

    def __repr__(self) -> str:
        return "<no fact>"


_NONE: Any = _None()
NONE = _NONE
"""What `Executor.recorded_value` returns when nothing is recorded under the key."""
