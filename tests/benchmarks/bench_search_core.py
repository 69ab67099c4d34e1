"""The search core against an earlier revision of itself, on the same model.

A refactor of the checker must not cost speed. This builds a git worktree of
a baseline revision (default: the last one before the search became the
`Search` class), loads *that revision's* ``input_lifecycle`` spec module in
both checkouts -- so both explore the same model with the same properties --
and runs the check as separate processes, alternately, several rounds,
comparing CPU time. The issue's bound is +5%.

    python tests/benchmarks/bench_search_core.py [--rev f1ec6f6] [--n 7] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE = """
import importlib.util, sys, time
spec_file, n = sys.argv[1], int(sys.argv[2])
source = open(spec_file).read().replace("@REGISTRY.spec", "")
module = type(sys)("baseline_input_lifecycle")
exec(compile(source, spec_file, "exec"), module.__dict__)
from statewright import check
spec = module.input_lifecycle(n=n)
start = time.process_time()
report = check(spec)
print(report.distinct_states, time.process_time() - start)
"""


def run(tree: Path, spec_file: Path, n: int) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(spec_file), str(n)], cwd=tempfile.gettempdir(),
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True)
    states, seconds = out.stdout.split()
    return int(states), float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="f1ec6f6")
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev],
                       check=True, capture_output=True)
        try:
            spec_file = old / "specs" / "input_lifecycle.py"
            times: dict[str, list[float]] = {"baseline": [], "now": []}
            for r in range(args.rounds):
                for name, tree in (("baseline", old), ("now", ROOT)):
                    states, seconds = run(tree, spec_file, args.n)
                    times[name].append(seconds)
                print(f"round {r + 1}: baseline {times['baseline'][-1]:.2f} s, now {times['now'][-1]:.2f} s "
                      f"({states:,} states)", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    b, c = statistics.median(times["baseline"]), statistics.median(times["now"])
    print(f"input_lifecycle n={args.n}, the baseline revision's spec: {args.rev} {b:.2f} s, now {c:.2f} s CPU "
          f"(medians of {args.rounds}); {100 * (c / b - 1):+.1f}%")


if __name__ == "__main__":
    main()
