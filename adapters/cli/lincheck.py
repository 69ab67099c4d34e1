"""``statewright lincheck``: is a recorded store history linearizable?

The files are JSON Lines written by `adapters.testing.linearizability.Recorder`
(one per process; they are merged). Exit 0 with ``linearizable: N operations,
M processes, K keys``; 1 with a non-linearizable sub-history, or when the
budget (``--max-steps``, which counts reading the files too, and
``--time-limit``) ran out before a verdict; 2 with one line naming the file
and line of a malformed history.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from statewright.adapters.project.errors import UsageError

__all__ = ["lincheck_command"]

EXIT_OK, EXIT_NOT_LINEARIZABLE = 0, 1


def lincheck_command(args: argparse.Namespace, out: TextIO) -> int:
    from statewright.adapters.testing.linearizability import HistoryError, HistoryVerdict, check_files

    try:
        result = check_files(args.histories, max_steps=args.max_steps, time_limit=getattr(args, "time_limit", None))
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    print(result.report(), file=out)
    return EXIT_OK if result.verdict is HistoryVerdict.LINEARIZABLE else EXIT_NOT_LINEARIZABLE
