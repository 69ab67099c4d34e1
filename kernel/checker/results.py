"""From what a search found to what a report says: property statuses and row coverage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from statewright.kernel.checker.judge import Judge
from statewright.kernel.checker.local import Key
from statewright.kernel.checker.properties import BUILTIN, Kind
from statewright.kernel.checker.report import (
    Coverage,
    PropertyResult,
    Report,
    Status,
    StopReason,
    Verdict,
)
from statewright.kernel.checker.space import StateSpace
from statewright.kernel.checker.spec import Spec
from statewright.kernel.machine import Machine
from statewright.kernel.trace import TraceStep

__all__ = ["conclude", "coverage", "judged", "local_hits"]


def conclude(
    judge: Judge,
    *,
    stop: StopReason | None,
    distinct: int,
    generated: int,
    depth: int,
    seconds: float,
    hits: Mapping[int, Mapping[int, int]],
    loops: Mapping[str, int] | None = None,
) -> Report:
    """The report of a finished search: what ``judge`` found, the counts, and each row's coverage."""
    spec, space = judge.spec, judge.space
    results = judged(spec, judge.violations, judge.details, judge.witnessed, complete=stop is None, loops=loops)
    if any(r.failed for r in results):
        verdict = Verdict.VIOLATED
    else:
        verdict = Verdict.OK if stop is None else Verdict.BOUNDED
    symmetric = space.symmetry.names if space.symmetry is not None else ()
    return Report(spec.name, verdict, stop is None, stop, distinct, generated, depth, seconds, results,
                  coverage(space, hits), judge.pruned, symmetric)


def judged(
    spec: Spec,
    violations: dict[str, list[TraceStep]],
    details: dict[str, str],
    witnessed: dict[str, list[TraceStep]],
    *,
    complete: bool,
    loops: Mapping[str, int] | None = None,
) -> tuple[PropertyResult, ...]:
    """Each checked property's status, with its shortest trace, in the spec's order."""
    expected = set(spec.expect)
    kinds = {p.name: p.kind for p in spec.properties}
    out: list[PropertyResult] = []
    for name in spec.checks:
        kind = kinds.get(name) or BUILTIN[name]
        trace = violations.get(name)
        if kind is Kind.SOMETIMES:
            trace = witnessed.get(name)
            if trace is not None:
                status = Status.HOLDS
            else:
                status = Status.VIOLATED if complete else Status.UNKNOWN
        elif trace is not None:
            status = Status.VIOLATED
        else:
            status = Status.HOLDS if complete else Status.UNKNOWN
        detail = details.get(name)
        if name in expected:
            status = Status.EXPECTED if status is Status.VIOLATED else Status.MISSING
            pinned = spec.expect.get(name) if isinstance(spec.expect, Mapping) else None
            if status is Status.EXPECTED and pinned is not None and trace is not None and len(trace) != pinned:
                status = Status.MISMATCH
                detail = f"expected a {pinned}-state shortest trace, found {len(trace)} states"
        loop = (loops or {}).get(name)
        out.append(PropertyResult(name, kind, status, tuple(trace) if trace is not None else None, detail, loop))
    return tuple(out)


def local_hits(space: StateSpace, expanded: list[Key]) -> dict[int, Counter[int]]:
    """How often each local state was expanded, per table (``id(table)``): what `coverage` multiplies out."""
    hits: dict[int, Counter[int]] = {}
    for k, t in enumerate(space.tables):
        hits.setdefault(id(t), Counter()).update(map(itemgetter(k), expanded))
    return hits


def coverage(space: StateSpace, hits: Mapping[int, Mapping[int, int]]) -> tuple[Coverage, ...]:
    """Times each row fired -- expansions of each local state (``hits``, per table) times its fast rows, plus
    slow and routed firings -- and the effect types each row emitted in the steps taken."""
    counts: dict[int, dict[int, int]] = {}
    emitted: dict[int, dict[int, dict[str, None]]] = {}
    machines: dict[int, Machine[Any]] = {}
    for t in space.distinct_tables:
        machines[id(t.machine)] = t.machine
        mine = counts.setdefault(id(t.machine), {})
        for rule, fired in t.fired(hits.get(id(t), {})).items():
            mine[rule] = mine.get(rule, 0) + fired
        seen = emitted.setdefault(id(t.machine), {})
        for rule, names in t.emitted(hits.get(id(t), {})).items():
            seen.setdefault(rule, {}).update(names)
    return tuple(
        Coverage(m.name, idx, label, counts[mid].get(idx, 0), tuple(sorted(emitted[mid].get(idx, ()))))
        for mid, m in machines.items()
        for idx, label in enumerate(m.labels)
    )
