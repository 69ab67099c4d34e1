"""Liveness of the bundled lifecycles, and the liveness bugs the source runtimes really had.

Part one pins what each lifecycle spec says about ``terminates`` (under weak
fairness of each instance's own rows, every behaviour ends) and
``recoverable`` (from every reachable state a home state -- by default a
final one -- can still be reached): which of them hold, and, where the
built-in is left off, the lasso that is the documented reason.

Part two replays the history in ``reference/source-history``: four pre-fix
behaviours, each a ``--set`` knob of a bundled spec whose default is the
fixed model. Each is caught by a temporal property with a lasso
counterexample (prefix and cycle, pinned exactly; here every cycle is a
stutter: the bug leaves nothing the fair part of the system can do), and the
fixed model holds it:

(a) ``session_inputs --set defer_total=false`` -- an input abandoned at its
    attempt limit strands the backlog (``backlog_drains``);
(b) ``session --set stopped=absorbs`` -- re-registering a STOPPED session
    is absorbed, so resume loops on itself (``stop_settles``);
(c) ``session --set recover_settles_drain=false`` -- a recovered DRAINING
    registration refuses every attach (``recovery_completes``);
(d) ``task --set fault_rolls_back=false`` -- a spawn that fails past the flip
    to RUNNING leaves the task running with no worker (``running_ends``,
    ``running_gets_a_worker``; the safety properties ``worker_behind_running``
    and ``spawn_failure_rolls_back`` see the step itself).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from statewright.adapters.cli import run
from statewright.adapters.testing.stateful import replay
from statewright.kernel.checker import PropertyResult, Report, Spec, Status, Verdict, check
from statewright.kernel.step import Accepted, Rejected, step
from statewright.kernel.system import Action, Blocked, System
from statewright.machines.input import AbandonReason, InputPhase
from statewright.machines.session import (
    AcceptInput,
    AttachExecutor,
    DetachExecutor,
    FailRun,
    Recover,
    Registration,
    SessionPhase,
    StartRun,
    Stop,
)
from statewright.machines.task import Answer, Ask, Cancel, Dispatch, SpawnFailed, TaskPhase, Worker
from statewright.machines.token import Attach, Detach, Reattach
from statewright.specs import REGISTRY
from statewright.specs.session import DRAIN_NOT_SETTLED, STOP_ABSORBS, STRANDED
from statewright.specs.task import FAULT_STRANDS
from tests.specs.reports import report

HOLDS, EXPECTED = Status.HOLDS, Status.EXPECTED


def build(name: str, **knobs: Any) -> Spec:
    return REGISTRY.get(name).spec(**knobs)


def statuses(r: Report) -> dict[str, Status]:
    return {p.name: p.status for p in r.properties}


def inputs_of(result: PropertyResult) -> list[Any]:
    """The inputs a trace takes (for a system, the acting instance's input)."""
    assert result.trace is not None
    return [getattr(s.input, "input", s.input) for s in result.trace[1:]]


def assert_lasso(r: Report, name: str, *, length: int, loop: int, status: Status = EXPECTED) -> PropertyResult:
    """``name`` is reported with a lasso of ``length`` states that returns to step ``loop`` forever."""
    res = r.result(name)
    assert res.status is status, (name, res.status, res.detail)
    assert res.trace is not None and len(res.trace) == length
    assert res.loop == loop
    return res


def assert_replays(spec: Spec, res: PropertyResult) -> None:
    """The lasso replays through the generated suite and its loop closes (safety findings are not the point)."""
    assert res.trace is not None
    assert replay(spec, res.trace, loop=res.loop, include_expected=False).stopped is None


def only_findings(r: Report, pins: Mapping[str, int]) -> None:
    """The check passes, and exactly the pinned properties are found, each by a trace of its pinned length."""
    assert r.verdict is Verdict.OK and r.complete
    found = {p.name: len(p.trace or ()) for p in r.properties if p.status is not HOLDS}
    assert found == dict(pins)


# -- part one: every bundled lifecycle spec -----------------------------------------------------

INTENDED: dict[str, Status | None] = {
    "input": HOLDS,
    "run": HOLDS,
    "loop_frame": HOLDS,
    "token": HOLDS,
    "session": None,
    "session_inputs": None,
    "task": None,
    "task_as_written": None,
    "operator": None,
    "launcher": HOLDS,
    "fact_io": HOLDS,
    "child_runs": HOLDS,
}
"""``terminates`` per lifecycle spec: HOLDS, or None where it is left off (see the reasons below).
``recoverable`` is on everywhere and holds everywhere."""


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "session_inputs" else n
                                  for n in sorted(INTENDED)])
def test_each_lifecycle_reports_terminates_and_recoverable_as_intended(name: str) -> None:
    spec = build(name)
    assert spec.recoverable and spec.terminates == (INTENDED[name] is not None)
    r = report(name)
    got = statuses(r)
    assert got["recoverable"] is HOLDS
    assert got.get("terminates") is INTENDED[name]


def test_the_lifecycle_list_is_every_bundled_lifecycle() -> None:
    tla_ports_and_puzzles = {"cas_atomic", "cas_non_atomic", "diehard", "input_lifecycle", "two_phase",
                             "alternating_bit", "coffee_can", "crdt", "ewd840", "lamport_mutex"}
    protocols = {"order_payment", "order_payment_async", "dispatch"}  # test_order_payment.py, test_dispatch_spec.py
    assert set(REGISTRY.names) == set(INTENDED) | tla_ports_and_puzzles | protocols


# Where terminates is left off, the lasso it would report is the documented reason: a lifecycle that
# may go round forever through its own rows, by design. (session_inputs has session's own loop.)
LEFT_OFF = {
    "session": (2, 0, [AttachExecutor()]),  # attach, detach, attach, ...: an idle session lives on
    "task": (2, 0, [Dispatch()]),  # a spawner may fail forever: each failure rolls the dispatch back
    "task_as_written": (3, 1, [Ask("q"), Answer("a")]),  # the same, before any dispatch
    "operator": (5, 3, [Attach(0), Detach(), Reattach(0), Detach()]),  # no terminal phase at all
}


@pytest.mark.parametrize("name", sorted(LEFT_OFF))
def test_terminates_is_left_off_where_the_lifecycle_runs_forever_by_design(name: str) -> None:
    spec = replace(build(name), terminates=True)
    r = check(spec)
    length, loop, taken = LEFT_OFF[name]
    res = assert_lasso(r, "terminates", length=length, loop=loop, status=Status.VIOLATED)
    assert inputs_of(res) == taken
    assert "leads back to step" in (res.detail or "")


def test_the_operator_needs_a_home_because_nothing_ends_it() -> None:
    r = check(replace(build("operator"), home=None))
    res = r.result("recoverable")
    assert res.status is Status.VIOLATED and res.trace is not None and len(res.trace) == 1
    assert res.detail == ("no home state is reachable from here: 81 reachable states are trapped "
                          "(NEW; ATTACHED; DETACHED)")


# -- part two: the source runtimes' liveness bugs ----------------------------------------------


@pytest.mark.slow
def test_a_abandoned_input_strands_the_backlog() -> None:
    """(a) The failed input is abandoned at its limit; deferring it is refused and the loop loses its wake."""
    spec = build("session_inputs", defer_total=False)
    r = report("session_inputs", defer_total=False)
    only_findings(r, STRANDED)
    res = assert_lasso(r, "backlog_drains", length=8, loop=7)
    assert "stutters forever" in (res.detail or "")
    assert inputs_of(res) == [AcceptInput("in1"), AttachExecutor(), AcceptInput("in2"), StartRun("r1", "in1"),
                              FailRun("r1", "in1"), StartRun("r1", "in1"), FailRun("r1", "in1")]
    assert res.trace is not None
    last = res.trace[-1].state
    assert last.in1.phase is InputPhase.ABANDONED and last.in1.outcome.reason is AbandonReason.MAX_ATTEMPTS_EXHAUSTED
    assert last.in2.phase is InputPhase.QUEUED and last.session.queued == (("in2", 0),)
    assert last.session.parked and last.session.registration is Registration.ACTIVE
    system = spec.model
    assert isinstance(system, System)
    refused = system.step(last, Action("session", StartRun("r1", "in2")))
    assert isinstance(refused, Blocked) and isinstance(refused.why, Rejected) and refused.why.guards == ("awake",)
    assert_replays(spec, res)
    # fixed: the failure is resolved in the one step and the backlog drains
    assert statuses(report("session_inputs"))["backlog_drains"] is HOLDS


def test_b_a_stopped_session_absorbs_its_resume() -> None:
    """(b) Re-registering a STOPPED session is accepted and changes nothing: resume loops on itself."""
    spec = build("session", stopped="absorbs")
    r = report("session", stopped="absorbs")
    only_findings(r, STOP_ABSORBS)
    res = assert_lasso(r, "stop_settles", length=2, loop=1)
    assert inputs_of(res) == [Stop()]
    assert res.trace is not None
    stopped = res.trace[-1].state
    assert stopped.phase is SessionPhase.STOPPED
    again = step(spec.model, stopped, AttachExecutor())  # the stutter is this accepted re-registration
    assert isinstance(again, Accepted) and again.state == stopped
    assert inputs_of(assert_lasso(r, "recovery_completes", length=3, loop=2)) == [Recover(), Stop()]
    assert_replays(spec, res)
    # fixed, as the source fixed it: re-registration revives a stopped session to IDLE
    revives = report("session", stopped="revives")
    assert revives.verdict is Verdict.OK and set(statuses(revives).values()) == {HOLDS}
    assert revives.distinct_states == 644
    # and as this model has it: a stop is final, and a re-registration is refused with a reason
    assert statuses(report("session"))["stop_settles"] is HOLDS
    refused = step(build("session").model, stopped, AttachExecutor())
    assert isinstance(refused, Rejected) and "terminal" in refused.message


def test_c_a_recovered_drain_leaves_the_session_unresumable() -> None:
    """(c) Recovery replays a DRAINING registration, and every attach is refused while it drains."""
    spec = build("session", recover_settles_drain=False)
    r = report("session", recover_settles_drain=False)
    only_findings(r, DRAIN_NOT_SETTLED)
    res = assert_lasso(r, "recovery_completes", length=6, loop=5)
    taken = [AttachExecutor(), AcceptInput("in1"), StartRun("r1", "in1"), DetachExecutor(), Recover()]
    assert inputs_of(res) == taken
    assert res.trace is not None
    wedged = res.trace[-1].state
    assert (wedged.phase, wedged.registration) == (SessionPhase.RECOVERING, Registration.DRAINING)
    refused = step(spec.model, wedged, AttachExecutor())
    assert isinstance(refused, Rejected) and refused.guards == ("not_draining",)
    assert_replays(spec, res)
    # fixed: recovery settles the drain (the executor is gone), and the attach brings the run back
    assert statuses(report("session"))["recovery_completes"] is HOLDS
    machine = build("session").model
    state = machine.initial
    for event in (*taken, AttachExecutor()):
        out = step(machine, state, event)
        assert isinstance(out, Accepted)
        state = out.state
    assert (state.phase, state.registration) == (SessionPhase.RUNNING, Registration.ACTIVE)


def test_d_a_fault_past_the_flip_leaves_the_task_running() -> None:
    """(d) The dispatch flipped the task to RUNNING, then the spawn failed: nothing runs it, nothing reports."""
    spec = build("task", fault_rolls_back=False)
    r = report("task", fault_rolls_back=False)
    only_findings(r, FAULT_STRANDS)
    for name in ("running_ends", "running_gets_a_worker"):
        assert inputs_of(assert_lasso(r, name, length=3, loop=2)) == [Dispatch(), SpawnFailed(1, "store fault")]
    for name in ("worker_behind_running", "spawn_failure_rolls_back"):
        assert inputs_of(r.result(name)) == [Dispatch(), SpawnFailed(1, "store fault")]
    res = r.result("running_ends")
    assert res.trace is not None
    orphan = res.trace[-1].state
    assert orphan.phase is TaskPhase.RUNNING and orphan.worker is Worker.LOST
    domain = spec.inputs
    assert isinstance(domain, tuple)
    moves = [e for e in domain if isinstance(step(spec.model, orphan, e), Accepted)]
    assert moves == [Cancel()], "only an operator's cancel, which fairness never assumes, gets it out"
    assert_replays(spec, res)
    # fixed: the dispatch rolls back to CREATED, and every RUNNING task gets a worker and ends
    fixed = statuses(report("task"))
    assert fixed["running_ends"] is HOLDS and fixed["running_gets_a_worker"] is HOLDS
    # the engine as written has the same hole: an answer before any dispatch makes a RUNNING task with no worker
    written = report("task_as_written").result("running_ends")
    assert written.status is EXPECTED and inputs_of(written) == [Ask("q"), Answer("a")] and written.loop == 2


def test_the_knobs_default_to_the_fixed_models() -> None:
    assert REGISTRY.get("session_inputs").params["defer_total"] is True
    assert REGISTRY.get("session").params["recover_settles_drain"] is True
    assert REGISTRY.get("session").params["stopped"] == "final"
    assert REGISTRY.get("task").params["fault_rolls_back"] is True
    for name in ("session", "session_inputs", "task"):
        assert not build(name).expect


@pytest.mark.parametrize(("argv", "prop", "length"), [
    (["task", "--set", "fault_rolls_back=false"], "running_ends", 3),
    (["session", "--set", "stopped=absorbs"], "stop_settles", 2),
    (["session", "--set", "recover_settles_drain=false"], "recovery_completes", 6),
])
def test_the_findings_from_the_command_line(argv: list[str], prop: str, length: int) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(["check", *argv], out=out, err=err) == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[1:2] == [prop])
    assert lines[at].endswith(f"violated as expected ({length}-state lasso)")
    assert "(stutters here forever)" in lines[at + 3 + length]
