"""Linearizability of recorded store histories: a `Recorder` writes them, `check_history` judges them.

A *history* is what processes saw of a shared store: each `Operation` has a
process, an invoke and a return time (``time.monotonic_ns()``, one clock for
every process of a machine), what was called and what came back. It is
*linearizable* when every operation can be placed at one instant between its
invoke and its return so that, in that order, the store's sequential
specification gives exactly the results seen. An operation that never
returned (its process was killed) may or may not have taken effect: it is
given an open end and any outcome.

The sequential specification is the port's (`adapters.runtime.store`, whose
reference implementation is `MemoryStore`), per key: a record with machine,
state, version, log head and terminal flag. ``cas`` succeeds iff the version
is the expected one (0 creates), ``append`` iff the log is open and its head
is the expected one, ``append_terminal`` iff the log is open; ``commit``
applies its writes in order, all or nothing, and fails with the first
failure. ``busy`` and ``invalid_state`` results wrote nothing and observe no
record, so they constrain nothing and are left out. A ``commit`` with a
``batch`` id is at most once (`BatchStore`): once a commit with that id took
effect, every later one with it succeeds and applies nothing, so the model
also holds the ids of batches that took effect -- only those some other
commit of the history names again, since no other operation observes them.
An id is taken by the writes it was recorded with: a later commit under it
with the same writes succeeds and applies nothing, one with other writes fails
with ``already_applied`` and applies nothing (another decision of the same
request took the id). A ``receipt`` reads what an id was recorded with: null
when no commit with it took effect, else the ``outcome`` that commit recorded.
``log_head`` reads a key's log head and terminal flag.

Search is Wing & Gong's, with Lowe's memoisation of (linearized set, model
state) as in Porcupine, iterative. It is P-compositional: the history is
split into independent parts by key, and a ``commit`` touching several keys
joins them (union-find), so each part is the union of the keys batches
connect and its model state is the tuple of those keys' records. Operations
naming one batch id (commits, receipts) share a part too, since the ids
taken are part of the model state. Each part is cut at quiescent points and
searched a segment at a time, each with its own memo (see the search section
below), so memory follows the longest stretch of overlapping operations, not
the history. One budget of steps (and an optional time limit) bounds
everything -- reading the files, preparing, searching, shrinking; past it
the verdict is ``unknown``.

History files are JSON Lines, one operation per line::

    {"process": "w0", "index": 3, "invoke": 81234, "return": 81990,
     "op": {"kind": "cas", "key": "k0", "expected": 2, "state": {...}, "machine": null},
     "result": {"ok": 3}}

``op.kind`` is ``load`` (key), ``read_log`` (key, start, stop), ``log_head``
(key), ``cas`` (key, expected, state, machine), ``append`` (key, expected,
events: [[kind, data], ...]), ``append_terminal`` (key, event: [kind, data]),
``commit`` (ops: a list of cas / append / append_terminal, an optional
``batch`` id: a string, absent or null for none, and an optional ``outcome``:
any JSON, recorded with the id) or ``receipt`` (batch). ``result`` is ``{"ok":
value}`` -- a load's ``{"machine", "version", "state"}``, a read_log's
``[[seq, terminal], ...]``, a log_head's ``[head, terminal]``, a cas's new
version, an append's new head, a commit's null, a receipt's null or
``{"outcome": ...}`` -- or ``{"error": code}`` with a `StoreError` code, or null while the
operation has not returned. The recorder writes each operation at invoke
(``"return": null``) and again when it returns; of the lines with one
(process, index) the last wins, so a killed process leaves its last
operation pending. Each process writes its own file; `load_history` merges
them.

>>> h = [Operation("p", 1, 2, Call(OpKind.LOAD, "k"), Response(error="not_found"))]
>>> check_history(h).summary()
'linearizable: 1 operations, 1 processes, 1 keys'
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    BatchStore,
    Cas,
    Catalog,
    Event,
    HeadStore,
    Op,
    Receipt,
    Record,
    RequestStore,
    Store,
    StoreError,
    canonical_json,
    takes_batch,
    takes_requests,
)
from statewright.kernel.errors import one_line
from statewright.kernel.renamed import renamed

__all__ = [
    "Call",
    "HistoryCheck",
    "HistoryError",
    "HistoryVerdict",
    "OpKind",
    "Operation",
    "Recorder",
    "Response",
    "Write",
    "check_files",
    "check_history",
    "load_history",
    "parse_operation",
    "resume",
]

DEFAULT_MAX_STEPS = 2_000_000
IGNORED = frozenset({"busy", "invalid_state"})

LOOK_EVERY = 256
"""Steps between two looks at the clock when a time limit is set."""

BYTES_PER_STEP = 128
"""Reading a line costs a step, plus one per this many bytes of it: about what parsing them takes."""

MAX_LINE_BYTES = 256 * 1024 * 1024
"""The longest history line read (256 MiB: a read back of a 10-million-event log); a longer one is an error."""

MAX_DEPTH = 500
"""How deep a line's JSON may nest (a state the store takes nests at most 64 levels, by default)."""

PARSE_BYTES = (72, 240, 2)
"""What parsing may cost in memory: bytes per ``[``, per ``{`` and per byte of the line (Python's lists and dicts)."""


class OpKind(Enum):
    """Which store call an operation (or one write of a commit) is: the ``kind`` of a history line's ``op``."""

    LOAD = "load"
    READ_LOG = "read_log"
    CAS = "cas"
    APPEND = "append"
    APPEND_TERMINAL = "append_terminal"
    COMMIT = "commit"
    LOG_HEAD = "log_head"
    RECEIPT = "receipt"


WRITES = (OpKind.CAS, OpKind.APPEND, OpKind.APPEND_TERMINAL)
READS = (OpKind.LOAD, OpKind.READ_LOG, OpKind.LOG_HEAD, OpKind.RECEIPT)


class HistoryVerdict(Enum):
    """What `check_history` found; ``UNKNOWN`` when the step budget ran out first."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


class HistoryError(ValueError):
    """A history file line that is not an operation; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Write:
    """One write: ``expected`` is a version (cas) or a log head (append); ``state`` is canonical JSON."""

    kind: OpKind
    key: str
    expected: int = 0
    state: str | None = None
    machine: str | None = None
    events: int = 1


@dataclass(frozen=True, slots=True)
class Call:
    """What was called: a read of ``key``, ``writes`` (one, or a commit's several, with its ``batch`` id), or a receipt.

    A commit by id may record an ``outcome`` (canonical JSON) with it; ``digest``
    names its operations exactly (a `Write` keeps only what the model needs, so
    two commits of one shape can differ in their events' data): a history file's
    commit gets the SHA-256 of its ``ops``, and one built by hand is named by its
    writes.
    """

    kind: OpKind
    key: str = ""
    writes: tuple[Write, ...] = ()
    start: int = 1
    stop: int | None = None
    batch: str | None = None
    outcome: str | None = None
    digest: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        if self.kind is OpKind.RECEIPT:
            return ()
        return tuple(sorted({w.key for w in self.writes})) if self.writes else (self.key,)

    @property
    def identity(self) -> Any:
        """What tells this batch from another under the same id."""
        return self.digest if self.digest is not None else self.writes

    @property
    def nodes(self) -> tuple[str, ...]:
        """What joins operations into one part: the keys, and the batch id (``\x00`` cannot start a key)."""
        return self.keys + (() if self.batch is None else (f"\x00{self.batch}",))


@dataclass(frozen=True, slots=True)
class Response:
    """What the store answered a call: ``value`` (canonical JSON text) on success, else the error ``code``."""

    value: str | None = None
    error: str | None = None

    @staticmethod
    def ok(value: Any) -> Response:
        return Response(json.dumps(value, sort_keys=True, separators=(",", ":")))


DONE = Response.ok(None)
"""A commit's success."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One call by ``process``, invoked and returned at ``monotonic_ns`` times; ``returned`` None: pending."""

    process: str
    invoke: int
    returned: int | None
    call: Call
    result: Response | None


# -- the sequential model: one key's record ------------------------------------------------

KeyState = tuple[Any, Any, Any, Any, Any]
"""machine (None: absent), state (canonical JSON), version, log head, terminal flag; `UNKNOWN` while shrinking."""
ABSENT: KeyState = (None, None, 0, 0, False)


class _Refused(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


def _write(rec: KeyState, w: Write) -> tuple[KeyState, int]:
    """``w`` applied to ``rec`` as `MemoryStore` does: the new record and the version or head returned."""
    machine, state, version, head, terminal = rec
    if w.kind is OpKind.CAS:
        if w.expected == 0:
            if machine is not None:
                raise _Refused("conflict")
            if w.machine is None:
                raise _Refused("invalid_state")
            return (w.machine, w.state, 1, head, terminal), 1
        if machine is None:
            raise _Refused("not_found")
        if version != w.expected:
            raise _Refused("conflict")
        if w.machine is not None and w.machine != machine:
            raise _Refused("invalid_state")
        return (machine, w.state, version + 1, head, terminal), version + 1
    if machine is None:
        raise _Refused("not_found")
    if terminal:
        raise _Refused("conflict")
    if w.kind is OpKind.APPEND:
        if head != w.expected:
            raise _Refused("conflict")
        return (machine, state, version, head + w.events, False), head + w.events
    return (machine, state, version, head + 1, True), head + 1


def _apply(keys: tuple[str, ...], model: tuple[KeyState, ...], call: Call) -> tuple[tuple[KeyState, ...], Response]:
    """The model's next state and result for ``call`` (``keys`` names the slots of ``model``)."""
    if call.kind is OpKind.LOAD:
        machine, state, version, _, _ = model[keys.index(call.key)]
        if machine is None:
            return model, Response(error="not_found")
        return model, Response.ok({"machine": machine, "version": version, "state": json.loads(state or "null")})
    if call.kind is OpKind.LOG_HEAD:
        _, _, _, head, terminal = model[keys.index(call.key)]
        return model, Response.ok([head, terminal])
    if call.kind is OpKind.READ_LOG:  # the events as their bounds (`_log_read`): a long log costs no more
        _, _, _, head, terminal = model[keys.index(call.key)]
        first, last = max(call.start, 1), head if call.stop is None else min(call.stop - 1, head)
        return model, _log_read(first, last, terminal and last == head) if first <= last else NO_EVENTS
    out = list(model)
    returned = 0
    try:
        for w in call.writes:
            i = keys.index(w.key)
            out[i], returned = _write(out[i], w)
    except _Refused as refused:
        return model, Response(error=refused.code)
    return tuple(out), Response.ok(None if call.kind is OpKind.COMMIT else returned)


# -- the same model from an unknown record, for shrinking --------------------------------------
#
# A sub-history cut out of a long run starts mid-way: its first operation on a
# key met a record nobody in it wrote. So shrinking judges candidates from an
# *unknown* record, whose fields are learned from what operations saw; a field
# stays unknown when an observation does not pin it (a conflict says only
# "not that version"). This model allows everything the exact one allows from
# any record, so what it refuses is wrong whatever came before.

UNKNOWN = "<unknown>"  # a field not yet learned (no machine is named with angle brackets)
EXISTS = "<exists>"  # the record exists; its machine is not yet learned
LOOSE: KeyState = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN)


def _known(rec: KeyState) -> bool:
    return UNKNOWN not in rec and rec[0] != EXISTS


def _loose_write(rec: KeyState, w: Write, result: Response) -> KeyState | None:
    """``rec`` after single write ``w`` that returned ``result``; None when no record allows that."""
    machine, state, version, head, terminal = rec
    absent: KeyState = (None, None, 0, 0, False)
    if result.error == "not_found" and (w.kind is not OpKind.CAS or w.expected != 0):
        return absent if machine in (None, UNKNOWN) else None
    if machine is None and not (w.kind is OpKind.CAS and w.expected == 0):
        return None  # only not_found fits an absent record
    exists = EXISTS if machine in (UNKNOWN, EXISTS) else machine
    if result.error == "conflict":
        if w.kind is OpKind.CAS and w.expected == 0:
            return None if machine is None else (exists, state, version, head, terminal)
        if w.kind is OpKind.APPEND_TERMINAL:
            return None if terminal is False else (exists, state, version, head, True)
        if w.kind is OpKind.CAS:
            return None if version == w.expected else (exists, state, version, head, terminal)
        return None if terminal is False and head == w.expected else (exists, state, version, head, terminal)
    if result.error is not None or result.value is None:
        return None
    got = json.loads(result.value)
    if type(got) is not int:
        return None  # a write returns a version or a log head
    if w.kind is OpKind.CAS:
        if w.expected == 0:
            ok = machine in (None, UNKNOWN) and got == 1 and w.machine is not None
            return (w.machine, w.state, 1, 0, False) if ok else None
        fits = w.machine is None or exists in (EXISTS, w.machine)
        if version not in (UNKNOWN, w.expected) or got != w.expected + 1 or not fits:
            return None
        return (w.machine or exists, w.state, got, head, terminal)
    if terminal is True:
        return None
    if w.kind is OpKind.APPEND:
        ok = head in (UNKNOWN, w.expected) and got == w.expected + w.events
        return (exists, state, version, got, False) if ok else None
    return (exists, state, version, got, True) if head in (UNKNOWN, got - 1) else None


def _loose_read(rec: KeyState, call: Call, result: Response) -> KeyState | None:
    machine, state, version, head, terminal = rec
    if call.kind is OpKind.LOAD:
        if result.error == "not_found":
            return (None, None, 0, 0, False) if machine in (None, UNKNOWN) else None
        if result.value is None or machine is None:
            return None
        got = json.loads(result.value)
        if not isinstance(got, dict) or set(got) != {"machine", "state", "version"}:
            return None  # no record reads like that
        seen = (got["machine"], json.dumps(got["state"], sort_keys=True, separators=(",", ":")), got["version"])
        if any(mine not in (UNKNOWN, EXISTS, theirs) for mine, theirs in zip((machine, state, version), seen)):
            return None
        return (*seen, head, terminal)
    if result.value is None:
        return None
    if call.kind is OpKind.LOG_HEAD:
        got = json.loads(result.value)
        if not (isinstance(got, list) and len(got) == 2 and type(got[0]) is int and type(got[1]) is bool):
            return None  # no log head reads like that
        last, ended = got
        if head not in (UNKNOWN, last) or terminal not in (UNKNOWN, ended) or (last and machine is None):
            return None
        return (EXISTS if machine == UNKNOWN and last else machine, state, version, last, ended)
    events = json.loads(result.value)
    if events == []:
        return rec  # no events pins nothing down
    if not (isinstance(events, dict) and set(events) == {"ended", "first", "last"}):
        return None  # events no log gives
    if call.stop is None:
        last, ended = events["last"], events["ended"]
        if head not in (UNKNOWN, last) or terminal not in (UNKNOWN, ended):
            return None
        return (EXISTS if machine == UNKNOWN else machine, state, version, last, ended)
    return rec  # what a bounded read pins down is left unlearned


def _loose_batched(rec: KeyState, w: Write) -> KeyState | None:
    """``rec`` after ``w`` succeeded inside a committed batch (its own result unseen)."""
    machine, state, version, head, terminal = rec
    if w.kind is OpKind.CAS:
        got = 1 if w.expected == 0 else w.expected + 1
    elif w.kind is OpKind.APPEND:
        got = w.expected + w.events
    elif head != UNKNOWN:
        got = head + 1
    elif machine is None or terminal is True:
        return None
    else:
        return (EXISTS if machine == UNKNOWN else machine, state, version, UNKNOWN, True)
    return _loose_write(rec, w, Response.ok(got))


def _apply_loose(keys: tuple[str, ...], model: tuple[KeyState, ...], op: Operation) -> tuple[KeyState, ...] | None:
    """The next loose model after ``op`` (None: no record allows its result); exact on known records."""
    call = op.call
    touched = [keys.index(k) for k in call.keys]
    if op.result is None or all(_known(model[i]) for i in touched):
        after, result = _apply(keys, model, call)
        return after if op.result is None or result == op.result else None
    out = list(model)
    i = touched[0]
    if call.kind in (OpKind.LOAD, OpKind.READ_LOG, OpKind.LOG_HEAD):
        new = _loose_read(model[i], call, op.result)
    elif call.kind is not OpKind.COMMIT:
        new = _loose_write(model[i], call.writes[0], op.result)
    elif op.result.error is not None:
        return model  # some write failed; which one, and why, is not learned
    else:
        for w in call.writes:
            j = keys.index(w.key)
            batched = _loose_batched(out[j], w)
            if batched is None:
                return None
            out[j] = batched
        return tuple(out)
    if new is None:
        return None
    out[i] = new
    return tuple(out)


def _join(a: KeyState, b: KeyState) -> KeyState:
    """What two possible records have in common: the fields they disagree on become unknown."""
    machine, state, version, head, terminal = (x if x == y else UNKNOWN for x, y in zip(a, b))
    return machine, state, version, head, terminal


def _loose_resubmitted(keys: tuple[str, ...], model: tuple[KeyState, ...], call: Call) -> tuple[KeyState, ...]:
    """The loose model after a batched commit succeeded that may have applied now or before the cut.

    From an unknown record a batch id may have taken effect already, and the
    success then applied nothing; so the result is the join of "applied now"
    (when the writes fit) and "applied nothing", which allows both.
    """
    applied = list(model)
    for w in call.writes:
        j = keys.index(w.key)
        batched = _loose_batched(applied[j], w)
        if batched is None:
            return model  # it cannot have applied now: an earlier commit of the id did
        applied[j] = batched
    return tuple(_join(m, a) for m, a in zip(model, applied))


# -- the search ---------------------------------------------------------------------------
#
# The history of a part is cut at quiescent points: instants by which every
# operation begun so far has returned (pending ones aside) and the next has not
# begun. Every order puts all of one segment before all of the next, so the
# search goes segment by segment, from each *configuration* the segment before
# can end in -- a model, and the pending operations not yet placed, which may
# still take effect. Each segment has its own memo, dropped when it is done:
# memory follows the longest segment, not the history (a sequential history is
# one segment per operation).
#
# Reductions keep a segment's search small, and lose no order:
# - a pending operation is placed only where it changes the model (placed
#   anywhere else it is as if never placed); a pending read is dropped at once;
# - in the exact model, where records only grow, a pending write is dropped
#   once it never can take effect (`_refused_for_good`), and an operation that
#   returned, fits the model now and leaves it as it is (a read, a refused
#   write) is placed at once, nothing else tried there: any order placing it
#   later still works with it moved to now, since wherever its result fits it
#   leaves the model as it is. Not so in the shrinker's loose model, which
#   learns from reads and forgets where it joins two records: there every
#   order is tried.


class _Spent(Exception):
    """The budget ran out; the check turns it into an ``unknown`` verdict (or a counterexample less small)."""



@dataclass(slots=True)
class _Budget:
    """The steps one check may spend, reading, preparing, searching and shrinking alike, and a time limit.

    A step is one operation evaluated against a model, one operation prepared
    or set out in a segment, or one line read (plus one per `BYTES_PER_STEP`
    bytes of it): each a few microseconds, so a budget of steps bounds time
    too. ``why`` and ``where`` say what ran out, and where.
    """

    limit: int
    time_limit: float | None = None
    clock: Callable[[], float] = time.monotonic
    used: int = 0
    why: str = ""
    where: str = ""
    deadline: float = field(init=False)
    look: int = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = math.inf if self.time_limit is None else self.clock() + self.time_limit
        self.look = LOOK_EVERY

    def spend(self, n: int = 1) -> None:
        if self.used + n > self.limit:
            self.used = self.limit + 1
            self.why = "step budget"
            raise _Spent
        self.used += n
        if self.used >= self.look:
            self.look = self.used + LOOK_EVERY
            if self.clock() > self.deadline:
                self.why = f"time limit of {self.time_limit} s"
                raise _Spent


@dataclass(eq=False, slots=True)
class _Entry:
    op: int
    is_call: bool
    prev: _Entry | None = None
    next: _Entry | None = None
    match: _Entry | None = None  # a call's return entry


def _entries(spans: Sequence[tuple[float, float]]) -> tuple[_Entry, list[_Entry]]:
    """The calls and returns of ``spans`` in time order (a call first at one instant), linked: the head, the calls."""
    marks = sorted([(call, 0, i) for i, (call, _) in enumerate(spans)]
                   + [(ret, 1, i) for i, (_, ret) in enumerate(spans)])
    head = _Entry(-1, False)
    last = head
    calls: list[_Entry] = [head] * len(spans)
    for _, kind, i in marks:
        e = _Entry(i, kind == 0, prev=last)
        last.next = e
        last = e
        if kind == 0:
            calls[i] = e
        else:
            calls[i].match = e
    return head, calls


def _lift(call: _Entry) -> None:
    for e in (call, call.match):
        assert e is not None and e.prev is not None
        e.prev.next = e.next
        if e.next is not None:
            e.next.prev = e.prev


def _unlift(call: _Entry) -> None:
    for e in (call.match, call):
        assert e is not None and e.prev is not None
        e.prev.next = e
        if e.next is not None:
            e.next.prev = e


Taken = tuple[str, Any, str | None]
"""A batch id that took effect: the id, what its commit wrote (`Call.identity`) and the outcome it recorded."""
Model = tuple[tuple[KeyState, ...], frozenset[Taken]]
"""The records of a part's keys, and the batch ids that took effect (those named again only)."""


def _taken(applied: frozenset[Taken], batch: str) -> Taken | None:
    return next((t for t in applied if t[0] == batch), None)


def _receipt(taken: Taken | None) -> Response:
    """What a receipt of an id answers: null when no commit took it, else the outcome recorded with it."""
    if taken is None:
        return Response.ok(None)
    return Response.ok({"outcome": None if taken[2] is None else json.loads(taken[2])})

Config = tuple[Model, frozenset[int]]
"""Where a segment may end: the model, and the pending operations (indices into the part) not yet placed."""

_Move = tuple[_Entry, Model]
_Frame = tuple[_Entry, Model, int, int, int, "list[_Move] | None"]
"""A placement to undo: its entry, the configuration before it (model, low, window, pending placed), the moves left."""


def _refused_for_good(rec: KeyState, w: Write) -> bool:
    """Whether ``w`` fails on ``rec`` and on every record that can follow it, so it can never take effect.

    Records only grow: one created stays, with its machine; versions and log
    heads only rise; an ended log stays ended. Fields not yet learned (the
    shrinker's unknown record) never count as known here.
    """
    machine, _, version, head, terminal = rec
    exists = machine is not None and machine != UNKNOWN
    if w.kind is OpKind.CAS:
        if w.expected == 0:
            return exists or w.machine is None
        if exists and machine != EXISTS and w.machine is not None and w.machine != machine:
            return True
        return exists and type(version) is int and version > w.expected
    if terminal is True:
        return True
    return w.kind is OpKind.APPEND and type(head) is int and head > w.expected


class _Search:
    """Wing & Gong's search over one part of a history, segment by segment, memoised on (placed set, model).

    ``ops`` are the part's operations in invoke order; ``cuts`` where each
    segment starts in them; ``failed`` (not linearizable) the end of the
    segment no configuration got through; ``memo`` the most memo entries one
    segment held. ``budget`` is shared with the rest of the check (an int: a
    budget of its own).
    """

    def __init__(self, ops: Sequence[Operation], budget: _Budget | int, *, loose: bool = False) -> None:
        self.ops = sorted(ops, key=lambda op: op.invoke)
        self.budget = budget if isinstance(budget, _Budget) else _Budget(budget)
        self.keys = tuple(sorted({k for op in ops for k in op.call.keys}))
        self.loose = loose
        self.first = self.budget.used
        self.cuts: list[int] = []
        self.failed = 0
        self.memo = 0
        named = Counter(op.call.batch for op in ops if op.call.batch is not None)
        self.again = frozenset(b for b, n in named.items() if n > 1)  # ids a later commit may ask about

    @property
    def steps(self) -> int:
        """The steps this search spent."""
        return self.budget.used - self.first

    def _step(self, model: Model, op: Operation) -> Model | None:
        records, applied = model
        batch = op.call.batch
        taken = None if batch is None else _taken(applied, batch)
        if op.call.kind is OpKind.RECEIPT:
            if op.result is None or op.result == _receipt(taken) or (self.loose and taken is None):
                return model  # (from an unknown record, a commit before the cut may have taken the id)
            return None
        if taken is not None:
            if taken[1] == op.call.identity:  # a re-submission: the first outcome, nothing applied
                return model if op.result is None or op.result == DONE else None
            # another batch under a taken id: refused, nothing applied
            return model if op.result is None or op.result.error == "already_applied" else None
        if op.result is not None and op.result.error == "already_applied":
            return model if self.loose and batch is not None else None  # no commit in the history took the id
        after: tuple[KeyState, ...] | None
        if self.loose and batch is not None and op.result == DONE:
            after, took = _loose_resubmitted(self.keys, records, op.call), True
        elif self.loose and op.result is not None:
            after, took = _apply_loose(self.keys, records, op), op.result.error is None
        else:
            after, result = _apply(self.keys, records, op.call)
            if op.result is not None and result != op.result:
                return None
            took = result.error is None
        if after is None:
            return None
        if took and batch is not None and batch in self.again:
            applied = applied | {(batch, op.call.identity, op.call.outcome)}
        return after, applied

    def _inert(self, model: Model, op: Operation) -> bool:
        """Whether pending ``op`` can never change ``model`` or any model after it (a batch id applies once).

        A read never can. For a write this holds of the exact model only: the
        loose one forgets what it knew where it joins two records.
        """
        call = op.call
        if call.kind in READS:
            return True
        if self.loose:
            return False
        records, applied = model
        if call.batch is not None and _taken(applied, call.batch) is not None:
            return True  # the same batch again applies nothing, another is refused: both for good
        return any(_refused_for_good(records[self.keys.index(w.key)], w) for w in call.writes)

    def run(self) -> HistoryVerdict:
        records = tuple(LOOSE if self.loose else ABSENT for _ in self.keys)
        configs: set[Config] = {((records, frozenset()), frozenset())}
        try:
            self.cuts = _cuts(self.ops)
            for start, stop in zip(self.cuts, [*self.cuts[1:], len(self.ops)]):
                op = self.ops[start]
                if stop - start == 1 and op.returned is not None and not any(waiting for _, waiting in configs):
                    # one operation, nothing pending: each configuration goes on as the operation takes it
                    self.budget.spend(1 + len(configs))  # set out, and evaluated: as a `_Segment` counts
                    configs = {(after, frozenset()) for model, _ in configs
                               if (after := self._step(model, op)) is not None}
                else:
                    configs = _Segment(self, configs, start, stop).ends()
                if not configs:
                    self.failed = stop
                    return HistoryVerdict.NOT_LINEARIZABLE
        except _Spent:
            return HistoryVerdict.UNKNOWN
        return HistoryVerdict.LINEARIZABLE


def _cuts(ops: Sequence[Operation]) -> list[int]:
    """Where each segment of ``ops`` (in invoke order) starts: past every return so far, pending operations aside."""
    cuts: list[int] = []
    horizon = -math.inf
    for i, op in enumerate(ops):
        if op.invoke > horizon:
            cuts.append(i)
        if op.returned is not None and op.returned > horizon:
            horizon = op.returned
    return cuts


class _Segment:
    """One segment's search: the pending operations carried in, and its own, from each configuration it may start in.

    Local operations are numbered carried-then-own. Those that returned have a
    *rank* among themselves (invoke order), the pending ones a bit each. The
    placed set is ``low`` (every rank below it placed) and ``window`` (bits of
    the ranks placed from ``low`` on), plus the pending bits: a few bits however
    long the segment, since nothing is placed past the first unplaced
    operation's return.
    """

    def __init__(self, search: _Search, configs: set[Config], start: int, stop: int) -> None:
        self.search = search
        self.configs = configs
        carried = sorted({i for _, waiting in configs for i in waiting})
        self.carried = len(carried)
        self.local = [*carried, *range(start, stop)]
        search.budget.spend(len(self.local))
        ops = search.ops
        spans = [(-math.inf if n < self.carried else ops[i].invoke,
                  math.inf if ops[i].returned is None else ops[i].returned) for n, i in enumerate(self.local)]
        self.head, self.calls = _entries(spans)
        self.rank: list[int] = []  # a returned operation's rank; a pending one's bit, as ~bit (negative)
        ranks = bits = 0
        for i in self.local:
            if ops[i].returned is None:
                self.rank.append(~bits)
                bits += 1
            else:
                self.rank.append(ranks)
                ranks += 1
        self.total = ranks
        self.pending = [(n, i, 1 << ~r) for n, (i, r) in enumerate(zip(self.local, self.rank)) if r < 0]
        self.seen: set[tuple[int, int, int, Model]] = set()
        self.found: set[Config] = set()

    def ends(self) -> set[Config]:
        """Every configuration the segment can end in (less those another one covers)."""
        for model, waiting in self.configs:
            placed = 0
            already = [n for n, i, _ in self.pending if n < self.carried and i not in waiting]
            for n in already:  # carried in, but placed already in the configuration this one comes from
                placed |= 1 << ~self.rank[n]
                _lift(self.calls[n])
            self._explore(model, placed)
            for n in reversed(already):
                _unlift(self.calls[n])
        self.search.memo = max(self.search.memo, len(self.seen))
        return _maximal(self.found)

    def _moves(self, model: Model, placed: int) -> tuple[_Move | None, list[_Move]]:
        """The placements possible now: one that loses nothing (then only it), else all the others that fit."""
        search = self.search
        ops = search.ops
        moves: list[_Move] = []
        entry = self.head.next
        while entry is not None and entry.is_call:
            search.budget.spend()
            op = ops[self.local[entry.op]]
            if self.rank[entry.op] < 0:  # pending: placed where it changes the model, dropped once it never can
                if search._inert(model, op):
                    return (entry, model), []
                after = search._step(model, op)
                if after is not None and after != model:
                    moves.append((entry, after))
            elif (after := search._step(model, op)) is not None:
                if after == model and not search.loose:
                    return (entry, after), []
                moves.append((entry, after))
            entry = entry.next
        moves.reverse()  # popped from the end: in time order
        return None, moves

    def _explore(self, model: Model, placed: int) -> None:
        """Depth first from one configuration, adding every end reached to ``found``."""
        low = window = 0
        key = (low, window, placed, model)
        if key in self.seen:
            return
        self.seen.add(key)
        stack: list[_Frame] = []
        while True:  # at a configuration not seen before
            if low == self.total:
                self.found.add((model, frozenset(i for _, i, bit in self.pending if not placed & bit)))
            forced, moves = self._moves(model, placed)
            left: list[_Move] | None = None if forced is not None else moves
            todo = [forced] if forced is not None else moves
            while True:
                picked = None
                while todo:
                    entry, after = todo.pop()
                    rank = self.rank[entry.op]
                    if rank < 0:
                        new = (low, window, placed | 1 << ~rank)
                    else:
                        w = window | 1 << (rank - low)
                        ones = (~w & (w + 1)).bit_length() - 1  # placed ranks from low on, in a row
                        new = (low + ones, w >> ones, placed)
                    key = (*new, after)
                    if key not in self.seen:
                        picked = entry, after, new
                        break
                    if left is None:
                        todo = []  # the one move that loses nothing leads where we have been: nothing new here
                if picked is not None:
                    entry, after, (new_low, new_window, new_placed) = picked
                    self.seen.add((new_low, new_window, new_placed, after))
                    stack.append((entry, model, low, window, placed, left))
                    _lift(entry)
                    model, low, window, placed = after, new_low, new_window, new_placed
                    break
                if not stack:
                    return
                entry, model, low, window, placed, left = stack.pop()
                _unlift(entry)
                todo = left if left is not None else []


def _maximal(ends: set[Config]) -> set[Config]:
    """``ends`` without those another end with the same model covers: it waits on the same operations and more."""
    if len(ends) < 2:
        return ends
    by_model: dict[Model, list[frozenset[int]]] = {}
    for model, waiting in ends:
        by_model.setdefault(model, []).append(waiting)
    return {(m, w) for m, ws in by_model.items() for w in ws if not any(w < other for other in ws)}


# -- partitioning, shrinking, the verdict -----------------------------------------------------


def _parts(ops: Sequence[Operation]) -> list[list[Operation]]:
    """Independent sub-histories: keys joined by a multi-key commit share a part (union-find)."""
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for op in ops:
        first, *rest = op.call.nodes
        for k in rest:
            parent[root(k)] = root(first)
    parts: dict[str, list[Operation]] = {}
    for op in ops:
        parts.setdefault(root(op.call.nodes[0]), []).append(op)
    return [parts[r] for r in sorted(parts)]


def _removable(op: Operation, rest: Sequence[Operation], loose: bool) -> bool:
    """May ``op`` leave a counterexample without the rest failing merely for want of it?

    Reads and failed writes only constrain, so they may always go. A write that
    took (or may have taken) effect may go only where it could be ordered after
    every remaining operation on its keys or its batch id (each began before it returned), or --
    judged from an unknown record, which absorbs it -- before them all (each
    returned after it began). This is judged against what stays at the time, so
    a later cut can still leave a gap where a dropped write was: the result is a
    1-minimal failing sub-history, a place to start reading, not a proof of cause.
    """
    if op.result is not None and (op.call.kind in READS or op.result.error is not None):
        return True
    nodes = set(op.call.nodes)  # its keys, and its batch id: a re-submission or receipt of it depends on it too
    others = [r for r in rest if nodes.intersection(r.call.nodes)]
    end = float("inf") if op.returned is None else op.returned
    if all(r.invoke < end for r in others):
        return True
    return loose and all(r.returned is None or r.returned > op.invoke for r in others)


class _Shrinker:
    """Cuts a part that failed down to a 1-minimal failing sub-history, within the check's budget.

    It starts from what the search found: nothing after the segment no
    configuration got through is needed, and, judged from an unknown record,
    often only the last few segments before it (tried 1, 2, 4, ... back). Then
    it drops chunks, then single operations, while the rest stays not
    linearizable -- from an unknown record when the start already fails that way
    (so the writes that built the record need not stay), else from the empty
    store; only `_removable` operations are dropped, so the failure is never one
    of the cut's making. ``ops`` is the smallest failing history found so far:
    the answer when the budget runs out first.
    """

    def __init__(self, search: _Search) -> None:
        self.budget = search.budget
        self.ops = search.ops[:search.failed]
        self.loose = False
        self.cuts = [c for c in search.cuts if c < search.failed]

    def _fails(self, ops: Sequence[Operation], loose: bool) -> bool:
        verdict = _Search(ops, self.budget, loose=loose).run()
        if verdict is HistoryVerdict.UNKNOWN:
            raise _Spent
        return verdict is HistoryVerdict.NOT_LINEARIZABLE

    def run(self) -> bool:
        """Shrink ``ops``; True when it got to a 1-minimal one, False when the budget ran out first."""
        try:
            self._cut_front()
            self._minimise()
        except _Spent:
            return False
        return True

    def _cut_front(self) -> None:
        last = len(self.cuts) - 1
        back = 1
        while True:
            first = max(last - back + 1, 0)
            candidate = self.ops[self.cuts[first]:]
            if self._fails(candidate, loose=True):
                self.ops, self.loose = candidate, True
                return
            if first == 0:
                return
            back *= 2

    def _minimise(self) -> None:
        chunk = max(len(self.ops) // 2, 1)
        while True:
            i, before = 0, len(self.ops)
            while i < len(self.ops) and len(self.ops) > 1:
                candidate = self.ops[:i] + self.ops[i + chunk:]
                dropped = self.ops[i:i + chunk]
                if candidate and self._may_drop(dropped, candidate) and self._fails(candidate, self.loose):
                    self.ops = candidate
                else:
                    i += chunk
            if chunk == 1 and len(self.ops) == before:
                return  # a whole pass dropped nothing (a drop can make an earlier one removable: pass again)
            chunk = max(chunk // 2, 1)

    def _may_drop(self, dropped: Sequence[Operation], rest: Sequence[Operation]) -> bool:
        for op in dropped:
            self.budget.spend(1 + len(rest) // BYTES_PER_STEP)  # `_removable` reads the rest
            if not _removable(op, rest, self.loose):
                return False
        return True


@dataclass(frozen=True, slots=True)
class HistoryCheck:
    """The verdict on a history, its size, and (when not linearizable) a failing sub-history.

    ``steps`` counts everything the check did, reading included (see
    `check_files`); ``memo`` is the most memo entries one segment held and
    ``segments`` how many segments the history was cut into at quiescent points
    (of the parts searched). ``why`` and ``where`` say what ran out for an
    ``unknown`` verdict, or for a counterexample that is not ``minimal``.
    """

    verdict: HistoryVerdict
    operations: int
    processes: int
    keys: int
    steps: int
    seconds: float
    counterexample: tuple[Operation, ...] = ()
    memo: int = 0
    segments: int = 0
    minimal: bool = True
    why: str = ""
    where: str = ""

    def summary(self) -> str:
        size = f"{self.operations:,} operations, {self.processes:,} processes, {self.keys:,} keys"
        if self.verdict is HistoryVerdict.UNKNOWN:
            return f"unknown: {self.why} spent after {self.steps:,} steps{self.where} ({size})"
        return f"{self.verdict.value}: {size}"

    def report(self) -> str:
        """The summary, plus the counterexample one operation a line, times in µs from its first invoke."""
        lines = [self.summary()]
        if self.counterexample:
            n = len(self.counterexample)
            if self.minimal:
                lines.append(f"minimal non-linearizable sub-history ({n} operations):")
            else:
                lines.append(f"non-linearizable sub-history ({n} operations; not minimal: the {self.why} ran out "
                             f"after {self.steps:,} steps while shrinking it):")
            t0 = min(op.invoke for op in self.counterexample)
            lines.extend("  " + render(op, t0) for op in self.counterexample)
        return "\n".join(lines)


def check_history(
    history: Iterable[Operation],
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    time_limit: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> HistoryCheck:
    """Is ``history`` linearizable against the store's per-key sequential specification?

    ``max_steps`` bounds everything the check does (preparing the history,
    searching, shrinking a counterexample) and ``time_limit`` (seconds on
    ``clock``) bounds it too; past either the verdict is ``unknown`` -- or, when
    a failure was found already, its counterexample is less small.

    >>> w = Call(OpKind.CAS, writes=(Write(OpKind.CAS, "k", 0, "{}", "m"),))
    >>> check_history([Operation("a", 1, 4, w, Response.ok(1)), Operation("b", 2, 3, w, Response.ok(1))]).verdict
    <HistoryVerdict.NOT_LINEARIZABLE: 'not linearizable'>
    """
    return _check(history, _Budget(max_steps, time_limit, clock), time.perf_counter())


def check_files(
    paths: Iterable[str | Path],
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    time_limit: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> HistoryCheck:
    """`load_history` then `check_history`, under one budget: reading counts against ``max_steps`` too.

    What ``statewright lincheck`` runs. A malformed file raises `HistoryError`;
    a budget spent while reading gives ``unknown`` naming the file and line.
    """
    started = time.perf_counter()
    budget = _Budget(max_steps, time_limit, clock)
    reader = _HistoryReader(budget, max_line_bytes)
    try:
        reader.read(paths)
    except _Spent:
        return _unknown(reader.operations(), budget, started)
    return _check(reader.operations(), budget, started)


def _as_bounds(op: Operation) -> Operation:
    """``op`` with a read_log result given as a list of events (built in Python) held as its bounds, as a file's is."""
    value = op.result.value if op.result is not None else None
    if op.call.kind is not OpKind.READ_LOG or value is None or not value.startswith("["):
        return op
    return replace(op, result=_parse_log_read(json.loads(value)))


def _size(ops: Sequence[Operation]) -> tuple[int, int, int]:
    return len(ops), len({op.process for op in ops}), len({k for op in ops for k in op.call.keys})


def _unknown(
    ops: Sequence[Operation], budget: _Budget, started: float, memo: int = 0, segments: int = 0
) -> HistoryCheck:
    return HistoryCheck(HistoryVerdict.UNKNOWN, *_size(ops), steps=budget.used, seconds=time.perf_counter() - started,
                        memo=memo, segments=segments, why=budget.why, where=budget.where)


def _check(history: Iterable[Operation], budget: _Budget, started: float) -> HistoryCheck:
    everything = list(history)
    ops = [op for op in everything if op.result is None or op.result.error not in IGNORED]
    try:
        budget.spend(len(everything))  # sorting, splitting into parts and segments
    except _Spent:
        return _unknown(ops, budget, started)
    ops = [_as_bounds(op) for op in ops]
    ops.sort(key=lambda op: (op.invoke, op.process))
    memo = segments = 0
    for part in _parts(ops):
        search = _Search(part, budget)
        outcome = search.run()
        memo, segments = max(memo, search.memo), segments + len(search.cuts)
        if outcome is HistoryVerdict.UNKNOWN:
            return _unknown(ops, budget, started, memo, segments)
        if outcome is HistoryVerdict.NOT_LINEARIZABLE:
            shrinker = _Shrinker(search)
            minimal = shrinker.run()
            return HistoryCheck(outcome, *_size(ops), steps=budget.used, seconds=time.perf_counter() - started,
                                counterexample=tuple(shrinker.ops), memo=memo, segments=segments, minimal=minimal,
                                why="" if minimal else budget.why)
    return HistoryCheck(HistoryVerdict.LINEARIZABLE, *_size(ops), steps=budget.used,
                        seconds=time.perf_counter() - started, memo=memo, segments=segments)


def render(op: Operation, t0: int = 0) -> str:
    """``p1 [12.0 .. 80.5 µs] cas k0 expected=3 -> ok 4``."""
    end = "..." if op.returned is None else f"{(op.returned - t0) / 1000:.1f}"
    if op.call.kind is OpKind.LOAD:
        what = f"load {op.call.key}"
    elif op.call.kind is OpKind.READ_LOG:
        what = f"read_log {op.call.key} [{op.call.start}, {op.call.stop or 'end'})"
    elif op.call.kind is OpKind.LOG_HEAD:
        what = f"log_head {op.call.key}"
    elif op.call.kind is OpKind.RECEIPT:
        what = f"receipt {str(op.call.batch)[:12]}"
    else:
        what = "; ".join(_render_write(w) for w in op.call.writes)
        what = f"commit [{what}]" if op.call.kind is OpKind.COMMIT else what
        what += f" batch={op.call.batch[:12]}" if op.call.batch is not None else ""
    r = op.result
    got = "pending" if r is None else f"error {r.error}" if r.error else f"ok {r.value}"
    return f"{op.process} [{(op.invoke - t0) / 1000:.1f} .. {end} µs] {what} -> {got}"


def _render_write(w: Write) -> str:
    if w.kind is OpKind.CAS:
        return f"cas {w.key} expected={w.expected} state={w.state}"
    if w.kind is OpKind.APPEND:
        return f"append {w.key} expected={w.expected} events={w.events}"
    return f"append_terminal {w.key}"


# -- the file format ---------------------------------------------------------------------------


def _int(obj: dict[str, Any], name: str, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name!r} must be an integer, got {_short(value)}")
    return value


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    """``repr(value)`` cut to 200 characters: an error message about a 100 MB line stays one short line."""
    return one_line(reprlib.repr(value), 200)


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) nests arrays and objects deeper than ``limit``; iterative, never recursing."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _canonical(value: Any) -> str:
    """``value`` as canonical JSON text; `ValueError` past `MAX_DEPTH` levels (which need 2 characters each)."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except RecursionError:
        text = ""
    if not text or (len(text) > 2 * MAX_DEPTH and _too_deep(value)):
        raise ValueError(f"JSON nested too deep (more than {MAX_DEPTH} levels)")
    return text


def _parse_write(obj: Any) -> Write:
    if not isinstance(obj, dict):
        raise ValueError(f"a write must be an object, got {_short(obj)}")
    kind = OpKind(obj.get("kind"))
    key = _str(obj, "key")
    if kind is OpKind.CAS:
        machine = obj.get("machine")
        if machine is not None and not isinstance(machine, str):
            raise ValueError(f"'machine' must be a string or null, got {_short(machine)}")
        return Write(kind, key, _int(obj, "expected"), _canonical(obj.get("state")), machine)
    if kind is OpKind.APPEND:
        events = obj.get("events")
        if not isinstance(events, list):
            raise ValueError(f"'events' must be a list, got {_short(events)}")
        return Write(kind, key, _int(obj, "expected"), events=len(events))
    if kind is OpKind.APPEND_TERMINAL:
        return Write(kind, key)
    raise ValueError(f"{kind.value!r} is not a write")


def _parse_call(obj: Any) -> Call:
    if not isinstance(obj, dict):
        raise ValueError(f"'op' must be an object, got {_short(obj)}")
    kind = OpKind(obj.get("kind"))
    if kind is OpKind.LOAD:
        return Call(kind, _str(obj, "key"))
    if kind is OpKind.READ_LOG:
        return Call(kind, _str(obj, "key"), start=_int(obj, "start"), stop=_int(obj, "stop", optional=True))
    if kind is OpKind.LOG_HEAD:
        return Call(kind, _str(obj, "key"))
    if kind is OpKind.RECEIPT:
        return Call(kind, batch=_str(obj, "batch"))
    if kind is OpKind.COMMIT:
        ops = obj.get("ops")
        if not isinstance(ops, list) or not ops:
            raise ValueError(f"a commit's 'ops' must be a non-empty list, got {_short(ops)}")
        batch = obj.get("batch")
        if batch is not None and not isinstance(batch, str):
            raise ValueError(f"'batch' must be a string or null, got {_short(batch)}")
        outcome = obj.get("outcome")
        if outcome is not None and batch is None:
            raise ValueError("an 'outcome' is recorded with a batch id, and this commit has none")
        digest = hashlib.sha256(_canonical(ops).encode()).hexdigest()
        return Call(kind, writes=tuple(_parse_write(o) for o in ops), batch=batch,
                    outcome=None if outcome is None else _canonical(outcome), digest=digest)
    return Call(kind, writes=(_parse_write(obj),))


def _log_read(first: int, last: int, ended: bool) -> Response:
    """A read_log's events ``first`` .. ``last`` (``ended``: the last one ends the log), held as their bounds."""
    return Response.ok({"ended": ended, "first": first, "last": last})


NO_EVENTS = Response.ok([])


def _parse_log_read(events: Any) -> Response:
    """A recorded read_log result held as its bounds, since a log's events are numbered without gaps.

    A list that no log gives (a gap, an end before the last event, not pairs
    of [seq, terminal]) stays as it came: no model matches it.
    """
    if not isinstance(events, list) or not events:
        return Response(_canonical(events))
    try:  # a few passes in C over what may be millions of events (values compared as JSON numbers and booleans)
        sizes = set(map(len, events))
        seqs = list(map(itemgetter(0), events))
        ended = list(map(itemgetter(1), events))
    except (TypeError, KeyError, IndexError):
        sizes = set()
    first = seqs[0] if sizes == {2} else None
    if (type(first) is int and type(ended[-1]) is bool and all(type(e) is list for e in (events[0], events[-1]))
            and seqs == list(range(first, first + len(seqs))) and ended.count(False) == len(ended) - ended[-1]):
        return _log_read(first, seqs[-1], ended[-1])
    return Response(_canonical(events))


def _parse_result(obj: Any, call: Call) -> Response | None:
    if obj is None:
        return None
    if isinstance(obj, dict) and set(obj) == {"ok"}:
        value = obj["ok"]
        if call.kind is OpKind.READ_LOG:
            if not isinstance(value, list):
                raise ValueError(f"a read_log's result must be {{\"ok\": [[seq, terminal], ...]}}, got {_short(obj)}")
            return _parse_log_read(value)
        if call.kind is OpKind.LOAD:
            if not (isinstance(value, dict) and set(value) == {"machine", "state", "version"}
                    and isinstance(value["machine"], str) and type(value["version"]) is int):
                raise ValueError(f"a load's result must be {{\"ok\": {{\"machine\": name, \"version\": number, "
                                 f"\"state\": value}}}}, got {_short(obj)}")
        elif call.kind is OpKind.COMMIT:
            if value is not None:
                raise ValueError(f"a commit's result must be {{\"ok\": null}}, got {_short(obj)}")
        elif call.kind is OpKind.LOG_HEAD:
            if not (isinstance(value, list) and len(value) == 2 and type(value[0]) is int
                    and type(value[1]) is bool):
                raise ValueError(f"a log_head's result must be {{\"ok\": [head, terminal]}}, got {_short(obj)}")
        elif call.kind is OpKind.RECEIPT:
            if not (value is None or isinstance(value, dict) and set(value) == {"outcome"}):
                raise ValueError(f"a receipt's result must be {{\"ok\": null}} or {{\"ok\": {{\"outcome\": value}}}}, "
                                 f"got {_short(obj)}")
        elif type(value) is not int:
            raise ValueError(f"a {call.kind.value}'s result must be {{\"ok\": number}}, got {_short(obj)}")
        return Response(_canonical(value))
    if isinstance(obj, dict) and set(obj) == {"error"} and isinstance(obj["error"], str):
        return Response(error=obj["error"])
    raise ValueError(f"'result' must be {{\"ok\": value}}, {{\"error\": code}} or null, got {_short(obj)}")


def parse_operation(obj: Any) -> tuple[int, Operation]:
    """One decoded JSON line: its index within its process, and the operation. `ValueError` if malformed."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    process = obj.get("process")
    if not isinstance(process, (str, int)) or isinstance(process, bool):
        raise ValueError(f"'process' must be a string or an integer, got {_short(process)}")
    returned = _int(obj, "return", optional=True)
    invoke = _int(obj, "invoke")
    if returned is not None and returned < invoke:
        raise ValueError(f"returned at {returned}, before its invoke at {invoke}")
    call = _parse_call(obj.get("op"))
    result = _parse_result(obj.get("result"), call)
    if (returned is None) != (result is None):
        raise ValueError("'return' and 'result' must both be null (pending) or both be set")
    return _int(obj, "index"), Operation(str(process), invoke, returned, call, result)


def load_history(paths: Iterable[str | Path], *, max_line_bytes: int = MAX_LINE_BYTES) -> list[Operation]:
    """Merge history files; of the lines with one (process, index) the last wins. `HistoryError` names a bad line.

    Refused, each with its file and line: a line longer than ``max_line_bytes``
    (or whose parse would take more than eight times that in memory), bytes that
    are not UTF-8, text that is not JSON, JSON nested deeper than `MAX_DEPTH`,
    and one process named both as a number and as a string (``1`` and ``"1"``).
    A file's last line that has no newline and is cut short JSON is the line its
    writer was killed writing (the kernel may stop a write at a page boundary):
    it is left out, so its operation is the pending one its invoke line says.
    `check_files` reads within a step budget.
    """
    reader = _HistoryReader(_Budget(sys.maxsize), max_line_bytes)
    reader.read(paths)
    return reader.operations()


class _HistoryReader:
    """Reads history files a line at a time, charging each to ``budget``, into operations merged by (process, index)."""

    def __init__(self, budget: _Budget, max_line_bytes: int) -> None:
        self.budget = budget
        self.max_line_bytes = max_line_bytes
        self.merged: dict[tuple[str, int], Operation] = {}
        self.named: dict[str, tuple[bool, str]] = {}  # a process: named by a number?, and where first

    def operations(self) -> list[Operation]:
        return list(self.merged.values())

    def read(self, paths: Iterable[str | Path]) -> None:
        for path in paths:
            try:
                with open(path, "rb") as f:
                    self._file(f, str(path))
            except OSError as exc:
                raise HistoryError(f"{path}: cannot read: {exc}") from None

    def _file(self, f: IO[bytes], path: str) -> None:
        number = 0
        while raw := f.readline(self.max_line_bytes + 1):
            number += 1
            where = f"{path}:{number}"
            if len(raw) - raw.endswith(b"\n") > self.max_line_bytes:
                raise HistoryError(f"{where}: line longer than {self.max_line_bytes:,} bytes")
            cost = 1 + len(raw) // BYTES_PER_STEP
            try:
                self.budget.spend(cost)
            except _Spent:
                self.budget.where = (f", reading {path} line {number} "
                                     f"(a line of {len(raw):,} bytes needs {cost:,} steps)")
                raise
            if raw.strip():
                self._line(raw, where, last=not raw.endswith(b"\n"))

    def _line(self, raw: bytes, where: str, *, last: bool = False) -> None:
        """One line; ``last``: the file's final line has no newline, so its writer may have died writing it."""
        per_list, per_object, per_byte = PARSE_BYTES
        memory = per_list * raw.count(b"[") + per_object * raw.count(b"{") + per_byte * len(raw)
        if memory > 8 * self.max_line_bytes:
            raise HistoryError(f"{where}: too large to parse (about {memory:,} bytes of memory, more than "
                               f"{8 * self.max_line_bytes:,})")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HistoryError(f"{where}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
        try:
            obj = json.loads(text)
        except RecursionError:
            raise HistoryError(f"{where}: JSON nested too deep (more than {MAX_DEPTH} levels)") from None
        except json.JSONDecodeError as exc:
            if last:  # torn by a kill -9 mid-write (a write can stop at a page boundary): never written, so pending
                return
            raise HistoryError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None
        except ValueError as exc:  # an integer too long to convert, say
            raise HistoryError(f"{where}: not JSON: {exc}") from None
        del text
        try:
            index, op = parse_operation(obj)
        except (ValueError, RecursionError) as exc:  # OpKind(...) included
            message = f"JSON nested too deep (more than {MAX_DEPTH} levels)" if isinstance(exc, RecursionError) else exc
            raise HistoryError(f"{where}: {message}") from None
        numeric = isinstance(obj["process"], int)
        first = self.named.setdefault(op.process, (numeric, where))
        if first[0] != numeric:
            n = op.process
            said = (f"process {n} is a number here but the string {n!r}" if numeric
                    else f"process {n!r} is a string here but the number {n}")
            raise HistoryError(f"{where}: {said} at {first[1]}; name each process one way")
        self.merged[op.process, index] = op


# -- the recorder --------------------------------------------------------------------------------


def _json_state(state: Any) -> Any:
    try:
        return json.loads(canonical_json(state))
    except StoreError:  # the store refuses it too (invalid_state): nothing to model
        return None


def _op_json(op: Op) -> dict[str, Any]:
    if isinstance(op, Cas):
        return {"kind": "cas", "key": op.key, "expected": op.expected, "state": _json_state(op.state),
                "machine": op.machine}
    if isinstance(op, Append):
        return {"kind": "append", "key": op.key, "expected": op.expected,
                "events": [[kind, _json_state(data)] for kind, data in op.events]}
    if isinstance(op, AppendTerminal):
        return {"kind": "append_terminal", "key": op.key, "event": [op.kind, _json_state(op.data)]}
    raise TypeError(f"not a store operation: {op!r}")


@dataclass
class Recorder:
    """A store that records every call of ``inner`` (load, read_log, log_head, receipt, the writes) as history lines.

    Lines go to ``out`` (a text file, flushed at invoke and at return, so a
    killed process leaves every line it wrote) and to ``lines``; `operations`
    decodes them. ``keys`` and ``close`` pass through. ``index`` numbers the
    next operation: a process that records through several stores, one after
    another, continues its numbering (`resume`) so that no (process, index)
    repeats.
    """

    inner: Store
    process: str
    out: IO[str] | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    index: int = 0
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = self.inner.catalog

    def operations(self) -> list[Operation]:
        last = {line["index"]: line for line in self.lines}
        return [parse_operation(line)[1] for line in last.values()]

    def _emit(self, line: dict[str, Any]) -> None:
        self.lines.append(dict(line))
        if self.out is not None:
            self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
            self.out.flush()

    async def _record(self, op: dict[str, Any], call: Any, encode: Any) -> Any:
        line: dict[str, Any] = {"process": self.process, "index": self.index, "invoke": time.monotonic_ns(),
                                "return": None, "op": op, "result": None}
        self.index += 1
        self._emit(line)
        try:
            value = await call
        except StoreError as exc:
            self._emit({**line, "return": time.monotonic_ns(), "result": {"error": exc.code}})
            raise
        self._emit({**line, "return": time.monotonic_ns(), "result": {"ok": encode(value)}})
        return value

    async def load(self, key: str) -> Record:
        def encode(r: Any) -> Any:
            return {"machine": r.machine, "version": r.version, "state": _json_state(r.state)}

        record: Record = await self._record({"kind": "load", "key": key}, self.inner.load(key), encode)
        return record

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        op = {"kind": "read_log", "key": key, "start": start, "stop": stop}
        events: list[Event] = await self._record(op, self.inner.read_log(key, start, stop),
                                                 lambda events: [[e.seq, e.terminal] for e in events])
        return events

    async def cas(self, key: str, expected: int, state: Any, *, machine: str | None = None) -> Record:
        record: Record = await self._record(_op_json(Cas(key, expected, state, machine)),
                                            self.inner.cas(key, expected, state, machine=machine),
                                            lambda r: r.version)
        return record

    async def append(self, key: str, expected: int, events: Sequence[tuple[str, Any]]) -> int:
        op = _op_json(Append(key, expected, tuple(events)))
        return int(await self._record(op, self.inner.append(key, expected, events), int))

    async def append_terminal(self, key: str, kind: str, data: Any) -> int:
        op = _op_json(AppendTerminal(key, kind, data))
        return int(await self._record(op, self.inner.append_terminal(key, kind, data), int))

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None, outcome: Any = None) -> None:
        """``inner.commit``; a ``batch`` id (and an ``outcome``) is recorded and passed on (``inner`` must take them)."""
        op: dict[str, Any] = {"kind": "commit", "ops": [_op_json(o) for o in ops]}
        if batch is None and outcome is None:
            await self._record(op, self.inner.commit(ops), lambda _: None)
            return
        if not takes_batch(self.inner):
            raise TypeError(f"{type(self.inner).__name__}.commit takes no batch id")
        op["batch"] = batch
        if outcome is None:
            await self._record(op, cast(BatchStore, self.inner).commit(ops, batch=batch), lambda _: None)
            return
        if not takes_requests(self.inner):
            raise TypeError(f"{type(self.inner).__name__}.commit records no outcome")
        op["outcome"] = outcome
        await self._record(op, cast(RequestStore, self.inner).commit(ops, batch=batch, outcome=outcome),
                           lambda _: None)

    async def receipt(self, batch: str) -> Receipt | None:
        """``inner.receipt``, recorded: null, or the outcome recorded with the id (its digest is the store's own)."""
        if not takes_requests(self.inner):
            raise TypeError(f"{type(self.inner).__name__} answers no receipts")
        found: Receipt | None = await self._record(
            {"kind": "receipt", "batch": batch}, cast(RequestStore, self.inner).receipt(batch),
            lambda r: None if r is None else {"outcome": r.outcome})
        return found

    async def log_head(self, key: str) -> tuple[int, bool]:
        if not isinstance(self.inner, HeadStore):
            raise TypeError(f"{type(self.inner).__name__} reads no log heads")
        head, ended = await self._record({"kind": "log_head", "key": key}, self.inner.log_head(key), list)
        return int(head), bool(ended)

    async def keys(self) -> list[str]:
        return await self.inner.keys()

    async def close(self) -> None:
        await self.inner.close()


def resume(path: str | Path, process: str) -> int:
    """The index after ``process``'s last operation in the history file ``path`` (0 if none): where to go on."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    indices = [line["index"] for line in map(json.loads, filter(str.strip, text.splitlines()))
               if line.get("process") == process]
    return int(max(indices, default=-1)) + 1


def pending(op: Operation) -> Operation:
    """``op`` as if its process had been killed before it returned."""
    return replace(op, returned=None, result=None)


# -- renamed names ---------------------------------------------------------------------------
# Kind, Verdict and check also name the checker's property kinds, verdicts and entry point.

_RENAMED = {"Check": "HistoryCheck", "Kind": "OpKind", "Result": "Response", "Verdict": "HistoryVerdict",
            "check": "check_history"}

if TYPE_CHECKING:
    Check = HistoryCheck
    Kind = OpKind
    Result = Response
    Verdict = HistoryVerdict
    check = check_history
else:
    __getattr__ = renamed(__name__, _RENAMED, globals())
