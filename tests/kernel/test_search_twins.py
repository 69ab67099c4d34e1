"""`Search._explore` and `Search._explore_recording` are one loop kept twice (see `kernel.checker.search`).

The second also records the graph temporal properties need; everything else
must be the same: states in the same order, the same parents, findings,
witnesses, counts and coverage. Each bundled spec runs through both.
"""

from __future__ import annotations

from typing import Any

import pytest

from statewright.kernel.checker import Options, Report
from statewright.kernel.checker.behaviours import Edges
from statewright.kernel.checker.search import Search
from statewright.specs import REGISTRY

SIZES = {"input_lifecycle": {"n": 4}, "lamport_mutex": {"n": 2, "max_clock": 2}}
SLOW = {"session_inputs", "dispatch"}


def run(spec: Any, *, recording: bool, keep_going: bool) -> tuple[Search, Report]:
    search = Search(spec, Options(keep_going=keep_going))
    if recording and search.graph is None:
        search.graph = Edges.empty()
        search.lane.rules = []
    elif not recording and search.graph is not None:
        search.graph = None
        search.lane.rules = None
    return search, search.run()


def safety_only(report: Report) -> tuple[Any, ...]:
    safety = tuple((p.name, p.status, p.trace, p.detail) for p in report.properties if not p.kind.temporal)
    return (report.distinct_states, report.generated, report.depth, report.pruned, report.coverage, safety)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in REGISTRY.names])
@pytest.mark.parametrize("keep_going", [False, True])
def test_both_loops_explore_and_judge_alike(name: str, keep_going: bool) -> None:
    spec = REGISTRY.get(name).spec(**SIZES.get(name, {}))
    plain, plain_report = run(spec, recording=False, keep_going=keep_going)
    recording, recorded_report = run(spec, recording=True, keep_going=keep_going)
    assert plain.keys == recording.keys
    assert plain.parents == recording.parents
    if not spec.temporal:  # with temporal properties the recording loop also decides them
        assert safety_only(plain_report) == safety_only(recorded_report)
    assert recording.graph is not None and len(recording.graph.offsets) == recording.cursor + 1
