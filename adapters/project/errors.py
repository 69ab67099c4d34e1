"""A user's mistakes as one-line errors, and how they point at the user's code.

`UsageError` is every mistake a person can make on the command line or in
their own files: it prints as one line, ``statewright: error: ...``, and exits
2. `user_location` finds the line of the user's code an exception came from
(the deepest frame outside statewright, the standard library and importlib),
so an error while importing ``orders.py`` reads ``orders.py:12: NameError: ...``.
"""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from pathlib import Path
from types import TracebackType

__all__ = ["UsageError", "describe", "shown_path", "user_location"]


class UsageError(Exception):
    """A user's mistake (command line, config, their own code): one line, exit 2.

    ``original`` is the exception behind it, whose traceback ``--traceback`` shows.
    """

    def __init__(self, message: str, *, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


def _roots() -> tuple[str, ...]:
    """Folders whose frames are not the user's: statewright itself, the standard library.

    The package's folder comes from its import spec, not from importing the
    facade (nothing inside statewright imports ``statewright`` itself).
    """
    found = importlib.util.find_spec("statewright")
    assert found is not None and found.submodule_search_locations, "statewright is a package"
    package = Path(next(iter(found.submodule_search_locations))).resolve()
    layers = [package / name for name in ("kernel", "machines", "specs", "adapters")]  # symlinks in a checkout
    roots = {str(package), *(str(p.resolve()) for p in layers if p.exists())}
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(str(Path(path).resolve()))
    return tuple(r.rstrip(os.sep) + os.sep for r in roots)


def _installed() -> tuple[str, ...]:
    """Folders of installed packages: a frame there is the user's only when no better one is."""
    paths = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")}
    return tuple(str(Path(p).resolve()).rstrip(os.sep) + os.sep for p in paths if p)


_ROOTS: tuple[str, ...] | None = None
_INSTALLED: tuple[str, ...] | None = None


def _rank(filename: str) -> int:
    """0: not the user's (statewright, the standard library, importlib); 1: an installed package; 2: theirs."""
    global _ROOTS, _INSTALLED
    if filename.startswith("<"):
        return 0
    if _ROOTS is None or _INSTALLED is None:
        _ROOTS, _INSTALLED = _roots(), _installed()
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return 0
    if resolved.startswith(_ROOTS):
        return 0
    return 1 if resolved.startswith(_INSTALLED) else 2


def shown_path(filename: str | os.PathLike[str]) -> str:
    """``filename`` relative to the current directory when it is below it, else as given."""
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def user_location(exc: BaseException) -> str | None:
    """``file.py:LINE`` of the deepest frame of the user's code in ``exc``'s traceback.

    Frames of installed packages count only when there is no other. A
    `SyntaxError` names its own file and line. None when no frame is the user's.
    """
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{shown_path(exc.filename)}:{exc.lineno}"
    tb: TracebackType | None = exc.__traceback__
    best: tuple[int, str] | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        rank = _rank(filename)
        if rank and (best is None or rank >= best[0]):
            best = (rank, f"{shown_path(filename)}:{tb.tb_lineno}")
        tb = tb.tb_next
    return best[1] if best else None


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (a `SyntaxError` without its file and line, which are said elsewhere)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    if isinstance(exc, SyntaxError):
        text = exc.msg
    else:
        text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
