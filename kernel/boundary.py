"""The one boundary between the kernel and the user's code.

Every call the kernel makes into a user's callable -- guards, updates, emits,
properties, constraints, ``final``, routes, system guards, input domains,
phase projections -- sits in a ``try`` whose ``except`` hands the exception
to `raised`; a value the kernel cannot use (an update returning a dict, an
emit returning one effect) goes to `refused`. Both raise a `UserCodeError`
that names the model, the piece of it (``transition #3 (QUEUED
--Stage[idle]--> STAGED), guard 'idle'``), the callable's qualified name and
``file:line``, and the state it was given. A `DefinitionError` the user's code
raises itself passes through unchanged.

The ``try`` blocks stay at the call sites: since Python 3.11 a ``try`` costs
nothing until something is raised, whereas a wrapper function would add a call
to every guard the checker evaluates.
"""

from __future__ import annotations

import functools
from typing import Any, NoReturn

from statewright.kernel.errors import DefinitionError, UserCodeError, one_line
from statewright.kernel.trace import TraceStep
from statewright.kernel.values import describe

__all__ = ["FAILURES", "locate", "not_bool", "raised", "refused", "row"]

FAILURES = (Exception, SystemExit)
"""What a call into user code can fail with: any exception, and ``sys.exit()`` -- which from a guard or a
property is a failure to report, never the end of a check (exit 0 would read as a pass in CI)."""


def locate(fn: object) -> tuple[str, str]:
    """The qualified name of ``fn`` and ``file:line`` of its definition (empty when unknown).

    Works for ``def``s, lambdas, bound methods, `functools.partial` and
    callable objects; the file is the code object's ``co_filename`` as given.

    >>> def odd(state, event): return state % 2 == 1
    >>> name, where = locate(odd)
    >>> name, where.endswith(f":{odd.__code__.co_firstlineno}")
    ('odd', True)
    """
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    code = getattr(target, "__code__", None)
    if code is None and not isinstance(target, type):
        code = getattr(getattr(type(target), "__call__", None), "__code__", None)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    location = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else ""
    return str(name), location


def row(index: int, label: str) -> str:
    """How an error names a table row: ``transition #3 (QUEUED --Stage[idle]--> STAGED)``."""
    return f"transition #{index} ({label})"


def raised(
    exc: BaseException,
    fn: object,
    where: str,
    *,
    machine: str | None = None,
    spec: str | None = None,
    state: Any = None,
    input: Any = None,
    trace: tuple[TraceStep, ...] | None = None,
) -> NoReturn:
    """Re-raise ``exc``, raised by the user's ``fn``, as a `UserCodeError` caused by it.

    A `DefinitionError` is the user's own verdict on their model and is
    re-raised unchanged.
    """
    if isinstance(exc, DefinitionError):
        raise exc
    function, location = locate(fn)
    if isinstance(exc, SystemExit):
        problem = f"called sys.exit({exc.code!r})"
    else:
        try:
            message = str(exc)
        except Exception:  # an exception whose __str__ fails still gets reported by type
            message = ""
        problem = f"raised {type(exc).__name__}" + (f": {one_line(message)}" if message else "")
    raise UserCodeError(
        where=where, problem=problem, function=function, location=location, spec=spec, machine=machine,
        state=state, input=input, trace=trace, original=exc,
    ) from exc


def refused(
    problem: str,
    fn: object | None,
    where: str,
    *,
    machine: str | None = None,
    spec: str | None = None,
    state: Any = None,
    input: Any = None,
    trace: tuple[TraceStep, ...] | None = None,
) -> NoReturn:
    """Raise a `UserCodeError` for a value ``fn`` returned that the kernel cannot use.

    ``problem`` reads on from the callable: ``returned {...}, not a Count``.
    ``fn`` is None when no callable is to blame (an initial state).
    """
    function, location = locate(fn) if fn is not None else ("", "")
    raise UserCodeError(
        where=where, problem=problem, function=function, location=location, spec=spec, machine=machine,
        state=state, input=input, trace=trace,
    )


def not_bool(
    value: Any,
    fn: object,
    where: str,
    *,
    machine: str | None = None,
    spec: str | None = None,
    state: Any = None,
    input: Any = None,
) -> NoReturn:
    """Raise a `UserCodeError` for a predicate (guard, property, constraint) that returned neither True nor False.

    A guard that forgets its ``return`` returns None, which would read as
    "false" and silently disable its row; so only a real bool is taken.
    """
    hint = " (is a `return` missing?)" if value is None else ""
    refused(f"returned {describe(value)}, not a bool{hint}", fn, where, machine=machine, spec=spec, state=state,
            input=input)
