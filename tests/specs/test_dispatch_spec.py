"""The dispatcher's protocol as a spec (`specs.dispatch`): its figures, what holds, and the two seeded bugs.

The full checks take 1.5-2.5 s each (marked ``slow``); the quick tests replay
the pinned counterexamples through `step` and judge their last state, so a
change that loses a finding shows up in ``make quick`` too.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from statewright.kernel import Accepted, Report, Status, Verdict, check, step
from statewright.kernel.errors import DefinitionError
from statewright.specs import REGISTRY
from statewright.specs.dispatch import (
    Advance, Crash, Dispatch, Expire, Handle, Lapse, Memory, Take, dispatch_machine, per_key_order, prefix,
)

HOLDS, EXPECTED = Status.HOLDS, Status.EXPECTED


@functools.cache
def report(**knobs: Any) -> Report:
    return check(REGISTRY.get("dispatch").spec(**knobs))


def statuses(r: Report) -> dict[str, Status]:
    return {p.name: p.status for p in r.properties}


def run(inputs: list[Any], **knobs: Any) -> list[Dispatch]:
    """The states a program goes through (the first choice of every choosing row: handlers succeed)."""
    machine = dispatch_machine(**knobs)
    states = [machine.initial]
    for i in inputs:
        out = step(machine, states[-1], i)
        assert isinstance(out, Accepted), out
        states.append(out.state)
    return states


def no_loss(s: Dispatch) -> bool:
    return all(s.done(p) for p in range(1, s.cursor + 1))


# -- quick: the pinned counterexamples, replayed ------------------------------------------------


def test_advancing_first_passes_an_effect_nobody_handled() -> None:
    states = run([Take(0), Advance(0)], advance_first=True)
    assert states[-1].cursor == 2 and not no_loss(states[-1])  # the 3-state trace of no_loss
    assert no_loss(run([Take(0)])[-1])
    assert not isinstance(step(dispatch_machine(), states[1], Advance(0)), Accepted)  # correctly: nothing done yet


def test_advancing_first_then_a_crash_loses_the_effects_for_good() -> None:
    states = run([Take(0), Handle(0, "a"), Advance(0), Crash(0), Lapse(), Take(0)], advance_first=True)
    last = states[-1]
    assert (last.cursor, last.calls) == (3, (1, 0, 0))  # b1 and a2 passed, never handled
    assert last.memory[0] == Memory(3, 3)


def test_without_the_batch_id_a_takeover_applies_a_transactional_effect_twice() -> None:
    program = [Take(0), Handle(0, "b"), Expire(), Take(1), Handle(1, "b")]
    assert run(program, dedupe=False)[-1].calls == (0, 2, 0)  # the 6-state trace of at_most_once
    assert run(program)[-1].calls == (0, 1, 0)  # the store recognises the batch id


def test_per_key_order_is_judged_on_the_handler_step() -> None:
    states = run([Take(0), Advance(0), Expire(), Take(1)], advance_first=True)
    assert not per_key_order(states[-1], Handle(1, "a"), states[-1])  # a2 before a1 was handled
    fine = run([Take(0), Handle(0, "a")])
    assert per_key_order(fine[-1], Handle(0, "a"), fine[-1])


def test_a_zombie_cannot_advance_and_drops_its_memory() -> None:
    states = run([Take(0), Handle(0, "a"), Expire(), Take(1), Advance(0)])
    assert states[-1].cursor == 0 and states[-1].memory[0] is None and states[-1].owner == 1


def test_the_prefix_and_the_log_knob() -> None:
    assert prefix(0, frozenset({1, 2, 4})) == 2 and prefix(3, frozenset()) == 3
    with pytest.raises(DefinitionError, match="a string of keys"):
        REGISTRY.get("dispatch").spec(log="abc")


# -- slow: the checks and their figures --------------------------------------------------------


@pytest.mark.slow
def test_the_protocol_holds_with_its_figures() -> None:
    r = report()
    assert r.verdict is Verdict.OK and r.complete
    assert (r.distinct_states, r.depth, r.generated) == (8730, 17, 47602)
    got = statuses(r)
    assert all(s is HOLDS for s in got.values()), got
    assert {"no_loss", "at_most_once", "per_key_order", "every_effect_done", "cursor_reaches_the_end",
            "exactly_once", "at_least_once", "plain_twice", "dead_lettered"} <= set(got)
    witness = r.result("plain_twice").trace
    assert witness is not None and len(witness) == 6  # a plain handler sees an effect twice after a fault


@pytest.mark.slow
def test_advance_first_is_caught_by_shortest_traces() -> None:
    r = report(advance_first=True)
    assert r.verdict is Verdict.OK and (r.distinct_states, r.depth) == (10655, 17)  # every finding pinned
    found = {p.name: (len(p.trace or ()), p.loop) for p in r.properties if p.status is EXPECTED}
    assert found == {"no_loss": (3, None), "per_key_order": (6, None), "every_effect_done": (7, 6),
                     "exactly_once": (7, 6), "at_least_once": (7, 6), "deadlock": (7, None)}
    trace = r.result("every_effect_done").trace
    assert trace is not None
    assert [t.input for t in trace[1:]] == [Take(0), Handle(0, "a"), Advance(0), Crash(0), Lapse(), Take(0)]


@pytest.mark.slow
def test_dedupe_off_is_caught_by_a_six_state_trace() -> None:
    r = report(dedupe=False)
    assert r.verdict is Verdict.OK and (r.distinct_states, r.depth) == (8922, 17)
    found = {p.name: len(p.trace or ()) for p in r.properties if p.status is EXPECTED}
    assert found == {"at_most_once": 6}
    trace = r.result("at_most_once").trace
    assert trace is not None
    assert [t.input for t in trace[1:]] == [Take(0), Handle(0, "b"), Expire(), Take(1), Handle(1, "b")]


@pytest.mark.slow
def test_two_faults_on_a_shorter_log() -> None:
    r = report(log="ab", faults=2)
    assert r.verdict is Verdict.OK and (r.distinct_states, r.depth) == (6217, 17)
    assert all(s is HOLDS for s in statuses(r).values())
