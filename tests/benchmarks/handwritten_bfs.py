"""Hand-written breadth-first search of InputLifecycle.tla: the Python floor.

No framework: phases are small ints, a state is a tuple of them. This is the
baseline the statewright checker is measured against (bench_checker.py).

    python tests/benchmarks/handwritten_bfs.py 7   # -> 496420 distinct, depth 29
"""

import sys

ACCEPTED, QUEUED, STAGED, APPLIED, CONSUMED, ABANDONED, SUPERSEDED = range(7)
TERMINAL = (CONSUMED, ABANDONED, SUPERSEDED)
ADVANCE = {ACCEPTED: QUEUED, STAGED: APPLIED, APPLIED: CONSUMED}


def explore(n: int) -> tuple[int, int]:
    """Return (distinct states, BFS depth counting the initial level as 1)."""
    init = (ACCEPTED,) * n
    seen = {init}
    frontier = [init]
    depth = 0
    while frontier:
        depth += 1
        successors = []
        for s in frontier:
            idle = STAGED not in s
            for i, p in enumerate(s):
                if p in TERMINAL:
                    continue
                targets = [ABANDONED]
                if p in ADVANCE:
                    targets.append(ADVANCE[p])
                elif p == QUEUED:
                    if idle:
                        targets.append(STAGED)
                    if QUEUED in s[i + 1 :]:
                        targets.append(SUPERSEDED)
                for q in targets:
                    t = s[:i] + (q,) + s[i + 1 :]
                    if t not in seen:
                        seen.add(t)
                        successors.append(t)
        frontier = successors
    return len(seen), depth


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    distinct, depth = explore(n)
    print(f"{distinct} distinct states, depth {depth}")
