"""Check reports as JSON: what ``statewright check --json`` writes.

Traces are lists of ``{"state", "input", "effects"}`` (`kernel.jsonable.trace_json`,
handed on here), the value encoding the stores use too, so a trace written
here reads back with the same codec (`adapters.testing.traces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from statewright.adapters.runtime.serialize import value_json
from statewright.kernel.checker import PropertyResult, Report
from statewright.kernel.checker.simulate import Simulation
from statewright.kernel.draw import Analysis
from statewright.kernel.jsonable import trace_json

__all__ = ["report_json", "simulation_json", "trace_json"]


def _property_json(r: PropertyResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": r.name,
        "kind": r.kind.value,
        "status": r.status.value,
        "holds": r.holds,
        "expected": r.expected,
        "trace": trace_json(r.trace),
    }
    if r.detail:
        out["detail"] = r.detail
    if r.loop is not None:
        out["loop"] = r.loop  # a lasso: after the last state the behaviour goes back to trace[loop], forever
    return out


def report_json(
    report: Report, parameters: dict[str, Any] | None = None, analyses: Sequence[Analysis] = ()
) -> dict[str, Any]:
    """The report as the JSON object ``statewright check --json`` writes.

    ``analyses`` are the structural findings on the spec's machines
    (`kernel.draw.graphs.analyse`): unreachable phases, traps, phases with no path
    to a terminal phase.
    """
    return {
        "spec": report.spec,
        "parameters": value_json(parameters or {}),
        "verdict": report.verdict.value,
        "complete": report.complete,
        "stopped_by": report.stopped_by.value if report.stopped_by else None,
        "distinct_states": report.distinct_states,
        "pruned": report.pruned,
        "symmetry": [list(g) for g in report.symmetric],
        "generated": report.generated,
        "depth": report.depth,
        "seconds": round(report.seconds, 4),
        "properties": [_property_json(r) for r in report.properties],
        "coverage": [
            {"machine": c.machine, "index": c.index, "transition": c.label, "fired": c.fired}
            for c in report.coverage
        ],
        "analyses": [
            {
                "machine": a.machine,
                "unreachable": list(a.unreachable),
                "traps": list(a.traps),
                "no_terminal_path": list(a.no_terminal_path),
            }
            for a in analyses
        ],
    }


def simulation_json(sim: Simulation, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A random simulation as the JSON object ``statewright check --simulate N --json`` writes.

    The properties are written as in `report_json`; ``"simulation": true``
    tells the two apart, and ``seed`` repeats the run.
    """
    return {
        "spec": sim.spec,
        "simulation": True,
        "parameters": value_json(parameters or {}),
        "verdict": sim.verdict.value,
        "stopped_by": sim.stopped_by.value if sim.stopped_by else None,
        "seed": sim.seed,
        "behaviours": sim.behaviours,
        "depth": sim.depth,
        "steps": sim.steps,
        "distinct_states": sim.distinct_states,
        "seconds": round(sim.seconds, 4),
        "behaviours_per_second": round(sim.behaviours_per_second, 1),
        "states_per_second": round(sim.states_per_second, 1),
        "properties": [_property_json(r) for r in sim.properties],
    }
