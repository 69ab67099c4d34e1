"""Fact-keyed IO: requests recorded in live mode, returned in replay mode.

Theory of operation
-------------------
An operation's external calls go through an IO provider (the source's
``IoProvider``, ``LiveIo``/``ReplayIo``). A call may carry a *fact key*:

* LIVE: a call with a key not yet recorded goes to the transport and its
  response is recorded under the key (``FactRecorded``); a call with a key
  already recorded reuses the fact (``FactReused``: resume and child runs rely
  on it); a call without a key goes to the transport unrecorded.
* REPLAY: nothing reaches the transport. A recorded key returns its fact
  (``FactReplayed``); a missing one fails typed, ``MissingFact(key,
  retryable)``, retryable only when the run is configured so
  (``replay_missing_fact_retryable``); a call without a key fails with
  ``MissingFactKey`` (never retryable).

A retryable missing fact spends an attempt of the state (``max_attempts`` in
all, the first included) and the state starts again (its calls from the
beginning); without attempts left, or not retryable, the IO session FAILED::

    LIVE --Call--> LIVE --Replay--> REPLAY --Call(recorded)--> REPLAY --Finish--> FINISHED
    REPLAY --Call(missing)--> REPLAY (retryable, attempt + 1) | FAILED;  REPLAY --Call(None)--> FAILED

>>> from statewright.kernel.step import step
>>> m = fact_io_machine()
>>> s = step(m, m.initial, Call("k1")).state
>>> s = step(m, s, Replay()).state
>>> step(m, s, Call("k1")).effects, step(m, s, Call("k2")).effects
((FactReplayed(key='k1'),), (MissingFact(key='k2', retryable=False),))
"""

from __future__ import annotations

from typing import Any
from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition

__all__ = [
    "FACT_IO_TRANSITIONS", "Call", "FactIo", "FactRecorded", "FactReplayed", "FactReused", "Finish", "IoPhase",
    "MissingFact", "MissingFactKey", "Replay", "TransportCalled", "fact_io_machine",
]


class IoPhase(Enum):
    LIVE = "live"
    REPLAY = "replay"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FactIo:
    """The recorded facts (sorted keys), the mode, the calls made in this attempt and the attempt (zero-based)."""

    phase: IoPhase = IoPhase.LIVE
    recorded: tuple[str, ...] = ()
    calls: int = 0
    attempt: int = 0
    max_calls: int = 2
    max_attempts: int = 2
    missing_retryable: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """An IO call; ``key`` is its fact key, or None."""

    key: str | None


@dataclass(frozen=True, slots=True)
class Replay:
    """Run the operation again in replay mode, from the facts recorded."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The operation returned."""


@dataclass(frozen=True, slots=True)
class TransportCalled:
    key: str | None


@dataclass(frozen=True, slots=True)
class FactRecorded:
    key: str


@dataclass(frozen=True, slots=True)
class FactReused:
    key: str


@dataclass(frozen=True, slots=True)
class FactReplayed:
    key: str


@dataclass(frozen=True, slots=True)
class MissingFact:
    """Replay asked for a fact never recorded (the source's ``IoError::MissingFact``, code ``missing_fact``)."""

    key: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class MissingFactKey:
    """Replay was asked for IO without a fact key (``IoError::MissingFactKey``, code ``missing_fact_key``)."""


def calls_left(s: FactIo, _i: Call) -> bool:
    return s.calls < s.max_calls


def keyed(_s: FactIo, i: Call) -> bool:
    return i.key is not None


def unkeyed(_s: FactIo, i: Call) -> bool:
    return i.key is None


def new_key(s: FactIo, i: Call) -> bool:
    return i.key is not None and i.key not in s.recorded


def known_key(s: FactIo, i: Call) -> bool:
    return i.key is not None and i.key in s.recorded


def retry_missing(s: FactIo, i: Call) -> bool:
    """Retryable by configuration, and an attempt is left."""
    return s.missing_retryable and s.attempt + 1 < s.max_attempts


def fail_missing(s: FactIo, i: Call) -> bool:
    """The complement of ``retry_missing``."""
    return not retry_missing(s, i)


def _count(s: FactIo, _i: Call) -> FactIo:
    return replace(s, calls=s.calls + 1)


def _record(s: FactIo, i: Call) -> FactIo:
    return replace(s, calls=s.calls + 1, recorded=tuple(sorted((*s.recorded, _key(i)))))


NO_KEY = ""
"""What a keyed row reads for a call without a key. The table never lets one through (each keyed row's
guard asks for a key), but the rows stay total, so that a table whose guards are broken (a mutant,
`kernel.checker.mutants`) records ``NO_KEY`` -- which no property allows -- rather than raise."""


def _key(i: Call) -> str:
    return NO_KEY if i.key is None else i.key


L, R = IoPhase.LIVE, IoPhase.REPLAY
FACT_IO_TRANSITIONS: tuple[Transition[FactIo, Any], ...] = (
    Transition(L, Call, L, guard=[calls_left, new_key], update=_record,
               emit=lambda s, i: (TransportCalled(i.key), FactRecorded(_key(i)))),
    Transition(L, Call, L, guard=[calls_left, known_key], update=_count, emit=lambda s, i: (FactReused(_key(i)),)),
    Transition(L, Call, L, guard=[calls_left, unkeyed], update=_count, emit=lambda s, i: (TransportCalled(None),)),
    Transition(L, Replay, R, update=lambda s, i: replace(s, calls=0)),
    Transition(R, Call, R, guard=[calls_left, known_key], update=_count, emit=lambda s, i: (FactReplayed(_key(i)),)),
    Transition(R, Call, R, guard=[calls_left, new_key, retry_missing],
               update=lambda s, i: replace(s, calls=0, attempt=s.attempt + 1),
               emit=lambda s, i: (MissingFact(_key(i), True),)),
    Transition(R, Call, IoPhase.FAILED, guard=[calls_left, new_key, fail_missing],
               emit=lambda s, i: (MissingFact(_key(i), s.missing_retryable),)),
    Transition(R, Call, IoPhase.FAILED, guard=[calls_left, unkeyed], emit=(MissingFactKey(),)),
    Transition((L, R), Finish, IoPhase.FINISHED),
)
"""The fact-keyed IO provider's one transition table."""


def fact_io_machine(max_calls: int = 2, max_attempts: int = 2, missing_retryable: bool = False) -> Machine[FactIo]:
    """The IO provider of one state's attempts; ``missing_retryable`` is ``replay_missing_fact_retryable``.

    >>> fact_io_machine(missing_retryable=True).initial.missing_retryable
    True
    """
    if max_calls < 1 or max_attempts < 1:
        raise DefinitionError("fact_io: max_calls and max_attempts must be at least 1")
    return Machine(
        "fact_io",
        initial=FactIo(max_calls=max_calls, max_attempts=max_attempts, missing_retryable=missing_retryable),
        terminal={IoPhase.FINISHED, IoPhase.FAILED},
        phase=lambda s: s.phase,
        inputs=(Call, Replay, Finish),
        effects=(TransportCalled, FactRecorded, FactReused, FactReplayed, MissingFact, MissingFactKey),
        transitions=FACT_IO_TRANSITIONS,
        doc="Fact-keyed IO: live calls recorded by key, replayed from the record; missing facts fail typed.",
    )
