"""`Program`: a pipeline with the operations that run it, its input and its run config -- what ``statewright run`` runs.

A program file names one as ``file.py:NAME`` (``statewright run shop.py:program``);
a JSON plan holds the same four things as data, the operations named by a
target (`read_plan`). Code is never stored with a run, so `statewright resume`
and `replay` are given the operations again.

>>> from statewright.adapters.runtime.operations import Operations
>>> from statewright.machines.pipeline import Pipeline, Step
>>> ops = Operations()
>>> @ops.op("double", "v1", exports=("n",))
... def double(ctx):
...     return {"n": ctx.input * 2}
>>> program = Program(Pipeline("calc", "v1", (Step("twice", "double", "v1"),)), ops, input=21)
>>> plan = read_plan({"machine_id": "calc", "pipeline_version": "v1", "operations": "calc.py:ops", "input": 21,
...                   "steps": [{"step_id": "twice", "op_id": "double", "op_version": "v1"}]})
>>> plan.pipeline == program.pipeline, plan.operations, plan.input
(True, 'calc.py:ops', 21)
>>> read_plan({"machine_id": "calc", "steps": []})
Traceback (most recent call last):
...
ValueError: plan: missing "pipeline_version"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from statewright.adapters.runtime.operations import Operations
from statewright.machines.pipeline import Pipeline, Step

__all__ = ["JsonPlan", "Program", "read_plan"]

_PLAN_FIELDS = ("machine_id", "pipeline_version", "steps", "operations", "input", "run_config")
_STEP_FIELDS = ("step_id", "op_id", "op_version", "op_config")


@dataclass(frozen=True, slots=True)
class Program:
    """A `Pipeline`, the `Operations` whose functions its steps run, the run's input and run config (JSON data)."""

    pipeline: Pipeline
    operations: Operations
    input: Any = None
    run_config: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.pipeline, Pipeline):
            raise TypeError(f"Program.pipeline must be a Pipeline, not {type(self.pipeline).__name__}")
        if not isinstance(self.operations, Operations):
            raise TypeError(f"Program.operations must be Operations, not {type(self.operations).__name__}")


@dataclass(frozen=True, slots=True)
class JsonPlan:
    """A JSON plan read: its pipeline, input and run config, and the target naming its operations."""

    pipeline: Pipeline
    operations: str
    input: Any = None
    run_config: Any = None


def read_plan(value: Any) -> JsonPlan:
    """The `JsonPlan` of a JSON plan's data; `ValueError` naming the first field that is wrong.

    A plan is an object with ``machine_id``, ``pipeline_version``, ``steps``
    (each ``step_id``, ``op_id``, ``op_version`` and optionally ``op_config``),
    ``operations`` (a ``file.py:NAME`` target) and optionally ``input`` and
    ``run_config``. What the planner checks (ids, canonical configs, secrets)
    is left to the planner, so its codes are the ones reported.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"plan: expected a JSON object, got {_kind(value)}")
    _only(value, _PLAN_FIELDS, "plan")
    for name in ("machine_id", "pipeline_version", "operations"):
        _text(value, name, "plan")
    steps = value.get("steps")
    if "steps" not in value:
        raise ValueError('plan: missing "steps"')
    if not isinstance(steps, list):
        raise ValueError(f'plan: "steps" must be a list, got {_kind(steps)}')
    out: list[Step] = []
    for n, step in enumerate(steps, 1):
        where = f"plan: step {n}"
        if not isinstance(step, Mapping):
            raise ValueError(f"{where}: expected an object, got {_kind(step)}")
        _only(step, _STEP_FIELDS, where)
        for name in _STEP_FIELDS[:3]:
            _text(step, name, where)
        out.append(Step(step["step_id"], step["op_id"], step["op_version"], step.get("op_config", {})))
    return JsonPlan(Pipeline(value["machine_id"], value["pipeline_version"], tuple(out)), value["operations"],
                    value.get("input"), value.get("run_config"))


def _only(value: Mapping[Any, Any], fields: tuple[str, ...], where: str) -> None:
    extra = [k for k in value if k not in fields]
    if extra:
        raise ValueError(f"{where}: unknown field {extra[0]!r} (fields: {', '.join(fields)})")


def _text(value: Mapping[Any, Any], name: str, where: str) -> None:
    if name not in value:
        raise ValueError(f'{where}: missing "{name}"')
    if not isinstance(value[name], str):
        raise ValueError(f'{where}: "{name}" must be a string, got {_kind(value[name])}')


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
