"""Values and names as Python source a fresh interpreter can run, with the imports they need.

A failing generated suite prints the program that reproduces it
(`adapters.testing.stateful`), and that program starts by rebuilding the
spec the command or the pytest plugin ran (`Target.spec_code`). Both write
inputs, parameters and builders as source through one `Source`, which
collects ``from module import Name`` lines as it goes.

Classes and functions are named by their module and qualified name. A user's
file is imported by the `Loader` under a private module name
(``_statewright_user_3_orders``); `importable` turns it back into the name
the file has beside it (``orders``), so the program runs from that folder.
Enums are written ``Cls.MEMBER``, dataclasses ``Cls(field=value, ...)``, and
builtins as literals. Anything else falls back to its ``repr``, and the
`Source` is then not `exact`: the caller should not promise the program runs.

>>> from statewright.kernel.system import Action
>>> src = Source()
>>> src.value([Action("i1", frozenset({2, 1})), None]), src.import_lines(), src.exact
("[Action(instance='i1', input=frozenset({1, 2})), None]", ['from statewright.kernel.system import Action'], True)
>>> src.value(object()).startswith("<object object"), src.exact
(True, False)
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["USER_MODULE_PREFIX", "Source", "importable", "user_module_name"]

USER_MODULE_PREFIX = "_statewright_user_"
"""The start of the module name a user's file is imported under (`adapters.project.targets`)."""

_USER_MODULE = re.compile(rf"{USER_MODULE_PREFIX}\d+_(\w+)\Z")


def user_module_name(number: int, path: Path) -> str:
    """The private, unique module name a user's file is imported under: ``_statewright_user_3_orders``."""
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{USER_MODULE_PREFIX}{number}_{stem}"


def importable(module: str) -> str | None:
    """The name ``module`` is imported by in a fresh interpreter, or None when it has none.

    A user's file comes back under its own name (run the program from its
    folder); ``__main__`` (a script) and names that are no identifiers have none.

    >>> importable("myapp.lifecycles"), importable("_statewright_user_3_orders"), importable("__main__")
    ('myapp.lifecycles', 'orders', None)
    """
    if module == "__main__" or not all(part.isidentifier() for part in module.split(".")):
        return None
    found = _USER_MODULE.match(module)
    if found is None:
        return module
    file = getattr(sys.modules.get(module), "__file__", None)
    stem = Path(file).stem if file else found.group(1)
    return stem if stem.isidentifier() else None


@dataclass
class Source:
    """Writes values and names as source, collecting the imports they need; ``exact`` until a ``repr`` stands in."""

    imports: dict[str, dict[str, None]] = field(default_factory=dict)
    exact: bool = True

    def need(self, module: str, name: str) -> None:
        """Note that the program needs ``from module import name``."""
        self.imports.setdefault(module, {})[name] = None

    def name(self, obj: Any) -> str:
        """A class's or function's qualified name, imported from its module (not exact when it cannot be)."""
        qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
        module = importable(getattr(obj, "__module__", None) or "")
        if module is None or "<" in qualname:
            self.exact = False
            return str(qualname)
        self.need(module, qualname.split(".")[0])
        return str(qualname)

    def value(self, value: Any) -> str:
        """``value`` as an expression that evaluates to an equal value."""
        if value is None or type(value) in (bool, int, str, bytes):
            return repr(value)
        if type(value) is float:
            return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
        if isinstance(value, Enum):
            return f"{self.name(type(value))}.{value.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = [f for f in dataclasses.fields(value) if f.init]
            args = ", ".join(f"{f.name}={self.value(getattr(value, f.name))}" for f in fields)
            return f"{self.name(type(value))}({args})"
        if type(value) in (tuple, list):
            items = [self.value(v) for v in value]
            if type(value) is list:
                return "[" + ", ".join(items) + "]"
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if type(value) in (set, frozenset):
            items = sorted(self.value(v) for v in value)
            inner = "{" + ", ".join(items) + "}"
            if type(value) is frozenset:
                return f"frozenset({inner})" if items else "frozenset()"
            return inner if items else "set()"
        if type(value) is dict:
            return "{" + ", ".join(f"{self.value(k)}: {self.value(v)}" for k, v in value.items()) + "}"
        self.exact = False
        return repr(value)

    def import_lines(self) -> list[str]:
        """``from module import A, B`` lines, sorted by module."""
        return [f"from {m} import {', '.join(sorted(names))}" for m, names in sorted(self.imports.items())]
