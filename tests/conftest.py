"""Shared fixtures: tiny machines used across the kernel tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import settings

from statewright.kernel import Guard, Machine, Transition

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
ROOT = Path(__file__).resolve().parent.parent
SKIP_COPY = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


settings.register_profile("quick", max_examples=10)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
"""`make quick` sets ``HYPOTHESIS_PROFILE=quick``: fewer examples for tests that take hypothesis's
defaults. Unset (`make test`), hypothesis chooses as it always has: ``default``, or ``ci`` where the
``CI`` variable is set. Suites run through ``run_suite`` or ``run_refinement`` pass their own example
counts and are not affected."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: over ~0.5 s on an idle 2-core machine, or pays a shared cost that "
                                       "large; left out of `make quick` (-m 'not slow'), run by `make test` "
                                       "(tests/README.md)")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """statewright built as a wheel from a copy of this tree (symlinks kept), once per test run."""
    work = tmp_path_factory.mktemp("wheel")
    tree = work / "tree"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=SKIP_COPY)
    out = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(tree)], check=True, capture_output=True)
    (found,) = out.glob("statewright-*.whl")
    yield found


class Door(Enum):
    OPEN = "open"
    SHUT = "shut"
    LOCKED = "locked"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class DoorState:
    phase: Door = Door.OPEN
    closes: int = 0
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    pass


@dataclass(frozen=True, slots=True)
class Open:
    pass


@dataclass(frozen=True, slots=True)
class Lock:
    key: str


@dataclass(frozen=True, slots=True)
class Unlock:
    key: str


@dataclass(frozen=True, slots=True)
class Demolish:
    pass


@dataclass(frozen=True, slots=True)
class Closed:
    times: int


def right_key(state: DoorState, event: Unlock) -> bool:
    return state.key == event.key


DOOR = Machine(
    "door",
    initial=DoorState(),
    terminal={Door.GONE},
    transitions=[
        Transition(Door.OPEN, Close, Door.SHUT, update=lambda s, i: replace(s, closes=min(s.closes + 1, 2)),
                   emit=lambda s, i: (Closed(s.closes),)),
        Transition(Door.SHUT, Open, Door.OPEN),
        Transition(Door.SHUT, Lock, Door.LOCKED, update=lambda s, i: replace(s, key=i.key)),
        Transition(Door.LOCKED, Unlock, Door.SHUT, guard=right_key, update=lambda s, i: replace(s, key=None)),
        Transition((Door.OPEN, Door.SHUT), Demolish, Door.GONE, guard=Guard("not_new", lambda s, i: s.closes > 0)),
    ],
    inputs=(Close, Open, Lock, Unlock, Demolish),
    effects=(Closed,),
)


@pytest.fixture
def door() -> Machine[DoorState]:
    return DOOR
