"""`statewright diagram` and the committed diagrams/ folder."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from statewright.adapters.cli import run
from statewright.specs import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
TEXT = ("dot", "mmd", "md")


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return run(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


def test_committed_diagrams_match_the_code(tmp_path: Path) -> None:
    code, _, err = cli("diagram", "--all", "--format", "dot,mmd,md", "--out", str(tmp_path))
    assert code == 0, err
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {
        p.name: p.read_text() for p in (ROOT / "diagrams").iterdir() if p.suffix[1:] in TEXT and p.name != "README.md"
    }
    assert set(fresh) == set(committed), "diagrams/ is missing or has extra files: run `statewright diagram --all`"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"diagrams drifted from the code: {stale}; run `statewright diagram --all`"


def test_every_bundled_machine_has_svg_dot_and_mmd() -> None:
    for name in REGISTRY.machines:
        for ext in ("svg", "dot", "mmd"):
            assert (ROOT / "diagrams" / f"{name}.{ext}").is_file(), f"{name}.{ext}"


def test_without_dot_text_formats_are_still_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    code, out, _ = cli("diagram", "input", "--out", str(tmp_path))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.dot", "input.md", "input.mmd"]
    assert "skipped input.svg: Graphviz's `dot` is not installed" in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_and_png_are_rendered(tmp_path: Path) -> None:
    code, _, _ = cli("diagram", "task", "--format", "svg", "--format", "png", "--out", str(tmp_path))
    assert code == 0
    assert (tmp_path / "task.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "task.png").read_bytes()[:4] == b"\x89PNG"


def test_reachable_graph_and_trace_highlight(tmp_path: Path) -> None:
    code, out, _ = cli("diagram", "diehard", "--reachable", "--trace", "not_solved", "--format", "dot", "--out", str(tmp_path))
    text = (tmp_path / "diehard.not_solved.dot").read_text()
    assert code == 0 and text.count(" -> ") == 74  # 16 states, 74 distinct state-to-state edges
    assert text.count("penwidth=2, color") + text.count('color="#d62728", penwidth=2') >= 7


def test_trace_on_the_declared_graph(tmp_path: Path) -> None:
    code, _, _ = cli("diagram", "task_as_written", "--trace", "first_terminal_wins", "--format", "dot", "--out", str(tmp_path))
    text = (tmp_path / "task_as_written.first_terminal_wins.task_as_written.dot").read_text()
    assert code == 0
    assert '"CANCELLED" -> "PASSED" [label=' in text and "#d62728" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diagram", "nope"], "unknown machine or spec 'nope'"),
        (["diagram", "input", "--format", "gif"], "unknown format 'gif'"),
        (["diagram", "input_lifecycle", "--reachable"], "more than 500 reachable states; too many to draw"),
        (["diagram", "run", "--trace", "nope"], "spec 'run' has no property 'nope'"),
        (["diagram", "run", "--trace", "terminal_stable"], "has no trace to highlight (it holds)"),
        (["diagram"], "diagram needs machine or spec names, or --all"),
    ],
)
def test_bad_diagram_requests_exit_2(argv: list[str], message: str, tmp_path: Path) -> None:
    code, _, err = cli(*argv, "--out", str(tmp_path))
    assert code == 2 and message in err and err.count("\n") == 1
