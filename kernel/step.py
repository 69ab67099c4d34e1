"""`step`: the pure reducer every lifecycle goes through.

``step(machine, state, input)`` looks up the table rows for the state's phase
and the input's exact type, takes the first row whose guards all hold, and
returns the new state with the effects it emits -- or a `Rejected` value that
says why nothing happened. It does no IO and raises only if a user-supplied
guard, update or emit raises; the checker relies on it being a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from statewright.kernel.machine import Machine, Rule

__all__ = ["Accepted", "Reason", "Rejected", "Result", "apply_rule", "enabled_rules", "step"]

S = TypeVar("S")


class Reason(Enum):
    """Why an input was rejected."""

    NO_TRANSITION = "no_transition"
    """The table has no row for this input type in this phase."""
    GUARD_FAILED = "guard_failed"
    """Rows exist, but a guard of each one is false."""
    TERMINAL = "terminal"
    """The state is terminal and no row opts out of terminal precedence."""


@dataclass(frozen=True, slots=True)
class Accepted(Generic[S]):
    """The input was taken: the next state, the effects to carry out, and the row that fired."""

    state: S
    effects: tuple[Any, ...]
    transition: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The input was refused; the state is unchanged.

    ``guards`` names the first failing guard of each candidate row (each name
    once) when the reason is `Reason.GUARD_FAILED`.
    """

    reason: Reason
    phase: Enum
    input: Any
    guards: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line a person can read: ``can't take Stage in QUEUED: guard runtime_idle failed``."""
        what = f"can't take {type(self.input).__name__} in {self.phase.name}"
        if self.reason is Reason.GUARD_FAILED:
            return f"{what}: guard {' / '.join(self.guards)} failed"
        if self.reason is Reason.TERMINAL:
            return f"{what}: the state is terminal"
        return f"{what}: no transition"


Result = Accepted[S] | Rejected


def apply_rule(machine: Machine[Any], rule: Rule, state: Any, event: Any) -> tuple[Any, tuple[Any, ...]]:
    """Fire one compiled row: update the data, stamp the target phase, compute effects."""
    new = rule.update(state, event) if rule.update is not None else state
    if machine.phase_of(new) is not rule.target:
        new = machine.stamp(new, rule.target)
    effects = rule.emit(new, event) if rule.emit is not None else rule.effects
    return new, effects


def enabled_rules(machine: Machine[Any], state: Any, event: Any) -> list[Rule]:
    """Every row whose guards hold for ``(state, event)``; more than one means the table is ambiguous."""
    rules = machine.index.get((machine.phase_of(state), type(event)), ())
    return [r for r in rules if all(g.test(state, event) for g in r.guards)]


def step(machine: Machine[S], state: S, event: Any) -> Accepted[S] | Rejected:
    """Feed one input to a machine state.

    >>> from enum import Enum
    >>> from statewright.kernel.machine import Machine, Transition
    >>> class Door(Enum):
    ...     OPEN = 1
    ...     SHUT = 2
    >>> class Close: pass
    >>> door = Machine("door", initial=Door.OPEN, terminal={Door.SHUT},
    ...                transitions=[Transition(Door.OPEN, Close, Door.SHUT)])
    >>> step(door, Door.OPEN, Close()).state
    <Door.SHUT: 2>
    >>> step(door, Door.SHUT, Close()).reason
    <Reason.TERMINAL: 'terminal'>
    """
    phase = machine.phase_of(state)
    rules = machine.index.get((phase, type(event)))
    if rules is None:
        reason = Reason.TERMINAL if phase in machine.terminal_phases else Reason.NO_TRANSITION
        return Rejected(reason, phase, event)
    for rule in rules:
        for g in rule.guards:
            if not g.test(state, event):
                break
        else:
            new, effects = apply_rule(machine, rule, state, event)
            return Accepted(new, effects, rule.index)
    failed: dict[str, None] = {}  # first failing guard of each row, each name once, in table order
    for rule in rules:
        for g in rule.guards:
            if not g.test(state, event):
                failed[g.name] = None
                break
    return Rejected(Reason.GUARD_FAILED, phase, event, tuple(failed))
