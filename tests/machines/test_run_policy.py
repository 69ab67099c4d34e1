"""A run's configuration (`machines.pipeline.policy`): retry policy, backoff delays, and every refusal's message."""

from __future__ import annotations

from typing import Any

import pytest

from statewright.machines.pipeline import Code, Exponential, Fixed, PlanFailure, RetryPolicy, RunConfig, read_run_config


def test_the_defaults_are_three_attempts_and_100_ms_doubling() -> None:
    raws: tuple[Any, ...] = (None, {}, {"retry": {}})
    for raw in raws:
        assert read_run_config(raw) == RunConfig(RetryPolicy(3, Exponential(100, 2, 30_000)), False)
    assert RunConfig() == read_run_config(None)
    assert [RetryPolicy().delay(n) for n in range(1, 4)] == [0.1, 0.2, 0.4]


def test_a_fixed_backoff_waits_the_same_before_every_retry() -> None:
    config = read_run_config({"retry": {"max_attempts": 4, "backoff": {"fixed": {"delay_ms": 1500}}}})
    assert config == RunConfig(RetryPolicy(4, Fixed(1500)))
    assert isinstance(config, RunConfig)
    assert [config.retry.delay(n) for n in range(1, 4)] == [1.5, 1.5, 1.5]
    assert read_run_config({"retry": {"backoff": {"fixed": {}}}}) == RunConfig(RetryPolicy(3, Fixed(0)))
    assert Fixed().delay(7) == 0.0


def test_an_exponential_backoff_grows_by_its_factor_up_to_its_cap() -> None:
    config = read_run_config({"retry": {"backoff": {"exponential": {"initial_ms": 100, "factor": 3, "max_ms": 1000}}}})
    assert isinstance(config, RunConfig) and config.retry.backoff == Exponential(100, 3, 1000)
    assert [config.retry.delay(n) for n in range(1, 7)] == [0.1, 0.3, 0.9, 1.0, 1.0, 1.0]
    assert [Exponential(250, 1).delay(n) for n in (1, 50)] == [0.25, 0.25]
    assert Exponential(5000, 2, 1000).delay(1) == 1.0  # a cap under the first delay caps it too
    assert Exponential(1, 10, 86_400_000).delay(100) == 86_400.0  # huge exponents are capped, not overflowed
    assert read_run_config({"retry": {"backoff": {"exponential": {}}}}) == RunConfig(RetryPolicy(3, Exponential()))


def test_replay_missing_fact_retryable_is_read() -> None:
    assert read_run_config({"replay_missing_fact_retryable": True}) == RunConfig(RetryPolicy(), True)


@pytest.mark.parametrize("attempts", [1, 100])
def test_max_attempts_takes_1_to_100(attempts: int) -> None:
    config = read_run_config({"retry": {"max_attempts": attempts}})
    assert isinstance(config, RunConfig) and config.retry.max_attempts == attempts


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("fast", "run_config must be an object, got str"),
        ([1], "run_config must be an object, got list"),
        ({"retries": 3}, "run_config: unknown field 'retries'"),
        ({"replay_missing_fact_retryable": 1}, "replay_missing_fact_retryable must be true or false, got 1"),
        ({"retry": 3}, "retry must be an object, got int"),
        ({"retry": {"attempts": 3}}, "retry: unknown field 'attempts'"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts must be an integer from 1 to 100, got 0"),
        ({"retry": {"max_attempts": 101}}, "retry.max_attempts must be an integer from 1 to 100, got 101"),
        ({"retry": {"max_attempts": True}}, "retry.max_attempts must be an integer from 1 to 100, got True"),
        ({"retry": {"max_attempts": "3"}}, "retry.max_attempts must be an integer from 1 to 100, got '3'"),
        ({"retry": {"max_attempts": None}}, "retry.max_attempts must be an integer from 1 to 100, got None"),
        ({"retry": {"backoff": "fixed"}},
         "retry.backoff must be {\"fixed\": {...}} or {\"exponential\": {...}}, got 'fixed'"),
        ({"retry": {"backoff": {}}}, "retry.backoff must be {\"fixed\": {...}} or {\"exponential\": {...}}, got {}"),
        ({"retry": {"backoff": {"fixed": {}, "exponential": {}}}},
         "retry.backoff must be {\"fixed\": {...}} or {\"exponential\": {...}}, got {'fixed': {}, 'exponential': {}}"),
        ({"retry": {"backoff": {"linear": {}}}}, "retry.backoff: unknown kind 'linear' (fixed or exponential)"),
        ({"retry": {"backoff": {"fixed": 250}}}, "retry.backoff.fixed must be an object, got int"),
        ({"retry": {"backoff": {"fixed": {"delay": 5}}}}, "retry.backoff.fixed: unknown field 'delay'"),
        ({"retry": {"backoff": {"exponential": {"initial_ms": 1, "cap": 5}}}},
         "retry.backoff.exponential: unknown field 'cap'"),
        ({"retry": {"backoff": {"fixed": {"delay_ms": -1}}}},
         "retry.backoff.fixed.delay_ms must be an integer from 0 to 86400000, got -1"),
        ({"retry": {"backoff": {"fixed": {"delay_ms": 86_400_001}}}},
         "retry.backoff.fixed.delay_ms must be an integer from 0 to 86400000, got 86400001"),
        ({"retry": {"backoff": {"exponential": {"factor": 0}}}},
         "retry.backoff.exponential.factor must be an integer from 1 to 86400000, got 0"),
        ({"retry": {"backoff": {"exponential": {"initial_ms": 1.5}}}},
         "retry.backoff.exponential.initial_ms must be an integer from 0 to 86400000, got 1.5"),
    ],
)
def test_each_bad_run_config_is_invalid_run_config_naming_the_field(raw: Any, message: str) -> None:
    failure = read_run_config(raw)
    assert isinstance(failure, PlanFailure)
    assert (failure.code, failure.message) == (Code.INVALID_RUN_CONFIG, message)
    assert str(failure) == f"invalid_run_config: {message}"
