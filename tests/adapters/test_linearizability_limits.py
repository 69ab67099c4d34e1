"""The linearizability checker under hostile histories: bounded memory, a step budget over the whole run, typed errors.

Issue 17, item 18: deep-nested JSON, ``/dev/zero``, process ids ``1`` and
``"1"``, 300,000 sequential operations on one key and a 5-million-event append
read back 20 times each broke ``statewright lincheck`` (a traceback, a
MemoryError, a silent merge, hours of work under ``--max-steps 100``). Each is
here at the size the issue names or scaled down, with the sizes that matter
(steps spent, memo entries held, verdicts) asserted exactly -- never a time.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.cli import run
from statewright.adapters.testing.linearizability import (
    ABSENT,
    LOOSE,
    READS,
    Call,
    HistoryError,
    HistoryVerdict,
    OpKind,
    Operation,
    Response,
    Write,
    _apply,
    _log_read,
    _Search,
    _Segment,
    check_files,
    check_history,
    load_history,
    pending,
)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def line(process: Any, index: int, invoke: int, returned: int | None, op: dict[str, Any], result: Any) -> str:
    return json.dumps({"process": process, "index": index, "invoke": invoke, "return": returned, "op": op,
                       "result": result}, separators=(",", ":")) + "\n"


CREATE = {"kind": "cas", "key": "k", "expected": 0, "state": {}, "machine": "m"}
LOAD = {"kind": "load", "key": "k"}


def write(path: Path, *lines: str) -> str:
    path.write_text("".join(lines))
    return str(path)


# -- bad input: one line, exit 2, never a traceback ------------------------------------------------


def test_deep_nested_json_is_a_one_line_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    as_state = line("p", 0, 1, 2, CREATE, {"ok": 1}).replace('"state":{}', f'"state":{deep}')
    for text in (deep + "\n", as_state):
        h = write(tmp_path / "deep.jsonl", line("p", 0, 1, 2, LOAD, {"error": "not_found"}), text)
        code, out, err = cli("lincheck", h)
        assert (code, out) == (2, "")
        assert err == f"statewright: error: {h}:2: JSON nested too deep (more than 500 levels)\n"


def test_json_deep_enough_for_the_parser_but_past_the_limit_is_refused_too(tmp_path: Path) -> None:
    """600 levels load without a RecursionError; the limit still refuses them, so no later step can recurse."""
    state = "[" * 600 + "]" * 600
    text = line("p", 0, 1, 2, CREATE, {"ok": 1}).replace('"state":{}', f'"state":{state}')
    with pytest.raises(HistoryError, match=r"deep.jsonl:1: JSON nested too deep \(more than 500 levels\)$"):
        load_history([write(tmp_path / "deep.jsonl", text)])


def test_a_line_past_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    h = write(tmp_path / "big.jsonl", line("p", 0, 1, 2, LOAD, {"error": "not_found"}), "0" * 5000)  # no newline
    with pytest.raises(HistoryError, match=r"big.jsonl:2: line longer than 4,096 bytes$"):
        load_history([h], max_line_bytes=4096)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_a_one_line_error_not_a_memory_error() -> None:
    """It has no newline: the reader stops at the line limit (256 MiB) instead of reading forever."""
    code, out, err = cli("lincheck", "/dev/zero")
    assert (code, out) == (2, "")
    assert err == "statewright: error: /dev/zero:1: line longer than 268,435,456 bytes\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'\xff\xfe{"process": "p"}\n', "h.jsonl:2: not UTF-8 (byte 0xff at column 1)"),
        (b"{not json\n", "h.jsonl:2: not JSON: Expecting property name enclosed in double quotes (column 2)"),
        (b"[1, 2]\n", "h.jsonl:2: expected a JSON object, got list"),
    ],
)
def test_bytes_that_are_no_history_line_are_one_line_errors(tmp_path: Path, data: bytes, message: str) -> None:
    h = tmp_path / "h.jsonl"
    h.write_bytes(line("p", 0, 1, 2, LOAD, {"error": "not_found"}).encode() + data)
    code, out, err = cli("lincheck", str(h))
    assert (code, out) == (2, "")
    assert err == f"statewright: error: {tmp_path}/{message}\n"


def test_process_ids_1_and_the_string_1_are_refused_not_merged(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", line(1, 0, 1, 2, CREATE, {"ok": 1}))
    b = write(tmp_path / "b.jsonl", line("1", 0, 3, 4, LOAD, {"error": "not_found"}))
    code, out, err = cli("lincheck", a, b)
    assert (code, out) == (2, "")
    assert err == (f"statewright: error: {b}:1: process '1' is a string here but the number 1 at {a}:1; "
                   "name each process one way\n")
    one = write(tmp_path / "one.jsonl", line(1, 0, 1, 2, CREATE, {"ok": 1}), line(1, 1, 3, 4, LOAD, {"error": "x"}))
    assert len(load_history([one])) == 2  # a number used throughout is fine


# -- memory: the memo is dropped at every quiescent point --------------------------------------------


def sequential(path: Path, n: int) -> str:
    """``n`` operations on one key, one after another: a create, then cas after cas (about 120 bytes each)."""
    with open(path, "w") as f:
        f.write(line("w", 0, 1, 2, CREATE, {"ok": 1}))
        for i in range(1, n):
            op = {"kind": "cas", "key": "k", "expected": i, "state": {"n": i, "pad": "x" * 40}, "machine": None}
            f.write(line("w", i, 2 * i + 1, 2 * i + 2, op, {"ok": i + 1}))
    return str(path)


def test_a_long_sequential_history_is_one_segment_per_operation_and_needs_no_memo(tmp_path: Path) -> None:
    """Every operation is a segment of its own, decided from the configurations before it: nothing to remember."""
    h = sequential(tmp_path / "seq.jsonl", 5_000)
    result = check_files([h])
    assert result.summary() == "linearizable: 5,000 operations, 1 processes, 1 keys"
    assert result.memo == 0  # a segment of one operation needs no memo
    assert result.segments == 5_000
    read = sum(1 + len(text) // 128 for text in Path(h).read_bytes().splitlines(keepends=True))
    assert result.steps == read + 5_000 + 5_000 * 2  # lines read; operations prepared; set out and placed


@pytest.mark.slow
def test_300000_sequential_operations_on_one_key_stay_small(tmp_path: Path) -> None:
    """The issue's history (300,000 operations, 55 MB) was a MemoryError at 4 GiB: the memo grew quadratically."""
    h = sequential(tmp_path / "seq.jsonl", 300_000)
    result = check_files([h])
    assert result.verdict is HistoryVerdict.LINEARIZABLE and result.operations == 300_000
    assert result.memo == 0 and result.segments == 300_000


def racing(processes: int, rounds: int) -> Iterator[Operation]:
    """``processes`` overlapping loads in each round, then one write: never quiescent within a round."""
    yield Operation("w", 0, 1, Call(OpKind.CAS, writes=(Write(OpKind.CAS, "k", 0, "{}", "m"),)), Response.ok(1))
    t = 10
    for r in range(rounds):
        for p in range(processes):
            seen = Response.ok({"machine": "m", "version": r + 1, "state": {}})
            yield Operation(f"r{p}", t + p, t + processes + p, Call(OpKind.LOAD, "k"), seen)
        t += 3 * processes
        yield Operation("w", t, t + 1, Call(OpKind.CAS, writes=(Write(OpKind.CAS, "k", r + 1, "{}"),)),
                        Response.ok(r + 2))
        t += 2


def test_concurrent_reads_that_fit_now_are_placed_at_once_not_in_every_order() -> None:
    """Eight overlapping loads could be ordered 8! ways (2**8 memo entries); each fits now, so one order is tried."""
    result = check_history(racing(8, 50))
    assert result.verdict is HistoryVerdict.LINEARIZABLE
    assert result.segments == 101 and result.memo == 9


def cas(process: str, invoke: int, expected: int, state: str = "{}") -> Operation:
    write = Write(OpKind.CAS, "k", expected, state, "m" if expected == 0 else None)
    return Operation(process, invoke, invoke + 1, Call(OpKind.CAS, writes=(write,)), Response.ok(expected + 1))


def loads(invoke: int, version: int, state: Any) -> Operation:
    seen = Response.ok({"machine": "m", "version": version, "state": state})
    return Operation("r", invoke, invoke + 1, Call(OpKind.LOAD, "k"), seen)


def test_a_long_stretch_with_no_pause_keeps_each_memo_entry_a_few_bits() -> None:
    """1,000 rounds of a load that begins, then a write it sees, each round overlapping the next: one segment.

    The set of operations placed was a bit per operation of the history (a
    quarter of a megabyte per memo entry at 2 million operations); now it is
    the first one not placed and the bits of those placed past it: two here,
    where each write is placed before the load that began just before it.
    """
    create = Operation("w", 0, 1, Call(OpKind.CAS, writes=(Write(OpKind.CAS, "k", 0, "{}", "m"),)), Response.ok(1))
    rounds = []
    for v in range(1, 1001):
        seen = Response.ok({"machine": "m", "version": v + 1, "state": {}})
        rounds.append(Operation("r", 4 * v, 4 * v + 5, Call(OpKind.LOAD, "k"), seen))
        write = Write(OpKind.CAS, "k", v, "{}")
        rounds.append(Operation("w", 4 * v + 1, 4 * v + 4, Call(OpKind.CAS, writes=(write,)), Response.ok(v + 1)))
    search = _Search([create, *rounds], 10**9)
    segment = _Segment(search, {(((ABSENT,), frozenset[str]()), frozenset[int]())}, 1, len(rounds) + 1)
    assert segment.ends() == set()  # from an empty store: the first write finds no record
    created = search._step(((ABSENT,), frozenset()), create)
    assert created is not None
    segment = _Segment(search, {(created, frozenset[int]())}, 1, len(rounds) + 1)
    assert len(segment.ends()) == 1
    assert len(segment.seen) == 2001  # the start, and one entry per operation placed
    assert max(window.bit_length() for _, window, _, _ in segment.seen) == 2
    assert check_history([create, *rounds]).segments == 2  # the create, then everything else


def test_a_pending_write_is_carried_from_segment_to_segment_until_it_can_no_longer_take_effect() -> None:
    lost = pending(cas("x", 2, 5, '{"late":1}'))  # its process was killed: it may take effect at any time after 2
    history = [cas("w", 0, 0), lost, *(cas("w", 10 * v, v) for v in range(1, 5))]  # versions 2 .. 5, long after
    took = check_history([*history, loads(100, 6, {"late": 1})])  # version 5 came, and the lost cas with it
    assert took.verdict is HistoryVerdict.LINEARIZABLE and took.segments == 7  # create, the lost cas, 4 cas, the load
    assert check_history([*history, loads(100, 2, {})]).verdict is HistoryVerdict.NOT_LINEARIZABLE  # went back
    beaten = check_history([*history, cas("w", 50, 5), loads(100, 6, {"late": 1})])  # w's cas got version 6 first
    assert beaten.verdict is HistoryVerdict.NOT_LINEARIZABLE
    assert [o.process for o in beaten.counterexample] == ["w", "r"]  # the lost cas could no longer apply


# -- time: the budget covers reading, preparing, searching and shrinking ------------------------------


def big_append(path: Path, events: int, reads: int) -> str:
    """A create, one append of ``events`` events, then ``reads`` reads of the whole log (the issue: 5 million, 20)."""
    with open(path, "w") as f:
        f.write(line("w", 0, 1, 2, CREATE, {"ok": 1}))
        append = {"kind": "append", "key": "k", "expected": 0, "events": [["E", {}]] * events}
        f.write(line("w", 1, 3, 4, append, {"ok": events}))
        everything = [[seq, False] for seq in range(1, events + 1)]
        for r in range(reads):
            f.write(line("r", r, 5 + 2 * r, 6 + 2 * r, {"kind": "read_log", "key": "k", "start": 1, "stop": None},
                         {"ok": everything}))
    return str(path)


def test_max_steps_stops_a_huge_history_while_reading_it(tmp_path: Path) -> None:
    h = big_append(tmp_path / "big.jsonl", 10_000, 20)
    code, out, err = cli("lincheck", h, "--max-steps", "100")
    assert (code, err) == (1, "")
    append_line = len(Path(h).read_text().splitlines()[1]) + 1
    assert out == (f"unknown: step budget spent after 101 steps, reading {h} line 2 "
                   f"(a line of {append_line:,} bytes needs {1 + append_line // 128:,} steps) "
                   "(1 operations, 1 processes, 1 keys)\n")


@pytest.mark.parametrize("events", [10_000, pytest.param(200_000, marks=pytest.mark.slow)])
def test_a_log_read_back_is_held_as_its_bounds_not_as_a_list(tmp_path: Path, events: int) -> None:
    h = big_append(tmp_path / "big.jsonl", events, 20)
    history = load_history([h])
    reads = [o for o in history if o.call.kind is OpKind.READ_LOG]
    assert len(reads) == 20 and {o.result for o in reads} == {Response.ok({"ended": False, "first": 1,
                                                                          "last": events})}
    result = check_files([h], max_steps=10**9)
    assert result.summary() == "linearizable: 22 operations, 2 processes, 1 keys"
    read = sum(1 + len(text) // 128 for text in Path(h).read_bytes().splitlines(keepends=True))
    assert result.steps == read + 22 + 22 * 2  # every operation its own segment, as in a sequential history


@pytest.mark.parametrize(
    "events",
    [
        [[1, False], [3, False]],  # a gap
        [[1, False], [2, True], [3, False]],  # an event after the end
        [[1, True], [2, False], [3, False]],
        [[1, False], [2, False], [3, "no"]],
        [[1, False], [2, False], 3],
        [[1, False], [2], [3, False]],
        [[1, False], {"0": 2, "1": False}, [3, False]],
    ],
)
def test_a_log_read_that_no_log_gives_is_not_linearizable(tmp_path: Path, events: list[Any]) -> None:
    read = {"kind": "read_log", "key": "k", "start": 1, "stop": None}
    append = {"kind": "append", "key": "k", "expected": 0, "events": [["E", {}]] * 3}
    h = write(tmp_path / "gap.jsonl", line("w", 0, 1, 2, CREATE, {"ok": 1}), line("w", 1, 3, 4, append, {"ok": 3}),
              line("w", 2, 5, 6, read, {"ok": events}))
    code, out, _ = cli("lincheck", h)
    assert code == 1
    shown = json.dumps(events, separators=(",", ":"), sort_keys=True)
    assert out.splitlines()[1:] == [  # wrong whatever came before: the read alone
        "minimal non-linearizable sub-history (1 operations):",
        f"  w [0.0 .. 0.0 µs] read_log k [1, end) -> ok {shown}",
    ]


def test_max_steps_bounds_shrinking_too() -> None:
    """A failure found is a failure: past the budget the counterexample is only less small, and says so."""
    history = list(racing(4, 30))
    history.append(Operation("r", 10**6, 10**6 + 1, Call(OpKind.LOAD, "k"), Response(error="not_found")))
    full = check_history(history)
    assert full.verdict is HistoryVerdict.NOT_LINEARIZABLE and full.minimal and len(full.counterexample) == 2
    found = _Search(history, 10**9)
    assert found.run() is HistoryVerdict.NOT_LINEARIZABLE
    cut = check_history(history, max_steps=len(history) + found.steps)  # enough to find it, no more
    assert cut.verdict is HistoryVerdict.NOT_LINEARIZABLE and not cut.minimal
    assert cut.counterexample == tuple(found.ops)  # everything up to the failure: all of it, here
    assert cut.report().splitlines()[1] == (
        f"non-linearizable sub-history ({len(cut.counterexample)} operations; not minimal: "
        f"the step budget ran out after {cut.steps:,} steps while shrinking it):")


def test_a_time_limit_is_checked_on_the_budgets_clock() -> None:
    ticks = iter(range(1_000_000))
    result = check_history(racing(8, 50), time_limit=3.0, clock=lambda: float(next(ticks)))
    assert result.verdict is HistoryVerdict.UNKNOWN
    assert result.summary().startswith("unknown: time limit of 3.0 s spent after ")


def test_lincheck_takes_a_time_limit(tmp_path: Path) -> None:
    h = sequential(tmp_path / "seq.jsonl", 10)
    assert cli("lincheck", h, "--time-limit", "60") == (0, "linearizable: 10 operations, 1 processes, 1 keys\n", "")
    code, _, err = cli("lincheck", h, "--time-limit", "0")
    assert code == 2 and "--time-limit" in err


# -- the search against brute force -------------------------------------------------------------------


def every_order(ops: list[Operation], loose: bool) -> bool:
    """Is there an order of ``ops`` that keeps real time and that the model takes? Tried one permutation at a time.

    The oracle for the segmented, memoised, reduced search: the same step
    function (`_Search._step`), none of the search. A pending operation may
    go anywhere after its invoke; last is as good as never.
    """
    search = _Search(ops, 10**9, loose=loose)
    start = (tuple(LOOSE if loose else ABSENT for _ in search.keys), frozenset[str]())
    before = [(a, b) for a, x in enumerate(ops) for b, y in enumerate(ops)
              if x.returned is not None and x.returned < y.invoke]
    for order in itertools.permutations(range(len(ops))):
        at = {i: n for n, i in enumerate(order)}
        if any(at[a] > at[b] for a, b in before):
            continue
        model: Any = start
        for i in order:
            if ops[i].result is None and ops[i].call.kind in READS:
                continue  # a read that never returned constrains nothing
            model = search._step(model, ops[i])
            if model is None:
                break
        else:
            return True
    return False


def random_history(rng: random.Random, size: int) -> list[Operation]:
    """A run of the model in some order, given overlapping times around it, a result or two then spoiled.

    Besides loads, log reads and writes, it holds what request ids use: log
    heads, receipts of batch ids, commits recording an outcome with their id,
    re-submissions of an earlier commit (the same batch again: nothing applied)
    and other batches under an id already taken (``already_applied``). Its own
    record of the ids taken -- id -> (the commit's writes, its outcome) -- is
    kept apart from the checker's, which it is there to check.
    """
    keys = ("k", "j")
    records = tuple(ABSENT for _ in keys)
    taken: dict[str, tuple[Any, str | None]] = {}
    commits: list[Call] = []
    ops = []
    for n in range(size):
        key = rng.choice(keys)
        _, _, now, head, _ = records[keys.index(key)]
        version = rng.choice([now, rng.randint(0, 3)])  # half the time the version the write needs
        writes = [
            Write(OpKind.CAS, key, version, rng.choice(["{}", '{"a":1}']),
                  "m" if version == 0 or rng.random() < 0.2 else None),
            Write(OpKind.APPEND, key, rng.choice([head, rng.randint(0, 2)]), events=rng.randint(1, 2)),
            Write(OpKind.APPEND_TERMINAL, key),
        ]
        roll = rng.random()
        if roll < 0.2:
            call = Call(OpKind.LOAD, key)
        elif roll < 0.28:
            call = Call(OpKind.READ_LOG, key, start=rng.randint(1, 2), stop=rng.choice([None, 3]))
        elif roll < 0.35:
            call = Call(OpKind.LOG_HEAD, key)
        elif roll < 0.42:
            call = Call(OpKind.RECEIPT, batch=rng.choice([*taken, "b1", "b2"]))
        elif roll < 0.5 and commits:
            call = rng.choice(commits)  # the same batch again
        elif roll < 0.68:
            j = 1 - keys.index(key)
            first = rng.choice(writes)
            if rng.random() < 0.5:  # half the commits fit the records now, so that ids get taken
                first = Write(OpKind.CAS, key, now, rng.choice(["{}", '{"a":1}']), "m" if now == 0 else None)
            other = Write(OpKind.CAS, keys[j], rng.choice([records[j][2], rng.randint(0, 2)]), "{}", "m")
            batch = rng.choice([None, *taken, "b1", "b2"])  # an id taken: another batch under it, refused
            outcome = None if batch is None else rng.choice([None, '"x"', '{"n":1}'])
            call = Call(OpKind.COMMIT, writes=(first, other), batch=batch, outcome=outcome)
            commits.append(call)
        else:
            w = rng.choice(writes)
            call = Call(w.kind, writes=(w,))
        took = call.batch in taken
        if call.kind is OpKind.RECEIPT:
            after, result = records, Response.ok(None if not took else {
                "outcome": None if taken[call.batch][1] is None else json.loads(str(taken[call.batch][1]))})
        elif took:
            same = taken[str(call.batch)][0] == call.writes
            after, result = records, Response.ok(None) if same else Response(error="already_applied")
        else:
            after, result = _apply(keys, records, call)
        lost = rng.random() < 0.15
        if not lost or rng.random() < 0.5:  # a pending operation took effect, or did not
            records = after
            if call.kind is OpKind.COMMIT and call.batch is not None and not took and result.error is None:
                taken[call.batch] = (call.writes, call.outcome)
        invoke = 4 * n - rng.randint(0, 6)
        returned = None if lost else 4 * n + rng.randint(0, 6)
        ops.append(Operation(f"p{n % 3}", invoke, returned, call, None if lost else result))
    for _ in range(rng.choice([0, 0, 1, 2])):  # spoil a result
        i = rng.randrange(size)
        if ops[i].result is not None:
            spoilt = rng.choice([Response(error="conflict"), Response(error="not_found"), Response.ok(1),
                                 Response.ok(2), Response.ok(None), _log_read(1, 2, False),
                                 Response(error="already_applied"), Response.ok([1, False]),
                                 Response.ok({"outcome": "x"})])
            ops[i] = replace(ops[i], result=spoilt)
    return ops


def test_the_search_agrees_with_trying_every_order() -> None:
    rng = random.Random(17)
    verdicts: Counter[tuple[bool, bool]] = Counter()
    for trial in range(400):
        ops = random_history(rng, rng.randint(2, 6))
        for loose in (False, True):
            expected = every_order(ops, loose)
            got = _Search(ops, 10**9, loose=loose).run()
            assert got is (HistoryVerdict.LINEARIZABLE if expected else HistoryVerdict.NOT_LINEARIZABLE), (trial, ops)
            verdicts[loose, expected] += 1
        result = check_history(ops)
        assert (result.verdict is HistoryVerdict.LINEARIZABLE) is every_order(ops, False), (trial, ops)
    assert min(verdicts.values()) > 40, verdicts  # both verdicts, in both modes, many times


def test_a_log_read_built_in_python_as_a_list_is_judged_as_one_read_from_a_file() -> None:
    create = Operation("w", 0, 1, Call(OpKind.CAS, writes=(Write(OpKind.CAS, "k", 0, "{}", "m"),)), Response.ok(1))
    ended = Operation("w", 2, 3, Call(OpKind.APPEND_TERMINAL, writes=(Write(OpKind.APPEND_TERMINAL, "k"),)),
                      Response.ok(1))
    read = Call(OpKind.READ_LOG, "k")
    assert check_history([create, ended, Operation("r", 4, 5, read, Response.ok([[1, True]]))]).verdict is (
        HistoryVerdict.LINEARIZABLE)
    assert check_history([create, ended, Operation("r", 4, 5, read, Response.ok([[1, False]]))]).verdict is (
        HistoryVerdict.NOT_LINEARIZABLE)


def test_a_last_line_torn_by_a_kill_is_left_out_but_a_torn_line_before_it_is_an_error(tmp_path: Path) -> None:
    """A writer killed mid-write leaves its last line cut short and unterminated: that operation is pending."""
    invoked = line("p", 1, 3, None, LOAD, None)
    done = line("p", 1, 3, 4, LOAD, {"error": "not_found"})
    h = tmp_path / "h.jsonl"
    h.write_text(line("p", 0, 1, 2, LOAD, {"error": "not_found"}) + invoked + done[:-9])
    ops = load_history([h])
    assert len(ops) == 2 and [o.returned for o in ops] == [2, None]
    h.write_text(line("p", 0, 1, 2, LOAD, {"error": "not_found"}) + done[:-9] + "\n")
    code, out, err = cli("lincheck", str(h))
    assert (code, out) == (2, "") and "h.jsonl:2: not JSON" in err
