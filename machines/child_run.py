"""Child runs: a parent run spawns a child and awaits it through fact-keyed IO.

Theory of operation
-------------------
The parent's state attempt calls the IO namespace ``machine.child_run.spawn``
with a fact key of its own, then ``machine.child_run.await`` with a second
key (the source's ``spawn_child_run_v1``/``await_child_run_v1``). A call whose
fact is not recorded yet does the work (starts the child; reads its
completion) and records the fact; the linkage domain event --
``ChildRunSpawned``, ``ChildRunCompleted`` -- is emitted with it. A call
whose fact is already recorded (the parent resumed after a crash, or is
replayed) reuses the fact and emits nothing::

    parent RUNNING --Spawn--> (step 1) --Await [child COMPLETED]--> (step 2) --Finish--> COMPLETED
    parent RUNNING --Crash--> CRASHED --Resume--> RUNNING (step 0; the facts survive)
    child IDLE --StartChild (routed from the parent's spawn)--> RUNNING --Complete--> COMPLETED

Where we differ from the source: the fact and its linkage event are
committed in one batch (the `Driver` commits state and effects together),
so a crash cannot fall between them. The source records the fact through the
IO provider and appends the event afterwards, and suppresses the event
whenever the fact existed before the call: a crash between the two loses
the event for good (at most once, not exactly once). specs/child_runs.py
checks both orderings.

>>> from statewright.kernel.step import step
>>> s = step(PARENT, PARENT.initial, Spawn()).state
>>> s.step, s.spawn_fact, s.spawned_events
(1, True, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.machine import Machine, Transition

__all__ = [
    "CHILD", "PARENT", "PARENT_TRANSITIONS", "Await", "ChildPhase", "ChildRunCompleted", "ChildRunSpawned",
    "Complete", "Crash", "Finish", "ParentPhase", "ParentRun", "Resume", "Spawn", "SpawnRequested", "StartChild",
]


class ParentPhase(Enum):
    RUNNING = "running"
    CRASHED = "crashed"
    COMPLETED = "completed"


class ChildPhase(Enum):
    IDLE = "idle"
    RUNNING = "running"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class ParentRun:
    """The parent's progress in its attempt, the facts recorded, and the linkage events in its log."""

    phase: ParentPhase = ParentPhase.RUNNING
    step: int = 0              # 0: before the spawn call, 1: spawned, 2: awaited (lost on a crash)
    spawn_fact: bool = False
    await_fact: bool = False
    spawned_events: int = 0
    completed_events: int = 0
    owed: bool = False         # the source's ordering only: a fact recorded, its event not yet appended
    crashes: int = 0
    max_crashes: int = 1


@dataclass(frozen=True, slots=True)
class Spawn:
    """The parent calls ``machine.child_run.spawn`` with its fact key."""


@dataclass(frozen=True, slots=True)
class Await:
    """The parent calls ``machine.child_run.await`` with its fact key (answers once the child completed)."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The parent's state completes, and the run with it."""


@dataclass(frozen=True, slots=True)
class Crash:
    """The parent's executor dies."""


@dataclass(frozen=True, slots=True)
class Resume:
    """The parent resumes from its log: the attempt starts again; recorded facts survive."""


@dataclass(frozen=True, slots=True)
class StartChild:
    """Routed to the child: start it."""


@dataclass(frozen=True, slots=True)
class Complete:
    """The child run completes."""


@dataclass(frozen=True, slots=True)
class SpawnRequested:
    """The spawn call's work: routed to the child as `StartChild`."""


@dataclass(frozen=True, slots=True)
class ChildRunSpawned:
    """The linkage domain event ``child_run_spawned``."""


@dataclass(frozen=True, slots=True)
class ChildRunCompleted:
    """The linkage domain event ``child_run_completed``."""


def at(n: int) -> Callable[[ParentRun, Any], bool]:
    def guard(s: ParentRun, _i: Any) -> bool:
        return s.step == n
    guard.__name__ = f"at_step_{n}"
    return guard


def spawn_new(s: ParentRun, _i: Spawn) -> bool:
    return not s.spawn_fact


def spawn_recorded(s: ParentRun, _i: Spawn) -> bool:
    return s.spawn_fact


def await_new(s: ParentRun, _i: Await) -> bool:
    return not s.await_fact


def await_recorded(s: ParentRun, _i: Await) -> bool:
    return s.await_fact


def crashes_left(s: ParentRun, _i: Crash) -> bool:
    return s.crashes < s.max_crashes


R = ParentPhase.RUNNING
PARENT_TRANSITIONS: tuple[Transition[ParentRun, Any], ...] = (
    # spawn_new alone: without the spawn fact the parent is at step 0 (every row past it records or needs it)
    Transition(R, Spawn, R, guard=spawn_new,
               update=lambda s, i: replace(s, step=1, spawn_fact=True, spawned_events=s.spawned_events + 1),
               emit=(SpawnRequested(), ChildRunSpawned())),
    Transition(R, Spawn, R, guard=[at(0), spawn_recorded], update=lambda s, i: replace(s, step=1)),
    Transition(R, Await, R, guard=[at(1), await_new],
               update=lambda s, i: replace(s, step=2, await_fact=True, completed_events=s.completed_events + 1),
               emit=(ChildRunCompleted(),)),
    Transition(R, Await, R, guard=[at(1), await_recorded], update=lambda s, i: replace(s, step=2)),
    Transition(R, Finish, ParentPhase.COMPLETED, guard=at(2)),
    Transition(R, Crash, ParentPhase.CRASHED, guard=crashes_left, update=lambda s, i: replace(s, crashes=s.crashes + 1)),
    Transition(ParentPhase.CRASHED, Resume, R, update=lambda s, i: replace(s, step=0, owed=False)),
)
"""The parent's one transition table (the spawn and await of one state attempt)."""


def parent_machine(crashes: int = 1, transitions: tuple[Transition[ParentRun, Any], ...] = PARENT_TRANSITIONS
                   ) -> Machine[ParentRun]:
    """The parent run, allowed ``crashes`` crashes; ``transitions`` lets a spec check the source's ordering."""
    return Machine(
        "child_run_parent",
        initial=ParentRun(max_crashes=crashes),
        terminal={ParentPhase.COMPLETED},
        phase=lambda s: s.phase,
        transitions=transitions,
        doc="A parent run that spawns and awaits a child through fact-keyed IO, and may crash and resume.",
    )


PARENT = parent_machine()

CHILD: Machine[ChildPhase] = Machine(
    "child_run_child",
    initial=ChildPhase.IDLE,
    terminal={ChildPhase.COMPLETED},
    transitions=[
        Transition(ChildPhase.IDLE, StartChild, ChildPhase.RUNNING),
        Transition(ChildPhase.RUNNING, Complete, ChildPhase.COMPLETED),
    ],
    doc="A child run: started once by its parent's spawn, then completes.",
)
