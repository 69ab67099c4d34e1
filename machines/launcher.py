"""The launcher's start/resume decisions over the runs stored for one pipeline.

Theory of operation
-------------------
One executor works for one pipeline. Each ``Launch`` starts a *new* run (a
fresh run id, the next index into ``runs``) from the pipeline's manifest; the
executor then runs the plan's states in order (a linear plan of
``states`` states), one attempt at a time, and may crash at any moment.
``Resume`` rebuilds the run from what its log recorded::

    IDLE --Launch--> EXECUTING --Enter/Succeed/Fail--> ... --last Succeed, or a Fail that gives up--> IDLE | DONE
    EXECUTING --Crash--> CRASHED --Resume--> EXECUTING

DONE (every launch used and its run ended) is terminal. What the log holds,
per run, is modelled as the `StoredRun`: its status, how many states
completed (their completion was recorded), the state in flight and its
attempt, and the latest snapshot written.

Snapshots, as in the source (`KernelEvent`): the *base* snapshot at
``RunStarted``, a *per-state* snapshot with each ``StateCompleted``, a
*failure* snapshot with each ``StateFailed`` (diagnostic only) and a *final*
one with ``RunCompleted``. Every ``StateEntered`` names the snapshot its
attempt starts from -- `boundary`: the per-state snapshot of the last
completed state, or the base one. A failure snapshot is never a boundary,
though it may be the latest snapshot written.

Attempts are counted as the source counts them: ``StateEntered.attempt`` is
zero-based, and ``max_attempts`` is the number of attempts in all, the first
included (`RetryPolicy.max_attempts`). A failure carries
``ErrorInfo.retryable``: a retryable one with attempts left re-enters the
same state at the next attempt, from the boundary, in the same step;
a non-retryable one, or the last attempt's, fails the run. Where we
differ: a crash is not a failure -- ``Resume`` re-enters the state that was
in flight at the *same* attempt number (no ``StateFailed`` was recorded, so
none of the retry budget is spent; the source's resume is not in the text
we have). Backoff delays between attempts belong to the shell's clock.

>>> from statewright.kernel.step import step
>>> m = launcher_machine(states=2, max_attempts=2, launches=1, crashes=1)
>>> s = m.initial
>>> for event in (Launch(), Enter(), Succeed(), Enter(), Crash(), Resume()):
...     s = step(m, s, event).state
>>> step(m, m.initial, Launch()).effects
(RunStarted(run=0),)
>>> s.runs[0].done, s.runs[0].attempt, s.phase.name
(1, 0, 'EXECUTING')
"""

from __future__ import annotations

from typing import Any
from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Transition

__all__ = [
    "LAUNCHER_TRANSITIONS", "Crash", "Enter", "Fail", "Launch", "Launcher", "LauncherPhase", "Resume",
    "RunCompleted", "RunStarted", "RunStatus", "Snapshot", "SnapshotKind", "StateCompleted", "StateEntered",
    "StateFailed", "StoredRun", "Succeed", "boundary", "launcher_machine",
]


class LauncherPhase(Enum):
    IDLE = "idle"              # no run attached; a launch may start one
    EXECUTING = "executing"    # the executor works on the attached run
    CRASHED = "crashed"        # the executor died; the attached run waits for Resume
    DONE = "done"              # every launch used, every run ended


class RunStatus(Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class SnapshotKind(Enum):
    BASE = "base"
    STATE = "state"
    FAILURE = "failure"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A context snapshot: its kind, and how many plan states had completed when it was taken."""

    kind: SnapshotKind
    at: int


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What one run's log records: status, completed states, the attempt in flight, the latest snapshot."""

    status: RunStatus = RunStatus.RUNNING
    done: int = 0
    in_flight: bool = False
    attempt: int = 0
    latest: Snapshot = Snapshot(SnapshotKind.BASE, 0)


@dataclass(frozen=True, slots=True)
class Launcher:
    """The stored runs of one pipeline and the executor's position among them."""

    phase: LauncherPhase = LauncherPhase.IDLE
    runs: tuple[StoredRun, ...] = ()
    attached: int | None = None
    launches: int = 0
    crashes: int = 0
    states: int = 2
    max_attempts: int = 2
    max_launches: int = 2
    max_crashes: int = 1


def boundary(run: StoredRun) -> Snapshot:
    """The snapshot an attempt starts from: the last completed state's, or the base one."""
    return Snapshot(SnapshotKind.STATE, run.done) if run.done else Snapshot(SnapshotKind.BASE, 0)


def current(s: Launcher) -> StoredRun:
    assert s.attached is not None
    return s.runs[s.attached]


def _put(s: Launcher, run: StoredRun) -> tuple[StoredRun, ...]:
    assert s.attached is not None
    return s.runs[:s.attached] + (run,) + s.runs[s.attached + 1:]


# -- inputs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Launch:
    """Start the pipeline: a new run from its manifest."""


@dataclass(frozen=True, slots=True)
class Enter:
    """Begin the first attempt of the next plan state."""


@dataclass(frozen=True, slots=True)
class Succeed:
    """The attempt in flight succeeded."""


@dataclass(frozen=True, slots=True)
class Fail:
    """The attempt in flight failed; ``retryable`` is its ``ErrorInfo.retryable``."""

    retryable: bool


@dataclass(frozen=True, slots=True)
class Crash:
    """The executor dies; whatever was in flight reports nothing."""


@dataclass(frozen=True, slots=True)
class Resume:
    """An executor rebuilds the attached run from its log and goes on."""


# -- effects (kernel events) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStarted:
    run: int


@dataclass(frozen=True, slots=True)
class StateEntered:
    run: int
    state: int
    attempt: int
    base: Snapshot


@dataclass(frozen=True, slots=True)
class StateCompleted:
    run: int
    state: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class StateFailed:
    run: int
    state: int
    attempt: int
    retryable: bool
    will_retry: bool
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class RunCompleted:
    run: int
    status: RunStatus
    snapshot: Snapshot | None


# -- guards -----------------------------------------------------------------------


def nothing_in_flight(s: Launcher, _i: Enter) -> bool:
    return not current(s).in_flight


def in_flight(s: Launcher, _i: object) -> bool:
    return current(s).in_flight


def more_states(s: Launcher, _i: Succeed) -> bool:
    return current(s).done + 1 < s.states


def last_state(s: Launcher, _i: Succeed) -> bool:
    return current(s).done + 1 >= s.states


def will_retry(s: Launcher, i: Fail) -> bool:
    """Retryable, and the attempt that failed was not the last allowed (zero-based)."""
    return i.retryable and current(s).attempt + 1 < s.max_attempts


def gives_up(s: Launcher, i: Fail) -> bool:
    """Not retryable, or no attempt left (the complement of ``will_retry``)."""
    return not will_retry(s, i)


def another_launch(s: Launcher, _i: object) -> bool:
    """Launches remain after this run ends: back to IDLE."""
    return s.launches < s.max_launches


def no_launch_left(s: Launcher, _i: object) -> bool:
    """The last launch's run ends: DONE (the complement of ``another_launch``)."""
    return s.launches >= s.max_launches


def crashes_left(s: Launcher, _i: Crash) -> bool:
    return s.crashes < s.max_crashes


# -- updates and effects -------------------------------------------------------------


def _launch(s: Launcher, _i: Launch) -> Launcher:
    return replace(s, runs=s.runs + (StoredRun(),), attached=len(s.runs), launches=s.launches + 1)


def _enter(s: Launcher, _i: Enter) -> Launcher:
    return replace(s, runs=_put(s, replace(current(s), in_flight=True, attempt=0)))


def _entered(s: Launcher, _i: Enter) -> tuple[StateEntered]:
    run = current(s)
    return (StateEntered(s.attached or 0, run.done, 0, boundary(run)),)


def _complete(s: Launcher, _i: Succeed) -> Launcher:
    run = current(s)
    done = run.done + 1
    if done < s.states:
        return replace(s, runs=_put(s, StoredRun(done=done, latest=Snapshot(SnapshotKind.STATE, done))))
    final = StoredRun(RunStatus.COMPLETED, done, latest=Snapshot(SnapshotKind.FINAL, done))
    return replace(s, runs=_put(s, final), attached=None)


def _completed(s: Launcher, _i: Succeed) -> tuple[object, ...]:
    run_id = len(s.runs) - 1 if s.attached is None else s.attached
    run = s.runs[run_id] if s.attached is None else current(s)
    # the attached run is the last one launched: runs are started in order, one at a time
    done = StateCompleted(run_id, run.done - 1, Snapshot(SnapshotKind.STATE, run.done))
    if run.status is RunStatus.COMPLETED:
        return (done, RunCompleted(run_id, RunStatus.COMPLETED, run.latest))
    return (done,)


def _retry(s: Launcher, i: Fail) -> Launcher:
    run = current(s)
    return replace(s, runs=_put(s, replace(run, attempt=run.attempt + 1,
                                           latest=Snapshot(SnapshotKind.FAILURE, run.done))))


def _retried(s: Launcher, i: Fail) -> tuple[object, ...]:
    run, rid = current(s), s.attached or 0
    return (StateFailed(rid, run.done, run.attempt - 1, i.retryable, True, run.latest),
            StateEntered(rid, run.done, run.attempt, boundary(run)))


def _give_up(s: Launcher, i: Fail) -> Launcher:
    run = current(s)
    failed = replace(run, status=RunStatus.FAILED, in_flight=False, latest=Snapshot(SnapshotKind.FAILURE, run.done))
    return replace(s, runs=_put(s, failed), attached=None)


def _gave_up(s: Launcher, i: Fail) -> tuple[object, ...]:
    rid = len(s.runs) - 1
    run = s.runs[rid]
    return (StateFailed(rid, run.done, run.attempt, i.retryable, False, run.latest),
            RunCompleted(rid, RunStatus.FAILED, None))


def _crash(s: Launcher, _i: Crash) -> Launcher:
    return replace(s, crashes=s.crashes + 1)


def _resumed(s: Launcher, _i: Resume) -> tuple[StateEntered, ...]:
    run = current(s)
    if not run.in_flight:
        return ()
    return (StateEntered(s.attached or 0, run.done, run.attempt, boundary(run)),)


P = LauncherPhase
AFTER_RUN = ((P.IDLE, another_launch), (P.DONE, no_launch_left))

LAUNCHER_TRANSITIONS: tuple[Transition[Launcher, Any], ...] = (
    # no guard: IDLE is reached only while launches remain (`another_launch`), DONE otherwise
    Transition(P.IDLE, Launch, P.EXECUTING, update=_launch,
               emit=lambda s, i: (RunStarted(len(s.runs) - 1),)),
    Transition(P.EXECUTING, Enter, P.EXECUTING, guard=nothing_in_flight, update=_enter, emit=_entered),
    Transition(P.EXECUTING, Succeed, P.EXECUTING, guard=[in_flight, more_states], update=_complete, emit=_completed),
    *(Transition(P.EXECUTING, Succeed, target, guard=[in_flight, last_state, after], update=_complete,
                 emit=_completed) for target, after in AFTER_RUN),
    Transition(P.EXECUTING, Fail, P.EXECUTING, guard=[in_flight, will_retry], update=_retry, emit=_retried),
    *(Transition(P.EXECUTING, Fail, target, guard=[in_flight, gives_up, after], update=_give_up, emit=_gave_up)
      for target, after in AFTER_RUN),
    Transition(P.EXECUTING, Crash, P.CRASHED, guard=crashes_left, update=_crash),
    Transition(P.CRASHED, Resume, P.EXECUTING, emit=_resumed),
)
"""The launcher's one transition table."""

INPUTS = (Launch, Enter, Succeed, Fail, Crash, Resume)
EFFECTS = (RunStarted, StateEntered, StateCompleted, StateFailed, RunCompleted)


def launcher_machine(states: int = 2, max_attempts: int = 2, launches: int = 2, crashes: int = 1, *,
                     transitions: tuple[Transition[Launcher, Any], ...] = LAUNCHER_TRANSITIONS) -> Machine[Launcher]:
    """The launcher for a linear plan of ``states`` states; ``transitions`` lets a spec check a broken table.

    >>> launcher_machine(states=3).initial.states
    3
    """
    if states < 1 or max_attempts < 1 or launches < 1 or crashes < 0:
        raise DefinitionError("launcher: states, max_attempts and launches must be at least 1, crashes at least 0")
    return Machine(
        "launcher",
        initial=Launcher(states=states, max_attempts=max_attempts, max_launches=launches, max_crashes=crashes),
        terminal={P.DONE},
        phase=lambda s: s.phase,
        inputs=INPUTS,
        effects=EFFECTS,
        transitions=transitions,
        doc="The launcher: each launch a new run; resume from the last recorded completion.",
    )
