"""The CAS specs: compare-and-swap loses no update, a blind write loses one (as expected).

The figures are small enough to count by hand (2 workers, 2 retries).
Atomic: neither worker done -> store (0,0), each worker IDLE/READ/COMPUTED
having read (0,0): 9 states; one done -> store (1,1), the other IDLE, read
(0,0) in READ/COMPUTED, IDLE again after its conflict, or READ/COMPUTED having
read (1,1) with 0 or 1 retries: 8 each, 16; both done: 2 per order, 4. 29 in
all, 34 steps (2 per state in the first group, 1 in the second), depth 10
(read, compute, the other's three steps, conflict, read, compute, write).
Non-atomic: 9 + 2 * 5 + 3 (both done from (0,0): the lost update, or one
after the other) = 22 states, 28 steps, depth 7.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

import pytest

from statewright.kernel.checker import Status, Verdict, check
from statewright.kernel.step import Reason, Rejected
from statewright.kernel.system import Action, Blocked, System
from statewright.specs.cas import (
    Compute,
    Read,
    Record,
    Retry,
    WorkerPhase,
    Write,
    cas_atomic,
    cas_non_atomic,
)
from statewright.specs.registry import REGISTRY


def _inputs(trace: Any) -> list[tuple[str, Any]]:
    return [(s.input.instance, s.input.input) for s in trace[1:]]


def test_cas_atomic_proves_no_lost_update_with_exact_figures() -> None:
    r = check(cas_atomic())
    assert (r.verdict, r.complete, r.stopped_by) == (Verdict.OK, True, None)
    assert (r.distinct_states, r.generated, r.depth) == (29, 34, 10)
    assert {p.name: p.status for p in r.properties} == {
        "no_lost_update": Status.HOLDS,
        "version_counts_writes": Status.HOLDS,
        "version_never_decreases": Status.HOLDS,
        "write_bumps_version_once": Status.HOLDS,
        "reads_what_was_written": Status.HOLDS,
        "all_done": Status.HOLDS,
        "conflicts_are_real": Status.HOLDS,
        "cas_conflict": Status.HOLDS,
        "deadlock": Status.HOLDS,
        "determinism": Status.HOLDS,
        "terminal_precedence": Status.HOLDS,
    }
    # blind writes are not routed here, and with two workers nobody conflicts twice
    assert [c.label for c in r.never_fired] == [
        "OPEN --Put--> OPEN", "COMPUTED --GiveUp[no_retries_left]--> FAILED"]


def test_cas_atomic_witnesses_a_conflict_and_everyone_done() -> None:
    r = check(cas_atomic())
    conflict = r.result("cas_conflict").trace
    assert conflict is not None and len(conflict) == 7
    assert _inputs(conflict) == [
        ("w1", Read(0, 0)), ("w1", Compute()), ("w2", Read(0, 0)), ("w1", Write()),
        ("w2", Compute()), ("w2", Retry()),
    ]
    last = conflict[-1].state
    assert last.w2.phase is WorkerPhase.IDLE and last.w2.retries == 1 and last.store == Record(value=1, version=1)
    done = r.result("all_done").trace
    assert done is not None and len(done) == 7
    assert done[-1].state.store == Record(value=2, version=2)


def test_a_stale_cas_rejects_the_whole_step() -> None:
    spec = cas_atomic()
    system = spec.model
    assert isinstance(system, System)
    trace = check(spec).result("cas_conflict").trace
    assert trace is not None
    stale = trace[-2].state  # w2 computed from version 0, the store is at version 1
    out = system.step(stale, Action("w2", Write()))
    assert isinstance(out, Blocked) and out.routed and out.instance == "store"
    assert isinstance(out.why, Rejected)
    assert (out.why.reason, out.why.guards) == (Reason.GUARD_FAILED, ("version_matches",))
    # and a conflict is only admitted while the CAS would fail
    computed = trace[2].state  # w1 computed from version 0, nothing written yet
    refused = system.step(computed, Action("w1", Retry()))
    assert isinstance(refused, Blocked) and refused.why == "cas_would_fail" and not refused.routed


def test_cas_non_atomic_finds_the_lost_update_as_expected() -> None:
    r = check(cas_non_atomic())
    assert (r.verdict, r.complete, r.stopped_by) == (Verdict.OK, True, None)
    assert (r.distinct_states, r.generated, r.depth) == (22, 28, 7)
    lost = r.result("no_lost_update")
    assert lost.status is Status.EXPECTED and lost.trace is not None and len(lost.trace) == 7
    # both workers read version 0 before either writes; both write 1
    assert _inputs(lost.trace) == [
        ("w1", Read(0, 0)), ("w1", Compute()), ("w2", Read(0, 0)), ("w1", Write()),
        ("w2", Compute()), ("w2", Write()),
    ]
    assert lost.trace[-1].state.store == Record(value=1, version=2)
    assert [s.state.store.version for s in lost.trace] == [0, 0, 0, 0, 1, 1, 2]
    others = {p.name: p.status for p in r.properties if p.name != "no_lost_update"}
    assert set(others.values()) == {Status.HOLDS}
    assert set(others) == {"version_counts_writes", "version_never_decreases", "write_bumps_version_once",
                           "reads_what_was_written", "all_done", "deadlock", "determinism", "terminal_precedence"}
    assert [c.label for c in r.never_fired] == [
        "OPEN --Cas[version_matches]--> OPEN", "COMPUTED --Retry[retries_left]--> IDLE",
        "COMPUTED --GiveUp[no_retries_left]--> FAILED"]


def test_the_old_name_of_retry_still_works_for_one_release_and_warns() -> None:
    """``Conflict`` also names the store's error and (today) the kernel's stale commit, so the input is ``Retry``."""
    from statewright.specs import cas

    with pytest.warns(DeprecationWarning, match="statewright.specs.cas.Conflict is renamed Retry"):
        assert cas.Conflict is Retry
    assert "Conflict" not in cas.__all__
    with pytest.raises(AttributeError, match="has no attribute 'Conflicts'"):
        cas.Conflicts  # noqa: B018


def test_cas_non_atomic_without_the_expectation_is_violated() -> None:
    r = check(replace(cas_non_atomic(), expect=()))
    assert (r.verdict, r.stopped_by) == (Verdict.VIOLATED, "violation")
    res = r.result("no_lost_update")
    assert res.status is Status.VIOLATED and len(res.trace or ()) == 7


def test_the_lost_update_replays_through_system_step() -> None:
    spec = cas_non_atomic()
    system = spec.model
    assert isinstance(system, System)
    trace = check(spec).result("no_lost_update").trace
    assert trace is not None and trace[0].state == system.initial
    state: Any = system.initial
    for s in trace[1:]:
        out = system.step(state, s.input)
        assert not isinstance(out, Blocked), out.message
        assert out.state == s.state and out.effects == s.effects
        state = out.state
    assert state.w1.phase is state.w2.phase is WorkerPhase.DONE
    assert (state.store.value, state.store.version) == (1, 2)


def test_three_workers_with_one_retry_give_up_and_still_lose_nothing() -> None:
    r = check(cas_atomic(workers=3, retries=1))
    assert (r.verdict, r.complete, r.distinct_states, r.generated, r.depth) == (Verdict.OK, True, 411, 621, 16)
    assert r.result("no_lost_update").status is Status.HOLDS
    assert [c.label for c in r.never_fired] == ["OPEN --Put--> OPEN"]  # GiveUp fires now
    blind = check(cas_non_atomic(workers=3))
    assert (blind.verdict, blind.distinct_states, blind.generated, blind.depth) == (Verdict.OK, 184, 294, 10)
    assert len(blind.result("no_lost_update").trace or ()) == 10


def test_specs_are_registered_with_their_knobs() -> None:
    assert REGISTRY.get("cas_atomic").params == {"workers": 2, "retries": 2}
    assert REGISTRY.get("cas_non_atomic").params == {"workers": 2}


# An independent enumeration of the same model (plain tuples, no kernel) for the state counts.
IDLE, READ, COMPUTED, DONE, FAILED = range(5)


def _explore(workers: int, retries: int, atomic: bool) -> tuple[int, int]:
    Wk = tuple[int, int, int, int, int]  # phase, version read, value read, result, retries
    start: tuple[int, int, tuple[Wk, ...]] = (0, 0, ((IDLE, 0, 0, 0, 0),) * workers)
    depth = {start: 1}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        value, version, ws = state
        for k, (ph, ver, val, res, tries) in enumerate(ws):
            nexts: list[tuple[int, int, Wk]] = []
            if ph == IDLE:
                nexts.append((value, version, (READ, version, value, 0, tries)))
            elif ph == READ:
                nexts.append((value, version, (COMPUTED, ver, val, val + 1, tries)))
            elif ph == COMPUTED:
                if not atomic or ver == version:
                    nexts.append((res, version + 1, (DONE, ver, val, res, tries)))
                elif tries < retries:
                    nexts.append((value, version, (IDLE, ver, val, res, tries + 1)))
                else:
                    nexts.append((value, version, (FAILED, ver, val, res, tries)))
            for nv, nver, w in nexts:
                succ = (nv, nver, ws[:k] + (w,) + ws[k + 1:])
                if succ not in depth:
                    depth[succ] = depth[state] + 1
                    queue.append(succ)
    return len(depth), max(depth.values())


@pytest.mark.parametrize(("workers", "retries"), [(2, 2), (2, 0), (3, 1), (3, 2)])
def test_counts_match_an_independent_enumeration(workers: int, retries: int) -> None:
    r = check(cas_atomic(workers=workers, retries=retries))
    assert (r.distinct_states, r.depth) == _explore(workers, retries, atomic=True)
    blind = check(cas_non_atomic(workers=workers))
    assert (blind.distinct_states, blind.depth) == _explore(workers, retries, atomic=False)
