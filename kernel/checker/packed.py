"""The packed state store: a system state in one unsigned 64-bit integer, 24 bytes a state.

Once every local state of every instance is known in advance (the closure
of `kernel.checker.levels`), a key fits in one ``uint64``: instance ``k``'s
local id in ``widths[k]`` bits at ``shifts[k]`` (`Packing`). The `PackedStore`
keeps three flat arrays -- the keys seen, sorted (membership by binary
search), the keys in discovery order, and the parent numbers -- where
`Search`'s dict of tuples costs about 220 bytes a state. `admit` finds the
new keys among a chunk's candidates, each once, in order of first occurrence:
a function of a store and an array, so it can run wherever the store is.
"""

from __future__ import annotations

import dataclasses
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from statewright.kernel.checker.local import Key

__all__ = ["PRUNED", "U64", "Keys", "Packing", "PackedStore", "StoredKeys", "admit"]

U64 = np.uint64
PRUNED = np.uint64(2**64 - 1)
"""A candidate a constraint left out: generated (and counted) but never admitted; no key is this wide."""

Keys = NDArray[np.uint64]


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


class PackedStore:
    """Every state found: sorted keys for membership, keys in discovery order, parent numbers.

    ``keys`` is a read-only sequence of key tuples, as `StateSpace.path` wants it.
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
    """The store's keys as tuples, for `StateSpace.path` and the trace builders."""

    def __init__(self, store: PackedStore) -> None:
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


def admit(store: PackedStore, candidates: Keys) -> tuple[Keys, NDArray[np.int64]]:
    """The candidates new to ``store``, each once, in order of first occurrence, with that occurrence's position.

    ``candidates`` are in generation order, so the first occurrence of a key
    is where a sequential search would have found it.

    >>> s = PackedStore(Packing.of([8]))
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
