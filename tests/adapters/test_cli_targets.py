"""Specs from anywhere: files, modules, a project's ``[tool.statewright]``, entry points, bundled names."""

from __future__ import annotations

import io
import os
import sys
import textwrap
from pathlib import Path

import pytest

from statewright.adapters.cli import run

ORDERS = '''\
"""A user's order lifecycle, written against `statewright` alone."""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import statewright as sw
from statewright import Machine, Spec, Transition, always, sometimes

from orders_inputs import Cancel, Pay, Retry, Ship


class Phase(Enum):
    NEW = "new"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Order:
    phase: Phase = Phase.NEW
    attempts: int = 0
    max_attempts: int = 2


def can_retry(s: Order, i: Retry) -> bool:
    return s.attempts < s.max_attempts


def order_machine(max_attempts: int = 2) -> Machine[Order]:
    return Machine(
        "order",
        initial=Order(max_attempts=max_attempts),
        terminal={Phase.SHIPPED, Phase.CANCELLED},
        transitions=[
            Transition(Phase.NEW, Pay, Phase.PAID),
            Transition(Phase.NEW, Retry, Phase.NEW, guard=can_retry,
                       update=lambda s, i: replace(s, attempts=s.attempts + 1)),
            Transition(Phase.PAID, Ship, Phase.SHIPPED),
            Transition((Phase.NEW, Phase.PAID), Cancel, Phase.CANCELLED),
        ],
    )


def order_spec(max_attempts: int = 2) -> Spec:
    """Orders ship only once paid; retries stay bounded."""
    return Spec("order", order_machine(max_attempts), [Pay(), Ship(), Cancel(), Retry()],
                [always("bounded", lambda s: s.attempts <= s.max_attempts),
                 sometimes("shipped", lambda s: s.phase is Phase.SHIPPED)])


def shop_spec() -> "sw.Spec":
    """A shop that never retries (its witness `retried` cannot be found)."""
    return Spec("shop", order_machine(1), [Pay(), Ship(), Cancel()],
                [sometimes("retried", lambda s: s.attempts > 0)], expect={"retried"})


ORDER = order_spec()          # the default build of order_spec: not a second spec


def never_called(x):          # no `-> Spec`: a file's discovery never calls it
    raise RuntimeError("called!")


def also_never_called() -> int:
    raise RuntimeError("called!")
'''

INPUTS = '''\
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pay: ...


@dataclass(frozen=True, slots=True)
class Ship: ...


@dataclass(frozen=True, slots=True)
class Cancel: ...


@dataclass(frozen=True, slots=True)
class Retry: ...
'''


def write_orders(folder: Path, name: str = "orders.py") -> Path:
    """A user's ``orders.py`` (and the ``orders_inputs.py`` it imports) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orders_inputs.py").write_text(INPUTS)
    path = folder / name
    path.write_text(ORDERS)
    return path


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user folder (no project around it) as the current directory, holding orders.py."""
    monkeypatch.chdir(tmp_path)
    write_orders(tmp_path)
    return tmp_path


def summaries(out: str) -> list[str]:
    return [line.split(" -- ")[0] for line in out.splitlines() if " -- " in line and not line.startswith(" ")]


def test_a_file_offers_its_specs_and_builders(user: Path) -> None:
    code, out, err = cli("check", "orders.py")
    assert code == 0, err
    assert summaries(out) == ["order: OK", "shop: OK"]
    assert "order: OK -- 12 distinct states, 14 generated, depth 5" in out
    assert "retried                      sometimes            no witness, as expected" in out
    assert out.splitlines()[-1] == "2 specs: 1 ok, 1 violated as expected, 0 failed"


def test_one_attribute_of_a_file_and_its_knobs(user: Path) -> None:
    code, out, _ = cli("check", "orders.py:order_spec", "--set", "max_attempts=3", "--quiet")
    assert code == 0
    assert out.splitlines()[0].startswith("order: OK -- 16 distinct states, 19 generated, depth 6")
    code, out, _ = cli("check", "orders.py:ORDER", "--quiet")
    assert code == 0 and out.startswith("order: OK -- 12 distinct states")
    code, _, err = cli("check", "orders.py:ORDER", "--set", "max_attempts=3")
    assert code == 2 and "spec 'order' has no parameter 'max_attempts'; its parameters: none" in err


def test_a_module_and_module_attributes(user: Path) -> None:
    code, out, _ = cli("check", "orders", "--quiet")
    assert code == 0 and summaries(out) == ["order: OK", "shop: OK"]
    code, out, _ = cli("check", "orders:shop_spec", "--quiet")
    assert code == 0 and summaries(out) == ["shop: OK"]
    (user / "myapp").mkdir()
    (user / "myapp" / "__init__.py").write_text("")
    write_orders(user / "myapp", "lifecycles.py")
    (user / "myapp" / "lifecycles.py").write_text(ORDERS.replace("from orders_inputs", "from myapp.orders_inputs"))
    code, out, err = cli("check", "myapp.lifecycles:order_spec", "--set", "max_attempts=1", "--quiet")
    assert code == 0, err
    assert out.startswith("order: OK -- 8 distinct states")


def test_the_other_commands_take_targets(user: Path) -> None:
    code, out, err = cli("diagram", "orders.py:shop_spec", "--format", "mmd", "--out", "out")
    assert code == 0, err
    assert out == "wrote out/order.mmd\n" and (user / "out" / "order.mmd").read_text().startswith("stateDiagram")
    code, out, _ = cli("test", "orders.py:order_spec", "--examples", "10", "--seed", "1")
    assert code == 0 and out.startswith("order: passed")
    code, out, _ = cli("mutate", "orders.py")
    assert code == 0 and "order/order: " in out and "shop/order: " in out
    code, out, _ = cli("list", "orders.py")
    assert code == 0
    assert "  order                Orders ship only once paid; retries stay bounded.  [max_attempts=2]  " \
           "(from orders.py:order_spec)" in out
    assert "(from orders.py:shop_spec)" in out and "  order                4 phases, 4 transitions" in out


def test_loading_twice_reads_the_files_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n, attempts in ((1, 1), (2, 3)):
        folder = tmp_path / f"p{n}"
        write_orders(folder)
        (folder / "orders.py").write_text(ORDERS.replace("max_attempts: int = 2", f"max_attempts: int = {attempts}"))
        monkeypatch.chdir(folder)
        before = set(sys.modules)
        code, out, _ = cli("check", "orders.py:ORDER", "--quiet")
        assert code == 0
        assert out.startswith(f"order: OK -- {4 * attempts + 4} distinct states")
        left = {m for m in set(sys.modules) - before if not m.startswith(("statewright", "hypothesis"))}
        assert not {m for m in left if "orders" in m}, left
        assert str(folder) not in sys.path


def test_import_errors_name_the_file_and_line(user: Path) -> None:
    (user / "bad.py").write_text("import statewright\n\nx = 1\nundefined_name + 1\n")
    code, _, err = cli("check", "bad.py")
    assert code == 2 and err == "statewright: error: bad.py:4: NameError: name 'undefined_name' is not defined\n"
    (user / "syntax.py").write_text("def f(:\n    pass\n")
    code, _, err = cli("check", "syntax.py")
    assert code == 2 and err.startswith("statewright: error: syntax.py:1: SyntaxError: ") and err.count("\n") == 1
    (user / "helper.py").write_text("VALUE = 1 / 0\n")
    (user / "uses_helper.py").write_text("import helper\n")
    code, _, err = cli("check", "uses_helper.py")
    assert code == 2 and err == "statewright: error: helper.py:1: ZeroDivisionError: division by zero\n"
    code, _, err = cli("check", "bad.py", "--traceback")
    assert code == 2 and "Traceback (most recent call last)" in err and 'bad.py", line 4' in err


def test_a_failing_builder_names_its_line(user: Path) -> None:
    (user / "broken.py").write_text(textwrap.dedent('''\
        from statewright import Spec


        def broken_spec(n: int = 1) -> Spec:
            return {}["missing"]
    '''))
    code, _, err = cli("check", "broken.py")
    assert code == 2
    assert err == "statewright: error: broken.py:5: KeyError: 'missing' (in broken.py:broken_spec)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "ordres.py"], "no file ordres.py (did you mean orders.py?)"),
        (["check", "orders.py:order_spce"], "orders.py has no attribute 'order_spce' (did you mean 'order_spec'?)"),
        (["check", "orders.py:never_called"], "parameter 'x' needs a default"),
        (["check", "orders.py:also_never_called"], "RuntimeError: called! (in orders.py:also_never_called)"),
        (["check", "orders.py:Phase"], "orders.py:Phase is a class, not a Spec, a spec builder or a Registry"),
        (["check", "diehrad"], "unknown spec 'diehrad' (did you mean 'diehard'?); known specs: "),
        (["check", "no.such.module"], "no module named 'no.such.module'"),
        (["check", "orders_inputs.py"], "orders_inputs.py: no specs found"),
        (["check", "./"], "is a folder; name a .py file, or a module"),
        (["check", "."], "'.' is neither a spec name, a .py file nor a module"),
    ],
)
def test_target_mistakes_are_one_line(user: Path, argv: list[str], message: str) -> None:
    code, _, err = cli(*argv)
    assert code == 2, err
    assert err.startswith("statewright: error: ") and message in err and err.count("\n") == 1


def test_a_folder_whose_name_holds_colons_can_be_named(user: Path) -> None:
    """Issue 17, item 22: ``dir:with:colons/spec.py`` read as the file ``dir:with`` and the attribute after it.

    A colon starts an attribute only where what follows is one (a dotted name,
    not a path nor a ``.py`` file) and the whole is no file or folder there.
    """
    write_orders(user / "dir:with:colons")
    write_orders(user / "dir:x")
    code, out, err = cli("check", "dir:with:colons/orders.py", "--quiet")
    assert code == 0, err
    assert summaries(out) == ["order: OK", "shop: OK"]
    code, out, err = cli("check", "dir:x/orders.py:order_spec", "--quiet")
    assert code == 0, err
    assert summaries(out) == ["order: OK"]
    code, out, err = cli("list", "dir:x/orders.py:shop_spec")
    assert code == 0, err
    assert "(from dir:x/orders.py:shop_spec)" in out
    code, out, err = cli("check", f"{user}/dir:with:colons/orders.py:order_spec", "--quiet")
    assert code == 0 and summaries(out) == ["order: OK"], err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no:such/orders.py", "no file no:such/orders.py"),
        ("dir:x/ordres.py", "no file dir:x/ordres.py (did you mean dir:x/orders.py?)"),
        ("dir:x/orders.py:order_spce", "dir:x/orders.py has no attribute 'order_spce' (did you mean 'order_spec'?)"),
        ("dir:x", "dir:x is a folder; name a .py file, or a module"),
        ("dir:orders.py", "no file dir:orders.py (did you mean orders.py?)"),  # a file, not module dir's 'orders.py'
        ("no:such", "no module named 'no'"),  # module no, attribute such
    ],
)
def test_colons_in_paths_make_clear_mistakes(user: Path, target: str, message: str) -> None:
    write_orders(user / "dir:x")
    code, _, err = cli("check", target)
    assert code == 2, err
    assert err == f"statewright: error: {message}\n"


def test_two_targets_with_one_spec_name_clash(user: Path) -> None:
    write_orders(user, "other.py")
    code, _, err = cli("check", "orders.py:order_spec", "other.py:order_spec")
    assert code == 2
    assert err == "statewright: error: two specs are called 'order': orders.py:order_spec and other.py:order_spec\n"
    code, out, _ = cli("check", "orders.py:order_spec", "orders.py:order_spec", "--quiet")
    assert code == 0 and summaries(out) == ["order: OK"]


def project(folder: Path, body: str) -> None:
    (folder / "pyproject.toml").write_text(f'[project]\nname = "shop"\n\n[tool.statewright]\n{body}\n')


def test_check_all_in_a_project_checks_exactly_its_specs(user: Path) -> None:
    project(user, 'specs = ["orders"]')
    (user / "sub").mkdir()
    for where in (user, user / "sub"):  # found by walking up
        os.chdir(where)
        code, out, err = cli("check", "--all", "--quiet")
        assert code == 0, err
        assert summaries(out) == ["order: OK", "shop: OK"]
    code, out, _ = cli("check", "order", "--quiet")  # project names are names
    assert code == 0 and summaries(out) == ["order: OK"]
    code, out, _ = cli("check", "diehard", "--quiet")  # bundled names stay reachable
    assert code == 0 and summaries(out) == ["diehard: OK"]
    code, out, _ = cli("list")
    assert "(from orders:order_spec)" in out and "diehard" not in out
    code, out, _ = cli("diagram", "--all", "--format", "mmd", "--out", "d")  # the project's machines alone
    assert code == 0 and out == "wrote d/order.mmd\n"


def test_project_files_are_relative_to_the_pyproject(user: Path) -> None:
    (user / "lifecycles").mkdir()
    write_orders(user / "lifecycles")
    project(user, 'specs = ["lifecycles/orders.py:shop_spec"]')
    (user / "deep").mkdir()
    os.chdir(user / "deep")
    code, out, err = cli("check", "--all", "--quiet")
    assert code == 0, err
    assert summaries(out) == ["shop: OK"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('spec = ["orders"]', "unknown key 'spec' (did you mean 'specs'?)"),
        ('specs = "orders"', "specs must be a list of module names or file paths"),
        ('specs = ["nowhere"]', "pyproject.toml: no module named 'nowhere'"),
        ("specs = []", "lists no specs"),
        ('specs = ["orders", "again"]', "two specs are called 'order': orders:order_spec and again:order_spec"),
    ],
)
def test_project_config_mistakes(user: Path, body: str, message: str) -> None:
    write_orders(user, "again.py")
    project(user, body)
    code, _, err = cli("check", "--all")
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_installed_packages_publish_specs_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write_orders(site, "acme_orders.py")
    info = site / "acme_orders-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-orders\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[statewright.specs]\nacme = acme_orders:order_spec\n")
    monkeypatch.syspath_prepend(str(site))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        code, out, err = cli("check", "order", "--set", "max_attempts=3", "--quiet")
        assert code == 0, err
        assert out.startswith("order: OK -- 16 distinct states")
        code, out, _ = cli("list")
        assert "(from entry point 'acme' of acme-orders: acme_orders:order_spec)" in out and "diehard" in out
    finally:  # an installed package's modules stay imported; this one was installed for this test only
        for name in ("acme_orders", "orders_inputs"):
            sys.modules.pop(name, None)
