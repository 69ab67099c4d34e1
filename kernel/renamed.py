"""Names that moved, kept for one release: a module ``__getattr__`` that warns and hands on the new object.

A module that renamed ``Old`` to ``New`` ends with::

    if TYPE_CHECKING:
        Old = New                      # type checkers see the alias, and catch typos
    else:
        __getattr__ = renamed(__name__, {"Old": "New"}, globals())

so ``from module import Old`` still works, with a `DeprecationWarning` that
names the new name, and any other unknown name is still an `AttributeError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["renamed"]


def renamed(module: str, names: Mapping[str, str], namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``names`` (old -> new) of ``module`` whose objects are in ``namespace``.

    >>> NEW = 42
    >>> getattr_ = renamed("demo", {"OLD": "NEW"}, {"NEW": NEW})
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     getattr_("OLD"), str(caught[0].message)
    (42, 'demo.OLD is renamed NEW; the old name goes in the next release')
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'demo' has no attribute 'nope'
    """

    def __getattr__(name: str) -> Any:
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} is renamed {new}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return namespace[new]

    return __getattr__
