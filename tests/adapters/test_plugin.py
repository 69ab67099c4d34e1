"""The pytest plugin: a project's specs collected as ``statewright::<spec>::check`` and ``::suite`` items."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from statewright.adapters.project.settings import find_project
from tests.adapters.test_cli_targets import ORDERS, write_orders

ROOT = Path(__file__).resolve().parents[2]

EXPLICIT = """\
import statewright
from orders import order_spec

TestOrder = statewright.suite(order_spec()).TestCase
"""


def pytest_in(folder: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *args],
                          cwd=folder, capture_output=True, text=True, timeout=300, env=env)
    return done.returncode, done.stdout + done.stderr


def shop(tmp_path: Path, table: str = 'specs = ["orders"]', ini: str = "") -> Path:
    write_orders(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "shop"\n\n[tool.statewright]\n{table}\nexamples = 20\n{ini}')
    return tmp_path


@pytest.mark.slow
def test_plain_pytest_collects_a_check_and_a_suite_per_spec(tmp_path: Path) -> None:
    folder = shop(tmp_path)
    (folder / "test_orders.py").write_text(EXPLICIT)
    code, out = pytest_in(folder)
    assert code == 0, out
    for node in ("statewright::order::check PASSED", "statewright::order::suite PASSED",
                 "statewright::shop::check PASSED", "statewright::shop::suite PASSED",
                 "test_orders.py::TestOrder::runTest PASSED"):
        assert node in out, out
    code, out = pytest_in(folder, "-k", "order and check")
    assert code == 0 and "statewright::order::check PASSED" in out and "shop" not in out.split("short test")[0]
    code, out = pytest_in(folder, "test_orders.py")  # a path that is not the project's folder: that file alone
    assert code == 0 and "statewright::" not in out and "1 passed" in out


@pytest.mark.slow
def test_a_violated_spec_fails_with_its_report_and_counterexample(tmp_path: Path) -> None:
    folder = shop(tmp_path)
    (folder / "orders.py").write_text(ORDERS.replace("lambda s: s.attempts <= s.max_attempts",
                                                     "lambda s: s.attempts < s.max_attempts"))
    code, out = pytest_in(folder, "-k", "order")
    assert code == 1
    assert "statewright::order::check FAILED" in out and "statewright::order::suite FAILED" in out
    assert "order: VIOLATED (stopped at the first violation) -- " in out
    assert "  FAIL bounded                      always               VIOLATED (3-state trace)" in out
    assert "step  input" in out and "Retry" in out
    assert "property 'bounded' violated" in out  # the suite's shrunk program, as Python to paste
    assert "from orders import order_spec\n" in out and "\nspec = order_spec()\nreplay(spec, [\n" in out
    assert "    Retry(),\n    Retry(),\n])\n" in out and "from orders_inputs import Retry\n" in out
    assert "seed 0: `statewright test order --examples 20 --seed 0` runs the same programs" in out


@pytest.mark.parametrize(
    ("args", "table", "ini"),
    [
        (["--no-statewright"], 'specs = ["orders"]', ""),
        (["-p", "no:statewright"], 'specs = ["orders"]', ""),
        ([], 'specs = ["orders"]', "\n[tool.pytest.ini_options]\nstatewright = false\n"),
        ([], 'specs = ["orders"]\npytest = false', ""),
    ],
)
def test_the_plugin_can_be_turned_off(tmp_path: Path, args: list[str], table: str, ini: str) -> None:
    code, out = pytest_in(shop(tmp_path, table, ini), *args)
    assert code == 5 and "statewright::" not in out, out  # 5: no tests ran


@pytest.mark.slow
def test_specs_that_cannot_be_loaded_fail_one_item_with_the_error(tmp_path: Path) -> None:
    folder = shop(tmp_path)
    (folder / "orders.py").write_text("import statewright\n\nundefined_name\n")
    code, out = pytest_in(folder)
    assert code == 1
    assert "statewright::load FAILED" in out
    assert "statewright: error: pyproject.toml: orders.py:3: NameError: name 'undefined_name' is not defined" in out


def test_this_repository_opts_out_so_its_suite_does_not_check_twice() -> None:
    project = find_project(ROOT)
    assert project is not None and project.root == ROOT
    assert project.specs == ("statewright.specs",) and project.pytest is False
