"""The runtime session kernel: one session's lifecycle, its executor and the inputs it holds.

Theory of operation
-------------------
A session owns the inputs it has accepted and runs them one at a time. Its
phase says what it admits; the admission facts are pure functions of a phase
(`accepts_input`, `processes_queue`, `can_prepare_run`, `is_terminal`)::

    phase       accepts input  processes queue  can prepare a run  terminal
    IDLE        yes            yes              yes                no
    RUNNING     yes            yes              no                 no
    RETIRED     no             yes (drains)     yes                no
    RECOVERING  no             no               no                 no
    STOPPED     no             no               no                 yes
    DESTROYED   no             no               no                 yes

A run stages one queued input (``StartRun``), applies it (``ApplyRun``) and
ends by ``CommitRun`` (the input is consumed), ``FailRun`` (it goes back to
the queue while attempts remain) or ``CancelRun`` (it is abandoned as
cancelled). ``pre_run`` remembers the phase a run started from, IDLE or
RETIRED, and the run returns there -- so retiring a running session only
rewrites ``pre_run``, and `visible_phase` shows a RUNNING session whose
pre-run phase is RETIRED as RETIRED (it no longer accepts input).

The executor's registration is data: ``AttachExecutor`` makes it ACTIVE;
``DetachExecutor`` makes it UNREGISTERED, or DRAINING while a run is in flight
(the drain window lets that run end; it becomes UNREGISTERED when it does).
Only an ACTIVE executor starts a run.

``Stop`` is deferred while a run is in flight: it records ``stop_requested``
and the run's end (commit, fail or cancel) lands in STOPPED instead of the
pre-run phase. ``Destroy`` is never deferred. ``Recover`` models a process
restart: the executor is gone, the session waits in RECOVERING with whatever
it held (a run in flight included) until ``AttachExecutor`` brings it back to
RUNNING, or to its pre-run phase when no run was held.

Every change to an input is an effect naming the input, so a `System` can route
it to that input's machine (`machines.input`): ``QueueInput``, ``StageInput``,
``ApplyInput``, ``ConsumeInput``, ``RollBackInput`` and ``AbandonInput``.

Choices the source leaves open, and why:

* The session keeps a *ledger*: the queued input ids with their stage counts,
  and the one input in the current run. It decides retry versus give-up with
  the same budget as the input machine (``max_attempts``), so after a failed
  run it knows, without asking, whether the input is queued again.
* The queue is a set (sorted by id), not a FIFO: which queued input a run
  takes is the runtime's batch policy, carried by ``StartRun(run_id,
  input_id)``. Run ids are labels the shell makes fresh; the model does not
  remember used ones.
* Events that end a run carry the run id *and* the input id and must name the
  session's current run (guard ``same_run``). The kernel computes effects from
  the state *after* the update, which no longer holds the run; carrying the ids
  also lets a stale report from an older run be refused, as the input machine
  does.
* For the same reason a step that gives inputs up (Reset, Stop, Destroy, a
  deferred stop taking effect) writes their ids to ``abandoned``: a receipt of
  that one step, cleared by every other step, and the record a terminal
  session keeps of what it gave up.
* Retire abandons nothing: a retired session still drains its queue, and
  ``Recycle`` brings it back to IDLE with its work preserved. ``Reset`` (not
  while a run is in flight) abandons every queued input as RESET and returns
  to IDLE. Stop abandons held inputs as STOPPED, Destroy as DESTROYED; a
  cancelled run's input is abandoned as CANCELLED.
* A stop requested while RECOVERING takes effect at once: no executor is
  running the held run, so there is nothing to wait for.
* A second ``Stop`` while one is deferred is refused (guard
  ``no_stop_pending``) rather than silently absorbed.

>>> from statewright.kernel.step import step
>>> s = SESSION.initial
>>> for event in (AttachExecutor(), AcceptInput("in1"), StartRun("r1", "in1"), Stop()):
...     s = step(SESSION, s, event).state
>>> s.phase, s.stop_requested, visible_phase(s)
(<SessionPhase.RUNNING: 'running'>, True, <SessionPhase.RUNNING: 'running'>)
>>> s = step(SESSION, s, ApplyRun("r1")).state
>>> done = step(SESSION, s, CommitRun("r1", "in1"))
>>> done.state.phase, done.effects
(<SessionPhase.STOPPED: 'stopped'>, (ConsumeInput(input_id='in1', run_id='r1'),))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition

__all__ = [
    "EFFECTS",
    "INPUTS",
    "SESSION",
    "STOPPED_MODES",
    "TERMINAL",
    "AbandonInput",
    "Abandonment",
    "AcceptInput",
    "ApplyInput",
    "ApplyRun",
    "AttachExecutor",
    "CancelRun",
    "CommitRun",
    "ConsumeInput",
    "Destroy",
    "DetachExecutor",
    "FailRun",
    "QueueInput",
    "Recover",
    "Recycle",
    "Registration",
    "Reset",
    "Retire",
    "RollBackInput",
    "Session",
    "SessionPhase",
    "StageInput",
    "StartRun",
    "Stop",
    "accepts_input",
    "can_prepare_run",
    "held",
    "is_terminal",
    "processes_queue",
    "session_machine",
    "visible_phase",
]


class SessionPhase(Enum):
    """Where the session is in its lifecycle."""

    IDLE = "idle"
    RUNNING = "running"
    RETIRED = "retired"
    RECOVERING = "recovering"
    STOPPED = "stopped"
    DESTROYED = "destroyed"


class Registration(Enum):
    """The executor's registration with the session."""

    UNREGISTERED = "unregistered"
    ACTIVE = "active"
    DRAINING = "draining"
    """Detached while a run was in flight: that run may still end, no new one starts."""


class Abandonment(Enum):
    """Why the session gave an input up (the values of `machines.input.AbandonReason`)."""

    RESET = "reset"
    STOPPED = "stopped"
    DESTROYED = "destroyed"
    CANCELLED = "cancelled"


P = SessionPhase
TERMINAL = frozenset({P.STOPPED, P.DESTROYED})


# -- admission facts and the visible phase -----------------------------------------


def accepts_input(phase: SessionPhase) -> bool:
    """Whether a session in ``phase`` takes new input."""
    return phase in (P.IDLE, P.RUNNING)


def processes_queue(phase: SessionPhase) -> bool:
    """Whether a session in ``phase`` runs its queued inputs (a retired one drains them)."""
    return phase in (P.IDLE, P.RUNNING, P.RETIRED)


def can_prepare_run(phase: SessionPhase) -> bool:
    """Whether a session in ``phase`` may start a run now (it processes its queue, none in flight)."""
    return phase in (P.IDLE, P.RETIRED)


def is_terminal(phase: SessionPhase) -> bool:
    """Whether ``phase`` is final."""
    return phase in TERMINAL


# -- state ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """One session: phase, executor, the ledger of held inputs, and the run in flight.

    ``queued`` holds ``(input_id, attempts)`` sorted by id; ``input_id`` and
    ``attempt`` are the input in the current run (``run_id``), ``applied``
    whether the run applied it. ``pre_run`` is the phase to return to when the
    run ends or recovery completes. ``abandoned`` is the receipt of the step
    that reached this state (see the module doc).
    """

    phase: SessionPhase = SessionPhase.IDLE
    registration: Registration = Registration.UNREGISTERED
    queued: tuple[tuple[str, int], ...] = ()
    run_id: str | None = None
    input_id: str | None = None
    attempt: int = 0
    applied: bool = False
    pre_run: SessionPhase | None = None
    stop_requested: bool = False
    abandoned: tuple[str, ...] = ()
    max_attempts: int = 3
    parked: bool = False
    """The runtime loop dropped its wake: no run starts until an external one (an accepted input, a
    restart). Only the pre-fix defer sweep (``session_machine(defer_total=False)``) ever parks it."""


def held(state: Session) -> tuple[str, ...]:
    """Every input id the session holds (queued or in the run), sorted."""
    ids = [i for i, _ in state.queued]
    if state.input_id is not None:
        ids.append(state.input_id)
    return tuple(sorted(ids))


def visible_phase(state: Session, control: SessionPhase | None = None) -> SessionPhase:
    """The phase to show: a terminal control projection wins, and Running-from-Retired shows Retired.

    ``control`` is the phase of the durable control record, when there is one.

    >>> visible_phase(Session(P.RUNNING, pre_run=P.RETIRED))
    <SessionPhase.RETIRED: 'retired'>
    >>> visible_phase(Session(P.RUNNING, pre_run=P.IDLE), control=P.STOPPED)
    <SessionPhase.STOPPED: 'stopped'>
    >>> visible_phase(Session(P.IDLE), control=P.RETIRED)
    <SessionPhase.IDLE: 'idle'>
    """
    if control is not None and control in TERMINAL:
        return control
    if state.phase is P.RUNNING and state.pre_run is P.RETIRED:
        return P.RETIRED
    return state.phase


# -- inputs (events) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachExecutor:
    """An executor registers with the session (and completes a recovery)."""


@dataclass(frozen=True, slots=True)
class DetachExecutor:
    """The executor unregisters; with a run in flight it drains first."""


@dataclass(frozen=True, slots=True)
class AcceptInput:
    """Take input ``input_id`` into the queue."""

    input_id: str


@dataclass(frozen=True, slots=True)
class StartRun:
    """Start run ``run_id`` on the queued input ``input_id``."""

    run_id: str
    input_id: str


@dataclass(frozen=True, slots=True)
class ApplyRun:
    """Run ``run_id`` applied its input to the conversation."""

    run_id: str


@dataclass(frozen=True, slots=True)
class CommitRun:
    """Run ``run_id`` committed: its input ``input_id`` is consumed."""

    run_id: str
    input_id: str


@dataclass(frozen=True, slots=True)
class FailRun:
    """Run ``run_id`` failed: ``input_id`` is queued again while attempts remain."""

    run_id: str
    input_id: str


@dataclass(frozen=True, slots=True)
class CancelRun:
    """Run ``run_id`` was cancelled: ``input_id`` is abandoned as cancelled."""

    run_id: str
    input_id: str


@dataclass(frozen=True, slots=True)
class Retire:
    """Stop taking input; keep draining the queue."""


@dataclass(frozen=True, slots=True)
class Recycle:
    """Bring a retired session back to IDLE, its queued work preserved."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Drop every queued input and return to IDLE (not while a run is in flight)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the session; deferred until the run in flight ends."""


@dataclass(frozen=True, slots=True)
class Destroy:
    """Destroy the session at once, abandoning everything it holds."""


@dataclass(frozen=True, slots=True)
class Recover:
    """The process restarted: rebuild from the durable record, without an executor."""


INPUTS: tuple[type, ...] = (
    AttachExecutor, DetachExecutor, AcceptInput, StartRun, ApplyRun, CommitRun, FailRun, CancelRun,
    Retire, Recycle, Reset, Stop, Destroy, Recover,
)


# -- effects (each names the input it is for, so it can be routed) --------------------


@dataclass(frozen=True, slots=True)
class QueueInput:
    input_id: str


@dataclass(frozen=True, slots=True)
class StageInput:
    input_id: str
    run_id: str


@dataclass(frozen=True, slots=True)
class ApplyInput:
    input_id: str
    run_id: str


@dataclass(frozen=True, slots=True)
class ConsumeInput:
    input_id: str
    run_id: str


@dataclass(frozen=True, slots=True)
class RollBackInput:
    """The run holding the input failed; the input retries or gives up by its own budget."""

    input_id: str
    run_id: str


@dataclass(frozen=True, slots=True)
class AbandonInput:
    input_id: str
    reason: Abandonment


EFFECTS: tuple[type, ...] = (QueueInput, StageInput, ApplyInput, ConsumeInput, RollBackInput, AbandonInput)


# -- guards -----------------------------------------------------------------------------


def attached(state: Session, event: Any) -> bool:
    """The executor is ACTIVE."""
    return state.registration is Registration.ACTIVE


def detached(state: Session, event: Any) -> bool:
    return state.registration is Registration.UNREGISTERED


def accepting(state: Session, event: AcceptInput) -> bool:
    """The visible phase takes input (a running session that was retired does not)."""
    return accepts_input(visible_phase(state))


def new_input(state: Session, event: AcceptInput) -> bool:
    """The session does not already hold this id."""
    return bool(event.input_id) and event.input_id not in held(state)


def queued(state: Session, event: StartRun) -> bool:
    return any(i == event.input_id for i, _ in state.queued)


def names_run(state: Session, event: StartRun) -> bool:
    return bool(event.run_id)


def no_run_in_flight(state: Session, event: StartRun) -> bool:
    """Stage only when no run holds an input: one run, one input, at a time."""
    return state.run_id is None


def same_run(state: Session, event: Any) -> bool:
    """The event names the run in flight (and, when it ends the run, its input)."""
    if event.run_id != state.run_id:
        return False
    return not hasattr(event, "input_id") or event.input_id == state.input_id


def not_applied(state: Session, event: ApplyRun) -> bool:
    return not state.applied


def applied(state: Session, event: CommitRun) -> bool:
    return state.applied


def holds_run(state: Session, event: Any) -> bool:
    return state.run_id is not None


def no_run_held(state: Session, event: Any) -> bool:
    return state.run_id is None


def resumes_idle(state: Session, event: Any) -> bool:
    """The run (or recovery) returns to IDLE."""
    return state.pre_run is P.IDLE


def resumes_retired(state: Session, event: Any) -> bool:
    return state.pre_run is P.RETIRED


def awake(state: Session, event: StartRun) -> bool:
    """The runtime loop has its wake (only the pre-fix defer sweep ever parks it)."""
    return not state.parked


def not_draining(state: Session, event: AttachExecutor) -> bool:
    """No unregister drain window is open (the pre-fix guard of a recovering attach)."""
    return state.registration is not Registration.DRAINING


def stop_pending(state: Session, event: Any) -> bool:
    return state.stop_requested


def no_stop_pending(state: Session, event: Any) -> bool:
    return not state.stop_requested


# -- updates -------------------------------------------------------------------------------


def _put(state: Session, **changes: Any) -> Session:
    """A step's new data; every step clears the previous step's receipt."""
    return replace(state, abandoned=(), **changes)


def _attach(state: Session, event: AttachExecutor) -> Session:
    return _put(state, registration=Registration.ACTIVE)


def _recovered(state: Session, event: AttachExecutor) -> Session:
    return _put(state, registration=Registration.ACTIVE,
                pre_run=state.pre_run if state.run_id is not None else None)


def _detach(state: Session, event: DetachExecutor) -> Session:
    reg = Registration.DRAINING if state.run_id is not None else Registration.UNREGISTERED
    return _put(state, registration=reg)


def _accept(state: Session, event: AcceptInput) -> Session:
    return _put(state, queued=tuple(sorted((*state.queued, (event.input_id, 0)))))


def _start(state: Session, event: StartRun) -> Session:
    attempts = dict(state.queued)[event.input_id]
    rest = tuple(q for q in state.queued if q[0] != event.input_id)
    pre = state.pre_run if state.phase is P.RUNNING else state.phase
    return _put(state, queued=rest, run_id=event.run_id, input_id=event.input_id,
                attempt=attempts + 1, applied=False, pre_run=pre)


def _end_run(state: Session, **changes: Any) -> Session:
    """Forget the run; a draining executor is now unregistered."""
    reg = Registration.UNREGISTERED if state.registration is Registration.DRAINING else state.registration
    fields: dict[str, Any] = dict(run_id=None, input_id=None, attempt=0, applied=False, pre_run=None,
                                  registration=reg, abandoned=())
    fields.update(changes)
    return replace(state, **fields)


def _requeued(state: Session) -> tuple[tuple[str, int], ...]:
    """The queue after the run failed: its input back in it while attempts remain."""
    if state.attempt < state.max_attempts and state.input_id is not None:
        return tuple(sorted((*state.queued, (state.input_id, state.attempt))))
    return state.queued


def _fail_dropping_wake(state: Session, event: FailRun) -> Session:
    """Pre-fix: a failed run whose input was abandoned at its attempt limit parks the loop.

    The loop's defer of that input behind the backlog was refused (it had left
    the queue), and the loop returned without its wake.
    """
    return replace(_fail(state, event), parked=state.attempt >= state.max_attempts)


def _wake(state: Session, event: Any) -> Session:
    return replace(state, parked=False)


def _accept_waking(state: Session, event: AcceptInput) -> Session:
    """Pre-fix: accepting an input is the external wake a parked loop waits for."""
    return _wake(_accept(state, event), event)


def _then(*updates: Callable[[Session, Any], Session]) -> Callable[[Session, Any], Session]:
    def update(state: Session, event: Any) -> Session:
        for u in updates:
            state = u(state, event)
        return state

    return update


def _commit(state: Session, event: CommitRun) -> Session:
    return _end_run(state)


def _fail(state: Session, event: FailRun) -> Session:
    return _end_run(state, queued=_requeued(state))


def _cancel(state: Session, event: CancelRun) -> Session:
    return _end_run(state)


def _give_up_all(state: Session, *, keep_run_input: bool = False) -> Session:
    """Terminal: abandon the queue (and the run's input unless the run's end decides it)."""
    ids = [i for i, _ in state.queued]
    if state.input_id is not None and not keep_run_input:
        ids.append(state.input_id)
    return Session(abandoned=tuple(sorted(ids)), max_attempts=state.max_attempts)


def _stop_after_run(state: Session, event: Any) -> Session:
    return _give_up_all(state, keep_run_input=True)


def _stop_after_failed_run(state: Session, event: FailRun) -> Session:
    return _give_up_all(state)


def _stop_now(state: Session, event: Any) -> Session:
    return _give_up_all(state)


def _defer_stop(state: Session, event: Stop) -> Session:
    return _put(state, stop_requested=True)


def _reset(state: Session, event: Reset) -> Session:
    return replace(state, queued=(), abandoned=tuple(i for i, _ in state.queued))


def _retire_idle(state: Session, event: Retire) -> Session:
    return _put(state)


def _retire_running(state: Session, event: Retire) -> Session:
    return _put(state, pre_run=P.RETIRED)


def _recycle(state: Session, event: Recycle) -> Session:
    return _put(state)


def _recover(state: Session, event: Recover) -> Session:
    pre = state.pre_run if state.phase is P.RUNNING else state.phase
    return _put(state, registration=Registration.UNREGISTERED, pre_run=pre)


def _recover_keeping_drain(state: Session, event: Recover) -> Session:
    """Pre-fix: the durable image replays a DRAINING registration into the restarted process."""
    recovered = _recover(state, event)
    if state.registration is Registration.DRAINING:
        return replace(recovered, registration=Registration.DRAINING)
    return recovered


# -- effects ---------------------------------------------------------------------------------


def _abandon(reason: Abandonment) -> Callable[[Session, Any], tuple[Any, ...]]:
    def emit(state: Session, event: Any) -> tuple[Any, ...]:
        return tuple(AbandonInput(i, reason) for i in state.abandoned)

    return emit


_stopped = _abandon(Abandonment.STOPPED)


def _staged(state: Session, event: StartRun) -> tuple[Any, ...]:
    return (StageInput(event.input_id, event.run_id),)


def _applied(state: Session, event: ApplyRun) -> tuple[Any, ...]:
    assert state.input_id is not None  # same_run held, so a run is in flight
    return (ApplyInput(state.input_id, event.run_id),)


def _consumed(state: Session, event: CommitRun) -> tuple[Any, ...]:
    return (ConsumeInput(event.input_id, event.run_id),)


def _rolled_back(state: Session, event: FailRun) -> tuple[Any, ...]:
    return (RollBackInput(event.input_id, event.run_id),)


def _cancelled(state: Session, event: CancelRun) -> tuple[Any, ...]:
    return (AbandonInput(event.input_id, Abandonment.CANCELLED),)


def _then_stopped(first: Callable[[Session, Any], tuple[Any, ...]]) -> Callable[[Session, Any], tuple[Any, ...]]:
    def emit(state: Session, event: Any) -> tuple[Any, ...]:
        return first(state, event) + _stopped(state, event)

    return emit


# -- the table -----------------------------------------------------------------------------------


def _ends(event: type, update: Callable[[Session, Any], Session], emit: Callable[[Session, Any], tuple[Any, ...]],
          extra: list[Any], stop_update: Callable[[Session, Any], Session],
          stop_emit: Callable[[Session, Any], tuple[Any, ...]]) -> list[Transition]:
    """The three ways a run's end lands: back to IDLE, back to RETIRED, or the deferred stop."""
    guards = [same_run, *extra]
    return [
        Transition(P.RUNNING, event, P.IDLE, guard=[*guards, no_stop_pending, resumes_idle],
                   update=update, emit=emit),
        Transition(P.RUNNING, event, P.RETIRED, guard=[*guards, no_stop_pending, resumes_retired],
                   update=update, emit=emit),
        Transition(P.RUNNING, event, P.STOPPED, guard=[*guards, stop_pending],
                   update=stop_update, emit=stop_emit),
    ]


STOPPED_MODES = ("final", "revives", "absorbs")
"""What a registration does to a STOPPED session (`session_machine`'s ``stopped``)."""


def session_machine(
    max_attempts: int = 3,
    *,
    stage_only_when_idle: bool = True,
    defer_total: bool = True,
    recover_settles_drain: bool = True,
    stopped: str = "final",
) -> Machine[Session]:
    """The session machine; ``max_attempts`` must match the inputs' budget.

    The keywords select seeded bugs and the source runtime's history; library
    users leave them at their defaults, which give exactly the table below:

    * ``stage_only_when_idle=False`` drops the ``no_run_in_flight`` guard of
      ``StartRun`` (a run starts while one is in flight).
    * ``defer_total=False`` is the source before its defer sweep was made
      total: after a run failed, the runtime loop defers the failed input
      behind the backlog, and when the input had just been abandoned at its
      attempt limit the defer was refused and the loop returned without its
      wake. Here a ``FailRun`` that exhausts the input *parks* the session
      (`Session.parked`): ``StartRun`` is refused (guard ``awake``) until an
      external wake -- an accepted input, or a restart (``Recover``). In this
      table a failed run is resolved in the one step, so nothing is deferred.
    * ``recover_settles_drain=False`` is the source before a cold-recovered
      drain was concluded: ``Recover`` keeps a DRAINING registration (the
      durable image replays it) and an attach is refused while it drains
      (guard ``not_draining`` on the RECOVERING rows), while the only way out
      of DRAINING is the end of a run nobody is executing. Here ``Recover``
      settles the drain: the executor is gone, so it is UNREGISTERED.
    * ``stopped`` says what registration does to a STOPPED session.
      ``"final"`` (this table): STOPPED is terminal, so re-registering a
      stopped session is refused with a typed reason. ``"revives"`` (the
      source after its fix): STOPPED is not terminal; ``AttachExecutor``
      re-admits it to IDLE with an ACTIVE executor, and ``Destroy`` tears it
      down. ``"absorbs"`` (the source before it): the same, except that the
      attach is accepted and changes nothing, so resume loops on itself.

    >>> session_machine(2).initial.max_attempts
    2
    >>> sorted(p.name for p in session_machine(stopped="revives").terminal_phases)
    ['DESTROYED']
    """
    if stopped not in STOPPED_MODES:
        raise DefinitionError(f"session: stopped must be one of {', '.join(STOPPED_MODES)}, got {stopped!r}")
    start_guards: list[Any] = [names_run, attached, queued]
    if stage_only_when_idle:
        start_guards.append(no_run_in_flight)
    if not defer_total:
        start_guards.append(awake)
    fail = _fail if defer_total else _fail_dropping_wake
    accept = _accept if defer_total else _accept_waking
    recover: Callable[[Session, Any], Session] = _recover if recover_settles_drain else _recover_keeping_drain
    if not defer_total:
        recover = _then(recover, _wake)  # a restart runs the loop afresh
    recovered: list[Any] = [] if recover_settles_drain else [not_draining]
    live_no_run = (P.IDLE, P.RETIRED)
    transitions = [
        Transition(P.IDLE, AttachExecutor, P.IDLE, guard=detached, update=_attach),
        Transition(P.RETIRED, AttachExecutor, P.RETIRED, guard=detached, update=_attach),
        Transition(P.RECOVERING, AttachExecutor, P.RUNNING, guard=[*recovered, holds_run], update=_recovered),
        Transition(P.RECOVERING, AttachExecutor, P.IDLE, guard=[*recovered, no_run_held, resumes_idle],
                   update=_recovered),
        Transition(P.RECOVERING, AttachExecutor, P.RETIRED, guard=[*recovered, no_run_held, resumes_retired],
                   update=_recovered),
        Transition(P.IDLE, DetachExecutor, P.IDLE, guard=attached, update=_detach),
        Transition(P.RETIRED, DetachExecutor, P.RETIRED, guard=attached, update=_detach),
        Transition(P.RUNNING, DetachExecutor, P.RUNNING, guard=attached, update=_detach),
        Transition(P.IDLE, AcceptInput, P.IDLE, guard=[accepting, new_input], update=accept,
                   emit=lambda s, i: (QueueInput(i.input_id),)),
        Transition(P.RUNNING, AcceptInput, P.RUNNING, guard=[accepting, new_input], update=accept,
                   emit=lambda s, i: (QueueInput(i.input_id),)),
        Transition((P.IDLE, P.RETIRED, P.RUNNING), StartRun, P.RUNNING, guard=start_guards,
                   update=_start, emit=_staged),
        Transition(P.RUNNING, ApplyRun, P.RUNNING, guard=[same_run, not_applied],
                   update=lambda s, i: _put(s, applied=True), emit=_applied),
        *_ends(CommitRun, _commit, _consumed, [applied], _stop_after_run, _then_stopped(_consumed)),
        *_ends(FailRun, fail, _rolled_back, [], _stop_after_failed_run, _stopped),
        *_ends(CancelRun, _cancel, _cancelled, [], _stop_after_run, _then_stopped(_cancelled)),
        Transition(P.IDLE, Retire, P.RETIRED, update=_retire_idle),
        Transition(P.RUNNING, Retire, P.RUNNING, guard=resumes_idle, update=_retire_running),
        Transition(P.RETIRED, Recycle, P.IDLE, update=_recycle),
        Transition(live_no_run, Reset, P.IDLE, update=_reset, emit=_abandon(Abandonment.RESET)),
        Transition((*live_no_run, P.RECOVERING), Stop, P.STOPPED, update=_stop_now, emit=_stopped),
        Transition(P.RUNNING, Stop, P.RUNNING, guard=no_stop_pending, update=_defer_stop),
        Transition((P.IDLE, P.RUNNING, P.RETIRED, P.RECOVERING), Destroy, P.DESTROYED, update=_stop_now,
                   emit=_abandon(Abandonment.DESTROYED)),
        Transition((P.IDLE, P.RUNNING, P.RETIRED), Recover, P.RECOVERING, update=recover),
    ]
    terminal = TERMINAL
    if stopped != "final":
        terminal = frozenset({P.DESTROYED})
        if stopped == "revives":
            transitions.append(Transition(P.STOPPED, AttachExecutor, P.IDLE, guard=detached, update=_attach))
        else:
            transitions.append(Transition(P.STOPPED, AttachExecutor, P.STOPPED, guard=detached))
        transitions.append(Transition(P.STOPPED, Destroy, P.DESTROYED, update=_stop_now,
                                      emit=_abandon(Abandonment.DESTROYED)))
    return Machine(
        "session",
        initial=Session(max_attempts=max_attempts),
        terminal=terminal,
        inputs=INPUTS,
        effects=EFFECTS,
        transitions=transitions,
        doc="The runtime session kernel: executor, input ledger, one run at a time, deferred stop.",
    )


SESSION: Machine[Session] = session_machine()
"""The session machine with the input machine's default budget of 3 attempts."""
