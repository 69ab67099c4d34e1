"""The reference models reproduce TLC's exact figures (../shared/reference/MODELS.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from handwritten_bfs import explore
from statewright.kernel import Accepted, Status, Verdict, check, step
from statewright.specs import REGISTRY
from statewright.specs.diehard import DIEHARD
from statewright.specs.input_lifecycle import Phase


def spec(name: str, **kw: object):  # type: ignore[no-untyped-def]
    return REGISTRY.get(name).spec(**kw)


def test_diehard_default_finds_the_solution_as_expected() -> None:
    r = check(spec("diehard"))
    res = r.result("not_solved")
    assert r.verdict is Verdict.OK and res.status is Status.EXPECTED
    assert res.trace is not None and len(res.trace) == 7 and res.trace[-1].state.big == 4
    # the solution replays through the machine
    state = DIEHARD.initial
    for s in res.trace[1:]:
        out = step(DIEHARD, state, s.input)
        assert isinstance(out, Accepted) and out.state == s.state
        state = out.state


def test_diehard_to_completion() -> None:
    r = check(spec("diehard"), keep_going=True)
    assert (r.distinct_states, r.depth, r.complete) == (16, 8, True)


def test_diehard_without_the_expectation_fails_at_the_first_violation() -> None:
    r = check(replace(spec("diehard"), expect=()))
    assert r.verdict is Verdict.VIOLATED and r.stopped_by == "violation"
    assert len(r.result("not_solved").trace or ()) == 7


def test_two_phase() -> None:
    r = check(spec("two_phase"))
    assert (r.verdict, r.distinct_states, r.depth) == (Verdict.OK, 288, 11)
    assert r.result("consistent").status is Status.HOLDS
    assert len(r.result("all_committed").trace or ()) == 11


@pytest.mark.parametrize("n", [*range(1, 6), pytest.param(6, marks=pytest.mark.slow)])
def test_input_lifecycle_matches_the_handwritten_search(n: int) -> None:
    r = check(spec("input_lifecycle", n=n))
    assert r.verdict is Verdict.OK
    assert (r.distinct_states, r.depth) == explore(n)


@pytest.mark.slow
def test_input_lifecycle_n7_is_tlcs_figure() -> None:
    r = check(spec("input_lifecycle", n=7))
    assert (r.verdict, r.distinct_states, r.depth) == (Verdict.OK, 496_420, 29)
    assert not r.never_fired


def test_without_the_stage_guard_two_inputs_get_staged_at_depth_5() -> None:
    r = check(spec("input_lifecycle", n=7, stage_guard=False))
    res = r.result("at_most_one_staged")
    assert r.verdict is Verdict.VIOLATED and res.status is Status.VIOLATED
    assert res.trace is not None and len(res.trace) == 5 and r.depth == 5
    assert res.trace[-1].state.count(Phase.STAGED) == 2


def test_abandoning_a_terminal_input_breaks_terminal_stable_in_5_states() -> None:
    r = check(spec("input_lifecycle", n=7, abandon_terminal=True))
    res = r.result("terminal_stable")
    assert r.verdict is Verdict.VIOLATED and res.status is Status.VIOLATED
    assert res.trace is not None and len(res.trace) == 5
    before, after = res.trace[-2].state, res.trace[-1].state
    assert before.i1 is Phase.SUPERSEDED and after.i1 is Phase.ABANDONED
