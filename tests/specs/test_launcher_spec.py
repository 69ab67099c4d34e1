"""The registered ``launcher`` spec: exact figures, and each seeded bug caught by its pinned shortest trace."""

from __future__ import annotations

from statewright.kernel.checker import Status, Verdict
from statewright.machines.launcher import (
    Crash, Enter, Fail, Launch, Resume, RunCompleted, RunStatus, SnapshotKind, StateEntered, Succeed,
)
from statewright.specs import REGISTRY
from tests.specs.reports import report


def test_the_default_model_is_checked_completely() -> None:
    r = report("launcher")
    assert r.verdict is Verdict.OK and r.complete and r.stopped_by is None
    assert (r.distinct_states, r.generated, r.depth) == (169, 251, 15)
    assert r.never_fired == ()
    assert all(p.status is Status.HOLDS for p in r.properties)
    lengths = {n: len(r.result(n).trace or ()) for n in
               ("completes", "fails", "retries", "resumes_after_a_completion", "two_runs_completed")}
    assert lengths == {"completes": 6, "fails": 4, "retries": 4, "resumes_after_a_completion": 6,
                       "two_runs_completed": 11}


def test_a_completed_run_reports_once() -> None:
    trace = report("launcher").result("two_runs_completed").trace
    assert trace is not None
    ends = [e for s in trace for e in s.effects if isinstance(e, RunCompleted)]
    assert ends == [RunCompleted(0, RunStatus.COMPLETED, ends[0].snapshot),
                    RunCompleted(1, RunStatus.COMPLETED, ends[1].snapshot)]
    assert {e.snapshot.kind for e in ends if e.snapshot} == {SnapshotKind.FINAL}


def test_the_registry_knows_its_knobs() -> None:
    assert REGISTRY.get("launcher").params == {
        "states": 2, "max_attempts": 2, "launches": 2, "crashes": 1,
        "reattach_completed": False, "failure_boundary": False, "resume_from_start": False}


def test_the_source_run_id_bug_is_caught_in_seven_states() -> None:
    r = report("launcher", reattach_completed=True)
    assert r.verdict is Verdict.OK  # the findings are expected, with their lengths pinned
    assert r.distinct_states == 143
    for name in ("launch_starts_a_new_run", "one_run_completed", "phase_follows_input"):
        result = r.result(name)
        assert result.status is Status.EXPECTED and result.trace is not None
        assert [s.input for s in result.trace[1:]] == [Launch(), Enter(), Succeed(), Enter(), Succeed(), Launch()]
        assert result.trace[-1].effects == (RunCompleted(0, RunStatus.COMPLETED, result.trace[-2].state.runs[0].latest),)
        assert len(result.trace[-1].state.runs) == 1


def test_a_failure_snapshot_as_boundary_is_caught_in_four_states() -> None:
    result = report("launcher", failure_boundary=True).result("failure_snapshot_never_a_boundary")
    assert result.status is Status.EXPECTED and result.trace is not None
    assert [s.input for s in result.trace[1:]] == [Launch(), Enter(), Fail(True)]
    entered = [e for e in result.trace[-1].effects if isinstance(e, StateEntered)]
    assert entered[0].attempt == 1 and entered[0].base.kind is SnapshotKind.FAILURE


def test_a_resume_that_forgets_completions_is_caught_in_seven_states() -> None:
    result = report("launcher", resume_from_start=True).result("resume_never_reexecutes")
    assert result.status is Status.EXPECTED and result.trace is not None
    assert [s.input for s in result.trace[1:]] == [Launch(), Enter(), Succeed(), Enter(), Crash(), Resume()]


def test_attempts_are_zero_based_as_the_source_counts() -> None:
    trace = report("launcher").result("retries").trace
    assert trace is not None
    entered = [e.attempt for s in trace for e in s.effects if isinstance(e, StateEntered)]
    assert entered == [0, 1]
