"""`simulate(spec, behaviours=N, seed=S) -> Simulation`: random behaviours for state spaces too big to exhaust.

Theory of operation
-------------------
TLC's ``-simulate`` mode, on the checker's own `StateSpace`. A behaviour starts in
an initial state drawn uniformly from the spec's initial states and takes up
to ``depth`` steps, each to a successor drawn uniformly from *all* successors
of the state it is in, enumerated in the space's deterministic order. So a run
is a function of the spec, ``behaviours``, ``depth`` and ``seed``: the same
seed replays the same behaviours.

Along the way it judges what a single behaviour can refute: ``always``
invariants on every state visited (once per distinct state -- a pure test of
the same state cannot change its mind), ``transition`` properties on every
step taken (per-instance ones arrive as the local tables' flags, global ones
are tested on ``(before, action, after)``), ``deadlock`` where a behaviour
is stuck in a non-final state, ``determinism`` and ``terminal_precedence``
as the local tables resolve the steps it meets. A ``sometimes`` property
holds once a behaviour visits a witness. Temporal properties are judged on the
whole state graph, which a simulation never has: they stay UNKNOWN, and so
does every claim no behaviour refuted -- a run without a violation is
``BOUNDED``, never ``OK``. What is judged, and how, is the `Judge`'s that
`check` uses too (`kernel.checker.judge`); every finding's trace is the
behaviour under way. The spec's constraint and action constraint are
part of the model, as in `check`: a successor outside them is judged (its
step and its state) and then left out of the draw.

The kernel draws no randomness and reads no clock: the seed is the caller's
(the command line draws one when none is given, and prints it), `Dice` turns
it into draws with integer arithmetic alone -- the same on every platform and
Python version -- and time comes in through an optional ``clock``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statewright.kernel.checker.judge import Judge
from statewright.kernel.checker.local import Key, Move
from statewright.kernel.checker.options import Options
from statewright.kernel.checker.properties import BUILTIN, Kind
from statewright.kernel.checker.report import (
    PropertyResult,
    Status,
    StopReason,
    Verdict,
)
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.checker.watch import Watch
from statewright.kernel.errors import UserCodeError
from statewright.kernel.step import Rejected
from statewright.kernel.trace import TraceStep

__all__ = ["Dice", "Simulation", "simulate"]

SPAN = 1 << 64
MASK = SPAN - 1

Successor = tuple[int, Any, Key, tuple[Any, ...], tuple[str, ...]]
"""One step out of a state: instance position, input, next key, effects, broken per-instance properties."""
Menu = tuple[tuple[Move, ...], tuple[Move, ...]]
"""A local state's moves: *free* ones (no system guard, nothing routed: one successor each, no user code)
and the others, which `StateSpace.take` settles (zero or more successors)."""


class Dice:
    """Seeded pseudo-random draws (splitmix64): plain integer arithmetic, so runs reproduce anywhere.

    >>> a, b = Dice(7), Dice(7)
    >>> [a.below(6) for _ in range(20)] == [b.below(6) for _ in range(20)]
    True
    >>> sorted({a.below(3) for _ in range(100)})
    [0, 1, 2]
    """

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & MASK

    def _next(self) -> int:
        """The next 64-bit output (splitmix64: a Weyl sequence, then two xor-shift-multiply rounds)."""
        z = self._state = (self._state + 0x9E3779B97F4A7C15) & MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A uniform draw from ``range(n)``, ``n >= 1``: rejection sampling, so no value is favoured."""
        if n == 1:
            return 0
        limit = SPAN - SPAN % n
        while True:
            x = self._next()
            if x < limit:
                return x % n


@dataclass(frozen=True, slots=True)
class Simulation:
    """What a random simulation found.

    ``behaviours`` were run (the last one cut short where a violation stopped
    the run), taking ``steps`` steps in all and visiting ``distinct_states``
    distinct states; ``depth`` is the most steps a behaviour could take and
    ``seed`` the seed that reproduces the run. ``properties`` holds one
    `PropertyResult` per checked property, in the spec's order: a refuted one
    is VIOLATED (or EXPECTED) with a trace from an initial state that replays
    through `step`; a ``sometimes`` that was witnessed HOLDS with its
    witness; everything else is UNKNOWN -- temporal properties with the
    detail that simulation does not decide them. ``stopped_by`` is why the run
    ended before all its behaviours: VIOLATION, or what ``should_stop`` or the
    spec's time limit said. ``seconds`` is 0.0 unless a clock was given.
    """

    spec: str
    verdict: Verdict
    stopped_by: StopReason | None
    seed: int
    behaviours: int
    depth: int
    steps: int
    distinct_states: int
    seconds: float
    properties: tuple[PropertyResult, ...]

    @property
    def ok(self) -> bool:
        """True unless a property was violated unexpectedly or an expected violation was not found."""
        return self.verdict is not Verdict.VIOLATED

    @property
    def behaviours_per_second(self) -> float:
        """Behaviours run per second of the clock (0.0 without one)."""
        return self.behaviours / self.seconds if self.seconds > 0 else 0.0

    @property
    def states_per_second(self) -> float:
        """States visited per second of the clock: each behaviour's first state and one per step (0.0 without one)."""
        return (self.behaviours + self.steps) / self.seconds if self.seconds > 0 else 0.0

    def result(self, name: str) -> PropertyResult:
        """The result for the property called ``name``."""
        for r in self.properties:
            if r.name == name:
                return r
        raise KeyError(f"no property {name!r} in the simulation of {self.spec!r}")


NOT_DECIDED = "not decided by simulation: a temporal property needs the whole state graph (use check)"


class BehaviourTraces:
    """The `Traces` of a simulation: every finding's trace is the behaviour under way."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    def path(self, i: int) -> list[Any]:
        return self.simulator.trace()

    def edge(self, i: int, k: int, event: Any, nk: Key, effects: tuple[Any, ...]) -> list[Any]:
        return self.simulator.trace()


class Simulator:
    """One simulation run: the dice, the behaviour under way, and the `Judge` that keeps what they found."""

    def __init__(self, spec: Spec, *, depth: int, seed: int, options: Options) -> None:
        options = options.of(spec)
        self.spec = spec
        self.depth = depth
        self.seed = seed
        self.dice = Dice(seed)
        self.watch = Watch(options)
        self.space = StateSpace(spec)
        self.judge = Judge(spec, self.space, BehaviourTraces(self))
        self.constrained = self.space.constraint is not None or self.space.action_constraint is not None
        shared: dict[int, dict[int, Menu]] = {id(t): {} for t in self.space.distinct_tables}
        self.menus = [shared[id(t)] for t in self.space.tables]
        """Per instance position, the menus of its table's local states (instances sharing a table share them)."""
        self.seen: set[Key] = set()
        self.stop: StopReason | None = None
        self.behaviours = 0
        self.steps = 0
        self.ticks = 0
        self.keys: list[Key] = []
        """The behaviour under way: the states it visited..."""
        self.taken: list[tuple[int, Any, tuple[Any, ...]]] = []
        """...and the steps between them: (instance position, input, effects)."""

    # -- the run --------------------------------------------------------------------

    def run(self, behaviours: int) -> Simulation:
        """Run up to ``behaviours`` behaviours (fewer when stopped) and report."""
        try:
            while self.behaviours < behaviours and self.stop is None:
                self.behaviours += 1
                self._behaviour()
        except UserCodeError as err:
            raise err.within(spec=self.spec.name, trace=tuple(self.trace())) from err.original
        return self._simulation()

    def _behaviour(self) -> None:
        """One behaviour: a random initial state, then random steps until ``depth``, a dead end or a stop."""
        initials = self.space.initials
        key = initials[self.dice.below(len(initials))]
        self.keys = [key]
        self.taken = []
        self._tick()
        if not self._arrive(None, key) or self.stop is not None:
            return
        for _ in range(self.depth):
            step = self._step(key)
            if step is None:
                return
            self.steps += 1
            self._tick()
            if self.stop is not None:
                return
            key = step[2]

    def _tick(self) -> None:
        """Count a state visited; every 1,024 of them ask the `Watch` (time limit, ``should_stop``)."""
        self.ticks += 1
        if not self.watch.due(self.ticks):
            return
        stop = self.watch.poll(self.ticks, len(self.seen), self.steps, len(self.keys))
        if stop is not None:
            self.stop = stop

    def _stopped(self) -> None:
        if self.judge.stop and self.stop is None:
            self.stop = StopReason.VIOLATION

    # -- one step -------------------------------------------------------------------

    def _step(self, key: Key) -> Successor | None:
        """Draw and take one successor of ``key``; None when the behaviour ends here."""
        free, settled, count = self._successors(key)
        if self.stop is not None:
            return None
        if not count:
            self.judge.quiescent(len(self.keys) - 1, key)
            self._stopped()
            return None
        if self.constrained:
            every = [self._free_step(key, k, m) for k, moves in free for m in moves]
            return self._constrained(key, every + settled)
        r = self.dice.below(count)
        for k, moves in free:
            if r < len(moves):
                step = self._free_step(key, k, moves[r])
                break
            r -= len(moves)
        else:
            step = settled[r]
        return step if self._arrive(key, step[2], step) else None

    def _successors(self, key: Key) -> tuple[list[tuple[int, tuple[Move, ...]]], list[Successor], int]:
        """Every successor of ``key``: each instance's free moves (not taken yet), the settled steps, their number."""
        space = self.space
        free: list[tuple[int, tuple[Move, ...]]] = []
        settled: list[Successor] = []
        count = 0
        before = None
        for k, menus in enumerate(self.menus):
            a = key[k]
            moves, others = menus.get(a) or self._menu(k, a)
            if moves:
                free.append((k, moves))
                count += len(moves)
            if others:
                if before is None:
                    before = space.view(key)
                for move in others:
                    for nk, effects, flags, _rule in space.take(key, k, move, before):
                        settled.append((k, move.input, nk, effects, flags))
        self.judge.ambiguity(len(self.keys) - 1)
        self._stopped()
        return free, settled, count + len(settled)

    def _menu(self, k: int, a: int) -> Menu:
        """Local state ``a``'s moves, free and settled ones apart (once per local state of each table)."""
        table = self.space.tables[k]
        free: list[Move] = []
        others: list[Move] = []
        for event in table.inputs_of(a):
            locals_ = table.resolve(a, event)
            if isinstance(locals_, Rejected):
                continue
            for move in table.moves_of(event, locals_):
                (others if move.gates or move.routed else free).append(move)
        menu = self.menus[k][a] = (tuple(free), tuple(others))
        return menu

    def _free_step(self, key: Key, k: int, move: Move) -> Successor:
        """The one successor of a free move (no guard to ask, so no state view is needed)."""
        [(nk, effects, flags, _rule)] = self.space.take(key, k, move, None)
        return k, move.input, nk, effects, flags

    def _constrained(self, key: Key, steps: list[Successor]) -> Successor | None:
        """Draw among the successors inside the constraints; those outside are judged and left out.

        None when every successor is outside: the behaviour ends, but the
        state had successors, so it is no deadlock.
        """
        while steps and self.stop is None:
            r = self.dice.below(len(steps))
            step = steps[r]
            if self._arrive(key, step[2], step):
                return step
            steps[r] = steps[-1]
            steps.pop()
        return None

    # -- judging --------------------------------------------------------------------

    def _arrive(self, key: Key | None, nk: Key, step: Successor | None = None) -> bool:
        """Start in ``nk``, or take ``step`` from ``key`` to it, and judge; False when the model leaves it out.

        A state the constraints leave out is judged against the invariants (as
        `check` does) but not entered: the behaviour does not go on from it.
        """
        judge = self.judge
        if step is not None:
            assert key is not None
            self.keys.append(nk)
            self.taken.append((step[0], step[1], step[3]))
            k, event, _nk, effects, flags = step
            if flags or self.space.global_transitions:
                judge.step(len(self.keys) - 2, k, event, nk, effects, flags, self.space.view(key))
        if self.constrained and not self._inside(key, nk, step):
            judge.prune(nk, None if step is None else (len(self.keys) - 2, step[0], step[1], step[3]))
            if step is not None:
                self.keys.pop()
                self.taken.pop()
            self._stopped()
            return False
        if nk not in self.seen:
            self.seen.add(nk)
            judge.states(len(self.keys) - 1, [nk])
        self._stopped()
        return True

    def _inside(self, key: Key | None, nk: Key, step: Successor | None) -> bool:
        """Whether the constraints keep ``nk`` (reached from ``key`` by ``step``) in the model."""
        space, judge = self.space, self.judge
        if space.action_constraint is not None and step is not None and key is not None:
            if not judge.action_inside(space.view(key), step[0], step[1], nk):
                return False
        return space.constraint is None or judge.inside(nk)

    def trace(self) -> list[TraceStep]:
        """The behaviour under way, as a trace from its initial state."""
        space = self.space
        if not self.keys:
            return []
        steps = [TraceStep(space.view(self.keys[0]), None, ())]
        for nk, (k, event, effects) in zip(self.keys[1:], self.taken):
            steps.append(TraceStep(space.view(nk), space.action(k, event), effects))
        return steps

    # -- the result -----------------------------------------------------------------

    def _simulation(self) -> Simulation:
        results = self._results()
        verdict = Verdict.VIOLATED if any(r.failed for r in results) else Verdict.BOUNDED
        return Simulation(self.spec.name, verdict, self.stop, self.seed, self.behaviours, self.depth, self.steps,
                          len(self.seen), self.watch.elapsed(), results)

    def _results(self) -> tuple[PropertyResult, ...]:
        """Each checked property's status, in the spec's order (see `Simulation`)."""
        judge = self.judge
        kinds = {p.name: p.kind for p in self.spec.properties}
        out: list[PropertyResult] = []
        for name in self.spec.checks:
            kind = kinds.get(name) or BUILTIN[name]
            if kind.temporal:
                out.append(PropertyResult(name, kind, Status.UNKNOWN, detail=NOT_DECIDED))
                continue
            trace = judge.violations.get(name)
            status = Status.UNKNOWN
            if kind is Kind.SOMETIMES:
                trace = judge.witnessed.get(name)
                status = Status.UNKNOWN if trace is None else Status.HOLDS
            elif trace is not None:
                status = Status.VIOLATED
            if name in judge.expected:
                status = Status.EXPECTED if status is Status.VIOLATED else Status.MISSING
            out.append(PropertyResult(name, kind, status, None if trace is None else tuple(trace),
                                      judge.details.get(name)))
        return tuple(out)


def simulate(
    spec: Spec,
    *,
    behaviours: int,
    seed: int,
    depth: int = 100,
    time_limit: float | None = None,
    max_memory: int | None = None,
    clock: Callable[[], float] | None = None,
    memory: Callable[[], int] | None = None,
    should_stop: Callable[[], StopReason | None] | None = None,
) -> Simulation:
    """Run ``behaviours`` random behaviours of up to ``depth`` steps and judge the spec's properties on them.

    For models too big to `check` exhaustively: it finds violations, it proves
    nothing (see the module docstring for what is judged). ``seed`` (0 to
    2**64 - 1) fixes every draw, so a run -- and its traces -- reproduce
    exactly. It stops at the first violation the spec does not ``expect``.
    ``clock`` (e.g. ``time.perf_counter``) times the run and enables
    ``time_limit``, ``memory`` enables ``max_memory`` (as for `check`);
    ``should_stop`` is polled every 1,024 states visited, and a `StopReason`
    it returns ends the run there.

    >>> from dataclasses import dataclass, replace
    >>> from enum import Enum
    >>> from statewright.kernel.checker import Spec, always
    >>> from statewright.kernel.machine import Machine, Transition
    >>> class P(Enum):
    ...     WALKING = 1
    >>> @dataclass(frozen=True, slots=True)
    ... class Walker:
    ...     phase: P = P.WALKING
    ...     x: int = 0
    >>> @dataclass(frozen=True, slots=True)
    ... class Left: ...
    >>> @dataclass(frozen=True, slots=True)
    ... class Right: ...
    >>> walk = Machine("walk", initial=Walker(), transitions=[
    ...     Transition(P.WALKING, Left, P.WALKING, update=lambda s, i: replace(s, x=s.x - 1)),
    ...     Transition(P.WALKING, Right, P.WALKING, update=lambda s, i: replace(s, x=s.x + 1))])
    >>> spec = Spec("walk", walk, [Left(), Right()], [always("near", lambda s: abs(s.x) < 4)])
    >>> sim = simulate(spec, behaviours=100, depth=20, seed=7)
    >>> sim.verdict, sim.stopped_by, sim.result("near").status
    (<Verdict.VIOLATED: 'violated'>, <StopReason.VIOLATION: 'violation'>, <Status.VIOLATED: 'violated'>)
    >>> trace = sim.result("near").trace
    >>> abs(trace[-1].state.x), trace == simulate(spec, behaviours=100, depth=20, seed=7).result("near").trace
    (4, True)
    """
    if not isinstance(behaviours, int) or behaviours < 1:
        raise ValueError(f"simulate: behaviours must be a positive int, got {behaviours!r}")
    if not isinstance(depth, int) or depth < 0:
        raise ValueError(f"simulate: depth must be an int of at least 0, got {depth!r}")
    if not isinstance(seed, int) or not 0 <= seed < SPAN:
        raise ValueError(f"simulate: seed must be an int from 0 to 2**64 - 1, got {seed!r}")
    options = Options(time_limit=time_limit, max_memory=max_memory, clock=clock, memory=memory,
                      should_stop=should_stop)
    return Simulator(spec, depth=depth, seed=seed, options=options).run(behaviours)
