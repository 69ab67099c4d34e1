"""Kernel values as JSON for the stores: the encoding, its inverse and what may be stored.

`value_json`, `state_json` and `event_json` are the kernel's encoding
(`kernel.jsonable`: states as objects of their fields, inputs and effects
tagged with ``"type"`` and, in a system, ``"instance"``), handed on here so the
shell has one place to import it from; reports are in `adapters.cli.reports`.
`untagged` undoes the tagging of an input or effect.

`json_problem` says why JSON data cannot be stored or taken as input (a float,
a lone surrogate, nesting past a depth) without recursing, so data nested far
past Python's recursion limit is measured rather than crashed on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from statewright.kernel.jsonable import event_json, state_json, value_json

__all__ = ["event_json", "json_problem", "state_json", "untagged", "value_json"]

_SURROGATE = re.compile("[\ud800-\udfff]")  # a str holding one cannot be encoded as UTF-8


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
