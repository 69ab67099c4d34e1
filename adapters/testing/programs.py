"""A failing program as Python to paste: the lines that rebuild the spec, then one `replay` call.

The generated suites (`adapters.testing.stateful`) find a failure as a
hypothesis program -- rule calls that draw their inputs from ``data`` -- which
cannot be run again outside hypothesis. What can is the list of inputs that
program took: `program_text` writes it as source, with the imports each input
needs and the lines that bind ``spec`` (given by whoever knows how the spec
was built: the command and the pytest plugin pass `Target.spec_code`)::

    from statewright.adapters.testing.stateful import replay
    from statewright.kernel.system import Action
    from statewright.specs import REGISTRY
    from statewright.specs.input_lifecycle import Stage

    spec = REGISTRY.get('input_lifecycle').spec(stage_guard=False)
    replay(spec, [
        Action(instance='i1', input=Stage()),
    ])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from statewright.adapters.project.source import Source

__all__ = ["program_text"]

REPLAY = ("statewright.adapters.testing.stateful", "replay")
"""Where the printed program imports `replay` from."""


def program_text(inputs: Sequence[Any], *, spec_code: str | None, spec_name: str) -> tuple[str, bool]:
    """The program that replays ``inputs`` against the spec, and whether every value was written exactly.

    Without ``spec_code`` a comment says that ``spec`` stands for the spec
    that was run. Not exact when some value could only be written by its
    ``repr`` (the program may then need editing to run).

    >>> from statewright.kernel.system import Action
    >>> from statewright.adapters.testing.stateful import Way
    >>> text, exact = program_text([Action("a", 1), Way(Action("b", 2), 1)], spec_code=None, spec_name="pair")
    >>> print(text)
    from statewright.adapters.testing.stateful import Way, replay
    from statewright.kernel.system import Action
    <BLANKLINE>
    # spec: the Spec 'pair' that was run
    replay(spec, [
        Action(instance='a', input=1),
        Way(input=Action(instance='b', input=2), n=1),
    ])
    """
    src = Source()
    src.need(*REPLAY)
    items = [src.value(item) for item in inputs]
    body: list[str] = []
    for line in (spec_code or "").splitlines():
        module, sep, names = line.removeprefix("from ").partition(" import ")
        if line.startswith("from ") and sep:
            for name in names.split(","):
                src.need(module.strip(), name.strip())
        else:
            body.append(line)
    if spec_code is None:
        body.append(f"# spec: the Spec {spec_name!r} that was run")
    listed = "".join(f"    {item},\n" for item in items)
    call = f"replay(spec, [\n{listed}])" if items else "replay(spec, [])"
    return "\n".join([*src.import_lines(), "", *body, call]), src.exact
