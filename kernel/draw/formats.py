"""Graphs as text: Graphviz DOT, Mermaid state diagrams and a markdown transition table.

Pure string building over the graphs of `kernel.draw.graphs`; writing files and
running Graphviz's ``dot`` is the shell's job (``adapters/cli/diagram.py``).
Output is deterministic (phases in declaration order, rows in table order),
so committed diagrams can be compared with freshly generated ones.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import Enum
from typing import Any

from statewright.kernel.checker.report import Coverage
from statewright.kernel.draw.graphs import PhaseGraph, StateGraph, declared_graph
from statewright.kernel.machine import Machine

__all__ = ["machine_dot", "machine_markdown", "machine_mermaid", "state_dot"]

HIGHLIGHT = "#d62728"


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _ordered_edges(machine: Machine[Any], g: PhaseGraph) -> list[tuple[Enum, Enum, dict[str, Any]]]:
    order = {p: i for i, p in enumerate(machine.phases)}
    return sorted(g.edges(data=True), key=lambda e: (min(e[2]["rows"]), order[e[0]], order[e[1]]))


def machine_dot(
    machine: Machine[Any],
    coverage: Iterable[Coverage] = (),
    *,
    highlight: Collection[tuple[Enum, Enum]] = (),
) -> str:
    """The declared graph as DOT: left to right, initial phase marked, terminal phases doubled.

    ``highlight`` is a set of (source, target) phase pairs to draw in red (a
    counterexample's path).
    """
    g = declared_graph(machine, coverage)
    lines = [
        f"digraph {_q(machine.name)} {{",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", nodesep=0.5, ranksep=0.9];',
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  __start [shape=point, width=0.15, label=""];',
    ]
    on_path = {p for pair in highlight for p in pair}
    for p in machine.phases:
        # Rows that stay in the phase are listed inside its box (UML's internal
        # transitions) instead of drawn as loops, whose labels would collide.
        inner = g.edges[p, p]["labels"] if g.has_edge(p, p) else []
        label = _q(p.name) if not inner else (
            _q(p.name)[:-1] + "\\n" + "".join(f"↻ {_q(x)[1:-1]}\\l" for x in inner) + '"'
        )
        attrs = [f"label={label}"]
        if p in machine.terminal_phases:
            attrs.append("shape=doubleoctagon")
        if p in on_path:
            attrs.append(f'color="{HIGHLIGHT}", penwidth=2')
        lines.append(f"  {_q(p.name)} [{', '.join(attrs)}];")
    lines.append(f"  __start -> {_q(g.graph['initial'].name)};")
    for a, b, data in _ordered_edges(machine, g):
        if a == b:
            continue
        extra = f', color="{HIGHLIGHT}", fontcolor="{HIGHLIGHT}", penwidth=2' if (a, b) in highlight else ""
        lines.append(f"  {_q(a.name)} -> {_q(b.name)} [label={_q(data['label'])}{extra}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def machine_mermaid(machine: Machine[Any], coverage: Iterable[Coverage] = ()) -> str:
    """The declared graph as a Mermaid ``stateDiagram-v2`` (one line per row)."""
    g = declared_graph(machine, coverage)
    lines = ["stateDiagram-v2", "  direction LR", f"  [*] --> {g.graph['initial'].name}"]
    for a, b, data in _ordered_edges(machine, g):
        for label in data["labels"]:
            lines.append(f"  {a.name} --> {b.name} : {label.replace(':', ' ')}")
    for p in machine.phases:
        if p in machine.terminal_phases:
            lines.append(f"  {p.name} --> [*]")
    return "\n".join(lines) + "\n"


def machine_markdown(machine: Machine[Any], coverage: Iterable[Coverage] = ()) -> str:
    """The transition table as markdown: one line per row, with times fired when coverage is given."""
    cov = {c.index: c for c in coverage if c.machine == machine.name}
    g = declared_graph(machine, cov.values())
    head = "| # | from | input | guards | to | effects |" + (" fired |" if cov else "")
    rule = "|---|---|---|---|---|---|" + ("---|" if cov else "")
    lines = [f"# {machine.name}", "", head, rule]
    for i, t in enumerate(machine.transitions):
        rows = [r for r in machine.rules if r.index == i]
        first = rows[0]
        label = g.edges[first.source, first.target]["labels"][g.edges[first.source, first.target]["rows"].index(i)]
        effects = label.split(" / ", 1)[1] if " / " in label else ""
        sources = ", ".join(r.source.name for r in rows)
        guards = ", ".join(x.name for x in first.guards)
        line = f"| {i} | {sources} | {first.input.__name__} | {guards} | {first.target.name} | {effects} |"
        if cov:
            line += f" {cov[i].fired if i in cov else 0} |"
        lines.append(line)
    terminal = [p.name for p in machine.phases if p in machine.terminal_phases]
    initial = machine.phase_of(machine.initial).name
    lines += ["", f"Initial phase: {initial}. Terminal phases: {', '.join(terminal) or 'none'}."]
    return "\n".join(lines) + "\n"


def state_dot(g: StateGraph) -> str:
    """A reachable state graph (from `kernel.draw.graphs.reachable_graph`) as DOT, top to bottom."""
    lines = [
        f"digraph {_q(str(g.graph.get('name', 'states')))} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=9];',
        '  edge [fontname="Helvetica", fontsize=8];',
    ]
    for n in sorted(g.nodes):
        data = g.nodes[n]
        attrs = [f"label={_q(data['label'])}"]
        if n == 0:
            attrs.append("penwidth=2")
        if data.get("highlight"):
            attrs.append(f'color="{HIGHLIGHT}", penwidth=2')
        lines.append(f"  s{n} [{', '.join(attrs)}];")
    for a, b in sorted(g.edges):
        edge = g.edges[a, b]
        extra = f', color="{HIGHLIGHT}", fontcolor="{HIGHLIGHT}", penwidth=2' if edge.get("highlight") else ""
        lines.append(f"  s{a} -> s{b} [label={_q(edge['label'])}{extra}];")
    lines.append("}")
    return "\n".join(lines) + "\n"

