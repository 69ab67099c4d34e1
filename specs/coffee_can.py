"""CoffeeCan: Gries's coffee-can problem, ported from tlaplus/Examples, specifications/CoffeeCan.

A can holds black and white beans, from 1 to ``max_beans`` of them in all.
While more than one bean is left, take two out: two of the same colour go,
and a black one goes back in; one of each colour: the white one goes back.
Each step removes a bean, so every behaviour ends with one bean -- provided it
keeps picking, which is what the spec's weak fairness says.

TLA+ to the table
-----------------
* ``can`` (a record ``[black, white]``) is `Beans`'s ``black`` and ``white``;
  the phase never changes (the can has no lifecycle, only data).
* ``Init`` -- every can with 1..``max_beans`` beans -- is ``init=``: all
  ``max_beans * (max_beans + 3) / 2`` of them at depth 1, as in TLC.
* The four disjuncts of ``Next`` are four rows, one input each:
  `PickSameColorWhite`, `PickSameColorBlack`, `PickDifferentColor` and
  `Termination`, which leaves the can as it is once one bean is left (TLC's
  ``UNCHANGED can`` step, and the reason that state is no deadlock).
* ``WF_<<can>>(Next)`` is ``weak_fair`` over the whole machine.
* Properties: ``TypeInvariant`` (``type_invariant``),
  ``EventuallyTerminates == <>(ENABLED Termination)`` (``eventually_terminates``,
  ``<>(black + white = 1)``), and the action properties ``MonotonicDecrease``
  and ``LoopInvariant``. ``TerminationHypothesis`` (which colour the last bean
  has) is not ported: it looks at the initial state from inside ``<>``.

Every successor is itself an initial state (fewer beans, but at least one), so
the whole graph is the initial set: TLC reports depth 1 for every size.

TLC 2.20: ``max_beans=3``: 9 distinct states, depth 1; 10: 65, depth 1; 100:
5,150, depth 1; no error. TLC's "states generated" (20, 202, 20,002) also
counts the initial states; statewright's ``generated`` counts steps only, so it
is those figures less the initial states: 11, 137, 14,852. ``fair=false``
drops the fairness (TLC's ``CoffeeCanNoFair``): a can may then sit untouched
forever, so ``eventually_terminates`` fails by stuttering in an initial state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.checker import Property, Spec, always, always_step, eventually, weak_fair
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.specs.registry import REGISTRY

__all__ = [
    "COFFEE_CAN",
    "Beans",
    "Can",
    "PickDifferentColor",
    "PickSameColorBlack",
    "PickSameColorWhite",
    "Termination",
    "coffee_can",
    "initial_cans",
]


class Can(Enum):
    """The can has no lifecycle: one phase, all data."""

    PICKING = "picking"


@dataclass(frozen=True, slots=True)
class Beans:
    phase: Can = Can.PICKING
    black: int = 0
    white: int = 1

    @property
    def count(self) -> int:
        """TLA+'s ``BeanCount``."""
        return self.black + self.white


@dataclass(frozen=True, slots=True)
class PickSameColorWhite:
    """Two whites out, one black in."""


@dataclass(frozen=True, slots=True)
class PickSameColorBlack:
    """Two blacks out, one black back in."""


@dataclass(frozen=True, slots=True)
class PickDifferentColor:
    """One of each out; the white goes back in."""


@dataclass(frozen=True, slots=True)
class Termination:
    """One bean left: nothing changes any more."""


P = Can.PICKING
COFFEE_CAN = Machine(
    "coffee_can",
    initial=Beans(),
    transitions=[
        Transition(P, PickSameColorWhite, P,
                   guard=Guard("two_whites", lambda s, _: s.count > 1 and s.white >= 2),
                   update=lambda s, _: replace(s, black=s.black + 1, white=s.white - 2)),
        Transition(P, PickSameColorBlack, P,
                   guard=Guard("two_blacks", lambda s, _: s.count > 1 and s.black >= 2),
                   update=lambda s, _: replace(s, black=s.black - 1)),
        Transition(P, PickDifferentColor, P,
                   guard=Guard("one_of_each", lambda s, _: s.count > 1 and s.black >= 1 and s.white >= 1),
                   update=lambda s, _: replace(s, black=s.black - 1)),
        Transition(P, Termination, P, guard=Guard("one_left", lambda s, _: s.count == 1)),
    ],
    doc="A coffee can of black and white beans (Gries).",
)

INPUTS = (PickSameColorWhite(), PickSameColorBlack(), PickDifferentColor(), Termination())


def initial_cans(max_beans: int) -> list[Beans]:
    """TLA+'s ``Init``: every can with 1..``max_beans`` beans, black count first.

    >>> len(initial_cans(3)), len(initial_cans(100))
    (9, 5150)
    """
    return [Beans(black=b, white=w) for b in range(max_beans + 1) for w in range(max_beans + 1)
            if 1 <= b + w <= max_beans]


def _properties(max_beans: int) -> list[Property]:
    return [
        always("type_invariant", lambda s: 0 <= s.black <= max_beans and 0 <= s.white <= max_beans),
        eventually("eventually_terminates", lambda s: s.count == 1),
        always_step("monotonic_decrease", lambda s, _, t: s.count <= 1 or t.count < s.count),
        always_step("loop_invariant", lambda s, _, t: s.white % 2 == t.white % 2),
    ]


@REGISTRY.spec
def coffee_can(max_beans: int = 100, fair: bool = True) -> Spec:
    """Gries's coffee can (TLA+ CoffeeCan); fair=false breaks eventually_terminates."""
    half = max_beans // 2
    machine = replace(COFFEE_CAN, initial=Beans(black=half, white=max_beans - half))  # a full can, for `suite`
    return Spec(
        "coffee_can",
        machine,
        inputs=INPUTS,
        properties=_properties(max_beans),
        init=initial_cans(max_beans),
        fairness=[weak_fair(machine)] if fair else [],
        expect=[] if fair else ["eventually_terminates"],
        doc=__doc__ or "",
    )
