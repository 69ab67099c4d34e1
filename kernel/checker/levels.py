"""The level engine: breadth-first search a level at a time over packed keys -- the work on one chunk.

Theory of operation
-------------------
Once every local state an instance could meet is known in advance, a system
state packs into one uint64 (`kernel.checker.packed`). Knowing them in advance
is the *closure* of the local tables (`close`): each instance's local steps
from its initial states under its input domain, plus every routed delivery,
ignoring system guards -- a superset of what the search can reach, computed
once. Then a level is taken in chunks, in discovery order, and `Levels` does
a chunk's work:

* *expanding* frontier states into candidate keys (`Levels.expand`): the fast
  lane is numpy -- per instance, each state's memoised next ids are gathered
  and spliced into the packed keys, with no Python per successor -- and the
  slow lane is the `SlowLane` every engine shares. Successors are laid out in
  exactly the order `Search` generates them (per state; per instance; its
  fast, then its slow moves), so the first occurrence of a new key names the
  parent `Search` would record and states get `Search`'s numbers: counts,
  depths, traces and coverage are the same;
* *judging* new states (`Levels.judge`): invariants and witnesses, through the
  `Judge`.

*Admitting* candidates against the store sits between the two
(`kernel.checker.packed.admit`). All three are functions of arrays, so they can
run on several processes: the coordinator that owns the store and orders the
chunks is `kernel.checker.workers.Coordinator`, and a `Worker` holds a `Levels`.

When it applies
---------------
`prepare_levels` returns None -- use `Search` -- for temporal properties (they need
the edge graph), ``max_states`` and ``max_depth`` (their exact cut points are
`Search`'s), a lone machine (its local states are its states: nothing to
decompose), a closure above ``limit`` local states or wider than 63 bits, user
code that raises while closing, and a determinism violation met while
closing (`Search` reports it with the state that first reached it). An
unexpected violation stops the engine with `FellBack`: the caller runs
`Search`, whose report, cut at the first violation, is the answer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from statewright.kernel.checker.judge import Judge
from statewright.kernel.checker.lane import SlowLane
from statewright.kernel.checker.local import LocalTable
from statewright.kernel.checker.options import Options
from statewright.kernel.checker.packed import PRUNED, U64, Keys, Packing
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.step import Rejected
from statewright.kernel.system import System, route_targets

__all__ = ["CHUNK", "LIMIT", "Expanded", "FellBack", "FastLane", "Levels", "close", "prepare_levels"]

CHUNK = 1 << 15
"""Frontier states expanded together: bounds the candidate arrays, and how often ``should_stop`` is polled."""
LIMIT = 1 << 12
"""Local states the closure may hold, over every table, before the engine declines."""


@dataclasses.dataclass(frozen=True, slots=True)
class Expanded:
    """Successors of frontier states ``first..``: ``candidates`` in `Search`'s order, ``per_state`` counts."""

    first: int
    candidates: Keys
    per_state: NDArray[np.int64]
    pruned: int


class FellBack(Exception):
    """The engine met something only `Search` reports exactly (an unexpected violation): run `Search`."""


def close(space: StateSpace, limit: int = LIMIT) -> bool:
    """Intern and expand every local state the search could meet; False if that is not possible here.

    Local steps under each table's input domain, and every input a route can
    deliver to every local state of its target, until nothing new appears.
    System guards are ignored, so this may visit local states the system
    never reaches; user code that raises on one of them, or a closure above
    ``limit`` local states, makes it give up (the search would judge those
    calls only if it met them).
    """
    system = space.system
    tables = space.distinct_tables
    expanded = {id(t): 0 for t in tables}
    routed: dict[int, list[Any]] = {id(t): [] for t in tables}
    delivered: dict[tuple[int, int], int] = {}
    try:
        changed = True
        while changed:
            changed = False
            for t in tables:
                while expanded[id(t)] < len(t.states):
                    a = expanded[id(t)]
                    if t.moves[a] is None:
                        t.expand(a)
                    expanded[id(t)] += 1
                    changed = True
                    if sum(len(u.states) for u in tables) > limit:
                        return False
            if system is None or not system.routes:
                continue
            for t in tables:
                for resolved in list(t.results.values()):
                    if isinstance(resolved, Rejected):
                        continue
                    for local in resolved:
                        for effect in local.effects:
                            route = system.routes_by_effect.get(type(effect))
                            if route is None:
                                continue
                            for name in t.instances:
                                for target, event in route_targets(route.to(effect, name)):
                                    inbox = routed[id(space.tables[system.position[target]])]
                                    if event not in inbox:
                                        inbox.append(event)
            for u in tables:
                for n, event in enumerate(routed[id(u)]):
                    start, stop = delivered.get((id(u), n), 0), len(u.states)
                    if start == stop:
                        continue
                    for b in range(start, stop):  # states interned meanwhile get theirs on the next pass
                        u.resolve(b, event)
                    delivered[(id(u), n)] = stop
                    changed = True
                    if sum(len(v.states) for v in tables) > limit:
                        return False
    except (DefinitionError, KeyError, TypeError, ValueError):
        return False
    except Exception:  # a route's user code raised on a local state the search may never meet
        return False
    return True


class FastLane:
    """One table's fast moves as flat arrays: ``next[offset[a]:offset[a + 1]]`` are local state ``a``'s."""

    def __init__(self, table: LocalTable) -> None:
        degrees = np.zeros(len(table.states), dtype=np.int64)
        slow = np.zeros(len(table.states), dtype=bool)
        targets: list[int] = []
        for a, moves in enumerate(table.moves):
            assert moves is not None  # the closure expanded every local state
            fast, slow_moves = moves
            degrees[a] = len(fast)
            slow[a] = bool(slow_moves)
            targets.extend(fast)
        self.degree = degrees
        self.offset = np.concatenate(([0], np.cumsum(degrees)))[:-1].astype(np.int64)
        self.next = np.array(targets, dtype=np.int64)
        self.slow = slow


class Levels:
    """The level engine's work on one chunk: expand frontier states, judge new ones (see the module docstring).

    ``cursor`` is the state being expanded and ``phase`` what is being done to
    it (0 slow lane, 1 deadlock): a worker tags findings with both.
    """

    def __init__(self, space: StateSpace, packing: Packing, judge: Judge) -> None:
        self.space = space
        self.packing = packing
        self.judge = judge
        self.lanes = [FastLane(t) for t in space.tables]
        self.slow = SlowLane(space, judge)
        self.masks = [~packing.field(k) & (2**64 - 1) for k in range(len(packing.shifts))]
        self.cursor = 0
        self.phase = 0

    def expand(self, first: int, keys: Keys) -> Expanded:
        """Every successor of states ``first..`` in `Search`'s order (pruned ones as `PRUNED`); deadlocks judged."""
        space, packing = self.space, self.packing
        m, n = keys.size, len(space.tables)
        ids = packing.unpack(keys)
        degree = np.empty((m, n), dtype=np.int64)
        slow_any = np.zeros(m, dtype=bool)
        for k, lane in enumerate(self.lanes):
            column = ids[:, k]
            degree[:, k] = lane.degree[column]
            slow_any |= lane.slow[column]
        made = np.zeros((m, n), dtype=np.int64)
        slow_keys: list[int] = []
        pruned = self.judge.pruned
        rows = np.flatnonzero(slow_any)
        if rows.size:
            self._slow_rows(first, keys, ids, rows, made, slow_keys)
            if any(len(t.states) != lane.degree.size for t, lane in zip(space.tables, self.lanes)):
                raise FellBack("a local state outside the closure")  # its id would not fit its field
        counts = degree + made
        per_state = counts.sum(axis=1)
        flat = counts.ravel()
        starts = (np.cumsum(flat) - flat).reshape(m, n)
        candidates = np.empty(int(per_state.sum()), dtype=U64)
        for k, lane in enumerate(self.lanes):
            d = degree[:, k]
            size = int(d.sum())
            if not size:
                continue
            within = np.arange(size, dtype=np.int64) - np.repeat(np.cumsum(d) - d, d)
            nxt = lane.next[np.repeat(lane.offset[ids[:, k]], d) + within]
            cleared = keys & U64(self.masks[k])
            candidates[np.repeat(starts[:, k], d) + within] = (
                np.repeat(cleared, d) | (nxt.astype(U64) << U64(packing.shifts[k]))
            )
        if slow_keys:  # in (state, instance) order, after that pair's fast moves
            lead = (starts + degree).ravel()
            sizes = made.ravel()
            within = np.arange(len(slow_keys), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            candidates[np.repeat(lead, sizes) + within] = np.array(slow_keys, dtype=U64)
        self.phase = 1
        for r in np.flatnonzero(per_state == 0).tolist():
            self.cursor = first + r
            self.judge.quiescent(first + r, tuple(ids[r].tolist()))
        self.phase = 0
        return Expanded(first, candidates, per_state, self.judge.pruned - pruned)

    def _slow_rows(
        self,
        first: int,
        keys: Keys,
        ids: NDArray[np.int64],
        rows: NDArray[np.int64],
        made: NDArray[np.int64],
        out: list[int],
    ) -> None:
        """The slow lane of the chunk's states ``rows``, in order, as packed candidates in ``out``; ``made`` counts them."""
        space, packing, lane = self.space, self.packing, self.slow
        all_moves = [t.moves for t in space.tables]
        shifts, masks = packing.shifts, self.masks
        pack = packing.pack
        pruned = int(PRUNED)
        for r, key_list, packed in zip(rows.tolist(), ids[rows].tolist(), keys[rows].tolist()):
            i = first + r
            self.cursor = i
            key = tuple(key_list)
            before = space.view(key)
            for k, a in enumerate(key):
                moves = all_moves[k][a]
                assert moves is not None
                slow = moves[1]
                if not slow:
                    continue
                entries = lane.run(i, key, k, slow, before)
                cleared, shift = packed & masks[k], shifts[k]
                for x in entries:
                    if isinstance(x, int):
                        out.append(cleared | (x << shift))
                    else:
                        out.append(pruned if x is None else pack(x))
                made[r, k] = len(entries)

    def judge_states(self, start: int, keys: Keys) -> None:
        """Invariants and witnesses on the new states ``start..`` (their packed ``keys``), in order."""
        if keys.size and self.judge.open:
            self.judge.states(start, [tuple(row) for row in self.packing.unpack(keys).tolist()])


def prepare_levels(spec: Spec, options: Options, limit: int = LIMIT) -> tuple[StateSpace, Packing] | None:
    """A closed space and its packing when the engine applies to ``spec`` searched with ``options``; None: use `Search`."""
    if spec.temporal or options.bounded:
        return None
    if not isinstance(spec.model, System):
        return None
    space = StateSpace(spec, symmetric=options.symmetry)
    if not close(space, limit):
        return None
    if any(t.ambiguous for t in space.distinct_tables):
        return None
    packing = Packing.of([len(t.states) for t in space.tables])
    if packing.bits > 63:
        return None
    return space, packing
