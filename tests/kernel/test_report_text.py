"""A report as text and as HTML: the command's table, ``str(report)`` and a notebook's ``_repr_html_``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from html.parser import HTMLParser

from statewright.kernel import Machine, Spec, Transition, always, check, sometimes
from statewright.kernel.checker import Report, StopReason
from statewright.kernel.checker.html import html_report
from statewright.kernel.checker.text import STOPPED, render_report, summary_line
from statewright.kernel.jsonable import event_json, state_json, trace_json, value_json
from statewright.kernel.system import Action


class Light(Enum):
    OFF = "off"
    ON = "on"


@dataclass(frozen=True, slots=True)
class Flip:
    note: str = ""


TOGGLE = Machine("toggle", initial=Light.OFF, transitions=[
    Transition(Light.OFF, Flip, Light.ON), Transition(Light.ON, Flip, Light.OFF)])


def violated() -> Report:
    return check(Spec("toggle", TOGGLE, [Flip()], [always("off", lambda s: s is Light.OFF)]))


def test_render_report_is_the_commands_table() -> None:
    assert render_report(violated()) == "\n".join([
        "toggle: VIOLATED (stopped at the first violation) -- 2 distinct states, 1 generated, depth 2, 0.00 s",
        "  FAIL off                          always               VIOLATED (2-state trace)",
        "       step  input        changed           effects",
        "       0     (initial)    state=off",
        "       1     Flip(note=)  state: off -> on",
        "  ??   deadlock                     deadlock             not checked: stopped at the first violation",
        "  ??   determinism                  determinism          not checked: stopped at the first violation",
        "  ??   terminal_precedence          terminal_precedence  not checked: stopped at the first violation",
    ])


def test_every_stop_reason_reads_as_words() -> None:
    assert set(STOPPED) == set(StopReason)
    report = violated()
    for reason in StopReason:
        line = summary_line(replace(report, stopped_by=reason))
        assert f"VIOLATED ({STOPPED[reason]}) -- " in line and "stopped by" not in line
    assert [STOPPED[StopReason.INTERRUPTED], STOPPED[StopReason.MAX_STATES]] == ["interrupted", "max_states reached"]


def test_the_summary_says_max_states_stops_once_at_least_that_many_are_known() -> None:
    report = replace(violated(), stopped_by=StopReason.MAX_STATES, distinct_states=7)
    assert "-- 7 distinct states (max_states was 5; the search stops once at least that many are known), " in \
        summary_line(report, max_states=5)
    assert "-- 7 distinct states, " in summary_line(report)  # the bound unknown: nothing to compare
    assert "-- 7 distinct states, " in summary_line(report, max_states=7)


class _Cells(HTMLParser):
    """The text of every table cell, the tags seen, and whether the document nests correctly."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.tags: list[str] = []
        self.open: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.open.append(tag)
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_report_is_one_table_of_the_same_report() -> None:
    report = violated()
    page = html_report(report)
    parsed = _Cells()
    parsed.feed(page)
    assert parsed.open == [] and page.startswith('<div class="statewright-report" data-verdict="violated">')
    assert summary_line(report) in page
    assert parsed.tags.count("table") == 2  # the properties, and the one trace
    assert ["FAIL", "off", "always", "VIOLATED (2-state trace)"] == parsed.cells[4:8]
    assert ["0", "(initial)", "state=off", "", "1", "Flip(note=)", "state: off -> on", ""] == parsed.cells[13:21]
    assert "<script" not in page and "<link" not in page and "<style" not in page  # self-contained, inline styles


def test_html_report_escapes_what_the_model_names() -> None:
    spec = Spec("<b>toggle</b>", TOGGLE, [Flip("<script>alert(1)</script>")],
                [always("a<b & c", lambda s: s is Light.OFF)])
    page = html_report(check(spec))
    assert "<script>" not in page and "<b>toggle</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&lt;b &amp; c" in page
    parsed = _Cells()
    parsed.feed(page)
    assert parsed.open == [] and "a<b & c" in parsed.cells


def test_html_report_shows_witnesses_of_a_complete_search_as_rows() -> None:
    spec = Spec("toggle", TOGGLE, [Flip()], [sometimes("on", lambda s: s is Light.ON)])
    page = html_report(check(spec))
    assert 'data-verdict="ok"' in page and re.search(r">witnessed \(2-state trace\)<", page)


def test_str_and_repr_html_of_a_report_render_it() -> None:
    report = violated()
    assert str(report) == render_report(report)
    assert report._repr_html_() == html_report(report)  # type: ignore[attr-defined]


def test_plain_json_of_states_inputs_and_traces() -> None:
    assert value_json({"seen": frozenset({"b", "a"}), "light": Light.ON}) == {"seen": ["a", "b"], "light": "on"}
    assert event_json(Action("i1", Flip("x"))) == {"instance": "i1", "type": "Flip", "note": "x"}
    trace = violated().result("off").trace
    assert trace is not None
    assert trace_json(trace) == [
        {"state": "off", "input": None, "effects": []},
        {"state": "on", "input": {"type": "Flip", "note": ""}, "effects": []},
    ]
    assert state_json(Light.OFF) == "off"


def test_the_shell_hands_on_the_kernels_encoding_and_text() -> None:
    from statewright.adapters.cli import reports, text
    from statewright.adapters.runtime import serialize
    from statewright.kernel import jsonable
    from statewright.kernel.checker import text as kernel_text

    assert (serialize.value_json, serialize.state_json, serialize.event_json) == (
        jsonable.value_json, jsonable.state_json, jsonable.event_json)
    assert reports.trace_json is jsonable.trace_json
    assert all(getattr(text, name) is getattr(kernel_text, name) for name in kernel_text.__all__)
