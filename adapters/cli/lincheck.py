"""``statewright lincheck``: is a recorded store history linearizable?

The files are JSON Lines written by `adapters.testing.linearizability.Recorder`
(one per process; they are merged). Exit 0 with ``linearizable: N operations,
M processes, K keys``; 1 with a minimal non-linearizable sub-history, or when
the step budget ran out before a verdict; 2 with one line naming the file and
line of a malformed history.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from statewright.adapters.project.errors import UsageError

__all__ = ["lincheck_command"]

EXIT_OK, EXIT_NOT_LINEARIZABLE = 0, 1


def lincheck_command(args: argparse.Namespace, out: TextIO) -> int:
    from statewright.adapters.testing.linearizability import HistoryError, HistoryVerdict, check_history, load_history

    try:
        history = load_history(args.histories)
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    result = check_history(history, max_steps=args.max_steps)
    print(result.report(), file=out)
    return EXIT_OK if result.verdict is HistoryVerdict.LINEARIZABLE else EXIT_NOT_LINEARIZABLE
