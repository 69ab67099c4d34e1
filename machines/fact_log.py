"""A run's fact log: what an executor recorded for one run, each fact once, with child-run linkage.

Theory of operation
-------------------
Beside each run's record (`machines.run`) the executor keeps one `FactLog`:
the manifest the run was started from, its parent run (for a child run), and
every *fact* it recorded -- a key and the id of the content-addressed artifact
holding the value. Facts are what makes a run resumable and replayable: the
outcome of each attempt (``outcome/<state>/<attempt>``), the snapshots
(``snapshot/...``), each IO response with a fact key (``io/<key>``), the
recorded clock and random numbers, and the child runs spawned and awaited.

A key is recorded at most once (first writer wins): `Record` of a key already
recorded is refused (``unrecorded`` fails), so two executors that raced --
one of them a zombie whose lease ran out -- cannot change what the run saw.
The child-run linkage is recorded *with* its fact, in the same step, so the
one batch the `Driver` commits holds both: ``ChildRunSpawned`` is emitted
exactly once however often the parent resumes (`specs.child_runs` checks the
other ordering and finds it loses the event). `Seal` records the final
snapshot and closes the log::

    OPEN --Record(k)/SpawnChild(k)/ChildDone(k) [k unrecorded]--> OPEN --Seal--> SEALED

>>> from statewright.kernel.step import step
>>> s = FactLog("r1", "sha256:" + "0" * 64)
>>> s = step(FACT_LOG, s, Record("io/quote", "sha256:" + "1" * 64)).state
>>> r = step(FACT_LOG, s, SpawnChild("child/kid", "sha256:" + "2" * 64, "r1.kid"))
>>> r.effects
(FactRecorded(key='child/kid', artifact='sha256:2222222222222222222222222222222222222222222222222222222222222222'), ChildRunSpawned(child='r1.kid'))
>>> step(FACT_LOG, r.state, Record("io/quote", "sha256:" + "3" * 64)).guards
('unrecorded',)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.machine import Machine, Transition

__all__ = [
    "FACT_LOG",
    "ChildDone",
    "ChildRunCompleted",
    "ChildRunSpawned",
    "FactLog",
    "FactLogPhase",
    "FactRecorded",
    "Record",
    "Seal",
    "Sealed",
    "SpawnChild",
]


class FactLogPhase(Enum):
    OPEN = "open"
    SEALED = "sealed"


@dataclass(frozen=True, slots=True)
class FactLog:
    """One run's facts: ``(key, artifact id)`` pairs in the order they were recorded."""

    run_id: str
    manifest: str
    parent: str | None = None
    facts: tuple[tuple[str, str], ...] = ()
    phase: FactLogPhase = FactLogPhase.OPEN

    def get(self, key: str) -> str | None:
        """The artifact id recorded under ``key``, or None."""
        for k, artifact in self.facts:
            if k == key:
                return artifact
        return None

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.facts)


@dataclass(frozen=True, slots=True)
class Record:
    """Record ``artifact`` under ``key``."""

    key: str
    artifact: str


@dataclass(frozen=True, slots=True)
class SpawnChild:
    """Record that this run spawned run ``child`` (the fact ``key`` holds its id), emitting the linkage once."""

    key: str
    artifact: str
    child: str


@dataclass(frozen=True, slots=True)
class ChildDone:
    """Record that child run ``child`` ended with ``outcome`` (the fact ``key`` holds the result)."""

    key: str
    artifact: str
    child: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Seal:
    """Record the final snapshot under ``key`` and close the log."""

    key: str
    artifact: str


@dataclass(frozen=True, slots=True)
class FactRecorded:
    key: str
    artifact: str


@dataclass(frozen=True, slots=True)
class ChildRunSpawned:
    child: str


@dataclass(frozen=True, slots=True)
class ChildRunCompleted:
    child: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Sealed:
    final: str


def unrecorded(log: FactLog, event: Record | SpawnChild | ChildDone | Seal) -> bool:
    """No fact is recorded under the key yet: first writer wins."""
    return log.get(event.key) is None


def _add(log: FactLog, event: Record | SpawnChild | ChildDone | Seal) -> FactLog:
    return replace(log, facts=(*log.facts, (event.key, event.artifact)))


O, S = FactLogPhase.OPEN, FactLogPhase.SEALED

FACT_LOG_TRANSITIONS: tuple[Transition, ...] = (
    Transition(O, Record, O, guard=unrecorded, update=_add,
               emit=lambda s, i: (FactRecorded(i.key, i.artifact),)),
    Transition(O, SpawnChild, O, guard=unrecorded, update=_add,
               emit=lambda s, i: (FactRecorded(i.key, i.artifact), ChildRunSpawned(i.child))),
    Transition(O, ChildDone, O, guard=unrecorded, update=_add,
               emit=lambda s, i: (FactRecorded(i.key, i.artifact), ChildRunCompleted(i.child, i.outcome))),
    Transition(O, Seal, S, guard=unrecorded, update=_add,
               emit=lambda s, i: (FactRecorded(i.key, i.artifact), Sealed(i.artifact))),
)

FACT_LOG: Machine[FactLog] = Machine(
    "fact_log",
    initial=FactLog("run", "sha256:" + "0" * 64),
    terminal=frozenset({S}),
    inputs=(Record, SpawnChild, ChildDone, Seal),
    effects=(FactRecorded, ChildRunSpawned, ChildRunCompleted, Sealed),
    transitions=FACT_LOG_TRANSITIONS,
    doc="A run's facts, each key recorded once (first writer wins), child-run linkage with its fact.",
)
"""The machine of every run's fact log (its ``initial`` is a placeholder: the executor creates each log's state)."""
