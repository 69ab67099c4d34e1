"""The planner and manifests: one test per stable code of the source, exact code strings, and properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statewright.adapters.runtime.store import canonical_json
from statewright.kernel.errors import UserCodeError
from statewright.kernel.step import Accepted, step
from statewright.machines.pipeline import (
    Code,
    ExecutionPlan,
    Operation,
    Pipeline,
    PlanFailure,
    Ports,
    Registry,
    SideEffects,
    StateGraph,
    StateNode,
    Step,
    canonical_bytes,
    check_manifest_id,
    linear_op,
    manifest,
    manifest_bytes,
    manifest_id,
    plan,
    read_manifest,
    replan,
)
from statewright.machines.run import Enter, Outcome, RunCompleted, Start, Succeed, run_machine

FETCH = linear_op("fetch", "v1", ("get",), exports=("rows",))
STORE = linear_op("store", "v1", ("put",), imports=("rows",))
REG = Registry.of(FETCH, STORE)


def graph_op(op_id: str, graph: Any) -> Operation:
    """An operation whose expansion is ``graph(op_path)``."""
    return Operation(op_id, "v1", lambda path, config: graph(path))


def failure(p: Pipeline, reg: Registry = REG) -> PlanFailure:
    result = plan(p, reg)
    assert isinstance(result, PlanFailure), result
    return result


def one(op_id: str = "fetch", config: Any = None, step_id: str = "a") -> Pipeline:
    return Pipeline("etl", "v1", (Step(step_id, op_id, "v1", {} if config is None else config),))


# -- one test per code ---------------------------------------------------------


def test_invalid_machine_id() -> None:
    f = failure(Pipeline("ETL", "v1", (Step("a", "fetch", "v1"),)))
    assert f.code == "invalid_machine_id" and "'ETL'" in f.message


def test_empty_pipeline() -> None:
    f = failure(Pipeline("etl", "v1", ()))
    assert f.code == "empty_pipeline" and "'etl'" in f.message


@pytest.mark.parametrize("bad", ["", "A", "1a", "a.b", "a-b", "a\n", "a" * 64])
def test_invalid_step_id(bad: str) -> None:
    f = failure(one(step_id=bad))
    assert f.code == "invalid_step_id" and f.step_id == bad and repr(bad) in f.message


def test_a_step_id_of_63_characters_is_valid() -> None:
    assert isinstance(plan(one(step_id="a" * 63), REG), ExecutionPlan)


def test_duplicate_step_id() -> None:
    f = failure(Pipeline("etl", "v1", (Step("a", "fetch", "v1"), Step("a", "fetch", "v1"))))
    assert f.code == "duplicate_step_id" and f.message.startswith("step 'a':")


def test_invalid_op_id() -> None:
    f = failure(one(op_id="Fetch"))
    assert f.code == "invalid_op_id" and "step 'a'" in f.message and "'Fetch'" in f.message


@pytest.mark.parametrize("config", [{"rate": 0.5}, {"xs": [1, float("nan")]}, {"s": {1, 2}}, {1: "x"}, {"s": "\ud800"}])
def test_op_config_not_canonical(config: Any) -> None:
    f = failure(one(config=config))
    assert f.code == "op_config_not_canonical" and f.message.startswith("step 'a':")


@pytest.mark.parametrize("config", [{"db_password": "x"}, {"auth": "Bearer abc"}, {"nested": [{"API_KEY": 1}]},
                                    {"phrase": " ".join(["abandon"] * 11 + ["about"])}, {"password": 0.5}])
def test_secrets_detected(config: Any) -> None:
    f = failure(one(config=config))  # secrets are looked for before floats, as in the source
    assert f.code == "secrets_detected" and f.message.startswith("step 'a':")


def test_harmless_config_is_not_a_secret() -> None:
    assert isinstance(plan(one(config={"seeding": "database", "words": "a b c"}), REG), ExecutionPlan)


def test_op_not_found() -> None:
    f = failure(Pipeline("etl", "v1", (Step("a", "fetch", "v2"),)))
    assert f.code == "op_not_found" and f.step_id == "a" and "'fetch'" in f.message and "'v2'" in f.message


def test_unsatisfied_import() -> None:
    f = failure(Pipeline("etl", "v1", (Step("b", "store", "v1"),)))
    assert f.code == "unsatisfied_import" and f.step_id == "b" and "'rows'" in f.message


def test_a_step_never_imports_its_own_export() -> None:
    loop = linear_op("loop", "v1", ("go",), imports=("x",), exports=("x",))
    f = failure(Pipeline("etl", "v1", (Step("a", "loop", "v1"),)), Registry.of(loop))
    assert f.code == "unsatisfied_import"


def test_last_writer_wins() -> None:
    p = Pipeline("etl", "v1", (Step("a", "fetch", "v1"), Step("b", "fetch", "v1"), Step("c", "store", "v1")))
    result = plan(p, REG)
    assert isinstance(result, ExecutionPlan)
    assert result.states[-1].imports == (("rows", "etl.b"),)


def test_empty_state_graph() -> None:
    f = failure(one("none"), Registry.of(graph_op("none", lambda path: StateGraph(()))))
    assert f.code == "empty_state_graph" and f.step_id == "a"


@pytest.mark.parametrize("state_id", ["etl.a", "etl.a.x.y", "other.a.x", "etl.b.x"])
def test_invalid_state_id(state_id: str) -> None:
    f = failure(one("odd"), Registry.of(graph_op("odd", lambda path: StateGraph((StateNode(state_id),)))))
    assert f.code == "invalid_state_id" and f.state_id == state_id and repr(state_id) in f.message


@pytest.mark.parametrize("local", ["", "X", "9a"])
def test_invalid_state_local_id(local: str) -> None:
    f = failure(one("odd"), Registry.of(graph_op("odd", lambda path: StateGraph((StateNode(f"{path}.{local}"),)))))
    assert f.code == "invalid_state_local_id" and f.state_id == f"etl.a.{local}"


def test_missing_idempotency_key() -> None:
    pay = linear_op("pay", "v1", ("charge",), side_effects=SideEffects.APPLY)
    f = failure(one("pay"), Registry.of(pay))
    assert f.code == "missing_idempotency_key" and f.state_id == "etl.a.charge" and "'etl.a.charge'" in f.message


def test_an_apply_state_with_a_key_plans() -> None:
    pay = linear_op("pay", "v1", ("charge",), side_effects=SideEffects.APPLY, idempotency_key="order-1")
    result = plan(one("pay"), Registry.of(pay))
    assert isinstance(result, ExecutionPlan) and result.states[0].idempotency_key == "order-1"


def test_duplicate_state_id() -> None:
    twice = graph_op("twice", lambda path: StateGraph((StateNode(f"{path}.x"), StateNode(f"{path}.x"))))
    f = failure(one("twice"), Registry.of(twice))
    assert f.code == "duplicate_state_id" and f.state_id == "etl.a.x"


def test_missing_state_for_edge() -> None:
    dangling = graph_op("dangling", lambda path: StateGraph((StateNode(f"{path}.x"),), ((f"{path}.x", f"{path}.y"),)))
    f = failure(one("dangling"), Registry.of(dangling))
    assert f.code == "missing_state_for_edge" and f.state_id == "etl.a.y" and f.step_id == "a"


def test_circular_dependency() -> None:
    cyc = graph_op("cyc", lambda p: StateGraph((StateNode(f"{p}.x"), StateNode(f"{p}.y")),
                                               ((f"{p}.x", f"{p}.y"), (f"{p}.y", f"{p}.x"))))
    f = failure(one("cyc"), Registry.of(cyc))
    assert f.code == "circular_dependency" and "etl.a.x -> etl.a.y -> etl.a.x" in f.message


def test_every_code_is_a_plain_string() -> None:
    assert Code.OP_NOT_FOUND.value == "op_not_found" and isinstance(Code.OP_NOT_FOUND, str) and str(failure(one(op_id="nope"))).startswith("op_not_found: ")


def test_an_expansion_that_raises_names_the_operation() -> None:
    def broken(path: str, config: Any) -> StateGraph:
        raise KeyError("limit")
    with pytest.raises(UserCodeError, match="step 'a', expansion of operation 'bad'"):
        plan(one("bad"), Registry.of(Operation("bad", "v1", broken)))


def test_ports_returning_junk_names_the_operation() -> None:
    op = Operation("bad", "v1", FETCH.expand, lambda config: ("rows",))  # type: ignore[arg-type,return-value]
    with pytest.raises(UserCodeError, match="not Ports"):
        plan(one("bad"), Registry.of(op))


# -- plans the run machine executes ---------------------------------------------


def test_steps_are_ordered_sinks_to_sources() -> None:
    fan = graph_op("fan", lambda p: StateGraph((StateNode(f"{p}.x"), StateNode(f"{p}.y"))))
    p = Pipeline("m", "v1", (Step("a", "fan", "v1"), Step("b", "fan", "v1")))
    result = plan(p, Registry.of(fan))
    assert isinstance(result, ExecutionPlan)
    assert result.plan.states == ("m.a.x", "m.a.y", "m.b.x", "m.b.y")
    assert set(result.plan.edges) == {(a, b) for a in ("m.a.x", "m.a.y") for b in ("m.b.x", "m.b.y")}


def test_the_run_machine_executes_a_plan() -> None:
    result = plan(Pipeline("etl", "v1", (Step("a", "fetch", "v1"), Step("b", "store", "v1"))), REG)
    assert isinstance(result, ExecutionPlan)
    m = run_machine(result.plan)
    s = m.initial
    for event in (Start(), Enter("etl.a.get"), Succeed("etl.a.get"), Enter("etl.b.put")):
        accepted = step(m, s, event)
        assert isinstance(accepted, Accepted)
        s = accepted.state
    last = step(m, s, Succeed("etl.b.put"))
    assert isinstance(last, Accepted) and last.effects[-1] == RunCompleted(Outcome.COMPLETED)


def test_registering_again_replaces() -> None:
    newer = linear_op("fetch", "v1", ("other",))
    assert Registry.of(FETCH).register(newer).resolve("fetch", "v1") is newer
    assert Registry.of(FETCH, newer).resolve("fetch", "v1") is newer


# -- manifests ------------------------------------------------------------------


def test_manifest_bytes_are_the_stores_canonical_json() -> None:
    p = Pipeline("etl", "v1", (Step("a", "fetch", "v1", {"b": [1, "é"], "a": None}),))
    data = manifest_bytes(p, {"day": 3}, {"max_attempts": 2})
    assert data == canonical_json(manifest(p, {"day": 3}, {"max_attempts": 2})).encode()


def test_manifest_not_canonical() -> None:
    f = manifest_bytes(one(), {"x": 1.5})
    assert isinstance(f, PlanFailure) and f.code == "manifest_not_canonical" and "'etl'" in f.message


def test_manifest_secrets_detected() -> None:
    f = manifest_bytes(one(), {"access_token": "t"})
    assert isinstance(f, PlanFailure) and f.code == "secrets_detected"


def test_manifest_id_mismatch() -> None:
    data = manifest_bytes(one())
    assert isinstance(data, bytes)
    assert check_manifest_id(data, manifest_id(data)) is None
    f = read_manifest(data + b" ", manifest_id(data))
    assert isinstance(f, PlanFailure) and f.code == "manifest_id_mismatch" and manifest_id(data) in f.message


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"input_params": {"pipeline": {"machine_id": "m"}}}',
                                  b'{"input_params": {"pipeline": {"machine_id": "m", "pipeline_version": "v1",'
                                  b' "steps": [{"step_id": 1}]}}}'])
def test_manifest_input_deserialize_failed(data: bytes) -> None:
    f = read_manifest(data)
    assert isinstance(f, PlanFailure) and f.code == "manifest_input_deserialize_failed"


def _tampered(key: str, value: str) -> bytes:
    value_ = manifest(one())
    value_[key] = value
    return canonical_bytes(value_)


def test_manifest_op_id_mismatch() -> None:
    f = read_manifest(_tampered("op_id", "other"))
    assert isinstance(f, PlanFailure) and f.code == "manifest_op_id_mismatch" and "'other'" in f.message


def test_manifest_op_version_mismatch() -> None:
    f = read_manifest(_tampered("op_version", "v9"))
    assert isinstance(f, PlanFailure) and f.code == "manifest_op_version_mismatch" and "'v9'" in f.message


def test_replan_rebuilds_the_same_plan() -> None:
    p = Pipeline("etl", "v1", (Step("a", "fetch", "v1", {"n": 1}), Step("b", "store", "v1")))
    data = manifest_bytes(p)
    assert isinstance(data, bytes)
    assert replan(data, REG, manifest_id(data)) == plan(p, REG)
    missing = replan(data, Registry.of(FETCH))
    assert isinstance(missing, PlanFailure) and missing.code == "op_not_found" and missing.step_id == "b"


# -- properties -----------------------------------------------------------------

IDS = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=10)
FAN = graph_op("fan", lambda p: StateGraph((StateNode(f"{p}.x"), StateNode(f"{p}.y")), ((f"{p}.x", f"{p}.y"),)))
OPS = Registry.of(FETCH, STORE, FAN)


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    ids = draw(st.lists(IDS, min_size=1, max_size=5, unique=True))
    ops = [draw(st.sampled_from(("fetch", "store", "fan"))) for _ in ids]
    return Pipeline(draw(IDS), "v1", tuple(Step(i, op, "v1", {"k": n}) for n, (i, op) in enumerate(zip(ids, ops))))


@given(pipelines())
def test_planning_is_deterministic_and_states_are_exactly_the_steps(p: Pipeline) -> None:
    first, second = plan(p, OPS), plan(p, OPS)
    assert first == second
    if isinstance(first, PlanFailure):
        assert first.code == "unsatisfied_import" and any(s.op_id == "store" for s in p.steps)
        return
    assert [s.step_id for s in first.states] == [s.step_id for s in p.steps for _ in range(1 + (s.op_id == "fan"))]
    assert {s.state_id.rsplit(".", 1)[0] for s in first.states} == {f"{p.machine_id}.{s.step_id}" for s in p.steps}
    run_machine(first.plan)  # the run machine accepts every plan the planner makes


def _reordered(value: Any, rnd: st.DataObject) -> Any:
    if isinstance(value, dict):
        keys = rnd.draw(st.permutations(list(value)))
        return {k: _reordered(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [_reordered(v, rnd) for v in value]
    return value


@given(JSON, st.data())
def test_canonical_bytes_are_stable_under_reordering(value: Any, rnd: st.DataObject) -> None:
    p = one(config=value)
    data = manifest_bytes(p)
    again = manifest_bytes(one(config=_reordered(value, rnd)))
    assert data == again
    if isinstance(data, bytes):
        assert json.loads(data) == manifest(p) and read_manifest(data, manifest_id(data)) == p
