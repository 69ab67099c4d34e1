"""Refinement: the shell (`Driver` + a `Store`) follows the pure model, step for step.

`refinement_suite(spec, stores)` builds a hypothesis `RuleBasedStateMachine`
that drives a real store and the spec's model in lockstep with the same
inputs, drawn from the spec's input domain (3 draws in 4 prefer an input the
model accepts, so programs get deep). A `Machine` spec is one instance fed
with `Driver.feed`; a `System` spec is one instance per name, driven with
`Driver.act`. Two `Driver` objects share one store and the same instances:

* ``feed`` -- driver A or B takes one input;
* ``interleave`` -- A decides its input, and just before A's commit a store
  hook lets B take a whole input: A's batch must lose the race and be decided
  again, so the model takes B's input, then A's (deterministic);
* ``race`` -- A and B take an input each at the same time (`asyncio.gather`);
  the outcome must equal one of the two sequential orders.

After every step each instance's stored record and log are compared with the
model's: ``state`` equal, ``version`` = accepted inputs + 1, and the log equal,
event by event (kind, canonical JSON data, terminal flag), to what the model
emitted: ``created``, then per input ``input``/``routed`` + one ``effect`` per
effect (`adapters.runtime.serialize.event_json`), or ``rejected``/``blocked``, and the
``terminal`` event once the state is terminal. What each driver call returned
is compared too. A store whose writes compare nothing loses updates under
the ``interleave`` rule and is caught (see tests/adapters/test_refinement.py).

`run_refinement` runs a suite and returns a `RefinementResult` with the
failing program, as `adapters.testing.stateful.run_suite` does for the model alone.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from statewright.adapters.runtime.driver import Acted, Driver, Fed
from statewright.adapters.testing.stateful import camel, run_program
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.serialize import event_json, value_json
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    BatchStore,
    Catalog,
    Conflict,
    Event,
    Op,
    Record,
    Store,
    canonical_json,
    takes_batch,
)
from statewright.kernel.checker import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine
from statewright.kernel.step import Accepted, Rejected, step
from statewright.kernel.system import Action, Blocked, System
from statewright.machines.input import INPUT, authorize_seed

__all__ = [
    "RefinementError",
    "RefinementResult",
    "StoreFactory",
    "catalog_for",
    "memory_store",
    "refinement_suite",
    "run_refinement",
    "sqlite_store",
]

StoreFactory = Callable[[Catalog], AbstractAsyncContextManager[Store]]
"""Opens a fresh, empty store for one program and closes (and removes) it afterwards."""


class RefinementError(AssertionError):
    """The stored instances, or what a driver call returned, differ from the model's."""


@dataclass(frozen=True, slots=True)
class RefinementResult:
    """What `run_refinement` found: ``failure`` holds hypothesis's failing program, None when it passed."""

    spec: str
    passed: bool
    examples: int
    steps: int
    seed: int | None
    failure: str | None = None


@asynccontextmanager
async def sqlite_store(catalog: Catalog) -> AsyncIterator[Store]:
    """A `SqliteStore` in a fresh temporary file, removed on exit."""
    folder = tempfile.mkdtemp(prefix="refinement-")
    try:
        async with await SqliteStore.open(Path(folder) / "store.db", catalog) as store:
            yield store
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def memory_store(catalog: Catalog) -> AsyncIterator[Store]:
    """A fresh `MemoryStore`."""
    yield MemoryStore(catalog)


def catalog_for(spec: Spec) -> Catalog:
    """The catalog of the spec's machines (by name), with the input lifecycle's seed authorisation."""
    machines = [spec.model] if isinstance(spec.model, Machine) else list(spec.model.machines)
    by_name: dict[str, Machine[Any]] = {}
    for m in machines:
        if by_name.setdefault(m.name, m) is not m:
            raise DefinitionError(f"spec {spec.name!r}: two different machines are called {m.name!r}")
    return Catalog(by_name, {name: authorize_seed for name, m in by_name.items() if m is INPUT})


# -- the model side ------------------------------------------------------------------


Logged = tuple[str, str, bool]
"""One log event as compared: kind, canonical JSON of its data, terminal flag."""


@dataclass(frozen=True, slots=True)
class _Instance:
    """One stored instance as the model predicts it (or as read back from the store)."""

    state: Any
    version: int
    log: tuple[Logged, ...]

    @property
    def ended(self) -> bool:
        return bool(self.log) and self.log[-1][2]


World = tuple[_Instance, ...]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one input does in the model: the world after it and what the driver call must return."""

    world: World
    accepted: bool
    conflict: bool  # accepted on an ended log: the driver must raise Conflict, nothing written
    effects: tuple[Any, ...]


def _event(kind: str, data: Any, terminal: bool = False) -> Logged:
    return kind, canonical_json(data), terminal


def _terminal(m: Machine[Any], state: Any) -> Logged:
    return _event("terminal", {"phase": value_json(m.phase_of(state))}, True)


class _Model:
    """The spec's model with the log every instance must hold: the reference the store is compared to."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.catalog = catalog_for(spec)
        model = spec.model
        self.system: System[Any] | None = model if isinstance(model, System) else None
        if self.system is None:
            assert isinstance(model, Machine)
            self.names: tuple[str, ...] = (model.name,)
            self.machines: tuple[Machine[Any], ...] = (model,)
            self.domains: tuple[Any, ...] = (spec.inputs,)
            initial: tuple[Any, ...] = (model.initial,)
        else:
            self.names, self.machines = self.system.names, self.system.machines
            raw = cast(Mapping[str, Any], spec.inputs)
            self.domains = tuple(raw.get(n) for n in self.names)
            initial = tuple(self.system.initial)
        self.keys = {n: f"{spec.name}/{n}" for n in self.names}
        self.initial: World = tuple(
            _Instance(s, 1, (_event("created", {"machine": m.name, "state": value_json(s)}),)
                      + ((_terminal(m, s),) if m.is_terminal(s) else ()))
            for m, s in zip(self.machines, initial))
        self._actions: dict[tuple[Any, ...], tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]] = {}
        self._strategies: dict[tuple[tuple[str, Any], ...], st.SearchStrategy[tuple[str, Any]]] = {}

    def actions(self, world: World) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]:
        """Every domain action (instance, input) from ``world``'s states, and those the model accepts."""
        states = tuple(i.state for i in world)
        found = self._actions.get(states)
        if found is None:
            every: list[tuple[str, Any]] = []
            accepted: list[tuple[str, Any]] = []
            for name, m, domain, local in zip(self.names, self.machines, self.domains, states):
                if domain is None:
                    continue
                for input in tuple(domain(local)) if callable(domain) else domain:
                    every.append((name, input))
                    if self.system is None:
                        ok = isinstance(step(m, local, input), Accepted)
                    else:
                        ok = isinstance(self.system.step(self.system.make(states), Action(name, input)), Accepted)
                    if ok:
                        accepted.append((name, input))
            found = self._actions[states] = (tuple(every), tuple(accepted))
        return found

    def choices(self, options: tuple[tuple[str, Any], ...]) -> st.SearchStrategy[tuple[str, Any]]:
        """``sampled_from(options)``, built once per distinct tuple (hypothesis validates each new one)."""
        found = self._strategies.get(options)
        if found is None:
            found = self._strategies[options] = st.sampled_from(options)
        return found

    def advance(self, world: World, name: str, input: Any) -> _Outcome:
        """The model's step for one action, with the events the driver must log for it."""
        if self.system is None:
            return self._feed(world, input)
        return self._act(world, self.system, name, input)

    def _feed(self, world: World, input: Any) -> _Outcome:
        m, inst = self.machines[0], world[0]
        out = step(m, inst.state, input)
        if isinstance(out, Rejected):
            if inst.ended:  # too late: returned, not recorded
                return _Outcome(world, False, False, ())
            rejected = {"reason": out.reason.value, "phase": value_json(out.phase), "input": event_json(input),
                        "guards": list(out.guards)}
            return _Outcome((replace(inst, log=inst.log + (_event("rejected", rejected),)),), False, False, ())
        if inst.ended:
            return _Outcome(world, True, True, ())
        log = inst.log + (_event("input", event_json(input)),) + tuple(_event("effect", event_json(e))
                                                                        for e in out.effects)
        if m.is_terminal(out.state):
            log += (_terminal(m, out.state),)
        return _Outcome((_Instance(out.state, inst.version + 1, log),), True, False, out.effects)

    def _act(self, world: World, system: System[Any], name: str, input: Any) -> _Outcome:
        k = system.position[name]
        settled = system.settle(system.make([i.state for i in world]), Action(name, input))
        after = list(world)
        if isinstance(settled, Blocked):
            if world[k].ended:
                return _Outcome(world, False, False, ())
            why: dict[str, Any]
            if isinstance(settled.why, str):
                why = {"reason": "system_guard", "guards": [settled.why]}
            else:
                why = {"reason": settled.why.reason.value, "phase": value_json(settled.why.phase),
                       "guards": list(settled.why.guards)}
            blocked = {"input": event_json(input), "at": settled.instance, "routed": settled.routed,
                       "refused": event_json(settled.input), **why}
            after[k] = replace(world[k], log=world[k].log + (_event("blocked", blocked),))
            return _Outcome(tuple(after), False, False, ())
        logs: dict[int, tuple[Logged, ...]] = {}
        for micro in settled.microsteps:
            logs[micro.position] = logs.get(micro.position, ()) + (
                _event("routed" if micro.routed else "input", event_json(micro.input)),) + tuple(
                _event("effect", event_json(e)) for e in micro.effects)
        if any(world[j].ended for j in logs):
            return _Outcome(world, True, True, ())
        for j, events in logs.items():
            m, state = system.machines[j], settled.after[j]
            terminal = (_terminal(m, state),) if m.is_terminal(state) else ()
            after[j] = _Instance(state, world[j].version + 1, world[j].log + events + terminal)
        return _Outcome(tuple(after), True, False, settled.emitted)


# -- the shell side ------------------------------------------------------------------


class _Hooked:
    """A store that runs a pending callback (the other driver's whole input) before its next commit."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.catalog = inner.catalog
        self.before_commit: Callable[[], Awaitable[None]] | None = None

    async def load(self, key: str) -> Record:
        return await self.inner.load(key)

    async def cas(self, key: str, expected: int, state: Any, *, machine: str | None = None) -> Record:
        return await self.inner.cas(key, expected, state, machine=machine)

    async def append(self, key: str, expected: int, events: Sequence[tuple[str, Any]]) -> int:
        return await self.inner.append(key, expected, events)

    async def append_terminal(self, key: str, kind: str, data: Any) -> int:
        return await self.inner.append_terminal(key, kind, data)

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None) -> None:
        """Run the pending hook, then commit; the batch id is passed on, so the driver stays exactly-once."""
        hook, self.before_commit = self.before_commit, None
        if hook is not None:
            await hook()
        if batch is not None and takes_batch(self.inner):
            await cast(BatchStore, self.inner).commit(ops, batch=batch)
        else:
            await self.inner.commit(ops)

    async def read_log(self, key: str, start: int = 1, stop: int | None = None) -> list[Event]:
        return await self.inner.read_log(key, start, stop)

    async def keys(self) -> list[str]:
        return await self.inner.keys()

    async def close(self) -> None:
        await self.inner.close()


async def _no_sleep(_seconds: float) -> None:
    """Backoff without waiting: the drivers interleave through the store, not through the clock."""


Returned = Fed | Acted | BaseException
"""What a driver call returned, or the error it raised."""


class _Harness:
    """One program's store, its two drivers and the model world they must agree with."""

    def __init__(self, model: _Model, stores: StoreFactory) -> None:
        self.model = model
        self.loop = asyncio.new_event_loop()
        self._opened = stores(model.catalog)
        try:
            self.store: Store = self.loop.run_until_complete(self._opened.__aenter__())
            self.hooked = _Hooked(self.store)
            self.drivers = (Driver(self.hooked, sleep=_no_sleep), Driver(self.store, sleep=_no_sleep))
            self.loop.run_until_complete(self._create())
        except BaseException:
            self.loop.close()
            raise
        self.world = model.initial

    async def _create(self) -> None:
        m = self.model
        if m.system is None:
            await self.drivers[0].create(m.keys[m.names[0]], m.machines[0].name)
        else:
            await self.drivers[0].create_all(m.system, m.keys)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self._opened.__aexit__(None, None, None))
        finally:
            self.loop.close()

    async def drive(self, who: int, name: str, input: Any) -> Returned:
        """One driver call; a raised error is returned, to be compared with the model."""
        driver, m = self.drivers[who], self.model
        try:
            if m.system is None:
                return await driver.feed(m.keys[name], input)
            return await driver.act(m.system, m.keys, Action(name, input))
        except Exception as exc:  # noqa: BLE001 - compared with what the model says, below
            return exc

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def snapshot(self) -> World:
        """Every instance as stored: record and whole log."""
        out = []
        for name in self.model.names:
            key = self.model.keys[name]
            record = await self.store.load(key)
            log = tuple(_event(e.kind, e.data, e.terminal) for e in await self.store.read_log(key))
            out.append(_Instance(record.state, record.version, log))
        return tuple(out)

    def differences(self, stored: World, expected: World) -> list[str]:
        """Where the store and the model part, one line per instance that differs."""
        out = []
        for name, got, want in zip(self.model.names, stored, expected):
            key = self.model.keys[name]
            if got.state != want.state:
                out.append(f"{key}: stored state {got.state!r}, model {want.state!r}")
            if got.version != want.version:
                out.append(f"{key}: stored version {got.version}, model {want.version} "
                           f"(accepted inputs + 1)")
            if got.log != want.log:
                n = next((i for i, (a, b) in enumerate(zip(got.log, want.log)) if a != b),
                         min(len(got.log), len(want.log)))
                out.append(f"{key}: log differs from event {n + 1} "
                           f"(stored {len(got.log)} events, model {len(want.log)}): "
                           f"stored {got.log[n:n + 2]!r}, model {want.log[n:n + 2]!r}")
        return out

    def check_result(self, result: Returned, outcome: _Outcome, who: int, name: str, input: Any) -> None:
        """What the driver call returned agrees with the model's step."""
        label = f"driver {'AB'[who]}: {name} <- {input!r}"
        if outcome.conflict:
            if not isinstance(result, Conflict):
                raise RefinementError(f"{label}: accepted on an ended log, so Conflict was due; got {result!r}")
            return
        if isinstance(result, BaseException):
            raise RefinementError(f"{label}: raised {type(result).__name__}: {result}") from result
        if result.accepted != outcome.accepted:
            raise RefinementError(f"{label}: accepted={result.accepted}, the model says {outcome.accepted}")
        if result.effects != outcome.effects:
            raise RefinementError(f"{label}: effects {result.effects!r}, the model emitted {outcome.effects!r}")
        states = [i.state for i in outcome.world]
        if isinstance(result, Fed):
            got = [result.record.state]
        else:
            got = [result.records[n].state for n in self.model.names]
        if got != states:
            raise RefinementError(f"{label}: returned states {got!r}, the model has {states!r}")


# -- the hypothesis suite ------------------------------------------------------------


def refinement_suite(spec: Spec, stores: StoreFactory = sqlite_store) -> type[RuleBasedStateMachine]:
    """Build the hypothesis state machine checking that a driver over ``stores`` refines ``spec``'s model.

    >>> from hypothesis import settings
    >>> from hypothesis.stateful import run_state_machine_as_test
    >>> from statewright.specs import REGISTRY
    >>> Input = refinement_suite(REGISTRY.get("input").spec(), memory_store)
    >>> Input.__name__
    'InputRefinement'
    >>> run_state_machine_as_test(Input, settings=settings(max_examples=3, database=None, derandomize=True))
    """
    model = _Model(spec)
    counts = [0, 0]
    prefer = st.sampled_from((True, True, True, False))
    drivers = st.sampled_from((0, 1))

    def __init__(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        counts[0] += 1
        self.harness = _Harness(model, stores)

    def draw(self: Any, data: st.DataObject, label: str) -> tuple[str, Any]:
        every, accepted = model.actions(self.harness.world)
        options = every
        if accepted:
            wants: bool = data.draw(prefer, label=f"{label} prefers accepted")
            options = accepted if wants else every
        return data.draw(model.choices(options), label=label)

    def apply(self: Any, who: int, name: str, input: Any, result: Returned) -> None:
        h: _Harness = self.harness
        outcome = model.advance(h.world, name, input)
        h.check_result(result, outcome, who, name, input)
        h.world = outcome.world
        counts[1] += 1

    def feed(self: Any, data: st.DataObject) -> None:
        """Driver A or B takes one input."""
        who = data.draw(drivers, label="driver")
        name, input = draw(self, data, "input")
        apply(self, who, name, input, self.harness.run(self.harness.drive(who, name, input)))

    def interleave(self: Any, data: st.DataObject) -> None:
        """A decides; B takes a whole input just before A commits; A must then decide again."""
        h: _Harness = self.harness
        a = draw(self, data, "A takes")
        b = draw(self, data, "B takes")
        results: list[Returned] = []

        async def b_first() -> None:
            results.append(await h.drive(1, *b))

        h.hooked.before_commit = b_first
        result_a = h.run(h.drive(0, *a))
        if h.hooked.before_commit is not None:  # A committed nothing: B goes after it
            h.hooked.before_commit = None
            note("# A committed nothing, so B went second")
            apply(self, 0, *a, result_a)
            apply(self, 1, *b, h.run(h.drive(1, *b)))
        else:
            apply(self, 1, *b, results[0])
            apply(self, 0, *a, result_a)

    def race(self: Any, data: st.DataObject) -> None:
        """A and B take an input each at once; the store must end as after one of the two orders."""
        h: _Harness = self.harness
        a = draw(self, data, "A takes")
        b = draw(self, data, "B takes")

        async def both() -> list[Returned]:
            return list(await asyncio.gather(h.drive(0, *a), h.drive(1, *b)))

        result_a, result_b = h.run(both())
        stored = h.run(h.snapshot())
        problems = []
        for label, order in (("AB", ((0, a, result_a), (1, b, result_b))),
                             ("BA", ((1, b, result_b), (0, a, result_a)))):
            # an order fits when it ends in the stored world and explains what each call returned
            world = h.world
            try:
                for who, (name, input), res in order:
                    outcome = model.advance(world, name, input)
                    h.check_result(res, outcome, who, name, input)
                    world = outcome.world
            except RefinementError as exc:
                problems.append(f"order {label}: {exc}")
                continue
            diff = h.differences(stored, world)
            if diff:
                problems.append(f"order {label}: " + "; ".join(diff))
                continue
            note(f"# the store took {label}")
            h.world = world
            counts[1] += 2
            return
        raise RefinementError("the race matches neither sequential order\n" + "\n".join(problems))

    def matches(self: Any) -> None:
        """Every stored record and log equals the model's."""
        h: _Harness = self.harness
        diff = h.differences(h.run(h.snapshot()), h.world)
        if diff:
            raise RefinementError("the store parted from the model:\n" + "\n".join(diff))

    def teardown(self: Any) -> None:
        harness = getattr(self, "harness", None)
        if harness is not None:
            harness.close()

    ns: dict[str, Any] = {
        "__doc__": f"Refinement of spec {spec.name!r}: the driver and a store against the model.",
        "__init__": __init__,
        "_counts": counts,
        "_model": model,
        "feed": rule(data=st.data())(feed),
        "interleave": rule(data=st.data())(interleave),
        "race": rule(data=st.data())(race),
        "matches": invariant()(matches),
        "teardown": teardown,
        "__repr__": lambda self: f"{type(self).__name__}()",
    }
    cls = type(f"{camel(spec.name)}Refinement", (RuleBasedStateMachine,), ns)
    return cast(type[RuleBasedStateMachine], cls)


def run_refinement(
    spec: Spec,
    stores: StoreFactory = sqlite_store,
    *,
    examples: int = 20,
    steps: int = 20,
    seed: int | None = None,
    shrink: bool = True,
) -> RefinementResult:
    """Run `refinement_suite` for ``spec``; on failure ``failure`` holds the (shrunk) program.

    Without ``seed`` the run is derandomized; with one, hypothesis draws from
    that seed. No example database is used.

    >>> from statewright.specs import REGISTRY
    >>> run_refinement(REGISTRY.get("input").spec(), memory_store, examples=3, steps=5).passed
    True
    """
    cls = refinement_suite(spec, stores)
    counts: list[int] = cls._counts  # type: ignore[attr-defined]
    failure = run_program(cls, examples=examples, steps=steps, seed=seed, shrink=shrink, quiet={"state.matches()"})
    return RefinementResult(spec.name, failure is None, counts[0], counts[1], seed, failure)
