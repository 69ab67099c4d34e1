"""``statewright check``: bounded, interruptible model checks of the chosen specs.

Cut-offs given on the command line (``--max-states``, ``--max-depth``,
``--time-limit``) apply to every spec checked. The search also stops
when the process's memory passes ``--max-memory`` (by default 80% of the
memory it may use) and when SIGINT or SIGTERM arrive: a `Stopper` answers the
checker's ``should_stop`` poll (every 1,024 expanded states). What was found
until then is still reported -- printed and written with ``--json`` -- as a
BOUNDED report whose ``stopped_by`` says why; the specs not yet checked are
skipped. Exit codes: 130 after SIGINT, 143 after SIGTERM; 1 after the memory
budget ran out (the check is not the one asked for), besides the usual 0/1.
A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

from statewright.adapters.checking import check, default_workers, in_use
from statewright.adapters.cli.resources import rss, size_text, write_atomic
from statewright.adapters.project.errors import UsageError, user_location
from statewright.adapters.project.targets import Loader, Target, machines_of
from statewright.kernel.checker import Progress, Report, Simulation, Spec, StopReason
from statewright.specs.registry import no_parameter, parse_value

__all__ = [
    "Aborted", "Built", "Stopper", "Ticker", "build", "check_command", "conclude", "explain_stop", "positive_float", "positive_int",
]

EXIT_OK, EXIT_VIOLATED = 0, 1


class Aborted(BaseException):
    """A second signal while a check was already stopping: leave at once with ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass(frozen=True, slots=True)
class Built:
    """A target built with the command's ``--set`` values: the spec and the parameters it used."""

    target: Target
    spec: Spec
    params: dict[str, Any]


def _settings(raw: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        out.append((key.strip(), value))
    return out


def build(loader: Loader, args: argparse.Namespace) -> list[Built]:
    """The chosen targets built with their ``--set`` values (a key no chosen spec has is an error)."""
    targets = loader.select(args.names, args.all)
    if not targets:
        raise UsageError(f"{args.command} needs spec names or --all (see `statewright list`)")
    settings = _settings(args.params)
    for key, _ in settings:
        if not any(key in t.params for t in targets):
            if len(targets) == 1:
                raise UsageError(no_parameter(key, targets[0].params, targets[0].name))
            raise UsageError(no_parameter(key, sorted({k for t in targets for k in t.params})))
    out = []
    for t in targets:
        overrides = {k: parse_value(t.entry, k, v) for k, v in settings if k in t.params}
        out.append(Built(t, t.spec(**overrides), {**t.params, **overrides}))
    return out


class Stopper:
    """The check's ``should_stop`` (a signal arrived), and what stopped the run: a signal or the memory budget.

    Used as a context manager around the checks, it installs SIGINT and SIGTERM
    handlers (main thread only) that set a flag, and restores the old ones.
    The memory budget is the check's own (``max_memory``, polled as often as
    the states' size needs); `record` notes a result it stopped.
    """

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.signum: int | None = None
        self.memory: int | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        handled = bool(self._saved)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()
        if handled and isinstance(exc, KeyboardInterrupt):
            # Ctrl-C only sets a flag here, so this KeyboardInterrupt was raised by the spec's own code
            where = user_location(exc)
            raise UsageError(f"{where + ': ' if where else ''}the spec's code raised KeyboardInterrupt (a check "
                             "stops on Ctrl-C by itself and still reports)", original=exc) from exc

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Aborted(signum)
        self.signum = signum

    def __call__(self) -> StopReason | None:
        return StopReason.INTERRUPTED if self.signum is not None else None

    def record(self, result: Report | Simulation) -> None:
        """Note a result the memory budget stopped: the remaining specs are skipped, and the run says why."""
        if result.stopped_by is StopReason.MEMORY:
            self.memory = in_use()

    @property
    def reason(self) -> StopReason | None:
        """Why the remaining specs must be skipped, if they must."""
        if self.signum is not None:
            return StopReason.INTERRUPTED
        return StopReason.MEMORY if self.memory is not None else None


class Ticker:
    """Progress of a long check on stderr, at most every two seconds: states, states/s, memory."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.last = 0.0
        self.states = 0

    def __call__(self, p: Progress) -> None:
        if p.seconds - self.last >= 2.0:
            rate = (p.distinct_states - self.states) / max(p.seconds - self.last, 1e-9)
            self.last, self.states = p.seconds, p.distinct_states
            print(f"  {self.name}: {p.distinct_states:,} states ({rate:,.0f}/s), depth {p.depth}, "
                  f"{p.queued:,} queued, {p.seconds:.0f} s, {size_text(rss())} memory", file=self.stream, flush=True)


def _json_text(done: Sequence[tuple[Report, Built]]) -> str:
    from statewright.adapters.cli.reports import report_json
    from statewright.kernel.draw import analyse

    data: Any = [report_json(r, b.params, [analyse(m) for m in machines_of(b.spec)]) for r, b in done]
    if len(data) == 1:
        data = data[0]
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def check_command(args: argparse.Namespace, loader: Loader, out: TextIO, err: TextIO) -> int:
    """Check every chosen spec; returns the exit code."""
    from statewright.adapters.cli.text import render_report

    json_path: Path | None = args.json
    built = build(loader, args)
    if args.symmetry and not any(b.spec.symmetry for b in built):
        names = ", ".join(b.spec.name for b in built)
        raise UsageError(f"--symmetry: {names} declare{'s' if len(built) == 1 else ''} no symmetry (Spec(symmetry=...))")
    done: list[tuple[Report, Built]] = []
    with Stopper(args.max_memory) as stopper:
        for b in built:
            if stopper.reason is not None:
                break
            ticker = None if args.quiet else Ticker(b.spec.name, err)
            report = check(b.spec, workers=args.workers or default_workers(), keep_going=args.keep_going,
                           max_states=args.max_states, max_depth=args.max_depth, time_limit=args.time_limit,
                           max_memory=args.max_memory, clock=time.perf_counter, progress=ticker,
                           should_stop=stopper, symmetry=args.symmetry and bool(b.spec.symmetry))
            stopper.record(report)
            done.append((report, b))
            print(render_report(report, traces=not args.quiet, quiet=args.quiet, max_states=args.max_states),
                  file=out, flush=True)
        return conclude(stopper, [r for r, _ in done], len(built), quiet=args.quiet, json_path=json_path,
                        json_text=lambda: _json_text(done), out=out, err=err)


def conclude(
    stopper: Stopper,
    results: Sequence[Report | Simulation],
    planned: int,
    *,
    quiet: bool,
    json_path: Path | None,
    json_text: Callable[[], str],
    out: TextIO,
    err: TextIO,
) -> int:
    """The end of ``check`` and ``check --simulate``: the tally, why it stopped early, the JSON, the exit code.

    Called while ``stopper`` still holds the signals, so writing the JSON is not cut short.
    """
    from statewright.adapters.cli.text import render_tally

    not_run = planned - len(results)
    if quiet or planned > 1:
        print(render_tally(list(results), not_run), file=out, flush=True)
    explain_stop(stopper, results, not_run, err)
    if json_path is not None:
        try:
            write_atomic(json_path, json_text())
        except OSError as exc:
            raise UsageError(f"cannot write {json_path}: {exc.strerror or exc}") from None
    if stopper.signum is not None:
        return 128 + stopper.signum
    if stopper.memory is not None:
        return EXIT_VIOLATED
    return EXIT_OK if all(r.ok for r in results) else EXIT_VIOLATED


def explain_stop(stopper: Stopper, results: Sequence[Report | Simulation], not_run: int, err: TextIO) -> None:
    """On stderr: why the run stopped early (a signal, the memory budget), if it did."""
    skipped = f"; {not_run} spec{'' if not_run == 1 else 's'} not run" if not_run else ""
    last = results[-1] if results else None
    if stopper.signum is not None:
        name = signal.Signals(stopper.signum).name
        where = f": {last.spec} stopped after {last.distinct_states:,} states" if last and last.stopped_by is \
            StopReason.INTERRUPTED else ""
        print(f"statewright: interrupted by {name}{where}{skipped}", file=err, flush=True)
    elif stopper.memory is not None and last is not None:
        bound = "simulate fewer behaviours" if isinstance(last, Simulation) else "bound the search (--max-states)"
        print(f"statewright: {last.spec}: stopped at the memory budget ({size_text(stopper.memory)} in use, "
              f"budget {size_text(stopper.budget)}) after {last.distinct_states:,} states{skipped}; "
              f"raise it with --max-memory, or {bound}", file=err, flush=True)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value
