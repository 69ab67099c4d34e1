"""The lifecycle library: one module per lifecycle, each a `kernel.Machine`.

Modules import only the kernel. Importing this package does not import every
machine; import the one you need (``from machines.input import INPUT``).
"""

LIBRARY = ("session", "input", "run", "loop_frame", "task", "task_as_written", "token")
"""Names of the bundled lifecycle modules, in the order `statewright list` shows them."""

__all__ = ["LIBRARY"]
