"""Level-synchronous search over packed keys: the compact, vectorised, partitionable engine.

Theory of operation
-------------------
`Search` keeps each state as a tuple key in a dict, about 220 bytes a state.
Once every local state of every instance is known in advance, a key fits in
one unsigned 64-bit integer: instance ``k``'s local id in ``widths[k]`` bits
at ``shifts[k]`` (`Packing`). Knowing them in advance is the *closure* of the
local tables (`close`): each instance's local steps from its initial states
under its input domain, plus every routed delivery, ignoring system guards --
a superset of what the search can reach, computed once. Then:

* the state store is three flat arrays -- the keys seen, sorted (membership
  by binary search), the keys in discovery order, and the parent numbers:
  24 bytes a state (`Store`);
* the fast lane is numpy: per instance, each frontier state's memoised next
  ids are gathered and spliced into the packed keys, with no Python per
  successor;
* a level is taken in chunks, in discovery order, and each chunk's
  successors are laid out in exactly the order `Search` generates them (per
  state; per instance; its fast, then its slow moves). The first occurrence
  of a new key therefore names the parent `Search` would record, and states
  get `Search`'s numbers: counts, depths, traces and coverage are the same.

What stays per state in Python is what runs user code: the slow lane (system
guards, routed effects, broken properties, constraints -- `Search`'s own
methods judge them) and the invariants and witnesses of each new state.

A chunk's work splits into *expanding* frontier states into candidate keys
and *admitting* candidates against the store; both are functions of arrays,
so the same steps can run on several processes, each owning the keys whose
hash falls in its partition (`adapters.runtime.workers`).

When it applies
---------------
`prepare` returns None -- use `Search` -- for temporal properties
(they need the edge graph), ``max_states`` and ``max_depth`` (their exact
cut points are `Search`'s), a lone machine (its local states are its states:
nothing to decompose), a closure above ``limit`` local states or wider than 63
bits, user code that raises while closing, and a determinism violation met
while closing (`Search` reports it with the state that first reached it). An
unexpected violation stops the engine with `FellBack`: the caller runs
`Search`, whose report, cut at the first violation, is the answer.
"""

from __future__ import annotations

import dataclasses
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from statewright.kernel.boundary import raised
from statewright.kernel.check.local import LocalTable, Move
from statewright.kernel.check.plan import Key, Plan
from statewright.kernel.check.report import Progress, Report, StopReason
from statewright.kernel.check.search import POLL, Search
from statewright.kernel.check.spec import Spec
from statewright.kernel.errors import DefinitionError, UserCodeError
from statewright.kernel.step import Rejected
from statewright.kernel.system import Emitted, System, _targets, guard_raised

__all__ = [
    "Expanded", "FellBack", "Finding", "Fired", "LevelSearch", "LevelWorker", "Packing", "PathTo", "StepTo", "Store",
    "add_fired", "admit", "close", "level_check", "prepare",
]

U64 = np.uint64
PRUNED = np.uint64(2**64 - 1)
"""A candidate a constraint left out: generated (and counted) but never admitted; no key is this wide."""
CHUNK = 1 << 15
"""Frontier states expanded together: bounds the candidate arrays, and how often ``should_stop`` is polled."""
LIMIT = 1 << 12
"""Local states the closure may hold, over every table, before the engine declines."""

Keys = NDArray[np.uint64]


@dataclasses.dataclass(frozen=True, slots=True)
class Expanded:
    """Successors of frontier states ``first..``: ``candidates`` in `Search`'s order, ``per_state`` counts."""

    first: int
    candidates: Keys
    per_state: NDArray[np.int64]
    pruned: int


class FellBack(Exception):
    """The engine met something only `Search` reports exactly (an unexpected violation): run `Search`."""


@dataclasses.dataclass(frozen=True, slots=True)
class Packing:
    """Where each instance's local id lives in a packed key.

    >>> p = Packing.of([7, 7, 300])
    >>> p.widths, p.shifts
    ((3, 3, 9), (0, 3, 6))
    >>> key = p.pack((5, 2, 299))
    >>> p.unpack(np.array([key], dtype=np.uint64)).tolist()
    [[5, 2, 299]]
    """

    widths: tuple[int, ...]
    shifts: tuple[int, ...]

    @classmethod
    def of(cls, sizes: Sequence[int]) -> Packing:
        """The narrowest packing for tables of these sizes (one per instance)."""
        widths = tuple(max(1, (n - 1).bit_length()) for n in sizes)
        shifts = tuple(sum(widths[:k]) for k in range(len(widths)))
        return cls(widths, shifts)

    @property
    def bits(self) -> int:
        return sum(self.widths)

    def pack(self, key: Key) -> int:
        out = 0
        for a, s in zip(key, self.shifts):
            out |= a << s
        return out

    def unpack(self, keys: Keys) -> NDArray[np.int64]:
        """One row of local ids per packed key."""
        out = np.empty((keys.size, len(self.widths)), dtype=np.int64)
        for k, (w, s) in enumerate(zip(self.widths, self.shifts)):
            out[:, k] = (keys >> U64(s)) & U64((1 << w) - 1)
        return out

    def field(self, k: int) -> int:
        """The mask of instance ``k``'s bits."""
        return ((1 << self.widths[k]) - 1) << self.shifts[k]


def close(plan: Plan, limit: int = LIMIT) -> bool:
    """Intern and expand every local state the search could meet; False if that is not possible here.

    Local steps under each table's input domain, and every input a route can
    deliver to every local state of its target, until nothing new appears.
    System guards are ignored, so this may visit local states the system
    never reaches; user code that raises on one of them, or a closure above
    ``limit`` local states, makes it give up (the search would judge those
    calls only if it met them).
    """
    system = plan.system
    tables = plan.distinct_tables
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
                                for target, event in _targets(route.to(effect, name)):
                                    inbox = routed[id(plan.tables[system.position[target]])]
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


class Store:
    """Every state found: sorted keys for membership, keys in discovery order, parent numbers.

    ``keys`` is a read-only sequence of key tuples, as `Plan.path` wants it.
    """

    def __init__(self, packing: Packing) -> None:
        self.packing = packing
        self.seen: Keys = np.empty(0, dtype=U64)
        self.chunks: list[Keys] = []
        self.starts: list[int] = []
        self.count = 0
        self.parents = array("q")

    def add(self, keys: Keys, parents: NDArray[np.int64]) -> int:
        """Append new states (already known to be new, in discovery order); the number of the first."""
        first = self.count
        if keys.size:
            self.chunks.append(keys)
            self.starts.append(first)
            self.count += int(keys.size)
            self.parents.frombytes(parents.astype(np.int64).tobytes())
            ordered = np.sort(keys)
            self.seen = np.insert(self.seen, np.searchsorted(self.seen, ordered), ordered)
        return first

    def fresh(self, candidates: Keys) -> NDArray[np.bool_]:
        """Which candidates are not in the store."""
        if not self.seen.size:
            return np.ones(candidates.size, dtype=bool)
        at = np.searchsorted(self.seen, candidates)
        np.minimum(at, self.seen.size - 1, out=at)
        return self.seen[at] != candidates  # type: ignore[no-any-return]

    def packed(self, i: int) -> int:
        c = bisect_right(self.starts, i) - 1
        return int(self.chunks[c][i - self.starts[c]])

    def between(self, start: int, stop: int) -> Keys:
        """The packed keys of states ``start..stop-1``."""
        parts = []
        c = max(bisect_right(self.starts, start) - 1, 0)
        while c < len(self.chunks) and self.starts[c] < stop:
            lo = max(start - self.starts[c], 0)
            hi = min(stop - self.starts[c], self.chunks[c].size)
            parts.append(self.chunks[c][lo:hi])
            c += 1
        return np.concatenate(parts) if parts else np.empty(0, dtype=U64)

    @property
    def nbytes(self) -> int:
        """Bytes the store holds (both key arrays and the parents)."""
        return int(self.seen.nbytes) + sum(int(c.nbytes) for c in self.chunks) + self.parents.itemsize * len(self.parents)


class StoredKeys(Sequence[Key]):
    """The store's keys as tuples, for `Plan.path` and the trace builders."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __len__(self) -> int:
        return self.store.count

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            raise TypeError("stored keys are read one at a time")
        if i < 0:
            i += self.store.count
        packed = self.store.packed(i)
        return tuple(int(a) for a in self.store.packing.unpack(np.array([packed], dtype=U64))[0])

    def __iter__(self) -> Iterator[Key]:
        for i in range(self.store.count):
            yield self[i]


class LevelSearch(Search):
    """`Search`'s breadth-first search, a level at a time over packed keys (see the module docstring)."""

    def __init__(self, spec: Spec, plan: Plan, packing: Packing, **options: Any) -> None:
        super().__init__(spec, plan=plan, **options)
        self.packing = packing
        self.store = Store(packing)
        self.keys = StoredKeys(self.store)  # type: ignore[assignment]
        self.lanes = [FastLane(t) for t in plan.tables]
        self.hit_counts = [np.zeros(len(t.states), dtype=np.int64) for t in plan.tables]
        self.progress_due = self.progress_every
        self.polled_at = 0

    # -- the run --------------------------------------------------------------------

    def run(self) -> Report:
        """Explore level by level until done or stopped, and report; `FellBack` on an unexpected violation."""
        try:
            frontier = self._start_levels()
            while frontier.size and not self.stop:
                frontier = self._level(frontier)
        except UserCodeError as err:
            raise err.within(spec=self.spec.name, trace=self._trace_to_cursor()) from err.original
        if self.stop is StopReason.VIOLATION:
            raise FellBack()
        return self._report()

    def _start_levels(self) -> Keys:
        """Admit the initial states, as `Search._start` does."""
        constraint = self.spec.bounds.constraint
        admitted: list[int] = []
        for key in self.plan.initials:
            if constraint is not None and not self._inside(key):
                self._judge_outside(key, None)
                self.pruned += 1
                continue
            admitted.append(self.packing.pack(key))
        keys = np.array(admitted, dtype=U64)
        self.store.add(keys, np.full(keys.size, -1, dtype=np.int64))
        self.level_end = self.store.count
        self._judge_keys(0, keys)
        return keys

    def _level(self, frontier: Keys) -> Keys:
        """Expand one whole level, chunk by chunk; the next level's keys."""
        first = self.store.count - frontier.size
        new: list[Keys] = []
        for lo in range(0, frontier.size, CHUNK):
            self.cursor = first + lo
            if self._poll_levels():
                break
            new.append(self._chunk(first + lo, frontier[lo : lo + CHUNK]))
            if self.stop:
                break
        else:
            self.cursor = self.store.count
        found = np.concatenate(new) if new else np.empty(0, dtype=U64)
        if found.size and not self.stop:
            self.depth += 1
            self.level_end = self.store.count
        return found

    def _chunk(self, first: int, keys: Keys) -> Keys:
        """Expand states ``first..`` (their packed ``keys``), admit their new successors and judge them."""
        self.count_hits(keys)
        expanded = self.expand(first, keys)
        new_keys, parents = self.admit(expanded)
        start = self.store.add(new_keys, parents)
        self.cursor = first + keys.size - 1
        self.judge(start, new_keys, parents)
        return new_keys

    def count_hits(self, keys: Keys) -> None:
        """Count each local state of each instance once per expanded state (the fast rows' coverage)."""
        ids = self.packing.unpack(keys)
        for k, lane in enumerate(self.lanes):
            self.hit_counts[k] += np.bincount(ids[:, k], minlength=lane.degree.size)

    def expand(self, first: int, keys: Keys) -> Expanded:
        """Every successor of states ``first..`` in `Search`'s order (pruned ones as `PRUNED`); deadlocks judged."""
        plan, packing = self.plan, self.packing
        m, n = keys.size, len(plan.tables)
        ids = packing.unpack(keys)
        degree = np.empty((m, n), dtype=np.int64)
        slow_any = np.zeros(m, dtype=bool)
        for k, lane in enumerate(self.lanes):
            column = ids[:, k]
            degree[:, k] = lane.degree[column]
            slow_any |= lane.slow[column]
        made = np.zeros((m, n), dtype=np.int64)
        slow_keys: list[int] = []
        pruned = self.pruned
        rows = np.flatnonzero(slow_any)
        if rows.size:
            self._slow_rows(first, keys, ids, rows, made, slow_keys)
            if any(len(t.states) != lane.degree.size for t, lane in zip(plan.tables, self.lanes)):
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
            cleared = keys & U64(~packing.field(k) & (2**64 - 1))
            candidates[np.repeat(starts[:, k], d) + within] = (
                np.repeat(cleared, d) | (nxt.astype(U64) << U64(packing.shifts[k]))
            )
        if slow_keys:  # in (state, instance) order, after that pair's fast moves
            lead = (starts + degree).ravel()
            sizes = made.ravel()
            within = np.arange(len(slow_keys), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            candidates[np.repeat(lead, sizes) + within] = np.array(slow_keys, dtype=U64)
        for r in np.flatnonzero(per_state == 0).tolist():
            self.cursor = first + r
            self._quiescent(first + r, tuple(ids[r].tolist()))
        return Expanded(first, candidates, per_state, self.pruned - pruned)

    def admit(self, expanded: Expanded) -> tuple[Keys, NDArray[np.int64]]:
        """The new states among ``expanded``'s successors, in discovery order, with their parents' numbers."""
        self.generated += int(expanded.candidates.size)
        new_keys, positions = admit(self.store, expanded.candidates)
        owner = np.repeat(np.arange(expanded.per_state.size, dtype=np.int64), expanded.per_state)
        return new_keys, expanded.first + owner[positions]

    def judge(self, start: int, keys: Keys, parents: NDArray[np.int64]) -> None:
        """Invariants and witnesses on the new states ``start..`` (``parents`` for the order of findings)."""
        self._judge_keys(start, keys)

    # -- the slow lane, per state -----------------------------------------------------

    def _slow_rows(
        self,
        first: int,
        keys: Keys,
        ids: NDArray[np.int64],
        rows: NDArray[np.int64],
        made: NDArray[np.int64],
        out: list[int],
    ) -> None:
        """Run the slow moves of the chunk's states ``rows``, in order, into candidates ``out``; ``made`` counts them."""
        plan, packing = self.plan, self.packing
        all_moves = [t.moves for t in plan.tables]
        shifts = packing.shifts
        masks = [~packing.field(k) & (2**64 - 1) for k in range(len(shifts))]
        listed = ids[rows].tolist()
        packed_rows = keys[rows].tolist()
        for r, key_list, packed in zip(rows.tolist(), listed, packed_rows):
            i = first + r
            self.cursor = i
            key = tuple(key_list)
            before = plan.view(key)
            for k, a in enumerate(key):
                moves = all_moves[k][a]
                assert moves is not None
                slow = moves[1]
                if not slow:
                    continue
                j0 = len(out)
                self._slow_packed(i, key, packed & masks[k], k, shifts[k], slow, before, out)
                made[r, k] = len(out) - j0

    def _slow_packed(
        self, i: int, key: Key, cleared: int, k: int, shift: int, slow: tuple[Move, ...], before: Any, out: list[int]
    ) -> None:
        """`Search._slow` for one (state, instance), producing packed candidates (`PRUNED` for pruned ones)."""
        plan = self.plan
        wrap = plan.system is not None and plan.all_slow
        watched = bool(plan.global_transitions)
        special = watched or plan.constraint is not None or plan.action_constraint is not None or plan.symmetry is not None
        for move in slow:
            event = move.input
            if move.routed:
                for nk, effects, flags, _rule in plan.take(key, k, move, before):
                    out.append(self._candidate(i, k, event, nk, self.packing.pack(nk), effects, flags, before))
                continue
            if move.gates:  # `Plan.allows`, inline as in `Search._slow`: this is the workers' hot path
                g = None
                try:
                    for g in move.gates:
                        if not g.test(before, k, event):
                            break
                    else:
                        g = None
                except Exception as exc:
                    assert plan.system is not None and g is not None
                    guard_raised(exc, plan.system, g, before, k, event)
                if g is not None:
                    continue
            local = move.local
            move.count += 1
            packed = cleared | (local.next << shift)
            if not (local.flags or special):
                out.append(packed)
                continue
            nk = key[:k] + (local.next,) + key[k + 1 :]
            effects = local.effects
            if wrap or (local.flags and plan.system is not None):
                effects = tuple(Emitted(plan.names[k], e) for e in effects)
            out.append(self._candidate(i, k, event, nk, packed, effects, local.flags, before))

    def _candidate(
        self, i: int, k: int, event: Any, nk: Key, packed: int, effects: tuple[Any, ...], flags: tuple[str, ...],
        before: Any,
    ) -> int:
        """Judge one slow step as `Search._successor` does; its packed key, or `PRUNED`."""
        plan = self.plan
        if flags or plan.global_transitions:
            self._action_properties(i, k, event, nk, effects, flags, before)
        if plan.action_constraint is not None and not self._action_inside(before, k, event, nk):
            self._judge_outside(nk, (i, k, event, effects))
            self.pruned += 1
            return int(PRUNED)
        if plan.constraint is not None:
            # a state already found passed the constraint when it was admitted, so judging every
            # candidate decides as `Search._admit` (which skips known ones) does
            try:
                inside = self._inside(nk)
            except UserCodeError as err:
                raise err.within(trace=tuple(self._edge(i, k, event, nk, effects))) from err.original
            if not inside:
                self._judge_outside(nk, (i, k, event, effects))
                self.pruned += 1
                return int(PRUNED)
        if plan.symmetry is not None:  # judged as taken; stored as its class's representative
            return self.packing.pack(plan.symmetry.canonical(nk))
        return packed

    # -- judging, polling, reporting --------------------------------------------------

    def _judge_keys(self, start: int, keys: Keys) -> None:
        """Invariants and witnesses on new states ``start..`` in discovery order (`Search._judge`)."""
        if not (self.invariants or self.witnesses) or not keys.size:
            return
        plan = self.plan
        rows = self.packing.unpack(keys).tolist()
        name, test = "", None
        for j, row in enumerate(rows, start):
            s = plan.view(tuple(row))
            if self.probes:
                self._probe(tuple(row), s)
            try:
                for name, test in self.invariants:
                    if not test(s):
                        self._found(name, self._path(j))
                        self.invariants = [p for p in self.invariants if p[0] != name]
                for name, test in self.witnesses:
                    if test(s):
                        self.witnessed[name] = self._path(j)
                        self.witnesses = [w for w in self.witnesses if w[0] != name]
            except Exception as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=s,
                       trace=tuple(self._path(j)))
            if self.stop or not (self.invariants or self.witnesses):
                return

    @property
    def parents(self) -> array[int]:
        return self.store.parents

    @parents.setter
    def parents(self, value: Any) -> None:
        """`Search.__init__` sets an empty array; the store owns the real one."""

    def _poll_levels(self) -> bool:
        """Between chunks, once 1,024 more states are expanded: the time limit, ``should_stop`` and progress."""
        if self.cursor - self.polled_at <= POLL:
            return False
        self.polled_at = self.cursor
        now = self.clock() - self.started if self.clock is not None else 0.0
        limit = self.spec.bounds.time_limit
        if limit is not None and now > limit:
            self.stop = StopReason.TIME_LIMIT
            return True
        if self.should_stop is not None:
            self.stop = self.should_stop()
            if self.stop is not None:
                return True
        count = self.store.count
        if self.progress is not None and count >= self.progress_due:
            self.progress_due = count + self.progress_every
            self.progress(Progress(count, self.generated, self.depth, count - self.cursor, now))
        return False

    def _hits(self) -> dict[int, Any]:
        hits: dict[int, dict[int, int]] = {}
        for t, counts in zip(self.plan.tables, self.hit_counts):
            mine = hits.setdefault(id(t), {})
            for a in np.flatnonzero(counts).tolist():
                mine[a] = mine.get(a, 0) + int(counts[a])
        return hits


def admit(store: Store, candidates: Keys) -> tuple[Keys, NDArray[np.int64]]:
    """The candidates new to ``store``, each once, in order of first occurrence, with that occurrence's position.

    ``candidates`` are in generation order, so the first occurrence of a key
    is where a sequential search would have found it.

    >>> s = Store(Packing.of([8]))
    >>> _ = s.add(np.array([3], dtype=np.uint64), np.array([-1]))
    >>> keys, at = admit(s, np.array([5, 3, 1, 5, PRUNED], dtype=np.uint64))
    >>> keys.tolist(), at.tolist()
    ([5, 1], [0, 2])
    """
    positions = np.flatnonzero(candidates != PRUNED)
    kept = candidates[positions]
    fresh = store.fresh(kept)
    kept, positions = kept[fresh], positions[fresh]
    unique, first = np.unique(kept, return_index=True)
    order = np.argsort(first, kind="stable")
    return unique[order], positions[first[order]]


def prepare(spec: Spec, limit: int = LIMIT, *, symmetry: bool = False) -> tuple[Plan, Packing] | None:
    """A closed plan and its packing when the engine applies to ``spec``; None: use `Search`."""
    bounds = spec.bounds
    if spec.temporal or bounds.max_states is not None or bounds.max_depth is not None:
        return None
    if not isinstance(spec.model, System):
        return None
    plan = Plan(spec, symmetric=symmetry)
    if not close(plan, limit):
        return None
    if any(t.ambiguous for t in plan.distinct_tables):
        return None
    packing = Packing.of([len(t.states) for t in plan.tables])
    if packing.bits > 63:
        return None
    return plan, packing


def level_check(spec: Spec, **options: Any) -> Report | None:
    """Check ``spec`` with the level engine when it applies; None when `Search` must (see the module docstring)."""
    planned = prepare(spec, symmetry=options.get("symmetry", False))
    if planned is None:
        return None
    try:
        return LevelSearch(spec, *planned, **options).run()
    except FellBack:
        return None


# -- the same steps on several processes ---------------------------------------------------


class StepTo:
    """Stands for the last step of a finding's trace made in a worker: a key, not a state.

    System states are views of a class made per `System`, which cannot cross
    a process boundary; the key, the action and the effects can.
    """

    __slots__ = ("effects", "event", "key", "position")

    def __init__(self, position: int, event: Any, key: Key, effects: tuple[Any, ...]) -> None:
        self.position = position
        self.event = event
        self.key = key
        self.effects = effects


class PathTo:
    """Stands for the shortest trace to state ``index`` in a finding made where the store is not.

    A worker holds no store, so the traces of its findings start with this
    marker; the coordinator, which has every parent link, replaces it.
    """

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"PathTo({self.index})"


Order = tuple[int, int, int]
"""Where a finding falls in `Search`'s order: (expanded state, 0 slow lane / 1 deadlock / 2 judging, then sequence)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One violation (or witness) a worker found, with its place in `Search`'s order."""

    order: Order
    name: str
    trace: tuple[Any, ...]
    detail: str | None = None
    witness: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Fired:
    """What a worker's tables counted: slow moves, per table, local state and move; routed rows and effects."""

    moves: tuple[tuple[tuple[int, int, int], ...], ...]
    routed: tuple[dict[int, int], ...]
    emitted: tuple[dict[int, dict[str, None]], ...]


class LevelWorker(LevelSearch):
    """The expand and judge steps of `LevelSearch` as jobs on arrays, for a process that holds no store.

    It runs on a copy of the coordinator's closed plan (so local ids agree),
    never stops on a finding (``keep_going``: the coordinator decides), and
    returns each job's findings with their `Order` and `PathTo` markers.
    """

    def __init__(self, spec: Spec, plan: Plan, packing: Packing) -> None:
        super().__init__(spec, plan, packing, keep_going=True)
        for t in plan.distinct_tables:  # counts inherited from the coordinator are already its own
            t.routed_fired.clear()
            t.routed_emitted.clear()
            for moves in t.moves:
                for m in moves[1] if moves is not None else ():
                    m.count = 0
        self.all_invariants = list(self.invariants)
        self.all_witnesses = list(self.witnesses)
        self.found: list[Finding] = []
        self.phase = 0
        self.sequence = 0
        self.judged_from: tuple[int, NDArray[np.int64]] = (0, np.empty(0, dtype=np.int64))

    def _fresh_job(self, phase: int) -> None:
        self.found = []
        self.violations = {}
        self.details = {}
        self.witnessed = {}
        self.invariants = list(self.all_invariants)
        self.witnesses = list(self.all_witnesses)
        self.phase = phase
        self.sequence = 0

    def expand_job(self, first: int, keys: Keys) -> tuple[Expanded, list[Finding]]:
        """`LevelSearch.expand` of states ``first..``, and what it found."""
        self._fresh_job(0)
        expanded = self.expand(first, keys)
        return expanded, self.found

    def judge_job(self, start: int, keys: Keys, parents: NDArray[np.int64]) -> list[Finding]:
        """`LevelSearch.judge` of new states ``start..`` found from ``parents``, and what it found."""
        self._fresh_job(2)
        self.judged_from = (start, parents)
        self._judge_keys(start, keys)
        for name, trace in self.witnessed.items():
            self.found.append(Finding(self._judged_order(trace), name, tuple(trace), None, True))
        return self.found

    def fired(self) -> Fired:
        """The counts the coordinator adds to its own tables before it reports coverage."""
        tables = self.plan.distinct_tables
        moves = tuple(
            tuple((a, j, m.count) for a, ms in enumerate(t.moves) if ms is not None for j, m in enumerate(ms[1]) if m.count)
            for t in tables
        )
        return Fired(moves, tuple(dict(t.routed_fired) for t in tables),
                     tuple({r: dict(n) for r, n in t.routed_emitted.items()} for t in tables))

    def _path(self, i: int) -> list[Any]:
        return [PathTo(i)]

    def _edge(self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[Any]:
        return [PathTo(i), StepTo(k, event, nk, effects)]

    def _judged_order(self, trace: Sequence[Any]) -> Order:
        j = trace[0].index
        start, parents = self.judged_from
        return (int(parents[j - start]), 2, j)

    def _quiescent(self, i: int, key: Key) -> None:
        self.phase = 1
        super()._quiescent(i, key)
        self.phase = 0

    def _found(self, name: str, trace: list[Any], detail: str | None = None) -> None:
        if name in self.violations:
            return
        self.violations[name] = trace
        if self.phase == 2:
            order = self._judged_order(trace)
        else:
            order = (self.cursor, self.phase, self.sequence)
            self.sequence += 1
        self.found.append(Finding(order, name, tuple(trace), detail))


def add_fired(plan: Plan, fired: Fired) -> None:
    """Add a worker's counts (`LevelWorker.fired`) to ``plan``'s tables."""
    for t, moves, routed, emitted in zip(plan.distinct_tables, fired.moves, fired.routed, fired.emitted):
        for a, j, count in moves:
            slot = t.moves[a]
            assert slot is not None
            slot[1][j].count += count
        for rule, count in routed.items():
            t.routed_fired[rule] = t.routed_fired.get(rule, 0) + count
        for rule, names in emitted.items():
            t.routed_emitted.setdefault(rule, {}).update(names)
