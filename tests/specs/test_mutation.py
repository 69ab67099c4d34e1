"""Mutation test: every spec catches at least 90% of the mutants of what protects it.

Two kinds of groups are scored (`kernel.checker.mutants`). *Machine groups*: each
library machine a registered spec contains, mutated row by row (a guard
dropped, a guard negated, the row retargeted). *System groups*: each
registered system spec's system, with one `SystemGuard` or one `Route`
dropped at a time. A mutant that makes the user's code raise, or that runs
the search out of its budget, survives: only a reported violation (or a
mutant that is no valid definition) catches it.

A surviving mutant is a finding: either the spec states too little (then it
gets the property that states what the guard or route protects) or the
mutant is *equivalent* -- it reaches exactly the unmutated model's states,
so no property over states can tell them apart. The equivalent survivors of
guard negation (the operator added with the system groups) are listed in
`EQUIVALENT` with the reason; the survivors of the older operators are
described in their specs' docs. The score that must reach 90% is
``killed / (total - listed equivalents)``; a system group must have no other
survivor. Every score is printed in the test run's output, the raw ratio
next to it.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from statewright.kernel import Machine, System
from statewright.kernel.checker.mutants import SYSTEM, MutationScore, Outcome, score_spec
from statewright.specs import REGISTRY

THRESHOLD = 0.90

PARAMS: dict[str, dict[str, Any]] = {"input_lifecycle": {"n": 3}, "fact_io": {"missing_retryable": True}}
"""Knobs for specs too big to mutate at their defaults (n=7 has 496,420 states; n=3 has the same guards), or
whose defaults leave a row dead (fact_io retries a missing fact only when configured so: at the source's
default the retry row never fires, and every mutant of it would survive unseen)."""

_SELF_LOOP_SPAWN = ("Spawn is a self-loop that changes no state (it only emits ChildSpawned, which no property "
                    "sees); {why}, so the reachable states stay the same")
_NEVER_FIRES = ("{how}, so the row never fires in the system; every state it led to is still reached another way "
                "(`session` alone kills the mutant)")
_FAIL = "RUNNING --FailRun[same_run, no_stop_pending"
_OTHER_INPUT = ("with one run id, not_same_run lets through only a report naming another input, and that input "
                "refuses the routed {input} (its run does not hold it)")

EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("run", "run", "#7 RUNNING --Resume[resumable]--> RUNNING: negate guard resumable"):
        "resumable holds in every reachable RUNNING state, so Resume never fires; it only re-enters what Enter "
        "enters anyway",
    ("task", "task", "#10 RUNNING --Spawn[worker_live, below_spawn_limit]--> RUNNING: negate guard below_spawn_limit"):
        _SELF_LOOP_SPAWN.format(why="below_spawn_limit always holds at depth 1 of 3, so the row never fires"),
    ("task_as_written", "task_as_written",
     "#11 RUNNING --Spawn[has_worker_token, below_spawn_limit]--> RUNNING: negate guard below_spawn_limit"):
        _SELF_LOOP_SPAWN.format(why="below_spawn_limit always holds at depth 1 of 3, so the row never fires"),
    **{
        ("task_as_written", "task_as_written", f"#{row} {phase} --Spawn[has_worker_token, below_spawn_limit]--> "
                                               f"{phase}: negate guard {guard}"):
        _SELF_LOOP_SPAWN.format(why=f"{guard} always holds in {phase}, so the row never fires, and "
                                    "spawn_only_while_running still finds its 4-state trace through another row")
        for row, phase, guard in (
            (12, "SUSPENDED", "below_spawn_limit"),
            (13, "PASSED", "below_spawn_limit"), (13, "PASSED", "has_worker_token"),
            (14, "BLOCKED", "below_spawn_limit"), (14, "BLOCKED", "has_worker_token"),
            (15, "CANCELLED", "below_spawn_limit"),
        )
    },
    ("session_inputs", "session", "#9 RUNNING --AcceptInput[accepting, new_input]--> RUNNING: negate guard new_input"):
        _NEVER_FIRES.format(how="not_new_input lets the session accept only an input it already holds, which the "
                                "input refuses (it takes Queue only while ACCEPTED)"),
    **{
        ("session_inputs", "session", f"#{row} {label}: negate guard {guard}"): _NEVER_FIRES.format(how=how)
        for row, label, guard, how in (
            (15, f"{_FAIL}, resumes_idle]--> IDLE", "same_run", _OTHER_INPUT.format(input="RunFailed")),
            (16, f"{_FAIL}, resumes_retired]--> RETIRED", "same_run", _OTHER_INPUT.format(input="RunFailed")),
        )
    },
}
"""(spec, group, mutant) -> why the mutant is equivalent on the spec's reachable states.

Negating ``same_run`` or ``applied`` on one of the three ``CommitRun`` rows of
``session_inputs`` reaches the same states too (the other rows still commit),
but the run that row ends can no longer commit: ``backlog_drains``, under the
spec's fairness, finds the backlog waiting forever behind it, so those six
mutants are caught although no state property could tell them apart.
"""


def library_machines(model: Machine[Any] | System[Any]) -> list[Machine[Any]]:
    """Distinct machines of the model whose tables live in the machines/ package."""
    machines = [model] if isinstance(model, Machine) else list(model.machines)
    unique = {id(m): m for m in machines}.values()
    return [m for m in unique if any(t.__module__.startswith("statewright.machines.") for t in m.input_types)]


def build(name: str) -> Any:
    return REGISTRY.get(name).spec(**PARAMS.get(name, {}))


SLOW = {"session_inputs", "session", "task_as_written", "loop_frame"}
"""Specs whose groups take over ~0.5 s to score (session_inputs: 293 mutants, 19 of them
survivors checked over all 23,976 states). All of a spec's cases share the mark: whichever runs first scores
the spec."""

CASES = [
    (name, machine.name)
    for name in REGISTRY.names
    for machine in library_machines(build(name).model)
] + [(name, SYSTEM) for name in REGISTRY.names if isinstance(build(name).model, System)]


@functools.cache
def groups(spec_name: str) -> dict[str, MutationScore]:
    """Every group of one spec, scored once (the unmutated check is shared)."""
    return {s.group: s for s in score_spec(build(spec_name))}


def test_every_library_machine_and_system_is_mutated() -> None:
    mutated = {group for _, group in CASES}
    assert {"input", "run", "task", "task_as_written", "token", "operator"} <= mutated
    systems = {name for name, group in CASES if group == SYSTEM}
    assert {"two_phase", "input_lifecycle", "cas_atomic", "loop_frame", "session_inputs"} <= systems
    assert all((spec_name, group) in CASES and why for (spec_name, group, _), why in EQUIVALENT.items())


@pytest.mark.parametrize(("spec_name", "group"), [
    pytest.param(name, group, marks=[pytest.mark.slow] if name in SLOW else []) for name, group in CASES])
def test_spec_kills_mutants(spec_name: str, group: str, capsys: pytest.CaptureFixture[str]) -> None:
    s = groups(spec_name)[group]
    outcomes = {f.mutant: f.outcome for f in s.fates}
    listed = [m for (name, g, m) in EQUIVALENT if (name, g) == (spec_name, group)]
    caught = [m for m in listed if outcomes.get(m) is not Outcome.SURVIVED]
    assert caught == [], f"listed as equivalent but not a plain survivor (update EQUIVALENT): {caught}"
    scored = s.total - len(listed)
    assert s.total > 0 and s.ratio is not None
    ratio = s.killed / scored
    with capsys.disabled():
        print(f"\nmutation score {spec_name}/{group}: {s.killed}/{scored} = {100 * ratio:.1f}%"
              f" ({len(s.survivors) - len(listed)} survived, {len(listed)} equivalent;"
              f" raw {s.killed}/{s.total} = {100 * s.ratio:.1f}%)")
    unexplained = [m for m in s.survivors if m not in listed]
    assert ratio >= THRESHOLD, f"{spec_name}/{group}: {100 * ratio:.1f}% < 90%; survivors: {unexplained}"
    if group == SYSTEM:  # a system guard or route that nothing depends on is always a finding
        assert unexplained == [], f"{spec_name}/system: survivors {unexplained}"
