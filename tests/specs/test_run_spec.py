"""The registered ``run`` spec: exact figures on the diamond plan, and a seeded bug caught.

Why 42 states: PENDING (1); RUNNING has five dependency-closed, incomplete
completed sets ({}, {a}, {a,b}, {a,c}, {a,b,c}), each idle or with one of its
ready states in flight at attempt 1 or 2 (3 + 5 + 3 + 3 + 3 = 17); COMPLETED (1);
FAILED keeps the failed state at attempt 2, one per ready state per set (6);
CANCELLED keeps the 17 RUNNING shapes, and cancelling from PENDING lands on the
same state as cancelling the idle run with nothing done (17). The deepest
state is a failure or cancellation while d is in flight at attempt 2: 10 steps,
so depth 11.
"""

from __future__ import annotations

from dataclasses import replace

from statewright.kernel.checker import Status, Verdict, check
from statewright.kernel.step import step
from statewright.machines.run import (
    RUN_TRANSITIONS,
    Enter,
    Fail,
    Outcome,
    Plan,
    Resume,
    RunCompleted,
    RunPhase,
    Start,
    StateEntered,
    StateFailed,
    Succeed,
    run_machine,
)
from statewright.specs.run import parse_plan
from statewright.specs.run import run as build


def test_the_diamond_is_checked_completely() -> None:
    report = check(build())
    assert report.verdict is Verdict.OK and report.complete and report.stopped_by is None
    # 42 states with retryable failures only; a failure that is not retryable adds a FAILED run at attempt 1
    # for each of the 6 (completed, in flight) pairs the diamond reaches: 48
    assert (report.distinct_states, report.generated, report.depth) == (48, 78, 11)
    assert report.never_fired == ()
    assert all(r.status is Status.HOLDS for r in report.properties)


def test_witnesses_are_shortest() -> None:
    report = check(build())
    lengths = {name: len(report.result(name).trace or ()) for name in ("completes", "fails", "is_cancelled", "retries")}
    # fails: Start, Enter(a), Fail(a, retryable=False) -- one step shorter than spending both attempts
    assert lengths == {"completes": 10, "fails": 4, "is_cancelled": 2, "retries": 4}
    done = report.result("completes").trace
    assert done is not None
    effects = [e for s in done for e in s.effects]
    assert sum(isinstance(e, RunCompleted) for e in effects) == 1


def test_the_registry_knows_it() -> None:
    from statewright.specs.registry import REGISTRY

    entry = REGISTRY.get("run")
    assert entry.params == {"states": "a,b,c,d", "edges": "a>b,a>c,b>d,c>d", "max_attempts": 2,
                            "dependency_guard": True}


def test_more_attempts_grow_the_space_as_counted() -> None:
    # each of the 6 (completed set, ready state) pairs gains attempt 3, RUNNING and CANCELLED, and
    # FAILED at attempt 3 (a failure that is not retryable fails at any attempt: FAILED holds attempts
    # 1..max_attempts per pair); one more Fail on the deepest path
    report = check(build(max_attempts=3))
    assert report.verdict is Verdict.OK and report.complete
    assert (report.distinct_states, report.depth) == (48 + 6 * 3, 12)


def test_dropping_the_dependency_guard_is_caught_in_three_states() -> None:
    report = check(build(dependency_guard=False))
    result = report.result("dependencies_first")
    assert report.verdict is Verdict.VIOLATED and result.status is Status.VIOLATED
    assert report.stopped_by == "violation"
    assert result.trace is not None and len(result.trace) == 3
    assert [s.input for s in result.trace[1:]] == [Start(), Enter("b")]
    last = result.trace[-1]
    assert last.effects == (StateEntered("b", 1),) and last.state.completed == ()
    assert last.state.phase is RunPhase.RUNNING


def test_a_success_that_rewinds_the_run_to_pending_is_caught() -> None:
    # a table whose non-final Succeed row lands on PENDING: the run looks unstarted again
    table = tuple(replace(t, target=RunPhase.PENDING) if t.input is Succeed and t.target is RunPhase.RUNNING
                  else t for t in RUN_TRANSITIONS)
    spec = build()
    spec = replace(spec, model=run_machine(parse_plan("a,b,c,d", "a>b,a>c,b>d,c>d"), 2, transitions=table))
    report = check(spec)
    result = report.result("never_back_to_pending")
    assert report.verdict is Verdict.VIOLATED and result.status is Status.VIOLATED
    assert result.trace is not None
    # Resume comes before Enter in the domain, and resuming a fresh run enters a at attempt 1
    assert [s.input for s in result.trace[1:]] == [Start(), Resume(), Succeed("a")]
    assert result.trace[-1].state.phase is RunPhase.PENDING


def test_a_failure_that_is_not_retryable_fails_the_run_at_once() -> None:
    m = run_machine(Plan(("a", "b"), (("a", "b"),)), max_attempts=3)
    s = m.initial
    for event in (Start(), Enter("a")):
        s = step(m, s, event).state
    r = step(m, s, Fail("a", retryable=False))
    assert r.state.phase is RunPhase.FAILED and r.state.attempt == 1
    assert r.effects == (StateFailed("a", 1, False), RunCompleted(Outcome.FAILED))
    retried = step(m, s, Fail("a"))
    assert retried.state.phase is RunPhase.RUNNING and retried.state.attempt == 2
