"""`Authority`: versioned live state with stage -> commit compare-and-swap."""

from __future__ import annotations

from statewright.kernel import (
    Accepted,
    Authority,
    Committed,
    Rejected,
    Snapshot,
    Staged,
    Stale,
)
from tests.conftest import DOOR, Close, Closed, Door, DoorState, Lock, Open


def test_apply_moves_state_and_version_only_on_acceptance() -> None:
    a = Authority(DOOR)
    assert isinstance(a.apply(Open()), Rejected)
    assert (a.state, a.version) == (DoorState(), 0)
    assert isinstance(a.apply(Close()), Accepted)
    assert (a.state.phase, a.version) == (Door.SHUT, 1)


def test_stage_then_commit_publishes() -> None:
    a = Authority(DOOR)
    staged = a.stage(Close())
    assert isinstance(staged, Staged) and a.version == 0 and a.state == DoorState()
    done = a.commit(staged)
    assert done == Committed(DoorState(Door.SHUT, closes=1), (Closed(1),), 1)


def test_commit_conflicts_when_the_version_moved_and_changes_nothing() -> None:
    a = Authority(DOOR)
    staged = a.stage(Close())
    assert isinstance(staged, Staged)
    a.apply(Close())
    a.apply(Lock("k"))
    before = a.snapshot()
    assert a.commit(staged) == Stale(expected=0, actual=2)
    assert a.snapshot() == before


def test_stage_of_a_rejected_input_is_the_rejection() -> None:
    assert isinstance(Authority(DOOR).stage(Open()), Rejected)


def test_snapshot_restore_and_restore_if_current() -> None:
    a = Authority(DOOR)
    snap = a.snapshot()
    a.apply(Close())
    assert a.restore_if_current(snap, expected_version=0) == Stale(0, 1)
    assert a.version == 1
    assert a.restore_if_current(snap, expected_version=1) == Snapshot(DoorState(), 2)  # the state, a new version
    assert a.snapshot() == Snapshot(DoorState(), 2)
    a.apply(Close())
    assert a.restore(snap) == Snapshot(DoorState(), 4)
    assert (a.state, a.version) == (DoorState(), 4)


def test_a_step_staged_before_a_restore_never_commits_after_it() -> None:
    # the trial's finding: restore rewound the version, so restore + one apply made a stale stage current again
    a = Authority(DOOR)
    staged = a.stage(Close())
    assert isinstance(staged, Staged) and staged.base_version == 0
    snap = a.snapshot()
    a.apply(Close())
    a.restore(snap)
    versions = [a.version]
    while a.version < 10:
        a.apply(Close())  # accepted or not, the stale stage must not commit
        versions.append(a.version)
        if isinstance(a.commit(staged), Committed):
            raise AssertionError(f"a stale stage committed at version {a.version}")
        a.restore(snap)
    assert versions == sorted(versions) and len(set(versions)) == len(versions)  # versions only move forward
