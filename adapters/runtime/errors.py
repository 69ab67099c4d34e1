"""The typed errors of the store port: one class per way a store can fail, each with a stable ``code``.

`store` re-exports them and its module doc tables every code with what it
means; every backend maps its driver's failures onto these at one boundary, so
a caller (and the command line) can tell a lost race from a full disk without
reading messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyApplied",
    "BadInput",
    "BadOption",
    "Busy",
    "Conflict",
    "Corrupt",
    "Full",
    "IncompatibleSchema",
    "InvalidState",
    "Io",
    "LeaseLost",
    "NotAStore",
    "NotFound",
    "PermissionDenied",
    "ReadOnly",
    "RequestReused",
    "StoreError",
    "Unacknowledged",
    "UnknownOutcome",
]


class StoreError(Exception):
    """Base of every store failure; ``code`` is stable across backends and releases."""

    code = "store_error"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Conflict(StoreError):
    """A compare-and-swap or an expected log head did not match; nothing was written."""

    code = "conflict"


class Busy(StoreError):
    """The backend stayed locked past its timeout; retryable, distinct from a conflict."""

    code = "busy"


class NotFound(StoreError):
    """No instance under that key."""

    code = "not_found"


class Corrupt(StoreError):
    """A stored record cannot be decoded; other records are unaffected."""

    code = "corrupt"


class InvalidState(StoreError):
    """The machine could not hold this state; refused before writing."""

    code = "invalid_state"


class NotAStore(StoreError):
    """The file is not a database, or a database of something else; it was left as it was."""

    code = "not_a_store"


class IncompatibleSchema(StoreError):
    """A statewright store this release cannot use (a newer schema, or tables of another shape); never retryable."""

    code = "incompatible_schema"


class BadInput(StoreError):
    """Text from outside is not an input of the machine; nothing was written."""

    code = "bad_input"


class ReadOnly(StoreError):
    """The backend refuses writes (a read-only file, directory or server); nothing was written."""

    code = "read_only"


class PermissionDenied(StoreError):
    """The database role lacks a privilege the operation needs (PostgreSQL's insufficient_privilege).

    A role that may only ``SELECT`` gets it on its first write; nothing was
    written. Not `ReadOnly`: the database takes writes, only not from this role,
    and a read the role may not make fails the same way.
    """

    code = "permission_denied"


class BadOption(StoreError, ValueError):
    """A store was opened with an option it cannot honour (``keep_batches``, ``busy_timeout``, a schema name).

    Raised before anything is connected or written. Also a `ValueError`, which
    is what such an option raised before it had a code of its own.
    """

    code = "bad_option"


class Full(StoreError):
    """The disk or the database is full; the batch was rolled back whole."""

    code = "full"


class Io(StoreError):
    """The backend could not read or write (an I/O error, a file it cannot open, a server that went away)."""

    code = "io"


class UnknownOutcome(StoreError):
    """The write may or may not have committed: its COMMIT was sent, and the reply was lost.

    Not `Io` (which means nothing was written): re-submitting the same batch by
    its id settles it -- the store then says it had applied, or applies it now
    -- and that is what `Driver` does before it gives up.
    """

    code = "unknown_outcome"


class AlreadyApplied(StoreError):
    """The batch id was already recorded with other operations: another decision of it took effect; nothing written.

    ``receipt`` is what the store remembers of that batch (a `store.Receipt`;
    typed loosely here, where nothing imports the store): the outcome its
    committer recorded, so that the caller can answer with it.
    """

    code = "already_applied"

    def __init__(self, message: str, *, receipt: Any, key: str | None = None) -> None:
        super().__init__(message, key=key)
        self.receipt = receipt


class RequestReused(StoreError):
    """A request id came back with another input (or action) for the same key than it was first used with."""

    code = "request_reused"


class Unacknowledged(StoreError):
    """Deleting would drop events a registered consumer has not passed (`readside.ReadStore.clear`, unregistering)."""

    code = "unacknowledged"


class LeaseLost(StoreError):
    """An `Advance` or `DeadLetter` came from an owner that no longer holds the partition's lease; nothing written."""

    code = "lease_lost"
