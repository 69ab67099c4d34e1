"""`check --workers N` against one worker: speed and bytes per state, whole processes.

Runs ``statewright check input_lifecycle --set n=N --workers W`` for each W
alternately, as separate processes, several rounds. Each run goes through a
small probe that reports the coordinator's peak RSS and the largest peak RSS
among its worker processes (``getrusage``), so the figures are:

* wall time, median of the rounds, and the speed-up over ``--workers 1``;
* distinct states per second;
* bytes per state: the coordinator's peak RSS / distinct states, and the
  same with every worker's peak added (an upper bound: forked workers share
  the pages they did not write).

    python tests/benchmarks/bench_workers.py [--n 8] [--workers 1 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PROBE = """
import json, resource, sys, time
from statewright import check
from statewright.specs import REGISTRY
n, workers = int(sys.argv[1]), int(sys.argv[2])
spec = REGISTRY.get("input_lifecycle").spec(n=n)
start = time.perf_counter()
report = check(spec, workers=workers)
seconds = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"states": report.distinct_states, "depth": report.depth, "verdict": report.verdict.value,
                  "check_seconds": seconds, "rss": own, "worker_rss": children}))
"""


def run(n: int, workers: int) -> dict[str, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, str(n), str(workers)], capture_output=True, text=True,
                         check=True)
    data: dict[str, float] = json.loads(out.stdout)
    data["wall"] = time.perf_counter() - start
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    runs: dict[int, list[dict[str, float]]] = {w: [] for w in args.workers}
    for r in range(args.rounds):
        for w in args.workers:
            data = run(args.n, w)
            runs[w].append(data)
            print(f"round {r + 1}, workers {w}: {data['wall']:.2f} s wall, {int(data['states']):,} states, "
                  f"depth {int(data['depth'])}, coordinator {data['rss'] / 2**20:.0f} MiB, "
                  f"largest worker {data['worker_rss'] / 2**20:.0f} MiB", flush=True)
    base = statistics.median(d["wall"] for d in runs[args.workers[0]])
    print(f"input_lifecycle n={args.n}, medians of {args.rounds}:")
    for w in args.workers:
        wall = statistics.median(d["wall"] for d in runs[w])
        states = runs[w][0]["states"]
        own = statistics.median(d["rss"] for d in runs[w]) / states
        every = statistics.median(d["rss"] + (w * d["worker_rss"] if w > 1 else 0) for d in runs[w]) / states
        print(f"  --workers {w}: {wall:.2f} s ({base / wall:.2f}x), {states / wall:,.0f} states/s, "
              f"{own:.0f} bytes/state (coordinator), {every:.0f} bytes/state (all processes)")


if __name__ == "__main__":
    main()
