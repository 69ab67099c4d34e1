"""``statewright check --simulate N [--depth D] [--seed S]``: random behaviours instead of an exhaustive search.

For state spaces too big to check, each chosen spec runs N random behaviours
of up to D steps (`kernel.checker.simulate`). The seed makes a run reproducible;
without ``--seed`` one is drawn here (the kernel draws no randomness) and
printed in the header, so any run can be repeated. ``--time-limit`` and the
memory budget stop a simulation as they stop a check, and so do SIGINT and
SIGTERM; bounds of the breadth-first search (``--max-states``,
``--max-depth``) and ``--continue`` mean nothing here and are refused.
Exit codes as for ``check``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from statewright.adapters.checking import in_use
from statewright.adapters.cli.checking import Built, Stopper, build, conclude
from statewright.adapters.project.errors import UsageError
from statewright.adapters.project.targets import Loader
from statewright.kernel.checker.simulate import Simulation, simulate

__all__ = ["DEFAULT_DEPTH", "seed_number", "simulate_command", "simulation_options", "step_count"]

DEFAULT_DEPTH = 100
REFUSED = {
    "keep_going": "--continue (a simulation stops at the first violation)",
    "max_states": "--max-states (a simulation is bounded by --simulate and --depth)",
    "max_depth": "--max-depth (a simulation's behaviours are bounded by --depth)",
    "workers": "--workers (a simulation runs on one core)",
    "symmetry": "--symmetry (a simulation walks real states)",
}


def step_count(text: str) -> int:
    """An argparse type for ``--depth``: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of steps (0 or more), got {text!r}")
    return value


def seed_number(text: str) -> int:
    """An argparse type for ``--seed``: an integer from 0 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**64 - 1, got {text!r}")
    return value


def simulation_options(args: argparse.Namespace) -> None:
    """Refuse ``--depth``/``--seed`` without ``--simulate``, and the options a simulation cannot honour."""
    if args.simulate is None:
        given = [flag for flag, value in (("--depth", args.depth), ("--seed", args.seed)) if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --simulate N")
        return
    for attr, what in REFUSED.items():
        if getattr(args, attr):
            raise UsageError(f"--simulate cannot be combined with {what}")


def _json_text(done: Sequence[tuple[Simulation, Built]]) -> str:
    from statewright.adapters.cli.reports import simulation_json

    data: Any = [simulation_json(s, b.params) for s, b in done]
    if len(data) == 1:
        data = data[0]
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def simulate_command(args: argparse.Namespace, loader: Loader, out: TextIO, err: TextIO) -> int:
    """Simulate every chosen spec with one seed; returns the exit code."""
    from statewright.adapters.cli.text import render_simulation, simulation_header

    simulation_options(args)
    chosen = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    steps = args.depth if args.depth is not None else DEFAULT_DEPTH
    json_path: Path | None = args.json
    built = build(loader, args)
    done: list[tuple[Simulation, Built]] = []
    with Stopper(args.max_memory) as stopper:
        for b in built:
            if stopper.reason is not None:
                break
            if not args.quiet:
                print(simulation_header(b.spec.name, args.simulate, steps, chosen), file=out, flush=True)
            sim = simulate(b.spec, behaviours=args.simulate, depth=steps, seed=chosen, time_limit=args.time_limit,
                           max_memory=args.max_memory, clock=time.perf_counter, memory=in_use,
                           should_stop=stopper)
            stopper.record(sim)
            done.append((sim, b))
            print(render_simulation(sim, quiet=args.quiet), file=out, flush=True)
        return conclude(stopper, [s for s, _ in done], len(built), quiet=args.quiet, json_path=json_path,
                        json_text=lambda: _json_text(done), out=out, err=err)
