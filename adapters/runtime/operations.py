"""Executable operations: Python functions registered by op id and version, and how they fail.

The planner (`machines.pipeline`) sees an operation as data -- its ports and
its expansion into states. The executor also needs the code each state runs.
`Operations` holds both: ``ops.op("fetch", "v1", exports=("rows",))`` registers
a function as a one-state operation (its state's local id is ``run``), and
`Operations.add` registers any planner `Operation` with one function per local
state id. `Operations.registry` is what `machines.pipeline.plan` reads.

A state's function takes a `executor.Context` and returns its exports: a dict
of JSON data (or None for nothing). Plain or ``async``. It fails by raising:
`OpFailed` says whether the failure is retryable (the source's
``ErrorInfo.retryable``) with a stable code; any other exception is a
retryable failure with code ``op_raised`` whose message names the function
and the ``file:line`` it raised at.

>>> ops = Operations()
>>> @ops.op("greet", "v1", exports=("text",))
... def greet(ctx):
...     return {"text": "hello " + ctx.config["name"]}
>>> ops.function("greet", "v1", "run") is greet, sorted(ops.registry.ops)
(True, [('greet', 'v1')])
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from statewright.machines.pipeline.model import Operation, Registry, SideEffects, linear_op, valid_segment

__all__ = ["ErrorInfo", "OpFailed", "OpFunction", "Operations"]

OpFunction = Callable[[Any], "Mapping[str, Any] | None | Awaitable[Mapping[str, Any] | None]"]
"""A state's code: takes the attempt's `executor.Context`, returns its exports (plain or async).

The context is typed ``Any`` here because the executor imports this module; a function annotated
``ctx: Context`` fits.
"""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an attempt failed: a stable ``code``, a message, and whether trying again may help."""

    code: str
    message: str
    retryable: bool = True

    def json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorInfo:
        return cls(str(data["code"]), str(data["message"]), bool(data["retryable"]))


class OpFailed(Exception):
    """Raised by an operation to fail its attempt with a ``code``; ``retryable=False`` fails the run at once.

    >>> OpFailed("card_declined", "the bank said no", retryable=False).info
    ErrorInfo(code='card_declined', message='the bank said no', retryable=False)
    """

    def __init__(self, code: str, message: str = "", *, retryable: bool = True) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.info = ErrorInfo(code, message or code, retryable)


class Operations:
    """The executable operations: planner `Operation`\\ s, and the function each of their states runs."""

    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], Operation] = {}
        self._functions: dict[tuple[str, str, str], OpFunction] = {}

    def op(self, op_id: str, op_version: str, *, imports: tuple[str, ...] = (), exports: tuple[str, ...] = (),
           side_effects: SideEffects = SideEffects.PURE,
           idempotency_key: str | None = None) -> Callable[[F], F]:
        """Register the decorated function as operation ``(op_id, op_version)`` with one state, ``run``.

        An operation that applies a side effect (``side_effects=SideEffects.APPLY``)
        must name an ``idempotency_key``, as the planner requires
        (``missing_idempotency_key``); the function finds it, qualified by run
        and state, in ``ctx.idempotency_key``.
        """
        def register(fn: F) -> F:
            operation = linear_op(op_id, op_version, ("run",), imports=imports, exports=exports,
                                  side_effects=side_effects, idempotency_key=idempotency_key)
            self.add(operation, {"run": fn})
            return fn
        return register

    def add(self, operation: Operation, functions: Mapping[str, OpFunction]) -> None:
        """Register ``operation`` and the function of each of its states, by local state id.

        Registering the same id and version again replaces it, as the source's
        registry does. Every local id the operation expands to must have a
        function; the executor refuses to run a plan with a state that has none.
        """
        if not valid_segment(operation.op_id):
            raise ValueError(f"operation id {operation.op_id!r} must match ^[a-z][a-z0-9_]{{0,62}}$")
        for local, fn in functions.items():
            if not valid_segment(local):
                raise ValueError(f"{operation.op_id} {operation.op_version}: local state id {local!r} must match "
                                 f"^[a-z][a-z0-9_]{{0,62}}$")
            if not callable(fn):
                raise TypeError(f"{operation.op_id} {operation.op_version}: the function for {local!r} is "
                                f"{type(fn).__name__}, not callable")
            problem = _takes_one_argument(fn)
            if problem is not None:
                raise TypeError(f"{operation.op_id} {operation.op_version}: the function for {local!r} {problem}; "
                                f"a state's function takes one argument, its Context (def {local}(ctx): ...)")
        key = (operation.op_id, operation.op_version)
        self._ops[key] = operation
        for stale in [k for k in self._functions if k[:2] == key]:
            del self._functions[stale]
        for local, fn in functions.items():
            self._functions[(*key, local)] = fn

    @property
    def registry(self) -> Registry:
        """The planner's view: a `Registry` of the operations."""
        return Registry(dict(self._ops))

    def function(self, op_id: str, op_version: str, local: str) -> OpFunction | None:
        """The function state ``local`` of operation ``(op_id, op_version)`` runs, or None."""
        return self._functions.get((op_id, op_version, local))


def _takes_one_argument(fn: Any) -> str | None:
    """Why ``fn`` cannot be called with one positional argument, or None (also when its signature is unknown)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(None)
    except TypeError:
        return f"has the signature {getattr(fn, '__qualname__', fn)!s}{signature}"
    return None
