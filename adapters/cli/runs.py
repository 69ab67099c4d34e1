"""Runs as text, for ``statewright inspect``: the table of a store's runs, and one run's attempts, facts and children.

Pure presentation: `adapters.cli.inspecting` reads the records, the logs and
the artifacts' kinds and sizes, and hands them here decoded. A run is the
executor's two records (`executor.run_key`, `executor.facts_key`): its
`machines.run.Run` and its `machines.fact_log.FactLog`; its attempts come from
its log's effects (``StateEntered``, ``StateFailed``, ``StateCompleted``), so
a retried attempt is shown even though the run's state keeps only the last.

>>> from statewright.machines.run import Plan, Run, RunPhase
>>> run = Run(Plan(("shop.pay.run", "shop.ship.run")), RunPhase.RUNNING, ("shop.pay.run",), "shop.ship.run", 1)
>>> print("\\n".join(runs_table([RunView("order-7", run, None)])))
  run      phase    states  in flight                  parent
  order-7  running  1/2     shop.ship.run (attempt 1)  -
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from statewright.adapters.cli.text import escaped
from statewright.machines.fact_log import FactLog
from statewright.machines.run import TERMINAL, Run

__all__ = ["Attempt", "RunView", "attempts", "run_detail", "runs_table"]

SHORT = 12  # hex digits of an artifact id shown (``sha256:`` and the first ones, as git shortens a commit)


@dataclass(frozen=True, slots=True)
class RunView:
    """One run as read: its state and fact log (None when missing or damaged) and its log's effects' data."""

    run_id: str
    run: Run | None
    facts: FactLog | None
    effects: tuple[Mapping[str, Any], ...] = ()


@dataclass(slots=True)
class Attempt:
    """One attempt of one state, as its run's log tells it."""

    state_id: str
    number: int
    outcome: str = "in flight"


def attempts(effects: Iterable[Mapping[str, Any]]) -> list[Attempt]:
    """The attempts a run's effects record, in the order they were entered."""
    out: list[Attempt] = []
    latest: dict[str, Attempt] = {}
    for effect in effects:
        kind, state = effect.get("type"), effect.get("state_id")
        if not isinstance(state, str):
            continue
        if kind == "StateEntered" and isinstance(effect.get("attempt"), int):
            latest[state] = Attempt(state, effect["attempt"])
            out.append(latest[state])
        elif kind == "StateCompleted" and state in latest:
            latest[state].outcome = "completed"
        elif kind == "StateFailed" and state in latest:
            latest[state].outcome = "failed, will retry" if effect.get("will_retry") else "failed"
    return out


def _in_flight(run: Run) -> str:
    """The attempt in flight; none once the run ended (a failed run's ``current`` is where it failed)."""
    return "-" if run.current is None or run.phase in TERMINAL else f"{run.current} (attempt {run.attempt})"


def _states(run: Run) -> str:
    return f"{len(run.completed)}/{len(run.plan.states)}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned columns, every cell escaped (stored text cannot break a line)."""
    rows = [tuple(escaped(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [("  " + "  ".join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]])).rstrip() for row in rows]


def runs_table(runs: list[RunView]) -> list[str]:
    """A line per run: its id, phase, states completed of all, the state in flight and its attempt, its parent."""
    rows: list[tuple[str, ...]] = [("run", "phase", "states", "in flight", "parent")]
    for view in runs:
        parent = view.facts.parent if view.facts is not None and view.facts.parent else "-"
        if view.run is None:
            rows.append((view.run_id, "?", "?", "-", parent))
        else:
            rows.append((view.run_id, view.run.phase.value, _states(view.run), _in_flight(view.run), parent))
    return _table(rows)


def run_detail(view: RunView, children: list[RunView], artifacts: Mapping[str, tuple[str, int]],
               errors: Mapping[tuple[str, int], str]) -> list[str]:
    """One run: a summary line, its states' attempts with their outcomes, its facts and its child runs.

    ``artifacts`` maps artifact ids to ``(kind, size)``; ``errors`` a failed
    attempt ``(state, number)`` to its error as text.
    """
    lines: list[str] = []
    run, facts = view.run, view.facts
    if run is None:
        lines.append(escaped(f"run {view.run_id}: no run record (only its fact log)"))
    else:
        flight = f", in flight {_in_flight(run)}" if _in_flight(run) != "-" else ""
        lines.append(escaped(f"run {view.run_id}: {run.phase.value}, {len(run.completed)} of {len(run.plan.states)} "
                             f"states completed{flight}"))
    if facts is not None:
        lines.append(escaped(f"  manifest {short(facts.manifest)}, parent {facts.parent or '-'}, "
                             f"fact log {facts.phase.value}"))
    if run is not None:
        lines.append("states:")
        lines += _table([("state", "attempt", "outcome"), *_attempt_rows(view, run, errors)])
    if facts is not None:
        lines.append(f"facts ({len(facts.facts)}):")
        rows: list[tuple[str, ...]] = [("key", "artifact", "kind", "size")]
        for key, artifact in facts.facts:
            kind, size = artifacts.get(artifact, ("(missing)", None))
            rows.append((key, short(artifact), kind, "-" if size is None else str(size)))
        lines += _table(rows)
    if children:
        lines.append(f"child runs ({len(children)}):")
        lines += runs_table(children)
    return lines


def _attempt_rows(view: RunView, run: Run, errors: Mapping[tuple[str, int], str]) -> list[tuple[str, ...]]:
    seen = attempts(view.effects)
    rows: list[tuple[str, ...]] = []
    for state in run.plan.states:
        mine = [a for a in seen if a.state_id == state]
        if not mine:
            rows.append((state, "-", "pending" if run.phase not in TERMINAL else "not run"))
        for a in mine:
            outcome = a.outcome
            if outcome == "in flight" and run.phase in TERMINAL:
                outcome = "not finished"
            error = errors.get((state, a.number))
            rows.append((state, str(a.number), f"{outcome}: {error}" if error else outcome))
    return rows


def short(artifact: str) -> str:
    """``sha256:`` and the first `SHORT` hex digits of an artifact id (any other text as it is)."""
    head, sep, digest = artifact.partition(":")
    return f"{head}:{digest[:SHORT]}" if sep and len(digest) > SHORT else artifact
