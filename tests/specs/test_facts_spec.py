"""The registered ``fact_io`` spec: exact figures, typed missing facts and keys, retry when configured."""

from __future__ import annotations

from statewright.kernel.checker import Status, Verdict
from statewright.kernel.step import Rejected, step
from statewright.machines.facts import Call, FactReplayed, IoPhase, MissingFact, MissingFactKey, Replay, fact_io_machine
from tests.specs.reports import report


def test_the_default_model_is_checked_completely() -> None:
    r = report("fact_io")
    assert r.verdict is Verdict.OK and r.complete
    assert (r.distinct_states, r.generated, r.depth) == (37, 59, 6)
    assert [c.label for c in r.never_fired] == ["REPLAY --Call[calls_left, new_key, retry_missing]--> REPLAY"]
    assert all(p.status is Status.HOLDS for p in r.properties)


def test_retryable_missing_facts_are_retried() -> None:
    r = report("fact_io", missing_retryable=True)
    assert r.verdict is Verdict.OK and r.never_fired == ()
    assert (r.distinct_states, r.generated, r.depth) == (56, 81, 7)
    trace = r.result("retries_a_missing_fact").trace
    assert trace is not None and [s.input for s in trace[1:]] == [Replay(), Call("k1")]
    assert trace[-1].effects == (MissingFact("k1", True),)


def test_replay_returns_the_record_and_fails_typed() -> None:
    m = fact_io_machine()
    s = step(m, m.initial, Call("k1")).state
    s = step(m, s, Replay()).state
    assert step(m, s, Call("k1")).effects == (FactReplayed("k1"),)
    missing = step(m, s, Call("k2"))
    assert missing.effects == (MissingFact("k2", False),) and missing.state.phase is IoPhase.FAILED
    no_key = step(m, s, Call(None))
    assert no_key.effects == (MissingFactKey(),) and no_key.state.phase is IoPhase.FAILED
    assert isinstance(step(m, no_key.state, Call("k1")), Rejected)
