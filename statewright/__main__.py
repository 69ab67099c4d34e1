"""``python -m statewright``: the same as the ``statewright`` command."""

from statewright.adapters.cli import main

main()
