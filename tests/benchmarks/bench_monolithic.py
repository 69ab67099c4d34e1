"""The checker on a model that does not decompose, against an earlier revision of itself.

`lamport_mutex` is one machine whose state is the whole system (a record of
tuples, as most TLA+ specs are): every state is a new local state and every
step runs the table's code, so the memo of local steps that makes systems of
small instances fast gives nothing. This builds a git worktree of a baseline
revision (default: ``HEAD``), loads *this tree's* ``specs/lamport_mutex.py``
in both checkouts by path -- so both explore the same model with the same
properties, though the baseline may not have the module -- and runs the check
as separate processes, alternately, several rounds, comparing CPU time.

    python tests/benchmarks/bench_monolithic.py [--rev HEAD] [--max-clock 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = ROOT / "specs" / "lamport_mutex.py"
PROBE = """
import sys, time
spec_file, n, max_clock, tree = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import statewright
assert statewright.__file__.startswith(tree), (statewright.__file__, tree)  # the checkout under test
source = open(spec_file).read().replace("@REGISTRY.spec", "")
module = sys.modules["bench_lamport_mutex"] = type(sys)("bench_lamport_mutex")  # dataclasses look it up
exec(compile(source, spec_file, "exec"), module.__dict__)
from statewright import check
spec = module.lamport_mutex(n=n, max_clock=max_clock)
start = time.process_time()
report = check(spec)
seconds = time.process_time() - start
assert report.verdict.value == "ok" and report.complete, report.verdict
print(report.distinct_states, report.generated, report.depth, seconds)
"""


def run(tree: Path, n: int, max_clock: int) -> tuple[tuple[int, int, int], float]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(SPEC), str(n), str(max_clock), str(tree)],
                         cwd=tempfile.gettempdir(), env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the check failed in {tree}:\n{out.stderr}")
    states, generated, depth, seconds = out.stdout.split()
    return (int(states), int(generated), int(depth)), float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--max-clock", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev],
                       check=True, capture_output=True)
        try:
            times: dict[str, list[float]] = {"baseline": [], "now": []}
            for r in range(args.rounds):
                found = {}
                for name, tree in (("baseline", old), ("now", ROOT)):
                    found[name], seconds = run(tree, args.n, args.max_clock)
                    times[name].append(seconds)
                if found["baseline"] != found["now"]:
                    raise SystemExit(f"the two checkouts disagree: {found}")
                states, generated, depth = found["now"]
                print(f"round {r + 1}: baseline {times['baseline'][-1]:.2f} s, now {times['now'][-1]:.2f} s "
                      f"({states:,} states, {generated:,} generated, depth {depth})", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    b, c = statistics.median(times["baseline"]), statistics.median(times["now"])
    print(f"lamport_mutex n={args.n} max_clock={args.max_clock}: {args.rev} {b:.2f} s, now {c:.2f} s CPU "
          f"(medians of {args.rounds}); {b / c:.2f}x faster")


if __name__ == "__main__":
    main()
