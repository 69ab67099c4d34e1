"""Drawing machines and specs: their graphs (`graphs`) and those graphs as DOT, Mermaid and Markdown (`formats`).

This room sits above the checker: it reads a machine's table and, for the
reachable graph of a small spec, the checker's `StateSpace`; nothing in
`kernel.checker` imports it. It builds graphs and strings only -- writing files
and running Graphviz are the shell's (`statewright.adapters.cli.diagram`).
"""

from statewright.kernel.draw.formats import (
    machine_dot,
    machine_markdown,
    machine_mermaid,
    state_dot,
)
from statewright.kernel.draw.graphs import (
    Analysis,
    GraphTooLarge,
    PhaseGraph,
    StateGraph,
    analyse,
    declared_graph,
    edge_label,
    reachable_graph,
)

__all__ = [
    "Analysis",
    "GraphTooLarge",
    "PhaseGraph",
    "StateGraph",
    "analyse",
    "declared_graph",
    "edge_label",
    "machine_dot",
    "machine_markdown",
    "machine_mermaid",
    "reachable_graph",
    "state_dot",
]
