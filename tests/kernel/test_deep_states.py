"""A state nested past `values.MAX_DEPTH`: a `UserCodeError` naming the row that made it, never an internal error.

An update that returned a 200,000-deep state made the checker fail with a raw
``RecursionError`` (Python's ``hash`` of nested dataclasses recursing), shown
as an "internal error". Here it is refused where states are judged, naming
the update and its row, on one worker and on several, and at the depth limit
exactly; an initial state is refused the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from statewright.kernel import Machine, Spec, Transition, UserCodeError, check
from statewright.kernel.values import MAX_DEPTH, problem


class P(Enum):
    A = "a"
    B = "b"


@dataclass(frozen=True, slots=True)
class Nest:
    inner: Any = None


@dataclass(frozen=True, slots=True)
class S:
    phase: P = P.A
    nest: Any = None


@dataclass(frozen=True, slots=True)
class Go:
    pass


def nested(levels: int) -> Any:
    value: Any = None
    for _ in range(levels):
        value = Nest(value)
    return value


def deepen(s: S, i: Go) -> S:
    return replace(s, phase=P.B, nest=nested(200_000))


def at_the_limit(s: S, i: Go) -> S:
    return replace(s, phase=P.B, nest=nested(MAX_DEPTH - 1))  # S is level 1


def one_past(s: S, i: Go) -> S:
    return replace(s, phase=P.B, nest=nested(MAX_DEPTH))


def machine(update: Callable[[S, Go], S], initial: S = S()) -> Machine[S]:
    return Machine("deep", initial=initial, phase=lambda s: s.phase, terminal={P.B},
                   transitions=[Transition(P.A, Go, P.B, update=update)])


def spec(update: Callable[[S, Go], S], initial: S = S()) -> Spec:
    return Spec("deep", machine(update, initial), [Go()])


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("update", [deepen, one_past])
def test_an_update_returning_a_state_nested_too_deep_is_refused_naming_its_row(
    update: Callable[[S, Go], S], workers: int
) -> None:
    with pytest.raises(UserCodeError) as info:
        check(spec(update), workers=workers)
    err = info.value
    where = f"{__file__}:{inspect.getsourcelines(update)[1]}"
    assert str(err).startswith(f"machine 'deep', transition #0 (A --Go--> B), update ({where}) returned a state "
                               f"that is nested deeper than {MAX_DEPTH} levels"), str(err)
    assert "\n" not in str(err) and err.state == S()


def test_a_state_at_the_depth_limit_is_checked() -> None:
    report = check(spec(at_the_limit), workers=1)
    assert report.ok and report.distinct_states == 2


def test_an_initial_state_nested_too_deep_is_refused() -> None:
    with pytest.raises(UserCodeError, match=f"initial state is nested deeper than {MAX_DEPTH} levels"):
        check(spec(at_the_limit, S(nest=nested(200_000))), workers=1)


def test_the_walk_measures_depth_without_recursing() -> None:
    assert problem(S(nest=nested(MAX_DEPTH - 1))) is None
    assert problem(S(nest=nested(MAX_DEPTH))) is not None
    before = S(nest=nested(MAX_DEPTH - 1))
    assert problem(replace(before, phase=P.B), since=before) is None  # unchanged parts are not walked again
    assert problem(S(nest=Nest(before.nest)), since=before) is not None  # one level more, from the root
