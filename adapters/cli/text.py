"""Reports and traces as text for the terminal: `kernel.checker.text`'s renderings, handed on.

The renderings are pure string building and live in the kernel, so
``str(report)`` and the command print the same table; the command and the
pytest plugin import them from there or from here alike. `escaped` is the
shell's own: how ``inspect`` prints stored text.
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
    "MARK", "STOPPED", "changes", "escaped", "event_text", "initial_text", "loop_text", "outcome", "render_report",
    "render_simulation", "render_tally", "render_trace", "result_text", "simulation_header", "simulation_line",
    "stopped_text", "summary_line", "trace_rows",
]


def escaped(text: str) -> str:
    """``text`` on one line: backslashes and unprintable characters written as Python escapes.

    What a store holds is printed through this, so no stored text can break or forge a line of the output.

    >>> print(escaped("a\\nb\\x1b"))
    a\\nb\\x1b
    """
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text)
