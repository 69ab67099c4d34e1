"""A lasso -- a temporal counterexample -- printed with its loop marked, written as JSON, read back and replayed."""

from __future__ import annotations

import io
import json
from pathlib import Path

from statewright.adapters.cli import run
from statewright.adapters.testing.stateful import replay
from statewright.adapters.testing.traces import trace_from_json
from statewright.kernel.checker import check

SPEC = '''
from dataclasses import dataclass, replace
from enum import Enum

from statewright import Guard, Machine, Spec, Transition, eventually, weak_fair


class P(Enum):
    RUN = "run"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class C:
    phase: P = P.RUN
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc: ...


@dataclass(frozen=True, slots=True)
class Reset: ...


@dataclass(frozen=True, slots=True)
class Finish: ...


CYCLER = Machine("cycler", initial=C(), terminal={P.DONE}, transitions=[
    Transition(P.RUN, Inc, P.RUN, guard=Guard("below_2", lambda s, i: s.n < 2), update=lambda s, i: replace(s, n=s.n + 1)),
    Transition(P.RUN, Reset, P.RUN, guard=Guard("at_2", lambda s, i: s.n == 2), update=lambda s, i: replace(s, n=0)),
    Transition(P.RUN, Finish, P.DONE, guard=Guard("at_2_too", lambda s, i: s.n == 2)),
])


def cycle_spec(fair: bool = True) -> Spec:
    """Finish is possible only at n=2; weak fairness of each input does not force it (the cycle leaves n=2)."""
    return Spec("cycle", CYCLER, [Inc(), Reset(), Finish()], [eventually("done", lambda s: s.phase is P.DONE)],
                fairness=[weak_fair(Inc), weak_fair(Reset), weak_fair(Finish)] if fair else [])
'''


def write_spec(tmp_path: Path) -> Path:
    path = tmp_path / "cycle.py"
    path.write_text(SPEC)
    return path


def test_a_lasso_prints_its_loop_round_trips_through_json_and_replays(tmp_path: Path) -> None:
    spec_file = write_spec(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = run(["check", str(spec_file), "--json", str(tmp_path / "r.json")], out=out, err=err)
    text = out.getvalue()
    assert code == 1, err.getvalue()
    assert "FAIL done" in text and "VIOLATED (3-state lasso)" in text
    assert "(back to step 0, forever)" in text and "then Reset leads back to step 0" in text
    data = json.loads((tmp_path / "r.json").read_text())
    (done,) = [p for p in data["properties"] if p["name"] == "done"]
    assert done["loop"] == 0 and len(done["trace"]) == 3

    from statewright.adapters.project.targets import Loader  # the same loading as the command

    with Loader(tmp_path, None, find=False) as loader:
        (target,) = loader.resolve(f"{spec_file}:cycle_spec")
        spec = target.spec()
        trace = trace_from_json(spec, done["trace"])
        assert trace == check(spec).result("done").trace
        assert replay(spec, trace, loop=done["loop"]).stopped is None
        assert "does not close" in (replay(spec, trace[:2], loop=0).stopped or "")


def test_without_fairness_the_lasso_stutters(tmp_path: Path) -> None:
    spec_file = write_spec(tmp_path)
    out = io.StringIO()
    assert run(["check", f"{spec_file}:cycle_spec", "--set", "fair=false"], out=out, err=io.StringIO()) == 1
    assert "VIOLATED (1-state lasso)" in out.getvalue() and "(stutters here forever)" in out.getvalue()
