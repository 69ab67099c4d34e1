"""What may be a state: hashable, immutable all the way down, and equal to itself.

The checker stores every distinct state it meets in a dict, so a state must
hash and compare like a value. Two mistakes break that silently: a mutable
state (a plain dataclass, a list) can change after it was stored -- an update
that mutates its argument in place rewrites a state the search already
counted -- and a NaN is not equal to itself, so every state holding a fresh
NaN is "new" and a two-state model explodes. `problem` finds both.

Each type is judged once and the verdict cached, so the walk over a state
costs a dict lookup per value; the checker walks only states it has not seen.
Types the kernel does not know (``datetime``, ``Decimal``, an attrs class) are
trusted to be immutable; numbers among them are still checked for NaN.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, MutableMapping, MutableSequence, MutableSet
from enum import Enum
from operator import attrgetter
from types import FunctionType, ModuleType
from typing import Any

from statewright.kernel.errors import short_repr

__all__ = ["MAX_DEPTH", "describe", "problem"]

_NUMBER = 1
"""A number: immutable, but it may be a NaN."""
_ITEMS = 2
"""A tuple or frozenset: look at every item."""
_FIELDS = 3
"""A frozen dataclass: look at every field."""
_MUTABLE = 4
"""Can change after it was stored."""

_atoms: set[type] = {bool, int, str, bytes, type(None), range, type, FunctionType, ModuleType}
"""Types with nothing to look into: immutable and equal to themselves (Enums join when first seen)."""
_kinds: dict[type, int] = {float: _NUMBER, complex: _NUMBER, tuple: _ITEMS, frozenset: _ITEMS}
"""The verdict on every other type seen so far."""
_fields: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
"""For each frozen dataclass, a function reading all its fields at once."""

_MUTABLE_KINDS = (list, dict, set, bytearray, MutableSequence, MutableMapping, MutableSet)


def _judge(cls: type) -> int | None:
    """Classify a type not seen before and remember the verdict (None: an atom)."""
    if issubclass(cls, Enum):
        _atoms.add(cls)
        return None
    if dataclasses.is_dataclass(cls):
        if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            kind = _MUTABLE
        else:
            kind = _FIELDS
            _fields[cls] = _reader(tuple(f.name for f in dataclasses.fields(cls)))
    elif issubclass(cls, (tuple, frozenset)):
        kind = _ITEMS
    elif issubclass(cls, _MUTABLE_KINDS):
        kind = _MUTABLE
    elif issubclass(cls, numbers.Number):
        kind = _NUMBER
    else:  # unknown types (datetime, Decimal, attrs classes) are trusted to be immutable
        _atoms.add(cls)
        return None
    _kinds[cls] = kind
    return kind


def _reader(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``value -> (value.a, value.b, ...)`` for the given field names."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda value: (one(value),)
    return lambda value: ()


MAX_DEPTH = 100
"""How deeply a state may nest values that hold values (dataclasses, tuples, frozensets; the state is level 1).

Python's own ``hash``, ``==`` and ``repr`` of such a value recurse once or
more a level and exceed the interpreter's recursion limit a few hundred
levels down (``==`` of nested frozen dataclasses at about 330 from an empty
stack), so a deeper state would fail -- or be compared wrongly -- somewhere
in the checker. A stored state may nest 64 levels (`Limits.max_depth`).
"""


def problem(state: object, since: object = None) -> str | None:
    """Why ``state`` cannot be a state, or None when it can (hashability is the caller's test).

    ``since`` is a state already judged fine that ``state`` was computed from
    (an update's argument): a value of ``state`` that *is* the value at the
    same place in ``since`` is part of a judged state, so immutable and free of
    NaN all the way down, and is not walked again. An update that changes one
    field of a large record costs a walk of that field only. The walk goes a
    level at a time without recursing, so a state nested past `MAX_DEPTH` is
    named as such however deep it goes.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Loose:
    ...     n: int = 0
    >>> problem(Loose())
    'is Loose(n=0), a dataclass that is not frozen (use @dataclass(frozen=True))'
    >>> problem((1, ("a", float("nan"))))
    'holds nan, which is not equal to itself (a NaN makes every such state new)'
    >>> problem((1, frozenset({"a"}))) is None
    True
    >>> old = (("a", "b"), (1, 2))
    >>> problem((old[0], (1, [2])), since=old)
    'holds [2], a mutable list (use a tuple or frozenset)'
    >>> deep = ()
    >>> for _ in range(150):
    ...     deep = (deep,)
    >>> problem(deep)
    "is nested deeper than 100 levels (Python's hash, == and repr of it would exceed the recursion limit)"
    """
    if since is not None:
        return _problem_since(state, since)
    atoms, kinds = _atoms, _kinds
    level: list[Any] = [state]
    depth = 0
    while level:
        depth += 1
        below: list[Any] = []
        push = below.append
        for value in level:
            cls = type(value)
            if cls in atoms:
                continue
            kind = kinds.get(cls) or _judge(cls)
            if kind == _FIELDS or kind == _ITEMS:
                if depth > MAX_DEPTH:
                    return _TOO_DEEP
                for v in _fields[cls](value) if kind == _FIELDS else value:
                    if type(v) not in atoms:
                        push(v)
            elif kind == _NUMBER:
                if value != value:
                    return _naming(value, state, "which is not equal to itself (a NaN makes every such state new)")
            elif kind == _MUTABLE:
                return _mutable(value, state)
        level = below
    return None


_TOO_DEEP = (f"is nested deeper than {MAX_DEPTH} levels (Python's hash, == and repr of it would exceed "
             "the recursion limit)")


def _problem_since(state: object, since: object) -> str | None:
    """`problem`, skipping every value that is the judged ``since``'s value at the same place."""
    atoms, kinds = _atoms, _kinds
    level: list[tuple[Any, Any]] = [(state, since)]
    depth = 0
    while level:
        depth += 1
        below: list[tuple[Any, Any]] = []
        push = below.append
        for value, old in level:
            if value is old:
                continue
            cls = type(value)
            if cls in atoms:
                continue
            kind = kinds.get(cls) or _judge(cls)
            if kind == _FIELDS or kind == _ITEMS:
                if depth > MAX_DEPTH:
                    return _TOO_DEEP
                items = _fields[cls](value) if kind == _FIELDS else value
                if (kind == _FIELDS and type(old) is cls) or (cls is tuple and type(old) is tuple):
                    olds = _fields[cls](old) if kind == _FIELDS else old
                    for v, o in zip(items, olds):
                        if v is not o and type(v) not in atoms:
                            push((v, o))
                    items = items[len(olds):]
                for v in items:
                    if type(v) not in atoms:
                        push((v, None))
            elif kind == _NUMBER:
                if value != value:
                    return _naming(value, state, "which is not equal to itself (a NaN makes every such state new)")
            elif kind == _MUTABLE:
                return _mutable(value, state)
        level = below
    return None


def _mutable(value: object, state: object) -> str:
    if dataclasses.is_dataclass(value):
        return _naming(value, state, "a dataclass that is not frozen (use @dataclass(frozen=True))")
    return _naming(value, state, f"a mutable {type(value).__name__} (use a tuple or frozenset)")


def _naming(value: object, state: object, why: str) -> str:
    """``is X, why`` for the state itself, ``holds X, why`` for a value inside it."""
    return f"{'is' if value is state else 'holds'} {short_repr(value)}, {why}"


def describe(value: Any) -> str:
    """``Count(n=1)`` or ``a dict {...}``: a value named with its type when the repr does not say it."""
    text = short_repr(value)
    if value is None or dataclasses.is_dataclass(value) or isinstance(value, Enum):
        return text
    return f"{type(value).__name__} {text}"
