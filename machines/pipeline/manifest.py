"""A run's manifest: the pipeline and its input as canonical JSON bytes, named by their SHA-256.

The launcher stores these bytes as a content-addressed artifact before a run
starts and rebuilds the plan from them on resume, so a resumed run executes
the plan it was started with. Three checks guard that round trip, each with
the source's code: the stored bytes hash to the id the run names
(``manifest_id_mismatch``), they decode to a pipeline
(``manifest_input_deserialize_failed``), and the manifest's op id and version
are the pipeline's own (``manifest_op_id_mismatch``,
``manifest_op_version_mismatch``).

>>> from statewright.machines.pipeline.model import Pipeline, Step
>>> p = Pipeline("etl", "v1", (Step("a", "fetch", "v1", {"limit": 10}),))
>>> data = manifest_bytes(p)
>>> assert isinstance(data, bytes)
>>> data[:60]
b'{"input_params":{"input":null,"pipeline":{"machine_id":"etl"'
>>> read_manifest(data, manifest_id(data)) == p
True
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from statewright.machines.pipeline.canonical import canonical_bytes, json_problem
from statewright.machines.pipeline.model import Code, Pipeline, PlanFailure, Registry, Step
from statewright.machines.pipeline.planner import ExecutionPlan, plan

__all__ = ["check_manifest_id", "manifest", "manifest_bytes", "manifest_id", "read_manifest", "replan"]


def manifest(pipeline: Pipeline, input: Any = None, run_config: Any = None) -> dict[str, Any]:
    """The manifest of a run of ``pipeline`` as JSON data (not yet checked for canonical form)."""
    steps = [{"step_id": s.step_id, "op_id": s.op_id, "op_version": s.op_version, "op_config": s.config}
             for s in pipeline.steps]
    return {
        "op_id": pipeline.machine_id,
        "op_version": pipeline.pipeline_version,
        "input_params": {
            "pipeline": {"machine_id": pipeline.machine_id, "pipeline_version": pipeline.pipeline_version,
                         "steps": steps},
            "input": input,
        },
        "run_config": {} if run_config is None else run_config,
    }


def manifest_bytes(pipeline: Pipeline, input: Any = None, run_config: Any = None) -> bytes | PlanFailure:
    """The manifest's canonical JSON bytes, or ``secrets_detected`` / ``manifest_not_canonical``."""
    value = manifest(pipeline, input, run_config)
    problem = json_problem(value)
    if problem == "secret":
        return PlanFailure(Code.SECRETS_DETECTED, f"manifest of {pipeline.machine_id!r} contains a secret")
    if problem is not None:
        return PlanFailure(Code.MANIFEST_NOT_CANONICAL,
                           f"manifest of {pipeline.machine_id!r} is not canonical JSON ({problem.replace('_', ' ')})")
    return canonical_bytes(value)


def manifest_id(data: bytes) -> str:
    """The content address of manifest bytes: lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def check_manifest_id(data: bytes, expected: str) -> PlanFailure | None:
    """``manifest_id_mismatch`` unless ``data`` hashes to ``expected``."""
    actual = manifest_id(data)
    if actual == expected:
        return None
    return PlanFailure(Code.MANIFEST_ID_MISMATCH, f"manifest bytes hash to {actual}, not to the expected {expected}")


def _pipeline(raw: Any) -> Pipeline | None:
    if not isinstance(raw, dict):
        return None
    steps = raw.get("steps")
    mid, version = raw.get("machine_id"), raw.get("pipeline_version")
    if not (isinstance(mid, str) and isinstance(version, str) and isinstance(steps, list)):
        return None
    out: list[Step] = []
    for s in steps:
        if not isinstance(s, dict) or not all(isinstance(s.get(k), str) for k in ("step_id", "op_id", "op_version")):
            return None
        out.append(Step(s["step_id"], s["op_id"], s["op_version"], s.get("op_config", {})))
    return Pipeline(mid, version, tuple(out))


def read_manifest(data: bytes, expected_id: str | None = None) -> Pipeline | PlanFailure:
    """The pipeline stored in manifest ``data``, after checking its id (when given) and its op id and version."""
    if expected_id is not None:
        mismatch = check_manifest_id(data, expected_id)
        if mismatch is not None:
            return mismatch
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        value = None
    params = value.get("input_params") if isinstance(value, dict) else None
    p = _pipeline(params.get("pipeline")) if isinstance(params, dict) else None
    if p is None or not isinstance(value, dict):
        return PlanFailure(Code.MANIFEST_INPUT_DESERIALIZE_FAILED,
                           "manifest input_params does not hold a pipeline {machine_id, pipeline_version, steps}")
    if value.get("op_id") != p.machine_id:
        return PlanFailure(Code.MANIFEST_OP_ID_MISMATCH,
                           f"manifest op_id {value.get('op_id')!r} is not the pipeline's machine_id {p.machine_id!r}")
    if value.get("op_version") != p.pipeline_version:
        return PlanFailure(Code.MANIFEST_OP_VERSION_MISMATCH, f"manifest op_version {value.get('op_version')!r} is not "
                           f"the pipeline's pipeline_version {p.pipeline_version!r}")
    return p


def replan(data: bytes, registry: Registry, expected_id: str | None = None) -> ExecutionPlan | PlanFailure:
    """Rebuild a run's plan from its stored manifest, as resume does: read, check, plan again."""
    p = read_manifest(data, expected_id)
    return p if isinstance(p, PlanFailure) else plan(p, registry)
