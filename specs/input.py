"""The input lifecycle (`machines.input.INPUT`) on its own: what must hold for one input.

The domain is small but covers every row and every guard both ways: two run
ids (only ``r1`` ever reports, so a run reporting on an input staged to
``r2`` is the stale-run case), empty ids that the naming guards must refuse,
and an ``Abandon`` naming the reason reserved for the retry rule. With
``max_attempts=3`` the model has 33 states (counted by hand in
tests/machines/test_input.py).

``terminates`` and ``recoverable`` hold: the only way back, a failed run's
rollback to QUEUED, spends an attempt, so the state graph has no cycle, and
every live phase has a row (``Abandon`` at least) -- weak fairness then
forces a terminal outcome, and one is reachable from everywhere.
"""

from __future__ import annotations

from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes, terminal_stable
from statewright.machines.input import (
    INPUT,
    TERMINAL,
    Abandon,
    AbandonReason,
    Abandoned,
    Apply,
    AwaitConsumption,
    Coalesce,
    Consume,
    Input,
    InputPhase,
    Queue,
    RunFailed,
    Stage,
    Supersede,
    authorize_seed,
)
from statewright.specs.registry import REGISTRY

P = InputPhase
RUNNING = (P.STAGED, P.APPLIED, P.APPLIED_PENDING_CONSUMPTION)

DOMAIN: tuple[Any, ...] = (
    Queue(),
    Stage("r1"),
    Stage("r2"),
    Stage(""),
    Apply("r1"),
    AwaitConsumption("r1"),
    Consume("r1"),
    RunFailed("r1"),
    Supersede("i9"),
    Supersede(""),
    Coalesce("agg"),
    Coalesce(""),
    Abandon(AbandonReason.CANCELLED),
    Abandon(AbandonReason.MAX_ATTEMPTS_EXHAUSTED),
)


def attempts_count_stages(before: Input, event: Any, after: Input) -> bool:
    """Only a Stage spends an attempt, and by exactly one."""
    return after.attempts - before.attempts == (1 if isinstance(event, Stage) else 0)


RUN_SCOPED = (Apply, AwaitConsumption, Consume, RunFailed)


def own_run_only(before: Input, event: Any, _after: Input) -> bool:
    """A run moves the input only while the input is staged to that very run."""
    return not isinstance(event, RUN_SCOPED) or event.run_id == before.run_id


def staged_has_run(s: Input) -> bool:
    return s.phase not in RUNNING or bool(s.run_id)


def outcome_iff_terminal(s: Input) -> bool:
    return (s.outcome is not None) == (s.phase in TERMINAL)


@REGISTRY.spec
def input() -> Spec:  # noqa: A001 - the spec is called "input"
    """One input of the session kernel: outcomes final, attempts counted, seeds authorised."""
    return Spec(
        "input",
        INPUT,
        inputs=DOMAIN,
        properties=[
            terminal_stable(TERMINAL),
            always("seed_authorized", lambda s: authorize_seed(s) == ()),
            always("attempts_within_budget", lambda s: 0 <= s.attempts <= s.max_attempts),
            always("staged_has_run", staged_has_run),
            always("outcome_iff_terminal", outcome_iff_terminal),
            always_step("attempts_count_stages", attempts_count_stages),
            always_step("own_run_only", own_run_only),
            sometimes("consumed", lambda s: s.phase is P.CONSUMED),
            sometimes("awaiting_consumption", lambda s: s.phase is P.APPLIED_PENDING_CONSUMPTION),
            sometimes("superseded", lambda s: s.phase is P.SUPERSEDED),
            sometimes("coalesced", lambda s: s.phase is P.COALESCED),
            sometimes("cancelled", lambda s: s.outcome == Abandoned(AbandonReason.CANCELLED, 0)),
            sometimes("exhausted", lambda s: s.outcome == Abandoned(AbandonReason.MAX_ATTEMPTS_EXHAUSTED, 3)),
            sometimes("superseded_after_retry", lambda s: s.phase is P.SUPERSEDED and s.attempts == 2),
        ],
        terminates=True,
        recoverable=True,
        doc=__doc__ or "",
    )
