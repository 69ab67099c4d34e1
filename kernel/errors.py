"""The kernel's exception types: a declaration that cannot be right, and user code that failed.

Inputs that a machine cannot take are *not* errors: `step` returns a typed
`Rejected` value for them. `DefinitionError` is raised while a machine, system
or spec is being declared (or first compiled by the checker), and its message
names the model and the offending entry so the fix is obvious.
`UserCodeError` is the `DefinitionError` for a guard, update, emit, property
or other callable of the user's that raised or returned something unusable:
it says which one, where it is defined, and in which state.
"""

from __future__ import annotations

from typing import Any, ClassVar

from statewright.kernel.trace import TraceStep

__all__ = ["DefinitionError", "UserCodeError"]

REPR_LIMIT = 200
"""The longest repr of a state or input an error message shows."""


class DefinitionError(ValueError):
    """A machine, system or spec is declared wrongly.

    >>> raise DefinitionError("machine 'door': unknown phase 'AJAR'")
    Traceback (most recent call last):
    ...
    statewright.kernel.errors.DefinitionError: machine 'door': unknown phase 'AJAR'
    """


def short_repr(value: object, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters; a failing ``__repr__`` is named, not raised."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the error being reported
        text = f"<{type(value).__qualname__} object (repr raised {type(exc).__name__})>"
    return one_line(text, limit)


def one_line(text: str, limit: int | None = REPR_LIMIT) -> str:
    """``text`` with line breaks escaped, cut to ``limit`` characters (``...`` marks the cut; None: uncut).

    >>> one_line("a\\nb" * 3, 8)
    'a\\\\nba...'
    """
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


class UserCodeError(DefinitionError):
    """A callable of the user's raised, or returned a value the kernel cannot use.

    ``where`` says which piece of the model it is (``transition #3 (QUEUED
    --Stage[idle]--> STAGED), guard 'idle'``, ``property 'small'``, ...),
    ``function`` and ``location`` which callable and where it is defined
    (``orders.py:31``; empty when no callable is to blame), ``state`` and
    ``input`` what it was given, ``problem`` what went wrong (``raised
    ZeroDivisionError: division by zero``, ``returned [1], not a tuple of
    effects``), ``original`` the exception it raised (also the ``__cause__``)
    and ``trace`` the shortest trace to ``state`` when the checker found it.
    The attributes are fixed once set; `within` makes a copy with the
    checker's context added.

    >>> err = UserCodeError(where="guard 'odd'", function="odd", location="m.py:3",
    ...                     problem="raised KeyError: 'x'", machine="m", state=1, input="Go()")
    >>> str(err)
    "machine 'm', guard 'odd' (m.py:3) raised KeyError: 'x', in 1 with 'Go()'"
    """

    spec: str | None
    machine: str | None
    where: str
    function: str
    location: str
    problem: str
    state: Any
    input: Any
    trace: tuple[TraceStep, ...] | None
    original: BaseException | None

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "spec", "machine", "where", "function", "location", "problem", "state", "input", "trace", "original",
    )

    def __init__(
        self,
        *,
        where: str,
        problem: str,
        function: str = "",
        location: str = "",
        spec: str | None = None,
        machine: str | None = None,
        state: Any = None,
        input: Any = None,
        trace: tuple[TraceStep, ...] | None = None,
        original: BaseException | None = None,
    ) -> None:
        fields = dict(spec=spec, machine=machine, where=where, function=function, location=location,
                      problem=problem, state=state, input=input, trace=trace, original=original)
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        super().__init__(where, problem)
        if original is not None:
            self.__cause__ = original

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._FIELDS:
            raise AttributeError(f"UserCodeError.{name} is read-only; use within() for a changed copy")
        super().__setattr__(name, value)

    def __str__(self) -> str:
        owner = f"machine {self.machine!r}, " if self.machine else f"spec {self.spec!r}, " if self.spec else ""
        at = f" ({self.location})" if self.location else ""
        given = f", in {short_repr(self.state)}"
        if self.input is not None:
            given += f" with {short_repr(self.input)}"
        return one_line(f"{owner}{self.where}{at} {self.problem}{given}", limit=None)

    def within(self, *, spec: str | None = None, trace: tuple[TraceStep, ...] | None = None) -> UserCodeError:
        """A copy with the spec name and trace filled in where they are still unknown."""
        return UserCodeError(
            where=self.where, problem=self.problem, function=self.function, location=self.location,
            spec=self.spec or spec, machine=self.machine, state=self.state, input=self.input,
            trace=self.trace if self.trace is not None else trace, original=self.original,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ({name: getattr(self, name) for name in self._FIELDS},))


def _rebuild(fields: dict[str, Any]) -> UserCodeError:
    """Unpickle a `UserCodeError` (its constructor takes keywords only)."""
    return UserCodeError(**fields)
