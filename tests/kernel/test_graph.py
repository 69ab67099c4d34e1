"""Declared and reachable graphs, their analyses, and their text renderings."""

from __future__ import annotations

from enum import Enum

from statewright.kernel import Machine, Spec, Transition, check
from statewright.kernel.draw import (
    analyse,
    declared_graph,
    machine_dot,
    machine_markdown,
    machine_mermaid,
    reachable_graph,
)
from tests.conftest import DOOR, Close, Demolish, Door, Lock, Open, Unlock


class T(Enum):
    NEW = 1
    STUCK = 2
    LOOPING = 3
    ALSO_LOOPING = 4
    DONE = 5


class Go:
    pass


class Spin:
    pass


TRAPPY = Machine("trappy", initial=T.NEW, terminal={T.DONE}, transitions=[
    Transition(T.NEW, Go, T.STUCK),
    Transition(T.NEW, Spin, T.LOOPING),
    Transition(T.LOOPING, Spin, T.ALSO_LOOPING),
    Transition(T.ALSO_LOOPING, Spin, T.LOOPING),
    Transition(T.STUCK, Spin, T.STUCK),
    Transition(T.NEW, Demolish, T.DONE),
])


def test_declared_graph_merges_rows_between_the_same_phases() -> None:
    g = declared_graph(DOOR)
    assert g.number_of_nodes() == 4 and g.number_of_edges() == 6  # Demolish leaves from two phases
    assert g.edges[Door.OPEN, Door.SHUT]["label"] == "Close / …"
    assert g.edges[Door.SHUT, Door.GONE]["label"] == "Demolish [not_new]"
    assert g.nodes[Door.GONE]["terminal"] and g.nodes[Door.OPEN]["initial"]


def test_coverage_names_computed_effects() -> None:
    report = check(Spec("door", DOOR, [Close(), Open(), Lock("k"), Unlock("k"), Demolish()]))
    assert declared_graph(DOOR, report.coverage).edges[Door.OPEN, Door.SHUT]["label"] == "Close / Closed"


def test_analysis_finds_traps_and_phases_that_cannot_finish() -> None:
    a = analyse(TRAPPY)
    assert a.traps == ("STUCK",)
    assert a.no_terminal_path == ("STUCK", "LOOPING", "ALSO_LOOPING")
    assert a.unreachable == () and not a.clean
    assert analyse(DOOR).clean


def test_reachable_graph_numbers_states_in_bfs_order() -> None:
    g = reachable_graph(Spec("door", DOOR, [Close(), Open(), Lock("k1"), Unlock("k1"), Demolish()]))
    assert g.number_of_nodes() == 9 and g.nodes[0]["depth"] == 1
    assert max(d["depth"] for _, d in g.nodes(data=True)) == 5
    assert g.edges[0, 1]["label"] == "Close"


def test_text_renderings_are_deterministic_and_complete() -> None:
    dot = machine_dot(TRAPPY)
    assert dot == machine_dot(TRAPPY)
    assert 'rankdir=LR' in dot and '"DONE" [label="DONE", shape=doubleoctagon]' in dot
    assert '"STUCK" [label="STUCK\\n↻ Spin\\l"]' in dot  # self-loops listed inside the box
    mmd = machine_mermaid(TRAPPY)
    assert mmd.splitlines()[:3] == ["stateDiagram-v2", "  direction LR", "  [*] --> NEW"]
    assert "  STUCK --> STUCK : Spin" in mmd and "  DONE --> [*]" in mmd
    md = machine_markdown(TRAPPY)
    assert "| 0 | NEW | Go |  | STUCK |  |" in md and "Terminal phases: DONE." in md
