"""DieHard: the two-jug puzzle, ported from the prose in MODELS.md.

A 3-gallon and a 5-gallon jug, a tap and a drain. The invariant
``not_solved`` (big != 4) is *meant* to fail: its shortest counterexample is
the puzzle's solution, so the spec declares that violation as expected.
TLC: 16 distinct states, depth 8; the violation is a 7-state trace.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.checker import Spec, always
from statewright.kernel.machine import Machine, Transition
from statewright.specs.registry import REGISTRY

SMALL, BIG = 3, 5


class Jugs(Enum):
    """DieHard has no lifecycle to speak of: one phase, all data."""

    POURING = "pouring"


@dataclass(frozen=True, slots=True)
class Water:
    phase: Jugs = Jugs.POURING
    small: int = 0
    big: int = 0


@dataclass(frozen=True, slots=True)
class FillSmall:
    pass


@dataclass(frozen=True, slots=True)
class FillBig:
    pass


@dataclass(frozen=True, slots=True)
class EmptySmall:
    pass


@dataclass(frozen=True, slots=True)
class EmptyBig:
    pass


@dataclass(frozen=True, slots=True)
class SmallToBig:
    pass


@dataclass(frozen=True, slots=True)
class BigToSmall:
    pass


def _small_to_big(s: Water, _: SmallToBig) -> Water:
    poured = min(s.small, BIG - s.big)
    return replace(s, small=s.small - poured, big=s.big + poured)


def _big_to_small(s: Water, _: BigToSmall) -> Water:
    poured = min(s.big, SMALL - s.small)
    return replace(s, small=s.small + poured, big=s.big - poured)


P = Jugs.POURING
DIEHARD = Machine(
    "diehard",
    initial=Water(),
    transitions=[
        Transition(P, FillSmall, P, update=lambda s, _: replace(s, small=SMALL)),
        Transition(P, FillBig, P, update=lambda s, _: replace(s, big=BIG)),
        Transition(P, EmptySmall, P, update=lambda s, _: replace(s, small=0)),
        Transition(P, EmptyBig, P, update=lambda s, _: replace(s, big=0)),
        Transition(P, SmallToBig, P, update=_small_to_big),
        Transition(P, BigToSmall, P, update=_big_to_small),
    ],
    doc="Two jugs of 3 and 5 gallons.",
)


@REGISTRY.spec
def diehard() -> Spec:
    """The two-jug puzzle; not_solved (big != 4) is violated on purpose."""
    return Spec(
        "diehard",
        DIEHARD,
        inputs=[FillSmall(), FillBig(), EmptySmall(), EmptyBig(), SmallToBig(), BigToSmall()],
        properties=[
            always("not_solved", lambda s: s.big != 4),
            always("jugs_in_range", lambda s: 0 <= s.small <= SMALL and 0 <= s.big <= BIG),
        ],
        expect={"not_solved": 7},
        doc=__doc__ or "",
    )
