"""The driver against both store backends: one batch per input, rejections recorded, races retried.

Each test runs once per backend (``memory``, ``sqlite``) through the ``go``
fixture, which opens a fresh store, hands the test a store and a `Driver`
whose backoff sleeps are recorded instead of slept, and closes the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.runtime.driver import (
    Acted,
    ActedAccepted,
    ActedBlocked,
    BadInput,
    Driver,
    Fed,
    FedAccepted,
    FedRejected,
)
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Busy,
    Cas,
    Catalog,
    Conflict,
    Io,
    Op,
    Record,
    Store,
    StoreError,
    UnknownOutcome,
)
from statewright.kernel.step import Accepted, Reason, Rejected, step
from statewright.kernel.system import Action, Blocked, System
from statewright.machines import loop_frame as lf
from statewright.machines.input import (
    INPUT,
    Abandon,
    AbandonReason,
    Abandoned,
    Apply,
    Consume,
    Input,
    InputPhase,
    InputQueued,
    Queue,
    RunFailed,
    Stage,
    authorize_seed,
)
from statewright.machines.session import AcceptInput, ApplyRun, AttachExecutor, CommitRun, FailRun, StartRun, Stop
from statewright.specs.session import session_inputs

FLOW = lf.flow_system(limit=2)
SESSION_INPUTS: System[Any] = session_inputs(runs=1, max_attempts=2).model  # type: ignore[assignment]
CATALOG = Catalog(
    {
        "input": INPUT,
        "session": SESSION_INPUTS.instances["session"],
        "flow_run": lf.RUN,
        "flow_frame": lf.FRAME,
        "flow_loop": FLOW.instances["loop"],
    },
    authorize={"input": authorize_seed},
)
FLOW_KEYS = {name: f"f1/{name}" for name in FLOW.names}


class Recording:
    """A store wrapper that logs every batch and can run a concurrent writer before a commit."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.catalog = inner.catalog
        self.batches: list[list[Op]] = []
        self.before_commit: list[Callable[[], Awaitable[None]]] = []
        self.interfere_always: Callable[[], Awaitable[None]] | None = None

    async def commit(self, ops: Sequence[Op]) -> None:
        if self.before_commit:
            await self.before_commit.pop(0)()
        elif self.interfere_always is not None:
            await self.interfere_always()
        self.batches.append(list(ops))
        await self.inner.commit(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


Test = Callable[[Recording, Driver, list[float]], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite"])
def go(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., None]:
    def run(test: Test, **options: Any) -> None:
        async def main() -> None:
            inner: Store
            if request.param == "memory":
                inner = MemoryStore(CATALOG)
            else:
                inner = await SqliteStore.open(tmp_path / "s.db", CATALOG)
            store = Recording(inner)
            slept: list[float] = []

            async def sleep(seconds: float) -> None:
                slept.append(seconds)

            try:
                await test(store, Driver(store, sleep=sleep, **options), slept)
            finally:
                await inner.close()

        asyncio.run(main())

    return run


async def snapshot(store: Store) -> list[tuple[Record, list[Any]]]:
    return [(await store.load(k), await store.read_log(k)) for k in await store.keys()]


def kinds(log: Sequence[Any]) -> list[str]:
    return [e.kind for e in log]


HAPPY = (Queue(), Stage("r1"), Apply("r1"), Consume("r1"))


def model(*events: Any, state: Input = Input()) -> Input:
    for event in events:
        out = step(INPUT, state, event)
        assert isinstance(out, Accepted)
        state = out.state
    return state


# -- one machine --------------------------------------------------------------------------


def test_an_input_driven_to_its_end_is_stored_as_the_model_says(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        created = await driver.create("in1", "input")
        assert created == Record("in1", "input", Input(), 1)
        for event in HAPPY:
            fed = await driver.feed("in1", event)
            assert fed.accepted and fed.rejection is None and fed.attempts == 1
        assert (await store.load("in1")) == fed.record == Record("in1", "input", model(*HAPPY), 5)
        log = await store.read_log("in1")
        assert kinds(log) == ["created"] + ["input", "effect"] * 4 + ["terminal"]
        assert [e.data for e in log[1:3]] == [{"type": "Queue"}, {"type": "InputQueued"}]
        assert log[3].data == {"type": "Stage", "run_id": "r1"}
        assert log[4].data == {"type": "InputStaged", "run_id": "r1", "attempt": 1}
        assert log[-1].data == {"phase": "consumed"} and log[-1].terminal
        assert [e.seq for e in log] == list(range(1, 11))
        assert len(store.batches) == 5 and slept == []  # create + one batch per input
        assert [type(op) for op in store.batches[-1]] == [Cas, Append, AppendTerminal]

    go(test)


def test_a_guard_rejection_is_returned_and_recorded_and_nothing_else_changes(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create("in1", "input")
        await driver.feed("in1", Queue())
        await driver.feed("in1", Stage("r1"))
        before = await snapshot(store)
        fed = await driver.feed("in1", Apply("r0"))
        assert not fed.accepted and fed.effects == () and fed.attempts == 1
        assert fed.rejection == Rejected(Reason.GUARD_FAILED, InputPhase.STAGED, Apply("r0"), ("same_run",))
        (record, log), = await snapshot(store)
        assert record == before[0][0] == fed.record  # same state, same version
        assert log[:-1] == before[0][1]
        assert (log[-1].kind, log[-1].data) == (
            "rejected",
            {"reason": "guard_failed", "phase": "staged", "input": {"type": "Apply", "run_id": "r0"},
             "guards": ["same_run"]},
        )
        assert [type(op) for op in store.batches[-1]] == [Append]

    go(test)


def test_a_lost_race_reloads_and_retries(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        other = Driver(store.inner)
        await driver.create("in1", "input")
        await driver.feed("in1", Queue())

        async def rival() -> None:  # between our load and our commit, a run stages and fails the input
            await other.feed("in1", Stage("r1"))
            await other.feed("in1", RunFailed("r1"))

        store.before_commit.append(rival)
        fed = await driver.feed("in1", Stage("r2"))
        assert fed.accepted and fed.attempts == 2 and slept == [0.005]
        # decided again from the fresh state: this is the input's second attempt
        assert fed.record == await store.load("in1") == Record("in1", "input", model(Queue(), Stage("r1"), RunFailed("r1"), Stage("r2")), 5)
        assert fed.effects[0].attempt == 2
        assert kinds(await store.read_log("in1")) == ["created"] + ["input", "effect"] * 4

        # a rejection racing another writer's event is recorded after it, not dropped
        store.before_commit.append(lambda: _discard(other.feed("in1", Consume("r0"))))
        fed = await driver.feed("in1", Apply("r9"))
        assert not fed.accepted and fed.attempts == 2
        assert kinds(await store.read_log("in1"))[-2:] == ["rejected", "rejected"]

    go(test)


async def _discard(fed: Awaitable[Any]) -> None:
    await fed


def test_retries_exhausted_raise_the_conflict_and_write_nothing(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        other = Driver(store.inner)
        await driver.create("in1", "input")
        await driver.feed("in1", Queue())
        store.interfere_always = lambda: _discard(other.feed("in1", Apply("r0")))  # a rejected event each time
        with pytest.raises(Conflict) as caught:
            await driver.feed("in1", Stage("r1"))
        assert caught.value.code == "conflict" and caught.value.key == "in1"
        assert slept == [0.001, 0.002, 0.004]
        assert len(store.batches) == 2 + 4  # create, Queue, then 1 try + 3 retries
        record = await store.load("in1")
        assert record == Record("in1", "input", Input(InputPhase.QUEUED), 2)
        assert kinds(await store.read_log("in1")) == ["created", "input", "effect"] + ["rejected"] * 4

    go(test, retries=3, backoff=0.001)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"run_id": "r1"}',
        '{"type": "Launch"}',
        '{"type": "InputStaged", "run_id": "r1", "attempt": 1}',  # an effect, not an input
        '{"type": "Stage", "run_id": 5}',
        '{"type": "Stage"}',
        '{"type": "Stage", "run_id": "r1", "runid": "r1"}',
        '{"type": "Abandon", "reason": "bored"}',
    ],
)
def test_feed_json_refuses_what_is_not_an_input_and_writes_nothing(go: Callable[..., None], text: str) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create("in1", "input")
        await driver.feed("in1", Queue())
        before = await snapshot(store)
        with pytest.raises(BadInput) as caught:
            await driver.feed_json("in1", text)
        assert caught.value.code == "bad_input" and isinstance(caught.value, StoreError)
        assert await snapshot(store) == before

    go(test)


def test_feed_json_builds_typed_inputs(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create("in1", "input")
        await driver.feed_json("in1", '{"type": "Queue"}')
        fed = await driver.feed_json("in1", b'{"type": "Abandon", "reason": "cancelled"}')
        assert fed.accepted
        assert fed.record.state == Input(InputPhase.ABANDONED, outcome=Abandoned(AbandonReason.CANCELLED, 0))
        log = await store.read_log("in1")
        assert log[-3].data == {"type": "Abandon", "reason": "cancelled"}

    go(test)


def test_an_input_for_a_terminal_instance_is_rejected_and_the_ended_log_stays_ended(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create("in1", "input")
        for event in HAPPY:
            await driver.feed("in1", event)
        before = await snapshot(store)
        fed = await driver.feed_json("in1", '{"type": "Queue"}')
        assert not fed.accepted
        assert fed.rejection == Rejected(Reason.TERMINAL, InputPhase.CONSUMED, Queue())
        assert await snapshot(store) == before and len(store.batches) == 5  # no batch at all
        fresh = Driver(store.inner)  # no cached head: it must find the terminal event itself
        assert (await fresh.feed("in1", Abandon(AbandonReason.STOPPED))).rejection.reason is Reason.TERMINAL  # type: ignore[union-attr]
        assert await snapshot(store) == before

    go(test)


def test_creating_twice_is_a_conflict(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create("in1", "input", Input(InputPhase.QUEUED))
        with pytest.raises(Conflict):
            await driver.create("in1", "input")
        (record, log), = await snapshot(store)
        assert record.state == Input(InputPhase.QUEUED)
        assert [(e.kind, e.data) for e in log] == [
            ("created", {"machine": "input", "state": {"phase": "queued", "attempts": 0, "max_attempts": 3,
                                                      "run_id": None, "outcome": None}})
        ]

    go(test)


# -- systems: the flow store's atomic operations ------------------------------------------------


FLOW_PREFIX = (
    Action("run", lf.StartRun()),
    Action("root", lf.StartFrame()),
    Action("root", lf.GrantSlot("loop")),
)


def flow_model(*actions: Action) -> Any:
    state = FLOW.initial
    for action in actions:
        out = FLOW.step(state, action)
        assert isinstance(out, Accepted), out
        state = out.state
    return state


def test_each_flow_operation_is_one_batch_over_every_record_it_touches(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        created = await driver.create_all(FLOW, FLOW_KEYS)
        assert created["root"].state == lf.root_frame() and len(store.batches) == 1
        for action in FLOW_PREFIX:
            assert (await driver.act(FLOW, FLOW_KEYS, action)).accepted
        store.batches.clear()

        acted = await driver.act(FLOW, FLOW_KEYS, Action("loop", lf.StartLoop()))
        assert acted.accepted and acted.attempts == 1
        want = flow_model(*FLOW_PREFIX, Action("loop", lf.StartLoop()))
        assert acted.state == want
        batch, = store.batches
        writes = [(type(op).__name__, op.key) for op in batch if not (isinstance(op, Append) and not op.events)]
        assert writes == [("Cas", "f1/run"), ("Append", "f1/run"), ("Cas", "f1/root"), ("Append", "f1/root"),
                          ("Cas", "f1/loop"), ("Append", "f1/loop")]
        checks = sorted(op.key for op in batch if isinstance(op, Append) and not op.events)
        assert checks == ["f1/b1", "f1/b2"]
        for name in FLOW.names:
            assert (await store.load(FLOW_KEYS[name])).state == getattr(want, name)
        loop_log = await store.read_log("f1/loop")
        assert [(e.kind, e.data) for e in loop_log[1:]] == [
            ("input", {"type": "StartLoop"}),
            ("effect", {"type": "LoopStarted", "parent": "root", "node": "loop"}),
        ]
        assert [(e.kind, e.data) for e in (await store.read_log("f1/root"))[-1:]] == [
            ("routed", {"type": "EnterLoop", "node": "loop"})
        ]
        assert [(e.kind, e.data) for e in (await store.read_log("f1/run"))[-1:]] == [
            ("routed", {"type": "NoteLoop", "loop": "loop"})
        ]

        store.batches.clear()
        await driver.act(FLOW, FLOW_KEYS, Action("loop", lf.RequestBody()))
        acted = await driver.act(FLOW, FLOW_KEYS, Action("loop", lf.GrantBody()))
        assert acted.accepted and len(store.batches) == 2
        assert sorted(op.key for op in store.batches[-1] if isinstance(op, Cas)) == ["f1/b1", "f1/loop", "f1/run"]
        assert acted.records["b1"] == await store.load("f1/b1")
        assert acted.records["b1"].state.phase is lf.FramePhase.PENDING and acted.records["b1"].version == 2
        assert acted.records["loop"].state.ledger == ((1, "b1"),)

    go(test)


def test_a_conflict_on_one_record_of_a_flow_operation_writes_none_of_them(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create_all(FLOW, FLOW_KEYS)
        for action in FLOW_PREFIX:
            await driver.act(FLOW, FLOW_KEYS, action)
        before = await snapshot(store)

        async def bump_run() -> None:  # a concurrent writer moves only the run record
            run = await store.inner.load("f1/run")
            await store.inner.cas("f1/run", run.version, run.state)

        store.before_commit.append(bump_run)
        with pytest.raises(Conflict) as caught:
            await driver.act(FLOW, FLOW_KEYS, Action("loop", lf.StartLoop()))
        assert caught.value.key == "f1/run"
        after = await snapshot(store)
        for (r0, log0), (r1, log1) in zip(before, after):
            assert log1 == log0  # the loop's and the root's writes were rolled back with the run's
            assert r1 == (r0 if r0.key != "f1/run" else Record(r0.key, r0.machine, r0.state, r0.version + 1))

    go(test, retries=0)


def test_a_record_read_but_not_written_is_checked_too(go: Callable[..., None]) -> None:
    """StartFrame writes only the frame, but its system guard read the run: a cancel in between must win."""

    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        other = Driver(store.inner)
        body = {**FLOW_KEYS}
        await driver.create_all(FLOW, body)
        await driver.act(FLOW, body, Action("run", lf.StartRun()))
        store.before_commit.append(lambda: _discard(other.act(FLOW, body, Action("run", lf.CancelRun()))))
        acted = await driver.act(FLOW, body, Action("root", lf.StartFrame()))
        assert not acted.accepted and acted.attempts == 2 and slept == [0.005]
        assert isinstance(acted.blocked, Blocked) and acted.blocked.why == "run_running"
        assert (await store.load("f1/root")).version == 1
        last = (await store.read_log("f1/root"))[-1]
        assert (last.kind, last.data) == (
            "blocked",
            {"input": {"type": "StartFrame"}, "at": "root", "routed": False, "refused": {"type": "StartFrame"},
             "reason": "system_guard", "guards": ["run_running"]},
        )

    go(test)


def test_feed_and_act_return_the_accepted_or_the_refused_form(go: Callable[..., None]) -> None:
    """Each form fixes ``accepted`` (a literal, so testing it narrows the type) and what goes with it."""
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create("in1", "input")
        fed = await driver.feed("in1", Queue())
        assert type(fed) is FedAccepted and isinstance(fed, Fed)
        assert (fed.accepted, fed.rejection, fed.effects) == (True, None, (InputQueued(),))
        refused = await driver.feed("in1", Apply("r0"))
        assert type(refused) is FedRejected and isinstance(refused, Fed)
        assert refused == FedRejected(fed.record, Rejected(Reason.NO_TRANSITION, InputPhase.QUEUED, Apply("r0")), 1)
        assert (refused.accepted, refused.effects) == (False, ())

        await driver.create_all(FLOW, FLOW_KEYS)
        blocked = await driver.act(FLOW, FLOW_KEYS, Action("root", lf.StartFrame()))  # the run has not started
        assert type(blocked) is ActedBlocked and isinstance(blocked, Acted)
        assert (blocked.accepted, blocked.effects, blocked.blocked.why) == (False, (), "run_running")
        acted = await driver.act(FLOW, FLOW_KEYS, Action("run", lf.StartRun()))
        assert type(acted) is ActedAccepted and isinstance(acted, Acted)
        assert (acted.accepted, acted.blocked, acted.records["run"].version) == (True, None, 2)

    go(test)


def test_feed_takes_its_input_by_the_old_keyword_for_one_release_and_warns() -> None:
    """``event=`` named the input; an event is what a log records, so the parameter is ``input``."""
    async def main() -> None:
        driver = Driver(MemoryStore(CATALOG))
        await driver.create("in1", "input")
        renamed = r"Driver.feed\(event=...\) is renamed Driver.feed\(input=...\)"
        with pytest.warns(DeprecationWarning, match=renamed) as got:
            fed = await driver.feed("in1", event=Queue())
        assert fed.accepted and got[0].filename == __file__  # the warning points at the caller
        assert (await driver.feed("in1", input=Stage("r1"))).accepted
        with pytest.raises(TypeError, match="missing 1 required argument: 'input'"):
            await driver.feed("in1")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="got 'input' and its old name 'event' together"):
            await driver.feed("in1", Apply("r1"), event=Apply("r1"))  # type: ignore[call-overload]
        assert (await driver.store.load("in1")).version == 3  # the refused calls wrote nothing

    asyncio.run(main())


def test_a_routed_rejection_blocks_the_action_and_is_recorded_on_the_acting_instance(go: Callable[..., None]) -> None:
    async def test(store: Recording, driver: Driver, slept: list[float]) -> None:
        await driver.create_all(FLOW, FLOW_KEYS)
        for action in FLOW_PREFIX:
            await driver.act(FLOW, FLOW_KEYS, action)
        await driver.act(FLOW, FLOW_KEYS, Action("run", lf.CancelRun()))  # the run record is now terminal
        before = await snapshot(store)
        acted = await driver.act(FLOW, FLOW_KEYS, Action("loop", lf.StartLoop()))
        assert isinstance(acted.blocked, Blocked) and acted.blocked.instance == "run" and acted.blocked.routed
        after = await snapshot(store)
        assert [r for r, _ in after] == [r for r, _ in before]
        last = (await store.read_log("f1/loop"))[-1]
        assert last.kind == "blocked" and last.data["reason"] == "terminal" and last.data["at"] == "run"
        assert last.data["refused"] == {"type": "NoteLoop", "loop": "loop"}

    go(test)


# -- a session with three inputs, on a SQLite file -----------------------------------------


SESSION_SCRIPT = (
    AttachExecutor(),
    AcceptInput("in1"),
    AcceptInput("in2"),
    AcceptInput("in3"),
    StartRun("r1", "in1"),
    ApplyRun("r1"),
    CommitRun("r1", "in1"),
    StartRun("r1", "in2"),
    FailRun("r1", "in2"),  # back to the queue: its second attempt follows
    StartRun("r1", "in2"),
    ApplyRun("r1"),
    CommitRun("r1", "in2"),
    StartRun("r1", "in3"),
    ApplyRun("r1"),
    CommitRun("r1", "in3"),
    Stop(),
)


def test_a_session_with_three_inputs_runs_to_completion_on_a_sqlite_file(tmp_path: Path) -> None:
    system = SESSION_INPUTS
    keys = {name: f"s1/{name}" for name in system.names}

    async def main() -> None:
        async with await SqliteStore.open(tmp_path / "session.db", CATALOG) as store:
            driver = Driver(store)
            await driver.create_all(system, keys)
            state = system.initial
            blocked = await driver.act(system, keys, Action("session", StartRun("r1", "in1")))
            assert not blocked.accepted  # nothing accepted yet, and no executor
            for event in SESSION_SCRIPT:
                out = system.step(state, Action("session", event))
                assert isinstance(out, Accepted), out
                state = out.state
                acted = await driver.act(system, keys, Action("session", event))
                assert acted.accepted and acted.state == state and acted.effects == out.effects
        assert system.is_terminal(state)
        async with await SqliteStore.open(tmp_path / "session.db", CATALOG) as store:  # read back from the file
            for name in system.names:
                record = await store.load(keys[name])
                assert record.state == getattr(state, name)
                log = await store.read_log(keys[name])
                assert log[-1].terminal and log[-1].kind == "terminal"
                if name != "session":  # replaying an input's own log reproduces its stored state
                    replayed = Input(max_attempts=2)
                    for e in log:
                        if e.kind in ("input", "routed"):
                            event = Driver(store).parse("input", e.data)
                            result = step(INPUT, replayed, event)
                            assert isinstance(result, Accepted)
                            replayed = result.state
                    assert replayed == record.state
            session_log = await store.read_log(keys["session"])
            assert kinds(session_log).count("input") == len(SESSION_SCRIPT)
            assert kinds(session_log).count("blocked") == 1
            assert (await store.load(keys["in2"])).state.attempts == 2

    asyncio.run(main())


# -- cancellations and Busy: retried by batch id, applied once ---------------------------------


class Flaky:
    """A batch store whose next commits fail as told: "busy" or "io" (nothing written), "cancel_after"
    (written, then the caller is cancelled: its outcome unknown to it), "lost_after" or "lost_before"
    (the reply lost, `UnknownOutcome`, after the batch was written or without writing it)."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.catalog = inner.catalog
        self.faults: list[str] = []
        self.ids: list[str | None] = []

    async def commit(self, ops: Sequence[Op], *, batch: str | None = None) -> None:
        self.ids.append(batch)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "busy":
            raise Busy("locked", key=ops[0].key)
        if fault == "io":
            raise Io("the server went away", key=ops[0].key)
        if fault == "lost_before":
            raise UnknownOutcome("the reply was lost", key=ops[0].key)
        await self.inner.commit(ops, batch=batch)
        if fault == "cancel_after":
            raise asyncio.CancelledError()
        if fault == "lost_after":
            raise UnknownOutcome("the reply was lost", key=ops[0].key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_feed_cancelled_after_its_commit_is_not_applied_twice_on_retry() -> None:
    async def main() -> None:
        store = Flaky(MemoryStore(CATALOG))
        driver = Driver(store)
        await driver.create("in1", "input")
        store.faults = ["cancel_after"]
        with pytest.raises(asyncio.CancelledError):
            await driver.feed("in1", Queue())
        fed = await driver.feed("in1", Queue())  # the retry re-submits the same batch by id
        assert type(fed) is FedAccepted and fed.record.version == 2 and fed.attempts == 1
        assert store.ids[-1] == store.ids[-2] is not None
        assert (await store.load("in1")).version == 2
        assert [e.kind for e in await store.read_log("in1")] == ["created", "input", "effect"]
        again = await driver.feed("in1", Queue())  # a new feed is a new decision: rejected now
        assert not again.accepted

    asyncio.run(main())


def test_busy_is_retried_with_the_same_batch_id() -> None:
    async def main() -> None:
        store = Flaky(MemoryStore(CATALOG))
        sleeps: list[float] = []

        async def sleep(s: float) -> None:
            sleeps.append(s)

        driver = Driver(store, retries=3, backoff=0.01, sleep=sleep)
        await driver.create("in1", "input")
        store.faults = ["busy", "busy"]
        fed = await driver.feed("in1", Queue())
        assert fed.accepted and fed.record.version == 2 and sleeps == [0.01, 0.02]
        assert len(set(store.ids[-3:])) == 1
        store.faults = ["busy"] * 4
        with pytest.raises(Busy):
            await driver.feed("in1", Stage("r1"))
        assert (await store.load("in1")).version == 2

    asyncio.run(main())


def test_one_driver_shared_by_concurrent_tasks_applies_each_decision_once(tmp_path: Path) -> None:
    """Two tasks feeding the same input through ONE driver decide at the same version and head.

    Their batches are equal operation for operation, yet they are two requests:
    the second must lose its race and be decided again (rejected: the input is
    already queued), not be told that the first one's batch was its own.
    """

    async def main() -> None:
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG) as store:
            driver = Driver(store)
            for i in range(20):
                await driver.create(f"in{i}", "input")
            outcomes = await asyncio.gather(*(driver.feed(f"in{i // 2}", Queue()) for i in range(40)))
            for i in range(20):
                pair = outcomes[2 * i: 2 * i + 2]
                assert sorted(f.accepted for f in pair) == [False, True], pair
                log = [e.kind for e in await store.read_log(f"in{i}")]
                assert log == ["created", "input", "effect", "rejected"], log
                assert (await store.load(f"in{i}")).version == 2

    asyncio.run(main())


def test_a_lost_reply_is_settled_by_resubmitting_the_batch_by_id() -> None:
    """`UnknownOutcome` from the store: the driver re-submits the same batch (same id) until the store answers."""

    async def main() -> None:
        store = Flaky(MemoryStore(CATALOG))
        sleeps: list[float] = []

        async def sleep(s: float) -> None:
            sleeps.append(s)

        driver = Driver(store, retries=3, backoff=0.01, sleep=sleep)
        await driver.create("in1", "input")
        store.faults = ["lost_after"]  # it had committed: the re-submission is recognised
        fed = await driver.feed("in1", Queue())
        assert fed.accepted and fed.record.version == 2 and store.ids[-1] == store.ids[-2] and sleeps == [0.01]
        store.faults = ["lost_before", "io", "busy"]  # it had not: the re-submission applies it, once
        fed = await driver.feed("in1", Stage("r1"))
        assert fed.accepted and fed.record.version == 3 and len(set(store.ids[-4:])) == 1
        assert kinds(await store.read_log("in1")) == ["created"] + ["input", "effect"] * 2
        # the store stays out of reach: still unknown, and so the caller is told -- and the batch remembered
        store.faults = ["lost_after", "io", "io", "io"]
        with pytest.raises(UnknownOutcome) as info:
            await driver.feed("in1", Apply("r1"))
        assert info.value.code == "unknown_outcome" and "re-submitting it failed too" in str(info.value)
        again = await driver.feed("in1", Apply("r1"))  # the same input again: the batch, re-submitted by id
        assert again.accepted and again.record.version == 4 and store.ids[-1] == store.ids[-2]
        assert kinds(await store.read_log("in1")) == ["created"] + ["input", "effect"] * 3

    asyncio.run(main())
