"""Mutation test: every lifecycle machine's spec catches at least 90% of its mutants.

A mutant deletes one guard or retargets one row of a library machine's table
(`kernel.check.mutants`). Each registered spec over library machines is
checked against every mutant of every machine it contains; the percentage is
printed in the test run's output and must be at least 90.
"""

from __future__ import annotations

from typing import Any

import pytest

from statewright.kernel import Machine, System
from statewright.kernel.check.mutants import score
from statewright.specs import REGISTRY

THRESHOLD = 0.90


def library_machines(model: Machine[Any] | System[Any]) -> list[Machine[Any]]:
    """Distinct machines of the model whose tables live in the machines/ package."""
    machines = [model] if isinstance(model, Machine) else list(model.machines)
    unique = {id(m): m for m in machines}.values()
    return [m for m in unique if any(t.__module__.startswith("statewright.machines.") for t in m.input_types)]


CASES = [
    (name, machine.name)
    for name, entry in REGISTRY.entries.items()
    for machine in library_machines(entry.spec().model)
]


def test_every_library_machine_is_mutated() -> None:
    mutated = {machine for _, machine in CASES}
    assert {"input", "run", "task", "task_as_written", "token", "operator"} <= mutated


@pytest.mark.parametrize(("spec_name", "machine_name"), CASES)
def test_spec_kills_mutants(spec_name: str, machine_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = REGISTRY.get(spec_name).spec()
    machine = next(m for m in library_machines(spec.model) if m.name == machine_name)
    s = score(spec, machine)
    with capsys.disabled():
        print(f"\nmutation score {spec_name}/{machine_name}: {s.killed}/{s.total} = {100 * s.ratio:.1f}%"
              f" ({len(s.survivors)} survived)")
    assert s.total > 0
    assert s.ratio >= THRESHOLD, f"{spec_name}/{machine_name}: {100 * s.ratio:.1f}% < 90%; survivors: {s.survivors}"
