"""Temporal properties and the fairness they are judged under.

Safety properties (`always`, `transition`) say nothing bad happens; these say
something good eventually does, over *infinite* behaviours:

* ``eventually(name, p)`` -- ``<>p``: every behaviour reaches a ``p`` state;
* ``leads_to(name, p, q)`` -- ``p ~> q``: after any ``p`` state a ``q`` state follows;
* ``always_eventually(name, p)`` -- ``[]<>p``: ``p`` holds infinitely often;
* ``eventually_always(name, p)`` -- ``<>[]p``: from some point on ``p`` holds forever.

Behaviours are TLA+'s: any state may *stutter* (stay as it is) forever, so
nothing is ever forced to happen unless fairness says so. A fairness
condition names a set of actions (its *targets*) and says that a behaviour
which keeps them enabled must take them:

* ``weak_fair(*targets)`` -- if continuously enabled from some point on, taken infinitely often (``WF``);
* ``strong_fair(*targets)`` -- if enabled infinitely often, taken infinitely often (``SF``).

A target is an input type (every row taking it, in every instance), a
`Transition` row of a machine (that row, in every instance), an instance
name (all of that instance's rows), or a `Machine`, which expands to one
condition *per instance* of it (like TLC's ``\\A i: WF_vars(Next(i))``).
Several targets in one call form one condition over their union
(``WF_vars(A \\/ B)``); a `Machine` target must stand alone in its call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statewright.kernel.check.fairness import Fair, strong_fair, weak_fair
from statewright.kernel.check.spec import Kind, Property

__all__ = ["Fair", "always_eventually", "eventually", "eventually_always", "leads_to", "strong_fair", "weak_fair"]


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
