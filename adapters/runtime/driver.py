"""`Driver`: feeds inputs to stored machine instances, one all-or-nothing batch per input.

Theory of operation
-------------------
The driver is the loop around the pure kernel: load the record (and its log
head), decide with `kernel.step.step` or `System.settle` -- no IO while
deciding -- and publish the decision as ONE `Store.commit` batch:

* accepted: ``Cas(key, version, new_state)`` plus ``Append(key, head, events)``
  where ``events`` are ``("input", input)`` then one ``("effect", effect)`` per
  effect, plus ``AppendTerminal(key, "terminal", {"phase": ...})`` when the
  new state is terminal;
* rejected: ``Append(key, head, [("rejected", {reason, phase, input, guards})])``
  -- a rejection is returned as a value *and* recorded, never dropped; the
  state and version do not move.

Both batches name the head they were decided at, so a concurrent writer makes
them fail with `Conflict`; the driver then reloads and decides again, up to
``retries`` times with exponential backoff through the injected ``sleep``, and
re-raises the `Conflict` once it keeps losing. Retrying the whole decision
(not just the write) matters: a rejection recorded from a stale state would
be a lie.

A rejection on an instance whose log already ended with its terminal event
(the input came too late) is returned but not recorded: the store appends
nothing after the terminal event, and the terminal event already says why
every later input is refused (`Reason.TERMINAL`). An *accepted* input on an
ended log (a row declared ``from_terminal=True``) cannot be recorded either;
that raises `Conflict` at once, since retrying cannot help.

`Driver.act` does the same for a `System`: every instance that took an input
(the action's, or one routed to it in the same atomic step) gets its Cas +
Append (+ AppendTerminal); its log records ``("input", ...)`` for the action's
own input, ``("routed", ...)`` for a routed one, each followed by its effects.
Which input reached which instance is read off the microsteps `System.settle`
returns, so the driver never re-drives the step.
Instances that did not move get an *empty* ``Append`` at the head they were
read at: system guards read every instance, so the batch must fail if any of
them moved since (write skew). A `Blocked` action is recorded as
``("blocked", {...})`` on the acting instance's log.

Exactly once under cancellation, Busy and a lost reply: when the store is a `BatchStore`
every batch is committed with a batch id derived from the key, the expected
version and head, and the input (all in the ops: `batch_id`), salted with a
random value drawn for that one decision -- two requests that make the same
decision at the same head (two drivers, or two tasks sharing one driver) are
two requests, and the second must lose its race (`Conflict`), not be told
that the first one's batch was its own.
`Busy` (nothing written) re-submits the same batch after a backoff, up to
``retries`` times. A caller cancelled during a commit (a timeout) cannot know
whether it landed, so the driver remembers that batch; when the same input
(and ``choice``) is fed to that key again, or the same action acted, it
re-submits the batch by id first: if it had landed the store says so and the
original result is returned, nothing applied twice; if it conflicts it never
landed and is decided afresh. A commit whose reply was lost (`UnknownOutcome`:
a PostgreSQL connection that died after ``COMMIT`` was sent) is settled the
same way, at once: the same batch is re-submitted by id (after `Busy` or a
reconnection, up to ``retries`` times) until the store says it had applied,
applies it, or conflicts; only if it stays unknown is `UnknownOutcome` raised,
and the batch remembered as for a cancellation. Only the driver that was
cancelled remembers; a store wrapper without ``batch`` gets plain,
at-least-once commits.

Exactly once end to end: request ids
------------------------------------
A caller that retries after a crash -- its own, or one of the driver's process
-- is a new driver, which remembers nothing. So ``feed(key, input,
request="order-41/pay/7")`` (and ``act(..., request=...)``) takes an id the
caller makes up once per request and sends again with every retry. The batch
id is derived from the key and the request id alone (`request_batch`), so
every process derives the same one; the batch is committed with an
*outcome* recorded beside it (`RequestStore`): what was asked (a fingerprint
of the input and choice, or of the action), how many attempts it took, and the
records (state, version, log head) it was decided from. Before deciding, the
driver asks the store for that id's `Receipt`: when it is recorded, the
driver decides the request again *from the recorded records* -- `step` is
pure, so that is the original decision, effects and all -- checks that it
gives the recorded operations, and returns it marked ``replayed``, applying
nothing, however the record has moved since. Two processes deciding one
request at once are told apart by the store (`AlreadyApplied`: the id was
taken by the other's decision, which is then returned). A request id that
comes back with another input for the same key is `RequestReused`. Ids are
kept ``keep_batches`` (a week by default) on the SQL backends; a retry older
than that is decided afresh.

Event kinds written: ``created``, ``input``, ``routed``, ``effect``,
``rejected``, ``blocked``, ``terminal``.

Inputs from outside are bounded by the catalog's `store.Limits`: text over
``max_input_bytes``, JSON nested past ``max_depth``, a string that is not valid
Unicode, anything but an object with a ``"type"`` -- and a fed value whose JSON
breaks the same bounds -- is `BadInput`, before anything is read or written. A
rejected (or blocked) input whose JSON is over ``digest_above`` bytes is logged
as ``{"type": ..., "sha256": ..., "bytes": ...}`` rather than in full, so
refused traffic cannot grow a log by more than a small, fixed amount each.

>>> import asyncio
>>> from statewright.adapters.runtime.memory import MemoryStore
>>> from statewright.adapters.runtime.store import Catalog
>>> from statewright.machines.input import INPUT, Queue, Stage, authorize_seed
>>> async def demo():
...     driver = Driver(MemoryStore(Catalog({"input": INPUT}, {"input": authorize_seed})))
...     await driver.create("in1", "input")
...     await driver.feed("in1", Queue())
...     bad = await driver.feed_json("in1", '{"type": "Apply", "run_id": "r1"}')
...     fed = await driver.feed_json("in1", '{"type": "Stage", "run_id": "r1"}')
...     log = await driver.store.read_log("in1")
...     return bad.rejection.reason.value, fed.record.state.phase.name, fed.record.version, [e.kind for e in log]
>>> asyncio.run(demo())
('no_transition', 'STAGED', 3, ['created', 'input', 'effect', 'rejected', 'input', 'effect'])
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, cast, overload

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from statewright.adapters.runtime.serialize import event_json, json_problem, untagged, value_json
from statewright.adapters.runtime.store import (
    AlreadyApplied,
    Append,
    AppendTerminal,
    BadInput,
    BatchStore,
    Busy,
    Cas,
    Catalog,
    Conflict,
    HeadStore,
    InvalidState,
    Io,
    Limits,
    Op,
    Receipt,
    Record,
    RequestReused,
    RequestStore,
    Store,
    StoreError,
    UnknownOutcome,
    batch_digest,
    batch_id,
    canonical_json,
    check_name,
    prepare_batch,
    keyed,
    takes_batch,
    takes_requests,
)
from statewright.kernel.authority import Authority
from statewright.kernel.boundary import row
from statewright.kernel.machine import Machine
from statewright.kernel.step import UNSET, Rejected
from statewright.kernel.system import Action, Blocked, Emitted, System, SystemState

__all__ = [
    "Acted", "ActedAccepted", "ActedBlocked", "BadInput", "Driver", "Fed", "FedAccepted", "FedRejected",
    "RequestReused", "UnknownOutcome", "request_batch",
]

Sleep = Callable[[float], Awaitable[Any]]
_MISSING: Any = object()  # an argument not given (None is an input like any other)


@dataclasses.dataclass(frozen=True, slots=True)
class _Unsure:
    """A batch whose commit was cancelled, or whose reply was lost: it may or may not have landed."""

    request: tuple[Any, ...]  # what the caller asked for: ("feed", input, choice, request id) or ("act", ...)
    ops: tuple[Op, ...]
    batch: str  # the id it was committed under, which its re-submission must reuse
    outcome: Any  # what was recorded with it (request ids), which its re-submission must record too
    result: Result


@dataclasses.dataclass(frozen=True, slots=True)
class _Base:
    """One record a decision was made from, with its log head: what a request's outcome records."""

    record: Record
    head: int
    ended: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Ask:
    """A request id a caller supplied, and how to decide its request again from recorded records."""

    request: str  # the caller's id
    key: str  # the key it is scoped to (the acting instance's, for an action)
    batch: str  # `request_batch(key, request)`: the batch id every process derives
    asked: str  # a fingerprint of what was asked: another input under the same id is RequestReused
    what: str  # what was asked, in a few words, for messages
    decide: Callable[[Sequence[_Base], int], tuple[Result, list[Op] | None]]


def request_batch(key: str, request: str) -> str:
    """The batch id of request ``request`` on ``key``: the same in every process, so any retry finds it.

    >>> request_batch("order-41", "pay/7") == request_batch("order-41", "pay/7") != request_batch("order-42", "pay/7")
    True
    """
    return hashlib.sha256(f"request\x00{key}\x00{request}".encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Fed:
    """What one input did: the record after it, its effects, or the rejection; ``attempts`` counts tries.

    `Driver.feed` returns one of its two forms, `FedAccepted` or `FedRejected`,
    whose ``accepted`` is a literal: testing it tells a type checker which form
    it holds, so ``fed.rejection.message`` type-checks where ``fed.accepted`` is
    false, as does ``fed.rejection`` tested against None.
    """

    accepted: bool
    record: Record
    effects: tuple[Any, ...]
    rejection: Rejected | None
    attempts: int
    replayed: bool = dataclasses.field(default=False, kw_only=True)
    """True when a request id found its request already decided: this is the recorded outcome, nothing was applied."""


@dataclasses.dataclass(frozen=True, slots=True)
class FedAccepted(Fed):
    """The input was accepted and committed: ``record`` is the new state and version; no ``rejection``."""

    accepted: Literal[True] = dataclasses.field(default=True, init=False)
    rejection: None = dataclasses.field(default=None, init=False)


@dataclasses.dataclass(frozen=True, slots=True)
class FedRejected(Fed):
    """The input was refused: ``rejection`` says why; ``record`` is unchanged and there are no effects."""

    accepted: Literal[False] = dataclasses.field(default=False, init=False)
    effects: tuple[()] = dataclasses.field(default=(), init=False)
    rejection: Rejected


@dataclasses.dataclass(frozen=True, slots=True)
class Acted:
    """What one system action did: each instance's record after it (by instance name) and the system view.

    `Driver.act` returns one of its two forms, `ActedAccepted` or
    `ActedBlocked`; testing ``acted.accepted`` narrows it as for `Fed`, so
    ``acted.blocked.why`` type-checks where it is false.
    """

    accepted: bool
    records: Mapping[str, Record]
    state: SystemState
    effects: tuple[Emitted, ...]
    blocked: Blocked | None
    attempts: int
    replayed: bool = dataclasses.field(default=False, kw_only=True)
    """As `Fed.replayed`: the recorded outcome of a request id decided before; nothing was applied."""


@dataclasses.dataclass(frozen=True, slots=True)
class ActedAccepted(Acted):
    """The action was taken and committed over every record it touched; nothing ``blocked`` it."""

    accepted: Literal[True] = dataclasses.field(default=True, init=False)
    blocked: None = dataclasses.field(default=None, init=False)


@dataclasses.dataclass(frozen=True, slots=True)
class ActedBlocked(Acted):
    """The action was refused: ``blocked`` says where and why; the records are unchanged, no effects."""

    accepted: Literal[False] = dataclasses.field(default=False, init=False)
    effects: tuple[()] = dataclasses.field(default=(), init=False)
    blocked: Blocked


Result = FedAccepted | FedRejected | ActedAccepted | ActedBlocked
"""What `Driver.feed` or `Driver.act` returns."""


class Driver:
    """Drives stored instances through the kernel; see the module doc for the batches it commits."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog | None = None,
        *,
        retries: int = 5,
        backoff: float = 0.005,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.store = store
        self.catalog = catalog if catalog is not None else store.catalog
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        # (head, ended) per key: logs are append-only, so only newer events need reading
        self._heads: dict[str, tuple[int, bool]] = {}
        self._adapters: dict[type, TypeAdapter[Any]] = {}
        self._once = takes_batch(store)
        self._requests = takes_requests(store)
        self._by_index = isinstance(store, HeadStore)  # log heads by index, not by reading the log
        self._unsure: dict[str, list[_Unsure]] = {}  # by the acting key

    # -- creating ---------------------------------------------------------------------

    async def create(self, key: str, machine: str, state: Any = None) -> Record:
        """Write a new instance (version 1) and its ``created`` event; `Conflict` if ``key`` exists."""
        m = self.catalog.machine(machine)
        state = m.initial if state is None else state
        ops = self._creation(key, machine, m, state)
        await self._retrying(ops, self._batch_id(ops))
        self._heads[key] = (1, False) if not m.is_terminal(state) else (2, True)
        return Record(key, machine, state, 1)

    async def create_all(self, system: System[Any], keys: Mapping[str, str]) -> dict[str, Record]:
        """Write every instance of ``system`` at its initial state in one batch (all or none)."""
        self._check_keys(system, keys)
        ops: list[Op] = []
        for name, m, state in zip(system.names, system.machines, system.initial):
            ops += self._creation(keys[name], m.name, self.catalog.machine(m.name), state)
        await self._retrying(ops, self._batch_id(ops))
        out = {}
        for name, m, state in zip(system.names, system.machines, system.initial):
            self._heads[keys[name]] = (1, False) if not m.is_terminal(state) else (2, True)
            out[name] = Record(keys[name], m.name, state, 1)
        return out

    @staticmethod
    def _creation(key: str, name: str, m: Machine[Any], state: Any) -> list[Op]:
        created = _recordable(lambda: value_json(state), key, f"a {name} state")
        ops: list[Op] = [
            Cas(key, 0, state, machine=name),
            Append(key, 0, (("created", {"machine": name, "state": created}),)),
        ]
        if m.is_terminal(state):
            ops.append(_terminal(key, m, state))
        return ops

    # -- one machine ------------------------------------------------------------------

    @overload
    async def feed(self, key: str, input: Any, *, choice: Any = UNSET,
                   request: str | None = None) -> FedAccepted | FedRejected: ...

    @overload
    async def feed(self, key: str, *, event: Any, choice: Any = UNSET,
                   request: str | None = None) -> FedAccepted | FedRejected: ...

    async def feed(self, key: str, input: Any = _MISSING, *, choice: Any = UNSET, event: Any = _MISSING,
                   request: str | None = None) -> FedAccepted | FedRejected:
        """Step ``key``'s instance with ``input`` and commit the result (or record the rejection).

        ``choice`` picks the alternative of a choosing row (see `kernel.step.step`);
        without it such a row takes its first alternative. ``request`` is the
        caller's id for this request (see the module doc): a retry with the same
        id -- from this driver, another, or another process -- returns the
        original outcome (``replayed=True``) and applies nothing; the same id
        with another input is `RequestReused`. ``event=`` is the old name of
        ``input`` (an event is what a log records): it works for one release,
        with a `DeprecationWarning`.
        """
        input = _input_or_event(input, event)
        self._admit(key, input)
        ask = None
        if request is not None:
            asked = ["feed", event_json(input), None if choice is UNSET else _choice_json(key, choice)]

            def decide(base: Sequence[_Base], attempt: int) -> tuple[Result, list[Op] | None]:
                (b,) = base
                return self._decide(key, b, input, choice, attempt)

            ask = self._ask(key, request, asked, type(input).__name__, decide)
        wanted = ("feed", input, choice, request)
        settled = await self._settle(key, wanted)
        if settled is None and ask is not None:
            settled = await self._replayed(ask)
        if settled is not None:
            return cast(FedAccepted | FedRejected, settled)
        attempt = 0
        while True:
            attempt += 1
            # the head is read before the record: every committed step moves the
            # head, so a record newer than this head makes our Append conflict
            # and we decide again instead of recording a stale decision
            head, ended = await self._head(key)
            base = _Base(await self.store.load(key), head, ended)
            fed, ops = self._decide(key, base, input, choice, attempt)
            if ops is None:
                return fed
            done = await self._commit(ops, attempt, key, wanted, fed, ask, [base])
            if done is not None:
                return cast(FedAccepted | FedRejected, done)

    def _decide(self, key: str, base: _Base, input: Any, choice: Any,
                attempt: int) -> tuple[FedAccepted | FedRejected, list[Op] | None]:
        """What ``input`` does to ``base``'s record, and the batch recording it (None: nothing to record).

        Pure: the same base gives the same answer, which is what lets a request
        id's outcome be decided again from its recorded base.
        """
        record, head, ended = base.record, base.head, base.ended
        m = self.catalog.machine(record.machine)
        staged = Authority(m, record.state, record.version).stage(input, choice=choice)
        if isinstance(staged, Rejected):
            rejected = FedRejected(record, staged, attempt)
            if ended:
                return rejected, None
            return rejected, [Append(key, head, (("rejected", _rejected_json(staged, self.catalog.limits)),))]
        if ended:
            raise _ended(key, input)
        result, version = staged.result, staged.base_version  # published by the store's CAS at that version
        ops = self._accepted(key, record.machine, m, version, head, result.state,
                             [("input", input, result.effects, result.transition)])
        return FedAccepted(Record(key, record.machine, result.state, version + 1), result.effects, attempt), ops

    async def feed_json(self, key: str, text: str | bytes, *, request: str | None = None) -> FedAccepted | FedRejected:
        """Feed ``{"type": "Stage", ...fields}`` from outside; `BadInput` (nothing written) if it is not one.

        The fields may also be nested as ``{"type": ..., "fields": {...}}``, the
        form `adapters.runtime.serialize.event_json` writes when a field is named
        ``type`` or ``instance``. Text over the catalog's ``max_input_bytes`` is
        refused before it is parsed. ``request`` is as for `feed`.
        """
        limits = self.catalog.limits
        size = _size(text, limits.max_input_bytes)
        if size is None:
            raise BadInput(f"{key!r}: an input is valid UTF-8 text; this is not", key=key)
        if size > limits.max_input_bytes:
            raise BadInput(f"{key!r}: the input is {size} bytes, over the limit of {limits.max_input_bytes}", key=key)
        try:
            data = json.loads(text)
        except RecursionError:
            raise BadInput(f"{key!r}: the input is nested deeper than {limits.max_depth} levels", key=key) from None
        except ValueError as exc:
            raise BadInput(f"{key!r}: not JSON ({exc})", key=key) from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            shown = repr(text[:200]) + ("..." if len(text) > 200 else "")
            raise BadInput(f'{key!r}: an input is a JSON object with a "type" string, got {shown}', key=key)
        record = await self.store.load(key)
        return await self.feed(key, self.parse(record.machine, data, key=key), request=request)

    def parse(self, machine: str, data: Mapping[str, Any], *, key: str | None = None) -> Any:
        """Build an input of ``machine`` from JSON data; `BadInput` on an unknown type or bad fields.

        Data nested past the catalog's ``max_depth``, or holding a string that
        is not valid Unicode, is refused before it is looked at.
        """
        m = self.catalog.machine(machine)
        label = repr(key) if key is not None else machine
        if not isinstance(data, Mapping):
            raise BadInput(f"{label}: an input is a JSON object, got {type(data).__name__}", key=key)
        problem = json_problem(dict(data), self.catalog.limits.max_depth, floats=True)
        if problem is not None:
            raise BadInput(f"{label}: not an input: {problem}", key=key)
        fields = {k: v for k, v in data.items() if k != "type"}
        name = data.get("type")
        by_name = {t.__name__: t for t in m.input_types}
        kind = by_name.get(name) if isinstance(name, str) else None
        if kind is None:
            raise BadInput(f"{label}: {name!r} is not an input of {machine}; known: {', '.join(by_name)}",
                           key=key)
        names = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else set()
        fields = untagged(kind, fields)
        unknown = set(fields) - names
        if unknown:
            raise BadInput(f"{label}: {name} has no field(s) {', '.join(sorted(unknown))}", key=key)
        adapter = self._adapters.get(kind)
        if adapter is None:
            adapter = self._adapters[kind] = TypeAdapter(kind)
        try:
            return adapter.validate_python(fields)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors())
            raise BadInput(f"{label}: bad {name}: {problems}", key=key) from None

    def _admit(self, key: str, input: Any) -> None:
        """`BadInput` unless ``input``'s JSON is storable and within ``max_input_bytes`` (the log records it)."""
        limits = self.catalog.limits
        try:
            canonical_json(event_json(input), limits=limits, max_bytes=limits.max_input_bytes)
        except InvalidState as exc:
            raise BadInput(f"{key!r}: {type(input).__name__} is not an input a store can record: {exc}",
                           key=key) from None
        except (RecursionError, TypeError, ValueError, PydanticSerializationError) as exc:
            raise BadInput(f"{key!r}: {type(input).__name__} is not JSON data: {type(exc).__name__}",
                           key=key) from None

    # -- a system of instances --------------------------------------------------------

    async def act(self, system: System[Any], keys: Mapping[str, str], action: Action, *,
                  request: str | None = None) -> ActedAccepted | ActedBlocked:
        """Apply one atomic system action (routed inputs included) as one batch over every record it touches.

        ``keys`` maps each instance name of ``system`` to its store key.
        ``request`` is as for `feed`, scoped to the acting instance's key.
        """
        self._check_keys(system, keys)
        position = system.position.get(action.instance)
        if position is None:
            raise KeyError(f"system {system.name!r} has no instance {action.instance!r}")
        acting = keys[action.instance]
        self._admit(acting, action.input)
        ask = None
        if request is not None:
            asked = ["act", system.name, sorted(keys.items()), action.instance, event_json(action.input)]

            def decide(base: Sequence[_Base], attempt: int) -> tuple[Result, list[Op] | None]:
                return self._decide_action(system, keys, action, position, base, attempt)

            ask = self._ask(acting, request, asked, f"{action.instance}: {type(action.input).__name__}", decide)
        wanted = ("act", system.name, tuple(sorted(keys.items())), action, request)
        settled = await self._settle(acting, wanted)
        if settled is None and ask is not None:
            settled = await self._replayed(ask)
        if settled is not None:
            return cast(ActedAccepted | ActedBlocked, settled)
        attempt = 0
        while True:
            attempt += 1
            heads = [await self._head(keys[n]) for n in system.names]  # before the records, as in feed
            base = [_Base(await self.store.load(keys[n]), *heads[j]) for j, n in enumerate(system.names)]
            acted, ops = self._decide_action(system, keys, action, position, base, attempt)
            if ops is None:
                return acted
            done = await self._commit(ops, attempt, acting, wanted, acted, ask, base)
            if done is not None:
                return cast(ActedAccepted | ActedBlocked, done)

    def _decide_action(self, system: System[Any], keys: Mapping[str, str], action: Action, position: int,
                       base: Sequence[_Base], attempt: int) -> tuple[ActedAccepted | ActedBlocked, list[Op] | None]:
        """What ``action`` does to the records of ``base`` (one per instance), and the batch recording it.

        Pure, as `_decide` is for one machine.
        """
        records = [b.record for b in base]
        for name, m, r in zip(system.names, system.machines, records):
            if self.catalog.machine(r.machine).name != m.name:
                raise StoreError(f"{r.key!r} holds a {r.machine}, but {system.name}.{name} is a {m.name}", key=r.key)
        view = system.make([r.state for r in records])
        out = system.settle(view, action)
        ops: list[Op] = []
        acted: ActedAccepted | ActedBlocked
        if isinstance(out, Blocked):
            acted = ActedBlocked(dict(zip(system.names, records)), view, out, attempt)
            if base[position].ended:
                return acted, None
            blocked = _blocked_json(action, out, self.catalog.limits)
            ops.append(Append(keys[action.instance], base[position].head, (("blocked", blocked),)))
            moved: set[int] = {position}
        else:
            steps: dict[int, list[tuple[str, Any, tuple[Any, ...], int]]] = {}
            for micro in out.microsteps:
                steps.setdefault(micro.position, []).append(
                    ("routed" if micro.routed else "input", micro.input, micro.effects, micro.rule))
            moved = set(out.moved)
            after = list(records)
            for j in sorted(moved):
                r, b = records[j], base[j]
                if b.ended:
                    raise _ended(r.key, steps[j][0][1])
                ops += self._accepted(r.key, r.machine, system.machines[j], r.version, b.head, out.after[j], steps[j])
                after[j] = Record(r.key, r.machine, out.after[j], r.version + 1)
            acted = ActedAccepted(dict(zip(system.names, after)), system.make(out.after), out.emitted, attempt)
        for j, b in enumerate(base):
            if j not in moved and not b.ended:
                ops.append(Append(keys[system.names[j]], b.head, ()))  # read check: fails if it moved
        return acted, ops

    # -- plumbing ---------------------------------------------------------------------

    def _accepted(self, key: str, machine: str, m: Machine[Any], version: int, head: int, state: Any,
                  steps: Sequence[tuple[str, Any, tuple[Any, ...], int]]) -> list[Op]:
        """The batch of an accepted step; each step is (kind, input, its effects, the index of the row that fired)."""
        events: list[tuple[str, Any]] = []
        for kind, taken, effects, rule in steps:  # an input, as "input" or "routed", then its effects
            events.append((kind, event_json(taken)))
            for e in effects:
                what = f"effect {type(e).__name__} of {row(rule, m.labels[rule])}"
                events.append(("effect", _recordable(lambda: event_json(e), key, what)))
        # the Cas names the machine it writes, so the store validates the state before its transaction
        ops: list[Op] = [Cas(key, version, state, machine), Append(key, head, tuple(events))]
        if m.is_terminal(state):
            ops.append(_terminal(key, m, state))
        return ops

    async def _commit(self, ops: Sequence[Op], attempt: int, key: str, wanted: tuple[Any, ...], result: Result,
                      ask: _Ask | None = None, base: Sequence[_Base] = ()) -> Result | None:
        """Commit ``ops``; the result to return, None after a lost race that may be retried.

        The `Conflict` is raised once retries are spent. A cancellation, or an
        outcome left unknown, leaves the batch's fate open: it is remembered (by
        ``key`` and ``wanted``) so the caller's retry re-submits it by id instead
        of deciding, and perhaps applying, the input again. With a request id
        the batch goes under the request's id with its outcome, and an id taken
        by another decision of the same request answers with that decision.
        """
        batch = self._batch_id(ops) if ask is None else ask.batch
        outcome = None if ask is None else self._outcome(ask, base, attempt)
        try:
            await self._retrying(ops, batch, outcome)
        except Conflict:
            if attempt > self.retries:
                raise
            await self._sleep(self.backoff * 2 ** (attempt - 1))
            return None
        except AlreadyApplied as taken:
            if ask is None:
                raise
            return self._replay(ask, taken.receipt)
        except (asyncio.CancelledError, UnknownOutcome):
            if self._once:
                self._unsure.setdefault(key, []).append(_Unsure(wanted, tuple(ops), batch, outcome, result))
            raise
        return result

    async def _settle(self, key: str, wanted: tuple[Any, ...]) -> Result | None:
        """Re-submit the batch of an earlier, cancelled or unsettled call of the same ``wanted``; its result if it held."""
        unsure = self._unsure.get(key, [])
        found = next((u for u in unsure if u.request == wanted), None)
        if found is None:
            return None
        result: Result | None = dataclasses.replace(found.result, attempts=1)
        try:
            await self._retrying(found.ops, found.batch, found.outcome)
        except Conflict:
            result = None  # it never landed and is stale now: decide afresh
        except AlreadyApplied:
            result = None  # another decision of its request landed: the request id's receipt answers
        # reached only when the re-submission finished: a cancellation keeps it unsure
        left = [u for u in self._unsure.get(key, []) if u.request != wanted]
        if left:
            self._unsure[key] = left
        else:
            self._unsure.pop(key, None)
        return result

    async def _retrying(self, ops: Sequence[Op], batch: str, outcome: Any = None) -> None:
        """One batch, by id where the store takes one: re-submitted after `Busy` or a lost reply, never decided twice.

        After an `UnknownOutcome` the same batch is re-submitted (the store says
        it had applied, applies it, or conflicts: then it never did); while that
        is unsettled, a failure to reach the store is raised as `UnknownOutcome`.
        Any failure or cancellation forgets the cached heads of its keys, which
        are then re-read: a cached ``ended`` must not outlive a lost race.
        """
        tries = 0
        unknown: UnknownOutcome | None = None
        while True:
            tries += 1
            try:
                if outcome is not None:
                    await cast(RequestStore, self.store).commit(ops, batch=batch, outcome=outcome)
                elif self._once:
                    await cast(BatchStore, self.store).commit(ops, batch=batch)
                else:
                    await self.store.commit(ops)
                break
            except (Busy, Io, UnknownOutcome) as exc:
                self._forget(ops)
                if isinstance(exc, UnknownOutcome):
                    if not self._once:
                        raise  # no id to settle it by
                    unknown = exc
                elif isinstance(exc, Io) and unknown is None:
                    raise  # nothing was written, and the store could not reconnect
                if tries > self.retries:
                    if unknown is not None and exc is not unknown:
                        raise UnknownOutcome(f"{unknown} -- and re-submitting it failed too: {exc}",
                                             key=unknown.key) from exc
                    raise
            except BaseException:
                self._forget(ops)
                raise
            await self._sleep(self.backoff * 2 ** (tries - 1))
        for op in keyed(ops):
            head, ended = self._heads.get(op.key, (0, False))
            if isinstance(op, Append):
                self._heads[op.key] = (op.expected + len(op.events), False)
            elif isinstance(op, AppendTerminal):
                self._heads[op.key] = (head + 1, True)

    # -- request ids ------------------------------------------------------------------

    def _ask(self, key: str, request: str, asked: Any, what: str,
             decide: Callable[[Sequence[_Base], int], tuple[Result, list[Op] | None]]) -> _Ask:
        """A caller's request id, checked, with the batch id it names and a fingerprint of what was asked."""
        if not self._requests:
            raise TypeError(f"{type(self.store).__name__} takes no request ids: it is not a RequestStore "
                            "(it must record an outcome with a batch id and answer receipt())")
        if not isinstance(request, str) or not request:
            raise BadInput(f"{key!r}: a request id is a non-empty str, got {request!r}", key=key)
        try:
            check_name(request, "a request id", limits=self.catalog.limits, key=key)
        except InvalidState as exc:
            raise BadInput(str(exc), key=key) from None
        # what was asked is already within the limits, part by part; its wrapping adds a few levels
        wrapped = dataclasses.replace(self.catalog.limits, max_depth=self.catalog.limits.max_depth + 4)
        fingerprint = hashlib.sha256(canonical_json(asked, limits=wrapped, max_bytes=2**62).encode()).hexdigest()
        return _Ask(request, key, request_batch(key, request), fingerprint, what, decide)

    def _outcome(self, ask: _Ask, base: Sequence[_Base], attempt: int) -> dict[str, Any]:
        """What is recorded with a request's batch: what was asked, and the records it was decided from."""
        limits = self.catalog.limits
        return {
            "request": ask.request, "asked": ask.asked, "what": ask.what, "attempts": attempt,
            "base": [[b.record.key, b.record.machine, b.record.version, b.head, b.ended,
                      canonical_json(b.record.state, limits=limits)] for b in base],
        }

    async def _replayed(self, ask: _Ask) -> Result | None:
        """The recorded outcome of ``ask``'s request when the store has its batch id, else None."""
        receipt = await cast(RequestStore, self.store).receipt(ask.batch)
        return None if receipt is None else self._replay(ask, receipt)

    def _replay(self, ask: _Ask, receipt: Receipt) -> Result:
        """Decide ``ask``'s request again from the records its receipt names: the original outcome, ``replayed``.

        `RequestReused` when the receipt is of another input; a `StoreError` when
        deciding again does not give the operations that were committed (the
        machine changed since, or decides differently from the same state).
        """
        key, outcome = ask.key, receipt.outcome
        fields = ("request", "asked", "what", "attempts", "base")
        if not (isinstance(outcome, dict) and all(f in outcome for f in fields) and isinstance(outcome["base"], list)
                and type(outcome["attempts"]) is int):
            raise StoreError(f"{key!r}: request {ask.request!r}'s batch is recorded without a request's outcome",
                             key=key)
        if outcome["asked"] != ask.asked:
            raise RequestReused(f"{key!r}: request id {ask.request!r} was used for {outcome['what']}, and now comes "
                                f"with {ask.what}: give each request its own id", key=key)
        try:
            base = [_Base(Record(k, machine, self.catalog.load(machine, state, key=k), version), head, ended)
                    for k, machine, version, head, ended, state in outcome["base"]]
        except (TypeError, ValueError):
            raise StoreError(f"{key!r}: request {ask.request!r}'s recorded records are garbled", key=key) from None
        result, ops = ask.decide(base, outcome["attempts"])
        if ops is None or (receipt.digest is not None and receipt.digest != batch_digest(
                ops, prepare_batch(self.catalog, ops, ask.batch), limits=self.catalog.limits)):
            raise StoreError(f"{key!r}: request {ask.request!r} is recorded, but deciding it again from the records "
                             "it was decided from gives other operations (the machine changed since, or it decides "
                             "differently from one state)", key=key)
        return dataclasses.replace(result, replayed=True)

    def _batch_id(self, ops: Sequence[Op]) -> str:
        """`batch_id` of ``ops`` salted for this one decision: its re-submissions reuse it, nobody else has it."""
        plain = batch_id(ops, limits=self.catalog.limits)
        return hashlib.sha256(f"{secrets.token_hex(16)}:{plain}".encode()).hexdigest()

    def _forget(self, ops: Sequence[Op]) -> None:
        for op in keyed(ops):
            self._heads.pop(op.key, None)

    async def _head(self, key: str) -> tuple[int, bool]:
        """``key``'s log head and whether it has ended: by index where the store can, never by reading the log.

        An ended log stays ended, so that is remembered; otherwise a `HeadStore`
        is asked (one indexed read), and another store's log is read from the
        last head this driver knew.
        """
        head, ended = self._heads.get(key, (0, False))
        if ended:
            return head, ended
        if self._by_index:
            head, ended = await cast(HeadStore, self.store).log_head(key)
        else:
            events = await self.store.read_log(key, head + 1)
            if events:
                head, ended = events[-1].seq, events[-1].terminal
        self._heads[key] = (head, ended)
        return head, ended

    @staticmethod
    def _check_keys(system: System[Any], keys: Mapping[str, str]) -> None:
        missing = [n for n in system.names if n not in keys]
        extra = [n for n in keys if n not in system.position]
        if missing or extra:
            raise ValueError(f"system {system.name!r}: keys must name every instance; "
                             f"missing {missing}, unknown {extra}")
        if len(set(keys.values())) != len(keys):
            raise ValueError(f"system {system.name!r}: two instances share a store key")


def _recordable(encode: Callable[[], Any], key: str, what: str) -> Any:
    """``encode()``: a value's JSON for the log; `InvalidState` naming ``what`` when it is not JSON data.

    The store refuses floats, deep nesting and the like in the same batch;
    this names what user code produced a value that cannot even be encoded
    (an ``object()``, nesting past Python's recursion limit) before any of the
    batch is written.
    """
    try:
        return encode()
    except (TypeError, ValueError, RecursionError, PydanticSerializationError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise InvalidState(f"{key!r}: {what} is not JSON data a store can record: {type(exc).__name__}: "
                           f"{detail[:200]}", key=key) from None


def _choice_json(key: str, choice: Any) -> Any:
    """``choice`` as JSON data, for a request's fingerprint; `BadInput` when it is not data."""
    try:
        return value_json(choice)
    except (TypeError, ValueError, RecursionError, PydanticSerializationError) as exc:
        raise BadInput(f"{key!r}: a choice fed with a request id must be JSON data ({type(exc).__name__})",
                       key=key) from None


def _terminal(key: str, m: Machine[Any], state: Any) -> AppendTerminal:
    return AppendTerminal(key, "terminal", {"phase": value_json(m.phase_of(state))})


def _rejected_json(r: Rejected, limits: Limits) -> dict[str, Any]:
    out = {"reason": r.reason.value, "phase": value_json(r.phase), "input": _logged(r.input, limits),
           "guards": list(r.guards)}
    if r.detail:
        out["detail"] = r.detail
    return out


def _blocked_json(action: Action, b: Blocked, limits: Limits) -> dict[str, Any]:
    """The action's input, where it was refused (the instance, and the routed input) and why."""
    why: dict[str, Any]
    if isinstance(b.why, str):
        why = {"reason": "system_guard", "guards": [b.why]}
    else:
        why = {"reason": b.why.reason.value, "phase": value_json(b.why.phase), "guards": list(b.why.guards)}
    return {"input": _logged(action.input, limits), "at": b.instance, "routed": b.routed,
            "refused": _logged(b.input, limits), **why}


def _logged(value: Any, limits: Limits) -> Any:
    """A refused input as its log records it: in full up to ``digest_above`` bytes, else type, SHA-256 and size.

    >>> from statewright.machines.input import Stage
    >>> _logged(Stage("r" * 2000), Limits())["bytes"], _logged(Stage("r1"), Limits())
    (2028, {'type': 'Stage', 'run_id': 'r1'})
    """
    body = event_json(value)
    text = canonical_json(body, limits=limits, max_bytes=2**62).encode()
    if len(text) <= limits.digest_above:
        return body
    return {"type": type(value).__name__, "sha256": hashlib.sha256(text).hexdigest(), "bytes": len(text)}


def _size(text: str | bytes, limit: int) -> int | None:
    """UTF-8 size of ``text`` (encoded only when it could matter); None when a str is not valid Unicode."""
    if isinstance(text, bytes):
        return len(text)
    if len(text) > limit:
        return len(text)  # at least this many bytes: over the limit without encoding 20 MB
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def _ended(key: str, input: Any) -> Conflict:
    return Conflict(f"{key!r}'s log has ended with its terminal event; {type(input).__name__} was accepted "
                    "from a terminal phase (from_terminal=True) and cannot be recorded", key=key)


def _input_or_event(input: Any, event: Any) -> Any:
    """`Driver.feed`'s ``input``, or what the deprecated ``event=`` gave in its place (with a `DeprecationWarning`)."""
    if event is _MISSING:
        if input is _MISSING:
            raise TypeError("Driver.feed() missing 1 required argument: 'input'")
        return input
    if input is not _MISSING:
        raise TypeError("Driver.feed() got 'input' and its old name 'event' together")
    warnings.warn("Driver.feed(event=...) is renamed Driver.feed(input=...); the old name goes in the next release",
                  DeprecationWarning, stacklevel=3)
    return event
