"""Which specs a command means: bundled names, files, modules, the project, installed packages.

A TARGET on the command line is one of

=============================  ================================================
``diehard``                    a name: the project's specs and those installed
                               packages publish come first, then the bundled
                               ones; a bare word that is no spec name but a
                               module beside you (``orders`` for ``orders.py``)
                               is that module
``orders.py``                  every spec in a file (a path ending in ``.py``
                               or holding a ``/``)
``orders.py:order_spec``       one attribute of a file
``myapp.lifecycles``           every spec in a module (dotted, importable from
                               the current directory or the installed packages)
``myapp.lifecycles:ORDER``     one attribute of a module
=============================  ================================================

A folder or file may have colons in its name (``dir:with:colons/spec.py``,
``dir:x/spec.py:name``): a colon starts an attribute only where a (dotted)
name follows the last one and the whole is no file or folder (`_split`).

What a file or module offers, and the `Target` each spec becomes, are
`adapters.project.discovery`'s rules: its Spec objects, its functions annotated
``-> Spec`` whose parameters all have defaults, and its Registry entries.

Files are imported under a unique module name with their folder first on
``sys.path`` (so ``import orders_machines`` beside them works); modules are
imported from the current directory (the project's folder for the project's
own). Modules imported from those folders are forgotten again when the
`Loader` closes, so a second load reads the files afresh. Errors raised while
importing or building are `UsageError`s naming the user's file and line. A
file is imported as a top-level module: a module of a package that uses
relative imports is named as a module (``myapp.lifecycles``) instead.

Installed packages publish specs through the ``statewright.specs`` entry-point
group; each entry point names a module or ``module:attr`` target.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import itertools
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from statewright.adapters.project.discovery import (
    BUNDLED,
    Target,
    attribute_of,
    by_name,
    from_entry,
    targets_of,
    unique,
)
from statewright.adapters.project.errors import UsageError, describe, shown_path, user_location
from statewright.adapters.project.settings import Project, find_project
from statewright.adapters.project.source import user_module_name
from statewright.kernel.machine import Machine
from statewright.specs.registry import machines_of

__all__ = ["ENTRY_POINTS", "Loader", "Target", "UnknownName", "machines_of"]

ENTRY_POINTS = "statewright.specs"

_COUNTER = itertools.count(1)
_NOT_USERS = tuple(
    str(Path(p).resolve())
    for p in {sys.prefix, sys.base_prefix, *(sysconfig.get_paths().get(k) or "" for k in ("purelib", "platlib"))}
    if p
)


class UnknownName(UsageError):
    """A bare name that is no spec (the diagram command then tries machine names)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class _Imported:
    """What one import added: folders on sys.path and user modules in sys.modules."""

    paths: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)


class Loader:
    """Loads targets for one command (or one pytest session); close it to forget the user's modules.

    >>> with Loader() as loader:
    ...     [t.name for t in loader.resolve("diehard")]
    ['diehard']
    """

    def __init__(self, cwd: Path | None = None, project: Project | None = None, *, find: bool = True) -> None:
        self.cwd = (cwd or Path.cwd()).resolve()
        self._project = project
        self._find = find and project is None
        self._imported = _Imported()
        self._files: dict[tuple[Path, str | None], list[Target]] = {}
        self._modules: dict[tuple[str, Path, str], list[Target]] = {}
        self._pool: dict[str, Target] | None = None
        self._bundled: dict[str, Target] | None = None

    # -- lifetime ---------------------------------------------------------------

    def __enter__(self) -> Loader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Take the folders this loader put on sys.path off again and forget the modules imported from them."""
        for name in self._imported.modules:
            sys.modules.pop(name, None)
        for path in self._imported.paths:
            try:
                sys.path.remove(path)
            except ValueError:
                pass
        self._imported = _Imported()

    @property
    def project(self) -> Project | None:
        """The project around the current directory (None outside one)."""
        if self._find:
            self._project = find_project(self.cwd)
            self._find = False
        return self._project

    # -- what names mean ----------------------------------------------------------

    def bundled(self) -> dict[str, Target]:
        """The specs shipped with statewright, by name."""
        if self._bundled is None:
            from statewright.specs import REGISTRY

            self._bundled = {e.name: from_entry(e, BUNDLED) for e in REGISTRY.entries.values()}
        return self._bundled

    def project_targets(self) -> list[Target]:
        """The specs the project's ``[tool.statewright] specs`` lists (empty outside a project)."""
        project = self.project
        if project is None:
            return []
        out: list[Target] = []
        for text in project.specs:
            out += self.resolve(text, base=project.root, where=f"{shown_path(project.pyproject)}: ", names=False)
        return unique(out)

    def installed_targets(self) -> list[Target]:
        """The specs installed packages publish through the ``statewright.specs`` entry points."""
        out: list[Target] = []
        for ep in _entry_points():
            dist = getattr(getattr(ep, "dist", None), "name", None)
            label = f"entry point {ep.name!r}" + (f" of {dist}" if dist else "")
            out += self._module_target(ep.value, self.cwd, label + ": ", prefix=f"{label}: ")
        return unique(out)

    def pool(self) -> dict[str, Target]:
        """Names that come before the bundled ones: the project's specs and installed ones."""
        if self._pool is None:
            self._pool = by_name([*self.project_targets(), *self.installed_targets()])
        return self._pool

    def known(self) -> list[str]:
        return list(dict.fromkeys([*self.pool(), *self.bundled()]))

    def default_set(self) -> list[Target]:
        """What ``--all`` means: the project's specs in a project, else the bundled and installed ones."""
        if self.project is not None:
            targets = self.project_targets()
            if not targets:
                raise UsageError(f"{shown_path(self.project.pyproject)}: [tool.statewright] lists no specs")
            return targets
        return unique([*self.bundled().values(), *self.installed_targets()])

    def select(self, names: Sequence[str], everything: bool) -> list[Target]:
        """The targets of a command line: ``--all`` first, then each name; clashing names are an error."""
        out = self.default_set() if everything else []
        for text in names:
            out += self.resolve(text)
        targets = unique(out)
        by_name(targets)
        return targets

    def resolve(self, text: str, *, base: Path | None = None, where: str = "", names: bool = True) -> list[Target]:
        """The targets one TARGET string stands for (see the module docstring).

        ``names=False`` (a project's own list): a bare word is a module, never a spec name.
        """
        base = base or self.cwd
        text = text.strip()
        left, sep, attribute = _split(text, base)
        if left.endswith(".py") or "/" in left or "\\" in left or (":" in left and not sep):
            return self._file_target(base / left, attribute, where)
        if sep or "." in left or not names:
            return self._module_target(text, base, where)
        found = self.pool().get(left) or self.bundled().get(left)
        if found is not None:
            return [found]
        if self._local_module(left, base):
            return self._module_target(left, base, where)
        raise self._unknown(left, where)

    def machines(self, *, bundled: bool = True) -> dict[str, Machine[Any]]:
        """Machines by name: those of the default set's specs, then the bundled library's.

        ``bundled=False`` leaves the library's out inside a project (what ``diagram --all`` draws there).
        """
        from statewright.specs import REGISTRY

        out: dict[str, Machine[Any]] = {}
        for target in self.default_set():
            for m in machines_of(target.spec()):
                out.setdefault(m.name, m)
        if bundled or self.project is None:
            for name, m in REGISTRY.machines.items():
                out.setdefault(name, m)
        return out

    # -- loading ----------------------------------------------------------------

    def _unknown(self, name: str, where: str) -> UnknownName:
        known = self.known()
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return UnknownName(
            f"{where}unknown spec {name!r}{hint}; known specs: {', '.join(known) or 'none'}; "
            "or name a file (orders.py[:attr]) or a module (myapp.specs[:attr])",
            name,
        )

    def attribute(self, text: str, *, base: Path | None = None, where: str = "") -> tuple[Any, str]:
        """The object one ``file.py:NAME`` or ``module:NAME`` target names, imported as spec files are; and its label.

        For what is not a spec (``statewright run``'s programs and operations):
        the same rules for files, modules and colons, the same errors naming
        the user's file and line, and the module is forgotten when the loader
        closes.
        """
        base = base or self.cwd
        text = text.strip()
        left, sep, attribute = _split(text, base)
        if left.endswith(".py") or "/" in left or "\\" in left or (":" in left and not sep):
            path = self._existing_file(base / left, where)
            module, origin = self._import_file(path, where), shown_path(path)
        elif sep or "." in left or left.isidentifier():
            left = left.strip()
            module, origin = self._import_module(left, base, where), left
        else:
            raise UsageError(f"{where}{text!r} is neither a .py file nor a module")
        if attribute is None:
            raise UsageError(f"{where}{text}: name the object, as in {text}:NAME")
        return attribute_of(module, attribute, origin, where), f"{origin}:{attribute}"

    def _existing_file(self, path: Path, where: str) -> Path:
        """``path`` resolved, or a `UsageError`: it is a folder, or no file (naming a close sibling)."""
        path = path.resolve()
        shown = shown_path(path)
        if path.is_dir():
            raise UsageError(f"{where}{shown} is a folder; name a .py file, or a module")
        if not path.is_file():
            siblings = [p.name for p in path.parent.glob("*.py")] if path.parent.is_dir() else []
            close = difflib.get_close_matches(path.name, siblings, n=1)
            hint = f" (did you mean {shown_path(path.parent / close[0])}?)" if close else ""
            raise UsageError(f"{where}no file {shown}{hint}")
        return path

    def _file_target(self, path: Path, attribute: str | None, where: str) -> list[Target]:
        path = self._existing_file(path, where)
        key = (path, attribute)
        if key not in self._files:
            module = self._import_file(path, where)
            self._files[key] = targets_of(module, attribute, shown_path(path), where)
        return self._files[key]

    def _module_target(self, text: str, base: Path, where: str, *, prefix: str = "") -> list[Target]:
        key = (text, base, prefix)
        if key not in self._modules:
            name, sep, attr = text.partition(":")
            module = self._import_module(name.strip(), base, where)
            self._modules[key] = targets_of(module, attr.strip() or None if sep else None, prefix + name.strip(), where)
        return self._modules[key]

    def _local_module(self, name: str, base: Path) -> bool:
        """Whether ``name`` is a module or package sitting in ``base`` (so never the standard library)."""
        return name.isidentifier() and ((base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file())

    def _add_path(self, folder: Path) -> str:
        entry = str(folder)
        if entry not in sys.path:
            sys.path.insert(0, entry)
            self._imported.paths.append(entry)
        return entry

    def _remember(self, before: set[str], folder: str) -> None:
        """Note the modules just imported from ``folder`` (not from a virtual environment in it)."""
        prefix = folder.rstrip("/\\") + "/"
        for name in set(sys.modules) - before:
            if name == "statewright" or name.startswith("statewright."):
                continue  # our own modules are never forgotten: their classes must stay the ones in use
            file = getattr(sys.modules.get(name), "__file__", None)
            if not file:
                continue
            resolved = str(Path(file).resolve())
            if resolved.startswith(prefix) and not resolved.startswith(_NOT_USERS):
                self._imported.modules.append(name)

    def _import_file(self, path: Path, where: str) -> ModuleType:
        name = user_module_name(next(_COUNTER), path)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"{where}cannot import {shown_path(path)}")
        module = importlib.util.module_from_spec(spec)
        folder = self._add_path(path.parent)
        before = set(sys.modules)
        sys.modules[name] = module
        self._imported.modules.append(name)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # sys.exit() while importing a spec is a failure, not a pass
            raise _import_error(exc, where, shown_path(path)) from exc
        finally:
            self._remember(before, folder)
        return module

    def _import_module(self, name: str, base: Path, where: str) -> ModuleType:
        if not all(part.isidentifier() for part in name.split(".")):
            raise UsageError(f"{where}{name!r} is neither a spec name, a .py file nor a module")
        folder = self._add_path(base)
        before = set(sys.modules)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                close = difflib.get_close_matches(name, self.known() if not where else [], n=1)
                hint = f" (did you mean the spec {close[0]!r}?)" if close else ""
                raise UsageError(f"{where}no module named {name!r}{hint}", original=exc) from exc
            raise _import_error(exc, where, name) from exc
        except (Exception, SystemExit) as exc:
            raise _import_error(exc, where, name) from exc
        finally:
            self._remember(before, folder)


def _split(text: str, base: Path) -> tuple[str, str, str | None]:
    """``text`` as (file or module, ``":"`` or ``""``, attribute or None): which colon, if any, starts an attribute.

    A folder or file may have colons in its name (``dir:with:colons/spec.py``),
    so a colon starts an attribute only where what follows the last one is an
    attribute -- a dotted name, not a path nor a ``.py`` file -- and the whole
    is no file or folder in ``base``.

    >>> _split("orders.py:order_spec", Path(".")), _split("dir:x/orders.py", Path("."))
    (('orders.py', ':', 'order_spec'), ('dir:x/orders.py', '', None))
    """
    left, sep, attr = text.rpartition(":")
    if not sep:
        return text, "", None
    attr = attr.strip()
    named = not attr or (all(part.isidentifier() for part in attr.split(".")) and not attr.endswith(".py"))
    if not named or (base / text).exists():
        return text, "", None
    return left, sep, attr or None


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda ep: (ep.name, ep.value))


def _import_error(exc: BaseException, where: str, what: str) -> UsageError:
    location = user_location(exc) or what
    return UsageError(f"{where}{location}: {describe(exc)}", original=exc)
