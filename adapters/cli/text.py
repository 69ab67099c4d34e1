"""Reports and traces as text for the terminal: `kernel.checker.text`'s renderings, handed on.

The renderings are pure string building and live in the kernel, so
``str(report)`` and the command print the same table; the command and the
pytest plugin import them from there or from here alike.
"""

from __future__ import annotations

from statewright.kernel.checker.text import (
    MARK,
    STOPPED,
    changes,
    event_text,
    initial_text,
    loop_text,
    outcome,
    render_report,
    render_simulation,
    render_tally,
    render_trace,
    result_text,
    simulation_header,
    simulation_line,
    stopped_text,
    summary_line,
    trace_rows,
)

__all__ = [
    "MARK", "STOPPED", "changes", "event_text", "initial_text", "loop_text", "outcome", "render_report",
    "render_simulation", "render_tally", "render_trace", "result_text", "simulation_header", "simulation_line",
    "stopped_text", "summary_line", "trace_rows",
]
