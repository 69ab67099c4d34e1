"""`statewright run`, `resume`, `replay` and `inspect`'s runs: the worked example of docs/runs.md, run as written
(``kill -9`` included), and each exit code of the commands.

Most tests run the command in this process (`statewright.adapters.cli.run`) on
a copy of ``docs/examples/shop.py``: three steps, ``charge`` failing its first
attempt through a recorded IO call, ``ship`` spawning a child run. The worked
example runs in subprocesses, because it kills one.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shlex
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from statewright.adapters.cli import run
from statewright.adapters.runtime.driver import Driver
from statewright.adapters.runtime.executor import facts_key, run_key, runs_catalog
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.machines.run import Cancel
from tests.adapters import _backends as B
from tests.test_user_project import Command, run_commands

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
RUNS_PAGE = ROOT / "docs" / "runs.md"
SECTION = "## A worked example: run, kill, resume, replay"

SHOP_RUN = """\
run order-1 (if it stops: statewright resume order-1 --store {store} --operations shop.py:program)
order-1  started
order-1  entered    shop.reserve.run (attempt 1)
order-1  completed  shop.reserve.run
order-1  entered    shop.charge.run (attempt 1)
order-1  failed     shop.charge.run (attempt 1, will retry)
order-1  entered    shop.charge.run (attempt 2)
order-1  completed  shop.charge.run
order-1  entered    shop.ship.run (attempt 1)
order-1.label  started
order-1.label  entered    label.print.run (attempt 1)
order-1.label  completed  label.print.run
order-1.label  run completed
order-1  completed  shop.ship.run
order-1  run completed
run order-1 completed: 3 of 3 states
output of shop.ship.run: {{"label": "A-17: tea, mug", "tracking": "trk-A-17"}}
"""


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding copies of the example program and plan, as the current directory."""
    for name in ("shop.py", "shop.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHOP_HOLD", raising=False)
    return tmp_path


def logs(db: str, key: str) -> list[dict[str, object]]:
    """The data of every effect in ``key``'s log."""
    async def read() -> list[dict[str, object]]:
        async with await B.open_store(db, runs_catalog()) as store:
            return [e.data for e in await store.read_log(key) if e.kind == "effect"]

    return asyncio.run(read())


def kinds(db: str, key: str) -> list[object]:
    return [d["type"] for d in logs(db, key)]


# -- the worked example ---------------------------------------------------------------------------


def section() -> str:
    text = RUNS_PAGE.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def session() -> list[Command]:
    """The ``$`` commands of the section's shell session, with the output each must print."""
    block = re.search(r"```text\n(.*?)```", section(), re.S)
    assert block is not None, "the worked example has a shell session"
    out = []
    for chunk in re.split(r"^\$ ", block.group(1), flags=re.M)[1:]:
        line, _, expected = chunk.partition("\n")
        out.append(Command(line, expected, 0))
    return out


def test_the_session_kills_resumes_replays_and_inspects() -> None:
    lines = [c.line for c in session()]
    starts = ("touch hold", "SHOP_HOLD=hold statewright run shop.py:program", "until grep", "kill -9",
              "rm hold", "statewright inspect shop.db", "statewright resume order-7", "statewright replay order-7",
              "statewright inspect shop.db --key runs/order-7 | grep -c RunCompleted",
              "statewright inspect shop.db --run order-7")
    assert [next(i for i, line in enumerate(lines) if line.startswith(s)) for s in starts] == sorted(
        next(i for i, line in enumerate(lines) if line.startswith(s)) for s in starts)


def test_the_code_the_section_shows_is_the_examples() -> None:
    """The excerpts of shop.py on the page are in the file as shown (so the page cannot drift from it)."""
    program = (EXAMPLES / "shop.py").read_text()
    excerpts = re.findall(r"```py\n(.*?)```", section(), re.S)  # py, not python: excerpts, not doctests or files
    assert len(excerpts) == 2
    for excerpt in excerpts:
        assert excerpt in program, excerpt


@pytest.mark.slow
def test_the_worked_example_runs_as_written(tmp_path: Path) -> None:
    """docs/runs.md's session, command by command in a shell (kill -9 included), printing what the page shows."""
    shutil.copy(EXAMPLES / "shop.py", tmp_path / "shop.py")
    run_commands(session(), tmp_path, Path(sys.executable).parent, source="docs/runs.md")
    db = str(tmp_path / "shop.db")
    for run_id in ("order-7", "order-7.label"):
        assert kinds(db, run_key(run_id)).count("RunCompleted") == 1
    linkage = kinds(db, facts_key("order-7"))
    assert (linkage.count("ChildRunSpawned"), linkage.count("ChildRunCompleted")) == (1, 1)
    # ship's attempt 1 was entered once, before the kill, and completed once, after it
    ship = [d for d in logs(db, run_key("order-7")) if d.get("state_id") == "shop.ship.run"]
    assert [d["type"] for d in ship] == ["StateEntered", "StateCompleted"]


# -- run, resume, replay --------------------------------------------------------------------------


def test_a_run_prints_its_id_first_then_a_line_per_state_and_exits_0(shop: Path) -> None:
    assert cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1") == (
        0, SHOP_RUN.format(store="shop.db"), "")


def test_resume_and_replay_of_a_finished_run(shop: Path) -> None:
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1")
    assert cli("resume", "order-1", "--store", "shop.db", "--operations", "shop.py:operations") == (0, (
        "run order-1: completed, 3 of 3 states completed\n"
        "run order-1 completed: 3 of 3 states\n"
        'output of shop.ship.run: {"label": "A-17: tea, mug", "tracking": "trk-A-17"}\n'), "")
    assert cli("replay", "order-1", "--store", "shop.db", "--operations", "shop.py:program") == (0, (
        "replay of order-1: identical (51 events, 0 transport calls)\n"
        "replay of order-1.label: identical (20 events, 0 transport calls)\n"), "")
    assert kinds("shop.db", run_key("order-1")).count("RunCompleted") == 1


def test_a_failed_run_exits_1_with_the_error_of_its_last_attempt(shop: Path) -> None:
    code, out, err = cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "bad",
                         "--input", '{"order": "C-3", "items": ["pan"]}')
    assert (code, err) == (1, "")
    assert out.splitlines()[-3:] == [
        "bad  failed     shop.reserve.run (attempt 1, no retry)",
        "bad  run failed",
        "run bad failed at shop.reserve.run: unknown_item: no such item: pan (0 of 3 states completed)",
    ]
    # resuming it changes nothing and says the same
    code, out, _ = cli("resume", "bad", "--store", "shop.db", "--operations", "shop.py:program")
    assert (code, out.splitlines()[-1]) == (
        1, "run bad failed at shop.reserve.run: unknown_item: no such item: pan (0 of 3 states completed)")


def test_a_cancelled_run_exits_1(shop: Path) -> None:
    assert cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "c1", "--detach") == (0, (
        "run c1 launched (a pool drives it: statewright serve --store shop.db --operations shop.py:program; "
        "or this process: statewright resume c1 --store shop.db --operations shop.py:program)\n"),
        "")

    async def cancel() -> None:
        async with await SqliteStore.open("shop.db", runs_catalog()) as store:
            assert (await Driver(store).feed(run_key("c1"), Cancel())).accepted

    asyncio.run(cancel())
    assert cli("resume", "c1", "--store", "shop.db", "--operations", "shop.py:program") == (1, (
        "run c1: cancelled, 0 of 3 states completed\n"
        "run c1 cancelled (0 of 3 states completed)\n"), "")


def test_a_detached_run_is_pending_until_resumed(shop: Path) -> None:
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1", "--detach")
    assert cli("inspect", "shop.db")[1] == (
        "runs (1):\n"
        "  run      phase    states  in flight  parent\n"
        "  order-1  pending  0/3     -          -\n")
    code, out, _ = cli("resume", "order-1", "--store", "shop.db", "--operations", "shop.py:program")
    assert (code, out.splitlines()[0], out.splitlines()[-2]) == (
        0, "run order-1: pending, 0 of 3 states completed", "run order-1 completed: 3 of 3 states")


def test_launching_the_same_run_again_resumes_it(shop: Path) -> None:
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1", "--detach")
    code, out, _ = cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1")
    assert (code, out) == (0, SHOP_RUN.format(store="shop.db"))


def test_a_json_plan_runs_and_resumes_with_its_operations(shop: Path) -> None:
    code, out, err = cli("run", "shop.json", "--store", "shop.db", "--run-id", "j1")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "run j1 (if it stops: statewright resume j1 --store shop.db --operations shop.json)")
    assert out.splitlines()[-1] == 'output of shop.ship.run: {"label": "B-2: spoon", "tracking": "trk-B-2"}'
    assert cli("resume", "j1", "--store", "shop.db", "--operations", "shop.json")[0] == 0
    assert cli("replay", "j1", "--store", "shop.db", "--operations", "shop.json")[0] == 0


def test_a_json_plan_in_another_folder_finds_its_operations_beside_it(shop: Path) -> None:
    (shop / "plans").mkdir()
    (shop / "shop.json").rename(shop / "plans" / "shop.json")
    (shop / "shop.py").rename(shop / "plans" / "shop.py")
    assert cli("run", "plans/shop.json", "--store", "shop.db")[0] == 0


DIVERGING = '''\
import os
from statewright.adapters.runtime.operations import Operations
from statewright.adapters.runtime.program import Program
from statewright.machines.pipeline import Pipeline, Step

ops = Operations()

@ops.op("answer", "v1", exports=("n",))
def answer(ctx):
    return {"n": int(os.environ.get("ANSWER", "42"))}

program = Program(Pipeline("calc", "v1", (Step("answer", "answer", "v1"),)), ops)
'''


def test_a_replay_that_differs_exits_1_naming_the_difference(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (shop / "calc.py").write_text(DIVERGING)
    assert cli("run", "calc.py:program", "--store", "shop.db", "--run-id", "r1")[0] == 0
    monkeypatch.setenv("ANSWER", "41")
    code, out, err = cli("replay", "r1", "--store", "shop.db", "--operations", "calc.py:ops")
    assert (code, err) == (1, "")
    assert out.startswith("replay of r1: different -- replay_diverged: run 'r1': outcome/calc.answer.run/1 was sha256:")


RECORDED_THEN_FAILED = '''\
from statewright.adapters.runtime.operations import OpFailed, Operations
from statewright.adapters.runtime.program import Program
from statewright.machines.pipeline import Pipeline, Step

ops = Operations()

@ops.op("forever", "v1")
def forever(ctx):
    return None

@ops.op("quote", "v1", exports=("price",))
async def quote(ctx):
    price = await ctx.io.call("price", lambda: 7)  # recorded in attempt 1, reused by attempt 2
    await ctx.spawn(Pipeline("note", "v1", (Step("n", "forever", "v1"),)), key="note")
    if ctx.attempt == 1:
        raise OpFailed("busy", "try again")
    return {"price": price}

program = Program(Pipeline("calc", "v1", (Step("quote", "quote", "v1"),)), ops,
                  run_config={"retry": {"backoff": {"fixed": {"delay_ms": 0}}}})
'''


def test_a_replay_is_identical_when_a_failed_attempt_had_recorded_facts(shop: Path) -> None:
    """A failed attempt is taken from its outcome in replay, not called: the facts it had recorded (an IO call, a
    child run spawned) are recorded in the replay's log where the original has them, so the logs still match."""
    (shop / "calc.py").write_text(RECORDED_THEN_FAILED)
    assert cli("run", "calc.py:program", "--store", "shop.db", "--run-id", "r1")[0] == 0
    assert cli("replay", "r1", "--store", "shop.db", "--operations", "calc.py:ops") == (0, (
        "replay of r1: identical (32 events, 0 transport calls)\n"
        "replay of r1.note: identical (20 events, 0 transport calls)\n"), "")


ORPHAN = '''\
import asyncio
from statewright.adapters.runtime.operations import OpFailed, Operations
from statewright.adapters.runtime.program import Program
from statewright.machines.pipeline import Pipeline, Step

ops = Operations()

@ops.op("forever", "v1")
async def forever(ctx):
    await asyncio.sleep(3600)

@ops.op("launch", "v1")
async def launch(ctx):
    await ctx.spawn(Pipeline("slow", "v1", (Step("wait", "forever", "v1"),)), key="slow")
    raise OpFailed("gave_up", "the parent does not wait", retryable=False)

program = Program(Pipeline("orphan", "v1", (Step("go", "launch", "v1"),)), ops)
'''


def test_a_child_its_failed_parent_never_waited_for_is_left_as_it_stands_and_not_replayed(shop: Path) -> None:
    (shop / "orphan.py").write_text(ORPHAN)
    code, out, err = cli("run", "orphan.py:program", "--store", "shop.db", "--run-id", "p")
    assert (code, out.splitlines()[-1], err) == (
        1, "run p failed at orphan.go.run: gave_up: the parent does not wait (0 of 1 states completed)", "")
    code, out, err = cli("replay", "p", "--store", "shop.db", "--operations", "orphan.py:ops")
    lines = out.splitlines()
    assert (code, len(lines), lines[0], err) == (0, 2, "replay of p: identical (23 events, 0 transport calls)", "")
    assert lines[1].startswith("replay of p.slow: not replayed -- run_not_finished: run 'p.slow' is ")
    table = cli("inspect", "shop.db")[1].splitlines()
    assert table[2].split() == ["p", "failed", "0/1", "-", "-"]  # a failed run has nothing in flight
    assert table[3].split()[:2] == ["p.slow", "running"] or table[3].split()[:2] == ["p.slow", "pending"]


@pytest.mark.parametrize(("argv", "message"), [
    (["resume", "nope", "--store", "shop.db", "--operations", "shop.py:program"],
     "run_not_found: no run 'nope' in this store"),
    (["replay", "nope", "--store", "shop.db", "--operations", "shop.py:program"],
     "run_not_found: no run 'nope' in this store"),
    (["run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1", "--input", '{"order": "X", "items": []}'],
     "run_exists: run 'order-1' already exists with another manifest; resume it, or launch a new run"),
    (["resume", "order-1", "--store", "missing.db", "--operations", "shop.py:program"], "no store at missing.db"),
    (["run", "nope.py:program", "--store", "shop.db"], "no file nope.py (did you mean shop.py?)"),
    (["run", "shop.py:programme", "--store", "shop.db"], "shop.py has no attribute 'programme' (did you mean 'program'?)"),
    (["run", "shop.py", "--store", "shop.db"], "shop.py: name the object, as in shop.py:NAME"),
    (["run", "shop.py:operations", "--store", "shop.db"],
     "shop.py:operations is an Operations, not a Program (statewright.adapters.runtime.program.Program)"),
    (["resume", "order-1", "--store", "shop.db", "--operations", "shop.py:PRICES"],
     "shop.py:PRICES is a dict, not Operations or a Program (statewright.adapters.runtime.program.Program, "
     "statewright.adapters.runtime.operations.Operations)"),
    (["run", "shop.py:program", "--store", "shop.db", "--input", "{order"],
     "--input: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    (["run", "shop.py:program", "--store", "shop.db", "--input", '{"order": 1.5, "items": []}'],
     "manifest_not_canonical: manifest of 'shop' is not canonical JSON (float)"),
    (["run", "shop.py:program", "--store", "shop.db", "--run-id", "a/b"],
     "invalid_run_id: run id 'a/b' must be 1-200 letters, digits, '_', '.', '-', starting with a letter or digit"),
    (["replay", "pending", "--store", "shop.db", "--operations", "shop.py:program"],
     "run_not_finished: run 'pending' is pending; only a finished run can be replayed"),
    (["run", "shop.py:program"], "the following arguments are required: --store"),
    (["resume", "order-1", "--store", "shop.db"], "the following arguments are required: --operations"),
])
def test_usage_and_refusals_are_one_line_and_exit_2(shop: Path, argv: list[str], message: str) -> None:
    assert cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1")[0] == 0
    assert cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "pending", "--detach")[0] == 0
    assert cli(*argv) == (2, "", f"statewright: error: {message}\n")
    assert not (shop / "missing.db").exists()


BROKEN_PLANS = {
    "not JSON": ("{", "plan.json: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    "a list": ("[]", "plan.json: plan: expected a JSON object, got a list"),
    "no version": ('{"machine_id": "shop", "operations": "shop.py:operations", "steps": []}',
                   'plan.json: plan: missing "pipeline_version"'),
    "unknown field": ('{"machine_id": "shop", "pipeline_version": "v1", "operations": "shop.py:operations", '
                      '"steps": [], "retries": 3}',
                      "plan.json: plan: unknown field 'retries' (fields: machine_id, pipeline_version, steps, "
                      "operations, input, run_config)"),
    "a step without op_id": ('{"machine_id": "shop", "pipeline_version": "v1", "operations": "shop.py:operations", '
                             '"steps": [{"step_id": "a", "op_version": "v1"}]}',
                             'plan.json: plan: step 1: missing "op_id"'),
    "no operations file": ('{"machine_id": "shop", "pipeline_version": "v1", "operations": "ops.py:operations", '
                           '"steps": []}', "plan.json: operations: no file ops.py (did you mean shop.py?)"),
    "operations that are no Operations": (
        '{"machine_id": "shop", "pipeline_version": "v1", "operations": "shop.py:LABEL", "steps": []}',
        "plan.json: operations: shop.py:LABEL is a Pipeline, not Operations"),
    "an empty pipeline": ('{"machine_id": "shop", "pipeline_version": "v1", "operations": "shop.py:operations", '
                          '"steps": []}', "empty_pipeline: pipeline 'shop' must contain at least one step"),
    "a duplicate step": ('{"machine_id": "shop", "pipeline_version": "v1", "operations": "shop.py:operations", '
                         '"steps": [{"step_id": "a", "op_id": "reserve", "op_version": "v1"}, '
                         '{"step_id": "a", "op_id": "reserve", "op_version": "v1"}]}',
                         "duplicate_step_id: step 'a': step_id appears more than once in the pipeline"),
    "an unknown operation": ('{"machine_id": "shop", "pipeline_version": "v1", "operations": "shop.py:operations", '
                             '"steps": [{"step_id": "a", "op_id": "refund", "op_version": "v1"}]}',
                             "op_not_found: step 'a': operation 'refund' version 'v1' is not in the registry"),
}


@pytest.mark.parametrize("case", list(BROKEN_PLANS))
def test_a_bad_json_plan_is_one_line_and_exit_2_and_creates_no_store(shop: Path, case: str) -> None:
    text, message = BROKEN_PLANS[case]
    (shop / "plan.json").write_text(text)
    assert cli("run", "plan.json", "--store", "new.db") == (2, "", f"statewright: error: {message}\n")
    assert not (shop / "new.db").exists()


NO_FUNCTION = '''\
from statewright.adapters.runtime.operations import Operations
from statewright.adapters.runtime.program import Program
from statewright.machines.pipeline import Pipeline, Step, linear_op

ops = Operations()
ops.add(linear_op("fetch", "v1", ("get", "parse")), {"get": lambda ctx: None})
program = Program(Pipeline("etl", "v1", (Step("load", "fetch", "v1"),)), ops)
'''


def test_operations_missing_a_function_are_op_not_found(shop: Path) -> None:
    (shop / "etl.py").write_text(NO_FUNCTION)
    assert cli("run", "etl.py:program", "--store", "shop.db") == (
        2, "", "statewright: error: op_not_found: step 'load': operation 'fetch' version 'v1' has no function for state "
               "'parse'\n")
    # and operations given again to resume a run must still have every function the run needs
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1", "--detach")
    assert cli("resume", "order-1", "--store", "shop.db", "--operations", "etl.py:ops") == (
        2, "", "statewright: error: op_not_found: step 'reserve': operation 'reserve' version 'v1' is not "
               "in the registry\n")


def test_an_error_importing_the_program_names_its_line(shop: Path) -> None:
    (shop / "broken.py").write_text("x = 1\nprogram = 1 / 0\n")
    assert cli("run", "broken.py:program", "--store", "shop.db") == (
        2, "", "statewright: error: broken.py:2: ZeroDivisionError: division by zero\n")


# -- inspect's runs ---------------------------------------------------------------------------------


def test_inspect_shows_runs_and_one_runs_attempts_facts_and_children(shop: Path) -> None:
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1")
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-2", "--detach")
    assert cli("inspect", "shop.db") == (0, (
        "runs (3):\n"
        "  run            phase      states  in flight  parent\n"
        "  order-1        completed  3/3     -          -\n"
        "  order-1.label  completed  1/1     -          order-1\n"
        "  order-2        pending    0/3     -          -\n"), "")
    code, out, err = cli("inspect", "shop.db", "--run", "order-1")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:8] == [
        "run order-1: completed, 3 of 3 states completed",
        "  manifest sha256:0cd7a701800a, parent -, fact log sealed",
        "states:",
        "  state             attempt  outcome",
        "  shop.reserve.run  1        completed",
        "  shop.charge.run   1        failed, will retry: gateway_timeout: payment gateway timed out",
        "  shop.charge.run   2        completed",
        "  shop.ship.run     1        completed",
    ]
    assert lines[8:10] == ["facts (13):", "  key                                 artifact             kind              size"]
    facts = [line.split() for line in lines[10:23]]
    assert [f[0] for f in facts] == [
        "snapshot/base", "outcome/shop.reserve.run/1", "snapshot/state/shop.reserve.run",
        "outcome/shop.charge.run/1", "snapshot/failure/shop.charge.run/1", "io/payment",
        "outcome/shop.charge.run/2", "snapshot/state/shop.charge.run", "child/label", "child_done/label",
        "outcome/shop.ship.run/1", "snapshot/state/shop.ship.run", "snapshot/final"]
    assert [(f[2], int(f[3])) for f in facts[3:6]] == [("output", 102), ("context_snapshot", 217),
                                                      ("fact_payload", 36)]
    assert lines[23:] == [
        "child runs (1):",
        "  run            phase      states  in flight  parent",
        "  order-1.label  completed  1/1     -          order-1",
    ]
    # the raw record is still there for --key
    code, out, _ = cli("inspect", "shop.db", "--key", "runs/order-1/facts")
    assert (code, out.splitlines()[0]) == (0, "runs/order-1/facts: fact_log SEALED (version 14)")


def test_inspect_run_refusals(shop: Path) -> None:
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1")
    assert cli("inspect", "shop.db", "--run", "order-9") == (
        2, "", "statewright: error: no run 'order-9' in shop.db (runs: order-1, order-1.label)\n")
    assert cli("inspect", "shop.db", "--run", "order-1", "--key", "runs/order-1") == (
        2, "", "statewright: error: --run shows one run, --key instances: give one of them\n")


def test_a_failed_attempts_outcome_that_does_not_match_its_id_is_corrupt(shop: Path) -> None:
    cli("run", "shop.py:program", "--store", "shop.db", "--run-id", "order-1")
    db = sqlite3.connect("shop.db")
    try:
        artifact = next(json.loads(data)["artifact"] for (data,) in db.execute(
            "SELECT data FROM events WHERE key = 'runs/order-1/facts' AND kind = 'input'")
            if json.loads(data).get("key") == "outcome/shop.charge.run/1")
        (blob,) = db.execute("SELECT blob FROM artifacts WHERE id = ?", (artifact,)).fetchone()
        db.execute("UPDATE artifact_chunks SET bytes = ? WHERE blob = ?", (b'{"ok": false}', blob))
        db.commit()
    finally:
        db.close()
    code, out, _ = cli("inspect", "shop.db", "--run", "order-1")
    assert code == 1
    assert out.splitlines()[5] == (
        f"  shop.charge.run   1        failed, will retry: CORRUPT -- outcome {artifact[:19]}: "
        "its bytes do not match its id")


# -- on PostgreSQL too --------------------------------------------------------------------------------


def test_run_replay_and_inspect_on_each_backend(shop: Path, store_at: str) -> None:
    """The same commands and output on a SQLite file and a PostgreSQL database (skipped without one)."""
    code, out, err = cli("run", "shop.py:program", "--store", store_at, "--run-id", "order-1")
    assert (code, out, err) == (0, SHOP_RUN.format(store=shlex.quote(store_at)), "")
    assert cli("replay", "order-1", "--store", store_at, "--operations", "shop.py:program")[:2] == (0, (
        "replay of order-1: identical (51 events, 0 transport calls)\n"
        "replay of order-1.label: identical (20 events, 0 transport calls)\n"))
    code, out, _ = cli("inspect", store_at, "--run", "order-1")
    assert (code, len(out.splitlines()), out.splitlines()[5]) == (
        0, 26, "  shop.charge.run   1        failed, will retry: gateway_timeout: payment gateway timed out")
    assert kinds(store_at, run_key("order-1")).count("RunCompleted") == 1
