"""Checks of bundled specs shared by several test modules: each spec and knob set is checked once per run."""

from __future__ import annotations

import functools
from typing import Any

from statewright.kernel.checker import Report, check
from statewright.specs import REGISTRY


@functools.cache
def report(name: str, **knobs: Any) -> Report:
    """``check`` of the bundled spec ``name`` built with ``knobs`` (cached: reports are immutable)."""
    return check(REGISTRY.get(name).spec(**knobs))
