"""InputLifecycle: a faithful port of ../shared/reference/InputLifecycle.tla.

N inputs, each its own machine instance in a `System`; input i is newer than
input j when i > j. The TLA+ action ``Stage(i)`` needs every input to be not
Staged -- a system guard (``runtime_idle``) -- and ``Supersede(i)`` needs a
newer Queued input -- another (``newer_queued``). ``TerminalStable`` is a
per-instance transition property; ``superseded_by_newer`` (not in the TLA+
model) states what ``newer_queued`` protects: a superseded input always has
a newer input that was queued. The state is exactly TLA+'s ``phase``
function, so the state space is TLC's: N=7 gives 496,420 distinct states and
depth 29. Two seeded-bug variants are parameters: ``stage_guard=false`` drops
the guard (``at_most_one_staged`` fails at depth 5) and
``abandon_terminal=true`` lets terminal inputs be abandoned
(``terminal_stable`` fails with a 5-state trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from statewright.kernel.checker import Spec, always, sometimes, terminal_stable
from statewright.kernel.machine import Machine, Transition
from statewright.kernel.system import System, SystemGuard
from statewright.specs.registry import REGISTRY


class Phase(Enum):
    ACCEPTED = "Accepted"
    QUEUED = "Queued"
    STAGED = "Staged"
    APPLIED = "Applied"
    CONSUMED = "Consumed"
    ABANDONED = "Abandoned"
    SUPERSEDED = "Superseded"


TERMINAL = frozenset({Phase.CONSUMED, Phase.ABANDONED, Phase.SUPERSEDED})
LIVE = tuple(p for p in Phase if p not in TERMINAL)


@dataclass(frozen=True, slots=True)
class Enqueue:
    pass


@dataclass(frozen=True, slots=True)
class Stage:
    pass


@dataclass(frozen=True, slots=True)
class Apply:
    pass


@dataclass(frozen=True, slots=True)
class Consume:
    pass


@dataclass(frozen=True, slots=True)
class Abandon:
    pass


@dataclass(frozen=True, slots=True)
class Supersede:
    pass


INPUTS = (Enqueue(), Stage(), Apply(), Consume(), Abandon(), Supersede())


def tla_input(*, abandon_terminal: bool = False) -> Machine[Phase]:
    """One input of the TLA+ model; the variant lets Abandon leave terminal phases."""
    abandon_from = tuple(Phase) if abandon_terminal else LIVE
    return Machine(
        "tla_input",
        initial=Phase.ACCEPTED,
        terminal=TERMINAL,
        transitions=[
            Transition(Phase.ACCEPTED, Enqueue, Phase.QUEUED),
            Transition(Phase.QUEUED, Stage, Phase.STAGED),
            Transition(Phase.STAGED, Apply, Phase.APPLIED),
            Transition(Phase.APPLIED, Consume, Phase.CONSUMED),
            Transition(abandon_from, Abandon, Phase.ABANDONED, from_terminal=abandon_terminal),
            Transition(Phase.QUEUED, Supersede, Phase.SUPERSEDED),
        ],
    )


def runtime_idle(view: Any, _me: int, _input: Any) -> bool:
    """TLA+ Stage(i): no input is Staged."""
    return Phase.STAGED not in view


def newer_queued(view: Any, me: int, _input: Any) -> bool:
    """TLA+ Supersede(i): some newer input j > i is Queued."""
    return Phase.QUEUED in view[me + 1 :]


def superseded_by_newer(view: Any) -> bool:
    """Every superseded input has a newer one that got past Accepted (it was Queued then).

    It is enough to look past the newest superseded input: it is itself past
    Accepted, and newer than every other superseded one.
    """
    if Phase.SUPERSEDED not in view:
        return True
    newest = len(view) - 1 - view[::-1].index(Phase.SUPERSEDED)
    return any(later is not Phase.ACCEPTED for later in view[newest + 1 :])


def at_most_one_staged(view: Any) -> bool:
    staged: int = view.count(Phase.STAGED)
    return staged <= 1


@REGISTRY.spec
def input_lifecycle(n: int = 7, stage_guard: bool = True, abandon_terminal: bool = False) -> Spec:
    """N inputs of one runtime (InputLifecycle.tla); TLC: N=7 -> 496,420 states, depth 29."""
    if n < 1:
        from statewright.kernel.errors import DefinitionError

        raise DefinitionError(f"input_lifecycle: n must be at least 1, got {n}")
    machine = tla_input(abandon_terminal=abandon_terminal)
    names = [f"i{k}" for k in range(1, n + 1)]
    guards = [SystemGuard("newer_queued", Supersede, newer_queued)]
    if stage_guard:
        guards.append(SystemGuard("runtime_idle", Stage, runtime_idle))
    system: System[Any] = System("input_lifecycle", {name: machine for name in names}, guards=guards)
    return Spec(
        "input_lifecycle",
        system,
        inputs={name: INPUTS for name in names},
        properties=[
            always("at_most_one_staged", at_most_one_staged),
            always("superseded_by_newer", superseded_by_newer),
            terminal_stable(TERMINAL, each=True),
            sometimes("all_consumed", lambda v: v.count(Phase.CONSUMED) == len(v)),
        ],
        doc=__doc__ or "",
    )
