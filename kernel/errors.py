"""The kernel's one exception type: a declaration that cannot be right.

Inputs that a machine cannot take are *not* errors: `step` returns a typed
`Rejected` value for them. `DefinitionError` is raised while a machine, system
or spec is being declared (or first compiled by the checker), and its message
names the model and the offending entry so the fix is obvious.
"""

from __future__ import annotations

__all__ = ["DefinitionError"]


class DefinitionError(ValueError):
    """A machine, system or spec is declared wrongly.

    >>> raise DefinitionError("machine 'door': unknown phase 'AJAR'")
    Traceback (most recent call last):
    ...
    statewright.kernel.errors.DefinitionError: machine 'door': unknown phase 'AJAR'
    """
