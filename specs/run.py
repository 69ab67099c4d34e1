"""The run of an execution plan (machines/run.py), checked over a small diamond plan.

The default plan is the diamond ``a -> b, a -> c, b -> d, c -> d`` with two
attempts per state; every input is tried for every plan state. Properties:

* ``terminal_stable`` -- a terminal run never changes (terminal precedence as
  an action property, beside the built-in check);
* ``never_back_to_pending`` -- once started, a run never returns to PENDING:
  PENDING means "not started yet", and ``Start`` is its only way out;
* ``one_run_completed`` -- a step emits ``RunCompleted`` exactly when it takes
  the run from a live phase to a terminal one, and then exactly once; with
  ``terminal_stable`` that makes exactly one ``RunCompleted`` per finished run;
* ``dependencies_first`` -- every ``StateEntered`` names a state whose
  dependencies had all completed before the step;
* ``attempt_ends_by_its_outcome`` -- nothing replaces the state in flight
  (an ``Enter`` while it runs would abandon it unreported); only its own
  success clears it, and a failure or cancellation keeps it on record;
* ``reports_name_the_state_in_flight`` -- every ``StateCompleted`` and
  ``StateFailed`` names the state whose attempt was in flight;
* ``non_retryable_ends_the_run`` -- a failure that is not retryable
  (``Fail(x, retryable=False)``, the source's ``ErrorInfo.retryable``) fails
  the run at once, whatever attempts are left, and reports ``will_retry=False``;
* ``attempts_bounded`` -- the attempt in flight is within ``1..max_attempts``,
  and is 0 exactly when nothing is in flight;
* ``completed_is_whole_plan`` -- a COMPLETED run completed every plan state, and
  the completed set is always closed under dependencies;
* witnesses that each outcome (completed, failed, cancelled) and a retry happen.

``terminates`` and ``recoverable`` hold: every retry spends an attempt and
every success completes a plan state, so the state graph has no cycle, and
no live run is stuck (``Cancel`` at least) -- weak fairness forces an end,
and one is reachable from everywhere.

``dependency_guard=false`` seeds a bug: the Enter row loses its
``dependencies_completed`` guard, and ``dependencies_first`` fails on the
3-state trace Start, Enter(<a state with a dependency>).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes, terminal_stable
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Guard, Transition
from statewright.kernel.step import emitted
from statewright.machines.run import (
    RUN_TRANSITIONS,
    TERMINAL,
    Cancel,
    Enter,
    Fail,
    Plan,
    Resume,
    Run,
    RunCompleted,
    RunPhase,
    Start,
    StateCompleted,
    StateEntered,
    StateFailed,
    Succeed,
    run_machine,
)
from statewright.specs.registry import REGISTRY


def parse_plan(states: str, edges: str) -> Plan:
    """``"a,b"`` and ``"a>b,b>c"`` -> a `Plan` (validated later by `run_machine`)."""
    ids = tuple(s.strip() for s in states.split(",") if s.strip())
    pairs: list[tuple[str, str]] = []
    for raw in edges.split(","):
        if not raw.strip():
            continue
        before, sep, after = raw.partition(">")
        if not sep:
            raise DefinitionError(f"spec 'run': edge {raw!r} is not 'before>after'")
        pairs.append((before.strip(), after.strip()))
    return Plan(ids, tuple(pairs))


def without_guard(table: tuple[Transition, ...], input_type: type, name: str) -> tuple[Transition, ...]:
    """The table with the guard called ``name`` dropped from every row taking ``input_type``."""
    out = []
    for t in table:
        if t.input is input_type:
            guards = t.guard if isinstance(t.guard, (list, tuple)) else () if t.guard is None else (t.guard,)
            kept = [g for g in guards if (g.name if isinstance(g, Guard) else g.__name__) != name]
            t = replace(t, guard=kept)
        out.append(t)
    return tuple(out)


def never_back_to_pending(before: Run, _input: Any, after: Run) -> bool:
    return before.phase is RunPhase.PENDING or after.phase is not RunPhase.PENDING


def attempt_ends_by_its_outcome(before: Run, event: Any, after: Run) -> bool:
    """Nothing replaces the state in flight: it stays until its own success clears it."""
    if before.current is None or after.current == before.current:
        return True
    return isinstance(event, Succeed) and event.state_id == before.current and after.current is None


def attempts_bounded(run: Run) -> bool:
    if run.current is None:
        return run.attempt == 0
    return 1 <= run.attempt <= run.max_attempts


def completed_is_whole_plan(run: Run) -> bool:
    done = run.completed
    closed = all(d in done for sid in done for d in run.plan.dependencies(sid))
    whole = run.phase is not RunPhase.COMPLETED or done == run.plan.states
    return closed and whole


@REGISTRY.spec
def run(
    states: str = "a,b,c,d",
    edges: str = "a>b,a>c,b>d,c>d",
    max_attempts: int = 2,
    dependency_guard: bool = True,
) -> Spec:
    """A run of a diamond plan: one RunCompleted, dependencies first, bounded retries."""
    plan = parse_plan(states, edges)
    table = RUN_TRANSITIONS if dependency_guard else without_guard(RUN_TRANSITIONS, Enter, "dependencies_completed")
    machine = run_machine(plan, max_attempts, transitions=table)

    def effects(before: Run, event: Any, after: Run) -> tuple[Any, ...]:
        """What the step emitted, by the row that took it (a mutant's too: `kernel.step.emitted`)."""
        return emitted(machine, before, event, after)

    def one_run_completed(before: Run, event: Any, after: Run) -> bool:
        ends = before.phase not in TERMINAL and after.phase in TERMINAL
        count = sum(isinstance(e, RunCompleted) for e in effects(before, event, after))
        return count == (1 if ends else 0)

    def dependencies_first(before: Run, event: Any, after: Run) -> bool:
        return all(
            all(d in before.completed for d in plan.dependencies(e.state_id))
            for e in effects(before, event, after)
            if isinstance(e, StateEntered)
        )

    def reports_name_the_state_in_flight(before: Run, event: Any, after: Run) -> bool:
        return all(
            e.state_id == before.current
            for e in effects(before, event, after)
            if isinstance(e, (StateCompleted, StateFailed))
        )

    def non_retryable_ends_the_run(before: Run, event: Any, after: Run) -> bool:
        if not (isinstance(event, Fail) and not event.retryable and after != before):
            return True
        failed = [e for e in effects(before, event, after) if isinstance(e, StateFailed)]
        return after.phase is RunPhase.FAILED and [e.will_retry for e in failed] == [False]

    inputs: list[Any] = [Start(), Cancel(), Resume()]
    for sid in plan.states:
        inputs += [Enter(sid), Succeed(sid), Fail(sid), Fail(sid, retryable=False)]
    return Spec(
        "run",
        machine,
        inputs=inputs,
        properties=[
            terminal_stable(TERMINAL),
            always_step("never_back_to_pending", never_back_to_pending),
            always_step("one_run_completed", one_run_completed),
            always_step("dependencies_first", dependencies_first),
            always_step("attempt_ends_by_its_outcome", attempt_ends_by_its_outcome),
            always_step("reports_name_the_state_in_flight", reports_name_the_state_in_flight),
            always_step("non_retryable_ends_the_run", non_retryable_ends_the_run),
            always("attempts_bounded", attempts_bounded),
            always("completed_is_whole_plan", completed_is_whole_plan),
            sometimes("completes", lambda r: r.phase is RunPhase.COMPLETED),
            sometimes("fails", lambda r: r.phase is RunPhase.FAILED),
            sometimes("is_cancelled", lambda r: r.phase is RunPhase.CANCELLED),
            sometimes("retries", lambda r: r.attempt >= 2),
        ],
        terminates=True,
        recoverable=True,
        doc=__doc__ or "",
    )
