"""The ``statewright`` command.

    statewright check NAME... [--all] [--set KEY=VALUE]... [--continue] [--json PATH]
    statewright test NAME... [--all] [--set KEY=VALUE]... [--examples N] [--seed S]
    statewright mutate NAME... [--all]
    statewright diagram NAME... [--all] [--format F]... [--out DIR] [--reachable] [--trace PROPERTY]
    statewright inspect DB [--key KEY]...
    statewright list

Exit codes: 0 when every property holds (expected violations found, or the
search was bounded with nothing failing), 1 when a property is violated or an
expected violation was not found, 2 for a usage or definition error -- always
with a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from statewright.kernel.check import Progress, Report, Spec, check
from statewright.kernel.errors import DefinitionError

__all__ = ["main", "run"]

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="statewright", description="Lifecycle state machines you can prove.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    c = sub.add_parser("check", help="model-check registered specs")
    c.add_argument("names", nargs="*", metavar="NAME", help="spec names (see `statewright list`)")
    c.add_argument("--all", action="store_true", help="check every registered spec")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="params",
                   help="set a spec parameter, e.g. --set n=7 (repeatable)")
    c.add_argument("--continue", action="store_true", dest="keep_going",
                   help="explore everything instead of stopping at the first violation")
    c.add_argument("--json", metavar="PATH", type=Path, help="write the report(s) as JSON to PATH")
    c.add_argument("--quiet", action="store_true", help="no progress and no traces; summary lines only")
    m = sub.add_parser("mutate", help="score how many table mutants each spec catches")
    m.add_argument("names", nargs="*", metavar="NAME", help="spec names (see `statewright list`)")
    m.add_argument("--all", action="store_true", help="every registered spec")
    m.add_argument("--min", type=float, default=0.0, metavar="PERCENT",
                   help="exit 1 when a machine's score is below PERCENT")
    d = sub.add_parser("diagram", help="draw machines (or a spec's reachable states) as svg/png/dot/mmd/md")
    d.add_argument("names", nargs="*", metavar="NAME", help="machine or spec names (see `statewright list`)")
    d.add_argument("--all", action="store_true", help="every bundled machine")
    d.add_argument("--format", action="append", dest="formats", metavar="FORMAT",
                   help="svg, png, dot, mmd or md (repeatable or comma-separated; default: svg,dot,mmd,md)")
    d.add_argument("--out", type=Path, default=Path("diagrams"), metavar="DIR", help="output folder (default: diagrams)")
    d.add_argument("--reachable", action="store_true", help="draw each spec's reachable state graph instead")
    d.add_argument("--trace", metavar="PROPERTY", help="highlight the counterexample (or witness) of PROPERTY")
    d.add_argument("--limit", type=int, default=500, help="largest reachable graph to draw (default: 500 states)")
    t = sub.add_parser("test", help="run the generated hypothesis suite of specs")
    t.add_argument("names", nargs="*", metavar="NAME", help="spec names (see `statewright list`)")
    t.add_argument("--all", action="store_true", help="every registered spec")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="params",
                   help="set a spec parameter (repeatable)")
    t.add_argument("--examples", type=int, default=100, metavar="N", help="programs to run per spec (default 100)")
    t.add_argument("--seed", type=int, default=None, metavar="S", help="seed for a reproducible run")
    i = sub.add_parser("inspect", help="show the instances and event logs stored in a SQLite file")
    i.add_argument("db", type=Path, metavar="DB", help="a SQLite file written by statewright's store")
    i.add_argument("--key", action="append", default=[], metavar="KEY", help="only these instances (repeatable)")
    sub.add_parser("list", help="list registered specs and machines")
    return p


def _params(raw: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        out.append((key.strip(), value))
    return out


class _Ticker:
    """Prints progress of a long check to stderr, at most every two seconds."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.last = 0.0

    def __call__(self, p: Progress) -> None:
        if p.seconds - self.last >= 2.0:
            self.last = p.seconds
            print(f"  {self.name}: {p.distinct_states:,} states, depth {p.depth}, "
                  f"{p.queued:,} queued, {p.seconds:.0f} s", file=self.stream, flush=True)


def _names(args: argparse.Namespace) -> list[str]:
    from statewright.specs import REGISTRY

    names = list(REGISTRY.names) if args.all else []
    for n in args.names:
        REGISTRY.get(n)  # unknown names fail here, listing the known ones
        if n not in names:
            names.append(n)
    if not names:
        raise UsageError(f"{args.command} needs spec names or --all (see `statewright list`)")
    return names


def _mutate(args: argparse.Namespace, out: TextIO) -> int:
    from statewright.kernel.check.mutants import score
    from statewright.kernel.machine import Machine
    from statewright.specs import REGISTRY

    low = False
    for n in _names(args):
        spec = REGISTRY.get(n).spec()
        model = spec.model
        machines = [model] if isinstance(model, Machine) else list({id(m): m for m in model.machines}.values())
        for machine in machines:
            s = score(spec, machine)
            print(f"{n}/{machine.name}: {s.killed}/{s.total} mutants caught ({100 * s.ratio:.1f}%)", file=out)
            for survivor in s.survivors:
                print(f"  survived: {survivor}", file=out)
            low = low or 100 * s.ratio < args.min
    return EXIT_VIOLATED if low else EXIT_OK


def _formats(raw: list[str] | None) -> list[str]:
    from statewright.adapters.cli.diagram import FORMATS

    chosen = [f.strip() for item in (raw or ["svg,dot,mmd,md"]) for f in item.split(",") if f.strip()]
    for f in chosen:
        if f not in FORMATS:
            raise UsageError(f"unknown format {f!r} (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(chosen))


def _diagram(args: argparse.Namespace, out: TextIO) -> int:
    from statewright.adapters.cli.diagram import Drawn, coverage_for, machines_of, trace_edges, write_machine, write_reachable
    from statewright.kernel.graph import GraphTooLarge
    from statewright.specs import REGISTRY

    formats = _formats(args.formats)
    drawn = Drawn()
    specs = [n for n in args.names if n in REGISTRY.entries]
    machine_names = [n for n in args.names if n not in REGISTRY.entries]
    for n in machine_names:
        if n not in REGISTRY.machines:
            raise UsageError(
                f"unknown machine or spec {n!r}; machines: {', '.join(REGISTRY.machines)}; specs: {', '.join(REGISTRY.names)}"
            )
    if args.all:
        machine_names = list(dict.fromkeys([*REGISTRY.machines, *machine_names]))
    if not specs and not machine_names:
        raise UsageError("diagram needs machine or spec names, or --all (see `statewright list`)")
    if (args.reachable or args.trace) and (machine_names and not specs or args.all):
        raise UsageError("--reachable and --trace draw specs: name specs, not machines or --all")
    covered: dict[str, Any] = {}

    def coverage(machine: Any) -> Any:
        if not any(r.emit is not None for r in machine.rules):
            return ()
        for entry in REGISTRY.entries.values():
            spec = entry.spec()
            if any(m.name == machine.name for m in machines_of(spec)):
                if entry.name not in covered:
                    covered[entry.name] = coverage_for(spec)
                return covered[entry.name]
        return ()

    for name in specs:
        spec = REGISTRY.get(name).spec()
        trace: Any = ()
        if args.trace:
            report = check(spec, keep_going=True)
            result = report.result(args.trace) if args.trace in spec.checks else None
            if result is None:
                raise UsageError(f"spec {name!r} has no property {args.trace!r} (properties: {', '.join(spec.checks)})")
            if result.trace is None:
                raise UsageError(f"property {args.trace!r} of {name!r} has no trace to highlight (it holds)")
            trace = result.trace
        if args.reachable:
            try:
                stem = f"{name}.{args.trace}" if args.trace else None
                write_reachable(spec, args.out, formats, limit=args.limit, trace=trace, stem=stem, drawn=drawn)
            except GraphTooLarge as exc:
                raise UsageError(f"{exc} (raise --limit, or draw the machines instead)") from None
            continue
        for machine in machines_of(spec):
            stem = f"{name}.{args.trace}.{machine.name}" if args.trace else machine.name
            write_machine(machine, args.out, formats, coverage(machine),
                          highlight=trace_edges(machine, spec, trace), stem=stem, drawn=drawn)
    for n in machine_names:
        machine = REGISTRY.machines[n]
        write_machine(machine, args.out, formats, coverage(machine), drawn=drawn)
    for path in drawn.written:
        print(f"wrote {path}", file=out)
    for note in drawn.skipped:
        print(f"skipped {note}", file=out)
    return EXIT_OK


def _specs(args: argparse.Namespace) -> list[tuple[Spec, dict[str, Any]]]:
    """The named specs built with their ``--set`` parameters, and the parameters used."""
    from statewright.specs import REGISTRY
    from statewright.specs.registry import parse_value

    names = _names(args)
    settings = _params(args.params)
    for key, _ in settings:
        if not any(key in REGISTRY.get(n).params for n in names):
            known = sorted({k for n in names for k in REGISTRY.get(n).params}) or ["none"]
            raise UsageError(f"no spec named has a parameter {key!r} (parameters: {', '.join(known)})")
    built = []
    for n in names:
        entry = REGISTRY.get(n)
        overrides = {k: parse_value(entry, k, v) for k, v in settings if k in entry.params}
        built.append((entry.spec(**overrides), {**entry.params, **overrides}))
    return built


def _test(args: argparse.Namespace, out: TextIO) -> int:
    from statewright.adapters.testing.stateful import run_suite

    failed = False
    for spec, _ in _specs(args):
        result = run_suite(spec, examples=args.examples, seed=args.seed)
        if result.passed:
            print(f"{spec.name}: passed ({result.examples} programs, {result.steps} steps in all)", file=out)
        else:
            failed = True
            print(f"{spec.name}: FAILED", file=out)
            print(result.failure or "(no failing program was reported)", file=out)
        out.flush()
    return EXIT_VIOLATED if failed else EXIT_OK


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from statewright.adapters.cli.reports import report_json
    from statewright.adapters.cli.text import render_report

    reports: list[tuple[Report, dict[str, Any], Spec]] = []
    for spec, params in _specs(args):
        ticker = None if args.quiet else _Ticker(spec.name, err)
        report = check(spec, keep_going=args.keep_going, clock=time.perf_counter, progress=ticker)
        reports.append((report, params, spec))
        print(render_report(report, traces=not args.quiet), file=out, flush=True)
    if args.json is not None:
        from statewright.adapters.cli.diagram import machines_of
        from statewright.kernel.graph import analyse

        data: Any = [report_json(r, p, [analyse(m) for m in machines_of(spec)]) for r, p, spec in reports]
        if len(data) == 1:
            data = data[0]
        try:
            args.json.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return EXIT_OK if all(r.ok for r, _, _ in reports) else EXIT_VIOLATED


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from statewright.adapters.runtime.serialize import value_json
    from statewright.adapters.runtime.sqlite import SqliteStore
    from statewright.adapters.runtime.store import Catalog, Corrupt
    from statewright.machines.input import authorize_seed
    from statewright.specs import REGISTRY

    if not args.db.is_file():
        raise UsageError(f"no database at {args.db}")
    catalog = Catalog(dict(REGISTRY.machines), {"input": authorize_seed})

    async def show() -> int:
        store = await SqliteStore.open(args.db, catalog)
        damaged = 0
        try:
            keys = await store.keys()
            for key in args.key:
                if key not in keys:
                    raise UsageError(f"no instance {key!r} in {args.db} (instances: {', '.join(keys) or 'none'})")
            for key in args.key or keys:
                try:
                    record = await store.load(key)
                except Corrupt as exc:
                    damaged += 1
                    print(f"{key}: CORRUPT -- {exc}", file=out)
                    continue
                machine = catalog.machine(record.machine)
                phase = machine.phase_of(record.state).name
                print(f"{key}: {record.machine} {phase} (version {record.version})", file=out)
                for event in await store.read_log(key):
                    mark = " [terminal]" if event.terminal else ""
                    data = json.dumps(value_json(event.data), sort_keys=True)
                    print(f"  {event.seq:>3} {event.kind:<10} {data}{mark}", file=out)
        finally:
            await store.close()
        return EXIT_VIOLATED if damaged else EXIT_OK

    return asyncio.run(show())


def _list(out: TextIO) -> int:
    from statewright.specs import REGISTRY

    print("specs:", file=out)
    for e in REGISTRY.entries.values():
        params = " ".join(f"{k}={v}" for k, v in e.params.items())
        print(f"  {e.name:<20} {e.summary}" + (f"  [{params}]" if params else ""), file=out)
    print("machines:", file=out)
    for m in REGISTRY.machines.values():
        terminal = [p.name for p in m.phases if p in m.terminal_phases]
        print(f"  {m.name:<20} {_count(len(m.phases), 'phase')}, {_count(len(m.labels), 'transition')}"
              + (f"; terminal: {', '.join(terminal)}" if terminal else ""), file=out)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def run(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line ``argv`` and return the exit code (for tests and embedding)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
        if args.command == "check":
            return _check(args, out, err)
        if args.command == "inspect":
            return _inspect(args, out)
        if args.command == "test":
            return _test(args, out)
        if args.command == "diagram":
            return _diagram(args, out)
        if args.command == "mutate":
            return _mutate(args, out)
        if args.command == "list":
            return _list(out)
        raise UsageError("expected a command: check, test, diagram, mutate, inspect or list (see statewright --help)")
    except (UsageError, DefinitionError) as exc:
        print(f"statewright: error: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("statewright: interrupted", file=err)
        return 130
    except Exception as exc:  # a bug, but the user still gets one line, not a traceback
        print(f"statewright: internal error: {type(exc).__name__}: {exc}", file=err)
        return EXIT_USAGE


def main() -> NoReturn:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
