"""The LamportMutex port reproduces TLC's figures (TLC 2.20, one worker, on MCLamportMutex.tla).

The whole system is one record, so these are also the exact counts that the
checker's lone-machine path (`LocalTable._expand_alone`: no memo, rows looked
up once per state, only the changed part of a new state walked) must keep.
TLC's "states generated" counts the initial state and every successor, pruned
ones included; ``generated`` counts the steps, so it is TLC's figure less one.
"""

from __future__ import annotations

import pytest

from statewright.kernel import Accepted, Status, Verdict, check, step
from statewright.specs import REGISTRY
from statewright.specs.lamport_mutex import Enter, Processes, Request


@pytest.mark.parametrize(("n", "max_clock", "distinct", "depth", "tlc_generated", "pruned"), [
    pytest.param(3, 3, 10_209, 31, 41_533, 10_042, marks=pytest.mark.slow),
    (2, 6, 1_043, 40, 2_001, 92),
])
def test_lamport_mutex_matches_tlc(n: int, max_clock: int, distinct: int, depth: int, tlc_generated: int,
                                   pruned: int) -> None:
    r = check(REGISTRY.get("lamport_mutex").spec(n=n, max_clock=max_clock))
    assert (r.verdict, r.complete, r.distinct_states, r.depth) == (Verdict.OK, True, distinct, depth)
    assert r.generated + 1 == tlc_generated
    assert r.pruned == pruned  # successors with a clock above max_clock: generated and judged, not stored
    assert {p.name: p.status for p in r.properties} == {
        "type_ok": Status.HOLDS, "bounded_network": Status.HOLDS, "mutex": Status.HOLDS,
        "deadlock": Status.HOLDS, "determinism": Status.HOLDS, "terminal_precedence": Status.HOLDS,
    }


@pytest.mark.slow
def test_without_the_tie_break_two_processes_enter_as_tlc_finds() -> None:
    """TLC on the same mutant: ``Invariant Mutex is violated`` with a 13-state trace."""
    spec = REGISTRY.get("lamport_mutex").spec(tie_break=False)
    r = check(spec)
    assert r.verdict is Verdict.OK  # the violation is expected
    trace = r.result("mutex").trace
    assert len(trace) == 13
    assert [s.input for s in trace[1:3]] == [Request(0), Request(1)]
    assert isinstance(trace[-1].input, Enter) and len(trace[-1].state.crit) == 2
    assert trace[-1].state.req[0][0] == trace[-1].state.req[1][1] == 1  # equal clocks, each beats the other
    state: Processes = trace[0].state
    for s in trace[1:]:
        result = step(spec.model, state, s.input)
        assert isinstance(result, Accepted) and result.state == s.state
        state = result.state
