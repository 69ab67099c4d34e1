"""`step`: the pure reducer every lifecycle goes through.

``step(machine, state, input)`` looks up the table rows for the state's phase
and the input's exact type, takes the first row whose guards all hold, and
returns the new state with the effects it emits -- or a `Rejected` value that
says why nothing happened. It does no IO and raises only if a user-supplied
guard, update or emit raises (a `UserCodeError` naming it, with the original
exception as its cause) or returns something unusable; the checker relies on
it being a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from statewright.kernel.boundary import raised, refused, row
from statewright.kernel.machine import Machine, Rule
from statewright.kernel.values import describe

__all__ = [
    "Accepted", "Reason", "Rejected", "Result",
    "apply_rule", "current_phase", "enabled_rules", "failing_guard", "holds", "step",
]

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
    """Fire one compiled row: update the data, stamp the target phase, compute effects.

    Raises `UserCodeError` when the update or emit raises, the update returns
    something other than the machine's state type, or emit returns something
    other than a tuple.
    """
    new = state
    if rule.update is not None:
        try:
            new = rule.update(state, event)
        except Exception as exc:
            raised(exc, rule.update, row(rule.index, rule.label) + ", update",
                   machine=machine.name, state=state, input=event)
        if type(new) is not machine.state_type:
            refused(f"returned {describe(new)}, not a {machine.state_type.__name__}", rule.update,
                    row(rule.index, rule.label) + ", update", machine=machine.name, state=state, input=event)
    try:
        if machine.phase_of(new) is not rule.target:
            new = machine.stamp(new, rule.target)
    except Exception as exc:
        raised(exc, machine.with_phase or machine.phase_of, row(rule.index, rule.label) + ", setting the phase",
               machine=machine.name, state=new, input=event)
    if rule.emit is None:
        return new, rule.effects
    try:
        effects = rule.emit(new, event)
    except Exception as exc:
        raised(exc, rule.emit, row(rule.index, rule.label) + ", emit", machine=machine.name, state=new, input=event)
    if not isinstance(effects, tuple):
        refused(f"returned {describe(effects)}, not a tuple of effects", rule.emit,
                row(rule.index, rule.label) + ", emit", machine=machine.name, state=new, input=event)
    return new, effects


def holds(machine: Machine[Any], rule: Rule, state: Any, event: Any) -> bool:
    """Whether every guard of ``rule`` holds for ``(state, event)``."""
    return failing_guard(machine, rule, state, event) is None


def failing_guard(machine: Machine[Any], rule: Rule, state: Any, event: Any) -> str | None:
    """The name of the first guard of ``rule`` that is false, None when all hold."""
    for g in rule.guards:
        try:
            if not g.test(state, event):
                return g.name
        except Exception as exc:
            raised(exc, g.test, f"{row(rule.index, rule.label)}, guard {g.name!r}",
                   machine=machine.name, state=state, input=event)
    return None


def current_phase(machine: Machine[Any], state: Any, event: Any = None) -> Enum:
    """The phase of ``state``; a failing ``phase=`` projection becomes a `UserCodeError`."""
    try:
        return machine.phase_of(state)
    except Exception as exc:
        raised(exc, machine.phase_of, "phase of the state", machine=machine.name, state=state, input=event)


def enabled_rules(machine: Machine[Any], state: Any, event: Any) -> list[Rule]:
    """Every row whose guards hold for ``(state, event)``; more than one means the table is ambiguous."""
    rules = machine.index.get((current_phase(machine, state, event), type(event)), ())
    return [r for r in rules if holds(machine, r, state, event)]


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
    now = current_phase(machine, state, event)
    rules = machine.index.get((now, type(event)))
    if rules is None:
        reason = Reason.TERMINAL if now in machine.terminal_phases else Reason.NO_TRANSITION
        return Rejected(reason, now, event)
    failed: dict[str, None] = {}  # first failing guard of each row, each name once, in table order
    for rule in rules:
        name = failing_guard(machine, rule, state, event)
        if name is None:
            new, effects = apply_rule(machine, rule, state, event)
            return Accepted(new, effects, rule.index)
        failed[name] = None
    return Rejected(Reason.GUARD_FAILED, now, event, tuple(failed))
