"""`step`: the pure reducer every lifecycle goes through.

``step(machine, state, input)`` looks up the table rows for the state's phase
and the input's exact type, takes the first row whose guards all hold, and
returns the new state with the effects it emits -- or a `Rejected` value that
says why nothing happened. It does no IO and raises only if a user-supplied
guard, update or emit raises (a `UserCodeError` naming it, with the original
exception as its cause) or returns something unusable; the checker relies on
it being a function.

A row that declares ``choose`` is a choice: `step` takes its first
alternative, or the one passed as ``choice=``; `outcomes` lists every
successor the checker explores (each alternative, and with ``every_row``
each enabled row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, NoReturn, TypeVar

from statewright.kernel.boundary import FAILURES, not_bool, raised, refused, row
from statewright.kernel.machine import PLAIN, Guard, Machine, Rule
from statewright.kernel.values import describe

__all__ = [
    "UNSET", "Accepted", "Reason", "Rejected", "Result",
    "alternatives", "apply_rule", "current_phase", "enabled_among", "enabled_rules", "failing_guard", "firings",
    "emitted", "guard_raised", "holds", "outcomes", "step",
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
    NO_CHOICE = "no_choice"
    """A ``choice=`` was passed that the row which fires does not offer (or it declares no choice)."""


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""``step``'s ``choice`` when the caller passes none: a choosing row takes its first alternative."""


@dataclass(frozen=True, slots=True)
class Accepted(Generic[S]):
    """The input was taken: the next state, the effects to carry out, and the row that fired.

    ``choice`` is the alternative a choosing row took (None for a plain row).
    """

    state: S
    effects: tuple[Any, ...]
    transition: int
    choice: Any = None

    def __repr__(self) -> str:
        chose = "" if self.choice is None else f", choice={self.choice!r}"
        return f"Accepted(state={self.state!r}, effects={self.effects!r}, transition={self.transition!r}{chose})"


@dataclass(frozen=True, slots=True)
class Rejected:
    """The input was refused; the state is unchanged.

    ``guards`` names the first failing guard of each candidate row (each name
    once) when the reason is `Reason.GUARD_FAILED`; ``detail`` says what was
    wrong with the choice when it is `Reason.NO_CHOICE`.
    """

    reason: Reason
    phase: Enum
    input: Any
    guards: tuple[str, ...] = ()
    detail: str = ""

    @property
    def message(self) -> str:
        """One line a person can read: ``can't take Stage in QUEUED: guard runtime_idle failed``."""
        what = f"can't take {type(self.input).__name__} in {self.phase.name}"
        if self.reason is Reason.GUARD_FAILED:
            return f"{what}: guard {' / '.join(self.guards)} failed"
        if self.reason is Reason.TERMINAL:
            return f"{what}: the state is terminal"
        if self.reason is Reason.NO_CHOICE:
            return f"{what}: {self.detail}"
        return f"{what}: no transition"


Result = Accepted[S] | Rejected


def apply_rule(
    machine: Machine[Any], rule: Rule, state: Any, event: Any, choice: Any = None
) -> tuple[Any, tuple[Any, ...]]:
    """Fire one compiled row: update the data, stamp the target phase, compute effects.

    ``choice`` is the alternative taken by a choosing row: its update and
    emit receive it as their third argument.

    Raises `UserCodeError` when the update or emit raises, the update returns
    something other than the machine's state type, or emit returns something
    other than a tuple.
    """
    new = state
    if rule.update is not None:
        try:
            new = rule.update(state, event) if rule.choose is None else rule.update(state, event, choice)
        except FAILURES as exc:
            raised(exc, rule.update, row(rule.index, rule.label) + ", update",
                   machine=machine.name, state=state, input=event)
        if type(new) is not machine.state_type:
            refused(f"returned {describe(new)}, not a {machine.state_type.__name__}", rule.update,
                    row(rule.index, rule.label) + ", update", machine=machine.name, state=state, input=event)
    try:
        if machine.phase_of(new) is not rule.target:
            new = machine.stamp(new, rule.target)
    except FAILURES as exc:
        raised(exc, machine.with_phase or machine.phase_of, row(rule.index, rule.label) + ", setting the phase",
               machine=machine.name, state=new, input=event)
    if rule.emit is None:
        return new, rule.effects
    try:
        effects = rule.emit(new, event) if rule.choose is None else rule.emit(new, event, choice)
    except FAILURES as exc:
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
            ok = g.test(state, event)
        except FAILURES as exc:
            guard_raised(exc, machine, rule, g, state, event)
        if ok is not True:
            if ok is not False:
                guard_not_bool(ok, machine, rule, g, state, event)
            return g.name
    return None


def guard_raised(exc: BaseException, machine: Machine[Any], rule: Rule, guard: Guard[Any, Any], state: Any,
                 event: Any) -> NoReturn:
    """Re-raise what ``guard`` of ``rule`` raised as a `UserCodeError` naming the row and the guard."""
    raised(exc, guard.test, f"{row(rule.index, rule.label)}, guard {guard.name!r}",
           machine=machine.name, state=state, input=event)


def guard_not_bool(value: Any, machine: Machine[Any], rule: Rule, guard: Guard[Any, Any], state: Any,
                   event: Any) -> NoReturn:
    """Report that ``guard`` of ``rule`` returned ``value``, which is not a bool (a missing ``return``, say)."""
    not_bool(value, guard.test, f"{row(rule.index, rule.label)}, guard {guard.name!r}",
             machine=machine.name, state=state, input=event)


def current_phase(machine: Machine[Any], state: Any, event: Any = None) -> Enum:
    """The phase of ``state``; a failing ``phase=`` projection becomes a `UserCodeError`."""
    try:
        return machine.phase_of(state)
    except FAILURES as exc:
        raised(exc, machine.phase_of, "phase of the state", machine=machine.name, state=state, input=event)


def alternatives(machine: Machine[Any], rule: Rule, state: Any, event: Any) -> tuple[Any, ...]:
    """What ``rule`` may pick for ``(state, event)``: its ``choose`` alternatives, or ``(None,)``.

    Raises `UserCodeError` when ``choose`` raises or returns something that is
    not iterable.
    """
    if rule.choose is None:
        return PLAIN
    where = row(rule.index, rule.label) + ", choose"
    try:
        offered = rule.choose(state, event)
    except FAILURES as exc:
        raised(exc, rule.choose, where, machine=machine.name, state=state, input=event)
    if isinstance(offered, (str, bytes)) or not hasattr(offered, "__iter__"):
        refused(f"returned {describe(offered)}, not an iterable of alternatives", rule.choose, where,
                machine=machine.name, state=state, input=event)
    try:
        return tuple(offered)
    except FAILURES as exc:
        raised(exc, rule.choose, where, machine=machine.name, state=state, input=event)


def firings(machine: Machine[Any], state: Any, event: Any) -> list[tuple[Rule, tuple[Any, ...]]]:
    """Every enabled row for ``(state, event)`` with its alternatives, in table order.

    A row is enabled when its guards hold and, if it chooses, it offers at
    least one alternative (an existential over nothing is false).
    """
    return enabled_among(machine, machine.index.get((current_phase(machine, state, event), type(event)), ()),
                         state, event)


def enabled_among(
    machine: Machine[Any], rules: Sequence[Rule], state: Any, event: Any
) -> list[tuple[Rule, tuple[Any, ...]]]:
    """`firings` among ``rules``, the rows of the state's phase for the input's type (``machine.rows``).

    The checker calls this once per state and input, so the guards are
    called inline rather than through `failing_guard`; the ``try`` costs
    nothing until a guard raises, and then names the guard that did.
    """
    out: list[tuple[Rule, tuple[Any, ...]]] = []
    for r in rules:
        g: Guard[Any, Any] | None = None
        try:
            for g in r.guards:
                ok = g.test(state, event)
                if ok is not True:
                    if ok is False:
                        break
                    guard_not_bool(ok, machine, r, g, state, event)
            else:
                g = None
        except FAILURES as exc:
            assert g is not None
            guard_raised(exc, machine, r, g, state, event)
        if g is not None:
            continue
        if r.choose is None:
            out.append((r, PLAIN))
            continue
        alts = alternatives(machine, r, state, event)
        if alts:
            out.append((r, alts))
    return out


def enabled_rules(machine: Machine[Any], state: Any, event: Any) -> list[Rule]:
    """Every enabled row for ``(state, event)``; more than one means the table is ambiguous."""
    return [r for r, _ in firings(machine, state, event)]


def outcomes(machine: Machine[S], state: S, event: Any, *, every_row: bool = False) -> tuple[Accepted[S], ...] | Rejected:
    """Every successor of ``state`` by ``event`` that a model checker explores, in table order.

    Each alternative of the first enabled row -- of every enabled row with
    ``every_row`` (a spec with ``determinism=False``) -- or the rejection
    `step` gives when none is enabled.

    >>> from enum import Enum
    >>> from statewright.kernel.machine import Machine, Transition
    >>> class P(Enum):
    ...     IDLE = 1
    ...     SENT = 2
    >>> class Send: pass
    >>> m = Machine("m", initial=(P.IDLE, 0), phase=lambda s: s[0], with_phase=lambda s, p: (p, s[1]),
    ...             transitions=[Transition(P.IDLE, Send, P.SENT, choose=lambda s, i: (1, 2),
    ...                                     update=lambda s, i, peer: (s[0], peer))])
    >>> [o.state for o in outcomes(m, (P.IDLE, 0), Send())]
    [(<P.SENT: 2>, 1), (<P.SENT: 2>, 2)]
    >>> step(m, (P.IDLE, 0), Send(), choice=2).state
    (<P.SENT: 2>, 2)
    """
    enabled = firings(machine, state, event)
    if not enabled:
        return step(machine, state, event)  # type: ignore[return-value]
    out: list[Accepted[S]] = []
    for rule, alts in enabled if every_row else enabled[:1]:
        for choice in alts:
            new, effects = apply_rule(machine, rule, state, event, choice)
            out.append(Accepted(new, effects, rule.index, choice))
    return tuple(out)


def step(machine: Machine[S], state: S, event: Any, *, choice: Any = UNSET) -> Accepted[S] | Rejected:
    """Feed one input to a machine state.

    The first row (in table order) whose guards hold fires. If it declares a
    choice it takes ``choice`` -- `Reason.NO_CHOICE` when that is not among
    its alternatives, or when the row declares no choice -- or, without one,
    its first alternative.

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
        if name is not None:
            failed[name] = None
            continue
        if rule.choose is None:
            if choice is not UNSET:
                return Rejected(Reason.NO_CHOICE, now, event, detail=f"{row(rule.index, rule.label)} takes no choice")
            new, effects = apply_rule(machine, rule, state, event)
            return Accepted(new, effects, rule.index)
        alts = alternatives(machine, rule, state, event)
        if not alts:  # nothing to choose from: the row is disabled, as by a guard named after choose
            named = getattr(rule.choose, "__name__", "<lambda>")
            failed["choose" if named == "<lambda>" else named] = None
            continue
        if choice is UNSET:
            choice = alts[0]
        elif choice not in alts:
            return Rejected(Reason.NO_CHOICE, now, event,
                            detail=f"{choice!r} is not a choice of {row(rule.index, rule.label)}")
        new, effects = apply_rule(machine, rule, state, event, choice)
        return Accepted(new, effects, rule.index, choice)
    return Rejected(Reason.GUARD_FAILED, now, event, tuple(failed))


def emitted(machine: Machine[S], before: S, event: Any, after: S) -> tuple[Any, ...]:
    """The effects of the step ``before --event--> after``: what an action property asks of a step.

    The row `step` takes, when the table takes the step; otherwise the step
    was taken by a model whose guards differ from this table (a mutant,
    `kernel.checker.mutants`), and its row is the one leading to ``after``'s
    phase -- guards do not change what a row emits. None found: no effects.
    """
    out = step(machine, before, event)
    if isinstance(out, Accepted):
        return out.effects
    for rule in machine.index.get((current_phase(machine, before), type(event)), ()):
        if rule.target is current_phase(machine, after):
            return apply_rule(machine, rule, before, event)[1]
    return ()
