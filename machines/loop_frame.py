"""Flow frames, node slots and loops of a flow run, committed one atomic operation at a time.

Theory of operation
-------------------
A flow store keeps three kinds of record for one run, and the engine only ever
changes them by compare-and-swap:

* the **run** (`FlowRun`): its status, which node slots of which frames are
  granted or completed, the step outputs recorded so far (keyed by loop
  iteration, 0 for the root frame), the failure ledger (one
  ``(iteration, node)`` row per failed step, append-only), the loops
  registered and completed, and its view of the loop's progress (a body frame
  requested, the body frame running, the iteration it runs);
* a **frame** (`Frame`): the root frame, or a body frame that belongs to
  exactly one loop iteration. ``ABSENT`` (not registered yet, body frames
  only) -> ``PENDING`` -> ``RUNNING`` -> ``COMPLETED``; while running it grants
  node slots (several at once: the nodes of a frame are independent), records
  completed steps, and waits on the loops its loop nodes started;
* a **loop** (`Loop`): ``ABSENT`` -> ``REGISTERED`` -> ``ITERATING`` ->
  ``COMPLETED``, with an iteration count bounded by its limit, at most one body
  frame requested or running at a time, and an iteration ledger that holds one
  ``(iteration, frame)`` row per iteration: appending a row for an iteration
  already there is a no-op, so replaying it on resume adds nothing.

The store's eight frame-aware operations each commit several records or none.
Here each is ONE action of the `System` built by `flow_system`: the driver
feeds one input to one record, and routes deliver the effects it emits to every
other record involved *in the same step*. If any record refuses its part, the
kernel rejects the whole step and nothing changes -- all of it or none of it,
by construction rather than by a backend's promise:

====================================  =====================  ================================
store operation                       action (instance)      routed, same step
====================================  =====================  ================================
CAS frame state                       StartFrame/FinishFrame  -- (one record)
                                      (frame)
grant node slot                       GrantSlot (frame)      run: NoteGrant
complete step and record its output   CompleteStep (frame)   run: NoteOutput
fail step and append its failure      FailStep (frame)       run: NoteFailure
start loop                            StartLoop (loop)       parent frame: EnterLoop;
                                                             run: NoteLoop
loop requests a body frame            RequestBody (loop)     run: NoteRequest
grant body frame start                GrantBody (loop;       new frame: Register;
                                      ledger row inside)     run: NoteBody
complete body frame                   CompleteBody (frame)   loop: CloseIteration;
                                                             run: NoteBodyDone
complete loop                         CompleteLoop (loop)    parent frame: LeaveLoop;
                                                             run: NoteLoopDone
====================================  =====================  ================================

The run's own status moves by ``cas_run_status`` (`StartRun`, `FinishRun`,
`FailRun`, `CancelRun`), one record each. Every operation but the frame-state
CAS passes through the run record, and the run only takes notes while
RUNNING, so once a run is COMPLETED, FAILED or CANCELED no frame or loop
operation can commit any more (`flow_system` gates the frame-state CAS on a
running run too).

Failure. A granted step may fail instead of completing (`FailStep`): the
frame releases its slot and marks the node failed, and the run appends a
``(iteration, node)`` row to its failure ledger (the store's
``append_failure_entry``). A frame with a failed node never completes, so
neither does its loop nor the root frame: the run can only fail or be
cancelled. `FailRun` moves it RUNNING -> FAILED, only once the ledger holds
an entry, and emits `FlowFailed` with the ledger -- the terminal flow event
the store appends at most once per run.

Choices the source leaves open, and why:

* A body frame is registered PENDING by the grant (its initial snapshot) and
  started by the frame-state CAS, like the root frame: one frame lifecycle.
* Body frames are named in advance (``b1``, ``b2``, ...: one per iteration the
  limit allows) and the loop hands iteration ``n`` the frame ``frames[n-1]``;
  a body frame therefore belongs to exactly one iteration by construction, and
  the checker confirms the records agree.
* A loop runs its body at least once before it may complete (its ``until``
  condition is checked after an iteration, and only an ITERATING loop
  completes); it completes at the latest when the limit is reached, because
  no further body frame can be requested.
* Each fact has one owner, which guards it: a frame decides about its node
  slots, the loop about its iterations and body frames. The run record
  mirrors them and refuses a note only when it is not RUNNING, so it is the
  gate that freezes a finished run; the checker proves the mirror exact
  (``specs/loop_frame.py``, ``records_agree``). A guard repeated on the run
  would be dead code that no test can tell from its absence.
* The output of a step is recorded once, under ``(iteration, node)``; the
  loop node itself records no output, its completion is the loop's.
* The source appends a failure entry by its own store call beside the frame's
  CAS; here the entry and the slot's release are one step (like a completed
  step and its output), so the ledger and the frames never disagree. The
  source does not show which statuses reach Failed; a run fails only from
  RUNNING and only with a ledger entry, so every FAILED run says why.
  A failed step is not retried: retries belong to the step's own executor
  before it reports the failure.

>>> from statewright.kernel.system import Action
>>> system = flow_system(limit=2)
>>> s = system.initial
>>> for action in (Action("run", StartRun()), Action("root", StartFrame()),
...                Action("root", GrantSlot("loop")), Action("loop", StartLoop()),
...                Action("loop", RequestBody())):
...     s = system.step(s, action).state
>>> out = system.step(s, Action("loop", GrantBody()))
>>> after = out.state
>>> after.loop.iteration, after.loop.ledger, after.b1.phase.name, after.run.body
(1, ((1, 'b1'),), 'PENDING', 'b1')
>>> print(system.step(after, Action("loop", CompleteLoop())).message)
loop: can't take CompleteLoop in ITERATING: guard body_idle failed
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition
from statewright.kernel.system import Route, System, SystemGuard

__all__ = [
    "FLOW_ROUTES",
    "FRAME",
    "FRAME_TRANSITIONS",
    "LOOP_TRANSITIONS",
    "RUN",
    "RUN_TRANSITIONS",
    "BodyCompleted",
    "BodyGranted",
    "BodyRequested",
    "CancelRun",
    "CloseIteration",
    "CompleteBody",
    "CompleteLoop",
    "CompleteStep",
    "EnterLoop",
    "FailRun",
    "FailStep",
    "FinishFrame",
    "FinishRun",
    "FlowFailed",
    "FlowRun",
    "Frame",
    "FrameKind",
    "FramePhase",
    "GrantBody",
    "GrantSlot",
    "LeaveLoop",
    "Loop",
    "LoopCompleted",
    "LoopPhase",
    "LoopStarted",
    "NoteBody",
    "NoteBodyDone",
    "NoteFailure",
    "NoteGrant",
    "NoteLoop",
    "NoteLoopDone",
    "NoteOutput",
    "NoteRequest",
    "Register",
    "Replay",
    "RequestBody",
    "RunPhase",
    "SlotGranted",
    "StartFrame",
    "StartLoop",
    "StartRun",
    "StepCompleted",
    "StepFailed",
    "body_frame",
    "flow_system",
    "ledger_add",
    "loop_machine",
    "root_frame",
]


# -- phases and records -------------------------------------------------------------


class RunPhase(Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class FramePhase(Enum):
    ABSENT = "absent"
    """Not registered in the store yet (a body frame before its iteration is granted)."""
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"


class LoopPhase(Enum):
    ABSENT = "absent"
    """Not registered yet: its loop node has not started it."""
    REGISTERED = "registered"
    ITERATING = "iterating"
    COMPLETED = "completed"


class FrameKind(Enum):
    ROOT = "root"
    BODY = "body"


Slot = tuple[str, str]
"""A node slot: ``(frame instance, node)``."""


@dataclass(frozen=True, slots=True)
class FlowRun:
    """The run record; ``outputs`` and the ``failures`` ledger hold ``(iteration, node)``, iteration 0
    for the root frame."""

    phase: RunPhase = RunPhase.PENDING
    granted: frozenset[Slot] = frozenset()
    completed: frozenset[Slot] = frozenset()
    outputs: frozenset[tuple[int, str]] = frozenset()
    failures: tuple[tuple[int, str], ...] = ()
    loops: frozenset[str] = frozenset()
    loops_done: frozenset[str] = frozenset()
    requested: bool = False
    body: str | None = None
    iteration: int = 0


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame: its step and loop nodes, the slots granted, the nodes done, the loops it waits on.

    ``iteration`` is the loop iteration a body frame belongs to (0 for the root
    frame and for a body frame not registered yet).
    """

    phase: FramePhase = FramePhase.ABSENT
    kind: FrameKind = FrameKind.BODY
    steps: tuple[str, ...] = ()
    loops: tuple[str, ...] = ()
    iteration: int = 0
    granted: frozenset[str] = frozenset()
    done: frozenset[str] = frozenset()
    looping: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Loop:
    """A loop started by ``node`` of ``parent``; iteration n runs in body frame ``frames[n-1]``."""

    phase: LoopPhase = LoopPhase.ABSENT
    parent: str = "root"
    node: str = "loop"
    frames: tuple[str, ...] = ("b1", "b2")
    iteration: int = 0
    requested: bool = False
    active: str | None = None
    closed: int = 0
    ledger: tuple[tuple[int, str], ...] = ()

    @property
    def limit(self) -> int:
        return len(self.frames)


def root_frame(steps: tuple[str, ...] = ("a",), loops: tuple[str, ...] = ("loop",)) -> Frame:
    """The root frame of a run, registered PENDING with the run."""
    return Frame(FramePhase.PENDING, FrameKind.ROOT, steps, loops)


def body_frame(steps: tuple[str, ...] = ("s",)) -> Frame:
    """A body frame slot, not registered until its iteration is granted."""
    return Frame(FramePhase.ABSENT, FrameKind.BODY, steps)


# -- inputs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRun:
    """cas_run_status PENDING -> RUNNING."""


@dataclass(frozen=True, slots=True)
class FinishRun:
    """cas_run_status RUNNING -> COMPLETED (the flow system gates it on a completed root frame)."""


@dataclass(frozen=True, slots=True)
class FailRun:
    """cas_run_status RUNNING -> FAILED, once the failure ledger holds an entry."""


@dataclass(frozen=True, slots=True)
class CancelRun:
    """cas_run_status to CANCELED."""


@dataclass(frozen=True, slots=True)
class NoteGrant:
    frame: str
    node: str


@dataclass(frozen=True, slots=True)
class NoteOutput:
    frame: str
    node: str
    iteration: int


@dataclass(frozen=True, slots=True)
class NoteFailure:
    """append_failure_entry: the step ``node`` of ``frame`` failed in ``iteration``."""

    frame: str
    node: str
    iteration: int


@dataclass(frozen=True, slots=True)
class NoteLoop:
    loop: str


@dataclass(frozen=True, slots=True)
class NoteRequest:
    loop: str
    iteration: int


@dataclass(frozen=True, slots=True)
class NoteBody:
    frame: str
    iteration: int


@dataclass(frozen=True, slots=True)
class NoteBodyDone:
    frame: str


@dataclass(frozen=True, slots=True)
class NoteLoopDone:
    loop: str
    frame: str
    node: str


@dataclass(frozen=True, slots=True)
class Register:
    """Register a body frame for ``iteration`` (PENDING)."""

    iteration: int


@dataclass(frozen=True, slots=True)
class StartFrame:
    """cas_frame_state PENDING -> RUNNING."""


@dataclass(frozen=True, slots=True)
class GrantSlot:
    node: str


@dataclass(frozen=True, slots=True)
class CompleteStep:
    node: str


@dataclass(frozen=True, slots=True)
class FailStep:
    """The granted step ``node`` failed (its executor gave up on it)."""

    node: str


@dataclass(frozen=True, slots=True)
class EnterLoop:
    node: str


@dataclass(frozen=True, slots=True)
class LeaveLoop:
    node: str


@dataclass(frozen=True, slots=True)
class FinishFrame:
    """cas_frame_state RUNNING -> COMPLETED, for the root frame."""


@dataclass(frozen=True, slots=True)
class CompleteBody:
    """Terminalise a body frame (cas_complete_body_frame)."""


@dataclass(frozen=True, slots=True)
class StartLoop:
    pass


@dataclass(frozen=True, slots=True)
class RequestBody:
    pass


@dataclass(frozen=True, slots=True)
class GrantBody:
    pass


@dataclass(frozen=True, slots=True)
class Replay:
    """Resume replays the ledger row of the running iteration; it must add nothing."""


@dataclass(frozen=True, slots=True)
class CloseIteration:
    frame: str
    iteration: int


@dataclass(frozen=True, slots=True)
class CompleteLoop:
    pass


# -- effects (each routed to the other records of the operation) ----------------------


@dataclass(frozen=True, slots=True)
class SlotGranted:
    node: str


@dataclass(frozen=True, slots=True)
class StepCompleted:
    node: str
    iteration: int


@dataclass(frozen=True, slots=True)
class StepFailed:
    node: str
    iteration: int


@dataclass(frozen=True, slots=True)
class FlowFailed:
    """The terminal flow event of a failed run, with its failure ledger (the shell's to append)."""

    failures: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class BodyCompleted:
    iteration: int


@dataclass(frozen=True, slots=True)
class LoopStarted:
    parent: str
    node: str


@dataclass(frozen=True, slots=True)
class BodyRequested:
    iteration: int


@dataclass(frozen=True, slots=True)
class BodyGranted:
    frame: str
    iteration: int


@dataclass(frozen=True, slots=True)
class LoopCompleted:
    parent: str
    node: str


# -- the run record -------------------------------------------------------------------


R = RunPhase


def has_failure(run: FlowRun, event: FailRun) -> bool:
    """The failure ledger holds an entry: a failed run always says why."""
    return bool(run.failures)


RUN_TRANSITIONS: tuple[Transition, ...] = (
    Transition(R.PENDING, StartRun, R.RUNNING),
    Transition(R.RUNNING, NoteGrant, R.RUNNING,
               update=lambda r, i: replace(r, granted=r.granted | {(i.frame, i.node)})),
    Transition(R.RUNNING, NoteOutput, R.RUNNING,
               update=lambda r, i: replace(r, granted=r.granted - {(i.frame, i.node)},
                                           completed=r.completed | {(i.frame, i.node)},
                                           outputs=r.outputs | {(i.iteration, i.node)})),
    Transition(R.RUNNING, NoteLoop, R.RUNNING,
               update=lambda r, i: replace(r, loops=r.loops | {i.loop})),
    Transition(R.RUNNING, NoteRequest, R.RUNNING,
               update=lambda r, i: replace(r, requested=True)),
    Transition(R.RUNNING, NoteBody, R.RUNNING,
               update=lambda r, i: replace(r, requested=False, body=i.frame, iteration=i.iteration)),
    Transition(R.RUNNING, NoteBodyDone, R.RUNNING,
               update=lambda r, i: replace(r, body=None)),
    Transition(R.RUNNING, NoteLoopDone, R.RUNNING,
               update=lambda r, i: replace(r, loops_done=r.loops_done | {i.loop},
                                           granted=r.granted - {(i.frame, i.node)},
                                           completed=r.completed | {(i.frame, i.node)})),
    Transition(R.RUNNING, NoteFailure, R.RUNNING,
               update=lambda r, i: replace(r, granted=r.granted - {(i.frame, i.node)},
                                           failures=(*r.failures, (i.iteration, i.node)))),
    Transition(R.RUNNING, FinishRun, R.COMPLETED),
    Transition(R.RUNNING, FailRun, R.FAILED, guard=has_failure,
               emit=lambda r, i: (FlowFailed(r.failures),)),
    Transition((R.PENDING, R.RUNNING), CancelRun, R.CANCELED),
)

RUN: Machine[FlowRun] = Machine(
    "flow_run",
    initial=FlowRun(),
    terminal={R.COMPLETED, R.FAILED, R.CANCELED},
    transitions=RUN_TRANSITIONS,
    inputs=(StartRun, NoteGrant, NoteOutput, NoteLoop, NoteRequest, NoteBody, NoteBodyDone, NoteLoopDone,
            NoteFailure, FinishRun, FailRun, CancelRun),
    effects=(FlowFailed,),
    doc="The run record of a flow run: status, node slots, step outputs and its view of the loops.",
)


# -- frames -----------------------------------------------------------------------------


def root_kind(frame: Frame, event: Any) -> bool:
    return frame.kind is FrameKind.ROOT


def node_ready(frame: Frame, event: GrantSlot) -> bool:
    """A node of this frame with no slot granted yet, not done and not failed (a failed step is not retried)."""
    n = event.node
    return ((n in frame.steps or n in frame.loops) and n not in frame.granted and n not in frame.done
            and n not in frame.failed)


def step_in_flight(frame: Frame, event: CompleteStep) -> bool:
    return event.node in frame.steps and event.node in frame.granted


def loop_slot_granted(frame: Frame, event: EnterLoop) -> bool:
    return event.node in frame.loops and event.node in frame.granted and event.node not in frame.looping


def all_done(frame: Frame, event: Any) -> bool:
    """Every node of the frame is done (so no slot is still granted)."""
    return len(frame.done) == len(frame.steps) + len(frame.loops)


F = FramePhase

FRAME_TRANSITIONS: tuple[Transition, ...] = (
    Transition(F.ABSENT, Register, F.PENDING,
               update=lambda f, i: replace(f, iteration=i.iteration)),
    Transition(F.PENDING, StartFrame, F.RUNNING),
    Transition(F.RUNNING, GrantSlot, F.RUNNING, guard=node_ready,
               update=lambda f, i: replace(f, granted=f.granted | {i.node}),
               emit=lambda f, i: (SlotGranted(i.node),)),
    Transition(F.RUNNING, CompleteStep, F.RUNNING, guard=step_in_flight,
               update=lambda f, i: replace(f, granted=f.granted - {i.node}, done=f.done | {i.node}),
               emit=lambda f, i: (StepCompleted(i.node, f.iteration),)),
    Transition(F.RUNNING, FailStep, F.RUNNING, guard=step_in_flight,
               update=lambda f, i: replace(f, granted=f.granted - {i.node}, failed=f.failed | {i.node}),
               emit=lambda f, i: (StepFailed(i.node, f.iteration),)),
    Transition(F.RUNNING, EnterLoop, F.RUNNING, guard=loop_slot_granted,
               update=lambda f, i: replace(f, looping=f.looping | {i.node})),
    Transition(F.RUNNING, LeaveLoop, F.RUNNING,
               update=lambda f, i: replace(f, looping=f.looping - {i.node}, granted=f.granted - {i.node},
                                           done=f.done | {i.node})),
    Transition(F.RUNNING, FinishFrame, F.COMPLETED, guard=[root_kind, all_done]),
    Transition(F.RUNNING, CompleteBody, F.COMPLETED, guard=all_done,
               emit=lambda f, i: (BodyCompleted(f.iteration),)),
)

FRAME: Machine[Frame] = Machine(
    "flow_frame",
    initial=body_frame(),
    terminal={F.COMPLETED},
    transitions=FRAME_TRANSITIONS,
    inputs=(Register, StartFrame, GrantSlot, CompleteStep, FailStep, EnterLoop, LeaveLoop, FinishFrame,
            CompleteBody),
    effects=(SlotGranted, StepCompleted, StepFailed, BodyCompleted),
    doc="A root or body frame of a flow run: node slots granted and completed, loops waited on.",
)


# -- the loop ---------------------------------------------------------------------------


def ledger_add(ledger: tuple[tuple[int, str], ...], iteration: int, frame: str) -> tuple[tuple[int, str], ...]:
    """Append ``(iteration, frame)`` unless a row for ``iteration`` is already there (idempotent).

    >>> ledger_add(ledger_add((), 1, "b1"), 1, "b1")
    ((1, 'b1'),)
    """
    if any(n == iteration for n, _ in ledger):
        return ledger
    return (*ledger, (iteration, frame))


def body_idle(loop: Loop, event: Any) -> bool:
    """No body frame requested or running."""
    return not loop.requested and loop.active is None


def below_limit(loop: Loop, event: RequestBody) -> bool:
    return loop.iteration < loop.limit


def requested(loop: Loop, event: GrantBody) -> bool:
    return loop.requested


def body_running(loop: Loop, event: Replay) -> bool:
    return loop.active is not None


def its_body(loop: Loop, event: CloseIteration) -> bool:
    return loop.active == event.frame and loop.iteration == event.iteration


def _grant(loop: Loop, event: GrantBody) -> Loop:
    n = loop.iteration + 1
    frame = loop.frames[n - 1]
    return replace(loop, iteration=n, requested=False, active=frame, ledger=ledger_add(loop.ledger, n, frame))


def _replay(loop: Loop, event: Replay) -> Loop:
    assert loop.active is not None  # guard body_running
    return replace(loop, ledger=ledger_add(loop.ledger, loop.iteration, loop.active))


L = LoopPhase
STARTED = (L.REGISTERED, L.ITERATING)

LOOP_TRANSITIONS: tuple[Transition, ...] = (
    Transition(L.ABSENT, StartLoop, L.REGISTERED, emit=lambda lp, i: (LoopStarted(lp.parent, lp.node),)),
    Transition(L.REGISTERED, RequestBody, L.REGISTERED, guard=body_idle,
               update=lambda lp, i: replace(lp, requested=True),
               emit=lambda lp, i: (BodyRequested(lp.iteration + 1),)),
    Transition(L.ITERATING, RequestBody, L.ITERATING, guard=[body_idle, below_limit],
               update=lambda lp, i: replace(lp, requested=True),
               emit=lambda lp, i: (BodyRequested(lp.iteration + 1),)),
    Transition(STARTED, GrantBody, L.ITERATING, guard=requested, update=_grant,
               emit=lambda lp, i: (BodyGranted(lp.frames[lp.iteration - 1], lp.iteration),)),
    Transition(L.ITERATING, Replay, L.ITERATING, guard=body_running, update=_replay),
    Transition(L.ITERATING, CloseIteration, L.ITERATING, guard=its_body,
               update=lambda lp, i: replace(lp, active=None, closed=lp.closed + 1)),
    Transition(L.ITERATING, CompleteLoop, L.COMPLETED, guard=body_idle,
               emit=lambda lp, i: (LoopCompleted(lp.parent, lp.node),)),
)

LOOP_INPUTS = (StartLoop, RequestBody, GrantBody, Replay, CloseIteration, CompleteLoop)
LOOP_EFFECTS = (LoopStarted, BodyRequested, BodyGranted, LoopCompleted)


def loop_machine(frames: tuple[str, ...] = ("b1", "b2"), *, parent: str = "root", node: str = "loop",
                 transitions: tuple[Transition, ...] = LOOP_TRANSITIONS) -> Machine[Loop]:
    """A loop whose iteration n runs in body frame ``frames[n-1]`` (so its limit is ``len(frames)``).

    ``transitions`` exists so a spec can check a deliberately broken table.

    >>> loop_machine(("b1", "b2", "b3")).initial.limit
    3
    """
    if not frames:
        raise DefinitionError("flow_loop: a loop needs at least one body frame (limit >= 1)")
    return Machine(
        "flow_loop",
        initial=Loop(parent=parent, node=node, frames=frames),
        terminal={L.COMPLETED},
        transitions=transitions,
        inputs=LOOP_INPUTS,
        effects=LOOP_EFFECTS,
        doc="A loop of a flow run: body frames requested, granted and completed per iteration.",
    )


# -- the system: one action per store operation -------------------------------------------


Routed = list[tuple[str, Any]]


def _slot_granted(e: SlotGranted, source: str) -> Routed:
    return [("run", NoteGrant(source, e.node))]


def _step_completed(e: StepCompleted, source: str) -> Routed:
    return [("run", NoteOutput(source, e.node, e.iteration))]


def _step_failed(e: StepFailed, source: str) -> Routed:
    return [("run", NoteFailure(source, e.node, e.iteration))]


def _loop_started(e: LoopStarted, source: str) -> Routed:
    return [(e.parent, EnterLoop(e.node)), ("run", NoteLoop(source))]


def _body_requested(e: BodyRequested, source: str) -> Routed:
    return [("run", NoteRequest(source, e.iteration))]


def _body_granted(e: BodyGranted, source: str) -> Routed:
    return [(e.frame, Register(e.iteration)), ("run", NoteBody(e.frame, e.iteration))]


def _body_completed(e: BodyCompleted, source: str) -> Routed:
    return [("loop", CloseIteration(source, e.iteration)), ("run", NoteBodyDone(source))]


def _loop_completed(e: LoopCompleted, source: str) -> Routed:
    return [(e.parent, LeaveLoop(e.node)), ("run", NoteLoopDone(source, e.parent, e.node))]


FLOW_ROUTES: Mapping[type, Callable[[Any, str], Routed]] = {
    SlotGranted: _slot_granted,
    StepCompleted: _step_completed,
    StepFailed: _step_failed,
    LoopStarted: _loop_started,
    BodyRequested: _body_requested,
    BodyGranted: _body_granted,
    BodyCompleted: _body_completed,
    LoopCompleted: _loop_completed,
}
"""Effect type -> where it goes; each one completes one store operation (see the module doc)."""


def run_running(view: Any, me: int, event: Any) -> bool:
    """The frame-state CAS commits only while the run is RUNNING."""
    return view.run.phase is RunPhase.RUNNING


def root_completed(view: Any, me: int, event: Any) -> bool:
    return view.root.phase is FramePhase.COMPLETED


def flow_system(
    limit: int = 2,
    *,
    loop: Machine[Loop] | None = None,
    routes: Mapping[type, Callable[[Any, str], Routed]] | None = None,
    guards: Sequence[SystemGuard] = (),
) -> System[Any]:
    """A flow run: the run record, the root frame, one loop and ``limit`` body frames.

    Instances: ``run``, ``root`` (steps ``a`` and loop node ``loop``), ``loop``
    and ``b1..b<limit>`` (step ``s`` each). ``loop``, ``routes`` and ``guards``
    let a spec swap in a deliberately broken loop table or routing.

    >>> flow_system(limit=3).names
    ('run', 'root', 'loop', 'b1', 'b2', 'b3')
    """
    if limit < 1:
        raise DefinitionError(f"flow_system: limit must be at least 1, got {limit}")
    frames = tuple(f"b{k}" for k in range(1, limit + 1))
    the_loop = loop if loop is not None else loop_machine(frames)
    if the_loop.initial.frames != frames:
        raise DefinitionError(f"flow_system: the loop's body frames {the_loop.initial.frames} are not {frames}")
    table = dict(FLOW_ROUTES if routes is None else routes)
    return System(
        "flow_run",
        {"run": RUN, "root": FRAME, "loop": the_loop, **{f: FRAME for f in frames}},
        guards=[
            SystemGuard("run_running", (StartFrame, FinishFrame), run_running),
            SystemGuard("root_completed", FinishRun, root_completed),
            *guards,
        ],
        routes=[Route(effect, to) for effect, to in table.items()],
        initial_states={"root": root_frame()},
        doc="A flow run whose eight frame/loop store operations are each one atomic action.",
    )
