"""How much memory a check uses and may use: the gauge behind ``check(max_memory=...)``.

`in_use` is what the budget is compared with: this process's resident set
size (RSS, from ``/proc/self/statm``, one small read; elsewhere the peak from
``resource.getrusage``) -- or, while forked workers run (their pids are in
`watched`), the proportional set size (PSS) of this process and of each
worker, from ``/proc/<pid>/smaps_rollup``: pages the workers still share
with the coordinator are counted once, not once per process. What the
process may use is physical memory, or a cgroup limit when one is lower.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_memory", "in_use", "pss", "rss", "watched"]

watched: set[int] = set()
"""The pids of the worker processes running now (`statewright.adapters.checking.fork` keeps it)."""

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


def pss(pid: int | str = "self") -> int | None:
    """The proportional set size of process ``pid`` in bytes; None where the system does not say."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def in_use() -> int:
    """Bytes this check uses: RSS of this process alone, or PSS of it and its workers while they run."""
    if not watched:
        return rss()
    mine = pss()
    if mine is None:  # no smaps_rollup: resident sizes, pages shared with workers counted in each
        return rss() + sum(_rss_of(pid) for pid in list(watched))
    return mine + sum(pss(pid) or 0 for pid in list(watched))


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0
