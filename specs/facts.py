"""Fact-keyed IO (machines/facts.py): recorded live, returned in replay, missing facts typed.

The model: two fact keys and calls without a key, two calls per attempt, two
attempts; ``missing_retryable`` is the source's ``replay_missing_fact_retryable``
(default false, as in the source). Properties:

* ``replay_never_reaches_the_transport`` -- no step in REPLAY calls the
  transport or records a fact;
* ``replay_returns_the_recorded_fact`` -- a keyed call in replay whose key was
  recorded returns that fact;
* ``missing_fact_is_typed`` -- a keyed call in replay whose key was never
  recorded fails with ``MissingFact(key)``, retryable exactly when configured
  (and then the state is retried while attempts remain), else the IO FAILED;
* ``missing_key_is_typed`` -- a call without a key in replay fails with
  ``MissingFactKey``, never retryably;
* ``live_records_keyed_calls`` -- a keyed call in live mode leaves its key
  recorded, and goes to the transport only the first time;
* ``facts_only_grow`` -- recorded facts are never lost, and replay adds none;
* ``facts_recorded_once`` -- the record holds each key once and never a
  call without a key; calls and attempts stay within their budgets;
* ``phase_follows_input`` -- which input moves which phase: Replay takes
  LIVE to REPLAY with its calls from zero, Finish ends the IO, a live call
  stays LIVE, a replayed one stays REPLAY, a missing key FAILS, a missing
  fact retries (its calls from zero) while configured and attempts remain;
* witnesses: a replayed fact, a missing fact, a missing key (and, when
  retryable, a retried attempt).

``terminates`` holds under weak fairness of the table's rows (calls and
attempts are bounded). Figures: 37 distinct states, 59 generated, depth 6 at
the default (the retry row never fires); 56 states, 81 generated, depth 7
with ``missing_retryable=true``.
"""

from __future__ import annotations

from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes
from statewright.kernel.step import Accepted, step
from statewright.machines.facts import (
    NO_KEY, Call, FactIo, FactRecorded, FactReplayed, Finish, IoPhase, MissingFact, MissingFactKey, Replay,
    TransportCalled, fact_io_machine,
)
from statewright.specs.registry import REGISTRY


@REGISTRY.spec
def fact_io(calls: int = 2, max_attempts: int = 2, missing_retryable: bool = False) -> Spec:
    """Fact-keyed IO: live calls recorded, replay returns them, a missing fact or key fails typed."""
    machine = fact_io_machine(calls, max_attempts, missing_retryable)

    def effects(before: FactIo, event: Any) -> tuple[Any, ...]:
        out = step(machine, before, event)
        return out.effects if isinstance(out, Accepted) else ()

    def replay_never_reaches_the_transport(before: FactIo, event: Any, after: FactIo) -> bool:
        return before.phase is not IoPhase.REPLAY or not any(
            isinstance(e, (TransportCalled, FactRecorded)) for e in effects(before, event))

    def replay_returns_the_recorded_fact(before: FactIo, event: Any, after: FactIo) -> bool:
        if before.phase is not IoPhase.REPLAY or not isinstance(event, Call) or event.key not in before.recorded:
            return True
        return effects(before, event) == (FactReplayed(event.key),)

    def missing_fact_is_typed(before: FactIo, event: Any, after: FactIo) -> bool:
        if before.phase is not IoPhase.REPLAY or not isinstance(event, Call) or event.key is None \
                or event.key in before.recorded:
            return True
        retry = missing_retryable and before.attempt + 1 < max_attempts
        went = (after.phase is IoPhase.REPLAY and after.attempt == before.attempt + 1) if retry \
            else after.phase is IoPhase.FAILED
        return effects(before, event) == (MissingFact(event.key, missing_retryable),) and went

    def missing_key_is_typed(before: FactIo, event: Any, after: FactIo) -> bool:
        if before.phase is not IoPhase.REPLAY or not isinstance(event, Call) or event.key is not None:
            return True
        return effects(before, event) == (MissingFactKey(),) and after.phase is IoPhase.FAILED

    def live_records_keyed_calls(before: FactIo, event: Any, after: FactIo) -> bool:
        if before.phase is not IoPhase.LIVE or not isinstance(event, Call) or event.key is None:
            return True
        first = event.key not in before.recorded
        called = any(isinstance(e, TransportCalled) for e in effects(before, event))
        return event.key in after.recorded and called == first

    def facts_only_grow(before: FactIo, event: Any, after: FactIo) -> bool:
        grown = set(before.recorded) <= set(after.recorded)
        return grown and (before.phase is IoPhase.LIVE or after.recorded == before.recorded)

    def facts_recorded_once(s: FactIo) -> bool:
        """The record holds each fact key once (sorted), never a call without a key; calls and attempts
        stay within their budgets."""
        keys = s.recorded
        return (all(a < b for a, b in zip(keys, keys[1:])) and NO_KEY not in keys
                and 0 <= s.calls <= s.max_calls and 0 <= s.attempt < s.max_attempts)

    def phase_follows_input(before: FactIo, event: Any, after: FactIo) -> bool:
        """Which input moves which phase: Replay takes LIVE to REPLAY (its calls from zero), Finish ends
        the IO, a call in LIVE stays LIVE and counts one; in REPLAY a recorded key stays and counts one,
        a call without a key FAILS, a missing fact retries (calls from zero) while configured and
        attempts remain, else FAILS."""
        if isinstance(event, Replay):
            return (before.phase, after.phase, after.calls) == (IoPhase.LIVE, IoPhase.REPLAY, 0)
        if isinstance(event, Finish):
            return before.phase in (IoPhase.LIVE, IoPhase.REPLAY) and after.phase is IoPhase.FINISHED
        counted = after.calls == before.calls + 1 and after.attempt == before.attempt
        if before.phase is IoPhase.LIVE:
            return after.phase is IoPhase.LIVE and counted
        if before.phase is not IoPhase.REPLAY:
            return False
        if event.key in before.recorded:
            return after.phase is IoPhase.REPLAY and counted
        if event.key is not None and missing_retryable and before.attempt + 1 < max_attempts:
            return (after.phase, after.calls, after.attempt) == (IoPhase.REPLAY, 0, before.attempt + 1)
        return after.phase is IoPhase.FAILED

    def replayed(s: FactIo) -> bool:
        return s.phase is IoPhase.REPLAY and s.calls > 0

    return Spec(
        "fact_io",
        machine,
        inputs=[Call("k1"), Call("k2"), Call(None), Replay(), Finish()],
        properties=[
            always_step("replay_never_reaches_the_transport", replay_never_reaches_the_transport),
            always_step("replay_returns_the_recorded_fact", replay_returns_the_recorded_fact),
            always_step("missing_fact_is_typed", missing_fact_is_typed),
            always_step("missing_key_is_typed", missing_key_is_typed),
            always_step("live_records_keyed_calls", live_records_keyed_calls),
            always_step("facts_only_grow", facts_only_grow),
            always("facts_recorded_once", facts_recorded_once),
            always_step("phase_follows_input", phase_follows_input),
            sometimes("replays_a_fact", replayed),
            sometimes("fails_typed", lambda s: s.phase is IoPhase.FAILED),
            *([sometimes("retries_a_missing_fact", lambda s: s.attempt > 0)] if missing_retryable else []),
        ],
        terminates=True,
        recoverable=True,
        doc=__doc__ or "",
    )
