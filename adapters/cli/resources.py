"""Memory and output files: the check's memory budget, sizes as text, safe writes.

The budget is compared with the process's resident set size (RSS,
`statewright.adapters.checking.memory`). The default budget is 80% of the
memory the process may use: physical memory, or a cgroup limit when one is
lower.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from statewright.adapters.checking.memory import available_memory, rss
from statewright.adapters.project.errors import UsageError

__all__ = ["DEFAULT_SHARE", "available_memory", "default_budget", "parse_size", "rss", "size_text",
           "writable_dir", "writable_file", "write_atomic"]

DEFAULT_SHARE = 0.8
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def default_budget() -> int | None:
    """The default ``--max-memory``: 80% of `available_memory` (None when unknown)."""
    total = available_memory()
    return int(total * DEFAULT_SHARE) if total else None


def parse_size(text: str) -> int | None:
    """``4G``, ``512MiB``, ``1.5g``, ``75%`` (of available memory) as bytes; ``none``/``0``: no budget.

    >>> parse_size("512M"), parse_size("2GiB"), parse_size("off")
    (536870912, 2147483648, None)
    """
    raw = text.strip().lower()
    if raw in ("none", "off", "0", "unlimited"):
        return None
    if raw.endswith("%"):
        try:
            share = float(raw[:-1]) / 100
        except ValueError:
            share = -1.0
        total = available_memory()
        if not 0 < share <= 1 or total is None:
            raise UsageError(f"--max-memory {text!r}: expected a share like 80% (of {size_text(total)})")
        return int(total * share)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", raw)
    if match is None:
        raise UsageError(f"--max-memory {text!r}: expected a size like 8G, 512M or 80%, or none")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def size_text(n: int | None) -> str:
    """Bytes as a short binary size: ``1.5 GiB``, ``300 MiB``."""
    if n is None:
        return "unknown"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}"
    return f"{n} B"


def writable_file(path: Path, flag: str) -> Path:
    """``path`` if a file can be written there (its folder exists and is writable, it is no folder)."""
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder ({flag} wants a file path)")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: no folder {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")
    return path


def writable_dir(path: Path, flag: str) -> Path:
    """``path`` if it is (or can be created as) a writable folder."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: not a folder (it is a file)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: permission denied")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
