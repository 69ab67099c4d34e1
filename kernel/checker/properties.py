"""What must hold: properties are named values, built with the constructors here.

* ``always(name, p)`` -- an invariant: ``p(state)`` in every reachable state;
* ``sometimes(name, p)`` -- reachability: some reachable state satisfies ``p``
  (so nothing passes vacuously); the report shows a witness;
* ``always_step(name, p)`` -- an action property: ``p(before, input, after)``
  on every step taken (`terminal_stable` is one);
* ``eventually``, ``leads_to``, ``always_eventually``, ``eventually_always``
  -- temporal properties over infinite behaviours, judged under the spec's
  fairness (`kernel.checker.fairness`) on the explored graph.

Five more are built in (`BUILTIN`) and switched by `Spec` flags: ``deadlock``,
``determinism`` and ``terminal_precedence`` are on by default; ``terminates``
and ``recoverable`` are opt-in. `kernel.checker.semantics` says what each means.

Behaviours are TLA+'s: any state may *stutter* (stay as it is) forever, so a
temporal property that needs progress needs fairness to say who must move.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "BUILTIN",
    "Kind",
    "Property",
    "always",
    "always_eventually",
    "always_step",
    "eventually",
    "eventually_always",
    "leads_to",
    "sometimes",
    "terminal_stable",
]


class Kind(Enum):
    """What sort of claim a property makes."""

    ALWAYS = "always"
    SOMETIMES = "sometimes"
    STEP = "step"
    """An action property (`always_step`): judged on every step taken."""
    DEADLOCK = "deadlock"
    DETERMINISM = "determinism"
    TERMINAL_PRECEDENCE = "terminal_precedence"
    EVENTUALLY = "eventually"
    LEADS_TO = "leads_to"
    ALWAYS_EVENTUALLY = "always_eventually"
    EVENTUALLY_ALWAYS = "eventually_always"
    TERMINATES = "terminates"
    RECOVERABLE = "recoverable"
    TRANSITION = "step"
    """Deprecated: the old name of `STEP` (an alias of it); it goes in the next release."""

    @property
    def temporal(self) -> bool:
        """Whether the property speaks about infinite behaviours (decided on the explored graph)."""
        return self in TEMPORAL


TEMPORAL = frozenset({Kind.EVENTUALLY, Kind.LEADS_TO, Kind.ALWAYS_EVENTUALLY, Kind.EVENTUALLY_ALWAYS,
                      Kind.TERMINATES, Kind.RECOVERABLE})
BUILTIN = {
    "deadlock": Kind.DEADLOCK,
    "determinism": Kind.DETERMINISM,
    "terminal_precedence": Kind.TERMINAL_PRECEDENCE,
    "terminates": Kind.TERMINATES,
    "recoverable": Kind.RECOVERABLE,
}
"""The built-in properties, by the name reports give them."""


@dataclass(frozen=True, slots=True)
class Property:
    """A named claim about every reachable state, step or behaviour.

    ``each=True`` on a step property of a system checks it on every
    instance's own steps, ``test(before, input, after)`` over that instance's
    local states; it is then evaluated once per distinct local step.
    """

    name: str
    kind: Kind
    test: Callable[..., bool]
    each: bool = False
    then: Callable[[Any], bool] | None = None
    """The second predicate of ``leads_to(name, p, q)``: ``q``."""


def always(name: str, test: Callable[[Any], bool]) -> Property:
    """Invariant: ``test(state)`` holds in every reachable state.

    >>> always("small", lambda s: s < 10).kind
    <Kind.ALWAYS: 'always'>
    """
    return Property(name, Kind.ALWAYS, test)


def sometimes(name: str, test: Callable[[Any], bool]) -> Property:
    """Reachability: some reachable state satisfies ``test``; the report shows a witness.

    >>> sometimes("done", lambda s: s == 3).kind
    <Kind.SOMETIMES: 'sometimes'>
    """
    return Property(name, Kind.SOMETIMES, test)


def always_step(name: str, test: Callable[[Any, Any, Any], bool], *, each: bool = False) -> Property:
    """Action property: ``test(before, input, after)`` holds on every step taken.

    For a system the input is an `Action`; with ``each=True`` the test sees one
    instance's local ``(before, input, after)`` instead.

    >>> never_down = always_step("never_down", lambda before, i, after: after >= before)
    >>> never_down.kind, never_down.test(1, "Inc()", 2)
    (<Kind.STEP: 'step'>, True)
    """
    return Property(name, Kind.STEP, test, each)


def transition(name: str, test: Callable[[Any, Any, Any], bool], *, each: bool = False) -> Property:
    """Deprecated: `always_step` (``transition`` also names a table row, `Transition`)."""
    warnings.warn("transition(name, test) is now always_step(name, test); the old name goes in the "
                  "next release", DeprecationWarning, stacklevel=2)
    return always_step(name, test, each=each)


def terminal_stable(terminal: Collection[Enum], *, each: bool = False, name: str = "terminal_stable") -> Property:
    """Action property: a state in a ``terminal`` phase never changes at all, data included.

    The phase is the state itself for Enum states and its ``phase`` field
    otherwise (the `Machine` defaults). With ``each=True`` it is checked on
    every instance's own steps of a system.

    >>> from enum import Enum
    >>> class P(Enum):
    ...     OPEN = 1
    ...     DONE = 2
    >>> p = terminal_stable({P.DONE})
    >>> p.test(P.DONE, None, P.DONE), p.test(P.DONE, None, P.OPEN), p.test(P.OPEN, None, P.DONE)
    (True, False, True)
    """
    closed = frozenset(terminal)

    def unchanged_once_terminal(before: Any, _input: Any, after: Any) -> bool:
        phase = before if isinstance(before, Enum) else before.phase
        return phase not in closed or after == before

    return always_step(name, unchanged_once_terminal, each=each)


def eventually(name: str, test: Callable[[Any], bool]) -> Property:
    """``<>p``: every (fair) behaviour reaches a state where ``test`` holds.

    >>> eventually("done", lambda s: s == 3).kind
    <Kind.EVENTUALLY: 'eventually'>
    """
    return Property(name, Kind.EVENTUALLY, test)


def leads_to(name: str, test: Callable[[Any], bool], then: Callable[[Any], bool]) -> Property:
    """``p ~> q``: whenever ``test`` holds, ``then`` holds then or later, on every (fair) behaviour."""
    return Property(name, Kind.LEADS_TO, test, then=then)


def always_eventually(name: str, test: Callable[[Any], bool]) -> Property:
    """``[]<>p``: ``test`` holds infinitely often on every (fair) behaviour."""
    return Property(name, Kind.ALWAYS_EVENTUALLY, test)


def eventually_always(name: str, test: Callable[[Any], bool]) -> Property:
    """``<>[]p``: on every (fair) behaviour, ``test`` holds forever from some point on."""
    return Property(name, Kind.EVENTUALLY_ALWAYS, test)
