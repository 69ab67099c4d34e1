"""Whether a state reads back as itself: the check `store.Catalog` makes before a state is written.

A state is written as canonical JSON and read back through pydantic; a field
holding the wrong type (``attempts="2"``, an int where an enum belongs, a list
for a tuple) either fails that decode or comes back as another value. Finding
it at write time -- naming the field -- keeps the store from holding a record
its next load calls corrupt, and keeps user code (an ``authorize`` function)
from ever seeing such a field.
"""

from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Any

from pydantic import ValidationError

__all__ = ["difference", "raised_at", "validation_problem"]


def validation_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: message``."""
    errors = exc.errors()
    if not errors:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = ".".join(str(part) for part in errors[0]["loc"])
    return f"{where}: {errors[0]['msg']}" if where else str(errors[0]["msg"])


def difference(wrote: Any, back: Any, path: str) -> str | None:
    """Where ``back`` (the state as read back) is not ``wrote``: the field path, both values and types."""
    where = path or "the state"
    if type(wrote) is not type(back):
        return f"{where} is {wrote!r} (a {type(wrote).__name__}) but reads back as {back!r} (a {type(back).__name__})"
    if dataclasses.is_dataclass(wrote):
        for f in dataclasses.fields(wrote):
            found = difference(getattr(wrote, f.name), getattr(back, f.name), f"{path}.{f.name}" if path else f.name)
            if found is not None:
                return found
        return None
    if isinstance(wrote, (tuple, list)) and len(wrote) == len(back):
        for i, (w, b) in enumerate(zip(wrote, back)):
            found = difference(w, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(wrote, dict) and wrote.keys() == back.keys():
        for k in wrote:
            found = difference(wrote[k], back[k], f"{path}[{k!r}]")
            if found is not None:
                return found
        return None
    return None if wrote == back else f"{where} is {wrote!r} but reads back as {back!r}"


def raised_at(exc: BaseException, function: Any) -> str:
    """``file:line`` where ``exc`` was raised: the deepest frame in ``function``'s file, else the deepest one."""
    code = getattr(function, "__code__", None)
    home = code.co_filename if code is not None else None
    tb: TracebackType | None = exc.__traceback__
    deepest = mine = None
    while tb is not None:
        frame = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        deepest = frame
        if tb.tb_frame.f_code.co_filename == home:
            mine = frame
        tb = tb.tb_next
    defined = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else None
    return mine or deepest or defined or "an unknown location"
