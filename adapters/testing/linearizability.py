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
state) as in Porcupine, iterative and bounded by a step budget (past it the
verdict is ``unknown``). It is P-compositional: the history is split into
independent parts by key, and a ``commit`` touching several keys joins them
(union-find), so each part is the union of the keys batches connect and its
model state is the tuple of those keys' records. Operations naming one batch
id (commits, receipts) share a part too, since the ids taken are part of the
model state.

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
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
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
    "check_history",
    "load_history",
    "parse_operation",
    "resume",
]

DEFAULT_MAX_STEPS = 2_000_000
IGNORED = frozenset({"busy", "invalid_state"})


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
    if call.kind is OpKind.READ_LOG:
        _, _, _, head, terminal = model[keys.index(call.key)]
        end = head + 1 if call.stop is None else min(call.stop, head + 1)
        return model, Response.ok([[seq, terminal and seq == head] for seq in range(max(call.start, 1), end)])
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
        seen = (got["machine"], json.dumps(got["state"], sort_keys=True, separators=(",", ":")), got["version"])
        if any(mine not in (UNKNOWN, EXISTS, theirs) for mine, theirs in zip((machine, state, version), seen)):
            return None
        return (*seen, head, terminal)
    if result.value is None:
        return None
    if call.kind is OpKind.LOG_HEAD:
        last, ended = json.loads(result.value)
        if head not in (UNKNOWN, last) or terminal not in (UNKNOWN, ended) or (last and machine is None):
            return None
        return (EXISTS if machine == UNKNOWN and last else machine, state, version, last, ended)
    events = json.loads(result.value)
    if call.stop is None and events:
        last, ended = events[-1]
        if head not in (UNKNOWN, last) or terminal not in (UNKNOWN, ended):
            return None
        return (EXISTS if machine == UNKNOWN else machine, state, version, last, ended)
    return rec  # what an empty or bounded read pins down is left unlearned


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


@dataclass(eq=False, slots=True)
class _Entry:
    op: int
    is_call: bool
    prev: _Entry | None = None
    next: _Entry | None = None
    match: _Entry | None = None  # a call's return entry


def _entries(ops: Sequence[Operation]) -> _Entry:
    """The calls and returns in time order (a call before a return at the same instant), linked; the head sentinel."""
    marks: list[tuple[float, int, int]] = []
    for i, op in enumerate(ops):
        marks.append((op.invoke, 0, i))
        marks.append((float("inf") if op.returned is None else op.returned, 1, i))
    marks.sort()
    head = _Entry(-1, False)
    last = head
    calls: dict[int, _Entry] = {}
    for _, kind, i in marks:
        e = _Entry(i, kind == 0, prev=last)
        last.next = e
        last = e
        if kind == 0:
            calls[i] = e
        else:
            calls[i].match = e
    return head


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


class _Search:
    """Wing & Gong's search over one part of a history, memoised on (linearized set, model state)."""

    def __init__(self, ops: Sequence[Operation], max_steps: int, *, loose: bool = False) -> None:
        self.ops = ops
        self.keys = tuple(sorted({k for op in ops for k in op.call.keys}))
        self.max_steps = max_steps
        self.loose = loose
        self.steps = 0
        named = Counter(op.call.batch for op in ops if op.call.batch is not None)
        self.again = frozenset(b for b, n in named.items() if n > 1)  # ids a later commit may ask about

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

    def run(self) -> HistoryVerdict:
        head = _entries(self.ops)
        model: Model = (tuple(LOOSE if self.loose else ABSENT for _ in self.keys), frozenset())
        linearized = 0
        seen: set[tuple[int, Model]] = set()
        stack: list[tuple[_Entry, Model]] = []
        entry = head.next
        while head.next is not None:
            self.steps += 1
            if self.steps > self.max_steps:
                return HistoryVerdict.UNKNOWN
            assert entry is not None
            if entry.is_call:
                after = self._step(model, self.ops[entry.op])
                if after is not None:
                    bits = linearized | 1 << entry.op
                    if (bits, after) not in seen:
                        seen.add((bits, after))
                        stack.append((entry, model))
                        model, linearized = after, bits
                        _lift(entry)
                        entry = head.next
                        continue
                entry = entry.next
            else:  # an operation returned before any order could place it: undo the last choice
                if not stack:
                    return HistoryVerdict.NOT_LINEARIZABLE
                entry, model = stack.pop()
                linearized &= ~(1 << entry.op)
                _unlift(entry)
                entry = entry.next
        return HistoryVerdict.LINEARIZABLE


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
    every remaining operation on its keys (each began before it returned), or --
    judged from an unknown record, which absorbs it -- before them all (each
    returned after it began). This is judged against what stays at the time, so
    a later cut can still leave a gap where a dropped write was: the result is a
    1-minimal failing sub-history, a place to start reading, not a proof of cause.
    """
    if op.result is not None and (op.call.kind in READS or op.result.error is not None):
        return True
    keys = set(op.call.keys)
    others = [r for r in rest if keys.intersection(r.call.keys)]
    end = float("inf") if op.returned is None else op.returned
    if all(r.invoke < end for r in others):
        return True
    return loose and all(r.returned is None or r.returned > op.invoke for r in others)


def _shrink(ops: list[Operation], max_steps: int) -> list[Operation]:
    """Drop chunks, then single operations, while the rest stays not linearizable (1-minimal).

    Judged from an unknown record when the whole part already fails that way (so the
    writes that built the record need not stay), else from the empty store; only
    `_removable` operations are dropped, so the failure is never one of the cut's making.
    """
    loose = _Search(ops, max_steps, loose=True).run() is HistoryVerdict.NOT_LINEARIZABLE
    chunk = max(len(ops) // 2, 1)
    while True:
        i, before = 0, len(ops)
        while i < len(ops) and len(ops) > 1:
            candidate = ops[:i] + ops[i + chunk:]
            if (
                candidate
                and all(_removable(op, candidate, loose) for op in ops[i:i + chunk])
                and _Search(candidate, max_steps, loose=loose).run() is HistoryVerdict.NOT_LINEARIZABLE
            ):
                ops = candidate
            else:
                i += chunk
        if chunk == 1 and len(ops) == before:
            return ops  # a whole pass dropped nothing (a drop can make an earlier one removable: pass again)
        chunk = max(chunk // 2, 1)


@dataclass(frozen=True, slots=True)
class HistoryCheck:
    """The verdict on a history, its size, and (when not linearizable) a minimal failing sub-history."""

    verdict: HistoryVerdict
    operations: int
    processes: int
    keys: int
    steps: int
    seconds: float
    counterexample: tuple[Operation, ...] = ()

    def summary(self) -> str:
        size = f"{self.operations} operations, {self.processes} processes, {self.keys} keys"
        if self.verdict is HistoryVerdict.UNKNOWN:
            return f"unknown: step budget spent after {self.steps:,} steps ({size})"
        return f"{self.verdict.value}: {size}"

    def report(self) -> str:
        """The summary, plus the counterexample one operation a line, times in µs from its first invoke."""
        lines = [self.summary()]
        if self.counterexample:
            lines.append(f"minimal non-linearizable sub-history ({len(self.counterexample)} operations):")
            t0 = min(op.invoke for op in self.counterexample)
            lines.extend("  " + render(op, t0) for op in self.counterexample)
        return "\n".join(lines)


def check_history(history: Iterable[Operation], *, max_steps: int = DEFAULT_MAX_STEPS) -> HistoryCheck:
    """Is ``history`` linearizable against the store's per-key sequential specification?

    >>> w = Call(OpKind.CAS, writes=(Write(OpKind.CAS, "k", 0, "{}", "m"),))
    >>> check_history([Operation("a", 1, 4, w, Response.ok(1)), Operation("b", 2, 3, w, Response.ok(1))]).verdict
    <HistoryVerdict.NOT_LINEARIZABLE: 'not linearizable'>
    """
    started = time.perf_counter()
    ops = sorted(
        (op for op in history if op.result is None or op.result.error not in IGNORED),
        key=lambda op: (op.invoke, op.process),
    )
    size = (len(ops), len({op.process for op in ops}), len({k for op in ops for k in op.call.keys}))
    steps = 0
    verdict = HistoryVerdict.LINEARIZABLE
    for part in _parts(ops):
        search = _Search(part, max_steps - steps)
        outcome = search.run()
        steps += search.steps
        if outcome is HistoryVerdict.NOT_LINEARIZABLE:
            small = _shrink(part, max_steps)
            return HistoryCheck(outcome, *size, steps=steps, seconds=time.perf_counter() - started,
                                counterexample=tuple(small))
        if outcome is HistoryVerdict.UNKNOWN:
            verdict = outcome
    return HistoryCheck(verdict, *size, steps=steps, seconds=time.perf_counter() - started)


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
        raise ValueError(f"{name!r} must be an integer, got {value!r}")
    return value


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string, got {value!r}")
    return value


def _parse_write(obj: Any) -> Write:
    if not isinstance(obj, dict):
        raise ValueError(f"a write must be an object, got {obj!r}")
    kind = OpKind(obj.get("kind"))
    key = _str(obj, "key")
    if kind is OpKind.CAS:
        machine = obj.get("machine")
        if machine is not None and not isinstance(machine, str):
            raise ValueError(f"'machine' must be a string or null, got {machine!r}")
        state = json.dumps(obj.get("state"), sort_keys=True, separators=(",", ":"))
        return Write(kind, key, _int(obj, "expected"), state, machine)
    if kind is OpKind.APPEND:
        events = obj.get("events")
        if not isinstance(events, list):
            raise ValueError(f"'events' must be a list, got {events!r}")
        return Write(kind, key, _int(obj, "expected"), events=len(events))
    if kind is OpKind.APPEND_TERMINAL:
        return Write(kind, key)
    raise ValueError(f"{kind.value!r} is not a write")


def _parse_call(obj: Any) -> Call:
    if not isinstance(obj, dict):
        raise ValueError(f"'op' must be an object, got {obj!r}")
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
            raise ValueError(f"a commit's 'ops' must be a non-empty list, got {ops!r}")
        batch = obj.get("batch")
        if batch is not None and not isinstance(batch, str):
            raise ValueError(f"'batch' must be a string or null, got {batch!r}")
        outcome = obj.get("outcome")
        if outcome is not None and batch is None:
            raise ValueError("an 'outcome' is recorded with a batch id, and this commit has none")
        digest = hashlib.sha256(_canonical(ops).encode()).hexdigest()
        return Call(kind, writes=tuple(_parse_write(o) for o in ops), batch=batch,
                    outcome=None if outcome is None else _canonical(outcome), digest=digest)
    return Call(kind, writes=(_parse_write(obj),))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _parse_result(obj: Any) -> Response | None:
    if obj is None:
        return None
    if isinstance(obj, dict) and set(obj) == {"ok"}:
        return Response.ok(obj["ok"])
    if isinstance(obj, dict) and set(obj) == {"error"} and isinstance(obj["error"], str):
        return Response(error=obj["error"])
    raise ValueError(f"'result' must be {{\"ok\": value}}, {{\"error\": code}} or null, got {obj!r}")


def parse_operation(obj: Any) -> tuple[int, Operation]:
    """One decoded JSON line: its index within its process, and the operation. `ValueError` if malformed."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    process = obj.get("process")
    if not isinstance(process, (str, int)) or isinstance(process, bool):
        raise ValueError(f"'process' must be a string or an integer, got {process!r}")
    returned = _int(obj, "return", optional=True)
    result = _parse_result(obj.get("result"))
    if (returned is None) != (result is None):
        raise ValueError("'return' and 'result' must both be null (pending) or both be set")
    invoke = _int(obj, "invoke")
    if returned is not None and returned < invoke:
        raise ValueError(f"returned at {returned}, before its invoke at {invoke}")
    return _int(obj, "index"), Operation(str(process), invoke, returned, _parse_call(obj.get("op")), result)


def load_history(paths: Iterable[str | Path]) -> list[Operation]:
    """Merge history files; of the lines with one (process, index) the last wins. `HistoryError` names a bad line."""
    merged: dict[tuple[str, int], Operation] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise HistoryError(f"{path}: cannot read: {exc}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                index, op = parse_operation(json.loads(line))
            except ValueError as exc:  # json.JSONDecodeError and OpKind(...) included
                raise HistoryError(f"{path}:{number}: {exc}") from None
            merged[op.process, index] = op
    return list(merged.values())


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
