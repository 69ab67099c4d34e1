"""The search core against an earlier revision of itself, on the same model, per engine.

A refactor of the checker must not cost speed. This builds a git worktree of
a baseline revision and runs each checkout's own ``input_lifecycle`` spec
(the same model and properties in both: the spec is TLA+'s InputLifecycle)
as separate processes, alternately, several rounds, for two engines:

* ``--workers 1`` -- the one-core `Search`;
* the default engine -- ``workers`` = the cores this process may use: the
  level engine's coordinator with forked workers.

Each is measured in CPU seconds of the process and its workers (what the
work costs, less disturbed by a busy machine than wall time), and the
default engine in wall seconds too.

Reported: medians of the rounds and the change in percent. The issue's bound
is +5%.

    python tests/benchmarks/bench_search_core.py [--rev 2e9837c] [--n 7] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE = """
import resource, sys, time
n, workers = int(sys.argv[1]), int(sys.argv[2])
from statewright.specs import REGISTRY
spec = REGISTRY.get("input_lifecycle").spec(n=n)
try:
    from statewright.adapters.checking import check
    run = lambda: check(spec, workers=workers, clock=None)
except ImportError:  # before one check served every engine
    from statewright.adapters.runtime.workers import check_parallel
    from statewright.kernel.check.search import Search
    run = (lambda: Search(spec).run()) if workers == 1 else (lambda: check_parallel(spec, workers=workers))
cpu, wall = time.process_time(), time.perf_counter()
report = run()
children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, joined when the check ends
print(report.distinct_states, time.process_time() - cpu + children.ru_utime + children.ru_stime,
      time.perf_counter() - wall)
"""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run(tree: Path, n: int, workers: int) -> tuple[int, float, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(n), str(workers)], cwd=tempfile.gettempdir(),
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True)
    states, cpu, wall = out.stdout.split()
    return int(states), float(cpu), float(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="2e9837c")
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    engines = {"workers 1 (CPU s)": (1, 1), f"default, {cores()} workers (CPU s)": (cores(), 1),
               f"default, {cores()} workers (wall s)": (cores(), 2)}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev],
                       check=True, capture_output=True)
        try:
            for r in range(args.rounds):
                for workers in sorted({w for w, _ in engines.values()}):
                    for name, tree in (("baseline", old), ("now", ROOT)):
                        states, *measured = run(tree, args.n, workers)
                        for engine, (w, column) in engines.items():
                            if w == workers:
                                times.setdefault((engine, name), []).append(measured[column - 1])
                    line = [f"{engine} {times[(engine, 'baseline')][-1]:.2f} -> {times[(engine, 'now')][-1]:.2f}"
                            for engine, (w, _) in engines.items() if w == workers]
                    print(f"round {r + 1}: {'; '.join(line)} ({states:,} states)", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    for engine in engines:
        b, c = statistics.median(times[(engine, "baseline")]), statistics.median(times[(engine, "now")])
        print(f"input_lifecycle n={args.n}, {engine}: {args.rev} {b:.2f} s, now {c:.2f} s "
              f"(medians of {args.rounds}); {100 * (c / b - 1):+.1f}%")


if __name__ == "__main__":
    main()
