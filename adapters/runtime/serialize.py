"""Kernel values as JSON: states, inputs and effects (reports are in `adapters.cli.reports`).

States serialise as objects of their fields; inputs and effects as objects
of their fields with a ``"type"`` key naming the class (under ``"fields"``
when a field is itself called ``type`` or ``instance``); a system state is an
object keyed by instance name, and a system input or effect adds the
``"instance"`` it belongs to. Sets become sorted lists and keys are sorted, so
the same report always serialises to the same bytes. Leaf values (enums,
dates, decimals, ...) are converted by pydantic.

`json_problem` says why JSON data cannot be stored or taken as input (a float,
a lone surrogate, nesting past a depth) without recursing, so data nested far
past Python's recursion limit is measured rather than crashed on.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from pydantic_core import to_jsonable_python

from statewright.kernel.system import Action, Emitted, SystemState

__all__ = ["event_json", "json_problem", "state_json", "untagged", "value_json"]

_SURROGATE = re.compile("[\ud800-\udfff]")  # a str holding one cannot be encoded as UTF-8


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


def event_json(value: Any) -> Any:
    """An input or effect as JSON, tagged with its type (and instance, for systems): a log event's data."""
    if isinstance(value, Action):
        return {"instance": value.instance, **_tagged(value.input)}
    if isinstance(value, Emitted):
        return {"instance": value.instance, **_tagged(value.effect)}
    return _tagged(value)


def _tagged(value: Any) -> dict[str, Any]:
    body = value_json(value)
    name = type(value).__name__
    if not isinstance(body, dict):
        return {"type": name, "value": body}
    if "type" in body or "instance" in body:
        return {"type": name, "fields": body}
    return {"type": name, **body}


def untagged(kind: type, body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a tagged input or effect of class ``kind`` (``type``/``instance`` already removed).

    The inverse of the nesting `event_json` does: fields that would clash with
    the tags are written under ``"fields"``.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Typed:
    ...     type: str
    >>> untagged(Typed, {"fields": {"type": "x"}}), untagged(Typed, {"type": "x"})
    ({'type': 'x'}, {'type': 'x'})
    """
    names = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else set()
    if set(body) == {"fields"} and "fields" not in names and isinstance(body["fields"], Mapping):
        return dict(body["fields"])
    return dict(body)


def json_problem(data: Any, max_depth: int, *, floats: bool = False) -> str | None:
    """The first reason plain JSON ``data`` cannot be stored, or None when it can.

    Refused: nesting deeper than ``max_depth`` objects and arrays (the top one
    counts 1), strings and object keys that are not valid Unicode (a lone
    surrogate, which no UTF-8 store can hold), and floats unless ``floats``
    (they do not round-trip exactly). Iterative, so its cost is bounded by the
    size of ``data`` and never by Python's recursion limit.

    >>> json_problem({"a": [1, {"b": 2}]}, 2)
    'nested deeper than 2 levels (at $.a[1])'
    >>> json_problem(["ok", chr(0xD800)], 5)
    'a string that is not valid Unicode (a lone surrogate) at $[1]'
    """
    stack: list[tuple[Any, int, str]] = [(data, 0, "$")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return f"a string that is not valid Unicode (a lone surrogate) at {path}"
        elif isinstance(value, float):
            if not floats:
                return f"floats are not allowed in stored payloads (got {value!r} at {path}); use ints or strings"
        elif isinstance(value, dict):
            if depth >= max_depth:
                return f"nested deeper than {max_depth} levels (at {path})"
            for k, v in value.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    return f"a key that is not valid Unicode (a lone surrogate) at {path}"
                stack.append((v, depth + 1, f"{path}.{k}"))
        elif isinstance(value, list):
            if depth >= max_depth:
                return f"nested deeper than {max_depth} levels (at {path})"
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))
    return None
