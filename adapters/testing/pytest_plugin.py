"""A pytest plugin: a project's specs become test items (entry point ``pytest11``, name ``statewright``).

In a project whose pyproject.toml has ``[tool.statewright] specs = [...]``, a
plain ``pytest`` collects two items per spec::

    statewright::order::check    the model check; fails with the report and its counterexample table
    statewright::order::suite    the generated hypothesis suite; fails with the shrunk program as
                                 Python to paste, and the ``statewright test`` line that reruns it

They are added when pytest runs without paths (or with a path holding the
project's folder), so ``pytest tests/test_x.py`` runs that file alone. Turn the
plugin off with ``[tool.statewright] pytest = false`` (this repository does:
its own suite checks the bundled specs already), the ini option
``statewright = false``, ``--no-statewright``, or ``-p no:statewright``.
``[tool.statewright] examples = N`` sets the programs per suite (default 100).

The explicit form needs no plugin, one line in a test module::

    TestOrder = statewright.suite(order_spec()).TestCase
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.project.settings import Project, find_project

__all__ = ["SpecFailed", "pytest_addoption", "pytest_collection_modifyitems", "pytest_unconfigure"]

_LOADER = pytest.StashKey[Any]()


class SpecFailed(AssertionError):
    """A spec's check or suite failed; the message is the text to show."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("statewright")
    group.addoption("--no-statewright", action="store_true", default=False,
                    help="do not collect the statewright specs of the project")
    parser.addini("statewright", type="bool", default=True,
                  help="collect a check and a suite item per spec of [tool.statewright] (default: true)")


def _project(config: pytest.Config) -> Project | None:
    if config.getoption("no_statewright") or not config.getini("statewright"):
        return None
    from statewright.adapters.project.errors import UsageError

    try:
        project = find_project(Path(config.invocation_params.dir))
    except UsageError:
        return None  # a broken pyproject.toml is reported by the command, not by every pytest run
    if project is None or not project.pytest or not project.specs:
        return None
    if config.args_source is pytest.Config.ArgsSource.ARGS and not _covers(config.args, project.root, config):
        return None
    return project


def _covers(args: Iterable[str], root: Path, config: pytest.Config) -> bool:
    """Whether a path given on the command line holds the project's folder."""
    for arg in args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == root or path in root.parents or path == root / "pyproject.toml":
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the project's spec items before keyword and mark selection see the list."""
    project = _project(config)
    if project is None:
        return
    from statewright.adapters.project.targets import Loader

    loader = Loader(Path(config.invocation_params.dir), project)
    config.stash[_LOADER] = loader
    root = Specs.from_parent(session, name="statewright", nodeid="statewright", path=project.pyproject,
                             project=project, loader=loader)
    for node in root.collect():
        if isinstance(node, pytest.Item):
            items.append(node)
        else:
            items.extend(n for n in node.collect() if isinstance(n, pytest.Item))


def pytest_unconfigure(config: pytest.Config) -> None:
    loader = config.stash.get(_LOADER, None)
    if loader is not None:
        loader.close()


def _explain(exc: BaseException) -> str:
    """A statewright error as the command prints it: one line, then the trace that led there."""
    text = f"statewright: error: {exc}"
    trace = getattr(exc, "trace", None)
    if trace:
        from statewright.kernel.checker.text import render_trace

        text += "\nreached by:\n" + render_trace(trace)
    return text


class Specs(pytest.Collector):
    """The project's specs: one `SpecNode` each, or one failing item when they cannot be loaded."""

    def __init__(self, *, project: Project, loader: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.loader = loader

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        from statewright.adapters.project.errors import UsageError
        from statewright.kernel.errors import DefinitionError

        try:
            targets = self.loader.default_set()
        except (UsageError, DefinitionError) as exc:
            return [LoadFailed.from_parent(self, name="load", message=_explain(exc))]
        return [SpecNode.from_parent(self, name=t.name, target=t) for t in targets]


class SpecNode(pytest.Collector):
    """One spec: its ``check`` and ``suite`` items."""

    def __init__(self, *, target: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return [SpecItem.from_parent(self, name=kind, target=self.target, kind=kind) for kind in ("check", "suite")]


class SpecItem(pytest.Item):
    """The model check (``check``) or the generated suite (``suite``) of one spec."""

    def __init__(self, *, target: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.kind = kind

    def runtest(self) -> None:
        spec = self.target.spec()
        if self.kind == "check":
            from statewright.kernel.checker.text import render_report
            from statewright.kernel.checker import check

            report = check(spec, clock=time.perf_counter)
            if not report.ok:
                raise SpecFailed(render_report(report))
            return
        from statewright.adapters.testing.stateful import DEFAULT_SEED, run_suite

        project: Project = self.parent.parent.project  # type: ignore[union-attr]
        rerun = shlex.join(["statewright", "test", self.target.name, "--examples", str(project.examples),
                            "--seed", str(DEFAULT_SEED)])
        result = run_suite(spec, examples=project.examples, spec_code=self.target.spec_code(), rerun=rerun)
        if not result.passed:
            raise SpecFailed(f"{spec.name}: the generated suite failed\n{result.failure or ''}".rstrip())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        from statewright.adapters.project.errors import UsageError
        from statewright.kernel.errors import DefinitionError

        if isinstance(excinfo.value, SpecFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, (UsageError, DefinitionError)):
            return _explain(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"statewright {self.target.name} {self.kind} ({self.target.origin})"


class LoadFailed(pytest.Item):
    """Stands for specs that could not be loaded (an error in the user's file): fails with the one-line error."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise SpecFailed(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        return self.message

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, "statewright: loading the project's specs"
