"""A trace: what a behaviour did, step by step, as the checker, the suites and the shell report it.

A trace of n states has n steps. The first is the initial state with no
input and no effects; each later step is the input taken, the state it led
to and the effects emitted on the way. Every trace the checker reports
replays through `step` from its first state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TraceStep"]


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of a trace: the input taken (None first), the state reached, the effects.

    >>> TraceStep("shut", "Close()", ("Closed(1)",)).input
    'Close()'
    """

    state: Any
    input: Any
    effects: tuple[Any, ...]
