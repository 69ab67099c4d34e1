"""``statewright test``, ``mutate``, ``diagram`` and ``list`` (``check`` and ``inspect`` have modules of their own)."""

from __future__ import annotations

import argparse
import difflib
import math
import shlex
from typing import TYPE_CHECKING, Any, TextIO

from statewright.adapters.cli.checking import build
from statewright.adapters.project.errors import UsageError
from statewright.adapters.project.targets import Loader, Target, UnknownName, machines_of
from statewright.kernel.checker import Spec, check
from statewright.kernel.machine import Machine

if TYPE_CHECKING:
    from statewright.kernel.checker.mutants import MutationScore

__all__ = ["diagram_command", "list_command", "mutate_command", "percentage", "test_command"]

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE = 0, 1, 2


def test_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Run each chosen spec's generated suite; a failure prints its program as Python and the seed to rerun it."""
    if args.examples < 1:
        raise UsageError(f"--examples must be at least 1, got {args.examples}")
    from statewright.adapters.testing.stateful import DEFAULT_SEED, run_suite

    seed = DEFAULT_SEED if args.seed is None else args.seed
    again = ["statewright", "test", *args.names, *(["--all"] if args.all else [])]
    for setting in args.params:
        again += ["--set", setting]
    rerun = shlex.join([*again, "--examples", str(args.examples), "--seed", str(seed)])
    failed = False
    for b in build(loader, args):
        overrides = {k: v for k, v in b.params.items() if k not in b.target.params or b.target.params[k] != v}
        result = run_suite(b.spec, examples=args.examples, seed=seed, spec_code=b.target.spec_code(overrides),
                           rerun=rerun)
        if result.passed:
            programs = "program" if result.examples == 1 else "programs"
            print(f"{b.spec.name}: passed ({result.examples} {programs}, {result.steps} steps in all)", file=out)
        else:
            failed = True
            print(f"{b.spec.name}: FAILED", file=out)
            print(result.failure or "(no failing program was reported)", file=out)
        out.flush()
    return EXIT_VIOLATED if failed else EXIT_OK


def percentage(raw: str) -> float:
    """``--min``: a number from 0 to 100 (nan and inf are no percentages)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {raw!r}")
    return value


def mutate_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Score each spec's mutants per group; exit 1 when a scored group is below ``--min`` or a spec fails unmutated."""
    from statewright.kernel.checker.mutants import SpecFails, score_spec

    targets = loader.select(args.names, args.all)
    if not targets:
        raise UsageError("mutate needs spec names or --all (see `statewright list`)")
    failed = False
    for t in targets:
        try:
            groups = score_spec(t.spec())
        except SpecFails as exc:
            print(f"{t.name}: not scored: {exc}", file=out)
            failed = True
            continue
        for s in groups:
            print(_score_line(t.name, s), file=out)
            for f in s.fates:
                if not f.outcome.caught:
                    why = f" -- {f.detail}" if f.detail else ""
                    print(f"  {f.outcome.value}: {f.mutant}{why}", file=out)
            failed = failed or (s.ratio is not None and 100 * s.ratio < args.min)
        out.flush()
    return EXIT_VIOLATED if failed else EXIT_OK


def _score_line(name: str, s: MutationScore) -> str:
    if s.ratio is None:
        return f"{name}/{s.group}: no mutants (not counted for --min)"
    undeclarable = f"; {s.by_definition} by a definition error" if s.by_definition else ""
    return f"{name}/{s.group}: {s.killed}/{s.total} mutants caught ({100 * s.ratio:.1f}%{undeclarable})"


def formats(raw: list[str] | None) -> tuple[list[str], bool]:
    """The chosen formats, and whether they were chosen (not the default)."""
    from statewright.adapters.cli.diagram import FORMATS

    chosen = [f.strip() for item in (raw or ["svg,dot,mmd,md"]) for f in item.split(",") if f.strip()]
    for f in chosen:
        if f not in FORMATS:
            raise UsageError(f"unknown format {f!r} (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(chosen)), raw is not None


class _Diagrams:
    """What one ``diagram`` command draws: specs (their machines, or their reachable graphs) and machines."""

    def __init__(self, args: argparse.Namespace, loader: Loader) -> None:
        self.args = args
        self.loader = loader
        self.specs: list[Target] = []
        self.machines: list[Machine[Any]] = []
        self._covered: dict[str, Any] = {}
        known: dict[str, Machine[Any]] | None = None
        for name in args.names:
            try:
                self.specs += loader.resolve(name)
            except UnknownName as exc:
                known = known if known is not None else loader.machines()
                if name not in known:
                    message = str(exc).replace("unknown spec", "unknown machine or spec", 1)
                    raise UsageError(f"{message}; machines: {', '.join(known)}") from None
                self.machines.append(known[name])
        if args.all:
            everything = list(loader.machines(bundled=False).values())
            self.machines = list({m.name: m for m in [*everything, *self.machines]}.values())
        if not self.specs and not self.machines:
            raise UsageError("diagram needs machine or spec names, or --all (see `statewright list`)")
        if (args.reachable or args.trace) and (self.machines and not self.specs or args.all):
            raise UsageError("--reachable and --trace draw specs: name specs, not machines or --all")

    def coverage(self, machine: Machine[Any]) -> Any:
        """Coverage of the first spec exercising ``machine`` (it names the effects of computed emits)."""
        from statewright.adapters.cli.diagram import coverage_for

        if not any(r.emit is not None for r in machine.rules):
            return ()
        for t in [*self.specs, *self._others()]:
            spec = t.spec()
            if any(m.name == machine.name for m in machines_of(spec)):
                if t.name not in self._covered:
                    self._covered[t.name] = coverage_for(spec)
                return self._covered[t.name]
        return ()

    def _others(self) -> list[Target]:
        """The default set, for machines named on their own (empty when there is none to use)."""
        try:
            return self.loader.default_set()
        except UsageError:
            return []

    def trace(self, t: Target, spec: Spec) -> Any:
        if not self.args.trace:
            return ()
        if self.args.trace not in spec.checks:
            close = difflib.get_close_matches(self.args.trace, list(spec.checks), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"spec {t.name!r} has no property {self.args.trace!r}{hint}; "
                             f"its properties: {', '.join(spec.checks)}")
        result = check(spec, keep_going=True).result(self.args.trace)
        if result.trace is None:
            raise UsageError(f"property {self.args.trace!r} of {t.name!r} has no trace to highlight (it holds)")
        return result.trace


def diagram_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """Draw; formats asked for by name must all be written (``svg``/``png`` need Graphviz's ``dot``)."""
    from statewright.adapters.cli.diagram import Drawn, dot_missing, trace_edges, write_machine, write_reachable
    from statewright.kernel.draw import GraphTooLarge

    chosen, explicit = formats(args.formats)
    if explicit and dot_missing(chosen):
        raise UsageError(f"{dot_missing(chosen)}; without Graphviz use --format dot, mmd or md")
    plan = _Diagrams(args, loader)
    drawn = Drawn()
    for t in plan.specs:
        spec = t.spec()
        trace = plan.trace(t, spec)
        if args.reachable:
            try:
                stem = f"{t.name}.{args.trace}" if args.trace else None
                write_reachable(spec, args.out, chosen, limit=args.limit, trace=trace, stem=stem, drawn=drawn)
            except GraphTooLarge as exc:
                raise UsageError(f"{exc} (raise --limit, or draw the machines instead)") from None
            continue
        for machine in machines_of(spec):
            stem = f"{t.name}.{args.trace}.{machine.name}" if args.trace else machine.name
            write_machine(machine, args.out, chosen, plan.coverage(machine),
                          highlight=trace_edges(machine, spec, trace), stem=stem, drawn=drawn)
    for machine in plan.machines:
        write_machine(machine, args.out, chosen, plan.coverage(machine), drawn=drawn)
    for path in drawn.written:
        print(f"wrote {path}", file=out)
    for note in drawn.skipped:
        print(f"skipped {note}", file=out)
    if not drawn.written:
        raise UsageError(f"nothing was written: {drawn.skipped[0] if drawn.skipped else 'no diagrams to draw'}")
    if explicit and drawn.skipped:
        raise UsageError(f"not every format asked for was written: {drawn.skipped[0]}")
    return EXIT_OK


def list_command(args: argparse.Namespace, loader: Loader, out: TextIO) -> int:
    """The specs (with their origin unless bundled) and the machines they exercise."""
    targets = loader.select(args.names, everything=not args.names)
    print("specs:", file=out)
    machines: dict[str, Machine[Any]] = {}
    for t in targets:
        params = " ".join(f"{k}={v}" for k, v in t.params.items())
        origin = "" if t.bundled else f"  (from {t.origin})"
        line = f"  {t.name:<20} {t.summary}".rstrip() + (f"  [{params}]" if params else "") + origin
        print(line, file=out)
        for m in machines_of(t.spec()):
            machines.setdefault(m.name, m)
    if not args.names and loader.project is None:
        from statewright.specs import REGISTRY

        for name, m in REGISTRY.machines.items():
            machines.setdefault(name, m)
    print("machines:", file=out)
    for m in machines.values():
        terminal = [p.name for p in m.phases if p in m.terminal_phases]
        print(f"  {m.name:<20} {_count(len(m.phases), 'phase')}, {_count(len(m.labels), 'transition')}"
              + (f"; terminal: {', '.join(terminal)}" if terminal else ""), file=out)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
