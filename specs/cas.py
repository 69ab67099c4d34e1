"""CAS: workers racing read-modify-write on one store record.

Every store adapter of this project follows one pattern: load a record with
its version, compute, then write it back. This module models that pattern with
``workers`` WORKER instances incrementing the value of one STORE record, and
checks it twice, with the same two machines routed differently:

``cas_atomic``
    The write is a compare-and-swap: a worker's `Written` effect is routed to
    the store as ``Cas(expected_version, new_value)``, which the store's
    ``version_matches`` guard refuses once another write has moved the
    version. A refused routed input rejects the whole step, so a stale
    ``Write`` simply cannot happen. The worker notices the failed CAS through
    its own ``Retry`` row (back to IDLE, to re-read), gated by the system
    guard ``cas_would_fail`` -- the exact negation of the store's guard, so in
    COMPUTED exactly one of ``Write`` and ``Retry``/``GiveUp`` is enabled.
    After ``retries`` conflicts it gives up (FAILED) instead. With the
    defaults (2 workers, 2 retries) the checker proves ``no_lost_update``:
    29 distinct states, depth 10, and a conflict witnessed in 7 states.
    (With two workers a worker conflicts at most once, so ``GiveUp`` only
    fires with ``workers=3, retries=1`` or ``retries=0``.)

``cas_non_atomic``
    Read, then an unconditional write: `Written` is routed as ``Put(new)``,
    which the store always takes. The checker finds the lost update it is
    meant to find (``expect=["no_lost_update"]``): two reads of version 0,
    then two writes of 1, a 7-state trace; 22 distinct states, depth 7.

Reading is the worker's ``Read(version, value)`` input gated by the system
guard ``reads_current``: only the store's current version and value can be
read, so the domain lists every pair and the guard picks the one that is true.
Two invariants state what the system guards protect: ``reads_what_was_written``
(a worker only ever holds a version the store reached, with a value no greater
than it, as every record the store held has) and, for ``cas_atomic``,
``conflicts_are_real`` (a worker's conflicts never outnumber the writes: each
one needs another worker's write after its read).

>>> from statewright.kernel.checker import check
>>> check(cas_atomic()).result("no_lost_update").status.name
'HOLDS'
>>> check(cas_non_atomic()).result("no_lost_update").status.name
'EXPECTED'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from statewright.kernel.checker import Property, Spec, always, always_step, sometimes
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.renamed import renamed
from statewright.kernel.system import Action, Route, System, SystemGuard
from statewright.specs.registry import REGISTRY

__all__ = [
    "STORE",
    "WORKER",
    "Cas",
    "Compute",
    "GiveUp",
    "Put",
    "Read",
    "Record",
    "Retry",
    "StorePhase",
    "Worker",
    "WorkerPhase",
    "Write",
    "Written",
    "cas_atomic",
    "cas_non_atomic",
    "cas_system",
]


class StorePhase(Enum):
    """The record has no lifecycle of its own: one phase, all data."""

    OPEN = "open"


class WorkerPhase(Enum):
    IDLE = "idle"
    READ = "read"
    COMPUTED = "computed"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Record:
    """The store record: a value and the version every successful write bumps."""

    phase: StorePhase = StorePhase.OPEN
    value: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class Worker:
    """A worker remembers what it read (``version``, ``value``), what it computed, its conflicts."""

    phase: WorkerPhase = WorkerPhase.IDLE
    version: int = 0
    value: int = 0
    result: int = 0
    retries: int = 0


# store inputs (only ever routed)
@dataclass(frozen=True, slots=True)
class Cas:
    """Write ``value`` if the record is still at ``expected`` (a compare-and-swap)."""

    expected: int
    value: int


@dataclass(frozen=True, slots=True)
class Put:
    """Write ``value`` whatever the version (a blind write)."""

    value: int


# worker inputs
@dataclass(frozen=True, slots=True)
class Read:
    """Load the record; the system guard ``reads_current`` admits only its current contents."""

    version: int
    value: int


@dataclass(frozen=True, slots=True)
class Compute:
    pass


@dataclass(frozen=True, slots=True)
class Write:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    """The worker's CAS was refused (the version moved, a conflict): go back and re-read."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The worker's CAS was refused and it has no retries left."""


# worker effect
@dataclass(frozen=True, slots=True)
class Written:
    """The worker writes ``value``, computed from what it read at ``expected``."""

    expected: int
    value: int


def version_matches(s: Record, i: Cas) -> bool:
    return s.version == i.expected


def _write(s: Record, value: int) -> Record:
    return replace(s, value=value, version=s.version + 1)


O = StorePhase.OPEN
STORE: Machine[Record] = Machine(
    "cas_store",
    initial=Record(),
    transitions=[
        Transition(O, Cas, O, guard=version_matches, update=lambda s, i: _write(s, i.value)),
        Transition(O, Put, O, update=lambda s, i: _write(s, i.value)),
    ],
    inputs=(Cas, Put),
    doc="One record with a value and a version; Cas checks the version, Put does not.",
)


def retries_left(limit: int) -> Guard[Worker]:
    return Guard("retries_left", lambda s, _: s.retries < limit)


def no_retries_left(limit: int) -> Guard[Worker]:
    return Guard("no_retries_left", lambda s, _: s.retries >= limit)


def worker_machine(retries: int) -> Machine[Worker]:
    """A worker that increments the record once, re-reading after at most ``retries`` failed CASes."""
    W = WorkerPhase
    return Machine(
        "cas_worker",
        initial=Worker(),
        terminal={W.DONE, W.FAILED},
        transitions=[
            # a re-read forgets the stale result, so equal situations are one state
            Transition(W.IDLE, Read, W.READ,
                       update=lambda s, i: replace(s, version=i.version, value=i.value, result=0)),
            Transition(W.READ, Compute, W.COMPUTED, update=lambda s, _: replace(s, result=s.value + 1)),
            Transition(W.COMPUTED, Write, W.DONE, emit=lambda s, _: (Written(s.version, s.result),)),
            Transition(W.COMPUTED, Retry, W.IDLE, guard=retries_left(retries),
                       update=lambda s, _: replace(s, retries=s.retries + 1)),
            Transition(W.COMPUTED, GiveUp, W.FAILED, guard=no_retries_left(retries)),
        ],
        inputs=(Read, Compute, Write, Retry, GiveUp),
        effects=(Written,),
        doc="Read the record, compute value + 1, write it back (CAS or blind, as routed).",
    )


WORKER = worker_machine(2)


def _reads_current(view: Any, _me: int, i: Read) -> bool:
    return bool(view.store.version == i.version and view.store.value == i.value)


def _cas_would_fail(view: Any, me: int, _i: Any) -> bool:
    return bool(view.store.version != view[me].version)


def _as_cas(effect: Written, _source: str) -> tuple[str, Cas]:
    return "store", Cas(effect.expected, effect.value)


def _as_put(effect: Written, _source: str) -> tuple[str, Put]:
    return "store", Put(effect.value)


def cas_system(workers: int, retries: int, *, atomic: bool) -> System[Any]:
    """The store plus ``w1..wN``; ``atomic`` routes writes as Cas, otherwise as Put."""
    names = tuple(f"w{k}" for k in range(1, workers + 1))
    worker = WORKER if retries == 2 else worker_machine(retries)
    guards = [SystemGuard("reads_current", Read, _reads_current)]
    if atomic:
        guards.append(SystemGuard("cas_would_fail", (Retry, GiveUp), _cas_would_fail))
    return System(
        "cas_atomic" if atomic else "cas_non_atomic",
        {"store": STORE, **{n: worker for n in names}},
        guards=guards,
        routes=[Route(Written, _as_cas if atomic else _as_put)],
    )


def _properties(system: System[Any], *, atomic: bool) -> list[Property]:
    first, end = system.position["store"] + 1, len(system.names)  # the workers' positions

    def done(v: Any) -> int:
        return sum(1 for w in v[first:end] if w.phase is WorkerPhase.DONE)

    def settled(v: Any) -> bool:
        return all(w.phase in (WorkerPhase.DONE, WorkerPhase.FAILED) for w in v[first:end])

    def no_lost_update(v: Any) -> bool:
        return not settled(v) or (v.store.value == done(v) and v.store.version == done(v))

    def write_bumps_version_once(before: Any, a: Action, after: Any) -> bool:
        return bool(after.store.version - before.store.version == (1 if isinstance(a.input, Write) else 0))

    def reads_what_was_written(v: Any) -> bool:
        # every write moves the version by one and the value by at most one: no record had value > version
        return all(w.version <= v.store.version and w.value <= w.version for w in v[first:end])

    def conflicts_are_real(v: Any) -> bool:
        # each conflict of a worker needs a write by another worker after its read
        return all(w.retries <= v.store.version for w in v[first:end])

    props = [
        always("no_lost_update", no_lost_update),
        always("version_counts_writes", lambda v: bool(v.store.version == done(v))),
        always_step("version_never_decreases", lambda b, _a, a: bool(a.store.version >= b.store.version)),
        always_step("write_bumps_version_once", write_bumps_version_once),
        always("reads_what_was_written", reads_what_was_written),
        sometimes("all_done", lambda v: done(v) == end - first),
    ]
    if atomic:
        props.append(always("conflicts_are_real", conflicts_are_real))
        props.append(sometimes("cas_conflict", lambda v: any(
            w.retries > 0 or w.phase is WorkerPhase.FAILED for w in v[first:end])))
    return props


def _spec(workers: int, retries: int, *, atomic: bool) -> Spec:
    system = cas_system(workers, retries, atomic=atomic)
    reads = [Read(version, value) for version in range(workers + 1) for value in range(workers + 1)]
    extra: list[Any] = [Retry(), GiveUp()] if atomic else []
    domain = [*reads, Compute(), Write(), *extra]

    def settled(v: Any) -> bool:
        return all(m.is_terminal(s) for m, s in zip(system.machines[1:], v[1:]))

    return Spec(
        system.name,
        system,
        inputs={n: domain for n in system.names if n != "store"},
        properties=_properties(system, atomic=atomic),
        expect=() if atomic else ("no_lost_update",),
        final=settled,
        symmetry=[tuple(n for n in system.names if n != "store")] if len(system.names) > 2 else (),
        doc=__doc__ or "",
    )


@REGISTRY.spec
def cas_atomic(workers: int = 2, retries: int = 2) -> Spec:
    """Workers increment one record with compare-and-swap and retries; no update is lost."""
    return _spec(workers, retries, atomic=True)


@REGISTRY.spec
def cas_non_atomic(workers: int = 2) -> Spec:
    """Workers increment one record with read-then-blind-write; the lost update is found as expected."""
    return _spec(workers, 2, atomic=False)


# -- renamed names ------------------------------------------------------------------

_RENAMED = {"Conflict": "Retry"}

if TYPE_CHECKING:
    Conflict = Retry
else:
    __getattr__ = renamed(__name__, _RENAMED, globals())
