"""The slow lane: the successors of one state's slow moves, for one instance -- one copy for every engine.

A local table splits each local state's moves in two (`kernel.checker.local`):
*fast* moves, which the engines splice into keys without calling user code,
and *slow* ones, which need the whole system state. `SlowLane.run` takes the
slow moves of instance ``k`` in state ``i`` in order and returns one entry
per successor, in the order the search generates them:

* an ``int`` -- the successor is the key with instance ``k``'s local id
  replaced by this one, and nothing more needs judging (the common case: a
  move a system guard let through);
* a `Key` -- the successor's whole key after judging: step properties, the
  action constraint, the symmetry's canonical form and the state constraint;
* ``None`` -- a successor the constraints left out (judged and counted by
  `Judge.prune`).

Each engine turns the entries into its own keys: `Search` splices ints into
tuples and looks them up in its dict, the level engine shifts them into
packed 64-bit keys. The guard loop, routed settling and successor judging are
here and nowhere else; `StateSpace.take` (the general path used for traces) asks
`StateSpace.allows`, which calls the guards the same way.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from statewright.kernel.boundary import FAILURES
from statewright.kernel.checker.judge import Judge
from statewright.kernel.checker.local import Key, Move
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.errors import UserCodeError
from statewright.kernel.system import Emitted, guard_not_bool, guard_raised

__all__ = ["Entry", "SlowLane"]

Entry = int | Key | None
"""One successor of the slow lane (see the module docstring)."""


class SlowLane:
    """Runs slow moves for an engine; ``known`` (the engine's state set, if it has one) spares constraint calls."""

    def __init__(self, space: StateSpace, judge: Judge, known: Container[Key] | None = None) -> None:
        self.space = space
        self.judge = judge
        self.known = known
        """States already admitted (they passed the constraint then); None: ask the constraint of every successor."""
        self.wrap = space.system is not None and space.all_slow
        """Effects of plain local steps are wrapped as `Emitted` because every move is judged as a system step."""
        self.special = bool(space.global_transitions) or space.all_slow
        """Every successor needs judging: global step properties, constraints or symmetry."""
        self.rules: list[int] | None = None
        """When a list, `run` appends each successor's row to it (the temporal graph's labels)."""

    def run(self, i: int, key: Key, k: int, slow: tuple[Move, ...], before: Any) -> list[Entry]:
        """The successors of instance ``k``'s slow moves from state ``i`` (``before`` is its view), in order."""
        space = self.space
        out: list[Entry] = []
        rules = self.rules
        special = self.special
        for move in slow:
            event = move.input
            if move.routed:
                for nk, effects, flags, rule in space.take(key, k, move, before):
                    out.append(self.judged(i, k, event, nk, effects, flags, before))
                    if rules is not None:
                        rules.append(rule)
                continue
            if move.gates:  # the system guards: a refusal drops the move (`StateSpace.allows` is the same loop)
                g = None
                try:
                    for g in move.gates:
                        ok = g.test(before, k, event)
                        if ok is not True:
                            if ok is False:
                                break
                            assert space.system is not None
                            guard_not_bool(ok, space.system, g, before, k, event)
                    else:
                        g = None
                except FAILURES as exc:
                    assert space.system is not None and g is not None
                    guard_raised(exc, space.system, g, before, k, event)
                if g is not None:
                    continue
            move.count += 1
            flags = move.flags
            if not (flags or special):
                out.append(move.next)
                if rules is not None:
                    rules.append(move.rule)
                continue
            effects = move.effects
            if self.wrap or (flags and space.system is not None):
                effects = tuple(Emitted(space.names[k], e) for e in effects)
            nk = key[:k] + (move.next,) + key[k + 1 :]
            out.append(self.judged(i, k, event, nk, effects, flags, before))
            if rules is not None:
                rules.append(move.rule)
        return out

    def judged(
        self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...], flags: tuple[str, ...], before: Any
    ) -> Key | None:
        """Judge one successor taken: its key to admit (canonical under symmetry), or None when a constraint prunes it."""
        space, judge = self.space, self.judge
        if flags or space.global_transitions:
            judge.step(i, k, event, nk, effects, flags, before)
        if space.action_constraint is not None and not judge.action_inside(before, k, event, nk):
            judge.prune(nk, (i, k, event, effects))
            return None
        if space.symmetry is not None:  # judged above as taken; stored as its class's representative
            nk = space.symmetry.canonical(nk)
        if space.constraint is not None and (self.known is None or nk not in self.known):
            try:
                inside = judge.inside(nk)
            except UserCodeError as err:
                raise err.within(trace=tuple(judge.traces.edge(i, k, event, nk, effects))) from err.original
            if not inside:
                judge.prune(nk, (i, k, event, effects))
                return None
        return nk
