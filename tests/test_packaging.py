"""What gets installed: one top-level package, `statewright`, beside users' own `kernel`, `adapters`, ...

Users' projects very often have packages called ``adapters`` or ``specs``; the
wheel claims only ``statewright``, and the command line works from a
directory holding packages (or a ``specs.py``) with the layers' names.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

LAYERS = ("kernel", "machines", "specs", "adapters")
CHECK_SCRIPT = """
import adapters, kernel, machines, specs
import statewright
from statewright.specs import REGISTRY
import statewright.kernel, statewright.adapters.cli
assert [m.OWNER for m in (adapters, kernel, machines, specs)] == ["user"] * 4
assert not hasattr(statewright.kernel, "OWNER") and statewright.kernel.Machine is statewright.Machine
print(len(REGISTRY.names), kernel.__file__.endswith("kernel/__init__.py"))
"""


def user_packages(root: Path) -> None:
    """A user's directory holding packages named like statewright's layers, and a ``specs.py``-free script."""
    for name in LAYERS:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text('OWNER = "user"\n')
    (root / "coexist.py").write_text(CHECK_SCRIPT)


@pytest.mark.slow
def test_the_wheel_holds_only_statewright(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"statewright"}
    for layer in LAYERS:
        assert f"statewright/{layer}/__init__.py" in names
    assert "statewright/adapters/runtime/sqlite.py" in names and "statewright/py.typed" in names


def test_user_packages_and_statewright_side_by_side(tmp_path: Path) -> None:
    user_packages(tmp_path)
    done = subprocess.run([sys.executable, "coexist.py"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    count, own = done.stdout.split()
    assert int(count) >= 14 and own == "True"


@pytest.mark.parametrize("user_file", ["specs.py", "kernel.py", "adapters.py"])
def test_a_user_module_named_like_a_layer_does_not_break_the_command(tmp_path: Path, user_file: str) -> None:
    (tmp_path / user_file).write_text("raise SystemExit('the user module was imported by statewright')\n")
    done = subprocess.run([sys.executable, "-m", "statewright", "check", "diehard", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("diehard: OK")


def test_import_statewright_stays_light() -> None:
    probe = ("import sys, statewright; print(sorted(m for m in ('hypothesis', 'aiosqlite', 'transitions', 'pytest', "
             "'asyncpg', 'numpy', 'multiprocessing', 'networkx', 'pydantic')"
             " if m in sys.modules)); statewright.SqliteStore; print('aiosqlite' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_every_package_of_the_tree_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages by name: a new subpackage left out installs without its modules
    (the wheel once lacked ``statewright.machines.pipeline``, found only by the walk-through with the wheel)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"statewright"}
    for layer in ("kernel", "machines", "specs", "adapters"):
        for init in (root / layer).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(("statewright", *init.parent.relative_to(root).parts)))
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
