"""The registered ``child_runs`` spec: linkage events once however often the parent resumes; the source's ordering loses one."""

from __future__ import annotations

from statewright.kernel.checker import Status, Verdict
from statewright.kernel.system import Action
from statewright.machines.child_run import Await, Complete, Crash, Finish, Resume, Spawn
from tests.specs.reports import report


def test_the_default_system_is_checked_completely() -> None:
    r = report("child_runs")
    assert r.verdict is Verdict.OK and r.complete and r.never_fired == ()
    assert (r.distinct_states, r.generated, r.depth) == (18, 22, 7)
    assert all(p.status is Status.HOLDS for p in r.properties)


def test_more_resumes_still_link_once() -> None:
    r = report("child_runs", crashes=3)
    assert r.verdict is Verdict.OK and r.complete
    assert r.result("linkage_at_most_once").status is Status.HOLDS


def test_the_source_ordering_loses_the_spawned_event_in_eight_states() -> None:
    r = report("child_runs", linkage_atomic=False)
    assert r.verdict is Verdict.OK and r.distinct_states == 30
    result = r.result("linkage_once_at_end")
    assert result.status is Status.EXPECTED and result.trace is not None
    p, c = "parent", "child"
    assert [s.input for s in result.trace[1:]] == [
        Action(p, Spawn()), Action(p, Crash()), Action(p, Resume()), Action(p, Spawn()),
        Action(c, Complete()), Action(p, Await()), Action(p, Finish())]
    assert result.trace[-1].state.parent.spawned_events == 0
