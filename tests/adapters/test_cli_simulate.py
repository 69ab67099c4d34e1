"""`statewright check --simulate N [--depth D] [--seed S]`: output, JSON, exit codes and usage errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.cli.text import render_trace
from statewright.kernel.checker import simulate
from statewright.specs import REGISTRY
from tests.adapters.test_cli_check import BOOM, cli

BUGGY = ("input_lifecycle", "--set", "n=7", "--set", "stage_guard=false")
RATES = re.compile(r", [\d,]+ behaviours/s, [\d,]+ states/s, seed (\d+), \d+\.\d\d s$")


def without_rates(line: str) -> str:
    """A summary line without its clock figures (behaviours/s, states/s and seconds), keeping the seed."""
    return RATES.sub(r", seed \1", line)


def test_the_seeded_bug_is_found_and_printed_like_a_check() -> None:
    code, out, err = cli("check", *BUGGY, "--simulate", "10000", "--seed", "7")
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == "simulating input_lifecycle: 10,000 behaviours of up to 100 steps, seed 7"
    assert lines[1] == "  FAIL at_most_one_staged           always               VIOLATED (11-state trace)"
    sim = simulate(REGISTRY.get("input_lifecycle").spec(n=7, stage_guard=False), behaviours=10_000, seed=7)
    table = render_trace(sim.result("at_most_one_staged").trace or (), indent="       ")
    assert "\n".join(lines[2:14]) == table
    assert lines[2].split() == ["step", "input", "changed", "effects"] and "i7.Stage" in lines[13]
    assert lines[14:-1] == [
        "  ??   superseded_by_newer          always               no violation in 11 behaviours",
        "  ??   terminal_stable              step                 no violation in 11 behaviours",
        "  ??   all_consumed                 sometimes            not witnessed in 11 behaviours",
        "  ??   deadlock                     deadlock             no violation in 11 behaviours",
        "  ??   determinism                  determinism          no violation in 11 behaviours",
        "  ??   terminal_precedence          terminal_precedence  no violation in 11 behaviours",
    ]
    assert without_rates(lines[-1]) == ("input_lifecycle: VIOLATED (stopped at the first violation) -- 11 behaviours, "
                                        "136 steps, 126 distinct states seen, seed 7")


def test_the_fixed_model_is_bounded_and_exits_0() -> None:
    code, out, _ = cli("check", "input_lifecycle", "--simulate", "200", "--seed", "7", "--depth", "50")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "simulating input_lifecycle: 200 behaviours of up to 50 steps, seed 7"
    assert lines[1] == "  ??   at_most_one_staged           always               no violation in 200 behaviours"
    assert without_rates(lines[-1]) == ("input_lifecycle: BOUNDED -- 200 behaviours, 2,549 steps, "
                                        "1,664 distinct states seen, seed 7")


def test_without_a_seed_one_is_drawn_printed_and_repeats_the_run() -> None:
    code, out, _ = cli("check", "input_lifecycle", "--simulate", "30", "--quiet")
    assert code == 0
    drawn = RATES.search(out.splitlines()[0])
    assert drawn is not None
    _, again, _ = cli("check", "input_lifecycle", "--simulate", "30", "--quiet", "--seed", drawn.group(1))
    assert without_rates(again.splitlines()[0]) == without_rates(out.splitlines()[0])


def test_temporal_and_expected_properties() -> None:
    code, out, _ = cli("check", "ewd840", "--set", "n=3", "--set", "fair=false", "--simulate", "20", "--seed", "1")
    assert code == 0
    assert "  ??   liveness                     leads_to             not checked: simulation decides no temporal " \
           "property" in out
    code, out, _ = cli("check", "diehard", "--simulate", "200", "--seed", "1")
    assert code == 0 and "  ok   not_solved                   always               violated as expected (" in out
    code, out, _ = cli("check", "diehard", "--simulate", "5", "--depth", "10", "--seed", "1")
    assert code == 1
    assert "  FAIL not_solved                   always               expected a violation, none found in 5 " \
           "behaviours" in out


@pytest.mark.slow
def test_all_and_quiet_simulate_every_spec(tmp_path: Path) -> None:
    path = tmp_path / "sims.json"
    code, out, _ = cli("check", "--all", "--simulate", "50", "--depth", "50", "--seed", "1", "--quiet",
                       "--json", str(path))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 26 and all(" BOUNDED -- 50 behaviours, " in line for line in lines[:-1])
    assert lines[-1] == "25 specs: 0 ok, 0 violated as expected, 25 bounded, 0 failed"
    data = json.loads(path.read_text())
    assert [d["spec"] for d in data][:3] == ["cas_atomic", "cas_non_atomic", "diehard"] and len(data) == 25
    assert all(d["simulation"] is True and d["seed"] == 1 and d["behaviours"] == 50 for d in data)


def test_json_of_a_violation(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    code, _, _ = cli("check", *BUGGY, "--simulate", "10000", "--seed", "7", "--json", str(path))
    assert code == 1
    data = json.loads(path.read_text())
    assert {k: data[k] for k in ("spec", "simulation", "verdict", "stopped_by", "seed", "behaviours", "depth",
                                 "steps", "distinct_states")} == {
        "spec": "input_lifecycle", "simulation": True, "verdict": "violated", "stopped_by": "violation", "seed": 7,
        "behaviours": 11, "depth": 100, "steps": 136, "distinct_states": 126,
    }
    assert data["parameters"] == {"n": 7, "stage_guard": False, "abandon_terminal": False}
    found = data["properties"][0]
    assert (found["name"], found["status"], found["holds"], len(found["trace"])) == (
        "at_most_one_staged", "violated", False, 11)
    assert found["trace"][0]["input"] is None and found["trace"][-1]["input"]["instance"] == "i7"


def test_time_limit_and_memory_budget_stop_a_simulation() -> None:
    code, out, _ = cli("check", "input_lifecycle", "--simulate", "100000000", "--time-limit", "0.2", "--quiet")
    assert code == 0 and out.startswith("input_lifecycle: BOUNDED (time_limit reached) -- ")
    code, out, err = cli("check", "input_lifecycle", "--simulate", "100000000", "--max-memory", "1M", "--quiet")
    assert code == 1 and out.startswith("input_lifecycle: BOUNDED (memory budget spent) -- ")
    assert "statewright: input_lifecycle: stopped at the memory budget" in err and "simulate fewer" in err


def test_an_error_in_the_users_code_is_one_line_plus_the_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "boom.py").write_text(BOOM)
    code, out, err = cli("check", "boom.py", "--simulate", "10", "--seed", "1")
    assert code == 2 and out == "simulating boom: 10 behaviours of up to 100 steps, seed 1\n"
    first, *rest = err.splitlines()
    assert first.startswith("statewright: error: ") and "ZeroDivisionError" in first and "boom.py:" in first
    assert rest[0] == "reached by:" and "(initial)" in rest[2] and "Go" in rest[3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--simulate", "0"], "argument --simulate: expected a positive integer, got '0'"),
        (["--simulate", "many"], "argument --simulate: expected a positive integer, got 'many'"),
        (["--simulate", "5", "--depth", "-1"], "argument --depth: expected a number of steps (0 or more), got '-1'"),
        (["--simulate", "5", "--seed", "-1"], "argument --seed: expected a seed from 0 to 2**64 - 1, got '-1'"),
        (["--simulate", "5", "--seed", str(1 << 64)], "argument --seed: expected a seed from 0 to 2**64 - 1"),
        (["--depth", "5"], "--depth needs --simulate N"),
        (["--seed", "5", "--depth", "5"], "--depth and --seed need --simulate N"),
        (["--simulate", "5", "--max-states", "10"], "--simulate cannot be combined with --max-states"),
        (["--simulate", "5", "--max-depth", "10"], "--simulate cannot be combined with --max-depth"),
        (["--simulate", "5", "--continue"], "--simulate cannot be combined with --continue"),
        (["--simulate", "5", "--json", "/nonexistent/x.json"], "cannot write /nonexistent/x.json"),
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_work(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import statewright.adapters.cli.simulating as simulating

    def no_work(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("a simulation ran before the mistake was reported")

    monkeypatch.setattr(simulating, "simulate", no_work)
    code, out, err = cli("check", "input_lifecycle", *argv)
    assert code == 2 and out == ""
    assert err.startswith("statewright: error: ") and message in err and err.count("\n") == 1, err


def test_help_lists_the_simulation_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli("check", "--help")
    text = capsys.readouterr().out
    assert "--simulate N" in text and "--depth D" in text and "--seed S" in text


@pytest.mark.slow
def test_sigint_stops_a_simulation_and_still_reports_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "statewright", "check", "input_lifecycle", "--simulate", "1000000000", "--seed", "3"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    header = proc.stdout.readline()  # printed as the simulation starts
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert header == "simulating input_lifecycle: 1,000,000,000 behaviours of up to 100 steps, seed 3\n"
    assert "input_lifecycle: BOUNDED (interrupted) -- " in out
    assert "statewright: interrupted by SIGINT: input_lifecycle stopped after " in err
