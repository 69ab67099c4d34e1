"""Fairness targets are resolved when the model is declared: by identity, with TLC's verdicts.

The model (TLC on /tmp's TwoWorkers.tla, kept in this docstring): two workers
``a`` and ``b``, each IDLE -> DONE, ``Spec == Init /\\ [][GoA \\/ GoB]_vars /\\
WF_vars(GoA)``. TLC: 4 distinct states, depth 3; ``<>(b = "DONE")`` is violated
by ``GoA`` then stuttering (2 states), ``<>(a = "DONE")`` holds.

    VARIABLES a, b
    Init == a = "IDLE" /\\ b = "IDLE"
    GoA == a = "IDLE" /\\ a' = "DONE" /\\ UNCHANGED b
    GoB == b = "IDLE" /\\ b' = "DONE" /\\ UNCHANGED a
    Spec == Init /\\ [][GoA \\/ GoB]_vars /\\ WF_vars(GoA)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest

from statewright.kernel import (
    DefinitionError,
    Machine,
    Spec,
    Status,
    System,
    Transition,
    Verdict,
    check,
)
from statewright.kernel.checker import eventually, strong_fair, weak_fair


class W(Enum):
    IDLE = "idle"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Go: ...


@dataclass(frozen=True, slots=True)
class Other: ...


def worker(name: str = "worker") -> Machine[W]:
    """A fresh machine object on every call: what a factory of per-instance machines makes."""
    return Machine(name, initial=W.IDLE, terminal={W.DONE}, transitions=[Transition(W.IDLE, Go, W.DONE)])


def two_workers(fairness: list[Any], *, same_name: bool = True) -> Spec:
    a, b = worker("worker" if same_name else "worker_a"), worker("worker" if same_name else "worker_b")
    system: System[Any] = System("two", {"a": a, "b": b})
    return Spec("two", system, {"a": [Go()], "b": [Go()]},
                [eventually("b_done", lambda v: v.b is W.DONE), eventually("a_done", lambda v: v.a is W.DONE)],
                fairness=fairness(a) if callable(fairness) else fairness, deadlock=False)


@pytest.mark.parametrize("same_name", [True, False])
def test_fairness_of_one_machine_object_covers_only_its_own_instance_as_in_tlc(same_name: bool) -> None:
    report = check(two_workers(lambda a: [weak_fair(a)], same_name=same_name), keep_going=True)
    assert (report.distinct_states, report.depth) == (4, 3)  # TLC: 4 distinct states, depth 3
    assert report.verdict is Verdict.VIOLATED
    b_done = report.result("b_done")
    assert b_done.status is Status.VIOLATED
    assert b_done.trace is not None and [s.input for s in b_done.trace] == [None, report_action("a")]
    assert b_done.loop == 1  # GoA, then stuttering: TLC's "State 3: Stuttering"
    assert b_done.detail is not None and "WF(a)" in b_done.detail and "WF(b)" not in b_done.detail
    assert report.result("a_done").status is Status.HOLDS


def report_action(instance: str) -> Any:
    from statewright.kernel import Action

    return Action(instance, Go())


def test_a_machine_of_the_same_name_that_is_not_in_the_model_matches_nothing() -> None:
    stranger = worker("worker")
    with pytest.raises(DefinitionError, match="machine 'worker'.*not a machine of"):
        check(two_workers([weak_fair(stranger)]))


@pytest.mark.parametrize(
    "target, match",
    [(Other, "'Other' matches no row"), ("c", "'c' matches no row"),
     (Transition(W.IDLE, Other, W.DONE), "matches no row")],
)
def test_a_target_matching_nothing_fails_before_any_search(target: Any, match: str) -> None:
    calls: list[Any] = []

    def watched(v: Any) -> bool:
        calls.append(v)
        return True

    a, b = worker(), worker()
    system: System[Any] = System("two", {"a": a, "b": b})
    with pytest.raises(DefinitionError, match=match):
        check(Spec("two", system, {"a": [Go()], "b": [Go()]}, [eventually("done", watched)],
                   fairness=[weak_fair(target)], deadlock=False))
    assert calls == []  # refused at declaration: no state was explored, no property judged


def test_fairness_that_is_not_a_fairness_condition_is_refused_at_declaration() -> None:
    a = worker()
    with pytest.raises(DefinitionError, match="is not weak_fair"):
        Spec("one", a, [Go()], fairness=["WF(Go)"])  # type: ignore[list-item]


def test_conditions_over_rows_name_the_instances_they_cover() -> None:
    shared = worker()
    system: System[Any] = System("two", {"a": shared, "b": shared})
    spec = Spec("two", system, {"a": [Go()], "b": [Go()]}, [eventually("never", lambda v: False)],
                fairness=[strong_fair(Go)], deadlock=False)
    detail = check(spec).result("never").detail
    assert detail is not None and "SF(Go in a, b)" in detail
