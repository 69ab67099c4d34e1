"""The store port: how the shell persists machine instances and their event logs.

One `typing.Protocol`, `Store`, says what every backend offers; `memory.py`
and `sqlite.py` implement it with the same semantics, and one contract suite
runs against both. An *instance* is one machine's state under a key, with a
version that only compare-and-swap moves; its *log* is an append-only list of
events numbered 1, 2, 3... with at most one terminal event, after which
nothing more is appended.

When a write has several problems, `InvalidState` wins: states and payloads
are checked before any version or head is compared. Every write is checked
before it touches the backend: the state must be one
the machine can hold (`Catalog.validate`: right type, a phase of the machine,
and the machine's own authorisation, e.g. `machines.input.authorize_seed`),
otherwise `InvalidState` is raised and nothing is written. Failures are typed
`StoreError`s with stable ``code`` strings:

=================  ============================================================
``conflict``       the version or log head moved (CAS lost), or a terminal
                   event already exists; retry from a fresh load
``busy``           the backend stayed locked past its timeout; retryable, and
                   not a conflict
``not_found``      no such instance (also for a write to a key never created)
``corrupt``        a stored record cannot be decoded; names the key, and other
                   records stay readable
``invalid_state``  the machine could not hold this state; nothing was written
``bad_input``      text from outside is not an input of the machine (bad JSON,
                   unknown type, wrong fields, too large or too deep)
``not_a_store``    the database is not a statewright store; left untouched
``incompatible_schema``  a statewright store of a schema this release cannot use
``read_only``      the backend refuses writes (a read-only file or server)
``full``           the disk or the database is full; nothing of the batch was written
``io``             the backend could not read or write its files (or the server went away)
=================  ============================================================

Exactly-once batches
--------------------
A write whose caller was cancelled (a timeout) may have committed or not; the
caller cannot tell. `BatchStore.commit` therefore takes an optional ``batch`` id,
recorded in the same transaction as the batch: re-submitting a batch whose
outcome is unknown returns the original outcome (success, nothing applied
twice) when it had committed, and applies it now when it had not. A batch
that failed left no id behind, so its re-submission is simply tried again.
`batch_id` derives such an id from the operations themselves.

States and events are serialised as canonical JSON (sorted keys, no
whitespace, floats refused) through pydantic, so equal values always store
the same bytes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import TypeAdapter, ValidationError

from statewright.adapters.runtime.serialize import value_json
from statewright.kernel.machine import Machine

__all__ = [
    "Append",
    "AppendTerminal",
    "BadInput",
    "BatchStore",
    "Busy",
    "Cas",
    "Catalog",
    "Conflict",
    "Corrupt",
    "Event",
    "Full",
    "IncompatibleSchema",
    "InvalidState",
    "Io",
    "NotAStore",
    "NotFound",
    "Op",
    "ReadOnly",
    "Record",
    "Store",
    "StoreError",
    "batch_id",
    "canonical_json",
    "decode_event",
    "prepare",
    "takes_batch",
]


class StoreError(Exception):
    """Base of every store failure; ``code`` is stable across backends and releases."""

    code = "store_error"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Conflict(StoreError):
    """A compare-and-swap or an expected log head did not match; nothing was written."""

    code = "conflict"


class Busy(StoreError):
    """The backend stayed locked past its timeout; retryable, distinct from a conflict."""

    code = "busy"


class NotFound(StoreError):
    """No instance under that key."""

    code = "not_found"


class Corrupt(StoreError):
    """A stored record cannot be decoded; other records are unaffected."""

    code = "corrupt"


class InvalidState(StoreError):
    """The machine could not hold this state; refused before writing."""

    code = "invalid_state"


class NotAStore(StoreError):
    """The file is not a database, or a database of something else; it was left as it was."""

    code = "not_a_store"


class IncompatibleSchema(StoreError):
    """A statewright store this release cannot use (a newer schema, or tables of another shape); never retryable."""

    code = "incompatible_schema"


class BadInput(StoreError):
    """Text from outside is not an input of the machine; nothing was written."""

    code = "bad_input"


class ReadOnly(StoreError):
    """The backend refuses writes (a read-only file, directory or server); nothing was written."""

    code = "read_only"


class Full(StoreError):
    """The disk or the database is full; the batch was rolled back whole."""

    code = "full"


class Io(StoreError):
    """The backend could not read or write (an I/O error, a file it cannot open, a server that went away)."""

    code = "io"


@dataclass(frozen=True, slots=True)
class Record:
    """One instance: its machine, current state and version (0 means never written)."""

    key: str
    machine: str
    state: Any
    version: int


@dataclass(frozen=True, slots=True)
class Event:
    """One log entry. ``seq`` starts at 1; ``data`` is JSON data; ``terminal`` marks the last one."""

    key: str
    seq: int
    kind: str
    data: Any
    terminal: bool = False


@dataclass(frozen=True, slots=True)
class Cas:
    """Write ``state`` to ``key`` if its version is ``expected`` (0: create)."""

    key: str
    expected: int
    state: Any
    machine: str | None = None


@dataclass(frozen=True, slots=True)
class Append:
    """Append ``events`` (kind, data) to ``key``'s log if its head is ``expected``."""

    key: str
    expected: int
    events: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class AppendTerminal:
    """Append the terminal event (kind, data) to ``key``'s log unless it has one."""

    key: str
    kind: str
    data: Any


Op = Cas | Append | AppendTerminal


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, no floats: equal values give equal bytes.

    >>> canonical_json({"b": [1, 2], "a": None})
    '{"a":null,"b":[1,2]}'
    """
    data = value_json(value)
    _no_floats(data)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def batch_id(ops: Sequence[Op]) -> str:
    """A stable id for a batch: the SHA-256 of its operations' canonical JSON.

    Every batch the driver writes names the version and log head it was decided
    at, so equal ids mean the same decision at the same point of every log.

    >>> batch_id([Append("in1", 0, (("Queue", {}),))]) == batch_id([Append("in1", 0, (("Queue", {}),))])
    True
    """
    data = [[type(op).__name__, value_json(op)] for op in ops]
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _no_floats(data: Any) -> None:
    if isinstance(data, float):
        raise InvalidState(f"floats are not allowed in stored payloads (got {data!r}); use ints or strings")
    if isinstance(data, dict):
        for v in data.values():
            _no_floats(v)
    elif isinstance(data, list):
        for v in data:
            _no_floats(v)


Authorize = Callable[[Any], Sequence[str]]


@dataclass
class Catalog:
    """The machines a store holds, how to check their states, and how to (de)serialise them.

    ``authorize`` maps a machine name to a function returning the problems
    with a state (empty when it may be written), e.g. the input lifecycle's
    `machines.input.authorize_seed`.
    """

    machines: Mapping[str, Machine[Any]]
    authorize: Mapping[str, Authorize] = field(default_factory=dict)
    _adapters: dict[str, TypeAdapter[Any]] = field(default_factory=dict, init=False, repr=False)

    def machine(self, name: str) -> Machine[Any]:
        try:
            return self.machines[name]
        except KeyError:
            raise InvalidState(f"unknown machine {name!r}; known: {', '.join(self.machines)}") from None

    def _stored_machine(self, name: str, key: str) -> Machine[Any]:
        try:
            return self.machines[name]
        except KeyError:
            raise Corrupt(f"record {key!r} names machine {name!r}, which this store does not know", key=key) from None

    def validate(self, machine: str, state: Any, *, key: str | None = None) -> None:
        """Raise `InvalidState` unless ``machine`` could hold ``state``."""
        m = self.machine(machine)
        expected = type(m.initial)
        if type(state) is not expected:
            raise InvalidState(
                f"{key or machine}: a {machine} state must be a {expected.__name__}, got {type(state).__name__}",
                key=key,
            )
        try:
            phase = m.phase_of(state)
        except Exception as exc:
            raise InvalidState(f"{key or machine}: no phase ({exc})", key=key) from None
        if phase not in m.phases:
            raise InvalidState(f"{key or machine}: {phase!r} is not a phase of {machine}", key=key)
        check = self.authorize.get(machine)
        problems = tuple(check(state)) if check is not None else ()
        if problems:
            raise InvalidState(f"{key or machine}: {'; '.join(problems)}", key=key)

    def dump(self, machine: str, state: Any, *, key: str | None = None) -> str:
        """Validate and serialise a state to canonical JSON."""
        self.validate(machine, state, key=key)
        return canonical_json(state)

    def load(self, machine: str, text: str, *, key: str) -> Any:
        """Decode a stored state; `Corrupt` (naming ``key``) when it does not parse or validate."""
        m = self._stored_machine(machine, key)
        adapter = self._adapters.get(machine)
        if adapter is None:
            adapter = self._adapters[machine] = TypeAdapter(type(m.initial))
        try:
            return adapter.validate_json(text)
        except (ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise Corrupt(f"record {key!r} cannot be decoded: {first}", key=key) from None


@runtime_checkable
class Store(Protocol):
    """What every backend offers. All methods are coroutines; writes are all-or-nothing."""

    catalog: Catalog

    async def load(self, key: str) -> Record:
        """The instance under ``key``; `NotFound` if there is none, `Corrupt` if it cannot be decoded."""
        ...

    async def cas(self, key: str, expected: int, state: Any, *, machine: str | None = None) -> Record:
        """Write ``state`` if the version is ``expected`` (0 creates; ``machine`` is then required)."""
        ...

    async def append(self, key: str, expected: int, events: Sequence[tuple[str, Any]]) -> int:
        """Append events if the log head is ``expected``; returns the new head."""
        ...

    async def append_terminal(self, key: str, kind: str, data: Any) -> int:
        """Append the one terminal event of ``key``'s log; `Conflict` if it already has one."""
        ...

    async def commit(self, ops: Sequence[Op]) -> None:
        """Apply several CAS writes and appends as one transaction: all of them or none."""
        ...

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        """Events ``start <= seq < stop`` of ``key``'s log, in order."""
        ...

    async def keys(self) -> list[str]:
        """Every instance key, sorted."""
        ...

    async def close(self) -> None:
        ...


@runtime_checkable
class BatchStore(Store, Protocol):
    """A `Store` whose ``commit`` also takes a batch id (both backends here are).

    A separate protocol so that wrappers written against `Store` keep working;
    `takes_batch` tells which one a store is.
    """

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None) -> None:
        """Apply ``ops`` as one transaction; with a ``batch`` id, at most once.

        The id is recorded in the same transaction, and a batch whose id is
        already recorded returns at once, as it did the first time, without
        applying anything again.
        """
        ...


def takes_batch(store: Store) -> bool:
    """Whether ``store.commit`` accepts a ``batch`` id (see `BatchStore`)."""
    try:
        return "batch" in inspect.signature(store.commit).parameters
    except (TypeError, ValueError):
        return False


def prepare(catalog: Catalog, op: Op) -> Any:
    """Everything about ``op`` that needs no backend: validation and serialisation.

    Every backend calls it for every operation before it touches its database,
    so all of them refuse exactly the same operations with exactly the same
    error. Returns the state's JSON for a `Cas` (None when the machine must be
    read from the stored row), the events' ``(kind, json)`` pairs for an
    `Append`, and the terminal event's JSON for an `AppendTerminal`.
    """
    if isinstance(op, Cas):
        if op.machine is None:
            if op.expected == 0:
                raise InvalidState(f"creating {op.key!r} needs the machine name", key=op.key)
            return None
        return catalog.dump(op.machine, op.state, key=op.key)
    if isinstance(op, Append):
        return [(kind, canonical_json(data)) for kind, data in op.events]
    if isinstance(op, AppendTerminal):
        return canonical_json(op.data)
    raise InvalidState(f"not a store operation: {op!r}")


def decode_event(key: str, seq: int, text: str) -> Any:
    """A stored event's data; `Corrupt` (naming the key and seq) when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Corrupt(f"event {seq} of {key!r} cannot be decoded: {exc}", key=key) from None
