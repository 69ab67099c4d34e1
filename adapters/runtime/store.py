"""The store port: how the shell persists machine instances and their event logs.

One `typing.Protocol`, `Store`, says what every backend offers; `memory.py`
and `sqlite.py` implement it with the same semantics, and one contract suite
runs against both (a differential test also runs random batches through
every backend in lockstep). An *instance* is one machine's state under a key, with a
version that only compare-and-swap moves; its *log* is an append-only list of
events numbered 1, 2, 3... with at most one terminal event, after which
nothing more is appended.

When a write has several problems, `InvalidState` wins: states and payloads
are checked before any version or head is compared. Every write is checked
before it touches the backend, by one function every backend calls
(`prepare`), so no two backends can refuse different writes: keys and event
kinds must be names (`check_name`), payloads JSON within the `Limits`, and the
state one the machine can hold (`Catalog.validate`: the machine's type, JSON
that reads back through that type as an equal value -- so ``attempts="2"`` or
an int where an enum belongs is refused here, not found corrupt on the next
load -- a phase of the machine, and the machine's own authorisation, e.g.
`machines.input.authorize_seed`, whose exceptions become `InvalidState` naming
the function and its ``file:line``). Otherwise `InvalidState` is raised and
nothing is written. Failures are typed `StoreError`s with stable ``code``
strings (defined in `errors.py`, re-exported here); every backend maps its
driver's errors to them at one boundary, and nothing else escapes a store:

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
``permission_denied``  the database role lacks a privilege the operation needs
                   (a role that may only read, writing); nothing was written
``full``           the disk or the database is full; nothing of the batch was written
``io``             the backend could not read or write its files (or the server went away);
                   nothing was written
``unknown_outcome``  a COMMIT was sent and its reply lost: the batch may or may not
                   have committed; re-submit it by its id to know
``already_applied``  the batch id was recorded with other operations: another
                   decision of the same request took effect; nothing was written
``request_reused``   a request id came back with another input for the same key
``bad_option``     a store was opened with an option it cannot honour (also a
                   `ValueError`); nothing was opened
``lease_lost``     an `Advance` or `DeadLetter` came from an owner that does not
                   hold the consumer partition's lease; nothing was written
``unacknowledged`` a clear (or an unregistering) would drop events a registered
                   consumer has not passed; nothing was deleted
``store_error``    any other failure of the backend; the message names the operation
=================  ============================================================

Limits
------
`Limits`, held by the `Catalog`, bounds what crosses the boundary; a
state or payload past them is `InvalidState`, an input from outside
`BadInput`. The defaults:

===================  =========  ==============================================
``max_input_bytes``  64 KiB     one input's JSON (`Driver.feed_json` text, a fed
                                value). An input is a command -- ids, a reason --
                                not a document (the bundled machines' are tens of
                                bytes), and this bounds the parse and the log
                                growth one request can cause.
``max_record_bytes`` 1 MiB      a state's or one event's canonical JSON. Records
                                are read whole on every step; bundled states are
                                under 1 KiB, and both SQLite's and PostgreSQL's
                                own ceilings (1 GB) stay far away.
``max_depth``        64         nesting of objects and arrays in a state, payload
                                or input (bundled ones nest a few levels). Far below
                                the ~1000 frames at which ``json``, pydantic and
                                `value_json` would hit Python's recursion limit.
``digest_above``     1 KiB      a *rejected* input larger than this is logged as
                                ``{"type", "sha256", "bytes"}``, not in full, so
                                refused traffic cannot grow a log faster than
                                about 1.3 KiB per rejection.
``max_key_bytes``    1 KiB      keys, event kinds and batch ids. Names, not
                                data, and well under PostgreSQL's btree entry
                                limit (~2.7 KB), so every backend can index them.
===================  =========  ==============================================

Exactly-once batches
--------------------
A write whose caller was cancelled (a timeout) may have committed or not; the
caller cannot tell. `BatchStore.commit` therefore takes an optional ``batch`` id,
recorded in the same transaction as the batch: re-submitting a batch whose
outcome is unknown returns the original outcome (success, nothing applied
twice) when it had committed, and applies it now when it had not. A batch
that failed left no id behind, so its re-submission is simply tried again.
`batch_id` derives such an id from the operations themselves. The SQL
backends remember ids for a retention (``keep_batches``, default a week) and
forget older ones as they record new ones; memory keeps them for its life.

An id is recorded with the digest of its operations (`batch_digest`), so a
store tells the same batch sent again (success, nothing applied) from another
batch under an id already taken (`AlreadyApplied`, nothing applied) -- the
answer a `Driver` needs when two processes decide one *request* (a request id
the caller supplies, from which the driver derives the batch id) at different
versions. A `RequestStore` also records an ``outcome`` with the id -- JSON the
committer wants handed back on a repeat -- and answers `RequestStore.receipt`:
what it remembers of an id (`Receipt`), read before deciding anything.

A commit whose reply was lost (a connection that died after ``COMMIT`` was
sent) raises `UnknownOutcome`, never `Io`: it may have committed. The same
batch re-submitted by its id settles which.

A fresh reader need not read a log to find where it ends: `HeadStore.log_head`
answers a key's head and whether it has ended from the last event alone (the
terminal event is always the last), by index.

States and events are serialised as canonical JSON (sorted keys, no
whitespace, floats refused) through pydantic, so equal values always store
the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from statewright.adapters.runtime.errors import (
    AlreadyApplied,
    BadInput,
    BadOption,
    Busy,
    Conflict,
    Corrupt,
    Full,
    IncompatibleSchema,
    InvalidState,
    Io,
    LeaseLost,
    NotAStore,
    NotFound,
    PermissionDenied,
    ReadOnly,
    RequestReused,
    StoreError,
    Unacknowledged,
    UnknownOutcome,
)
from statewright.adapters.runtime.readback import difference, raised_at, validation_problem
from statewright.adapters.runtime.serialize import json_problem, value_json
from statewright.kernel.machine import Machine

__all__ = [
    "Advance",
    "AlreadyApplied",
    "Append",
    "AppendTerminal",
    "BadInput",
    "BadOption",
    "BatchStore",
    "Busy",
    "Cas",
    "Catalog",
    "Conflict",
    "Corrupt",
    "DEFAULT_LIMITS",
    "DeadLetter",
    "Event",
    "Full",
    "HeadStore",
    "IncompatibleSchema",
    "InvalidState",
    "Io",
    "KEEP_BATCHES",
    "KeyedOp",
    "LeaseLost",
    "Limits",
    "MAX_BUSY_TIMEOUT",
    "MAX_KEEP_BATCHES",
    "NotAStore",
    "NotFound",
    "Op",
    "PermissionDenied",
    "ReadOnly",
    "Receipt",
    "Record",
    "RequestReused",
    "RequestStore",
    "Retention",
    "SingleWrites",
    "Store",
    "StoreError",
    "Unacknowledged",
    "UNSTORABLE",
    "UnknownOutcome",
    "advance_cursor",
    "batch_digest",
    "batch_id",
    "canonical_json",
    "cas_machine",
    "check_lease",
    "check_name",
    "check_options",
    "decode_event",
    "decode_receipt",
    "is_name",
    "keyed",
    "open_log",
    "prepare",
    "prepare_batch",
    "prepare_outcome",
    "recorded_before",
    "takes_batch",
    "takes_requests",
]


@dataclass(frozen=True, slots=True)
class Record:
    """One instance: its machine, current state and version (0 means never written)."""

    key: str
    machine: str
    state: Any
    version: int


@dataclass(frozen=True, slots=True)
class Event:
    """One log entry. ``seq`` starts at 1; ``data`` is JSON data; ``terminal`` marks the last one.

    ``position`` is the event's place in the store's global log over all keys
    (`readside`: 1, 2, 3, ... in commit order, gap-free); 0 where unknown.
    """

    key: str
    seq: int
    kind: str
    data: Any
    terminal: bool = False
    position: int = 0


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


@dataclass(frozen=True, slots=True)
class Advance:
    """Move ``consumer``'s ``partition`` cursor from ``expected`` to ``cursor`` (an operation of a batch).

    Fails the whole batch with `Conflict` when the cursor is not ``expected``
    (someone else moved it), with `LeaseLost` when ``owner`` does not hold the
    lease, and with `NotFound` for a consumer or partition never registered.
    ``cursor`` must not be below ``expected`` (`InvalidState`): cursors only
    move forward. ``owner`` holds the lease while the store records it as the
    partition's owner -- a lease that expired and that nobody has taken over
    since is still held, since nobody else can have handled those events.
    (Defined here, with the other operations; `readside` hands it on.)
    """

    consumer: str
    partition: int
    expected: int
    cursor: int
    owner: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Record that ``consumer`` gave up on the effect at ``position`` (an operation of a batch).

    ``key``, ``seq``, ``kind`` and ``data`` copy the event; ``code`` and
    ``error`` say why (a `StoreError` code, or the handler's exception class
    and message); ``attempts`` is how many deliveries were tried. Recording the
    same position twice for a consumer is a no-op (the first record stays), so
    a re-submitted batch is harmless. Same lease rule as `Advance`. ``code`` is
    a name (`check_name`), ``error`` text with no NUL or lone surrogate of at
    most ``max_record_bytes``, ``data`` JSON within the `Limits`.
    """

    consumer: str
    partition: int
    position: int
    key: str
    seq: int
    kind: str
    data: Any
    code: str
    error: str
    attempts: int
    owner: str


Op = Cas | Append | AppendTerminal | Advance | DeadLetter
"""One operation of a batch: the instance writes (`Cas`, `Append`, `AppendTerminal`) and the read side's
(`Advance`, `DeadLetter`), which all commit together or not at all."""
KeyedOp = Cas | Append | AppendTerminal
"""The operations that write an instance or its log, each under its ``key`` (`keyed`)."""


def keyed(ops: Sequence[Op]) -> list[KeyedOp]:
    """The operations of ``ops`` that write under a key (an instance or its log), in order."""
    return [op for op in ops if isinstance(op, (Cas, Append, AppendTerminal))]


@dataclass(frozen=True, slots=True)
class Limits:
    """How large and how deep what a store takes may be (sizes in bytes of UTF-8 JSON).

    Held by `Catalog` (``Catalog(machines, limits=Limits(max_depth=32))``) so every
    backend and the driver enforce the same bounds; the module doc gives each
    default and why.

    >>> Limits().max_input_bytes, Limits(max_depth=8).max_depth
    (65536, 8)
    """

    max_input_bytes: int = 64 * 1024
    max_record_bytes: int = 1024 * 1024
    max_depth: int = 64
    digest_above: int = 1024
    max_key_bytes: int = 1024

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = Limits()


def canonical_json(value: Any, *, limits: Limits = DEFAULT_LIMITS, max_bytes: int | None = None) -> str:
    """Sorted keys, no whitespace, no floats: equal values give equal bytes.

    `InvalidState` (never a raw encoding, recursion or serialisation error)
    when ``value`` is not JSON data a store can hold: a float, a string that is
    not valid Unicode, an int too long for Python to print, nesting deeper
    than ``limits.max_depth``, or more UTF-8 bytes than ``max_bytes`` (default
    ``limits.max_record_bytes``).

    >>> canonical_json({"b": [1, 2], "a": None})
    '{"a":null,"b":[1,2]}'
    >>> try:
    ...     canonical_json({"at": [0.5]})
    ... except InvalidState as exc:
    ...     print(exc.code, exc)
    invalid_state floats are not allowed in stored payloads (got 0.5 at $.at[0]); use ints or strings
    """
    try:
        data = value_json(value)
    except RecursionError:
        raise InvalidState(f"nested deeper than {limits.max_depth} levels") from None
    except (TypeError, ValueError, PydanticSerializationError) as exc:
        raise InvalidState(f"not JSON data: {_first_line(exc)}") from None
    problem = json_problem(data, limits.max_depth)
    if problem is not None:
        raise InvalidState(problem)
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:  # e.g. an int past Python's 4300-digit str limit
        raise InvalidState(f"not JSON data: {_first_line(exc)}") from None
    limit = limits.max_record_bytes if max_bytes is None else max_bytes
    if len(text) * 4 > limit:  # a char is at most 4 UTF-8 bytes: encode only when it may matter
        size = len(text.encode())
        if size > limit:
            raise InvalidState(f"{size} bytes of JSON, over the limit of {limit}")
    return text


def batch_id(ops: Sequence[Op], *, limits: Limits = DEFAULT_LIMITS) -> str:
    """A stable id for a batch: the SHA-256 of its operations' canonical JSON.

    Every batch the driver writes names the version and log head it was decided
    at, so equal ids mean the same operations at the same point of every log.
    Two *requests* may still make equal batches (two tasks feeding the same
    input at once), so the driver salts this id once per decision and reuses
    that salted id only to re-submit the same decision.
    (Its size is not limited: each operation is, by the store, on its own.)

    >>> batch_id([Append("in1", 0, (("Queue", {}),))]) == batch_id([Append("in1", 0, (("Queue", {}),))])
    True
    """
    data = [[type(op).__name__, value_json(op)] for op in ops]
    wrapped = dataclasses.replace(limits, max_depth=limits.max_depth + 4)  # [[name, {op}]] wraps a state in 3
    return hashlib.sha256(canonical_json(data, limits=wrapped, max_bytes=2**62).encode()).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What no backend can store in text: NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8)."""


def check_name(text: Any, what: str, *, limits: Limits = DEFAULT_LIMITS, key: str | None = None) -> str:
    """``text`` if it may be a key, an event kind or a batch id; `InvalidState` otherwise.

    A name is a str of at most ``limits.max_key_bytes`` UTF-8 bytes with no NUL
    and no lone surrogate, so that every backend (SQLite text, a PostgreSQL
    text column and its btree index) holds it unchanged.

    >>> check_name("in1", "a key")
    'in1'
    """
    if not isinstance(text, str):
        raise InvalidState(f"{what} must be a str, got {type(text).__name__}", key=key)
    if UNSTORABLE.search(text):
        raise InvalidState(f"{what} {text!r} holds NUL or a lone surrogate, which no store keeps", key=key)
    if len(text) * 4 > limits.max_key_bytes and len(text.encode()) > limits.max_key_bytes:
        raise InvalidState(f"{what} is {len(text.encode())} bytes, over the limit of {limits.max_key_bytes}",
                           key=key)
    return text


def is_name(text: Any, *, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether `check_name` takes ``text``; a read under any other key finds nothing, on every backend."""
    try:
        check_name(text, "a name", limits=limits)
    except InvalidState:
        return False
    return True


Authorize = Callable[[Any], Sequence[str]]


@dataclass
class Catalog:
    """The machines a store holds, how to check their states, and how to (de)serialise them.

    ``authorize`` maps a machine name to a function returning the problems
    with a state (empty when it may be written), e.g. the input lifecycle's
    `machines.input.authorize_seed`. ``limits`` bounds what the stores and the
    driver take (`Limits`).
    """

    machines: Mapping[str, Machine[Any]]
    authorize: Mapping[str, Authorize] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS
    _adapters: dict[str, TypeAdapter[Any]] = field(default_factory=dict, init=False, repr=False)

    def machine(self, name: str) -> Machine[Any]:
        try:
            return self.machines[name]
        except (KeyError, TypeError):
            raise InvalidState(f"unknown machine {name!r}; known: {', '.join(self.machines)}") from None

    def _stored_machine(self, name: str, key: str) -> Machine[Any]:
        try:
            return self.machines[name]
        except (KeyError, TypeError):
            raise Corrupt(f"record {key!r} names machine {name!r}, which this store does not know", key=key) from None

    def _adapter(self, machine: str, m: Machine[Any]) -> TypeAdapter[Any]:
        adapter = self._adapters.get(machine)
        if adapter is None:
            adapter = self._adapters[machine] = TypeAdapter(type(m.initial))
        return adapter

    def validate(self, machine: str, state: Any, *, key: str | None = None) -> None:
        """Raise `InvalidState` unless ``machine`` could hold ``state``."""
        self._checked(machine, state, key)

    def dump(self, machine: str, state: Any, *, key: str | None = None) -> str:
        """Validate and serialise a state to canonical JSON."""
        return self._checked(machine, state, key)

    def _checked(self, machine: str, state: Any, key: str | None) -> str:
        """The state's canonical JSON, once it is the machine's type, reads back equal, has a phase and is authorised.

        The read-back (decode the JSON through the type, as `load` will, and
        compare) comes before the user's ``authorize``, so that function only
        ever sees fields of the types it declares.
        """
        m = self.machine(machine)
        label = key if key is not None else machine
        expected = type(m.initial)
        if type(state) is not expected:
            raise InvalidState(f"{label}: a {machine} state must be a {expected.__name__}, got {type(state).__name__}",
                               key=key)
        try:
            text = canonical_json(state, limits=self.limits)
        except InvalidState as exc:
            raise InvalidState(f"{label}: {exc}", key=key) from None
        try:
            back = self._adapter(machine, m).validate_json(text)
        except ValidationError as exc:
            raise InvalidState(f"{label}: would not read back: {validation_problem(exc)}", key=key) from None
        differs = difference(state, back, "")
        if differs is not None:
            raise InvalidState(f"{label}: would not read back as the same value: {differs}", key=key)
        try:
            phase = m.phase_of(state)
        except Exception as exc:
            raise InvalidState(f"{label}: no phase ({type(exc).__name__}: {exc}, {raised_at(exc, None)})",
                               key=key) from exc
        if phase not in m.phases:
            raise InvalidState(f"{label}: {phase!r} is not a phase of {machine}", key=key)
        check = self.authorize.get(machine)
        if check is not None:
            try:
                problems = tuple(str(p) for p in check(state))
            except Exception as exc:
                name = getattr(check, "__qualname__", repr(check))
                raise InvalidState(f"{label}: {machine}'s authorize function {name} raised "
                                   f"{type(exc).__name__}: {exc} ({raised_at(exc, check)})", key=key) from exc
            if problems:
                raise InvalidState(f"{label}: {'; '.join(problems)}", key=key)
        return text

    def load(self, machine: str, text: str, *, key: str) -> Any:
        """Decode a stored state; `Corrupt` (naming ``key``) when it does not parse or validate."""
        m = self._stored_machine(machine, key)
        if not isinstance(text, str):
            raise Corrupt(f"record {key!r} holds a {type(text).__name__}, not JSON text", key=key)
        try:
            return self._adapter(machine, m).validate_json(text)
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

        The id is recorded in the same transaction, with the digest of ``ops``
        (`batch_digest`). Sent again with the same operations, a batch whose id
        is recorded returns at once, as it did the first time, without applying
        anything; with other operations it raises `AlreadyApplied` (nothing
        written): the id was taken by another batch.
        """
        ...


@runtime_checkable
class HeadStore(Store, Protocol):
    """A `Store` that reads where a log ends without reading the log (all three backends here)."""

    async def log_head(self, key: str) -> tuple[int, bool]:
        """``key``'s log head -- the seq of its last event, 0 when it has none -- and whether that is the terminal event.

        One indexed read, whatever the length of the log. A key with no
        instance has an empty log: ``(0, False)``.
        """
        ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a store remembers of a committed batch id: the digest of its operations and the outcome recorded with it.

    ``digest`` is None for an id recorded before the store kept digests (schema
    version 2): any re-submission under it counts as the same batch, as it did
    then. ``outcome`` is the JSON data its committer recorded (None if none).
    """

    batch: str
    digest: str | None
    outcome: Any = None


@runtime_checkable
class RequestStore(BatchStore, Protocol):
    """A `BatchStore` that records an outcome with each batch id and hands it back (all three backends here).

    What the `Driver` needs for request ids that hold across processes: before
    deciding a request it asks `receipt` whether the request's batch id is
    recorded, and if so answers with the recorded outcome instead of deciding
    again. `takes_requests` tells whether a store is one.
    """

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        """`BatchStore.commit`, recording ``outcome`` (JSON data; only with a ``batch`` id) with the id."""
        ...

    async def receipt(self, batch: str) -> Receipt | None:
        """What is recorded of ``batch``, or None when it is not (never was, or was forgotten after ``keep_batches``)."""
        ...


def batch_digest(ops: Sequence[Op], prepared: Sequence[Any], *, limits: Limits = DEFAULT_LIMITS) -> str:
    """The SHA-256 of a batch's operations as a store writes them (``prepared`` is `prepare_batch`'s).

    Recorded with a batch id, it tells the same batch sent again from another
    batch under that id. It is computed from the serialised payloads (no
    second serialisation), except for a `Cas` naming no machine, whose state
    `prepare` leaves unserialised: that one is serialised here, so a state no
    store can hold is `InvalidState` here too -- as it would be on writing it.
    Every backend calls it at the same point, right after `prepare_batch`.
    """
    h = hashlib.sha256()

    def part(text: str) -> None:
        data = text.encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    for op, payload in zip(ops, prepared):
        if isinstance(op, Cas):
            state = payload if payload is not None else canonical_json(op.state, limits=limits)
            for text in ("cas", op.key, str(op.expected), op.machine or "", state):
                part(text)
        elif isinstance(op, Append):
            for text in ("append", op.key, str(op.expected), str(len(payload))):
                part(text)
            for kind, data in payload:
                part(kind)
                part(data)
        elif isinstance(op, AppendTerminal):
            for text in ("terminal", op.key, op.kind, payload):
                part(text)
        elif isinstance(op, Advance):
            for text in ("advance", op.consumer, str(op.partition), str(op.expected), str(op.cursor), op.owner):
                part(text)
        else:
            for text in ("dead_letter", op.consumer, str(op.partition), str(op.position), op.key, str(op.seq),
                         op.kind, payload, op.code, op.error, str(op.attempts), op.owner):
                part(text)
    return h.hexdigest()


def recorded_before(batch: str, digest: str, found: Receipt | None, *, key: str | None = None) -> bool:
    """Whether ``batch`` is already recorded for these operations (``digest``): then nothing is to be applied.

    False when it is not recorded; `AlreadyApplied` when it is, under other
    operations. Every backend asks this one function, inside the transaction
    that would record the id.
    """
    if found is None:
        return False
    if found.digest is None or found.digest == digest:
        return True
    raise AlreadyApplied(f"batch {batch[:16]} was committed before with other operations (another decision "
                         "of the same request); nothing was written", receipt=found, key=key)


def prepare_outcome(catalog: Catalog, batch: str | None, outcome: Any) -> str | None:
    """``outcome``'s canonical JSON, to be recorded with ``batch``; None for none; `InvalidState` if it cannot be.

    Its size is not limited: a driver records what it decided from, states
    each already within the limits.
    """
    if outcome is None:
        return None
    if batch is None:
        raise InvalidState("an outcome is recorded with a batch id, and this commit has none")
    try:
        return canonical_json(outcome, limits=catalog.limits, max_bytes=2**62)
    except InvalidState as exc:
        raise InvalidState(f"the outcome recorded with batch {batch[:16]}: {exc}") from None


def decode_receipt(batch: str, digest: Any, outcome: Any) -> Receipt:
    """A stored batch row as a `Receipt`; `Corrupt` when its outcome is not JSON text."""
    if digest is not None and not isinstance(digest, str):
        raise Corrupt(f"batch {batch[:16]} has a digest that is not text: {digest!r}")
    if outcome is None:
        return Receipt(batch, digest)
    if not isinstance(outcome, str):
        raise Corrupt(f"batch {batch[:16]} holds a {type(outcome).__name__} outcome, not JSON text")
    try:
        return Receipt(batch, digest, json.loads(outcome))
    except (ValueError, RecursionError) as exc:
        raise Corrupt(f"batch {batch[:16]}'s outcome cannot be decoded: {_first_line(exc)}") from None


def takes_requests(store: Store) -> bool:
    """Whether ``store`` is a `RequestStore`: its ``commit`` records an ``outcome`` and it answers ``receipt``."""
    try:
        return "outcome" in inspect.signature(store.commit).parameters and callable(getattr(store, "receipt", None))
    except (TypeError, ValueError):
        return False


def cas_machine(op: Cas, stored: tuple[str, int] | None) -> str:
    """The port's compare-and-swap rules, decided on the row as the batch sees it: the machine to write.

    ``stored`` is the row's ``(machine, version)``, None when there is none.
    Creating (``expected`` 0) an existing key, or writing at another version,
    is `Conflict`; writing a key with no row is `NotFound`; naming another
    machine than the row's is `InvalidState`. Every backend asks this one
    function, so their outcomes and messages cannot drift apart.
    """
    if op.expected == 0:
        if stored is not None:
            raise Conflict(f"{op.key!r} already exists (version {stored[1]})", key=op.key)
        assert op.machine is not None  # prepare refuses a creation without one
        return op.machine
    if stored is None:
        raise NotFound(f"no instance {op.key!r}", key=op.key)
    machine, version = stored
    if version != op.expected:
        raise Conflict(f"{op.key!r} is at version {version}, not {op.expected}", key=op.key)
    if op.machine is not None and op.machine != machine:
        raise InvalidState(f"{op.key!r} holds a {machine}, not a {op.machine}", key=op.key)
    return machine


def check_lease(consumer: str, partition: int, owner: str, stored: tuple[int, str | None] | None) -> int:
    """The read side's lease rule, decided on the consumer row as the batch sees it: its cursor.

    ``stored`` is the row's ``(cursor, owner)``, None when ``consumer`` has no
    such partition (`NotFound`); an ``owner`` that is not the row's is
    `LeaseLost`. Every backend asks this one function for `Advance` and
    `DeadLetter`.
    """
    if stored is None:
        raise NotFound(f"no consumer {consumer!r} with a partition {partition}")
    if stored[1] != owner:
        holder = "nobody" if stored[1] is None else repr(stored[1])
        raise LeaseLost(f"{owner!r} does not hold the lease of {consumer!r} partition {partition} ({holder} does)")
    return stored[0]


def advance_cursor(op: Advance, stored: tuple[int, str | None] | None) -> int:
    """The port's rules for an `Advance`, on the row ``(cursor, owner)`` as the batch sees it: the new cursor.

    `check_lease` first (`NotFound`, `LeaseLost`), then the compare-and-swap:
    a cursor that is not ``op.expected`` is `Conflict`.
    """
    cursor = check_lease(op.consumer, op.partition, op.owner, stored)
    if cursor != op.expected:
        raise Conflict(f"{op.consumer!r} partition {op.partition} is at cursor {cursor}, not {op.expected}")
    return op.cursor


def open_log(key: str, exists: bool, head: int, ended: bool, *, expected: int | None = None) -> int:
    """The port's log rules: the head to append after, given what the batch sees of ``key``.

    No instance is `NotFound`; a log that has ended with its terminal event is
    `Conflict`; so is an ``expected`` head (an `Append`'s) that is not ``head``.
    """
    if not exists:
        raise NotFound(f"no instance {key!r}", key=key)
    if ended:
        raise Conflict(f"{key!r}'s log already ended with a terminal event", key=key)
    if expected is not None and head != expected:
        raise Conflict(f"{key!r}'s log head is {head}, not {expected}", key=key)
    return head


KEEP_BATCHES = 7 * 24 * 3600.0
"""How long (seconds) the SQL backends remember a committed batch id by default: a week."""

MAX_KEEP_BATCHES = 100 * 365 * 24 * 3600.0
"""The longest retention a store takes, about 100 years (3,153,600,000 s).

Ids are kept with their whole-second time in a 64-bit integer, and "forever"
is not offered: the table of ids would then grow without bound. A century is
forever for any store, and its cut-off is still an ordinary integer.
"""

MAX_BUSY_TIMEOUT = (2**31 - 1) / 1000
"""The longest busy timeout a store takes, about 24.8 days: SQLite and PostgreSQL both count it in a 32-bit int of ms."""


def check_options(*, busy_timeout: Any, keep_batches: Any) -> None:
    """`BadOption` unless both are numbers of seconds a backend can honour; every SQL store calls it first in ``open``.

    ``busy_timeout``: from 0 to `MAX_BUSY_TIMEOUT`; ``keep_batches``: more than
    0, at most `MAX_KEEP_BATCHES`. NaN, infinities and non-numbers (a bool, a
    string) are refused, before anything is connected, created or written.

    >>> try:
    ...     check_options(busy_timeout=5, keep_batches=float("inf"))
    ... except BadOption as exc:
    ...     print(exc.code, exc)
    bad_option keep_batches must be a positive number of seconds, at most 3153600000 (about 100 years), got inf
    """
    if not (_seconds(busy_timeout) and 0 <= busy_timeout <= MAX_BUSY_TIMEOUT):
        raise BadOption(f"busy_timeout must be a number of seconds from 0 to {MAX_BUSY_TIMEOUT:g} "
                        f"(about 24 days), got {busy_timeout!r}")
    if not (_seconds(keep_batches) and 0 < keep_batches <= MAX_KEEP_BATCHES):
        raise BadOption(f"keep_batches must be a positive number of seconds, at most {MAX_KEEP_BATCHES:.0f} "
                        f"(about 100 years), got {keep_batches!r}")


def _seconds(value: Any) -> bool:
    """Whether ``value`` is a real int or float (a bool is not a number of seconds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Retention:
    """When a backend forgets recorded batch ids: those older than ``keep`` seconds, by ``clock``.

    Pruning is done by the transaction that records a new id, at most every
    tenth of ``keep`` and at most hourly (the first recording prunes at once),
    so the ids stay bounded at the cost of one ``DELETE`` now and then.

    >>> now = [0.0]
    >>> r = Retention(100.0, lambda: now[0])
    >>> r.cutoff(), r.cutoff()
    (-100.0, None)
    >>> now[0] = 10.0
    >>> r.cutoff()
    -90.0
    """

    __slots__ = ("clock", "keep", "_next")

    def __init__(self, keep: float, clock: Callable[[], float]) -> None:
        check_options(busy_timeout=0, keep_batches=keep)
        self.keep = keep
        self.clock = clock
        self._next = float("-inf")

    def cutoff(self, now: float | None = None) -> float | None:
        """The time before which recorded ids are to be forgotten now, or None when no prune is due."""
        now = self.clock() if now is None else now
        if now < self._next:
            return None
        self._next = now + min(self.keep / 10, 3600.0)
        return now - self.keep


class SingleWrites:
    """``cas``, ``append``, ``append_terminal`` and ``commit`` of a backend, each one batch through ``_write``.

    Every backend applies a lone operation exactly as a batch of one, so the
    four writes of the port are written once, here; a backend supplies
    ``_write(ops, batch, outcome)``, returning each operation's result in order
    (a `Record` for a `Cas`, the new log head for an append), or nothing for a
    batch whose id it had already applied.
    """

    async def _write(self, ops: Sequence[Op], batch: str | None = None, outcome: Any = None) -> list[Any]:
        raise NotImplementedError

    async def cas(self, key: str, expected: int, state: Any, *, machine: str | None = None) -> Record:
        result = (await self._write([Cas(key, expected, state, machine)]))[0]
        assert isinstance(result, Record)
        return result

    async def append(self, key: str, expected: int, events: Sequence[tuple[str, Any]]) -> int:
        result = (await self._write([Append(key, expected, tuple(events))]))[0]
        assert isinstance(result, int)
        return result

    async def append_terminal(self, key: str, kind: str, data: Any) -> int:
        result = (await self._write([AppendTerminal(key, kind, data)]))[0]
        assert isinstance(result, int)
        return result

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        await self._write(ops, batch, outcome)


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
    `Append`, and the terminal event's JSON for an `AppendTerminal`. Keys and
    kinds must be names (`check_name`), versions and heads ints >= 0, and
    payloads JSON within ``catalog.limits``; anything else is `InvalidState`.
    """
    if isinstance(op, (Advance, DeadLetter)):
        return _prepare_read_side(op, catalog.limits)
    if not isinstance(op, (Cas, Append, AppendTerminal)):
        raise InvalidState(f"not a store operation: {op!r}")
    limits = catalog.limits
    key = check_name(op.key, "a key", limits=limits)
    if isinstance(op, (Cas, Append)) and (type(op.expected) is not int or op.expected < 0):
        raise InvalidState(f"{key!r}: the expected version or head must be an int >= 0, got {op.expected!r}", key=key)
    if isinstance(op, Cas):
        if op.machine is None:
            if op.expected == 0:
                raise InvalidState(f"creating {key!r} needs the machine name", key=key)
            return None
        return catalog.dump(op.machine, op.state, key=key)
    if isinstance(op, Append):
        if not isinstance(op.events, (tuple, list)):
            raise InvalidState(f"{key!r}: events must be a sequence of (kind, data) pairs", key=key)
        out = []
        for event in op.events:
            if not (isinstance(event, (tuple, list)) and len(event) == 2):
                raise InvalidState(f"{key!r}: an event is a (kind, data) pair, got {event!r}", key=key)
            kind = check_name(event[0], "an event kind", limits=limits, key=key)
            out.append((kind, _payload(event[1], limits, key)))
        return out
    check_name(op.kind, "an event kind", limits=limits, key=key)
    return _payload(op.data, limits, key)


def _prepare_read_side(op: Advance | DeadLetter, limits: Limits) -> str | None:
    """`prepare` for `Advance` (None) and `DeadLetter` (its data's canonical JSON)."""
    consumer = check_name(op.consumer, "a consumer name", limits=limits)
    check_name(op.owner, "a lease owner", limits=limits)
    numbers = {"partition": (op.partition, 0)}
    if isinstance(op, Advance):
        numbers |= {"expected": (op.expected, 0), "cursor": (op.cursor, 0)}
    else:
        numbers |= {"position": (op.position, 1), "seq": (op.seq, 1), "attempts": (op.attempts, 0)}
    for name, (value, least) in numbers.items():
        if type(value) is not int or value < least:
            raise InvalidState(f"consumer {consumer!r}: {name} must be an int >= {least}, got {value!r}")
    if isinstance(op, Advance):
        if op.cursor < op.expected:
            raise InvalidState(f"consumer {consumer!r}: a cursor only moves forward ({op.expected} -> {op.cursor})")
        return None
    key = check_name(op.key, "a key", limits=limits)
    check_name(op.kind, "an event kind", limits=limits, key=key)
    check_name(op.code, "an error code", limits=limits, key=key)
    if not isinstance(op.error, str) or UNSTORABLE.search(op.error):
        raise InvalidState(f"consumer {consumer!r}: a dead letter's error must be text with no NUL or lone "
                           f"surrogate, got {op.error!r:.80}", key=key)
    if len(op.error) * 4 > limits.max_record_bytes and len(op.error.encode()) > limits.max_record_bytes:
        raise InvalidState(f"consumer {consumer!r}: a dead letter's error is over {limits.max_record_bytes} bytes",
                           key=key)
    return _payload(op.data, limits, key)


def prepare_batch(catalog: Catalog, ops: Sequence[Op], batch: str | None = None) -> list[Any]:
    """`prepare` for every op of a batch, after checking its ``batch`` id is a name (`check_name`)."""
    if batch is not None:
        check_name(batch, "a batch id", limits=catalog.limits)
    return [prepare(catalog, op) for op in ops]


def _payload(data: Any, limits: Limits, key: str) -> str:
    try:
        return canonical_json(data, limits=limits)
    except InvalidState as exc:
        raise InvalidState(f"{key!r}: an event's data: {exc}", key=key) from None


def decode_event(key: str, seq: int, text: str) -> Any:
    """A stored event's data; `Corrupt` (naming the key and seq) when it is not JSON."""
    if not isinstance(text, str):
        raise Corrupt(f"event {seq} of {key!r} holds a {type(text).__name__}, not JSON text", key=key)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Corrupt(f"event {seq} of {key!r} cannot be decoded: {_first_line(exc)}", key=key) from None
