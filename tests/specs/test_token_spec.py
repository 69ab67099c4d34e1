"""The token and operator specs: exact figures, full coverage, and the seeded bugs they catch.

The figures are fixed by the model (a hand-run BFS over the same domains
agrees). ``token``: UNISSUED, then 3 bindings (worker/t1, worker/t2,
operator) x uses {2, 1, 0} ACTIVE, as many EXPIRED and REVOKED, and 3
EXHAUSTED (uses 0 only): 1 + 9 + 9 + 9 + 3 = 31 states, depth 5 (issue, two
uses, retire). ``operator``: NEW; ATTACHED over
last_seen 0..3 x 4 task sets x reattached (32); as many DETACHED on request
(32); DETACHED by a missed heartbeat only where last_seen + 2 <= 3, so
last_seen 0..1 (16): 1 + 32 + 32 + 16 = 81 states; depth 7 (attach, own, own,
detach, reattach, detach).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statewright.kernel.checker import Report, Spec, Status, Verdict, check
from statewright.kernel.step import Accepted, step
from statewright.machines.token import (
    Attach,
    Detach,
    Issue,
    MissHeartbeat,
    OwnTask,
    Reattach,
    Role,
    SessionPhase,
    TokenPhase,
    Verb,
    Verify,
)
from statewright.machines.token import TOKEN, binding_fits_role, has_budget, operator_machine, task_is_new
from statewright.specs.token import operator, token, without_guard


def replay(spec: Spec, trace: Any) -> None:
    """A trace replays step by step through the spec's own machine."""
    state = spec.model.initial
    assert trace[0].state == state and trace[0].input is None
    for s in trace[1:]:
        out = step(spec.model, state, s.input)  # type: ignore[arg-type]
        assert isinstance(out, Accepted) and out.state == s.state and out.effects == s.effects
        state = out.state


def timed(spec: Spec, **kw: Any) -> Report:
    r = check(spec, **kw)
    return r


# -- token ------------------------------------------------------------------------------


def test_token_checks_complete_with_exact_figures() -> None:
    r = timed(token())
    assert (r.verdict, r.complete, r.stopped_by) == (Verdict.OK, True, None)
    assert (r.distinct_states, r.depth, r.generated) == (31, 5, 52)
    assert r.never_fired == ()
    assert all(p.status is Status.HOLDS for p in r.properties)


@pytest.mark.parametrize(
    ("name", "length", "phase"),
    [("exhausted", 5, TokenPhase.EXHAUSTED), ("expired", 3, TokenPhase.EXPIRED), ("revoked", 3, TokenPhase.REVOKED)],
)
def test_token_witnesses_every_terminal_outcome(name: str, length: int, phase: TokenPhase) -> None:
    spec = token()
    trace = check(spec).result(name).trace
    assert trace is not None and len(trace) == length and trace[-1].state.phase is phase
    replay(spec, trace)


def test_token_worker_spent_witness() -> None:
    trace = check(token()).result("worker_spent").trace
    assert trace is not None and len(trace) == 4
    assert trace[-1].state.role is Role.WORKER and trace[-1].state.uses_left == 0


def test_without_the_ownership_guard_a_worker_touches_another_task_in_3_states() -> None:
    spec = token(task_guard=False)
    r = check(spec)
    res = r.result("worker_stays_on_task")
    assert (r.verdict, r.stopped_by, res.status) == (Verdict.VIOLATED, "violation", Status.VIOLATED)
    assert res.trace is not None and len(res.trace) == 3
    assert res.trace[1].input == Issue(Role.WORKER, "t1", 2, 2)
    assert res.trace[2].input == Verify(Verb.POST_RESULT, "t2", 0, True)
    replay(spec, res.trace)


def test_without_the_use_budget_a_spent_token_verifies_in_5_states() -> None:
    spec = token(use_guard=False)
    r = check(spec)
    res = r.result("no_use_when_spent")
    assert (r.verdict, r.stopped_by, res.status) == (Verdict.VIOLATED, "violation", Status.VIOLATED)
    assert res.trace is not None and len(res.trace) == 5 and res.trace[-1].state.uses_left == -1
    replay(spec, res.trace)
    # the invariant sees the same state; the buggy space is infinite, so bound it to see both
    r = check(spec, max_depth=6, keep_going=True)
    neg = r.result("uses_never_negative").trace
    assert r.result("no_use_when_spent").status is Status.VIOLATED
    assert neg is not None and len(neg) == 5


@pytest.mark.parametrize(
    ("guard", "name", "issue"),
    [(binding_fits_role, "bound_as_its_role", Issue(Role.WORKER, None, 2, 2)),
     (has_budget, "issued_usable", Issue(Role.WORKER, "t1", 2, 0))],
)
def test_issue_guards_are_tried_both_ways(guard: object, name: str, issue: Issue) -> None:
    # the domain offers a worker bound to nothing and a budget of zero; the guards refuse them
    spec = replace(token(), model=without_guard(TOKEN, guard))
    r = check(spec)
    res = r.result(name)
    assert (r.verdict, res.status) == (Verdict.VIOLATED, Status.VIOLATED)
    assert res.trace is not None and [s.input for s in res.trace[1:]] == [issue]
    replay(spec, res.trace)


def test_shorter_budget_and_later_expiry_still_check() -> None:
    r = timed(token(times=4, expiry=3, uses=1))
    assert (r.verdict, r.complete) == (Verdict.OK, True)
    # 1 + 3 bindings x (ACTIVE uses {1,0} + EXPIRED {1,0} + REVOKED {1,0} + EXHAUSTED)
    assert (r.distinct_states, r.depth) == (1 + 3 * 7, 4)
    assert r.never_fired == ()


def test_a_clock_that_never_reaches_expiry_misses_the_expired_witness() -> None:
    r = check(token(times=3, expiry=3))
    assert (r.verdict, r.complete) == (Verdict.VIOLATED, True)
    assert [p.name for p in r.properties if p.failed] == ["expired"]
    assert [c.label for c in r.never_fired] == ["ACTIVE --Sweep[past_expiry]--> EXPIRED"]


# -- operator ------------------------------------------------------------------------------


def test_operator_checks_complete_with_exact_figures() -> None:
    r = timed(operator())
    assert (r.verdict, r.complete, r.stopped_by) == (Verdict.OK, True, None)
    assert (r.distinct_states, r.depth, r.generated) == (81, 7, 308)
    assert r.never_fired == ()
    assert all(p.status is Status.HOLDS for p in r.properties)


def test_operator_witnesses_reattach_with_tasks_and_a_missed_heartbeat() -> None:
    spec = operator()
    r = check(spec)
    back, missed = r.result("reattached_with_tasks").trace, r.result("missed_with_tasks").trace
    assert back is not None and [s.input for s in back[1:]] == [
        Attach(0), OwnTask("t1"), OwnTask("t2"), Detach(), Reattach(0),
    ]
    assert missed is not None and [s.input for s in missed[1:]] == [Attach(0), OwnTask("t1"), MissHeartbeat(2)]
    replay(spec, back)
    replay(spec, missed)


def test_a_reattach_that_forgets_tasks_is_caught_in_5_states() -> None:
    spec = operator(reattach_keeps_tasks=False)
    r = check(spec)
    res = r.result("tasks_kept")
    assert (r.verdict, res.status) == (Verdict.VIOLATED, Status.VIOLATED)
    assert res.trace is not None and len(res.trace) == 5
    before, after = res.trace[-2].state, res.trace[-1].state
    assert (before.phase, before.tasks) == (SessionPhase.DETACHED, ("t1",))
    assert (after.phase, after.tasks) == (SessionPhase.ATTACHED, ())
    replay(spec, res.trace)


@pytest.mark.parametrize("miss_after", [0, 1])
def test_a_scan_threshold_below_the_timeout_detaches_early_in_3_states(miss_after: int) -> None:
    spec = operator(miss_after=miss_after)
    r = check(spec)
    res = r.result("miss_only_after_timeout")
    assert (r.verdict, res.status) == (Verdict.VIOLATED, Status.VIOLATED)
    assert res.trace is not None and [s.input for s in res.trace[1:]] == [Attach(0), MissHeartbeat(miss_after)]
    replay(spec, res.trace)


def test_a_scan_threshold_above_the_timeout_is_safe() -> None:
    r = timed(operator(miss_after=3))
    # only last_seen 0 can be missed by time 3: 16 - 8 missed-detach states
    assert (r.verdict, r.distinct_states, r.depth) == (Verdict.OK, 73, 7)


def test_a_session_that_owns_a_task_twice_is_caught_in_4_states() -> None:
    spec = replace(operator(), model=without_guard(operator_machine(2), task_is_new))
    r = check(spec)
    res = r.result("tasks_distinct")
    assert (r.verdict, res.status) == (Verdict.VIOLATED, Status.VIOLATED)
    assert res.trace is not None and [s.input for s in res.trace[1:]] == [Attach(0), OwnTask("t1"), OwnTask("t1")]
    assert res.trace[-1].state.tasks == ("t1", "t1")
    replay(spec, res.trace)
