"""Child runs as a parent/child `System` (machines/child_run.py): linkage events exactly once.

The parent spawns the child (routed atomically: the spawn's work starts the
child in the same step), awaits it, and finishes; it may crash once and
resume from its log, its recorded facts intact. Properties:

* ``linkage_at_most_once`` -- ``ChildRunSpawned`` and ``ChildRunCompleted``
  are each in the parent's log at most once, however often it resumes;
* ``linkage_once_at_end`` -- a COMPLETED parent has each exactly once;
* ``event_only_with_its_fact`` -- a linkage event is in the log only if the
  fact of its call is recorded;
* a child is started once: a second start would be a routed input the
  RUNNING child refuses, which blocks the step (the system's rule), and
  ``child_started_by_its_fact`` ties the child's start to the spawn fact;
* ``awaits_a_completed_child`` -- the await fact is recorded only once the
  child COMPLETED (the system guard ``child_completed``);
* ``parent_phase_matches_data`` -- CRASHED only after a crash, within the
  budget; past step 0 only with the spawn fact, at step 2 only with the await
  fact, COMPLETED only from step 2;
* ``calls_in_order`` -- Spawn takes the parent's attempt from step 0 to 1,
  Await from 1 to 2, Finish completes it from 2; Crash is the only way into
  CRASHED and Resume the only way out (at step 0);
* witnesses: a resume after the spawn, a completed parent.

``terminates`` holds under weak fairness of each instance's rows (crashes
are bounded). Figures: 18 distinct states, 22 generated, depth 7; with
``linkage_atomic=false``, 30 states.

``linkage_atomic=false`` is the source's ordering (the fact recorded by
the IO call, the event appended after it, and suppressed whenever the fact
existed before the call): a crash between them loses ``ChildRunSpawned``
for good, and ``linkage_once_at_end`` fails on the 8-state trace Spawn,
Crash, Resume, Spawn, Complete (child), Await, Finish.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes
from statewright.kernel.machine import Transition
from statewright.kernel.system import Route, System, SystemGuard
from statewright.machines.child_run import (
    CHILD, PARENT_TRANSITIONS, Await, ChildPhase, ChildRunSpawned, Complete, Crash, Finish, ParentPhase,
    ParentRun, Resume, Spawn, SpawnRequested, StartChild, at, parent_machine, spawn_new,
)
from statewright.specs.registry import REGISTRY

__all__ = ["child_runs", "source_ordering"]


@dataclass(frozen=True, slots=True)
class Emit:
    """The source's ordering: the parent appends the linkage event it owes."""


def _owes(s: ParentRun, _i: Emit) -> bool:
    return s.owed


def _paid(s: ParentRun, _i: Await) -> bool:
    """The spawn call returned: its event was appended (the source emits it before returning)."""
    return not s.owed


def source_ordering(table: tuple[Transition[ParentRun, Any], ...]) -> tuple[Transition[ParentRun, Any], ...]:
    """The spawn records its fact and starts the child, and the event is appended by a later step."""
    out: list[Transition[ParentRun, Any]] = []
    for t in table:
        if t.input is Spawn and t.emit and ChildRunSpawned() in t.emit:  # type: ignore[operator]
            out.append(replace(t, update=lambda s, i: replace(s, step=1, spawn_fact=True, owed=True),
                               emit=(SpawnRequested(),)))
            out.append(Transition(ParentPhase.RUNNING, Emit, ParentPhase.RUNNING, guard=_owes,
                                  update=lambda s, i: replace(s, owed=False, spawned_events=s.spawned_events + 1),
                                  emit=(ChildRunSpawned(),)))
        elif t.input is Await:
            out.append(replace(t, guard=[*t.guard, _paid]))  # type: ignore[misc]
        else:
            out.append(t)
    return tuple(out)


def _awaited_child_done(view: Any, _me: int, _i: Any) -> bool:
    return bool(view.child is ChildPhase.COMPLETED)


@REGISTRY.spec
def child_runs(crashes: int = 1, linkage_atomic: bool = True) -> Spec:
    """A parent spawns and awaits a child through fact-keyed IO: linkage events once however often it resumes."""
    table = PARENT_TRANSITIONS if linkage_atomic else source_ordering(PARENT_TRANSITIONS)
    system: System[Any] = System(
        "child_runs",
        {"parent": parent_machine(crashes, table), "child": CHILD},
        guards=[SystemGuard("child_completed", Await, _awaited_child_done)],
        routes=[Route(SpawnRequested, lambda e, src: ("child", StartChild()))],
        doc="A parent run and the child it spawns and awaits.",
    )
    parent_inputs: list[Any] = [Spawn(), Await(), Finish(), Crash(), Resume()]
    if not linkage_atomic:
        parent_inputs.append(Emit())

    def at_most_once(v: Any) -> bool:
        return bool(v.parent.spawned_events <= 1 and v.parent.completed_events <= 1)

    def once_at_end(v: Any) -> bool:
        p = v.parent
        return bool(p.phase is not ParentPhase.COMPLETED or (p.spawned_events, p.completed_events) == (1, 1))

    def with_fact(v: Any) -> bool:
        p = v.parent
        return bool(p.spawned_events <= p.spawn_fact and p.completed_events <= p.await_fact)

    def awaits_a_completed_child(v: Any) -> bool:
        return bool(not v.parent.await_fact or v.child is ChildPhase.COMPLETED)

    def parent_phase_matches_data(v: Any) -> bool:
        """CRASHED only after a crash (within the budget); past step 0 only with the spawn fact, at step 2
        only with the await fact; COMPLETED only from step 2."""
        p = v.parent
        return bool((p.phase is not ParentPhase.CRASHED or p.crashes > 0) and 0 <= p.crashes <= p.max_crashes
                    and (p.step < 1 or p.spawn_fact) and (p.step < 2 or p.await_fact)
                    and (p.phase is not ParentPhase.COMPLETED or p.step == 2))

    def calls_in_order(before: Any, event: Any, after: Any) -> bool:
        """Which parent input moves what: Spawn takes step 0 to 1 and Await 1 to 2, both RUNNING; Finish
        completes the parent; Crash is the only way into CRASHED, Resume the only way out (at step 0)."""
        if not isinstance(before, ParentRun):
            return True
        moves = (before.phase, before.step, after.phase, after.step)
        run, done, crashed = ParentPhase.RUNNING, ParentPhase.COMPLETED, ParentPhase.CRASHED
        if isinstance(event, Spawn):
            return moves == (run, 0, run, 1)
        if isinstance(event, Await):
            return moves == (run, 1, run, 2)
        if isinstance(event, Finish):
            return moves == (run, 2, done, 2)
        if isinstance(event, Crash):
            return moves[0::2] == (run, crashed) and after.crashes == before.crashes + 1
        if isinstance(event, Resume):
            return moves[0::2] == (crashed, run) and after.step == 0
        return moves[0::2] == (run, run) and after.step == before.step

    def started_by_fact(v: Any) -> bool:
        return bool((v.child is not ChildPhase.IDLE) == v.parent.spawn_fact)

    return Spec(
        "child_runs",
        system,
        inputs={"parent": parent_inputs, "child": [Complete()]},
        properties=[
            always("linkage_at_most_once", at_most_once),
            always("linkage_once_at_end", once_at_end),
            always("event_only_with_its_fact", with_fact),
            always("child_started_by_its_fact", started_by_fact),
            always("awaits_a_completed_child", awaits_a_completed_child),
            always("parent_phase_matches_data", parent_phase_matches_data),
            always_step("calls_in_order", calls_in_order, each=True),
            sometimes("resumes_after_the_spawn",
                      lambda v: v.parent.crashes > 0 and v.parent.phase is ParentPhase.RUNNING and v.parent.spawn_fact),
            sometimes("parent_completes", lambda v: v.parent.phase is ParentPhase.COMPLETED),
        ],
        terminates=True,
        recoverable=True,
        expect={} if linkage_atomic else {"linkage_once_at_end": 8},
        doc=__doc__ or "",
    )
