"""Events per second: `kernel.step` against the `transitions` library on a toggle.

Both drive a two-phase toggle (OFF <-> ON) for the same number of events,
alternately, several rounds; medians and the ratio are printed. statewright
runs with a frozen dataclass state (the usual shape) and with an Enum state.

    python tests/benchmarks/bench_step.py [--events 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from transitions import Machine as TMachine

from statewright.kernel import Machine, Transition, step


class Light(Enum):
    OFF = "off"
    ON = "on"


@dataclass(frozen=True, slots=True)
class Lamp:
    phase: Light = Light.OFF


@dataclass(frozen=True, slots=True)
class Flip:
    pass


def table(initial: object) -> Machine[object]:
    return Machine("toggle", initial=initial, transitions=[
        Transition(Light.OFF, Flip, Light.ON), Transition(Light.ON, Flip, Light.OFF)])


def run_statewright(machine: Machine[object], events: int) -> float:
    s = machine.initial
    flip = Flip()
    start = time.perf_counter()
    for _ in range(events):
        s = step(machine, s, flip).state  # type: ignore[union-attr]
    elapsed = time.perf_counter() - start
    assert s == machine.initial  # an even number of flips
    return events / elapsed


class Model:
    pass


def run_transitions(events: int) -> float:
    model = Model()
    TMachine(model=model, states=["off", "on"], initial="off",
             transitions=[{"trigger": "flip", "source": "off", "dest": "on"},
                          {"trigger": "flip", "source": "on", "dest": "off"}])
    flip = model.flip  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(events):
        flip()
    elapsed = time.perf_counter() - start
    assert model.state == "off"  # type: ignore[attr-defined]
    return events / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.events - args.events % 2
    runs: dict[str, Callable[[], float]] = {
        "transitions.Machine": lambda: run_transitions(n),
        "statewright step (dataclass state)": lambda: run_statewright(table(Lamp()), n),
        "statewright step (Enum state)": lambda: run_statewright(table(Light.OFF), n),
    }
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            rates[name].append(fn())
    base = statistics.median(rates["transitions.Machine"])
    for name, values in rates.items():
        m = statistics.median(values)
        print(f"{name:<38} {m:>12,.0f} events/s  ({m / base:.2f}x transitions)")


if __name__ == "__main__":
    main()
