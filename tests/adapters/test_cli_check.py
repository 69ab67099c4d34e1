"""`statewright check`: bounds, the memory budget, signals, readable output, errors in the user's code."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.cli import run
from statewright.adapters.cli.resources import parse_size, write_atomic
from statewright.kernel.checker import StopReason, TraceStep, check
from statewright.specs import REGISTRY
from tests.adapters.test_cli_targets import write_orders

BEFORE = """\
cas_atomic: OK -- 29 distinct states, 34 generated, depth 10
cas_non_atomic: OK -- 22 distinct states, 28 generated, depth 7
diehard: OK -- 16 distinct states, 96 generated, depth 8
input: OK -- 33 distinct states, 50 generated, depth 9
input_lifecycle: OK -- 496,420 distinct states, 3,759,297 generated, depth 29
loop_frame: OK -- 192 distinct states, 346 generated, depth 22
run: OK -- 48 distinct states, 78 generated, depth 11
session: OK -- 644 distinct states, 3,514 generated, depth 13
session_inputs: OK -- 23,976 distinct states, 115,632 generated, depth 22
task: OK -- 27 distinct states, 47 generated, depth 9
task_as_written: OK -- 156 distinct states, 1,164 generated, depth 10
token: OK -- 31 distinct states, 52 generated, depth 5
operator: OK -- 81 distinct states, 308 generated, depth 7
two_phase: OK -- 288 distinct states, 809 generated, depth 11
alternating_bit: OK -- 240 distinct states, 1,384 generated (188 pruned by the constraints), depth 10
coffee_can: OK -- 5,150 distinct states, 14,852 generated, depth 1
crdt: OK -- 200 distinct states, 1,200 generated (80 pruned by the constraints), depth 10
ewd840: OK -- 1,566 distinct states, 13,938 generated, depth 12
lamport_mutex: OK -- 10,209 distinct states, 41,532 generated (10,042 pruned by the constraints), depth 31
order_payment: OK -- 6 distinct states, 5 generated, depth 4
order_payment_async: OK -- 15 distinct states, 16 generated, depth 7
dispatch: OK -- 8,730 distinct states, 47,602 generated, depth 17
launcher: OK -- 169 distinct states, 251 generated, depth 15
fact_io: OK -- 37 distinct states, 59 generated, depth 6
child_runs: OK -- 18 distinct states, 22 generated, depth 7
25 specs: 21 ok, 4 violated as expected, 0 failed
"""


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def without_seconds(out: str) -> str:
    return "".join(line.rsplit(", ", 1)[0] + "\n" if " s" in line[-8:] else line + "\n" for line in out.splitlines())


@pytest.mark.slow
def test_check_all_in_this_repository_is_the_bundled_specs_with_unchanged_figures() -> None:
    """The repository is a project listing `statewright.specs`: `make run` checks exactly the bundled specs."""
    code, out, err = cli("check", "--all", "--quiet")
    assert code == 0, err
    assert without_seconds(out) == BEFORE


def test_quiet_is_one_line_per_spec_and_names_failed_properties() -> None:
    code, out, _ = cli("check", "input_lifecycle", "diehard", "--set", "n=3", "--set", "stage_guard=false", "--quiet")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("input_lifecycle: VIOLATED (stopped at the first violation) -- 56 distinct states")
    assert lines[0].endswith("; failed: at_most_one_staged")
    assert lines[2] == "2 specs: 0 ok, 1 violated as expected, 1 failed"


def test_properties_left_open_by_the_first_violation_say_so() -> None:
    code, out, _ = cli("check", "input_lifecycle", "--set", "n=3", "--set", "stage_guard=false")
    assert code == 1
    assert "  ??   all_consumed                 sometimes            not checked: stopped at the first violation" in out
    assert "undecided" not in out and "1 spec" not in out  # one spec, not quiet: no tally


def test_bounds_from_the_command_line() -> None:
    code, out, _ = cli("check", "input_lifecycle", "--max-states", "1000", "--quiet")
    assert code == 0
    assert out.startswith("input_lifecycle: BOUNDED (max_states reached) -- 1,")
    assert out.splitlines()[1] == "1 spec: 0 ok, 0 violated as expected, 1 bounded, 0 failed"
    code, out, _ = cli("check", "input_lifecycle", "--max-depth", "3", "--quiet")
    assert out.startswith("input_lifecycle: BOUNDED (max_depth reached) -- 106 distinct states, 1,323 generated, depth 3")
    code, out, _ = cli("check", "input_lifecycle", "--set", "n=9", "--time-limit", "0.3", "--quiet")
    assert code == 0 and out.startswith("input_lifecycle: BOUNDED (time_limit reached)")
    code, out, _ = cli("check", "input_lifecycle", "--max-depth", "3")
    assert "undecided (max_depth reached)" in out


def test_the_memory_budget_stops_a_search_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code, out, err = cli("check", "input_lifecycle", "diehard", "--set", "n=9", "--max-memory", "1M", "--json", str(path))
    assert code == 1
    assert out.startswith("input_lifecycle: BOUNDED (memory budget spent) -- ")
    assert "undecided (the search ran out of its memory budget)" in out
    assert out.splitlines()[-1] == "2 specs: 0 ok, 0 violated as expected, 1 bounded, 0 failed, 1 not run"
    assert "statewright: input_lifecycle: stopped at the memory budget" in err and "--max-memory" in err
    data = json.loads(path.read_text())
    # under a budget the first poll comes after one state (then as often as the states' size needs): the
    # initial state and its 18 successors, where a poll every 1,024 states would have gone on far past 1 MB
    assert (data["stopped_by"], data["verdict"], data["distinct_states"]) == ("memory", "bounded", 19)


def test_memory_sizes() -> None:
    assert parse_size("2G") == 2 << 30 and parse_size("none") is None and parse_size("50%") is not None
    code, _, err = cli("check", "diehard", "--max-memory", "lots")
    assert code == 2 and "--max-memory 'lots': expected a size like 8G, 512M or 80%, or none" in err


def test_help_explains_targets_and_the_memory_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["check", "--help"])
    text = capsys.readouterr().out
    assert "orders.py:order_spec" in text and "myapp.lifecycles" in text and "[tool.statewright]" in text
    assert "--max-memory SIZE" in text and "default: 80% of memory" in text


def test_a_sometimes_without_witness_says_no_witness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_orders(tmp_path)
    path.write_text(path.read_text().replace('expect={"retried"}', "expect=()"))
    code, out, _ = cli("check", "orders.py:shop_spec")
    assert code == 1
    assert "  FAIL retried                      sometimes            VIOLATED: no witness" in out
    assert "0-state" not in out


def test_the_json_file_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    code, _, _ = cli("check", "diehard", "--json", str(path))
    assert code == 0 and json.loads(path.read_text())["spec"] == "diehard"
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "input_lifecycle", "--set", "n=12", "--json", "/nonexistent/x.json"],
         "cannot write /nonexistent/x.json: no folder /nonexistent"),
        (["check", "input_lifecycle", "--set", "n=12", "--json", "."], "cannot write .: it is a folder"),
        (["check", "run", "--set", "edges=a>z"],
         "spec 'run' (edges='a>z'): UnknownEdgeState: edge 'a' -> 'z' names unknown state 'z'"),
        (["check", "run", "--set", "edges=a>b,b>a"], "CircularDependency: dependency cycle: a -> b -> a"),
        (["check", "run", "--set", "edges=a-c"], "spec 'run': edge 'a-c' is not 'before>after'"),
        (["check", "diehard", "--max-states", "0"], "argument --max-states: expected a positive integer, got '0'"),
        (["check", "diehard", "--time-limit", "soon"], "expected a number of seconds, got 'soon'"),
        (["test", "diehard", "--examples", "0"], "--examples must be at least 1, got 0"),
        (["mutate", "diehard", "--min", "150"], "argument --min: expected a percentage from 0 to 100, got '150'"),
        (["mutate", "diehard", "--min", "nan"], "argument --min: expected a percentage from 0 to 100, got 'nan'"),
        (["mutate", "diehard", "--min", "inf"], "argument --min: expected a percentage from 0 to 100, got 'inf'"),
        (["mutate", "diehard", "--min", "-5"], "argument --min: expected a percentage from 0 to 100, got '-5'"),
        (["mutate", "diehard", "--min", "half"], "argument --min: expected a percentage from 0 to 100, got 'half'"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_before_any_work(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import statewright.adapters.cli.checking as checking

    def no_work(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("a check ran before the mistake was reported")

    monkeypatch.setattr(checking, "check", no_work)
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert err.startswith("statewright: error: ") and message in err and err.count("\n") == 1, err
    assert "internal error" not in err


def test_a_valid_edge_list_is_no_mistake() -> None:
    code, out, _ = cli("check", "run", "--set", "edges=a>c", "--quiet")
    assert code == 0 and out.startswith("run: OK -- 144 distinct states")


BOOM = '''\
from dataclasses import dataclass
from enum import Enum

from statewright import Machine, Spec, Transition


class P(Enum):
    A = "a"
    B = "b"
    C = "c"


@dataclass(frozen=True, slots=True)
class S:
    phase: P = P.A
    n: int = 0


@dataclass(frozen=True, slots=True)
class Go: ...


@dataclass(frozen=True, slots=True)
class Boom: ...


def explode(s: S, i: Boom) -> bool:
    return 1 / s.n > 0


M = Machine("boom", initial=S(), terminal={P.C}, transitions=[
    Transition(P.A, Go, P.B),
    Transition(P.B, Boom, P.C, guard=explode),
])
boom = Spec("boom", M, [Go(), Boom()])
'''


def test_an_error_in_the_users_guard_is_one_line_plus_the_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "boom.py").write_text(BOOM)
    code, out, err = cli("check", "boom.py")
    assert code == 2 and out == ""
    first, *rest = err.splitlines()
    assert first.startswith("statewright: error: ") and "ZeroDivisionError" in first and "boom.py:" in first
    assert "internal error" not in err and "Traceback" not in err
    if rest:  # the kernel names the trace that reached the failing state
        assert rest[0] == "reached by:" and "Go" in rest[3]
    code, _, err = cli("check", "boom.py", "--traceback")
    assert code == 2 and "Traceback (most recent call last)" in err and "return 1 / s.n > 0" in err


def test_a_user_code_error_with_a_trace_prints_the_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    from statewright.adapters.cli import checking
    from statewright.kernel.errors import DefinitionError

    class Located(DefinitionError):
        trace = (TraceStep({"n": 0}, None, ()), TraceStep({"n": 1}, {"type": "Go"}, ()))
        original = ZeroDivisionError("division by zero")

    def failing(*args: object, **kwargs: object) -> None:
        raise Located("machine 'm', guard 'odd' (m.py:3) raised ZeroDivisionError: division by zero, in 1 with Go()")

    monkeypatch.setattr(checking, "check", failing)
    code, _, err = cli("check", "diehard")
    lines = err.splitlines()
    assert code == 2
    assert lines[0] == "statewright: error: machine 'm', guard 'odd' (m.py:3) raised ZeroDivisionError: " \
                       "division by zero, in 1 with Go()"
    assert lines[1] == "reached by:" and lines[2].split() == ["step", "input", "changed", "effects"]
    assert len(lines) == 5


def test_internal_errors_stay_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    from statewright.adapters.cli import checking

    def buggy(*args: object, **kwargs: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(checking, "check", buggy)
    code, _, err = cli("check", "diehard")
    assert code == 2 and err == "statewright: internal error: KeyError: 'oops'\n"
    code, _, err = cli("--traceback", "check", "diehard")
    assert "Traceback (most recent call last)" in err


def interrupt(signum: int, tmp_path: Path, *names: str) -> tuple[int, str, str, object]:
    """Run a long check in a subprocess, send ``signum`` once it reports progress, return what it left."""
    path = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "statewright", "check", *names, "--set", "n=9", "--json", str(path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "states (" in line or not line:  # a progress line: the search is running
            break
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, seen + err, json.loads(path.read_text())


@pytest.mark.slow
def test_sigint_stops_the_check_and_still_writes_every_report(tmp_path: Path) -> None:
    code, out, err, data = interrupt(signal.SIGINT, tmp_path, "diehard", "input_lifecycle", "two_phase")
    assert code == 130, err
    assert isinstance(data, list) and [d["spec"] for d in data] == ["diehard", "input_lifecycle"]
    assert data[0]["complete"] is True and data[0]["verdict"] == "ok"
    last = data[-1]
    assert (last["stopped_by"], last["verdict"], last["complete"]) == ("interrupted", "bounded", False)
    assert last["distinct_states"] > 0
    assert "input_lifecycle: BOUNDED (interrupted)" in out
    assert out.splitlines()[-1] == "3 specs: 0 ok, 1 violated as expected, 1 bounded, 0 failed, 1 not run"
    assert "statewright: interrupted by SIGINT: input_lifecycle stopped after " in err and "1 spec not run" in err
    assert "states/s" not in err and "/s), depth" in err and "memory" in err  # progress: rate and memory


@pytest.mark.slow
def test_sigterm_stops_the_check_with_exit_143(tmp_path: Path) -> None:
    code, out, err, data = interrupt(signal.SIGTERM, tmp_path, "input_lifecycle")
    assert code == 143, err
    assert isinstance(data, dict)
    assert (data["stopped_by"], data["verdict"]) == ("interrupted", "bounded") and data["distinct_states"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_the_stopper_reports_signals_then_memory() -> None:
    from statewright.adapters.cli.checking import Stopper

    stopper = Stopper(budget=None)
    assert stopper() is None
    stopper.signum = signal.SIGTERM
    assert stopper() is StopReason.INTERRUPTED
    low = Stopper(budget=1)
    assert low() is None and low.reason is None  # the check polls the budget itself (check(max_memory=...))
    low.record(replace(check(REGISTRY.get("diehard").spec()), stopped_by=StopReason.MEMORY))
    assert low.memory is not None and low.memory > 1 and low.reason is StopReason.MEMORY


def test_names_from_before_a_rename_warn_on_one_line_and_still_work(tmp_path: Path) -> None:
    spec_file = tmp_path / "old_names.py"
    spec_file.write_text(
        "from enum import Enum\n"
        "from statewright import Machine, Spec, Transition\n"
        "from statewright.kernel.checker import transition\n"
        "class P(Enum):\n"
        "    ON = 1\n"
        "class Go: ...\n"
        "LAMP = Machine('lamp', initial=P.ON, transitions=[Transition(P.ON, Go, P.ON)])\n"
        "SPEC = Spec('lamp', LAMP, [Go()], [transition('same', lambda b, i, a: a == b)], deadlock=False)\n"
    )
    code, out, err = cli("check", str(spec_file), "--quiet")
    assert code == 0 and out.startswith("lamp: OK -- 1 distinct states")
    assert err == (f"statewright: warning: {spec_file}:8: transition(name, test) is now "
                   "always_step(name, test); the old name goes in the next release\n")
