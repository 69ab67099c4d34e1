"""Reports and traces as text for a terminal: verdict lines and trace tables.

A trace table has one row per step: the step number, the input, what changed
(field by field, ``path: old -> new``) and the effects emitted. The first row
shows the whole initial state instead of a change.
"""

from __future__ import annotations

from typing import Any

from statewright.adapters.runtime.serialize import event_json, state_json
from statewright.kernel.check.report import PropertyResult, Report, Status, TraceStep

__all__ = ["changes", "render_report", "render_trace"]

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


def render_trace(trace: tuple[TraceStep, ...], indent: str = "    ") -> str:
    """A trace as an aligned table: step, input, what changed, effects."""
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


def _result_line(r: PropertyResult) -> str:
    what = {
        Status.HOLDS: "holds" if r.trace is None else f"witnessed in {len(r.trace)} states",
        Status.VIOLATED: f"VIOLATED ({len(r.trace or ())}-state trace)",
        Status.EXPECTED: f"violated as expected ({len(r.trace or ())}-state trace)",
        Status.MISSING: "expected a violation, none found",
        Status.MISMATCH: f"violated, but not by the expected trace ({len(r.trace or ())} states)",
        Status.UNKNOWN: "undecided (search was bounded)",
    }[r.status]
    return f"  {MARK[r.status]} {r.name:<28} {r.kind.value:<20} {what}"


def render_report(report: Report, *, traces: bool = True) -> str:
    """The report as text: a summary line, one line per property, traces of violations."""
    bound = f" (stopped by {report.stopped_by})" if report.stopped_by else ""
    lines = [
        f"{report.spec}: {report.verdict.value.upper()}{bound} -- {report.distinct_states:,} distinct states, "
        f"{report.generated:,} generated, depth {report.depth}, {report.seconds:.2f} s"
    ]
    for r in report.properties:
        lines.append(_result_line(r))
        if r.detail:
            lines.append(f"       {r.detail}")
        if traces and r.trace is not None and r.status in (Status.VIOLATED, Status.EXPECTED, Status.MISMATCH):
            lines.append(render_trace(r.trace, indent="       "))
    idle = report.never_fired
    if idle and report.complete:
        lines.append(f"  never fired: {'; '.join(f'{c.machine}: {c.label}' for c in idle)}")
    return "\n".join(lines)
