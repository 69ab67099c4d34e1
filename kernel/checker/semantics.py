"""What the built-in properties mean, in one place.

The checker (`kernel.checker.local`, `kernel.checker.search`) and the generated
hypothesis suites (`adapters.testing.stateful`) both judge the three
built-ins; they ask this module instead of each spelling the rule out:

* ``determinism`` -- in a reachable state, one input enables at most one row,
  so `step` is a function of the table (`ambiguity`);
* ``terminal_precedence`` -- no step leaves a terminal phase, not even
  through a row declared ``from_terminal=True`` (`leaves_terminal`);
* ``deadlock`` -- a state with no successor must be final: the spec's
  ``final(state)`` when given, otherwise every instance in a terminal phase
  (`is_final`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from statewright.kernel.boundary import FAILURES, not_bool, raised
from statewright.kernel.machine import Machine, Rule

__all__ = ["ambiguity", "is_final", "leaves_terminal"]


def ambiguity(machine: Machine[Any], state: Any, event: Any, enabled: Sequence[Rule]) -> str | None:
    """Why ``event`` in ``state`` breaks determinism (the rows it enables), or None.

    >>> from enum import Enum
    >>> from statewright.kernel.machine import Guard, Machine, Transition
    >>> class P(Enum):
    ...     A = 1
    ...     B = 2
    >>> class Go: pass
    >>> m = Machine("m", initial=P.A, transitions=[
    ...     Transition(P.A, Go, P.B, guard=Guard("yes", lambda s, i: True)),
    ...     Transition(P.A, Go, P.A, guard=Guard("also", lambda s, i: True))])
    >>> ambiguity(m, P.A, Go(), m.rules[:2]).split("enables ")[1]
    'A --Go[yes]--> B; A --Go[also]--> A'
    """
    if len(enabled) < 2:
        return None
    return f"machine {machine.name!r} in {state!r}: {event!r} enables " + "; ".join(
        machine.labels[r.index] for r in enabled
    )


def leaves_terminal(machine: Machine[Any], rule: Rule) -> bool:
    """Whether firing ``rule`` moves a machine out of a terminal phase (terminal precedence broken)."""
    return rule.source in machine.terminal_phases and rule.target is not rule.source


def is_final(
    state: Any,
    terminal: Sequence[bool],
    final: Callable[[Any], bool] | None,
    *,
    spec: str,
) -> bool:
    """May ``state``, which has no successor, stop here? (Otherwise it is a deadlock.)

    ``terminal`` says, per instance, whether its local state is in a terminal
    phase; ``final`` is the spec's own predicate, which replaces that default.
    """
    if final is None:
        return all(terminal)
    try:
        ok = final(state)
    except FAILURES as exc:
        raised(exc, final, "final", spec=spec, state=state)
    if ok is not True and ok is not False:
        not_bool(ok, final, "final", spec=spec, state=state)
    return ok
