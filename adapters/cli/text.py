"""Reports and traces as text for a terminal: verdict lines and trace tables.

A trace table has one row per step: the step number, the input, what changed
(field by field, ``path: old -> new``) and the effects emitted. The first row
shows the whole initial state instead of a change.

`render_report` prints a summary line, one line per property and the traces of
violations; ``quiet=True`` keeps the summary line alone (naming the failed
properties), and `render_tally` sums several reports up in one line.
`render_simulation` does the same for a random simulation (``check
--simulate``), whose traces are tables of the same kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from statewright.adapters.runtime.serialize import event_json, state_json
from statewright.kernel.check import Kind, PropertyResult, Report, Status, StopReason, TraceStep, Verdict
from statewright.kernel.check.simulate import Simulation

__all__ = [
    "changes", "outcome", "render_report", "render_simulation", "render_tally", "render_trace", "simulation_header",
    "simulation_line", "summary_line",
]

MARK = {
    Status.HOLDS: "ok  ",
    Status.VIOLATED: "FAIL",
    Status.EXPECTED: "ok  ",
    Status.MISSING: "FAIL",
    Status.MISMATCH: "FAIL",
    Status.UNKNOWN: "??  ",
}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or "state": value}


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "{" + ", ".join(_short(v) for v in value) + "}"
    return "null" if value is None else str(value)


def changes(before: Any, after: Any) -> str:
    """``path: old -> new`` for every leaf that differs between two JSON states."""
    a, b = _flatten(state_json(before)), _flatten(state_json(after))
    parts = [f"{k}: {_short(a.get(k))} -> {_short(v)}" for k, v in b.items() if a.get(k) != v]
    return ", ".join(parts) or "(no change)"


def _event(e: Any) -> str:
    data = event_json(e)
    where = f"{data.pop('instance')}." if "instance" in data else ""
    name = data.pop("type")
    fields = data.pop("fields", data)
    args = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
    return f"{where}{name}({args})" if args else f"{where}{name}"


def _initial(state: Any) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in _flatten(state_json(state)).items())


def render_trace(trace: Sequence[TraceStep], indent: str = "    ", loop: int | None = None) -> str:
    """A trace as an aligned table: step, input, what changed, effects.

    A lasso (``loop`` given) ends with a line saying where the behaviour
    goes on forever: ``back to step k`` (the steps from k on repeat), or
    ``stutters here forever`` when the loop is the last state itself. Falls
    back to one ``repr`` per step when a state cannot be shown as JSON (a
    trace that led to a broken state, say).
    """
    try:
        table = _table(trace, indent)
    except Exception:
        table = "\n".join(f"{indent}{n:<4}  {'(initial)' if s.input is None else s.input!r}  {s.state!r}"
                          for n, s in enumerate(trace))
    if loop is None:
        return table
    if loop == len(trace) - 1:
        return table + f"\n{indent}...   (stutters here forever)"
    return table + f"\n{indent}...   (back to step {loop}, forever)"


def _table(trace: Sequence[TraceStep], indent: str) -> str:
    rows = [("step", "input", "changed", "effects")]
    previous = None
    for n, s in enumerate(trace):
        if s.input is None:
            rows.append((str(n), "(initial)", _initial(s.state), ""))
        else:
            effects = ", ".join(_event(e) for e in s.effects)
            rows.append((str(n), _event(s.input), changes(previous, s.state), effects))
        previous = s.state
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    lines = []
    for r in rows:
        line = "  ".join(cell.ljust(widths[c]) for c, cell in enumerate(r[:3])) + "  " + r[3]
        lines.append(indent + line.rstrip())
    return "\n".join(lines)


_UNDECIDED: dict[StopReason | None, str] = {
    StopReason.VIOLATION: "not checked: stopped at the first violation",
    StopReason.INTERRUPTED: "undecided (the search was interrupted)",
    StopReason.MEMORY: "undecided (the search ran out of its memory budget)",
}


def _result_line(r: PropertyResult, stopped_by: StopReason | None) -> str:
    states = len(r.trace or ())
    unwitnessed = r.kind is Kind.SOMETIMES and r.trace is None
    shape = "trace" if r.loop is None else "lasso"
    what = {
        Status.HOLDS: "holds" if r.trace is None else f"witnessed in {states} states",
        Status.VIOLATED: "VIOLATED: no witness" if unwitnessed else f"VIOLATED ({states}-state {shape})",
        Status.EXPECTED: "no witness, as expected" if unwitnessed else f"violated as expected ({states}-state {shape})",
        Status.MISSING: "expected a violation, none found",
        Status.MISMATCH: f"violated, but not by the expected trace ({states} states)",
        Status.UNKNOWN: _UNDECIDED.get(stopped_by, f"undecided (search was bounded: {stopped_by})"),
    }[r.status]
    return f"  {MARK[r.status]} {r.name:<28} {r.kind.value:<20} {what}"


def summary_line(report: Report) -> str:
    """``spec: VERDICT (stopped by ...) -- N distinct states, M generated, depth D, S s``."""
    bound = f" (stopped by {report.stopped_by})" if report.stopped_by else ""
    pruned = f" ({report.pruned:,} pruned by the constraints)" if report.pruned else ""
    reduced = ""
    if report.symmetric:
        reduced = " up to symmetry of " + "; ".join(", ".join(g) for g in report.symmetric)
    return (
        f"{report.spec}: {report.verdict.value.upper()}{bound} -- {report.distinct_states:,} distinct states{reduced}, "
        f"{report.generated:,} generated{pruned}, depth {report.depth}, {report.seconds:.2f} s"
    )


def render_report(report: Report, *, traces: bool = True, quiet: bool = False) -> str:
    """The report as text: a summary line, one line per property, traces of violations.

    ``quiet=True``: the summary line alone, followed by the names of the
    properties that failed, if any.
    """
    lines = [summary_line(report)]
    if quiet:
        failed = [r.name for r in report.properties if r.failed]
        return lines[0] + (f"; failed: {', '.join(failed)}" if failed else "")
    for r in report.properties:
        lines.append(_result_line(r, report.stopped_by))
        if r.detail:
            lines.append(f"       {r.detail}")
        if traces and r.trace is not None and r.status in (Status.VIOLATED, Status.EXPECTED, Status.MISMATCH):
            lines.append(render_trace(r.trace, indent="       ", loop=r.loop))
    idle = report.never_fired
    if idle and report.complete:
        lines.append(f"  never fired: {'; '.join(f'{c.machine}: {c.label}' for c in idle)}")
    return "\n".join(lines)


def outcome(report: Report | Simulation) -> str:
    """Which tally bucket a report falls in: ok, violated as expected, bounded or failed."""
    if report.verdict is Verdict.VIOLATED:
        return "failed"
    if report.verdict is Verdict.BOUNDED:
        return "bounded"
    if any(r.status is Status.EXPECTED for r in report.properties):
        return "violated as expected"
    return "ok"


def render_tally(reports: Sequence[Report | Simulation], not_run: int = 0) -> str:
    """One line summing up several reports: ``14 specs: 11 ok, 3 violated as expected, 0 failed``.

    ``bounded`` and ``not run`` appear only when some are.
    """
    counts = {"ok": 0, "violated as expected": 0, "bounded": 0, "failed": 0}
    for r in reports:
        counts[outcome(r)] += 1
    total = len(reports) + not_run
    parts = [f"{counts['ok']} ok", f"{counts['violated as expected']} violated as expected"]
    if counts["bounded"]:
        parts.append(f"{counts['bounded']} bounded")
    parts.append(f"{counts['failed']} failed")
    if not_run:
        parts.append(f"{not_run} not run")
    return f"{total} spec{'' if total == 1 else 's'}: " + ", ".join(parts)


def simulation_header(spec: str, behaviours: int, depth: int, seed: int) -> str:
    """``simulating spec: 10,000 behaviours of up to 100 steps, seed 7`` (the seed repeats the run)."""
    return (f"simulating {spec}: {behaviours:,} behaviour{'' if behaviours == 1 else 's'} of up to {depth:,} "
            f"step{'' if depth == 1 else 's'}, seed {seed}")


def _simulated_line(r: PropertyResult, behaviours: int) -> str:
    states = len(r.trace or ())
    runs = f"{behaviours:,} behaviour{'' if behaviours == 1 else 's'}"
    if r.status is Status.UNKNOWN:
        if r.kind.temporal:
            what = "not checked: simulation decides no temporal property"
        elif r.kind is Kind.SOMETIMES:
            what = f"not witnessed in {runs}"
        else:
            what = f"no violation in {runs}"
    else:
        what = {
            Status.HOLDS: f"witnessed in {states} states",
            Status.VIOLATED: f"VIOLATED ({states}-state trace)",
            Status.EXPECTED: f"violated as expected ({states}-state trace)",
            Status.MISSING: f"expected a violation, none found in {runs}",
            Status.MISMATCH: f"violated, but not by the expected trace ({states} states)",
        }[r.status]
    return f"  {MARK[r.status]} {r.name:<28} {r.kind.value:<20} {what}"


def simulation_line(sim: Simulation) -> str:
    """``spec: VERDICT (stopped by ...) -- N behaviours, M steps, K distinct states seen, rates, seed, S s``."""
    bound = f" (stopped by {sim.stopped_by})" if sim.stopped_by else ""
    return (
        f"{sim.spec}: {sim.verdict.value.upper()}{bound} -- {sim.behaviours:,} behaviours, {sim.steps:,} steps, "
        f"{sim.distinct_states:,} distinct states seen, {sim.behaviours_per_second:,.0f} behaviours/s, "
        f"{sim.states_per_second:,.0f} states/s, seed {sim.seed}, {sim.seconds:.2f} s"
    )


def render_simulation(sim: Simulation, *, quiet: bool = False) -> str:
    """A simulation as text: one line per property with the traces of violations, then the summary line.

    ``quiet=True``: the summary line alone, followed by the names of the
    properties that failed, if any.
    """
    last = simulation_line(sim)
    if quiet:
        failed = [r.name for r in sim.properties if r.failed]
        return last + (f"; failed: {', '.join(failed)}" if failed else "")
    lines = []
    for r in sim.properties:
        lines.append(_simulated_line(r, sim.behaviours))
        if r.detail and not r.kind.temporal:
            lines.append(f"       {r.detail}")
        if r.trace is not None and r.status in (Status.VIOLATED, Status.EXPECTED):
            lines.append(render_trace(r.trace, indent="       "))
    lines.append(last)
    return "\n".join(lines)
