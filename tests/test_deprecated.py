"""Names that moved in issue 16 keep working for one release, each with a warning naming its successor."""

from __future__ import annotations

import warnings
from enum import Enum
from typing import Any

import pytest

import statewright
from statewright import Machine, Spec, Transition
from statewright.kernel.checker import Kind, always_step


class P(Enum):
    ON = 1


class Go: ...


LAMP = Machine("lamp", initial=P.ON, transitions=[Transition(P.ON, Go, P.ON)])


def test_transition_is_always_step() -> None:
    with pytest.warns(DeprecationWarning, match=r"transition\(name, test\) is now always_step"):
        prop = statewright.transition("same", lambda b, i, a: a == b)
    assert prop == always_step("same", prop.test)
    assert Kind.TRANSITION is Kind.STEP


def test_spec_bounds_move_to_the_spec_and_to_check() -> None:
    with pytest.warns(DeprecationWarning, match="statewright.Bounds is deprecated"):
        bounds_type: Any = statewright.Bounds
    with pytest.warns(DeprecationWarning, match=r"Spec\(bounds=Bounds\(\.\.\.\)\) is deprecated"):
        spec = Spec("lamp", LAMP, [Go()], bounds=bounds_type(max_states=1, constraint=lambda s: True))
    assert spec.constraint is not None and spec.bounds is not None
    report = statewright.check(spec)
    assert report.stopped_by is None and report.distinct_states == 1  # max_states=1: one state, nothing to cut
    with pytest.raises(statewright.DefinitionError, match="constraint is given both"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Spec("lamp", LAMP, [Go()], constraint=lambda s: True, bounds=bounds_type(constraint=lambda s: True))


def test_check_parallel_is_check_with_workers() -> None:
    from statewright.specs import REGISTRY

    spec = REGISTRY.get("two_phase").spec()
    with pytest.warns(DeprecationWarning, match=r"check_parallel\(spec, workers=N\) is now check"):
        old = statewright.check_parallel(spec, workers=2)
    assert old.distinct_states == statewright.check(spec, workers=2).distinct_states == 288


def test_the_authoritys_conflict_is_stale() -> None:
    with pytest.warns(DeprecationWarning, match="now statewright.Stale"):
        assert statewright.Conflict is statewright.Stale
    import statewright.kernel as kernel

    with pytest.warns(DeprecationWarning, match="authority.Conflict is renamed Stale"):
        assert kernel.Conflict is statewright.Stale


def test_unknown_names_are_still_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        statewright.nonsense  # type: ignore[attr-defined]  # noqa: B018


def test_the_facade_lists_every_name_and_its_version() -> None:
    names = dir(statewright)
    for name in ("Driver", "Fed", "Report", "PropertyResult", "Fair", "Property", "Blocked", "Options", "check",
                 "__version__"):
        assert name in names and hasattr(statewright, name), name
    assert statewright.__version__ == statewright.version() and statewright.__version__.count(".") >= 2
