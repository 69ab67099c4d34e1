"""A run's configuration: its retry policy, backoff and replay rules, read from the manifest's ``run_config``.

The source's ``RetryPolicy`` counts ``max_attempts`` in all, the first
included, and its backoff is ``Fixed`` or ``Exponential``. Delays are whole
milliseconds because a manifest is canonical JSON, where floats are refused.
`read_run_config` turns the manifest's JSON into a `RunConfig`, or into a
`PlanFailure` with code ``invalid_run_config`` naming the field.

>>> cfg = read_run_config({"retry": {"max_attempts": 4, "backoff": {"exponential": {"initial_ms": 100}}}})
>>> assert isinstance(cfg, RunConfig)
>>> [cfg.retry.delay(n) for n in (1, 2, 3)], cfg.retry.max_attempts
([0.1, 0.2, 0.4], 4)
>>> read_run_config({"retry": {"max_attempts": 0}}).message
'retry.max_attempts must be an integer from 1 to 100, got 0'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from statewright.machines.pipeline.model import Code, PlanFailure

__all__ = ["Backoff", "Exponential", "Fixed", "RetryPolicy", "RunConfig", "read_run_config"]


@dataclass(frozen=True, slots=True)
class Fixed:
    """The same delay before every retry."""

    delay_ms: int = 0

    def delay(self, failed: int) -> float:
        return self.delay_ms / 1000


@dataclass(frozen=True, slots=True)
class Exponential:
    """``initial_ms * factor ** (n - 1)`` before retry n, at most ``max_ms``."""

    initial_ms: int = 100
    factor: int = 2
    max_ms: int = 30_000

    def delay(self, failed: int) -> float:
        return float(min(self.max_ms, self.initial_ms * self.factor ** (failed - 1))) / 1000


Backoff = Fixed | Exponential


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` in all (the first included) and the wait before each retry."""

    max_attempts: int = 3
    backoff: Backoff = Exponential()

    def delay(self, failed: int) -> float:
        """Seconds to wait after failed attempt ``failed`` (1-based) before the next one."""
        return self.backoff.delay(failed)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What a manifest's ``run_config`` says: the retry policy, and whether a fact missing in replay is retryable."""

    retry: RetryPolicy = RetryPolicy()
    replay_missing_fact_retryable: bool = False


def _bad(message: str) -> PlanFailure:
    return PlanFailure(Code.INVALID_RUN_CONFIG, message)


def _int(value: Any, name: str, low: int, high: int) -> int | PlanFailure:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return _bad(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _backoff(raw: Any) -> Backoff | PlanFailure:
    if not (isinstance(raw, dict) and len(raw) == 1):
        return _bad(f'retry.backoff must be {{"fixed": {{...}}}} or {{"exponential": {{...}}}}, got {raw!r}')
    (kind, body), = raw.items()
    if kind not in ("fixed", "exponential"):
        return _bad(f"retry.backoff: unknown kind {kind!r} (fixed or exponential)")
    if not isinstance(body, dict):
        return _bad(f"retry.backoff.{kind} must be an object, got {type(body).__name__}")
    allowed = {"fixed": {"delay_ms"}, "exponential": {"initial_ms", "factor", "max_ms"}}[kind]
    extra = sorted(set(body) - allowed)
    if extra:
        return _bad(f"retry.backoff.{kind}: unknown field {extra[0]!r}")
    values: dict[str, int] = {}
    for name, value in body.items():
        checked = _int(value, f"retry.backoff.{kind}.{name}", 1 if name == "factor" else 0, 86_400_000)
        if isinstance(checked, PlanFailure):
            return checked
        values[name] = checked
    return Fixed(**values) if kind == "fixed" else Exponential(**values)


def read_run_config(raw: Any) -> RunConfig | PlanFailure:
    """The `RunConfig` of a manifest's ``run_config`` JSON (``{}`` or None: the defaults)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return _bad(f"run_config must be an object, got {type(raw).__name__}")
    extra = sorted(set(raw) - {"retry", "replay_missing_fact_retryable"})
    if extra:
        return _bad(f"run_config: unknown field {extra[0]!r}")
    missing_retryable = raw.get("replay_missing_fact_retryable", False)
    if not isinstance(missing_retryable, bool):
        return _bad(f"replay_missing_fact_retryable must be true or false, got {missing_retryable!r}")
    retry = raw.get("retry", {})
    if not isinstance(retry, dict):
        return _bad(f"retry must be an object, got {type(retry).__name__}")
    extra = sorted(set(retry) - {"max_attempts", "backoff"})
    if extra:
        return _bad(f"retry: unknown field {extra[0]!r}")
    attempts = _int(retry.get("max_attempts", RetryPolicy().max_attempts), "retry.max_attempts", 1, 100)
    if isinstance(attempts, PlanFailure):
        return attempts
    backoff = _backoff(retry["backoff"]) if "backoff" in retry else Exponential()
    if isinstance(backoff, PlanFailure):
        return backoff
    return RunConfig(RetryPolicy(attempts, backoff), missing_retryable)
