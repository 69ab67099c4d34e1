"""Generated hypothesis suites: bundled specs pass, seeded bugs are found, traces replay."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.testing.stateful import (
    PropertyViolation,
    Replayed,
    Way,
    regression_test,
    replay,
    run_suite,
    suite,
)
from statewright.adapters.testing.traces import trace_from_json
from statewright.kernel.checker import Status, always, check, semantics
from statewright.kernel.checker import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.jsonable import trace_json
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.system import Action, Route, System
from statewright.specs import REGISTRY
from statewright.specs.input_lifecycle import Enqueue, Phase, Stage

SMALL = {"input_lifecycle": {"n": 3}}
SLOW_SUITES = {"cas_atomic", "dispatch", "ewd840", "input_lifecycle", "lamport_mutex", "loop_frame", "order_payment",
               "order_payment_async", "session_inputs", "task_as_written", "token", "two_phase"}
"""Specs whose generated suite takes over ~0.5 s (marked `slow`: left out of `make quick`)."""


def bundled(name: str) -> Spec:
    return REGISTRY.get(name).spec(**SMALL.get(name, {}))


def lifecycle(**knobs: object) -> Spec:
    return REGISTRY.get("input_lifecycle").spec(n=3, **knobs)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SUITES else n
                                  for n in REGISTRY.names])
def test_every_bundled_spec_passes_its_suite(name: str) -> None:
    result = run_suite(bundled(name), examples=30, steps=30)
    assert result.passed, result.failure
    assert result.spec == name and result.failure is None
    assert result.examples >= 30 and result.steps > 0


def test_one_rule_per_row_with_a_bundle_of_instances() -> None:
    cls = suite(lifecycle())
    rules = sorted(k for k in vars(cls) if k.startswith("tla_input__"))
    # 5 single-source rows plus Abandon from each of the 4 live phases
    assert len(rules) == 9
    assert "tla_input__QUEUED_Stage_STAGED" in rules
    assert "tla_input__STAGED_Abandon_ABANDONED" in rules
    assert {"instances", "init_instances", "restart", "always__at_most_one_staged"} <= set(vars(cls))


def test_a_machine_spec_needs_no_bundle() -> None:
    cls = suite(bundled("diehard"))
    assert "instances" not in vars(cls)
    assert "diehard__POURING_FillBig_POURING" in vars(cls)
    assert "always__jugs_in_range" in vars(cls)
    assert "always__not_solved" not in vars(cls)  # expected to fail: not asserted
    assert "always__not_solved" in vars(suite(bundled("diehard"), include_expected=True))


@pytest.mark.slow
def test_missing_stage_guard_is_found_and_shrunk_to_a_printed_program() -> None:
    result = run_suite(lifecycle(stage_guard=False), examples=60, steps=30)
    assert not result.passed and result.failure is not None and result.program is not None
    first, *rest = result.failure.splitlines()
    assert first.startswith("PropertyViolation: property 'at_most_one_staged' violated")
    assert rest[0] == "The failing program, shrunk to 4 inputs (paste it into Python to reproduce the failure):"
    assert result.program in result.failure
    lines = result.program.splitlines()
    assert lines[:3] == ["from statewright.adapters.testing.stateful import replay",
                         "from statewright.kernel.system import Action",
                         "from statewright.specs.input_lifecycle import Enqueue, Stage"]
    assert lines[4] == "# spec: the Spec 'input_lifecycle' that was run"  # no spec_code: the caller's spec
    taken = lines[6:-1]  # two inputs enqueued, then both staged: no step of hypothesis's program is left over
    assert [line.split("input=")[1] for line in taken] == ["Enqueue()),", "Enqueue()),", "Stage()),", "Stage()),"]
    assert len({line.split("'")[1] for line in taken}) == 2
    assert rest[-1] == "seed 0: `run_suite(spec, examples=60, steps=30, seed=0)` runs the same programs and finds it again"
    assert "data(" not in result.failure and "state." not in result.failure  # no hypothesis rule calls


@pytest.mark.slow
def test_the_printed_program_reproduces_the_failure_in_a_fresh_interpreter(tmp_path: Path) -> None:
    from statewright.adapters.project.discovery import BUNDLED, from_entry

    target = from_entry(REGISTRY.get("input_lifecycle"), BUNDLED)
    overrides = {"n": 3, "stage_guard": False}
    result = run_suite(target.spec(**overrides), examples=60, steps=30, spec_code=target.spec_code(overrides))
    assert result.program is not None
    assert "spec = REGISTRY.get('input_lifecycle').spec(n=3, stage_guard=False)" in result.program.splitlines()
    (tmp_path / "repro.py").write_text(result.program + "\n")
    done = subprocess.run([sys.executable, "repro.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "statewright.adapters.testing.stateful.PropertyViolation: property 'at_most_one_staged' violated")
    fixed = result.program.replace("stage_guard=False", "stage_guard=True")  # the same inputs, the guard back
    (tmp_path / "fixed.py").write_text(fixed + "\nprint('refused')\n")
    done = subprocess.run([sys.executable, "fixed.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "refused\n")


@pytest.mark.slow
def test_running_again_with_the_printed_seed_finds_the_same_program() -> None:
    spec = lifecycle(stage_guard=False)
    first = run_suite(spec, examples=60, steps=30, seed=5)
    assert not first.passed and first.failure is not None
    assert first.failure.splitlines()[-1].startswith("seed 5: `run_suite(spec, examples=60, steps=30, seed=5)`")
    again = run_suite(spec, examples=60, steps=30, seed=5)
    assert (again.failure, again.program, again.examples) == (first.failure, first.program, first.examples)
    assert run_suite(spec, examples=60, steps=30).seed == 0  # no seed: DEFAULT_SEED, printed like any other


@pytest.mark.slow
def test_a_suite_run_by_hypothesis_itself_notes_the_inputs_as_a_replay() -> None:
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    buggy = suite(lifecycle(stage_guard=False))
    with pytest.raises(PropertyViolation) as info:
        run_state_machine_as_test(buggy, settings=settings(max_examples=200, database=None, derandomize=True,
                                                           deadline=None))
    notes = "\n".join(info.value.__notes__)
    assert "The inputs, as a replay (statewright):" in notes and "replay(spec, [" in notes
    assert notes.count("input=Stage()") >= 2


def test_replay_takes_a_list_of_inputs() -> None:
    spec = lifecycle(stage_guard=False)
    with pytest.raises(PropertyViolation) as info:
        replay(spec, [Action("i1", Enqueue()), Action("i2", Enqueue()), Action("i1", Stage()), Action("i2", Stage())])
    assert (info.value.property, info.value.step) == ("at_most_one_staged", 4)
    assert replay(lifecycle(), [Action("i1", Enqueue()), Action("i2", Enqueue()), Action("i1", Stage()),
                                Action("i2", Stage())]) == Replayed(3, "step 4: i2 does not take Stage()")
    assert replay(spec, [Action("i1", Enqueue())]) == Replayed(1)
    with pytest.raises(TypeError, match="is a system, so each input is an Action"):
        replay(spec, [Enqueue()])


def test_replay_of_inputs_ends_by_judging_a_state_where_nothing_is_enabled() -> None:
    stuck = Machine("stuck", initial=Q.A, terminal={Q.DONE}, transitions=[Transition(Q.A, Go, Q.B),
                                                                           Transition(Q.B, Fin, Q.DONE)])
    spec = Spec("stuck", stuck, [Go()])
    with pytest.raises(PropertyViolation) as info:
        replay(spec, [Go()])
    assert info.value.property == "deadlock"
    assert replay(Spec("stuck", stuck, [Go()], deadlock=False), [Go()]) == Replayed(1)


def test_a_way_picks_one_of_the_ways_an_input_may_go() -> None:
    both = Machine("both", initial=Q.A, terminal={Q.B, Q.DONE}, transitions=[
        Transition(Q.A, Go, Q.B, guard=YES), Transition(Q.A, Go, Q.DONE, guard=ALSO)])
    spec = Spec("both", both, [Go()], determinism=False, properties=[always("never_done", lambda s: s is not Q.DONE)])
    assert replay(spec, [Go()]) == Replayed(1)
    with pytest.raises(PropertyViolation) as info:
        replay(spec, [Way(Go(), 1)])
    assert info.value.property == "never_done"
    assert replay(spec, [Way(Go(), 2)]) == Replayed(0, "step 1: both takes Go() in 2 ways, not way 2")
    result = run_suite(spec, examples=30, steps=5)
    assert result.program is not None and "    Way(input=Go(), n=1),\n" in result.program
    with pytest.raises(PropertyViolation):  # the printed program, run here with this spec
        exec(result.program, {"spec": spec})


def test_abandoning_a_terminal_input_is_found() -> None:
    result = run_suite(lifecycle(abandon_terminal=True), examples=60, steps=30, shrink=False)
    assert not result.passed and result.failure is not None
    assert result.failure.startswith("PropertyViolation: property 'terminal_stable' violated")


def test_diehard_without_its_expectation_finds_the_solution() -> None:
    spec = replace(bundled("diehard"), expect=())
    result = run_suite(spec, examples=30, steps=30, shrink=False)
    assert not result.passed and result.failure is not None
    assert result.failure.startswith("PropertyViolation: property 'not_solved' violated")
    assert "big=4" in result.failure.splitlines()[0]


@pytest.mark.parametrize(("name", "prop"), [("cas_non_atomic", "no_lost_update"),
                                            pytest.param("task_as_written", "terminal_stable",
                                                         marks=pytest.mark.slow)])
def test_expected_violations_are_found_on_request(name: str, prop: str) -> None:
    spec = bundled(name)
    assert check(spec).result(prop).status is Status.EXPECTED
    assert run_suite(spec, examples=30, steps=30, shrink=False).passed
    result = run_suite(spec, examples=30, steps=30, shrink=False, include_expected=True)
    assert not result.passed and result.failure is not None
    assert "violated" in result.failure.splitlines()[0]


def test_seeded_runs_are_reproducible() -> None:
    spec = lifecycle(stage_guard=False)
    a = run_suite(spec, examples=30, steps=30, seed=7, shrink=False)
    b = run_suite(spec, examples=30, steps=30, seed=7, shrink=False)
    assert (a.passed, a.failure, a.examples, a.seed) == (b.passed, b.failure, b.examples, 7)
    assert not a.passed


def test_replaying_the_checker_trace_reproduces_its_violation() -> None:
    spec = lifecycle(stage_guard=False)
    trace = check(spec).result("at_most_one_staged").trace
    assert trace is not None and len(trace) == 5
    for _ in range(2):  # deterministic: the same failure every time
        with pytest.raises(PropertyViolation) as info:
            replay(spec, trace)
        assert info.value.property == "at_most_one_staged"
        assert info.value.step == 4
        notes = "\n".join(info.value.__notes__)
        assert "The trace's inputs, as a replay:" in notes and "    Action(instance='i1', input=Stage()),\n" in notes


def test_replay_against_the_fixed_model_stops_where_it_refuses() -> None:
    trace = check(lifecycle(stage_guard=False)).result("at_most_one_staged").trace
    assert trace is not None
    done = replay(lifecycle(), trace)
    assert done.steps == 3
    assert done.stopped is not None and "does not take Stage()" in done.stopped


def test_replay_of_a_harmless_trace_runs_to_the_end() -> None:
    spec = lifecycle()
    witness = check(spec).result("all_consumed").trace
    assert witness is not None
    assert replay(spec, witness) == Replayed(len(witness) - 1)


def test_replay_reports_a_trace_the_model_does_not_follow() -> None:
    spec = lifecycle()
    bogus = check(spec).result("all_consumed").trace
    assert bogus is not None
    wrong = bogus[:2] + (replace(bogus[2], state=spec.model.initial),)
    assert (replay(spec, wrong).stopped or "").startswith("step 2: reached")
    refused = bogus[:1] + (replace(bogus[1], input=Action("i1", Stage())),)
    assert replay(spec, refused) == Replayed(0, "step 1: i1 does not take Stage()")


class Box(Enum):
    EMPTY = "empty"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Boxed:
    phase: Box = Box.EMPTY
    payload: Any = None


@dataclass(frozen=True, slots=True)
class Put:
    payload: Any  # a tuple in the model; JSON has only lists, and nothing says to read one back as a tuple


def box() -> Machine[Boxed]:
    return Machine("box", initial=Boxed(), phase=lambda s: s.phase, terminal={Box.FULL},
                   transitions=[Transition(Box.EMPTY, Put, Box.FULL, update=lambda s, i: Boxed(Box.FULL, i.payload))])


def boxes() -> Spec:
    return Spec("box", box(), [Put((1, 2))], [always("empty", lambda s: s.phase is Box.EMPTY)])


def test_a_trace_whose_any_field_reads_back_a_list_is_a_typed_error_naming_the_step_and_field() -> None:
    """Issue 17, item 19: ``TypeError: unhashable type: 'list'`` from deep inside `replay`."""
    spec = boxes()
    trace = check(spec).result("empty").trace
    assert trace is not None
    data = trace_json(trace)
    assert data is not None and data[1]["input"] == {"type": "Put", "payload": [1, 2]}
    with pytest.raises(DefinitionError) as info:
        trace_from_json(spec, data)
    assert str(info.value) == (
        "spec 'box': step 1 of the trace does not fit the model: the input Put field 'payload' holds [1, 2], "
        "a mutable list (use a tuple or frozenset); statewright's inputs and states must be hashable, and JSON "
        "has only lists: annotate the field (tuple[int, ...], frozenset[str], ...) so the trace reads back")


def test_replay_of_an_input_that_is_not_hashable_is_a_typed_error_naming_the_step_and_field() -> None:
    spec = boxes()
    with pytest.raises(DefinitionError) as info:
        replay(spec, [Put([1, 2])])
    assert str(info.value) == (
        "spec 'box': replay: step 1: the input Put field 'payload' holds [1, 2], a mutable list (use a tuple or "
        "frozenset); statewright's inputs must be hashable")
    trace = check(spec).result("empty").trace
    assert trace is not None
    listed = trace[:1] + (replace(trace[1], input=Put([1, 2])),)
    with pytest.raises(DefinitionError, match=r"^spec 'box': replay: step 1: the input Put field 'payload' holds"):
        replay(spec, listed)
    with pytest.raises(PropertyViolation):  # the same trace with the model's own tuple replays
        replay(spec, trace)
    pair = Spec("pair", System("pair", {"b1": box(), "b2": box()}), {"b1": [Put((1, 2))], "b2": [Put((1, 2))]})
    with pytest.raises(DefinitionError, match=r"step 2: the input Put of 'b2' field 'payload' holds \[1, 2\], a "):
        replay(pair, [Action("b1", Put((1, 2))), Action("b2", Put([1, 2]))])


def test_regression_test_is_one_call_from_the_bug() -> None:
    buggy = lifecycle(stage_guard=False)
    test = regression_test(buggy, "at_most_one_staged")
    assert test.__name__ == "test_input_lifecycle_at_most_one_staged_regression"
    with pytest.raises(PropertyViolation, match="at_most_one_staged"):
        test()
    fixed = regression_test(buggy, "at_most_one_staged", against=lifecycle())
    fixed()  # the fixed model refuses the second Stage: the regression test passes
    assert Phase.STAGED in fixed.trace[-1].state  # type: ignore[attr-defined]


def test_regression_test_needs_a_counterexample() -> None:
    with pytest.raises(ValueError, match="no counterexample"):
        regression_test(lifecycle(), "at_most_one_staged")


# -- the built-ins, judged on settle's microsteps with kernel.checker.semantics ---------


class P(Enum):
    A = 1
    B = 2
    C = 3
    DONE = 4


class Q(Enum):
    A = 1
    B = 2
    DONE = 3


@dataclass(frozen=True)
class Go:
    pass


@dataclass(frozen=True)
class Fin:
    pass


@dataclass(frozen=True)
class Again:
    pass


@dataclass(frozen=True)
class Poke:
    pass


YES = Guard("yes", lambda s, i: True)
ALSO = Guard("also", lambda s, i: True)
# Go in A enables two rows; Fin in A leads to C, where nothing is accepted
AMBIGUOUS = Machine("amb", initial=P.A, terminal={P.DONE}, transitions=[
    Transition(P.A, Go, P.B, guard=YES), Transition(P.A, Go, P.A, guard=ALSO),
    Transition(P.B, Fin, P.DONE), Transition(P.A, Fin, P.C)])
REOPENS = Machine("reopens", initial=Q.A, terminal={Q.DONE}, transitions=[
    Transition(Q.A, Go, Q.B), Transition(Q.B, Fin, Q.DONE), Transition(Q.DONE, Again, Q.A, from_terminal=True)])
# a's Go emits Poke, routed to b, where Poke enables two rows: only the routed microstep shows it
SENDER = Machine("sender", initial=Q.A, terminal={Q.DONE}, transitions=[
    Transition(Q.A, Go, Q.B, emit=(Poke(),)), Transition(Q.B, Fin, Q.DONE)])
RECEIVER = Machine("receiver", initial=Q.A, terminal={Q.DONE}, transitions=[
    Transition(Q.A, Poke, Q.B, guard=YES), Transition(Q.A, Poke, Q.DONE, guard=ALSO), Transition(Q.B, Fin, Q.DONE)])
PAIR = System("pair", {"a": SENDER, "b": RECEIVER}, routes=[Route(Poke, lambda e, source: ("b", e))])


def violated(spec: Spec) -> str:
    result = run_suite(spec, examples=50, steps=20)
    assert not result.passed and result.failure is not None
    return result.failure.splitlines()[0]


def test_an_input_enabling_two_rows_breaks_determinism() -> None:
    first = violated(Spec("amb", AMBIGUOUS, [Go(), Fin()]))
    assert first == ("PropertyViolation: property 'determinism' violated: "
                     + str(semantics.ambiguity(AMBIGUOUS, P.A, Go(), AMBIGUOUS.index[(P.A, Go)])))


def test_a_routed_input_enabling_two_rows_breaks_determinism() -> None:
    first = violated(Spec("pair", PAIR, {"a": [Go()], "b": [Fin()]}, deadlock=False))
    assert first.endswith("machine 'receiver' in <Q.A: 1>: Poke() enables A --Poke[yes]--> B; A --Poke[also]--> DONE")
    no_det = Spec("pair", PAIR, {"a": [Go()], "b": [Fin()]}, deadlock=False, determinism=False)
    assert run_suite(no_det, examples=20, steps=10).passed


def test_a_row_leaving_a_terminal_phase_breaks_terminal_precedence() -> None:
    first = violated(Spec("reopens", REOPENS, [Go(), Fin(), Again()]))
    assert first.endswith("property 'terminal_precedence' violated: reopens left terminal phase by DONE --Again--> A")
    assert run_suite(Spec("reopens", REOPENS, [Go(), Fin(), Again()], terminal_precedence=False),
                     examples=20, steps=10).passed


def test_a_state_with_nothing_to_take_must_be_final() -> None:
    first = violated(Spec("amb", AMBIGUOUS, [Go(), Fin()], determinism=False))
    assert first.endswith("property 'deadlock' violated: no input is accepted in non-final <P.C: 3>")
    final = Spec("amb", AMBIGUOUS, [Go(), Fin()], determinism=False, final=lambda s: s in (P.C, P.DONE))
    assert run_suite(final, examples=20, steps=10).passed
    assert run_suite(Spec("amb", AMBIGUOUS, [Go(), Fin()], determinism=False, deadlock=False),
                     examples=20, steps=10).passed
