"""Diagram files: DOT, Mermaid and markdown text, and SVG/PNG through Graphviz's ``dot``.

The text formats come from `kernel.draw` and need nothing installed; SVG and
PNG need the ``dot`` binary, and without it the caller gets a `Drawn` record
saying which files were skipped and why instead of an exception.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from statewright.kernel.checker import Spec, check
from statewright.kernel.checker import Coverage, TraceStep
from statewright.kernel.draw import machine_dot, machine_markdown, machine_mermaid, state_dot
from statewright.kernel.draw import reachable_graph
from statewright.kernel.machine import Machine
from statewright.kernel.system import SystemState
from statewright.specs.registry import machines_of

__all__ = ["FORMATS", "TEXT_FORMATS", "Drawn", "dot_missing", "machines_of", "trace_edges", "write_machine", "write_reachable"]

TEXT_FORMATS = ("dot", "mmd", "md")
FORMATS = ("svg", "png", *TEXT_FORMATS)


@dataclass
class Drawn:
    """What a diagram command wrote, and what it could not."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def dot_missing(formats: Sequence[str]) -> str | None:
    """Why ``formats`` cannot all be drawn here (svg/png without Graphviz's ``dot``), or None."""
    needs = [f for f in formats if f not in TEXT_FORMATS]
    if needs and shutil.which("dot") is None:
        verb = "needs" if len(needs) == 1 else "need"
        return f"{' and '.join(needs)} {verb} Graphviz's `dot`, which is not on PATH (apt-get install graphviz)"
    return None


def _render(dot_text: str, fmt: str, target: Path, drawn: Drawn) -> None:
    exe = shutil.which("dot")
    if exe is None:
        drawn.skipped.append(f"{target.name}: Graphviz's `dot` is not installed (apt-get install graphviz)")
        return
    proc = subprocess.run([exe, f"-T{fmt}", "-o", str(target)], input=dot_text, text=True, capture_output=True)
    if proc.returncode != 0:
        drawn.skipped.append(f"{target.name}: dot failed: {proc.stderr.strip().splitlines()[-1:]}")
        return
    drawn.written.append(target)


def _write(text: str, target: Path, drawn: Drawn) -> None:
    target.write_text(text)
    drawn.written.append(target)


def _emit(dot_text: str, extra: dict[str, str], stem: Path, formats: Sequence[str], drawn: Drawn) -> None:
    for fmt in formats:
        target = stem.with_name(f"{stem.name}.{fmt}")
        if target in drawn.written:  # two instances built from equal tables draw one file, once
            continue
        if fmt == "dot":
            _write(dot_text, target, drawn)
        elif fmt in extra:
            _write(extra[fmt], target, drawn)
        else:
            _render(dot_text, fmt, target, drawn)


def write_machine(
    machine: Machine[Any],
    out: Path,
    formats: Sequence[str],
    coverage: Iterable[Coverage] = (),
    *,
    highlight: Iterable[tuple[Enum, Enum]] = (),
    stem: str | None = None,
    drawn: Drawn | None = None,
) -> Drawn:
    """Write ``machine``'s declared diagram in each format as ``out/<stem>.<fmt>``."""
    drawn = drawn if drawn is not None else Drawn()
    out.mkdir(parents=True, exist_ok=True)
    cov = list(coverage)
    path = set(highlight)
    dot_text = machine_dot(machine, cov, highlight=path)
    extra = {"mmd": machine_mermaid(machine, cov), "md": machine_markdown(machine, cov)}
    _emit(dot_text, extra, out / (stem or machine.name), formats, drawn)
    return drawn


def write_reachable(
    spec: Spec,
    out: Path,
    formats: Sequence[str],
    *,
    limit: int = 500,
    trace: Sequence[TraceStep] = (),
    stem: str | None = None,
    drawn: Drawn | None = None,
) -> Drawn:
    """Write the reachable state graph of a (small) spec; raises `kernel.draw.graphs.GraphTooLarge` past ``limit``."""
    drawn = drawn if drawn is not None else Drawn()
    out.mkdir(parents=True, exist_ok=True)
    g = reachable_graph(spec, limit=limit, highlight=[s.state for s in trace])
    _emit(state_dot(g), {}, out / (stem or f"{spec.name}.reachable"),
          [f for f in formats if f not in ("mmd", "md")], drawn)
    for f in formats:
        if f in ("mmd", "md"):
            drawn.skipped.append(f"{stem or spec.name}.reachable.{f}: reachable graphs are drawn as dot/svg/png only")
    return drawn


def trace_edges(machine: Machine[Any], spec: Spec, trace: Sequence[TraceStep]) -> set[tuple[Enum, Enum]]:
    """The (source, target) phase pairs ``machine`` moves through along a trace, over all its instances."""
    edges: set[tuple[Enum, Enum]] = set()
    model = spec.model
    for before, after in zip(trace, trace[1:]):
        if isinstance(before.state, SystemState) and not isinstance(model, Machine):
            pairs = [
                (b, a) for m, b, a in zip(model.machines, before.state, after.state) if m is machine and a != b
            ]
        else:
            pairs = [(before.state, after.state)]
        for b, a in pairs:
            edges.add((machine.phase_of(b), machine.phase_of(a)))
    return edges


def coverage_for(spec: Spec) -> tuple[Coverage, ...]:
    """Coverage of a full check (for effect names on rows that compute their effects)."""
    return check(spec, keep_going=True).coverage
