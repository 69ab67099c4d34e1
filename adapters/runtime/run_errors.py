"""The executor's typed errors, each with a stable ``code`` (the CLI prints it; tests match on it).

Failures of an *operation* are not errors here: they are data (`operations.ErrorInfo`)
recorded as the attempt's outcome. These are the executor's own refusals:
a run that does not exist or already does, a plan that cannot be made, a
stored run that no longer matches its code, and replay's findings.
"""

from __future__ import annotations

from statewright.machines.pipeline.model import PlanFailure

__all__ = [
    "InvalidRunId",
    "MissingFact",
    "UnstorableFact",
    "MissingFactKey",
    "PlanRefused",
    "PlanChanged",
    "ReplayDiverged",
    "RunError",
    "RunExists",
    "RunNotFinished",
    "RunNotFound",
]


class RunError(Exception):
    """Something the executor refuses to do; ``code`` is stable across versions."""

    code = "run_error"


class RunNotFound(RunError):
    """No run is stored under the id."""

    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in this store")
        self.run_id = run_id


class InvalidRunId(RunError):
    """A run id (or a child key, which becomes part of one) that the stores' keys cannot carry as given."""

    code = "invalid_run_id"


class RunExists(RunError):
    """A run was launched under an id a different run already has (a new run never re-attaches to an old one)."""

    code = "run_exists"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} already exists with another manifest; resume it, or launch a new run")
        self.run_id = run_id


class PlanRefused(RunError):
    """The planner or the launcher's manifest checks refused; ``failure`` carries the source's code."""

    def __init__(self, failure: PlanFailure, run_id: str | None = None) -> None:
        where = f"run {run_id!r}: " if run_id else ""
        super().__init__(f"{where}{failure}")
        self.failure = failure
        self.code = failure.code.value


class PlanChanged(RunError):
    """A stored run's plan is not the plan its manifest gives with today's operations."""

    code = "plan_changed"

    def __init__(self, run_id: str, detail: str) -> None:
        super().__init__(f"run {run_id!r}: the stored plan differs from the plan its manifest gives now ({detail}); "
                         f"register the operations the run was started with")
        self.run_id = run_id


class MissingFactKey(RunError):
    """Replay met an IO call without a fact key: nothing recorded it, so nothing can return it (never retryable)."""

    code = "missing_fact_key"


class MissingFact(RunError):
    """Replay met a fact key the original run never recorded; ``retryable`` when the run's config says so."""

    code = "missing_fact"

    def __init__(self, key: str, retryable: bool) -> None:
        super().__init__(f"no fact recorded under {key!r}" + (" (retryable)" if retryable else ""))
        self.key = key
        self.retryable = retryable


class UnstorableFact(RunError):
    """An IO answer (or a value to record) that is not JSON data without floats: it can never be recorded."""

    code = "unstorable_fact"


class ReplayDiverged(RunError):
    """A replayed attempt produced another output than the recorded one: the operation is not deterministic."""

    code = "replay_diverged"


class RunNotFinished(RunError):
    """Replay was asked of a run that has not ended."""

    code = "run_not_finished"

    def __init__(self, run_id: str, phase: str) -> None:
        super().__init__(f"run {run_id!r} is {phase}; only a finished run can be replayed")
        self.run_id = run_id
