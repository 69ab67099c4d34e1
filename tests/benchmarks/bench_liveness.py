"""What liveness costs: `input_lifecycle` with `terminates` (and `recoverable`) against the safety-only check.

Both checks run in this process, alternately, several rounds; CPU time
(``time.process_time``) is compared, so another process on a shared machine
disturbs the ratio less than wall time would. The issue's bound is 3x.

    python tests/benchmarks/bench_liveness.py [--n 6] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from statewright import Spec, Verdict, check
from statewright.specs import REGISTRY


def timed(spec: Spec) -> float:
    start = time.process_time()
    report = check(spec)
    elapsed = time.process_time() - start
    if report.verdict is not Verdict.OK:
        raise SystemExit(f"{spec.name}: {report.verdict.value}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    safety = REGISTRY.get("input_lifecycle").spec(n=args.n)
    variants = {
        "safety only": safety,
        "terminates": dataclasses.replace(safety, terminates=True),
        "terminates + recoverable": dataclasses.replace(safety, terminates=True, recoverable=True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, spec in variants.items():
            times[name].append(timed(spec))
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    base = statistics.median(times["safety only"])
    for name, t in times.items():
        m = statistics.median(t)
        print(f"input_lifecycle n={args.n}, {name}: {m:.2f} s CPU (median of {args.rounds}), {m / base:.2f}x")


if __name__ == "__main__":
    main()
