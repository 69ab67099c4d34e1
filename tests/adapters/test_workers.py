"""`check --workers N`: the level engine on several processes reports exactly what one process reports."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from statewright import Spec, UserCodeError, always
from statewright.adapters.checking import check
from statewright.adapters.checking.fork import fork_pool
from statewright.adapters.cli import run
from statewright.kernel.checker import (
    Options,
    StopReason,
    Verdict,
    always_step,
    sometimes,
)
from statewright.kernel.checker import workers as parallel
from statewright.kernel.checker.levels import prepare_levels
from statewright.kernel.checker.search import Search
from statewright.kernel.checker.workers import Coordinator
from statewright.specs import REGISTRY
from tests.kernel.test_levels import cells, safety, summary


def forked(spec: Spec, workers: int = 2, **options: Any) -> Any:
    """Run the coordinator directly and insist that it really used its forked workers."""
    started: list[int] = []

    def pool(*args: Any) -> Any:
        started.append(args[-1])
        return fork_pool(*args)

    opts = Options(workers=workers, pool=pool, **options)
    planned = prepare_levels(spec, opts)
    assert planned is not None
    report = Coordinator(spec, *planned, opts).run()
    assert started == [workers], "the search never started its workers"
    return report


@pytest.fixture
def fork_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the workers at the first level, so small specs exercise them."""
    monkeypatch.setattr(parallel, "FORK_AT", 1)
    monkeypatch.setattr(parallel, "SMALLEST_CHUNK", 4)


@pytest.mark.slow
def test_input_lifecycle_on_two_workers_is_search_exactly() -> None:
    spec = REGISTRY.get("input_lifecycle").spec(n=6)
    ours = forked(spec)
    assert summary(ours) == summary(Search(spec).run())
    assert (ours.verdict, ours.distinct_states, ours.depth) == (Verdict.OK, 76_516, 25)  # the hand-written BFS agrees


@pytest.mark.usefixtures("fork_early")
@pytest.mark.parametrize("keep_going", [False, True])
@pytest.mark.parametrize("variant", ["plain", "constraint", "watched", "expected"])
def test_every_lane_and_finding_crosses_the_process_boundary(variant: str, keep_going: bool) -> None:
    props: list[Any] = [always("few", lambda v: sum(c.count for c in v) <= 9),
                        sometimes("all_held_once", lambda v: all(c.count >= 1 for c in v))]
    options: dict[str, Any] = {}
    if variant == "constraint":
        options["constraint"] = lambda v: sum(c.count for c in v) <= 5
    if variant == "watched":
        props.append(always_step("small_steps", lambda b, a, v: abs(sum(c.count for c in v)
                                                                 - sum(c.count for c in b)) <= 3))
    if variant == "expected":
        props.append(always("never_three", lambda v: all(c.count != 3 for c in v)))
        props.append(always_step("never_drops_three", lambda b, a, v: not (
            type(a.input).__name__ == "Drop" and getattr(b, a.instance).count == 3)))
        options["expect"] = ["never_three", "never_drops_three"]
    spec = cells(3, properties=props, determinism=variant != "expected", **options)
    for workers in (2, 3):
        assert summary(forked(spec, workers, keep_going=keep_going)) == summary(
            Search(spec, Options(keep_going=keep_going)).run())


@pytest.mark.slow
@pytest.mark.usefixtures("fork_early")
def test_bundled_systems_on_workers() -> None:
    for name in ("two_phase", "session_inputs", "cas_atomic"):
        spec = safety(REGISTRY.get(name).spec())
        assert summary(forked(spec)) == summary(Search(spec).run()), name


@pytest.mark.usefixtures("fork_early")
def test_an_unexpected_violation_is_reported_as_search_reports_it() -> None:
    spec = REGISTRY.get("input_lifecycle").spec(n=5, stage_guard=False)
    assert summary(check(spec, workers=2)) == summary(Search(spec).run())


@pytest.mark.usefixtures("fork_early")
def test_user_code_raising_in_a_worker_is_the_error_search_raises() -> None:
    def exploding(v: Any) -> bool:
        if sum(c.count for c in v) >= 4:
            raise ZeroDivisionError("boom")
        return True

    spec = cells(3, properties=[always("exploding", exploding)])
    with pytest.raises(UserCodeError) as theirs:
        Search(spec).run()
    with pytest.raises(UserCodeError) as ours:
        check(spec, workers=2)
    assert str(ours.value) == str(theirs.value) and "boom" in str(ours.value)


@pytest.mark.usefixtures("fork_early")
def test_a_worker_that_dies_leaves_the_answer_to_search() -> None:
    parent = os.getpid()

    def dies_in_a_worker(v: Any) -> bool:
        if os.getpid() != parent:
            os._exit(9)  # as if the OOM killer took it
        return True

    spec = cells(3, properties=[always("fine", dies_in_a_worker)])
    with pytest.warns(RuntimeWarning, match=r"a worker failed \(worker \d died\); the check goes on in one process"):
        report = check(spec, workers=2)
    assert summary(report) == summary(Search(spec).run())


def test_should_stop_interrupts_a_parallel_search() -> None:
    spec = REGISTRY.get("input_lifecycle").spec(n=6)
    calls = iter(range(10**6))
    r = check(spec, workers=2, should_stop=lambda: StopReason.INTERRUPTED if next(calls) > 12 else None)
    assert (r.verdict, r.stopped_by, r.complete) == (Verdict.BOUNDED, StopReason.INTERRUPTED, False)
    assert 0 < r.distinct_states < 76_516


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        check(REGISTRY.get("two_phase").spec(), workers=0)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_workers_give_the_same_report(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for w in ("1", "2"):
        code, out, _ = _run(capsys, "check", "input_lifecycle", "--set", "n=5", "--workers", w)
        assert code == 0
        outputs.append(re.sub(r"\d+\.\d\d s", "T s", out))
    assert outputs[0] == outputs[1] and "11,716 distinct states" in outputs[0]


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers"),
    (["--simulate", "5", "--workers", "2"], "--simulate cannot be combined with --workers"),
])
def test_cli_refuses_bad_workers(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = _run(capsys, "check", "two_phase", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("fork_early")
@pytest.mark.parametrize("knobs", [{}, pytest.param({"rms": 4}, marks=pytest.mark.slow), {"all_prepared": False}])
def test_symmetry_on_workers_is_search_with_symmetry(knobs: dict[str, Any]) -> None:
    spec = REGISTRY.get("two_phase").spec(**knobs)
    assert summary(check(spec, workers=2, symmetry=True)) == summary(Search(spec, Options(symmetry=True)).run())


def test_cli_symmetry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "check", "two_phase", "--symmetry", "--quiet")
    assert code == 0 and out.startswith("two_phase: OK -- 80 distinct states up to symmetry of r1, r2, r3, ")
    code, out, err = _run(capsys, "check", "diehard", "--symmetry")
    assert code == 2 and err.strip() == "statewright: error: --symmetry: diehard declares no symmetry (Spec(symmetry=...))"
    code, out, err = _run(capsys, "check", "two_phase", "--symmetry", "--simulate", "3")
    assert code == 2 and "--simulate cannot be combined with --symmetry" in err
