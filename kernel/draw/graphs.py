"""Machines and specs as graphs: the declared phase graph, the reachable state graph, and what they reveal.

The *declared graph* of a machine is read straight off its table: phases are
nodes, rows are edges labelled ``Input [guard] / effects`` (rows between the
same two phases share one edge and list every label). The *reachable graph*
of a spec has one node per reachable state and one edge per step, labelled
with the input; it is only built for small specs (a person cannot read a
bigger one anyway). Both are `networkx.DiGraph`s, so every networkx algorithm
applies; `analyse` runs the structural checks a reviewer would: phases the
table cannot reach, non-terminal *trap* phases with no way out, and phases
from which no terminal phase can be reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias

import networkx as nx

from statewright.kernel.checker.report import Coverage
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Rule

if TYPE_CHECKING:
    PhaseGraph: TypeAlias = nx.DiGraph[Enum]
    StateGraph: TypeAlias = nx.DiGraph[int]
else:  # networkx's graphs are generic only in the type stubs
    PhaseGraph = StateGraph = nx.DiGraph

__all__ = ["Analysis", "GraphTooLarge", "PhaseGraph", "StateGraph", "analyse", "declared_graph", "edge_label", "reachable_graph"]


class GraphTooLarge(DefinitionError):
    """The reachable graph has more states than a drawing can show."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """Structural findings on a declared graph (phase names)."""

    machine: str
    unreachable: tuple[str, ...]
    traps: tuple[str, ...]
    no_terminal_path: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.unreachable or self.traps or self.no_terminal_path)


def _effects(rule: Rule, observed: dict[int, tuple[str, ...]]) -> tuple[str, ...]:
    if rule.emit is None:
        return tuple(dict.fromkeys(type(e).__name__ for e in rule.effects))
    if rule.index in observed:
        return observed[rule.index]
    name = getattr(rule.emit, "__name__", "")
    return (name,) if name and name != "<lambda>" else ("…",)


def edge_label(rule: Rule, effects: Sequence[str] = ()) -> str:
    """``Input [guard, guard] / Effect, Effect`` for one row."""
    guard = f" [{', '.join(g.name for g in rule.guards)}]" if rule.guards else ""
    tail = f" / {', '.join(effects)}" if effects else ""
    return f"{rule.input.__name__}{guard}{tail}"


def declared_graph(machine: Machine[Any], coverage: Iterable[Coverage] = ()) -> PhaseGraph:
    """The phase graph of ``machine``'s table.

    ``coverage`` from a check of a spec using the machine supplies the effect
    types that rows with computed effects were seen to emit; without it such
    rows show ``…``.

    >>> from enum import Enum
    >>> from statewright.kernel.machine import Transition
    >>> class L(Enum):
    ...     OFF = 0
    ...     ON = 1
    >>> class Flip: pass
    >>> g = declared_graph(Machine("lamp", initial=L.OFF, transitions=[
    ...     Transition(L.OFF, Flip, L.ON), Transition(L.ON, Flip, L.OFF)]))
    >>> sorted((a.name, b.name, d["label"]) for a, b, d in g.edges(data=True))
    [('OFF', 'ON', 'Flip'), ('ON', 'OFF', 'Flip')]
    """
    observed: dict[int, tuple[str, ...]] = {}
    for c in coverage:
        if c.machine == machine.name:
            if c.effects:
                observed[c.index] = c.effects
    initial = machine.phase_of(machine.initial)
    g: PhaseGraph = nx.DiGraph(name=machine.name, initial=initial)
    for p in machine.phases:
        g.add_node(p, name=p.name, terminal=p in machine.terminal_phases, initial=p is initial)
    for rule in machine.rules:
        label = edge_label(rule, _effects(rule, observed))
        if g.has_edge(rule.source, rule.target):
            data = g.edges[rule.source, rule.target]
            if rule.index not in data["rows"]:
                data["rows"].append(rule.index)
                data["labels"].append(label)
                data["label"] = "\n".join(data["labels"])
        else:
            g.add_edge(rule.source, rule.target, rows=[rule.index], labels=[label], label=label)
    return g


def analyse(machine: Machine[Any], graph: PhaseGraph | None = None) -> Analysis:
    """Unreachable phases, trap phases and phases with no path to a terminal phase."""
    g = graph if graph is not None else declared_graph(machine)
    initial = g.graph["initial"]
    reachable = nx.descendants(g, initial) | {initial}
    order = {p: i for i, p in enumerate(machine.phases)}

    def names(phases: Iterable[Enum]) -> tuple[str, ...]:
        return tuple(p.name for p in sorted(phases, key=order.__getitem__))

    terminal = machine.terminal_phases
    # a one-phase machine (a puzzle, a counter) has nowhere else to go, which is no trap
    single = len(machine.phases) == 1
    traps = [] if single else [p for p in g if p not in terminal and all(q == p for q in g.successors(p))]
    no_path: list[Enum] = []
    if terminal:
        can_finish: set[Enum] = set()
        for t in terminal:
            can_finish |= nx.ancestors(g, t) | {t}
        no_path = [p for p in g if p not in can_finish]
    return Analysis(machine.name, names(set(g) - reachable), names(traps), names(no_path))


def reachable_graph(spec: Spec, *, limit: int = 500, highlight: Sequence[Any] = ()) -> StateGraph:
    """Every reachable state of ``spec`` as a node and every step as an edge labelled with its input.

    Nodes are numbered in breadth-first order (the initial states first) and
    carry ``state``, ``label`` and ``depth``. ``highlight`` is a sequence of
    states (a trace's states): its nodes and the edges between consecutive
    ones get ``highlight=True``. Raises `GraphTooLarge` past ``limit`` states.
    """
    space = StateSpace(spec)
    keys = list(space.initials)
    index = {key: n for n, key in enumerate(keys)}
    depth = dict.fromkeys(range(len(keys)), 1)
    g: StateGraph = nx.DiGraph(name=spec.name)
    i = 0
    while i < len(keys):
        key = keys[i]
        for k, event, nk, _effects, _rule in space.successors(key):
            j = index.get(nk)
            if j is None:
                if len(keys) >= limit:
                    raise GraphTooLarge(
                        f"spec {spec.name!r} has more than {limit} reachable states; too many to draw"
                    )
                j = index[nk] = len(keys)
                keys.append(nk)
                depth[j] = depth[i] + 1
            label = _input_label(space.action(k, event))
            if g.has_edge(i, j):
                g.edges[i, j]["label"] += f"\n{label}"
            else:
                g.add_edge(i, j, label=label)
        i += 1
    states = [space.view(k) for k in keys]
    for n, s in enumerate(states):
        g.add_node(n, state=s, label=_state_label(s), depth=depth[n], highlight=False)
    if highlight:
        path = [states.index(s) for s in highlight if s in states]
        for n in path:
            g.nodes[n]["highlight"] = True
        for a, b in zip(path, path[1:]):
            if g.has_edge(a, b):
                g.edges[a, b]["highlight"] = True
    return g


def _input_label(action: Any) -> str:
    from statewright.kernel.system import Action

    if isinstance(action, Action):
        return f"{action.instance}.{_input_label(action.input)}"
    fields = getattr(action, "__dataclass_fields__", None)
    args = ", ".join(f"{getattr(action, f)!s}" for f in fields) if fields else ""
    return f"{type(action).__name__}({args})" if args else type(action).__name__


def _state_label(state: Any) -> str:
    from statewright.kernel.system import SystemState

    if isinstance(state, SystemState):
        return "\n".join(f"{n}: {_state_label(s)}" for n, s in zip(state.names, state))
    if isinstance(state, Enum):
        return state.name
    fields = getattr(state, "__dataclass_fields__", None)
    if not fields:
        return str(state)
    parts = []
    for f in fields:
        v = getattr(state, f)
        parts.append(v.name if isinstance(v, Enum) else f"{f}={v!s}")
    return " ".join(parts)
