"""`Authority`: one live machine instance, versioned, for the shell to drive.

The shell never mutates a state itself. It asks the authority to ``apply`` an
input (the version goes up by one on every accepted input), or -- when it must
do IO between deciding and publishing -- it ``stage``s the input, does the IO
outside any lock, then ``commit``s; the commit lands only if the version is
still the one the stage was computed from (compare-and-swap), otherwise it
returns a typed `Stale` and the caller re-stages from the fresh state.
The shell's `Driver` decides every input with ``stage`` on the stored state
and version and publishes with the store's compare-and-swap at
``base_version``: one compare-and-swap idea, in memory or in a store.
``snapshot``/``restore`` let a caller roll back to a known *state*, and
``restore_if_current`` rolls back only if nobody moved the instance since.
A version never goes back: a restore is itself a change and takes the next
version, so a step staged before the restore can never commit after it, even
once as many later steps have brought the count back to its base version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from statewright.kernel.machine import Machine
from statewright.kernel.renamed import renamed
from statewright.kernel.step import UNSET, Accepted, Rejected, step

__all__ = ["Authority", "Committed", "Snapshot", "Stale", "Staged"]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[S]):
    """A state together with the version it had."""

    state: S
    version: int


@dataclass(frozen=True, slots=True)
class Staged(Generic[S]):
    """An accepted step computed from ``base_version``, not yet published."""

    base_version: int
    result: Accepted[S]


@dataclass(frozen=True, slots=True)
class Committed(Generic[S]):
    """A staged step that was published; ``version`` is the new version."""

    state: S
    effects: tuple[Any, ...]
    version: int


@dataclass(frozen=True, slots=True)
class Stale:
    """The version moved between stage and commit (or snapshot and restore); nothing was changed.

    (A store's compare-and-swap that fails raises the store error `Conflict`;
    this is the same idea as a value, for an `Authority` in memory.)"""

    expected: int
    actual: int


class Authority(Generic[S]):
    """The single owner of one instance's state.

    >>> from enum import Enum
    >>> from statewright.kernel.machine import Machine, Transition
    >>> class Lamp(Enum):
    ...     OFF = 0
    ...     ON = 1
    >>> class Flip: pass
    >>> lamp = Machine("lamp", initial=Lamp.OFF, transitions=[
    ...     Transition(Lamp.OFF, Flip, Lamp.ON), Transition(Lamp.ON, Flip, Lamp.OFF)])
    >>> a = Authority(lamp)
    >>> staged = a.stage(Flip())
    >>> a.apply(Flip()).state      # someone else moved it first
    <Lamp.ON: 1>
    >>> a.commit(staged)
    Stale(expected=0, actual=1)
    """

    __slots__ = ("_machine", "_state", "_version")

    def __init__(self, machine: Machine[S], state: S | None = None, version: int = 0) -> None:
        self._machine = machine
        self._state: S = machine.initial if state is None else state
        self._version = version

    @property
    def machine(self) -> Machine[S]:
        return self._machine

    @property
    def state(self) -> S:
        return self._state

    @property
    def version(self) -> int:
        return self._version

    def apply(self, event: Any) -> Accepted[S] | Rejected:
        """Step the live state; on acceptance publish it and bump the version."""
        result = step(self._machine, self._state, event)
        if isinstance(result, Accepted):
            self._state = result.state
            self._version += 1
        return result

    def stage(self, event: Any, *, choice: Any = UNSET) -> Staged[S] | Rejected:
        """Compute a step from the current state without publishing it (``choice`` as for `step`).

        Publishing is the caller's: `commit` here, or -- as the shell's
        `Driver` does -- a store's compare-and-swap at ``base_version``.
        """
        result = step(self._machine, self._state, event, choice=choice)
        if isinstance(result, Rejected):
            return result
        return Staged(self._version, result)

    def commit(self, staged: Staged[S]) -> Committed[S] | Stale:
        """Publish a staged step if the version is still its base version."""
        if staged.base_version != self._version:
            return Stale(staged.base_version, self._version)
        self._state = staged.result.state
        self._version += 1
        return Committed(self._state, staged.result.effects, self._version)

    def snapshot(self) -> Snapshot[S]:
        return Snapshot(self._state, self._version)

    def restore(self, snapshot: Snapshot[S]) -> Snapshot[S]:
        """Put a snapshot's state back unconditionally, as a new version; the restored snapshot.

        >>> from enum import Enum
        >>> from statewright.kernel.machine import Machine, Transition
        >>> class Lamp(Enum):
        ...     OFF = 0
        ...     ON = 1
        >>> class Flip: pass
        >>> a = Authority(Machine("lamp", initial=Lamp.OFF, transitions=[
        ...     Transition(Lamp.OFF, Flip, Lamp.ON), Transition(Lamp.ON, Flip, Lamp.OFF)]))
        >>> before = a.snapshot()
        >>> staged = a.stage(Flip())
        >>> _ = a.apply(Flip())
        >>> a.restore(before)           # back to OFF, at version 2, not 0
        Snapshot(state=<Lamp.OFF: 0>, version=2)
        >>> a.commit(staged)            # staged at version 0: it stays stale
        Stale(expected=0, actual=2)
        """
        self._state = snapshot.state
        self._version += 1
        return Snapshot(self._state, self._version)

    def restore_if_current(self, snapshot: Snapshot[S], expected_version: int) -> Snapshot[S] | Stale:
        """Restore only if the version is still ``expected_version``; otherwise change nothing."""
        if self._version != expected_version:
            return Stale(expected_version, self._version)
        return self.restore(snapshot)

    def __repr__(self) -> str:
        return f"Authority({self._machine.name!r}, version={self._version}, state={self._state!r})"


if TYPE_CHECKING:
    Conflict = Stale  # the old name, for one release (`Conflict` is now only the store error)
else:
    __getattr__ = renamed(__name__, {"Conflict": "Stale"}, globals())
