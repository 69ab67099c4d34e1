"""The planner: a pipeline and a registry in, an execution plan or a typed `PlanFailure` out.

Theory of operation
-------------------
Checks run in the source's order, so a pipeline with several problems always
reports the same one:

1. the pipeline itself: machine id, at least one step, then for each step
   its id (valid, unique), its op id and its config (no secrets, no floats);
2. each step in turn: resolve its operation, wire its imports, expand it and
   judge the expansion (non-empty; every id ``<machine>.<step>.<local>``; an
   APPLY state has an idempotency key; ids unique in the step and across
   steps; edges between states that exist);
3. the whole plan: no dependency cycle (`machines.run.validate_plan`).

Wiring: an import is satisfied by the *latest* earlier step that exports the
same port (last writer wins). A step's own exports are recorded after its
imports are wired, so a step never imports from itself. Ordering: every sink
of step i (a state nothing in its step depends on) precedes every source of
step i + 1, so steps run in pipeline order while states inside a step keep
their own edges.

The result's `ExecutionPlan.plan` is the `machines.run.Plan` the run machine
executes; the per-state records say which step, op and import sources each
state belongs to, for the executor.
"""

from __future__ import annotations

from dataclasses import dataclass

from statewright.kernel.boundary import FAILURES, raised, refused
from statewright.machines.pipeline.canonical import json_problem
from statewright.machines.pipeline.model import (
    Code,
    Operation,
    Pipeline,
    PlanFailure,
    Ports,
    Registry,
    SideEffects,
    StateGraph,
    Step,
    valid_segment,
)
from statewright.machines.run import CircularDependency, Plan, validate_plan

__all__ = ["ExecutionPlan", "PlannedState", "plan"]


@dataclass(frozen=True, slots=True)
class PlannedState:
    """One state of a plan and where it comes from; ``imports`` maps a port to the op path exporting it."""

    state_id: str
    step_id: str
    op_path: str
    op_id: str
    op_version: str
    side_effects: SideEffects
    idempotency_key: str | None
    imports: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ExecutionPlan:
    """What the planner returns: ``plan`` for `machines.run.run_machine`, and a record per state."""

    machine_id: str
    plan: Plan
    states: tuple[PlannedState, ...]


def _fail(code: Code, message: str, step: Step | None = None, state_id: str | None = None) -> PlanFailure:
    step_id = step.step_id if step is not None else None
    where = f"step {step_id!r}: " if step is not None else ""
    return PlanFailure(code, where + message, step_id, state_id)


def _check_pipeline(p: Pipeline) -> PlanFailure | None:
    if not valid_segment(p.machine_id):
        return _fail(Code.INVALID_MACHINE_ID, f"machine_id {p.machine_id!r} must match ^[a-z][a-z0-9_]{{0,62}}$")
    if not p.steps:
        return _fail(Code.EMPTY_PIPELINE, f"pipeline {p.machine_id!r} must contain at least one step")
    seen: set[str] = set()
    for s in p.steps:
        if not valid_segment(s.step_id):
            return _fail(Code.INVALID_STEP_ID, f"step_id must match ^[a-z][a-z0-9_]{{0,62}}$", s)
        if s.step_id in seen:
            return _fail(Code.DUPLICATE_STEP_ID, "step_id appears more than once in the pipeline", s)
        seen.add(s.step_id)
        if not valid_segment(s.op_id):
            return _fail(Code.INVALID_OP_ID, f"op_id {s.op_id!r} must match ^[a-z][a-z0-9_]{{0,62}}$", s)
        problem = json_problem(s.config)
        if problem == "secret":
            return _fail(Code.SECRETS_DETECTED, "op config contains a secret (secrets are never persisted)", s)
        if problem is not None:
            what = "floats are forbidden" if problem == "float" else "only JSON data is allowed"
            return _fail(Code.OP_CONFIG_NOT_CANONICAL, f"op config is not canonical JSON ({what})", s)
    return None


def _check_state_id(state_id: str, p: Pipeline, s: Step) -> PlanFailure | None:
    parts = state_id.split(".") if isinstance(state_id, str) else []
    if len(parts) != 3:
        return _fail(Code.INVALID_STATE_ID, f"state id {state_id!r} must have 3 dot-separated segments", s, state_id)
    if parts[0] != p.machine_id or parts[1] != s.step_id:
        return _fail(Code.INVALID_STATE_ID, f"state id {state_id!r} must start with {p.machine_id}.{s.step_id}.",
                     s, state_id)
    if not valid_segment(parts[2]):
        return _fail(Code.INVALID_STATE_LOCAL_ID, f"state id {state_id!r}: local id must match ^[a-z][a-z0-9_]{{0,62}}$",
                     s, state_id)
    return None


def _check_graph(g: StateGraph, p: Pipeline, s: Step, taken: set[str]) -> PlanFailure | None:
    if not g.states:
        return _fail(Code.EMPTY_STATE_GRAPH, "operation expanded to an empty state graph", s)
    ids: set[str] = set()
    for n in g.states:
        bad = _check_state_id(n.state_id, p, s)
        if bad is not None:
            return bad
        if n.side_effects is SideEffects.APPLY and not n.idempotency_key:
            return _fail(Code.MISSING_IDEMPOTENCY_KEY,
                         f"state {n.state_id!r} applies a side effect and must declare an idempotency key", s, n.state_id)
        if n.state_id in ids:
            return _fail(Code.DUPLICATE_STATE_ID, f"state id {n.state_id!r} appears twice in the step's graph", s, n.state_id)
        ids.add(n.state_id)
    for before, after in g.edges:
        for end in (before, after):
            if end not in ids:
                return _fail(Code.MISSING_STATE_FOR_EDGE, f"edge {before!r} -> {after!r} names missing state {end!r}",
                             s, end)
    for n in g.states:
        if n.state_id in taken:
            return _fail(Code.DUPLICATE_STATE_ID, f"state id {n.state_id!r} is already used by an earlier step",
                         s, n.state_id)
    return None


def _call_ports(op: Operation, s: Step, machine_id: str) -> Ports:
    where = f"step {s.step_id!r}, ports of operation {op.op_id!r} {op.op_version!r}"
    try:
        ports = op.ports(s.config)
    except FAILURES as exc:
        raised(exc, op.ports, where, machine=machine_id)
    if not isinstance(ports, Ports):
        refused(f"returned {ports!r}, not Ports", op.ports, where, machine=machine_id)
    return ports


def _call_expand(op: Operation, s: Step, op_path: str, machine_id: str) -> StateGraph:
    where = f"step {s.step_id!r}, expansion of operation {op.op_id!r} {op.op_version!r}"
    try:
        graph = op.expand(op_path, s.config)
    except FAILURES as exc:
        raised(exc, op.expand, where, machine=machine_id)
    if not isinstance(graph, StateGraph):
        refused(f"returned {graph!r}, not a StateGraph", op.expand, where, machine=machine_id)
    return graph


def _ends(g: StateGraph) -> tuple[list[str], list[str]]:
    """The step's sources (no edge in) and sinks (no edge out), in state order."""
    has_in = {after for _, after in g.edges}
    has_out = {before for before, _ in g.edges}
    return ([n.state_id for n in g.states if n.state_id not in has_in],
            [n.state_id for n in g.states if n.state_id not in has_out])


def plan(pipeline: Pipeline, registry: Registry) -> ExecutionPlan | PlanFailure:
    """Compile ``pipeline`` against ``registry``: the plan, or the first `PlanFailure` in the fixed order above.

    Pure and deterministic: the same pipeline and registry give an equal plan.
    A user's ``expand`` or ``ports`` that raises (or returns the wrong type)
    is a `UserCodeError` naming it, not a failure code: that is a bug in the
    operation, not in the pipeline.

    >>> from statewright.machines.pipeline.model import Step, linear_op
    >>> reg = Registry.of(linear_op("fetch", "v1", ("get",), exports=("rows",)),
    ...                   linear_op("store", "v1", ("put",), imports=("rows",)))
    >>> p = Pipeline("etl", "v1", (Step("a", "fetch", "v1"), Step("b", "store", "v1")))
    >>> result = plan(p, reg)
    >>> assert isinstance(result, ExecutionPlan)
    >>> result.plan
    Plan(states=('etl.a.get', 'etl.b.put'), edges=(('etl.a.get', 'etl.b.put'),))
    >>> result.states[1].imports
    (('rows', 'etl.a'),)
    """
    bad = _check_pipeline(pipeline)
    if bad is not None:
        return bad
    states: list[PlannedState] = []
    edges: list[tuple[str, str]] = []
    taken: set[str] = set()
    exporter: dict[str, str] = {}  # port -> op path of the latest step exporting it
    previous_sinks: list[str] = []
    for s in pipeline.steps:
        op = registry.resolve(s.op_id, s.op_version, s.step_id)
        if isinstance(op, PlanFailure):
            return op
        op_path = f"{pipeline.machine_id}.{s.step_id}"
        ports = _call_ports(op, s, pipeline.machine_id)
        wired: list[tuple[str, str]] = []
        for port in ports.imports:
            if port not in exporter:
                return _fail(Code.UNSATISFIED_IMPORT, f"import {port!r} is not exported by any earlier step", s)
            wired.append((port, exporter[port]))
        graph = _call_expand(op, s, op_path, pipeline.machine_id)
        bad = _check_graph(graph, pipeline, s, taken)
        if bad is not None:
            return bad
        taken.update(n.state_id for n in graph.states)
        states.extend(PlannedState(n.state_id, s.step_id, op_path, s.op_id, s.op_version, n.side_effects,
                                   n.idempotency_key, tuple(wired)) for n in graph.states)
        sources, sinks = _ends(graph)
        edges.extend((before, after) for before in previous_sinks for after in sources)
        edges.extend(graph.edges)
        previous_sinks = sinks
        for port in ports.exports:  # after the expansion: last writer wins, and never for the step itself
            exporter[port] = op_path
    result = Plan(tuple(st.state_id for st in states), tuple(edges))
    try:
        validate_plan(result)
    except CircularDependency as exc:
        return PlanFailure(Code.CIRCULAR_DEPENDENCY, str(exc), None, exc.cycle[0])
    return ExecutionPlan(pipeline.machine_id, result, tuple(states))
