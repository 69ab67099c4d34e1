"""The `statewright` command: exit codes, one-line errors, readable traces and JSON."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from statewright.adapters.cli import run
from statewright.kernel.checker import always
from statewright.specs import REGISTRY
from statewright.specs.registry import Entry


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_list_shows_specs_and_machines() -> None:
    code, out, _ = cli("list")
    assert code == 0
    for name in ("diehard", "two_phase", "input_lifecycle", "tla_input", "input "):
        assert name in out


def test_diehard_exits_0_with_its_expected_violation_and_trace_table() -> None:
    code, out, _ = cli("check", "diehard")
    assert code == 0
    assert "violated as expected (7-state trace)" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 7 and rows[-1][1] == "BigToSmall" and "big: 5 -> 4" in out


def test_diehard_continue_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code, _, _ = cli("check", "diehard", "--continue", "--json", str(path))
    data = json.loads(path.read_text())
    assert code == 0
    assert (data["spec"], data["verdict"], data["complete"]) == ("diehard", "ok", True)
    assert (data["distinct_states"], data["depth"]) == (16, 8)
    prop = data["properties"][0]
    assert (prop["name"], prop["kind"], prop["holds"], prop["expected"], prop["status"]) == (
        "not_solved", "always", False, True, "expected")
    trace = prop["trace"]
    assert len(trace) == 7 and trace[0]["input"] is None
    assert trace[-1]["state"] == {"phase": "pouring", "small": 3, "big": 4}
    assert trace[1]["input"] == {"type": "FillBig"} and trace[1]["effects"] == []
    assert {c["transition"] for c in data["coverage"]} >= {"POURING --FillBig--> POURING"}


@pytest.fixture
def no_expectation() -> Iterator[None]:
    entry = REGISTRY.get("diehard")
    REGISTRY.entries["diehard_strict"] = Entry(
        "diehard_strict", lambda: replace(entry.build(), name="diehard_strict", expect=()), {}, "")
    yield
    del REGISTRY.entries["diehard_strict"]


def test_diehard_without_its_expectation_exits_1(no_expectation: None) -> None:
    code, out, _ = cli("check", "diehard_strict")
    assert code == 1 and "VIOLATED (7-state trace)" in out


def test_two_phase_and_several_reports_in_one_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code, out, _ = cli("check", "two_phase", "diehard", "--json", str(path))
    data = json.loads(path.read_text())
    assert code == 0 and [d["spec"] for d in data] == ["two_phase", "diehard"]
    assert (data[0]["distinct_states"], data[0]["depth"]) == (288, 11)
    step = data[0]["properties"][1]["trace"][1]
    assert set(step["state"]) == {"tm", "r1", "r2", "r3", "msgs"}
    assert step["input"]["instance"] in {"r1", "r2", "r3", "tm"}


def test_set_parameters_and_seeded_bug_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code, out, _ = cli("check", "input_lifecycle", "--set", "n=3", "--set", "stage_guard=false", "--json", str(path))
    data = json.loads(path.read_text())
    assert code == 1 and data["verdict"] == "violated" and data["parameters"]["n"] == 3
    bad = next(p for p in data["properties"] if p["name"] == "at_most_one_staged")
    assert len(bad["trace"]) == 5 and bad["trace"][2]["input"] == {"instance": "i1", "type": "Stage"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "nope"], "unknown spec 'nope'; known specs: " + ", ".join(REGISTRY.names)),
        (["check"], "check needs spec names or --all"),
        (["check", "diehard", "--set", "n=3"], "spec 'diehard' has no parameter 'n'; its parameters: none"),
        (["check", "two_phase", "--set", "rmz=3"],
         "spec 'two_phase' has no parameter 'rmz' (did you mean 'rms'?); its parameters: rms, all_prepared, commit_sent"),
        (["check", "two_phase", "diehard", "--set", "all_prepare=false"],
         "none of the chosen specs has a parameter 'all_prepare' (did you mean 'all_prepared'?); their parameters: "
         "all_prepared, commit_sent, rms"),
        (["check", "two_phse"], "unknown spec 'two_phse' (did you mean 'two_phase'?); known specs: "),
        (["check", "input_lifecycle", "--set", "n=abc"], "n='abc': expected an integer"),
        (["check", "input_lifecycle", "--set", "n"], "--set expects KEY=VALUE, got 'n'"),
        (["check", "input_lifecycle", "--set", "n=0"], "n must be at least 1"),
        (["check", "input_lifecycle", "--set", "stage_guard=maybe"], "expected true or false"),
        (["frobnicate"], "unknown command 'frobnicate'; commands: check, test, mutate, diagram, inspect, run, resume, replay, lincheck, serve or list"),
        (["chek", "diehard"], "unknown command 'chek' (did you mean 'check'?); commands: check, test, "),
        (["lsit"], "unknown command 'lsit' (did you mean 'list'?)"),
        ([], "expected a command: check, test, mutate, diagram, inspect, run, resume, replay, lincheck, serve or list"),
        (["check", "diehard", "--json", "/nonexistent/dir/r.json"], "cannot write /nonexistent/dir/r.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    code, _, err = cli(*argv)
    assert code == 2
    assert err.startswith("statewright: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_definition_error_in_a_spec_is_exit_2() -> None:
    from statewright.kernel import DefinitionError

    def broken() -> object:
        raise DefinitionError("machine 'x': unknown phase 'AJAR'")

    REGISTRY.entries["broken"] = Entry("broken", broken, {}, "")  # type: ignore[arg-type]
    try:
        code, _, err = cli("check", "broken")
    finally:
        del REGISTRY.entries["broken"]
    assert code == 2 and err == "statewright: error: machine 'x': unknown phase 'AJAR'\n"


def test_the_installed_command_runs_without_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "statewright", "check", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("statewright: error: unknown spec")


def test_mutate_prints_scores_and_survivors() -> None:
    code, out, _ = cli("mutate", "input", "--min", "90")
    assert code == 0 and out.startswith("input/input: 101/104 mutants caught (97.1%; 53 by a definition error)\n")
    code, out, _ = cli("mutate", "input", "--min", "100")
    assert code == 1
    assert "  survived: #1 QUEUED --Stage[names_run, attempts_left]--> STAGED: drop guard attempts_left" in out.splitlines()


def test_mutate_scores_each_machine_and_then_the_system() -> None:
    code, out, _ = cli("mutate", "two_phase")
    lines = [line for line in out.splitlines() if not line.startswith("  ")]
    assert code == 0 and lines == [
        "two_phase/transaction_manager: 8/8 mutants caught (100.0%; 4 by a definition error)",
        "two_phase/resource_manager: 8/12 mutants caught (66.7%; 6 by a definition error)",
        "two_phase/messages: no mutants (not counted for --min)",
        "two_phase/system: 5/5 mutants caught (100.0%)",
    ]
    assert cli("mutate", "two_phase", "--min", "90")[0] == 1  # the resource manager's 66.7%


def test_no_mutants_is_neither_a_pass_nor_a_failure_of_min() -> None:
    code, out, _ = cli("mutate", "diehard", "--min", "100")
    assert (code, out) == (0, "diehard/diehard: no mutants (not counted for --min)\n")


@pytest.fixture
def counting() -> Iterator[None]:
    from tests.kernel.test_mutants import counter_spec

    REGISTRY.entries["counting"] = Entry("counting", counter_spec, {}, "")
    REGISTRY.entries["never"] = Entry(
        "never", lambda: counter_spec(name="never", properties=[always("never_true", lambda s: False)]), {}, "")
    yield
    del REGISTRY.entries["counting"], REGISTRY.entries["never"]


def test_mutate_says_which_survivors_only_ran_out_of_budget_or_crashed(counting: None) -> None:
    code, out, _ = cli("mutate", "counting")
    assert code == 0 and out.splitlines()[:3] == [
        "counting/counter: 3/7 mutants caught (42.9%; 1 by a definition error)",
        "  survived (bounded): #0 COUNTING --Inc[below_3]--> COUNTING: drop guard below_3 -- "
        "nothing failed in the budget of 1,000 states",
        "  survived (raised): #1 COUNTING --Dec[positive]--> COUNTING: drop guard positive -- transition #1 "
        "(COUNTING --Dec--> COUNTING), update raised ValueError: the counter would go below zero",
    ]
    assert "  survived: #1 COUNTING --Dec[positive]--> COUNTING: retarget to DONE" in out.splitlines()


def test_mutate_refuses_a_spec_that_already_fails(counting: None) -> None:
    code, out, err = cli("mutate", "never")
    assert (code, err) == (1, "")
    assert out == ("never: not scored: spec 'never' already fails its own check (property 'never_true' violated): "
                   "mutants cannot be scored until it passes\n")
    code, out, _ = cli("mutate", "never", "counting")  # the others are still scored
    assert code == 1 and out.splitlines()[1].startswith("counting/counter: 3/7 mutants caught")


@pytest.mark.slow
def test_test_command_passes_bundled_specs_and_finds_seeded_bugs() -> None:
    code, out, _ = cli("test", "run", "two_phase", "--examples", "10", "--seed", "3")
    assert code == 0 and "run: passed" in out and "two_phase: passed" in out
    code, out, _ = cli("test", "input_lifecycle", "--set", "n=3", "--set", "stage_guard=false",
                       "--examples", "40", "--seed", "1")
    assert code == 1 and "input_lifecycle: FAILED" in out
    assert "property 'at_most_one_staged' violated" in out and "input=Stage()" in out


@pytest.mark.slow
def test_a_failing_suite_prints_a_program_to_paste_and_the_command_that_finds_it_again(tmp_path: Path) -> None:
    import shlex

    argv = ["test", "input_lifecycle", "--set", "n=3", "--set", "stage_guard=false", "--examples", "60"]
    code, out, _ = cli(*argv)
    assert code == 1 and out.startswith("input_lifecycle: FAILED\nPropertyViolation: property 'at_most_one_staged'")
    program = out[out.index("\nfrom ") + 1:out.index("\n])\n") + 3]
    assert "spec = REGISTRY.get('input_lifecycle').spec(n=3, stage_guard=False)" in program.splitlines()
    (tmp_path / "repro.py").write_text(program)
    done = subprocess.run([sys.executable, "repro.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "PropertyViolation: property 'at_most_one_staged' violated" in done.stderr
    last = out.splitlines()[-1]
    assert last == ("seed 0: `statewright test input_lifecycle --set n=3 --set stage_guard=false --examples 60 "
                    "--seed 0` runs the same programs and finds it again")
    again = shlex.split(last.split("`")[1])
    assert cli(*again[1:]) == (1, out, "")  # the printed command prints the same failure
    code, out, _ = cli(*argv, "--seed", "5")
    assert code == 1 and out.splitlines()[-1].startswith("seed 5: `statewright test input_lifecycle ")


def test_inspect_shows_instances_and_logs_and_flags_corrupt_records(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.adapters.runtime.store import Catalog
    from statewright.machines.input import INPUT, Input, authorize_seed

    db = tmp_path / "s.db"

    async def write() -> None:
        store = await SqliteStore.open(db, Catalog({"input": INPUT}, {"input": authorize_seed}))
        await store.cas("in1", 0, Input(), machine="input")
        await store.cas("in2", 0, Input(), machine="input")
        await store.append("in1", 0, [("input", {"type": "Queue"})])
        await store.close()

    asyncio.run(write())
    code, out, _ = cli("inspect", str(db))
    assert code == 0
    assert out.splitlines()[:2] == ["in1: input ACCEPTED (version 1)", '    1 input      {"type": "Queue"}']
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE instances SET state = '{not json' WHERE key = 'in2'")
    code, out, _ = cli("inspect", str(db))
    assert code == 1 and "in1: input ACCEPTED" in out and "in2: CORRUPT -- record 'in2' cannot be decoded" in out
    code, _, err = cli("inspect", str(db), "--key", "in9")
    assert code == 2 and "no instance 'in9'" in err


def test_svg_asked_for_without_graphviz_is_an_error_naming_what_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    for formats, needs in ((["svg"], "svg needs"), (["svg,dot"], "svg needs"), (["png", "mmd"], "png needs"),
                           (["svg,png"], "svg and png need")):
        argv = ["diagram", "run", "--out", str(tmp_path / "d")]
        for f in formats:
            argv += ["--format", f]
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert f": {needs} Graphviz's `dot`, which is not on PATH" in err and "use --format dot, mmd or md" in err
        assert not (tmp_path / "d").exists()  # refused before anything was written
    code, out, _ = cli("diagram", "run", "--out", str(tmp_path / "d"))  # the default set skips svg, and says so
    assert code == 0 and "skipped run.svg" in out and (tmp_path / "d" / "run.dot").is_file()


def test_diagram_paths_and_empty_results_are_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    code, _, err = cli("diagram", "run", "--out", str(a_file), "--format", "dot")
    assert code == 2 and err == f"statewright: error: --out {a_file}: not a folder (it is a file)\n"
    code, _, err = cli("diagram", "run", "--out", str(a_file / "below"), "--format", "dot")
    assert code == 2 and "is a file, not a folder" in err
    code, _, err = cli("diagram", "diehard", "--reachable", "--format", "mmd", "--out", str(tmp_path / "x"))
    assert code == 2 and "nothing was written: diehard.reachable.mmd: reachable graphs are drawn as dot/svg/png only" in err


def test_list_outside_a_project_shows_the_bundled_specs_without_origins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("list")
    assert code == 0 and "  diehard  " in out and "(from " not in out
    assert out.count("\n") == 1 + len(REGISTRY.names) + 1 + len(REGISTRY.machines)


def test_version_prints_the_installed_version() -> None:
    import importlib.metadata

    assert cli("--version") == (0, f"statewright {importlib.metadata.version('statewright')}\n", "")


@pytest.mark.parametrize("name", ["check", "test", "mutate", "diagram", "inspect", "lincheck", "list"])
def test_each_command_help_has_a_sentence_and_examples_that_parse(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import shlex

    from statewright.adapters.cli.command import COMMANDS, _parser

    with pytest.raises(SystemExit) as exit_:
        run([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    _, description, examples = COMMANDS[name]
    assert " ".join(description.split()[:6]) in " ".join(text.split()) and description.endswith(".")
    assert "\nexamples:\n" in text and examples
    for line in examples:
        assert f"\n  {line}\n" in text
        argv = shlex.split(line)
        assert argv[:2] == ["statewright", name]
        assert _parser().parse_args(argv[1:]).command == name  # each example is a valid command line


def test_lincheck_help_names_the_recorder_by_its_import_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["lincheck", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "statewright.adapters.testing.linearizability.Recorder" in text
    assert " adapters.testing" not in text and "(adapters.testing" not in text


def test_max_states_says_the_search_may_know_more_states_than_asked() -> None:
    code, out, _ = cli("check", "two_phase", "--max-states", "5", "--quiet")
    assert code == 0
    assert out.splitlines()[0].startswith(
        "two_phase: BOUNDED (max_states reached) -- 8 distinct states (max_states was 5; the search stops once at "
        "least that many are known), 7 generated, depth 2, "
    )
