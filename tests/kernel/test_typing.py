"""A user's own mypy checks their guards and updates against the machine's state type.

`Machine[S]` and `Transition[S, I]` are generic, so a table row whose guard
takes another state type, or whose update returns one, is a type error in the
user's module -- found before any check runs. Each case writes a small user
module to a temporary directory and runs mypy on it in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

import statewright

pytestmark = pytest.mark.slow  # the first mypy run analyses statewright itself (3-4 s)

MODULE = '''\
from dataclasses import dataclass, replace
from enum import Enum

from statewright import Machine, Transition


class Phase(Enum):
    OPEN = 1
    DONE = 2


@dataclass(frozen=True, slots=True)
class Order:
    phase: Phase = Phase.OPEN
    items: int = 0


@dataclass(frozen=True, slots=True)
class Invoice:
    phase: Phase = Phase.OPEN
    total: int = 0


@dataclass(frozen=True, slots=True)
class Add:
    count: int


@dataclass(frozen=True, slots=True)
class Close:
    pass


def has_room(state: {guard_state}, event: Add) -> bool:
    return True


def add(state: Order, event: Add) -> {update_result}:
    return {update_body}


ORDER: Machine[Order] = Machine("order", initial=Order(), terminal={{Phase.DONE}}, transitions=[
    Transition(Phase.OPEN, Add, Phase.OPEN, guard=has_room, update=add),
    Transition(Phase.OPEN, Close, Phase.DONE, update=lambda s, i: replace(s, items=s.items)),
])
'''

CORRECT = {
    "guard_state": "Order", "update_result": "Order", "update_body": "replace(state, items=state.items + event.count)",
}
ROW_LINE = 1 + MODULE.splitlines().index("    Transition(Phase.OPEN, Add, Phase.OPEN, guard=has_room, update=add),")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module's runs: statewright itself is analysed once."""
    return tmp_path_factory.mktemp("mypy_cache")


def mypy_on(tmp_path: Path, cache: Path, **changes: str) -> list[str]:
    """The error lines mypy --strict reports for the user module with ``changes`` applied."""
    source = tmp_path / "orders.py"
    source.write_text(MODULE.format(**{**CORRECT, **changes}))
    config = tmp_path / "mypy.ini"
    root = Path(statewright.__file__).resolve().parent.parent
    # an editable checkout is invisible to mypy's import search; an installed wheel is found as it is
    path = f"mypy_path = {root}\n" if (root / "pyproject.toml").exists() else ""
    config.write_text(f"[mypy]\n{path}follow_imports = silent\n")
    out, err, _ = api.run(["--strict", "--config-file", str(config), "--cache-dir", str(cache),
                           "--no-error-summary", "--hide-error-context", str(source)])
    assert not err, err
    return [line for line in out.splitlines() if ": error:" in line]


def test_the_correct_module_is_clean(tmp_path: Path, cache: Path) -> None:
    assert mypy_on(tmp_path, cache) == []


@pytest.mark.parametrize(("change", "message"), [
    ({"guard_state": "Invoice"},
     'Argument "guard" to "Transition" has incompatible type "Callable[[Invoice, Add], bool]"'),
    ({"update_result": "Invoice", "update_body": "Invoice()"},
     'Argument "update" to "Transition" has incompatible type "Callable[[Order, Add], Invoice]"'),
], ids=["guard", "update"])
def test_a_row_with_the_wrong_state_type_is_a_type_error(
    tmp_path: Path, cache: Path, change: dict[str, str], message: str
) -> None:
    (error,) = mypy_on(tmp_path, cache, **change)
    assert error.startswith(f"{tmp_path / 'orders.py'}:{ROW_LINE}: error: {message}; expected "), error
    assert error.endswith("[arg-type]")
