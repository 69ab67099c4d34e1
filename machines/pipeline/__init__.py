"""Pipelines of operations, the operation registry, the planner and run manifests; pure.

A `Pipeline` of `Step`\\ s is compiled by `plan` against a `Registry` of
`Operation`\\ s into an `ExecutionPlan` whose ``plan`` the run machine
(`machines.run`) executes, or into a `PlanFailure` with a stable `Code`.
`manifest_bytes` and `manifest_id` give the canonical bytes and content
address the launcher stores; `read_manifest` and `replan` rebuild the plan
from them. See docs/runs.md.
"""

from statewright.machines.pipeline.canonical import canonical_bytes, contains_secret, json_problem
from statewright.machines.pipeline.manifest import (
    check_manifest_id,
    manifest,
    manifest_bytes,
    manifest_id,
    read_manifest,
    replan,
)
from statewright.machines.pipeline.model import (
    Code,
    Operation,
    Pipeline,
    PlanFailure,
    Ports,
    Registry,
    SideEffects,
    StateGraph,
    StateNode,
    Step,
    linear_op,
    single_op_pipeline,
    valid_segment,
)
from statewright.machines.pipeline.planner import ExecutionPlan, PlannedState, plan
from statewright.machines.pipeline.policy import Exponential, Fixed, RetryPolicy, RunConfig, read_run_config

__all__ = [
    "Code",
    "ExecutionPlan",
    "Exponential",
    "Fixed",
    "Operation",
    "Pipeline",
    "PlanFailure",
    "PlannedState",
    "Ports",
    "Registry",
    "RetryPolicy",
    "RunConfig",
    "SideEffects",
    "StateGraph",
    "StateNode",
    "Step",
    "canonical_bytes",
    "check_manifest_id",
    "contains_secret",
    "json_problem",
    "linear_op",
    "manifest",
    "manifest_bytes",
    "manifest_id",
    "plan",
    "read_manifest",
    "read_run_config",
    "replan",
    "single_op_pipeline",
    "valid_segment",
]
