"""A predicate that returns something other than True or False is the user's mistake, named, not a quiet "false".

A guard that forgets ``return`` returns None; read as false it would
silently disable its row and the check would pass. Every predicate the
kernel calls -- guards, system guards, invariants, witnesses, step
properties, constraints, ``final``, temporal properties -- must return a
bool, and each is named with its ``file:line`` when it does not.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from statewright.kernel import (
    Guard,
    Machine,
    Spec,
    System,
    SystemGuard,
    Transition,
    UserCodeError,
    always,
    always_step,
    check,
    eventually,
    simulate,
    sometimes,
    step,
)


class P(Enum):
    COUNTING = 1


@dataclass(frozen=True, slots=True)
class Count:
    phase: P = P.COUNTING
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc: ...


def forgot_return(s: Any, *rest: Any) -> bool:
    s.n < 3  # noqa: B015 - the mistake under test: no `return`
    return None  # type: ignore[return-value]


def counts(s: Any, *rest: Any) -> Any:
    return s.n if isinstance(s, Count) else 1


def counter(guard: Any = None) -> Machine[Count]:
    below = guard if guard is not None else Guard("below_3", lambda s, i: s.n < 3)
    return Machine("counter", initial=Count(), transitions=[
        Transition(P.COUNTING, Inc, P.COUNTING, guard=below, update=lambda s, i: replace(s, n=s.n + 1))])


def spec(model: Any = None, **kw: Any) -> Spec:
    return Spec("spec", model if model is not None else counter(), [Inc()], deadlock=False, **kw)


def at(fn: Callable[..., Any]) -> str:
    return f"{__file__}:{inspect.getsourcelines(fn)[1]}"


def refused(run: Callable[[], object], where: str, fn: Callable[..., Any], returned: str) -> UserCodeError:
    with pytest.raises(UserCodeError) as info:
        run()
    err = info.value
    assert where in str(err), str(err)
    assert f"({at(fn)}) returned {returned}, not a bool" in str(err), str(err)
    return err


def test_a_guard_that_forgets_return_is_named_by_step_and_by_check() -> None:
    machine = counter(Guard("below_3", forgot_return))
    row = "transition #0 (COUNTING --Inc[below_3]--> COUNTING), guard 'below_3'"
    err = refused(lambda: step(machine, Count(), Inc()), row, forgot_return, "None")
    assert "is a `return` missing?" in str(err)
    refused(lambda: check(spec(machine)), row, forgot_return, "None")
    refused(lambda: simulate(spec(machine), behaviours=1, seed=1), row, forgot_return, "None")


def test_a_plain_guard_function_returning_an_int_is_named() -> None:
    refused(lambda: check(spec(counter(counts))), "guard 'counts'", counts, "int 0")


def test_a_system_guard_is_named() -> None:
    pair: System[Any] = System("pair", {"a": counter(), "b": counter()},
                               guards=[SystemGuard("sometimes_none", Inc, lambda v, me, i: None)])
    with pytest.raises(UserCodeError, match=r"system 'pair', system guard 'sometimes_none' .* returned None, not a bool"):
        check(Spec("pair", pair, {"a": [Inc()], "b": [Inc()]}, deadlock=False))


@pytest.mark.parametrize("workers", [1, 2])
def test_properties_are_named(workers: int) -> None:
    for prop in (always("small", counts), sometimes("big", counts)):
        err = refused(lambda: check(spec(properties=[prop]), workers=workers), f"property {prop.name!r}", counts, "int 0")
        assert err.spec == "spec"
    refused(lambda: check(spec(properties=[always_step("grows", counts)])), "property 'grows'", counts, "int 0")


def test_constraints_final_and_temporal_properties_are_named() -> None:
    refused(lambda: check(spec(constraint=counts)), "constraint", counts, "int 0")
    refused(lambda: check(spec(action_constraint=counts)), "action constraint", counts, "int 0")
    stuck = Spec("stuck", counter(), [Inc()], final=counts)
    refused(lambda: check(stuck), "final", counts, "int 3")
    refused(lambda: check(spec(properties=[eventually("someday", counts)])), "property 'someday'", counts, "int 0")


def test_real_bools_pass() -> None:
    report = check(spec(properties=[always("small", lambda s: s.n <= 3), sometimes("three", lambda s: s.n == 3)]))
    assert report.ok and report.distinct_states == 4
