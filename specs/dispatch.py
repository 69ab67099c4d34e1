"""Dispatch: the dispatcher's protocol (DISPATCH.md) -- cursor, lease, handlers, retries, crashes -- as one machine.

A log of committed effects on two keys (``log``: the key of each position,
``"aba"`` by default), one partition with a durable cursor and a lease, and
two dispatcher processes. Key ``a``'s effects go to a *plain*
handler (its side effect is counted per effect: at least once), key ``b``'s
to a *transactional* one (its ops commit in one batch with a batch id, and
with the cursor's advance when the effect is next in line: exactly once).

Theory of operation
-------------------
Durable (survives a crash): ``cursor`` (every position at or below it is
done), the lease ``owner`` (a process, or None when free), ``calls`` (per
position: plain side effects, or transactional ops applied), ``batches``
(batch ids committed) and ``dead`` (dead-lettered positions). In memory, per
process (lost on a crash): the cursor value it read, the positions it has
done above it, and the failed attempts on each key's current effect. The
steps, one row each:

* ``Take(p)`` -- a free lease is taken by an idle process, which reads the cursor;
* ``Handle(p, key)`` -- the handler runs on that key's next effect above what
  ``p`` has done (per key in log order, one at a time; keys interleave). It
  succeeds or fails (a choice). Plain success: one more side effect. Transactional
  success: one batch -- the ops unless the batch id is already taken, and
  ``Advance`` when the effect is next in line, compare-and-swap from the value
  read by the lease holder; if that fails the whole batch fails and ``p``
  drops its memory. A failure counts an attempt; the ``attempts``-th
  dead-letters the effect (a durable record) and the key goes on;
* ``Advance(p)`` -- the cursor moves to the highest position below which ``p``
  has done everything (compare-and-swap, by the lease holder; a process that
  fails it drops its memory);
* ``Crash(p)`` -- at any point: memory lost;
* ``Expire()`` -- the lease runs out under a live owner (the owner goes on,
  a zombie, until it notices); crashes and early expiries are *faults*, at
  most ``faults`` of them in a run;
* ``Lapse()`` -- the lease of a crashed owner runs out; ``Renew(p)`` -- a
  zombie finds its lease gone and drops its memory.

Fairness: weak fairness of ``Take``, ``Handle``, ``Advance``, ``Lapse`` and
``Renew`` (the live processes keep going); crashes and early expiries are
never forced. What holds (defaults: log ``aba``, 2 attempts, 1 fault --
8,730 distinct states, depth 17): ``no_loss`` (the cursor never passes an effect that was neither
handled nor dead-lettered), ``at_most_once`` (a transactional effect's ops
apply at most once), ``per_key_order`` (a handler for ``(k, seq)`` runs only
after ``(k, seq - 1)`` was handled or dead-lettered), and, under the
fairness, ``every_effect_done``, ``cursor_reaches_the_end``,
``exactly_once`` (transactional: applied once, or dead-lettered) and
``at_least_once`` (plain). ``plain_twice`` witnesses that plain handlers do
see an effect twice, ``dead_lettered`` that retries run out.

Seeded bugs: ``--set advance_first=true`` advances the cursor over each key's
next effect before its handler commits (auto-commit): ``no_loss`` fails by a
3-state trace (take, advance); after a fault the skipped effects are never
handled -- ``every_effect_done``, ``exactly_once`` and ``at_least_once`` fail
by a 7-state lasso (take, handle a1, advance to 3, crash, lapse, take), which
also ends in a ``deadlock`` (a stop that is not final), and ``per_key_order``
by 6 states (after an expiry the other process handles a2 though a1 was
never handled). 10,655 states, depth 17. ``--set dedupe=false`` drops the
batch-id check: ``at_most_once`` fails by a 6-state trace (take; handle b1
while a1 is pending, so no advance; the lease expires; the other process
takes it and handles b1 again). 8,922 states, depth 17.

>>> from statewright.kernel.checker import check
>>> report = check(dispatch(log="ab"))  # the defaults ("aba") take about 1.7 s: tests/specs/test_dispatch_spec.py
>>> report.verdict.name, report.distinct_states, report.depth
('OK', 1208, 13)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from statewright.kernel.checker import Spec, always, always_step, eventually, sometimes, weak_fair
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.specs.registry import REGISTRY

__all__ = [
    "Advance", "Crash", "Dispatch", "Expire", "Handle", "Lapse", "Memory", "Renew", "Take", "dispatch",
    "dispatch_machine",
]

PLAIN, TRANSACTIONAL = "a", "b"
KEYS = (PLAIN, TRANSACTIONAL)
PROCESSES = (0, 1)


class Dispatching(Enum):
    """The protocol has no lifecycle of its own: one phase, all data."""

    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class Memory:
    """One process's in-memory progress: the cursor it read, what it did above it, failed attempts per key.

    ``read`` is the cursor's value as this process last read or wrote it (what its
    compare-and-swap expects); ``start`` is where its own work begins -- the same,
    except when the cursor is advanced before the handlers commit (``advance_first``).
    """

    read: int
    start: int
    done: frozenset[int] = frozenset()
    tries: tuple[int, ...] = (0, 0)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The log (the key of positions 1..N), the durable store, and each process's memory."""

    log: tuple[str, ...]
    cursor: int = 0
    owner: int | None = None
    memory: tuple[Memory | None, ...] = (None, None)
    calls: tuple[int, ...] = ()
    batches: frozenset[int] = frozenset()
    dead: frozenset[int] = frozenset()
    faults: int = 0
    phase: Dispatching = Dispatching.RUNNING

    def done(self, position: int) -> bool:
        """Handled (a side effect, or ops applied) or dead-lettered."""
        return self.calls[position - 1] > 0 or position in self.dead


@dataclass(frozen=True, slots=True)
class Take:
    process: int


@dataclass(frozen=True, slots=True)
class Handle:
    process: int
    key: str


@dataclass(frozen=True, slots=True)
class Advance:
    process: int


@dataclass(frozen=True, slots=True)
class Crash:
    process: int


@dataclass(frozen=True, slots=True)
class Expire:
    pass


@dataclass(frozen=True, slots=True)
class Lapse:
    pass


@dataclass(frozen=True, slots=True)
class Renew:
    process: int


def next_of(s: Dispatch, m: Memory, key: str) -> int | None:
    """The position of ``key``'s next effect above what ``m`` has done (None: none left)."""
    for p in range(m.start + 1, len(s.log) + 1):
        if s.log[p - 1] == key and p not in m.done:
            return p
    return None


def previous_of(s: Dispatch, position: int) -> int | None:
    """The position of the same key's effect before ``position`` (None: it is the key's first)."""
    key = s.log[position - 1]
    return next((p for p in range(position - 1, 0, -1) if s.log[p - 1] == key), None)


def prefix(read: int, done: frozenset[int]) -> int:
    """The highest position below which, above ``read``, everything is in ``done``."""
    top = read
    while top + 1 in done:
        top += 1
    return top


def _moved(m: Memory, top: int) -> Memory:
    return replace(m, read=top, start=top, done=frozenset(p for p in m.done if p > top))


def _handling(s: Dispatch, i: Handle) -> int | None:
    m = s.memory[i.process]
    return None if m is None else next_of(s, m, i.key)


def _set(values: tuple[Any, ...], at: int, value: Any) -> tuple[Any, ...]:
    return values[:at] + (value,) + values[at + 1:]


class Protocol:
    """The rows' callables for one setting of the knobs (kept apart so each row stays a plain function)."""

    def __init__(self, log: str, attempts: int, faults: int, dedupe: bool, advance_first: bool) -> None:
        self.log, self.attempts, self.faults = tuple(log), attempts, faults
        self.dedupe, self.advance_first = dedupe, advance_first

    def take(self, s: Dispatch, i: Take) -> Dispatch:
        return replace(s, owner=i.process, memory=_set(s.memory, i.process, Memory(s.cursor, s.cursor)))

    def handle(self, s: Dispatch, i: Handle, ok: bool) -> Dispatch:
        m = s.memory[i.process]
        p = _handling(s, i)
        assert m is not None and p is not None
        k = KEYS.index(i.key)
        if not ok:
            tries = m.tries[k] + 1
            if tries < self.attempts:
                return replace(s, memory=_set(s.memory, i.process, replace(m, tries=_set(m.tries, k, tries))))
            m = replace(m, done=m.done | {p}, tries=_set(m.tries, k, 0))  # the last attempt: dead-letter it
            return replace(s, dead=s.dead | {p}, memory=_set(s.memory, i.process, m))
        m = replace(m, done=m.done | {p}, tries=_set(m.tries, k, 0))
        if i.key == PLAIN:
            return replace(s, calls=_set(s.calls, p - 1, s.calls[p - 1] + 1), memory=_set(s.memory, i.process, m))
        top = prefix(m.start, m.done)
        if top > m.read and not self.advance_first:  # next in line: the batch carries the Advance (all or nothing)
            if s.owner != i.process or s.cursor != m.read:
                return replace(s, memory=_set(s.memory, i.process, None))
            s = replace(s, cursor=top)
            m = _moved(m, top)
        applied = self.dedupe and p in s.batches
        calls = s.calls if applied else _set(s.calls, p - 1, s.calls[p - 1] + 1)
        return replace(s, calls=calls, batches=s.batches | {p}, memory=_set(s.memory, i.process, m))

    def outcomes(self, s: Dispatch, i: Handle) -> tuple[bool, ...]:
        return (True, False) if _handling(s, i) is not None else ()

    def target(self, s: Dispatch, process: int) -> int:
        """Where ``process`` would advance the cursor to."""
        m = s.memory[process]
        assert m is not None
        done = m.done
        if self.advance_first:  # the bug: each key's next effect counts as done before its handler commits
            done = done | {p for k in KEYS if (p := next_of(s, m, k)) is not None}
        return prefix(m.start, done)

    def can_advance(self, s: Dispatch, i: Advance) -> bool:
        m = s.memory[i.process]
        return m is not None and self.target(s, i.process) > m.read

    def advance(self, s: Dispatch, i: Advance) -> Dispatch:
        m = s.memory[i.process]
        assert m is not None
        if s.owner != i.process or s.cursor != m.read:
            return replace(s, memory=_set(s.memory, i.process, None))
        top = self.target(s, i.process)
        moved = replace(m, read=top) if self.advance_first else _moved(m, top)  # the bug keeps its work in memory
        return replace(s, cursor=top, memory=_set(s.memory, i.process, moved))

    def machine(self) -> Machine[Dispatch]:
        r = Dispatching.RUNNING
        return Machine(
            "dispatch_protocol",
            initial=Dispatch(self.log, calls=(0,) * len(self.log)),
            transitions=[
                Transition(r, Take, r, guard=Guard("lease_free_and_idle",
                                                   lambda s, i: s.owner is None and s.memory[i.process] is None),
                           update=self.take),
                Transition(r, Handle, r, guard=Guard("has_memory", lambda s, i: s.memory[i.process] is not None),
                           choose=self.outcomes, update=self.handle),
                Transition(r, Advance, r, guard=Guard("something_done", self.can_advance), update=self.advance),
                Transition(r, Crash, r, guard=Guard("may_crash", lambda s, i: s.memory[i.process] is not None
                                                    and s.faults < self.faults),
                           update=lambda s, i: replace(s, memory=_set(s.memory, i.process, None),
                                                       faults=s.faults + 1)),
                Transition(r, Expire, r, guard=Guard("owner_alive", lambda s, _: s.owner is not None
                                                     and s.memory[s.owner] is not None
                                                     and s.faults < self.faults),
                           update=lambda s, _: replace(s, owner=None, faults=s.faults + 1)),
                Transition(r, Lapse, r, guard=Guard("owner_dead", lambda s, _: s.owner is not None
                                                    and s.memory[s.owner] is None),
                           update=lambda s, _: replace(s, owner=None)),
                Transition(r, Renew, r, guard=Guard("lease_lost", lambda s, i: s.memory[i.process] is not None
                                                    and s.owner != i.process),
                           update=lambda s, i: replace(s, memory=_set(s.memory, i.process, None))),
            ],
            doc="The dispatcher's protocol: a log on two keys, a cursor, a lease, two processes that crash.",
        )


INPUTS: list[Any] = [*(Take(p) for p in PROCESSES), *(Handle(p, k) for p in PROCESSES for k in KEYS),
                     *(Advance(p) for p in PROCESSES), *(Crash(p) for p in PROCESSES), Expire(), Lapse(),
                     *(Renew(p) for p in PROCESSES)]


def dispatch_machine(log: str = "aba", attempts: int = 2, faults: int = 1, dedupe: bool = True,
                     advance_first: bool = False) -> Machine[Dispatch]:
    """The protocol's machine for one setting of the knobs (``log``: the key of each position)."""
    if not log or set(log) - set(KEYS):
        raise DefinitionError(f"log={log!r}: a string of keys {' and '.join(KEYS)}, e.g. 'aba'")
    return Protocol(log, attempts, faults, dedupe, advance_first).machine()


def _positions(s: Dispatch, key: str) -> Iterator[int]:
    return (p for p in range(1, len(s.log) + 1) if s.log[p - 1] == key)


def per_key_order(before: Dispatch, i: Any, _after: Dispatch) -> bool:
    """A handler for ``(k, seq)`` runs only after ``(k, seq - 1)`` was handled or dead-lettered."""
    if not isinstance(i, Handle):
        return True
    p = _handling(before, i)
    prior = None if p is None else previous_of(before, p)
    return prior is None or before.done(prior)


def _properties() -> list[Any]:
    every: Callable[[Dispatch], bool] = lambda s: all(s.done(p) for p in range(1, len(s.log) + 1))
    return [
        always("no_loss", lambda s: all(s.done(p) for p in range(1, s.cursor + 1))),
        always("at_most_once", lambda s: all(s.calls[p - 1] <= 1 for p in _positions(s, TRANSACTIONAL))),
        always_step("per_key_order", per_key_order),
        eventually("every_effect_done", every),
        eventually("cursor_reaches_the_end", lambda s: s.cursor == len(s.log)),
        eventually("exactly_once", lambda s: all(s.calls[p - 1] == 1 or p in s.dead
                                                 for p in _positions(s, TRANSACTIONAL))),
        eventually("at_least_once", lambda s: all(s.done(p) for p in _positions(s, PLAIN))),
        sometimes("plain_twice", lambda s: any(s.calls[p - 1] >= 2 for p in _positions(s, PLAIN))),
        sometimes("dead_lettered", lambda s: bool(s.dead)),
    ]


@REGISTRY.spec
def dispatch(log: str = "aba", attempts: int = 2, faults: int = 1, dedupe: bool = True,
             advance_first: bool = False) -> Spec:
    """The dispatcher's protocol: nothing lost, transactional once, per-key order; advance_first, dedupe=false break it."""
    expect: dict[str, int] = {}
    if advance_first:  # lost for good after a fault: never handled, and the run stops short of final
        expect.update(no_loss=3, per_key_order=6, every_effect_done=7, exactly_once=7, at_least_once=7, deadlock=7)
    if not dedupe:
        expect.update(at_most_once=6)
    return Spec(
        "dispatch",
        dispatch_machine(log, attempts, faults, dedupe, advance_first),
        inputs=INPUTS,
        properties=_properties(),
        final=lambda s: s.cursor == len(s.log) and all(s.done(p) for p in range(1, len(s.log) + 1)),
        fairness=[weak_fair(Take), weak_fair(Handle), weak_fair(Advance), weak_fair(Lapse), weak_fair(Renew)],
        expect=expect,
        doc=__doc__ or "",
    )
