"""Linearizability of store histories: the checker on hand-written histories, on real multi-process runs, and as a command.

The real runs race separate OS processes (``forkserver`` children, like
`test_reliability`) on one SQLite file or PostgreSQL database
(`tests.adapters._backends`), each through a `Recorder` writing its own JSON
Lines file; the merged history must be linearizable, and a store that checks
the version and then writes unconditionally (over SQLite) must be caught with
a small counterexample. Batch ids are part of the history: a re-submitted
batch that had taken effect succeeds and applies nothing.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing as mp
import random
import time
import traceback
from collections.abc import Sequence
from multiprocessing.synchronize import Barrier
from pathlib import Path
from dataclasses import replace
from typing import Any

import pytest

from statewright.adapters.cli import run
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Cas,
    Conflict,
    Op,
    Record,
    Store,
    StoreError,
    batch_id,
)
from statewright.adapters.testing.linearizability import (
    DONE,
    Call,
    HistoryVerdict,
    OpKind,
    Operation,
    Recorder,
    Response,
    Write,
    _Search,
    _removable,
    check_history,
    load_history,
    pending,
    render,
)
from tests.adapters._backends import BACKENDS, locator, open_store, run_together
from tests.adapters._workers import tagged
from tests.adapters.test_store_contract import CATALOG

KEYS = ("k0", "k1", "k2")
TERMINAL_KEYS = ("t0", "t1")
RACERS = 4
STEPS = 100
JOIN_TIMEOUT = 120.0

# -- hand-written histories ---------------------------------------------------------------


def cas(key: str, expected: int, state: str = "{}") -> Call:
    return Call(OpKind.CAS, writes=(Write(OpKind.CAS, key, expected, state, "m" if expected == 0 else None),))


def append(key: str, expected: int, events: int = 1) -> Call:
    return Call(OpKind.APPEND, writes=(Write(OpKind.APPEND, key, expected, events=events),))


def terminal(key: str) -> Call:
    return Call(OpKind.APPEND_TERMINAL, writes=(Write(OpKind.APPEND_TERMINAL, key),))


def load(key: str) -> Call:
    return Call(OpKind.LOAD, key)


def commit(*calls: Call) -> Call:
    return Call(OpKind.COMMIT, writes=tuple(w for c in calls for w in c.writes))


def loaded(version: int, state: Any = None) -> Response:
    return Response.ok({"machine": "m", "version": version, "state": {} if state is None else state})


def op(process: str, invoke: int, returned: int | None, call: Call, result: Response | None) -> Operation:
    return Operation(process, invoke, returned, call, result)


CONFLICT = Response(error="conflict")
CREATE = op("p0", 0, 1, cas("k", 0), Response.ok(1))


def test_a_concurrent_history_that_has_an_order_is_linearizable() -> None:
    history = [
        CREATE,
        op("p1", 2, 10, cas("k", 1), Response.ok(2)),
        op("p2", 3, 5, load("k"), loaded(1)),  # before p1's cas took effect
        op("p3", 4, 12, cas("k", 1), CONFLICT),  # lost to p1
        op("p2", 11, 13, load("k"), loaded(2)),
        op("p1", 14, 30, append("k", 0, 2), Response.ok(2)),
        op("p3", 15, 20, terminal("k"), Response.ok(3)),  # took effect after p1's append, both concurrent
        op("p2", 31, 32, append("k", 3), CONFLICT),  # the log has ended
    ]
    result = check_history(history)
    assert result.verdict is HistoryVerdict.LINEARIZABLE
    assert result.summary() == "linearizable: 8 operations, 4 processes, 1 keys"


def test_a_stale_read_is_caught_and_shrunk_to_the_write_and_the_read() -> None:
    history = [
        CREATE,
        op("p1", 2, 3, cas("k", 1), Response.ok(2)),
        op("p2", 2, 3, load("k"), loaded(1)),  # concurrent: may see either
        op("p2", 4, 5, load("k"), loaded(1)),  # after p1's cas returned: stale
    ]
    result = check_history(history)
    assert result.verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert result.counterexample == (history[1], history[3])
    assert result.report().splitlines() == [
        "not linearizable: 4 operations, 3 processes, 1 keys",
        "minimal non-linearizable sub-history (2 operations):",
        "  p1 [0.0 .. 0.0 µs] cas k expected=1 state={} -> ok 2",
        '  p2 [0.0 .. 0.0 µs] load k -> ok {"machine":"m","state":{},"version":1}',
    ]


def test_a_lost_update_is_caught_as_two_writes_at_one_version() -> None:
    history = [
        CREATE,
        op("p1", 2, 6, cas("k", 1, '"a"'), Response.ok(2)),
        op("p2", 3, 5, cas("k", 1, '"b"'), Response.ok(2)),
    ]
    result = check_history(history)
    assert result.verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert result.counterexample == (history[1], history[2])


def test_a_pending_operation_may_or_may_not_have_taken_effect_but_not_both() -> None:
    maybe = pending(op("p1", 2, 3, cas("k", 1), Response.ok(2)))
    assert render(maybe) == "p1 [0.0 .. ... µs] cas k expected=1 state={} -> pending"
    took = op("p2", 5, 6, load("k"), loaded(2))
    did_not = op("p2", 5, 6, load("k"), loaded(1))
    assert check_history([CREATE, maybe, took]).verdict is HistoryVerdict.LINEARIZABLE
    assert check_history([CREATE, maybe, did_not]).verdict is HistoryVerdict.LINEARIZABLE
    undone = op("p2", 7, 8, load("k"), loaded(1))
    result = check_history([CREATE, maybe, took, undone])
    assert result.verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert result.counterexample == (took, undone)  # whatever the cas did, versions do not go back


def test_a_batch_joins_its_keys_and_is_all_or_nothing() -> None:
    both = [CREATE, op("p0", 2, 3, cas("j", 0), Response.ok(1))]
    failed = op("p1", 4, 5, commit(cas("k", 1), cas("j", 7)), CONFLICT)
    assert check_history([*both, failed, op("p1", 6, 7, load("k"), loaded(1))]).summary() == (
        "linearizable: 4 operations, 2 processes, 2 keys"
    )
    half = check_history([*both, failed, op("p1", 6, 7, load("k"), loaded(2))])  # the failed batch's first write leaked
    assert half.verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert half.counterexample == (CREATE, half.counterexample[-1])  # version 2 with no write that succeeded
    done = op("p1", 4, 5, commit(cas("k", 1), append("j", 0)), Response.ok(None))
    assert check_history([*both, done, op("p2", 6, 7, load("k"), loaded(2))]).verdict is HistoryVerdict.LINEARIZABLE


def by_id(call: Call, batch: str) -> Call:
    return Call(OpKind.COMMIT, writes=call.writes, batch=batch)


def test_a_batch_id_takes_effect_at_most_once() -> None:
    both = [CREATE, op("p0", 2, 3, cas("j", 0), Response.ok(1))]
    first = op("p1", 4, 5, by_id(commit(cas("k", 1), append("j", 0)), "b1"), Response.ok(None))
    again = op("p1", 6, 7, by_id(commit(cas("k", 1), append("j", 0)), "b1"), Response.ok(None))  # nothing applied
    history = [*both, first, again, op("p2", 8, 9, load("k"), loaded(2))]
    assert check_history(history).summary() == "linearizable: 5 operations, 3 processes, 2 keys"
    twice = check_history([*both, first, again, op("p2", 8, 9, load("k"), loaded(3))])
    assert twice.verdict is HistoryVerdict.NOT_LINEARIZABLE  # version 3: the re-submission applied again
    unknown_first = [*both, pending(first), again]  # cut short: landed or not, the re-submission settles it
    assert check_history([*unknown_first, op("p2", 8, 9, load("k"), loaded(2))]).verdict is HistoryVerdict.LINEARIZABLE
    refused = op("p1", 6, 7, by_id(commit(cas("k", 1), append("j", 0)), "b1"), CONFLICT)
    # its id was recorded: ok, not conflict
    assert check_history([*both, first, refused]).verdict is HistoryVerdict.NOT_LINEARIZABLE
    failed = op("p1", 4, 5, by_id(commit(cas("k", 7), append("j", 0)), "b2"), CONFLICT)  # failed: no id left
    retried = op("p1", 6, 7, by_id(commit(cas("k", 7), append("j", 0)), "b2"), CONFLICT)
    assert check_history([*both, failed, retried]).verdict is HistoryVerdict.LINEARIZABLE
    assert render(again) == (
        "p1 [0.0 .. 0.0 µs] commit [cas k expected=1 state={}; append j expected=0 events=1] batch=b1 -> ok null")


def receipt(batch: str) -> Call:
    return Call(OpKind.RECEIPT, batch=batch)


def test_a_batch_id_taken_by_other_writes_refuses_them() -> None:
    """A request decided twice at different versions: the second decision finds its id taken (already_applied)."""
    first = op("p1", 2, 3, Call(OpKind.COMMIT, writes=cas("k", 1).writes, batch="r1", outcome='{"n":1}'), DONE)
    second = Call(OpKind.COMMIT, writes=cas("k", 2).writes, batch="r1", outcome='{"n":2}')
    refused = op("p2", 4, 5, second, Response(error="already_applied"))
    after = op("p2", 6, 7, load("k"), loaded(2))
    assert check_history([CREATE, first, refused, after]).summary() == "linearizable: 4 operations, 3 processes, 1 keys"
    # told success instead, and nothing applied: a store that cannot tell another decision from a re-submission
    assert check_history([CREATE, first, replace(refused, result=DONE), after]).verdict is HistoryVerdict.NOT_LINEARIZABLE
    # refused with no commit under the id having taken effect
    alone = op("p2", 4, 5, second, Response(error="already_applied"))
    assert check_history([CREATE, alone]).verdict is HistoryVerdict.NOT_LINEARIZABLE
    # the first one cut short (killed after COMMIT): the refusal says it took effect, so version 2 it is
    cut = [CREATE, pending(first), refused]
    assert check_history([*cut, after]).verdict is HistoryVerdict.LINEARIZABLE
    assert check_history([*cut, op("p2", 6, 7, load("k"), loaded(1))]).verdict is HistoryVerdict.NOT_LINEARIZABLE


def test_a_receipt_reads_what_a_batch_id_was_recorded_with() -> None:
    first = op("p1", 2, 3, Call(OpKind.COMMIT, writes=cas("k", 1).writes, batch="r1", outcome='{"n":1}'), DONE)
    before = op("p2", 0, 1, receipt("r1"), Response.ok(None))
    seen = op("p2", 4, 5, receipt("r1"), Response.ok({"outcome": {"n": 1}}))
    assert check_history([CREATE, before, first, seen]).summary() == "linearizable: 4 operations, 3 processes, 1 keys"
    wrong = replace(seen, result=Response.ok({"outcome": {"n": 2}}))
    assert check_history([CREATE, before, first, wrong]).verdict is HistoryVerdict.NOT_LINEARIZABLE
    stale = replace(seen, result=Response.ok(None))  # after the commit returned, the id is recorded
    assert check_history([CREATE, before, first, stale]).verdict is HistoryVerdict.NOT_LINEARIZABLE
    # overlapping a commit cut short, a receipt may see it or not; once it saw it, it stays seen
    assert check_history([CREATE, pending(first), stale]).verdict is HistoryVerdict.LINEARIZABLE
    assert check_history([CREATE, pending(first), seen]).verdict is HistoryVerdict.LINEARIZABLE
    later = op("p3", 6, 7, receipt("r1"), Response.ok(None))
    assert check_history([CREATE, pending(first), seen, later]).verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert render(seen) == 'p2 [0.0 .. 0.0 µs] receipt r1 -> ok {"outcome":{"n":1}}'


def test_a_log_head_is_the_last_seq_and_the_terminal_flag() -> None:
    head = Call(OpKind.LOG_HEAD, "k")
    history = [CREATE, op("p1", 2, 3, append("k", 0, 2), Response.ok(2)), op("p2", 4, 5, head, Response.ok([2, False])),
               op("p1", 6, 7, terminal("k"), Response.ok(3)), op("p2", 8, 9, head, Response.ok([3, True]))]
    assert check_history(history).verdict is HistoryVerdict.LINEARIZABLE
    wrong = [*history[:3], op("p2", 4, 5, head, Response.ok([1, False]))]
    assert check_history(wrong).verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert check_history([op("p2", 0, 1, head, Response.ok([0, False]))]).verdict is HistoryVerdict.LINEARIZABLE


def resubmitted(history: Sequence[Operation]) -> list[Operation]:
    """The successful commits whose batch id an earlier successful commit already carried."""
    seen: set[str] = set()
    out = []
    for o in sorted(history, key=lambda o: o.invoke):
        if o.call.batch is not None and o.result is not None and o.result.error is None:
            if o.call.batch in seen:
                out.append(o)
            seen.add(o.call.batch)
    return out


def test_busy_and_invalid_state_wrote_nothing_and_are_left_out() -> None:
    history = [CREATE, op("p1", 2, 3, cas("k", 1), Response(error="busy")),
               op("p1", 4, 5, cas("k", 1), Response(error="invalid_state")), op("p2", 6, 7, load("k"), loaded(1))]
    assert check_history(history).summary() == "linearizable: 2 operations, 2 processes, 1 keys"


def test_a_search_past_its_step_budget_is_unknown() -> None:
    """9 steps to prepare 9 operations; 2 for the create (a segment alone); 8 to set out the loads, 8 to place them."""
    history = [CREATE, *(op(f"p{i}", 2, 9, load("k"), loaded(1)) for i in range(8))]
    assert check_history(history).steps == 9 + 2 + 8 + 8
    size = "(9 operations, 8 processes, 1 keys)"
    for budget in (3, 9 + 2 + 3, 9 + 2 + 8 + 3):  # spent preparing, setting out the loads' segment, placing them
        result = check_history(history, max_steps=budget)
        assert result.verdict is HistoryVerdict.UNKNOWN
        assert result.summary() == f"unknown: step budget spent after {budget + 1} steps {size}"


@pytest.mark.parametrize(("old", "new"), [
    ("Check", "HistoryCheck"), ("Kind", "OpKind"), ("Result", "Response"), ("Verdict", "HistoryVerdict"),
    ("check", "check_history"),
])
def test_the_old_names_still_work_for_one_release_and_warn(old: str, new: str) -> None:
    """They also named the checker's verdicts, property kinds and entry point, so they were renamed."""
    from statewright.adapters.testing import linearizability

    message = f"statewright.adapters.testing.linearizability.{old} is renamed {new}"
    with pytest.warns(DeprecationWarning, match=message):
        assert getattr(linearizability, old) is getattr(linearizability, new)
    assert old not in linearizability.__all__ and new in linearizability.__all__
    with pytest.raises(AttributeError, match="has no attribute 'Checks'"):
        linearizability.Checks  # noqa: B018 - only renamed names are looked up


def test_the_model_agrees_with_memory_store_on_random_sequential_histories() -> None:
    """One process: the history has one order, so it is linearizable iff every result is the model's."""
    rng = random.Random(7)

    async def body() -> list[Operation]:
        store = Recorder(MemoryStore(CATALOG), "solo")
        for j in range(400):
            await _random_step(store, rng, j, ("a", "b", "c"), ("b", "c"), blind=True)  # a never ends
        return store.operations()

    history = asyncio.run(body())
    kinds = {o.call.kind for o in history}
    errors = {o.result.error for o in history if o.result is not None}
    assert kinds == set(OpKind)
    assert errors >= {None, "conflict", "not_found", "already_applied"}  # failures as well as successes were compared
    assert resubmitted(history)  # and batches re-submitted by id
    assert check_history(history).verdict is HistoryVerdict.LINEARIZABLE


# -- a random client, in tests and in worker processes --------------------------------------


async def _random_step(store: Any, rng: random.Random, j: int, keys: Sequence[str], ends: Sequence[str],
                       *, blind: bool = False, tag: str = "w") -> None:
    """One random client step: a load-then-cas, a read-then-append, a terminal, or a two-key batch (by id or not)."""
    key = rng.choice(keys)
    state = tagged(f"{tag}:{j}")
    try:
        roll = rng.random()
        if roll < 0.4:
            version = rng.randrange(0, 6) if blind else (await store.load(key)).version
            await store.cas(key, version, state, machine="input" if version == 0 else None)
        elif roll < 0.6:
            head = rng.randrange(0, 4) if blind else len(await store.read_log(key))
            await store.append(key, head, [("Tick", {"j": j})])
        elif roll < 0.7:
            await store.append_terminal(rng.choice(ends), "End", {"j": j})
        elif roll < 0.75:
            await store.read_log(key, rng.randrange(1, 3), rng.choice([None, 2, 4]))
        elif roll < 0.8:
            if rng.random() < 0.8:
                await store.log_head(key)
            else:
                await store.receipt(f"{tag}:never:{j}")  # an id no commit names: not recorded
        else:
            other = rng.choice([k for k in keys if k != key])
            a, b = await store.load(key), await store.load(other)
            head = len(await store.read_log(key))
            ops: list[Op] = [Cas(key, a.version, state), Cas(other, b.version, state),
                             Append(key, head, (("Batch", {"j": j}),))]
            if rng.random() < 0.2:
                ops.append(AppendTerminal(other, "End", {"j": j}))
            once = batch_id(ops) if rng.random() < 0.75 else None
            outcome = {"tag": tag, "j": j} if once is not None and rng.random() < 0.5 else None
            await store.commit(ops, batch=once, outcome=outcome)
            if once is not None:
                await store.commit(ops, batch=once, outcome=outcome)  # re-submitted: the first outcome, nothing applied
                if rng.random() < 0.5:
                    await store.receipt(once)  # what the id was recorded with
                if rng.random() < 0.5:
                    await store.commit(ops[:1], batch=once)  # another batch under a taken id: already_applied
    except StoreError:
        pass


def racer(locator: str, worker: int, broken: bool, barrier: Barrier, out: str) -> None:
    """A worker process: ``STEPS`` random steps on the shared store through a `Recorder` writing ``out``."""
    async def body() -> None:
        rng = random.Random(worker)
        async with await open_store(locator) as inner:  # closed even on failure: its thread would linger
            store: Any = BrokenStore(inner) if broken else inner
            with open(out, "w", encoding="utf-8") as f:
                recorder = Recorder(store, f"w{worker}", f)
                barrier.wait(timeout=60)
                for j in range(STEPS):
                    if not broken:
                        await _random_step(recorder, rng, j, KEYS, TERMINAL_KEYS, tag=f"w{worker}")
                        continue
                    try:
                        await recorder.cas("k0", (await recorder.load("k0")).version, tagged(f"w{worker}:{j}"))
                    except StoreError:
                        pass

    try:
        asyncio.run(body())
    except BaseException:
        Path(out + ".error").write_text(traceback.format_exc())


class BrokenStore:
    """A store whose cas checks the version, then writes whatever is there now: a lost update."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.catalog = inner.catalog

    async def load(self, key: str) -> Record:
        return await self.inner.load(key)

    async def cas(self, key: str, expected: int, state: Any, *, machine: str | None = None) -> Record:
        if (await self.inner.load(key)).version != expected:
            raise Conflict(f"{key!r} is not at version {expected}", key=key)
        await asyncio.sleep(0.002)  # the window another process writes in
        while True:
            try:  # an unconditional write, spelled with the public API
                written = await self.inner.cas(key, (await self.inner.load(key)).version, state)
            except Conflict:
                continue
            return Record(key, written.machine, written.state, expected + 1)  # what the caller believes


def _context() -> Any:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.adapters.test_linearizability"])
    return ctx


CTX = _context()


def race(locator: str, tmp_path: Path, broken: bool) -> list[Path]:
    """Create the keys (recorded as process ``setup``), race ``RACERS`` processes; every history file."""
    files = [tmp_path / "setup.jsonl"]

    async def setup() -> None:
        async with await open_store(locator) as inner:
            with open(files[0], "w", encoding="utf-8") as f:
                store = Recorder(inner, "setup", f)
                for key in KEYS + TERMINAL_KEYS:
                    await store.cas(key, 0, tagged(None), machine="input")

    asyncio.run(setup())
    barrier = CTX.Barrier(RACERS + 1)
    outs = [tmp_path / f"w{i}.jsonl" for i in range(RACERS)]
    procs = [CTX.Process(target=racer, args=(locator, i, broken, barrier, str(out))) for i, out in enumerate(outs)]
    run_together(procs, barrier, start_within=60, join_within=JOIN_TIMEOUT)
    errors = [e.read_text() for e in tmp_path.glob("*.error")]
    assert not errors, errors[0]
    assert [p.exitcode for p in procs] == [0] * RACERS
    return files + outs


def stamp(out: str) -> None:
    """A child process's reading of the recorder's clock."""
    Path(out).write_text(str(time.monotonic_ns()))


def test_the_recorders_clock_is_one_clock_for_every_process(tmp_path: Path) -> None:
    """Histories of several processes are merged on ``time.monotonic_ns()``: it must be system-wide (Linux's
    CLOCK_MONOTONIC is), so a child's reading falls between the parent's before the start and after the join."""
    out = tmp_path / "stamp"
    before = time.monotonic_ns()
    child = CTX.Process(target=stamp, args=(str(out),))
    child.start()
    child.join(60)
    after = time.monotonic_ns()
    assert child.exitcode == 0
    assert before < int(out.read_text()) < after


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[linearizability] {text}")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_real_processes_racing_give_a_linearizable_history(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = race(locator(backend, tmp_path, request), tmp_path, broken=False)
    history = load_history(files)
    result = check_history(history)
    assert result.verdict is HistoryVerdict.LINEARIZABLE, result.report()
    assert result.processes == RACERS + 1 and result.keys == len(KEYS) + len(TERMINAL_KEYS)
    done = [o for o in history if o.result is not None]
    ok = sum(1 for o in done if o.result is not None and o.result.error is None)
    conflicts = sum(1 for o in done if o.result is not None and o.result.error == "conflict")
    batches = sum(1 for o in done if o.call.kind is OpKind.COMMIT and o.result is not None and o.result.error is None)
    again = len(resubmitted(history))
    taken = sum(1 for o in done if o.result is not None and o.result.error == "already_applied")
    receipts = sum(1 for o in done if o.call.kind is OpKind.RECEIPT)
    assert len(done) == len(history) and conflicts > 0 and batches > 0 and again > 0 and taken > 0 and receipts > 0
    assert run(["lincheck", *map(str, files)], out=io.StringIO(), err=io.StringIO()) == 0
    say(capsys, f"{backend}: {result.summary()}; {ok} succeeded ({batches} batches, {again} re-submitted by id, "
                f"{taken} refused as taken by other operations, {receipts} receipts read), {conflicts} conflicts; "
                f"checked in {result.seconds:.2f} s, {result.steps:,} search steps")


@pytest.mark.slow
def test_a_store_that_writes_outside_a_transaction_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = race(str(tmp_path / "s.db"), tmp_path, broken=True)
    result = check_history(load_history(files))
    assert result.verdict is HistoryVerdict.NOT_LINEARIZABLE
    small = list(result.counterexample)
    assert 2 <= len(small) <= 4 and {k for o in small for k in o.call.keys} == {"k0"}
    for i in range(len(small)):  # 1-minimal: no operation the shrinker may drop can go and the rest still fail
        rest = small[:i] + small[i + 1:]
        assert (_Search(rest, 10**6, loose=True).run() is HistoryVerdict.LINEARIZABLE
                or not _removable(small[i], rest, True))
    say(capsys, result.report())


# -- the command --------------------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def line(process: str, index: int, invoke: int, returned: int | None, op: dict[str, Any], result: Any) -> str:
    return json.dumps({"process": process, "index": index, "invoke": invoke, "return": returned,
                       "op": op, "result": result})


CREATE_LINE = line("p0", 0, 0, 1, {"kind": "cas", "key": "k", "expected": 0, "state": {}, "machine": "m"}, {"ok": 1})


def test_lincheck_merges_files_and_says_linearizable(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(CREATE_LINE + "\n")
    cas1 = {"kind": "cas", "key": "k", "expected": 1, "state": {"x": 1}, "machine": None}
    b.write_text("\n".join([
        line("p1", 0, 2, None, cas1, None),  # written at invoke ...
        line("p1", 0, 2, 5, cas1, {"ok": 2}),  # ... and again at return: the last one wins
        line("p1", 1, 6, 7, {"kind": "load", "key": "k"}, {"ok": {"machine": "m", "version": 2, "state": {"x": 1}}}),
    ]) + "\n")
    assert cli("lincheck", str(a), str(b)) == (0, "linearizable: 3 operations, 2 processes, 1 keys\n", "")


def test_lincheck_reads_batch_ids(tmp_path: Path) -> None:
    h = tmp_path / "h.jsonl"
    end = {"kind": "commit", "batch": "b1", "ops": [{"kind": "append_terminal", "key": "k", "event": ["End", {}]}]}
    h.write_text("\n".join([
        CREATE_LINE,
        line("p1", 0, 2, 3, end, {"ok": None}),
        line("p1", 1, 4, 5, end, {"ok": None}),  # re-submitted: the log ended once, not refused
        line("p1", 2, 6, 7, {"kind": "read_log", "key": "k", "start": 1, "stop": None}, {"ok": [[1, True]]}),
    ]))
    assert cli("lincheck", str(h)) == (0, "linearizable: 4 operations, 2 processes, 1 keys\n", "")
    h.write_text(h.read_text().replace('"batch": "b1", ', ""))  # without the id the second one must conflict
    assert cli("lincheck", str(h))[0] == 1


def test_lincheck_reads_outcomes_receipts_and_log_heads(tmp_path: Path) -> None:
    h = tmp_path / "h.jsonl"
    cas1 = {"kind": "cas", "key": "k", "expected": 1, "state": {}, "machine": None}
    cas2 = {**cas1, "expected": 2}
    h.write_text("\n".join([
        CREATE_LINE,
        line("p1", 0, 2, 3, {"kind": "commit", "batch": "r1", "outcome": {"n": 1}, "ops": [cas1]}, {"ok": None}),
        line("p2", 0, 4, 5, {"kind": "commit", "batch": "r1", "outcome": {"n": 2}, "ops": [cas2]},
             {"error": "already_applied"}),
        line("p2", 1, 6, 7, {"kind": "receipt", "batch": "r1"}, {"ok": {"outcome": {"n": 1}}}),
        line("p2", 2, 8, 9, {"kind": "log_head", "key": "k"}, {"ok": [0, False]}),
    ]))
    assert cli("lincheck", str(h)) == (0, "linearizable: 5 operations, 3 processes, 1 keys\n", "")
    h.write_text(h.read_text().replace('{"outcome": {"n": 1}}}', '{"outcome": {"n": 2}}}'))  # the other one's
    assert cli("lincheck", str(h))[0] == 1


def test_lincheck_prints_the_minimal_counterexample_and_exits_1(tmp_path: Path) -> None:
    h = tmp_path / "h.jsonl"
    cas1 = {"kind": "cas", "key": "k", "expected": 1, "state": None, "machine": None}
    h.write_text("\n".join([CREATE_LINE, line("p1", 0, 2, 6, cas1, {"ok": 2}), line("p2", 0, 3, 5, cas1, {"ok": 2})]))
    code, out, _ = cli("lincheck", str(h))
    assert code == 1
    assert out.splitlines() == [
        "not linearizable: 3 operations, 3 processes, 1 keys",
        "minimal non-linearizable sub-history (2 operations):",
        "  p1 [0.0 .. 0.0 µs] cas k expected=1 state=null -> ok 2",
        "  p2 [0.0 .. 0.0 µs] cas k expected=1 state=null -> ok 2",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "h.jsonl:2: not JSON: Expecting property name"),
        ('{"process": "p", "index": 0, "invoke": 1, "return": 2, "op": {"kind": "jump"}, "result": {"ok": 1}}',
         "h.jsonl:2: 'jump' is not a valid OpKind"),
        ('{"process": "p", "index": 0, "invoke": 5, "return": 2, "op": {"kind": "load", "key": "k"}, '
         '"result": {"ok": 1}}', "h.jsonl:2: returned at 2, before its invoke at 5"),
        ('{"process": "p", "index": 0, "invoke": 1, "return": 2, "op": {"kind": "load", "key": "k"}, "result": 3}',
         "h.jsonl:2: 'result' must be"),
        ('{"process": "p", "index": 0, "invoke": 1, "return": 2, "op": {"kind": "commit", "batch": 7, "ops": '
         '[{"kind": "append_terminal", "key": "k", "event": ["End", {}]}]}, "result": {"ok": null}}',
         "h.jsonl:2: 'batch' must be a string or null"),
        ('{"process": "p", "index": 0, "invoke": 1, "return": 2, "op": {"kind": "commit", "outcome": 1, "ops": '
         '[{"kind": "append_terminal", "key": "k", "event": ["End", {}]}]}, "result": {"ok": null}}',
         "h.jsonl:2: an 'outcome' is recorded with a batch id"),
    ],
)
def test_lincheck_names_the_line_of_a_malformed_history(tmp_path: Path, text: str, message: str) -> None:
    h = tmp_path / "h.jsonl"
    h.write_text(CREATE_LINE + "\n" + text + "\n")
    code, out, err = cli("lincheck", str(h))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and message in err, err


def test_lincheck_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = cli("lincheck", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl: cannot read" in err and len(err.splitlines()) == 1
