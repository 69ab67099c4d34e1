"""`statewright inspect` on anyone's store: records decoded through the machines of the loaded specs."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path

import pytest

from statewright.adapters.cli import run
from statewright.adapters.cli.targets import Loader
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Catalog
from statewright.specs.registry import machines_of
from tests.adapters.test_cli_targets import ORDERS, write_orders


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_store(db: Path, target: str) -> None:
    """Two orders (one paid) of the user's machine, written through the store."""
    with Loader() as loader:
        spec = loader.resolve(target)[0].spec()
        machine = machines_of(spec)[0]
        paid = spec.model.initial.__class__(phase=next(p for p in machine.phases if p.name == "PAID"))

        async def write() -> None:
            async with await SqliteStore.open(db, Catalog({machine.name: machine})) as store:
                await store.cas("order-42", 0, paid, machine=machine.name)
                await store.append("order-42", 0, [("input", {"type": "Pay"})])
                await store.cas("order-43", 0, machine.initial, machine=machine.name)

        asyncio.run(write())


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_orders(tmp_path)
    write_store(tmp_path / "shop.db", "orders.py:order_spec")
    return tmp_path


def test_records_of_a_machine_nobody_loaded_are_unknown_not_corrupt(shop: Path) -> None:
    code, out, _ = cli("inspect", "shop.db")
    assert code == 0
    assert out.splitlines() == [
        "order-42: unknown machine 'order': load its spec with --spec",
        '    1 input      {"type": "Pay"}',
        "order-43: unknown machine 'order': load its spec with --spec",
    ]
    assert "CORRUPT" not in out


def test_spec_decodes_through_the_users_machines(shop: Path) -> None:
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py:order_spec")
    assert code == 0, err
    assert out.splitlines() == [
        "order-42: order PAID (version 1)",
        '    1 input      {"type": "Pay"}',
        "order-43: order NEW (version 1)",
    ]
    code, out, _ = cli("inspect", "shop.db", "--spec", "orders.py", "--key", "order-43")
    assert code == 0 and out == "order-43: order NEW (version 1)\n"


def test_in_a_project_the_projects_machines_are_used(shop: Path) -> None:
    (shop / "pyproject.toml").write_text('[tool.statewright]\nspecs = ["orders.py"]\n')
    code, out, _ = cli("inspect", "shop.db")
    assert code == 0 and out.splitlines()[0] == "order-42: order PAID (version 1)"


def test_a_users_machine_named_like_a_bundled_one_is_not_decoded_by_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_orders(tmp_path)
    (tmp_path / "orders.py").write_text(ORDERS.replace('"order",', '"run",'))
    write_store(tmp_path / "runs.db", "orders.py:order_spec")
    code, out, _ = cli("inspect", "runs.db")  # the bundled `run` machine has another state type
    assert code == 1 and "order-42: CORRUPT" in out
    code, out, _ = cli("inspect", "runs.db", "--spec", "orders.py")
    assert code == 0 and out.splitlines()[0] == "order-42: run PAID (version 1)"


def test_what_is_not_a_store_is_a_one_line_error_and_stays_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notadb.db").write_text("hello, I am text\n")
    with sqlite3.connect(tmp_path / "other.db") as raw:
        raw.execute("CREATE TABLE people (name TEXT)")
    raw.close()
    before = (tmp_path / "other.db").read_bytes()
    for argv, message in [
        (["inspect", "notadb.db"], "notadb.db is not a SQLite database"),
        (["inspect", "other.db"], "other.db is a SQLite database but not a statewright store"),
        (["inspect", "missing.db"], "no database at missing.db"),
        (["inspect", "."], "no database at ."),
    ]:
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err.startswith("statewright: error: ") and message in err, err
        assert err.count("\n") == 1 and "internal error" not in err
    assert (tmp_path / "other.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notadb.db", "other.db"]
