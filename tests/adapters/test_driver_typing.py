"""The driver's natural pattern type-checks: test ``accepted``, then read the rejection (or what blocked).

`Driver.feed` returns `FedAccepted | FedRejected` and `Driver.act`
`ActedAccepted | ActedBlocked`, each with a literal ``accepted``, so a user's
``"accepted" if fed.accepted else fed.rejection.message`` passes
``mypy --strict`` (it used to fail with ``Item "None" of "Rejected | None"
has no attribute "message"``). Each case writes a small user module to a
temporary directory, runs mypy on it in-process, and the clean one is also
run, so the snippet is real code with real output.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from mypy import api

import statewright

pytestmark = pytest.mark.slow  # mypy analyses statewright once per run: about 5 s

MODULE = '''\
import asyncio

from statewright import Action, Catalog, Driver, MemoryStore, System
from statewright.machines.input import INPUT, Apply, Queue, Stage, authorize_seed
from statewright.machines.session import AcceptInput, AttachExecutor, StartRun
from statewright.specs.session import session_inputs


async def main() -> None:
    driver = Driver(MemoryStore(Catalog({{"input": INPUT}}, {{"input": authorize_seed}})))
    await driver.create("in1", "input")
    for command in (Queue(), Apply("r1"), Stage("r1")):
        fed = await driver.feed("in1", command)
        print(type(command).__name__, {fed})

    system = session_inputs().model
    assert isinstance(system, System)
    catalog = Catalog({{"session": system.instances["session"], "input": INPUT}}, {{"input": authorize_seed}})
    driver = Driver(MemoryStore(catalog))
    keys = {{name: name for name in system.names}}
    await driver.create_all(system, keys)
    for request in (AttachExecutor(), StartRun("r1", "in1"), AcceptInput("in1")):
        acted = await driver.act(system, keys, Action("session", request))
        print(type(request).__name__, {acted})


asyncio.run(main())
'''

NARROWED = {
    "fed": '"accepted" if fed.accepted else f"rejected: {fed.rejection.message}"',
    "acted": '"accepted" if acted.accepted else f"blocked at {acted.blocked.instance}"',
}
UNTESTED = {
    "fed": 'f"rejected: {fed.rejection.message}"',
    "acted": 'f"blocked at {acted.blocked.instance}"',
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module's runs: statewright itself is analysed once."""
    return tmp_path_factory.mktemp("mypy_cache")


def mypy_on(source: Path, cache: Path) -> list[str]:
    """The error lines ``mypy --strict`` reports for ``source``, each as ``line: message``."""
    config = source.parent / "mypy.ini"
    root = Path(statewright.__file__).resolve().parent.parent
    # an editable checkout is invisible to mypy's import search; an installed wheel is found as it is
    path = f"mypy_path = {root}\n" if (root / "pyproject.toml").exists() else ""
    config.write_text(f"[mypy]\n{path}follow_imports = silent\n")
    out, err, _ = api.run(["--strict", "--config-file", str(config), "--cache-dir", str(cache),
                           "--no-error-summary", "--hide-error-context", str(source)])
    assert not err, err
    prefix = f"{source}:"
    return [line.removeprefix(prefix) for line in out.splitlines() if ": error:" in line]


def write(tmp_path: Path, lines: dict[str, str]) -> Path:
    source = tmp_path / "drive.py"
    source.write_text(MODULE.format(**lines))
    return source


def test_testing_accepted_narrows_the_result_so_the_pattern_type_checks_and_runs(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, NARROWED)
    assert mypy_on(source, cache) == []
    runpy.run_path(str(source), run_name="__main__")
    assert capsys.readouterr().out.splitlines() == [
        "Queue accepted",
        "Apply rejected: can't take Apply in QUEUED: no transition",
        "Stage accepted",
        "AttachExecutor accepted",
        "StartRun blocked at session",
        "AcceptInput accepted",
    ]


def test_reading_the_rejection_without_testing_accepted_is_still_a_type_error(tmp_path: Path, cache: Path) -> None:
    """The narrowing is real: where nothing was tested the rejection may be None, and mypy says so."""
    source = write(tmp_path, UNTESTED)
    feed_line = 1 + MODULE.splitlines().index("        print(type(command).__name__, {fed})")
    act_line = 1 + MODULE.splitlines().index("        print(type(request).__name__, {acted})")
    assert mypy_on(source, cache) == [
        f'{feed_line}: error: Item "None" of "Rejected | None" has no attribute "message"  [union-attr]',
        f'{act_line}: error: Item "None" of "Blocked | None" has no attribute "instance"  [union-attr]',
    ]
