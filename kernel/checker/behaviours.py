"""Temporal properties judged on the graph a complete search recorded (`TemporalJudge`).

The search (`kernel.checker.search`) keeps, only when a spec asks for a
temporal property, every explored step as three integer arrays (CSR: edges
of state ``i`` are ``offsets[i]..offsets[i+1]``, each with a target state
number -- ``-1`` for a successor a constraint pruned -- and an action label).
A label names the row that fired in the acting instance: ``base[k] + row``
for instance position ``k``. This module turns a spec's fairness
declarations into sets of labels, its temporal properties into per-state
predicates, asks `kernel.checker.liveness` for a lasso, and turns the answer
back into a trace of the user's states and actions.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import statewright.kernel.checker.liveness as liveness
from statewright.kernel.boundary import FAILURES, not_bool, raised
from statewright.kernel.checker.fairness import own_rows
from statewright.kernel.checker.local import Key
from statewright.kernel.checker.properties import Kind
from statewright.kernel.checker.semantics import is_final
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.trace import TraceStep

__all__ = ["Counterexample", "Edges", "TemporalJudge"]


@dataclass(frozen=True, slots=True)
class Counterexample:
    """A temporal counterexample: the trace, where its loop closes (None for a plain trace), why."""

    trace: list[TraceStep]
    loop: int | None
    detail: str


@dataclass(slots=True)
class Edges:
    """The explored steps, as the search records them (CSR arrays; `liveness.Graph` adds the initial states)."""

    offsets: array[int]
    targets: array[int]
    labels: array[int]

    @classmethod
    def empty(cls) -> Edges:
        return cls(array("q", [0]), array("q"), array("q"))


def _named(action: Any) -> str:
    event = getattr(action, "input", action)
    where = f"{action.instance}." if hasattr(action, "instance") else ""
    return where + type(event).__name__


class TemporalJudge:
    """Decides a spec's temporal properties on a recorded graph."""

    def __init__(self, spec: Spec, space: StateSpace, keys: Sequence[Key], parents: Sequence[int], graph: Edges) -> None:
        self.spec = spec
        self.space = space
        self.keys = keys
        self.parents = parents
        self.graph = liveness.Graph(tuple(i for i, p in enumerate(parents) if p < 0), graph.offsets, graph.targets,
                                    graph.labels)
        self._final: bytearray | None = None
        self.bases = space.bases

    def bits(self, test: Callable[[Any], bool], name: str) -> bytearray:
        """``test`` on every explored state, as a byte per state."""
        out = bytearray(len(self.keys))
        view = self.space.view
        for j, key in enumerate(self.keys):
            s = view(key)
            try:
                ok = test(s)
            except FAILURES as exc:
                raised(exc, test, f"property {name!r}", spec=self.spec.name, state=s,
                       trace=tuple(self.space.path(self.parents, self.keys, j)))
            if ok is not True and ok is not False:
                not_bool(ok, test, f"property {name!r}", spec=self.spec.name, state=s)
            out[j] = ok
        return out

    @property
    def final(self) -> bytearray:
        """Which explored states are final (every instance terminal, or the spec's ``final``)."""
        if self._final is None:
            out = bytearray(len(self.keys))
            tables = self.space.tables
            for j, key in enumerate(self.keys):
                out[j] = is_final(self.space.view(key), [tables[k].terminal[a] for k, a in enumerate(key)],
                                  self.spec.final, spec=self.spec.name)
            self._final = out
        return self._final

    def decide(self) -> dict[str, Counterexample | None]:
        """Each temporal property's counterexample, or None when it holds."""
        spec = self.spec
        fair = self.space.fairness
        out: dict[str, Counterexample | None] = {}
        for p in spec.properties:
            if not p.kind.temporal:
                continue
            holds = self.bits(p.test, p.name)
            if p.kind is Kind.EVENTUALLY:
                lasso = liveness.eventually(self.graph, holds, fair)
            elif p.kind is Kind.LEADS_TO:
                assert p.then is not None
                lasso = liveness.leads_to(self.graph, holds, self.bits(p.then, p.name), fair)
            elif p.kind is Kind.ALWAYS_EVENTUALLY:
                lasso = liveness.always_eventually(self.graph, holds, fair)
            else:
                lasso = liveness.eventually_always(self.graph, holds, fair)
            out[p.name] = None if lasso is None else self.lasso(lasso, fair)
        if spec.terminates:
            assumed = own_rows(spec.model)
            lasso = liveness.eventually(self.graph, self.final, assumed)
            out["terminates"] = None if lasso is None else self.lasso(lasso, assumed)
        if spec.recoverable:
            out["recoverable"] = self.recoverable()
        return out

    def lasso(self, lasso: liveness.Lasso, fair: Sequence[liveness.Condition]) -> Counterexample:
        """A lasso of state numbers as a trace of states and actions, with its loop."""
        space, keys = self.space, self.keys
        states = lasso.states
        trace = [TraceStep(space.view(keys[states[0]]), None, ())]
        for a, b, e in zip(states, states[1:], lasso.edges):
            trace.append(self._step(keys[a], keys[b], self.graph.labels[e]))
        assumed = ", ".join(c.name for c in fair) or "no fairness"
        if lasso.stutters:
            return Counterexample(trace, lasso.loop, f"stutters forever in the last state (assuming {assumed})")
        closing = self._step(keys[states[-1]], keys[states[lasso.loop]], self.graph.labels[lasso.edges[-1]])
        return Counterexample(trace, lasso.loop,
                       f"then {_named(closing.input)} leads back to step {lasso.loop}, forever (assuming {assumed})")

    def _step(self, key: Key, target: Key, label: int) -> TraceStep:
        """The step from ``key`` to ``target`` by the row ``label`` names (two rows may join the same states)."""
        space = self.space
        for k, event, nk, effects, rule in space.successors(key):
            if nk == target and self.bases[k] + rule == label:
                return TraceStep(space.view(nk), space.action(k, event), effects)
        return space.step_between(key, target)  # pragma: no cover - the recorded edge is always found

    def recoverable(self) -> Counterexample | None:
        """AG EF home: the shortest trace to a state from which no home state can be reached."""
        home = self.bits(self.spec.home, "recoverable") if self.spec.home is not None else self.final
        stuck = liveness.trapped(self.graph, home)
        first = next((j for j in range(len(self.keys)) if stuck[j]), None)
        if first is None:
            return None
        region = sum(stuck)
        phases: dict[str, None] = {}
        for j in range(len(self.keys)):
            if stuck[j]:
                phases[self._phases(self.keys[j])] = None
                if len(phases) > 6:
                    break
        shown = "; ".join(list(phases)[:6]) + ("; ..." if len(phases) > 6 else "")
        detail = f"no home state is reachable from here: {region:,} reachable states are trapped ({shown})"
        return Counterexample(self.space.path(self.parents, self.keys, first), None, detail)

    def _phases(self, key: Key) -> str:
        tables = self.space.tables
        parts = []
        for k, a in enumerate(key):
            m = tables[k].machine
            phase = m.phase_of(tables[k].states[a]).name
            parts.append(phase if self.space.system is None else f"{self.space.names[k]}={phase}")
        return ", ".join(parts)
