"""Kernel values as plain JSON data: states, inputs and effects.

One encoding serves every reader of a value: the text and HTML renderings of
reports and traces (`kernel.checker.text`, `kernel.checker.html`), ``statewright
check --json`` and the stores (`adapters.runtime.serialize` hands these
functions on). It builds data and never writes it anywhere.

States become objects of their fields; inputs and effects objects of their
fields with a ``"type"`` key naming the class (under ``"fields"`` when a field
is itself called ``type`` or ``instance``); a system state is an object keyed
by instance name, and a system input or effect adds the ``"instance"`` it
belongs to; a trace is a list of ``{"state", "input", "effects"}``. Sets
become sorted lists and keys are sorted, so the same value always gives the
same data. Leaf values the kernel does not know (dates,
decimals, UUIDs, ...) are converted by pydantic-core, itself pure.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Stage:
...     run_id: str
>>> event_json(Stage("r1")), value_json({"seen": frozenset({2, 1})})
({'type': 'Stage', 'run_id': 'r1'}, {'seen': [1, 2]})
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

from pydantic_core import to_jsonable_python

from statewright.kernel.system import Action, Emitted, SystemState

__all__ = ["event_json", "state_json", "trace_json", "value_json"]


class _Step(Protocol):
    """One step of a trace as this module reads it (a `TraceStep`): the state reached, the input, the effects."""

    @property
    def state(self) -> Any: ...

    @property
    def input(self) -> Any: ...

    @property
    def effects(self) -> tuple[Any, ...]: ...


def value_json(value: Any) -> Any:
    """Any kernel value as plain JSON data (dataclasses become objects of their fields)."""
    if isinstance(value, SystemState):
        return {name: value_json(s) for name, s in zip(value.names, value)}
    if isinstance(value, Enum):
        return value_json(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: value_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        items = [value_json(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [value_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): value_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return to_jsonable_python(value)


def state_json(state: Any) -> Any:
    """A state (or system state) as JSON."""
    return value_json(state)


def event_json(event: Any) -> Any:
    """An input or effect as JSON, tagged with its type (and instance, for systems)."""
    if isinstance(event, Action):
        return {"instance": event.instance, **_tagged(event.input)}
    if isinstance(event, Emitted):
        return {"instance": event.instance, **_tagged(event.effect)}
    return _tagged(event)


def _tagged(event: Any) -> dict[str, Any]:
    body = value_json(event)
    name = type(event).__name__
    if not isinstance(body, dict):
        return {"type": name, "value": body}
    if "type" in body or "instance" in body:
        return {"type": name, "fields": body}
    return {"type": name, **body}


def trace_json(trace: Sequence[_Step] | None) -> list[dict[str, Any]] | None:
    """A trace as a list of ``{"state", "input", "effects"}``; the first input is null."""
    if trace is None:
        return None
    return [
        {
            "state": state_json(s.state),
            "input": None if s.input is None else event_json(s.input),
            "effects": [event_json(e) for e in s.effects],
        }
        for s in trace
    ]
