"""How much memory this process uses and may use: the gauge behind ``check(max_memory=...)``.

The resident set size (RSS) is read from ``/proc/self/statm`` (one small
read) or, elsewhere, the peak from ``resource.getrusage``. What the process
may use is physical memory, or a cgroup limit when one is lower.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_memory", "rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int:
    """The resident set size of this process in bytes (0 when it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return 0


def available_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit."""
    total: int | None = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (total or 1 << 62):
            total = int(text)
    return total
