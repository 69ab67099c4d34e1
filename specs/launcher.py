"""The launcher's start/resume decisions (machines/launcher.py), and the source's run-id bug.

The default model: a linear plan of two states, two attempts per state, two
launches and one crash; every failure is tried both retryable and not.
Properties:

* ``one_run_completed`` -- a step emits ``RunCompleted(r)`` exactly when it
  takes run ``r`` from RUNNING to an end, and a run that ended never changes
  (``runs_that_ended_stay``): with ``terminates``, exactly one
  ``RunCompleted`` per run;
* ``launch_starts_a_new_run`` -- every ``Launch`` adds a RUNNING run with a new
  id and emits its ``RunStarted``;
* ``resume_never_reexecutes`` -- every ``StateEntered`` names the first state
  whose completion is not recorded: a resume or a retry never runs a
  recorded state again;
* ``failure_snapshot_never_a_boundary`` -- every ``StateEntered`` starts from
  the last completed state's snapshot (or the base one), never a failure
  snapshot, though a failure snapshot may be the latest written;
* ``non_retryable_fails_at_once`` -- a non-retryable failure ends the run, and
  a retryable one ends it only on its last attempt;
* ``attempts_as_the_source_counts`` -- the attempt is zero-based and below
  ``max_attempts`` (attempts in all, the first included);
* ``phase_matches_runs`` -- a run is attached exactly while EXECUTING or
  CRASHED (the last one launched, still RUNNING, the only one with an attempt
  in flight); CRASHED only after a crash, DONE only once every launch is used,
  crashes and launches within their budgets;
* ``phase_follows_input`` -- which input moves which phase: Launch leaves
  IDLE for EXECUTING, Crash enters CRASHED, Resume leaves it; a Succeed or
  Fail that ends the run goes to IDLE while launches remain, else DONE;
* ``only_the_attempt_in_flight_reports`` -- Succeed and Fail report on an
  attempt in flight, Enter begins one only when none is;
* witnesses: a run completes, one fails retryably after exhausting its
  attempts, one fails at once, a retry, a resume, two runs completed.

``terminates`` holds under weak fairness of the table's rows (the spec's
default): retries spend attempts, crashes spend the crash budget, every
success completes a state and every launch spends a launch, so the graph has
no cycle; ``recoverable`` holds too.

``reattach_completed=true`` is the source's run-id bug: a launch for a
pipeline whose previous run had completed re-attached to that run (and
handed back its result, a second ``RunCompleted``) instead of starting a new
one. Caught by ``launch_starts_a_new_run``, ``one_run_completed`` and
``phase_follows_input`` (the launch stays out of EXECUTING) on the
7-state trace Launch, Enter, Succeed, Enter, Succeed, Launch.
``failure_boundary=true`` starts each retry and resume from the latest
snapshot, whatever its kind: ``failure_snapshot_never_a_boundary`` fails on
the 4-state trace Launch, Enter, Fail(retryable).
``resume_from_start=true`` re-enters a resumed run's first state from its
base snapshot, past its recorded completions: ``resume_never_reexecutes``
(and the boundary property) fail on the 7-state trace Launch, Enter,
Succeed, Enter, Crash, Resume.

Figures (default size): 169 distinct states, 251 generated transitions,
depth 15; the variants keep depth 15 (the run-id bug: 143 states).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes
from statewright.kernel.machine import Transition
from statewright.kernel.step import emitted
from statewright.machines.launcher import (
    LAUNCHER_TRANSITIONS,
    Crash,
    Enter,
    Fail,
    Launch,
    Launcher,
    LauncherPhase,
    Resume,
    RunCompleted,
    RunStarted,
    RunStatus,
    Snapshot,
    SnapshotKind,
    StateEntered,
    StoredRun,
    Succeed,
    boundary,
    launcher_machine,
)
from statewright.specs.registry import REGISTRY

P = LauncherPhase


def previous_completed(s: Launcher, _i: Launch) -> bool:
    """The pipeline's latest run completed (what the buggy launcher looked up)."""
    return bool(s.runs) and s.runs[-1].status is RunStatus.COMPLETED


def previous_not_completed(s: Launcher, _i: Launch) -> bool:
    return not previous_completed(s, _i)


def _reattach(s: Launcher, _i: Launch) -> Launcher:
    return replace(s, launches=s.launches + 1)


def _handed_back(s: Launcher, _i: Launch) -> tuple[RunCompleted]:
    last = len(s.runs) - 1
    return (RunCompleted(last, RunStatus.COMPLETED, s.runs[last].latest),)


def reattaching(table: tuple[Transition[Launcher, Any], ...]) -> tuple[Transition[Launcher, Any], ...]:
    """The source's run-id bug: a launch after a completed run re-attaches to it and hands back its result."""
    out: list[Transition[Launcher, Any]] = []
    for t in table:
        if t.input is Launch:
            out.append(replace(t, guard=previous_not_completed))  # the launch row has no guard of its own
            out += [Transition(P.IDLE, Launch, P.IDLE, guard=[previous_completed, _more_after], update=_reattach,
                               emit=_handed_back),
                    Transition(P.IDLE, Launch, P.DONE, guard=[previous_completed, _last_launch], update=_reattach,
                               emit=_handed_back)]
        else:
            out.append(t)
    return tuple(out)


def _more_after(s: Launcher, _i: Launch) -> bool:
    return s.launches + 1 < s.max_launches


def _last_launch(s: Launcher, _i: Launch) -> bool:
    return s.launches + 1 >= s.max_launches


def with_entered(table: tuple[Transition[Launcher, Any], ...], rewrite: Any) -> tuple[Transition[Launcher, Any], ...]:
    """The table with every row's ``StateEntered`` effects rewritten by ``rewrite(state, effect)``."""
    out = []
    for t in table:
        emit = t.emit
        if callable(emit):
            def wrapped(s: Launcher, i: Any, emit: Any = emit) -> tuple[Any, ...]:
                return tuple(rewrite(s, e) if isinstance(e, StateEntered) else e for e in emit(s, i))
            t = replace(t, emit=wrapped)
        out.append(t)
    return tuple(out)


def _from_latest(s: Launcher, e: StateEntered) -> StateEntered:
    return replace(e, base=s.runs[e.run].latest)


def _from_the_base(s: Launcher, e: StateEntered) -> StateEntered:
    """A resume that rebuilds the run from its base snapshot re-enters the plan's first state."""
    return StateEntered(e.run, 0, e.attempt, Snapshot(SnapshotKind.BASE, 0))


def runs_that_ended_stay(before: Launcher, _i: Any, after: Launcher) -> bool:
    return all(b.status is RunStatus.RUNNING or a == b for b, a in zip(before.runs, after.runs))


def attempts_as_the_source_counts(s: Launcher) -> bool:
    return all(0 <= r.attempt < s.max_attempts for r in s.runs)


def phase_matches_runs(s: Launcher) -> bool:
    """A run is attached exactly while EXECUTING or CRASHED: the last one launched, still RUNNING and the
    only one with an attempt in flight; every other run ended. CRASHED only after a crash, DONE only once
    every launch is used, and the budgets are never overdrawn."""
    attached = s.phase in (P.EXECUTING, P.CRASHED)
    if attached != (s.attached is not None) or len(s.runs) > s.launches:
        return False
    if s.attached is not None and (s.attached != len(s.runs) - 1 or s.runs[-1].status is not RunStatus.RUNNING):
        return False
    others = [r for i, r in enumerate(s.runs) if i != s.attached]
    return (all(r.status is not RunStatus.RUNNING and not r.in_flight for r in others)
            and (s.phase is not P.CRASHED or s.crashes > 0) and (s.phase is not P.DONE or s.launches == s.max_launches)
            and 0 <= s.crashes <= s.max_crashes and s.launches <= s.max_launches)


def phase_follows_input(before: Launcher, event: Any, after: Launcher) -> bool:
    """Which input moves which phase: Launch leaves IDLE, Crash enters CRASHED, Resume leaves it; Enter,
    and a Succeed or Fail that leaves the run RUNNING, stay EXECUTING; one that ends the run goes to IDLE
    while launches remain, else DONE."""
    if isinstance(event, Launch):
        return (before.phase, after.phase) == (P.IDLE, P.EXECUTING)
    if isinstance(event, Crash):
        return (before.phase, after.phase) == (P.EXECUTING, P.CRASHED)
    if isinstance(event, Resume):
        return (before.phase, after.phase) == (P.CRASHED, P.EXECUTING)
    if before.phase is not P.EXECUTING or before.attached is None:
        return False
    if isinstance(event, Enter) or after.runs[before.attached].status is RunStatus.RUNNING:
        return after.phase is P.EXECUTING
    return after.phase is (P.IDLE if after.launches < after.max_launches else P.DONE)


def only_the_attempt_in_flight_reports(before: Launcher, event: Any, after: Launcher) -> bool:
    """A Succeed or Fail reports on the attempt in flight (entered, not yet reported): none reports on a
    state that was never entered; Enter begins one only when none is in flight."""
    if not isinstance(event, (Enter, Succeed, Fail)) or before.attached is None:
        return True
    return before.runs[before.attached].in_flight != isinstance(event, Enter)


@REGISTRY.spec
def launcher(
    states: int = 2,
    max_attempts: int = 2,
    launches: int = 2,
    crashes: int = 1,
    reattach_completed: bool = False,
    failure_boundary: bool = False,
    resume_from_start: bool = False,
) -> Spec:
    """The launcher: a new run per launch, exactly one RunCompleted each, resume past recorded states."""
    table = LAUNCHER_TRANSITIONS
    expect: dict[str, int] = {}
    if reattach_completed:
        table = reattaching(table)
        expect |= {"launch_starts_a_new_run": 2 * states + 3, "one_run_completed": 2 * states + 3,
                   "phase_follows_input": 2 * states + 3}
    if failure_boundary:
        table = with_entered(table, _from_latest)
        expect |= {"failure_snapshot_never_a_boundary": 4}
    if resume_from_start:
        resumes = tuple(t for t in table if t.input is Resume)
        table = tuple(with_entered(resumes, _from_the_base)[resumes.index(t)] if t in resumes else t for t in table)
        expect |= {"resume_never_reexecutes": 7, "failure_snapshot_never_a_boundary": 7}
    machine = launcher_machine(states, max_attempts, launches, crashes, transitions=table)

    def effects(before: Launcher, event: Any, after: Launcher) -> tuple[Any, ...]:
        """What the step emitted, by the row that took it (a mutant's too: `kernel.step.emitted`)."""
        return emitted(machine, before, event, after)

    def one_run_completed(before: Launcher, event: Any, after: Launcher) -> bool:
        ended = {r for r, b in enumerate(before.runs)
                 if b.status is RunStatus.RUNNING and after.runs[r].status is not RunStatus.RUNNING}
        reported = [e.run for e in effects(before, event, after) if isinstance(e, RunCompleted)]
        return sorted(reported) == sorted(ended)

    def launch_starts_a_new_run(before: Launcher, event: Any, after: Launcher) -> bool:
        if not isinstance(event, Launch):
            return True
        new = len(before.runs)
        return (len(after.runs) == new + 1 and after.runs[new] == StoredRun() and after.attached == new
                and RunStarted(new) in effects(before, event, after))

    def resume_never_reexecutes(before: Launcher, event: Any, after: Launcher) -> bool:
        return all(e.state == before.runs[e.run].done if e.run < len(before.runs) else e.state == 0
                   for e in effects(before, event, after) if isinstance(e, StateEntered))

    def failure_snapshot_never_a_boundary(before: Launcher, event: Any, after: Launcher) -> bool:
        for e in effects(before, event, after):
            if isinstance(e, StateEntered):
                run = before.runs[e.run] if e.run < len(before.runs) else StoredRun()
                if e.base.kind is SnapshotKind.FAILURE or e.base != boundary(run):
                    return False
        return True

    def non_retryable_fails_at_once(before: Launcher, event: Any, after: Launcher) -> bool:
        if not isinstance(event, Fail) or before.attached is None:
            return True
        run = before.runs[before.attached]
        ends = not event.retryable or run.attempt + 1 >= before.max_attempts
        return (after.runs[before.attached].status is RunStatus.FAILED) == ends

    def ended(status: RunStatus, n: int = 1) -> Any:
        return lambda s: sum(r.status is status for r in s.runs) >= n

    return Spec(
        "launcher",
        machine,
        inputs=[Launch(), Enter(), Succeed(), Fail(True), Fail(False), Crash(), Resume()],
        properties=[
            always_step("one_run_completed", one_run_completed),
            always_step("runs_that_ended_stay", runs_that_ended_stay),
            always_step("launch_starts_a_new_run", launch_starts_a_new_run),
            always_step("resume_never_reexecutes", resume_never_reexecutes),
            always_step("failure_snapshot_never_a_boundary", failure_snapshot_never_a_boundary),
            always_step("non_retryable_fails_at_once", non_retryable_fails_at_once),
            always("attempts_as_the_source_counts", attempts_as_the_source_counts),
            always("phase_matches_runs", phase_matches_runs),
            always_step("phase_follows_input", phase_follows_input),
            always_step("only_the_attempt_in_flight_reports", only_the_attempt_in_flight_reports),
            sometimes("completes", ended(RunStatus.COMPLETED)),
            sometimes("fails", ended(RunStatus.FAILED)),
            sometimes("retries", lambda s: any(r.attempt > 0 for r in s.runs)),
            sometimes("resumes_after_a_completion",
                      lambda s: s.crashes > 0 and s.phase is P.EXECUTING and any(r.done for r in s.runs)),
            *([sometimes("two_runs_completed", ended(RunStatus.COMPLETED, 2))]
              if launches >= 2 and not reattach_completed else []),
        ],
        terminates=True,
        recoverable=True,
        expect=expect,
        doc=__doc__ or "",
    )
