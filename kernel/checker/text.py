"""Reports and traces as text: verdict lines and trace tables (pure string building, no IO).

What ``statewright check`` prints and what ``str(report)`` gives, so a report
reads the same in a terminal, a test failure and a notebook.

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

from statewright.kernel.checker.properties import Kind
from statewright.kernel.checker.report import (
    PropertyResult,
    Report,
    Status,
    StopReason,
    TraceStep,
    Verdict,
)
from statewright.kernel.checker.simulate import Simulation
from statewright.kernel.jsonable import event_json, state_json

__all__ = [
    "MARK", "STOPPED", "changes", "event_text", "initial_text", "loop_text", "outcome", "render_report",
    "render_simulation", "render_tally", "render_trace", "result_text", "simulation_header", "simulation_line",
    "stopped_text", "summary_line", "trace_rows",
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


def event_text(e: Any) -> str:
    """An input or effect as ``instance.Type(field=value, ...)`` (the instance only in a system)."""
    data = event_json(e)
    where = f"{data.pop('instance')}." if "instance" in data else ""
    name = data.pop("type")
    fields = data.pop("fields", data)
    args = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
    return f"{where}{name}({args})" if args else f"{where}{name}"


def initial_text(state: Any) -> str:
    """A whole state as ``path=value, ...`` (the first row of a trace table)."""
    return ", ".join(f"{k}={_short(v)}" for k, v in _flatten(state_json(state)).items())


def trace_rows(trace: Sequence[TraceStep]) -> list[tuple[str, str, str, str]]:
    """One ``(step, input, changed, effects)`` row per step of a trace (the table's cells).

    The first row shows the whole initial state. Falls back to the ``repr``
    of each input and state when a state cannot be shown as JSON (a trace
    that led to a broken state, say).
    """
    try:
        return _rows(trace)
    except Exception:
        return [(str(n), "(initial)" if s.input is None else repr(s.input), repr(s.state), "")
                for n, s in enumerate(trace)]


def _rows(trace: Sequence[TraceStep]) -> list[tuple[str, str, str, str]]:
    rows = []
    previous = None
    for n, s in enumerate(trace):
        if s.input is None:
            rows.append((str(n), "(initial)", initial_text(s.state), ""))
        else:
            effects = ", ".join(event_text(e) for e in s.effects)
            rows.append((str(n), event_text(s.input), changes(previous, s.state), effects))
        previous = s.state
    return rows


def loop_text(trace: Sequence[TraceStep], loop: int) -> str:
    """Where a lasso goes on forever: ``back to step k, forever``, or ``stutters here forever``."""
    return "stutters here forever" if loop == len(trace) - 1 else f"back to step {loop}, forever"


def render_trace(trace: Sequence[TraceStep], indent: str = "    ", loop: int | None = None) -> str:
    """A trace as an aligned table: step, input, what changed, effects (see `trace_rows`).

    A lasso (``loop`` given) ends with a line saying where the behaviour
    goes on forever: ``back to step k`` (the steps from k on repeat), or
    ``stutters here forever`` when the loop is the last state itself.
    """
    rows = [("step", "input", "changed", "effects"), *trace_rows(trace)]
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    lines = []
    for r in rows:
        line = "  ".join(cell.ljust(widths[c]) for c, cell in enumerate(r[:3])) + "  " + r[3]
        lines.append(indent + line.rstrip())
    table = "\n".join(lines)
    if loop is None:
        return table
    return table + f"\n{indent}...   ({loop_text(trace, loop)})"


STOPPED: dict[StopReason, str] = {
    StopReason.MAX_DEPTH: "max_depth reached",
    StopReason.MAX_STATES: "max_states reached",
    StopReason.CONSTRAINT: "cut by the constraint",
    StopReason.TIME_LIMIT: "time_limit reached",
    StopReason.VIOLATION: "stopped at the first violation",
    StopReason.INTERRUPTED: "interrupted",
    StopReason.MEMORY: "memory budget spent",
}
"""Why a search stopped, as the summary line says it: ``BOUNDED (max_depth reached)``."""


def stopped_text(reason: StopReason | None) -> str:
    """`STOPPED`'s phrase for ``reason`` (empty for a complete search).

    >>> stopped_text(StopReason.INTERRUPTED), stopped_text(None)
    ('interrupted', '')
    """
    return STOPPED.get(reason, str(reason)) if reason is not None else ""


_UNDECIDED: dict[StopReason | None, str] = {
    StopReason.VIOLATION: "not checked: stopped at the first violation",
    StopReason.INTERRUPTED: "undecided (the search was interrupted)",
    StopReason.MEMORY: "undecided (the search ran out of its memory budget)",
}


def result_text(r: PropertyResult, stopped_by: StopReason | None) -> str:
    """What a check says of one property: ``holds``, ``VIOLATED (5-state trace)``, ``undecided (...)``."""
    states = len(r.trace or ())
    unwitnessed = r.kind is Kind.SOMETIMES and r.trace is None
    shape = "trace" if r.loop is None else "lasso"
    bounded = stopped_by is not None and stopped_by is not StopReason.VIOLATION
    return {
        Status.HOLDS: "holds" if r.trace is None else f"witnessed ({states}-state trace)",
        Status.VIOLATED: "VIOLATED: no witness" if unwitnessed else f"VIOLATED ({states}-state {shape})",
        Status.EXPECTED: "no witness, as expected" if unwitnessed else f"violated as expected ({states}-state {shape})",
        Status.MISSING: "expected a violation, none found" + (f" ({stopped_text(stopped_by)} first)" if bounded else ""),
        Status.MISMATCH: f"violated, but not by the expected trace ({states} states)",
        Status.UNKNOWN: _UNDECIDED.get(stopped_by, f"undecided ({stopped_text(stopped_by) or 'the search was bounded'})"),
    }[r.status]


def _result_line(r: PropertyResult, stopped_by: StopReason | None) -> str:
    return f"  {MARK[r.status]} {r.name:<28} {r.kind.value:<20} {result_text(r, stopped_by)}"


def summary_line(report: Report, *, max_states: int | None = None) -> str:
    """``spec: VERDICT (why it stopped) -- N distinct states, M generated, depth D, S s``.

    The search stops at ``max_states`` once at least that many states are
    known, so it may know a few more: given the bound, the line says so.
    """
    bound = f" ({stopped_text(report.stopped_by)})" if report.stopped_by else ""
    over = ""
    if report.stopped_by is StopReason.MAX_STATES and max_states is not None and report.distinct_states > max_states:
        over = f" (max_states was {max_states:,}; the search stops once at least that many are known)"
    pruned = f" ({report.pruned:,} pruned by the constraints)" if report.pruned else ""
    reduced = ""
    if report.symmetric:
        reduced = " up to symmetry of " + "; ".join(", ".join(g) for g in report.symmetric)
    return (
        f"{report.spec}: {report.verdict.value.upper()}{bound} -- {report.distinct_states:,} distinct states{over}"
        f"{reduced}, {report.generated:,} generated{pruned}, depth {report.depth}, {report.seconds:.2f} s"
    )


def render_report(report: Report, *, traces: bool = True, quiet: bool = False, max_states: int | None = None) -> str:
    """The report as text: a summary line, one line per property, traces of violations.

    ``quiet=True``: the summary line alone, followed by the names of the
    properties that failed, if any. ``max_states``: the bound the search ran
    under, when known (see `summary_line`). This is ``str(report)``.

    >>> from dataclasses import dataclass
    >>> from enum import Enum
    >>> from statewright.kernel import Machine, Spec, Transition, always, check
    >>> class Light(Enum):
    ...     OFF = "off"
    ...     ON = "on"
    >>> @dataclass(frozen=True)
    ... class Flip: ...
    >>> toggle = Machine("toggle", initial=Light.OFF, transitions=[
    ...     Transition(Light.OFF, Flip, Light.ON), Transition(Light.ON, Flip, Light.OFF)])
    >>> print(render_report(check(Spec("toggle", toggle, [Flip()], [always("off", lambda s: s is Light.OFF)]))))
    toggle: VIOLATED (stopped at the first violation) -- 2 distinct states, 1 generated, depth 2, 0.00 s
      FAIL off                          always               VIOLATED (2-state trace)
           step  input      changed           effects
           0     (initial)  state=off
           1     Flip       state: off -> on
      ??   deadlock                     deadlock             not checked: stopped at the first violation
      ??   determinism                  determinism          not checked: stopped at the first violation
      ??   terminal_precedence          terminal_precedence  not checked: stopped at the first violation
    """
    lines = [summary_line(report, max_states=max_states)]
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
            Status.HOLDS: f"witnessed ({states}-state trace)",
            Status.VIOLATED: f"VIOLATED ({states}-state trace)",
            Status.EXPECTED: f"violated as expected ({states}-state trace)",
            Status.MISSING: f"expected a violation, none found in {runs}",
            Status.MISMATCH: f"violated, but not by the expected trace ({states} states)",
        }[r.status]
    return f"  {MARK[r.status]} {r.name:<28} {r.kind.value:<20} {what}"


def simulation_line(sim: Simulation) -> str:
    """``spec: VERDICT (why it stopped) -- N behaviours, M steps, K distinct states seen, rates, seed, S s``."""
    bound = f" ({stopped_text(sim.stopped_by)})" if sim.stopped_by else ""
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
