"""Whole-process speed of `statewright check` against the hand-written BFS floor.

Runs ``handwritten_bfs.py N`` and ``statewright check input_lifecycle --set n=N``
alternately as separate processes (so start-up and imports count), several
rounds, and prints both medians and their ratio. Run it with ``make bench`` or

    python tests/benchmarks/bench_checker.py [--n 7] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _statewright() -> list[str]:
    script = Path(sys.executable).with_name("statewright")
    return [str(script)] if script.exists() else [sys.executable, "-m", "statewright"]


def timed(cmd: list[str], expect: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or expect not in proc.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    baseline = [sys.executable, str(HERE / "handwritten_bfs.py"), str(args.n)]
    ours = [*_statewright(), "check", "input_lifecycle", "--set", f"n={args.n}", "--quiet"]
    hand: list[float] = []
    tool: list[float] = []
    for r in range(args.rounds):
        hand.append(timed(baseline, "distinct states"))
        tool.append(timed(ours, ": OK"))
        print(f"round {r + 1}: hand-written {hand[-1]:.2f} s, statewright {tool[-1]:.2f} s", flush=True)
    h, t = statistics.median(hand), statistics.median(tool)
    print(f"InputLifecycle N={args.n}: hand-written BFS {h:.2f} s, statewright check {t:.2f} s "
          f"(medians of {args.rounds}); ratio {t / h:.2f}x")


if __name__ == "__main__":
    main()
