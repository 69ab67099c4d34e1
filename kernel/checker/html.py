"""A report as one self-contained HTML table: what a notebook shows for ``report``.

`html_report` says what `kernel.checker.text.render_report` says -- the summary
line, one row per property with its status, the traces of violations (and
witnesses) as tables of their own, the rows that never fired -- in HTML with
inline styles only, so it renders the same in Jupyter, VS Code or a saved
page with no stylesheet or script. Every piece of text from the model (spec,
property and field names, values) is escaped. Pure string building, no IO.

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
>>> page = html_report(check(Spec("toggle", toggle, [Flip()], [always("off", lambda s: s is Light.OFF)])))
>>> page.startswith('<div class="statewright-report"'), page.count("<tr"), "VIOLATED (2-state trace)" in page
(True, 9, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from statewright.kernel.checker.report import PropertyResult, Report, Status, TraceStep
from statewright.kernel.checker.text import (
    loop_text,
    result_text,
    summary_line,
    trace_rows,
)

__all__ = ["html_report", "html_trace"]

_COLOUR = {
    Status.HOLDS: "#1a7f37",
    Status.EXPECTED: "#1a7f37",
    Status.VIOLATED: "#cf222e",
    Status.MISSING: "#cf222e",
    Status.MISMATCH: "#cf222e",
    Status.UNKNOWN: "#9a6700",
}
_WORD = {
    Status.HOLDS: "ok",
    Status.EXPECTED: "ok",
    Status.VIOLATED: "FAIL",
    Status.MISSING: "FAIL",
    Status.MISMATCH: "FAIL",
    Status.UNKNOWN: "??",
}
_TABLE = 'style="border-collapse: collapse; text-align: left; font-family: monospace"'
_CELL = 'style="padding: 2px 10px; vertical-align: top; text-align: left"'
_SHOWN = (Status.VIOLATED, Status.EXPECTED, Status.MISMATCH)


def _row(cells: Sequence[str], *, tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag} {_CELL}>{escape(c)}</{tag}>" for c in cells) + "</tr>"


def html_trace(trace: Sequence[TraceStep], loop: int | None = None) -> str:
    """A trace as an HTML table: step, input, what changed, effects (the rows of `render_trace`)."""
    rows = [_row(("step", "input", "changed", "effects"), tag="th"), *(_row(r) for r in trace_rows(trace))]
    if loop is not None:
        rows.append(f'<tr><td {_CELL}>...</td><td {_CELL} colspan="3">{escape(loop_text(trace, loop))}</td></tr>')
    return f"<table {_TABLE}>" + "".join(rows) + "</table>"


def _property(r: PropertyResult, report: Report) -> str:
    mark = f'<td {_CELL}><b style="color: {_COLOUR[r.status]}">{_WORD[r.status]}</b></td>'
    cells = "".join(f"<td {_CELL}>{escape(c)}</td>" for c in (r.name, r.kind.value, result_text(r, report.stopped_by)))
    out = f'<tr data-status="{r.status.value}">{mark}{cells}</tr>'
    below = []
    if r.detail:
        below.append(f"<div>{escape(r.detail)}</div>")
    if r.trace is not None and r.status in _SHOWN:
        below.append(html_trace(r.trace, r.loop))
    if below:
        out += f'<tr><td {_CELL}></td><td {_CELL} colspan="3">{"".join(below)}</td></tr>'
    return out


def html_report(report: Report, *, max_states: int | None = None) -> str:
    """The report as HTML: the summary line, a table with one row per property, traces as tables.

    What ``report._repr_html_()`` returns; ``max_states`` as for
    `kernel.checker.text.summary_line`.
    """
    head = _row(("", "property", "kind", "result"), tag="th")
    body = "".join(_property(r, report) for r in report.properties)
    parts = [
        f'<div class="statewright-report" data-verdict="{report.verdict.value}">',
        f"<p style=\"font-family: monospace\"><b>{escape(summary_line(report, max_states=max_states))}</b></p>",
        f"<table {_TABLE}>{head}{body}</table>",
    ]
    idle = report.never_fired
    if idle and report.complete:
        names = "; ".join(f"{c.machine}: {c.label}" for c in idle)
        parts.append(f'<p style="font-family: monospace">never fired: {escape(names)}</p>')
    parts.append("</div>")
    return "".join(parts)
