"""Traces read back from JSON: what ``statewright check --json`` wrote, as `TraceStep`s again.

A report's trace (`statewright.kernel.jsonable.trace_json`) holds
states as objects of their fields and inputs tagged with their ``type`` (and
``instance`` in a system). Reading one back needs the spec: its machines
say which classes the names stand for, and pydantic rebuilds the frozen
dataclasses (enums from their values, frozensets from lists). A lasso keeps
its ``loop`` index beside the trace; `replay` takes both.

What the annotations do not say cannot be rebuilt: a field typed ``Any`` that
held a tuple comes back as a list, and a state or input holding a list cannot
be hashed, which statewright needs of every one. `trace_from_json` says so,
naming the step and the field, rather than letting `replay` fail on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from statewright.adapters.runtime.serialize import untagged
from statewright.kernel.checker import Spec, TraceStep
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine
from statewright.kernel.system import Action, Emitted, System, SystemState
from statewright.kernel.values import describe, problem

__all__ = ["trace_from_json", "unhashable"]

READ_BACK = ("statewright's inputs and states must be hashable, and JSON has only lists: annotate the field "
             "(tuple[int, ...], frozenset[str], ...) so the trace reads back")


def trace_from_json(spec: Spec, data: Sequence[Mapping[str, Any]]) -> tuple[TraceStep, ...]:
    """Rebuild a trace of ``spec`` from its JSON form; a `DefinitionError` names the first step that does not fit.

    >>> from statewright.kernel.checker import check
    >>> from statewright.kernel.jsonable import trace_json
    >>> from statewright.specs import REGISTRY
    >>> spec = REGISTRY.get("diehard").spec()
    >>> trace = check(spec).result("not_solved").trace
    >>> trace_from_json(spec, trace_json(trace)) == trace
    True
    """
    reader = _Reader(spec)
    out: list[TraceStep] = []
    for n, item in enumerate(data):
        try:
            state = reader.state(item["state"])
            event = None if item.get("input") is None else reader.event(item["input"], inputs=True)
            effects = reader.effects(item.get("effects", ()))
            why = unhashable(event, "the input") or unhashable(state, "the state")
            if why is not None:
                raise ValueError(f"{why}; {READ_BACK}")
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise DefinitionError(f"spec {spec.name!r}: step {n} of the trace does not fit the model: {exc}") from None
        out.append(TraceStep(state, event, effects))
    return tuple(out)


def unhashable(value: Any, what: str = "the input") -> str | None:
    """Why ``value`` (an input, an `Action`, a state) cannot be hashed, naming its class and field; None if it can.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Put:
    ...     items: object
    >>> unhashable(Put([1])), unhashable(Put((1,)))
    ("the input Put field 'items' holds [1], a mutable list (use a tuple or frozenset)", None)
    """
    return _unhashable(value, what, "")


def _unhashable(value: Any, what: str, owner: str) -> str | None:
    try:
        hash(value)
        return None
    except TypeError as exc:
        failure = exc
    if isinstance(value, Action):
        return _unhashable(value.input, what, f" of {value.instance!r}")
    if isinstance(value, SystemState):
        return next(filter(None, (_unhashable(s, what, f" of {n!r}") for n, s in zip(value.names, value))), None)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            why = problem(getattr(value, f.name))
            if why is not None:
                held = "holds " + why[3:] if why.startswith("is ") else why
                return f"{what} {type(value).__name__}{owner} field {f.name!r} {held}"
    return f"{what}{owner} {describe(value)} is not hashable ({failure})"


class _Reader:
    """Decodes one spec's states, inputs and effects from JSON data."""

    def __init__(self, spec: Spec) -> None:
        model = spec.model
        self.system: System[Any] | None = model if isinstance(model, System) else None
        self.machines: dict[str, Machine[Any]] = (
            dict(zip(model.names, model.machines)) if isinstance(model, System) else {"": model}
        )
        self.adapters: dict[type, TypeAdapter[Any]] = {}

    def _adapter(self, cls: type) -> TypeAdapter[Any]:
        found = self.adapters.get(cls)
        if found is None:
            found = self.adapters[cls] = TypeAdapter(cls)
        return found

    def state(self, data: Any) -> Any:
        if self.system is None:
            return self._local(self.machines[""], data)
        return self.system.make([self._local(m, data[n]) for n, m in self.machines.items()])

    def _local(self, machine: Machine[Any], data: Any) -> Any:
        return self._adapter(machine.state_type).validate_python(data)

    def effects(self, data: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
        """The effects of a step; empty when a machine declares no effect union to read them with."""
        if any(m.effect_types is None for m in self.machines.values()):
            return ()
        return tuple(self.event(e, inputs=False) for e in data)

    def event(self, data: Mapping[str, Any], *, inputs: bool) -> Any:
        body = dict(data)
        instance = body.pop("instance", None)
        machine = self.machines[instance if self.system is not None else ""]
        kinds = machine.input_types if inputs else (machine.effect_types or ())
        name = body.pop("type")
        by_name = {t.__name__: t for t in kinds}
        if name not in by_name:
            raise ValueError(f"{name!r} is not an {'input' if inputs else 'effect'} of {machine.name}")
        kind = by_name[name]
        value = self._adapter(kind).validate_python(untagged(kind, body))
        if self.system is None:
            return value
        return Action(str(instance), value) if inputs else Emitted(str(instance), value)
