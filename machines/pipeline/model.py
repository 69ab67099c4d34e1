"""Pipelines, operations and the registry: the data the planner reads.

A *pipeline* is an ordered list of *steps*; each step names an operation by
id and version and gives it a JSON config. An *operation* declares the ports
it imports and exports for a config, and *expands* into a small graph of
states whose ids are ``<machine_id>.<step_id>.<local_id>``. The *registry*
resolves ``(op_id, op_version)`` to an operation. Every id segment matches
``^[a-z][a-z0-9_]{0,62}$``.

Nothing here raises for bad user data: the planner (`planner.plan`) judges a
pipeline and returns a `PlanFailure` carrying one of the stable `Code`\\ s.

>>> reg = Registry.of(linear_op("fetch", "v1", ("get",), exports=("rows",)))
>>> reg.resolve("fetch", "v1").op_id, reg.resolve("fetch", "v2").code
('fetch', <Code.OP_NOT_FOUND: 'op_not_found'>)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "SEGMENT",
    "Code",
    "Operation",
    "Pipeline",
    "PlanFailure",
    "Ports",
    "Registry",
    "SideEffects",
    "StateGraph",
    "StateNode",
    "Step",
    "linear_op",
    "single_op_pipeline",
    "valid_segment",
]

SEGMENT = re.compile(r"[a-z][a-z0-9_]{0,62}")
"""One id segment: a machine, step, op or state-local id (matched whole)."""


def valid_segment(text: object) -> bool:
    """Whether ``text`` is a string matching `SEGMENT` exactly (no trailing newline, no dots)."""
    return isinstance(text, str) and SEGMENT.fullmatch(text) is not None


class Code(str, Enum):
    """Stable failure codes; each value is the source's code string."""

    INVALID_MACHINE_ID = "invalid_machine_id"
    EMPTY_PIPELINE = "empty_pipeline"
    INVALID_STEP_ID = "invalid_step_id"
    DUPLICATE_STEP_ID = "duplicate_step_id"
    INVALID_OP_ID = "invalid_op_id"
    OP_CONFIG_NOT_CANONICAL = "op_config_not_canonical"
    SECRETS_DETECTED = "secrets_detected"
    OP_NOT_FOUND = "op_not_found"
    UNSATISFIED_IMPORT = "unsatisfied_import"
    EMPTY_STATE_GRAPH = "empty_state_graph"
    INVALID_STATE_ID = "invalid_state_id"
    INVALID_STATE_LOCAL_ID = "invalid_state_local_id"
    MISSING_IDEMPOTENCY_KEY = "missing_idempotency_key"
    DUPLICATE_STATE_ID = "duplicate_state_id"
    MISSING_STATE_FOR_EDGE = "missing_state_for_edge"
    CIRCULAR_DEPENDENCY = "circular_dependency"
    MANIFEST_NOT_CANONICAL = "manifest_not_canonical"
    MANIFEST_ID_MISMATCH = "manifest_id_mismatch"
    MANIFEST_INPUT_DESERIALIZE_FAILED = "manifest_input_deserialize_failed"
    MANIFEST_OP_ID_MISMATCH = "manifest_op_id_mismatch"
    MANIFEST_OP_VERSION_MISMATCH = "manifest_op_version_mismatch"
    INVALID_RUN_CONFIG = "invalid_run_config"


@dataclass(frozen=True, slots=True)
class PlanFailure:
    """Why a pipeline (or a manifest) cannot be planned: a stable `code`, a message, and where."""

    code: Code
    message: str
    step_id: str | None = None
    state_id: str | None = None

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class SideEffects(Enum):
    """What a state does outside the run; an APPLY state must carry an idempotency key."""

    PURE = "pure"
    READ_ONLY_IO = "read_only_io"
    APPLY = "apply_side_effect"


@dataclass(frozen=True, slots=True)
class StateNode:
    """One state of an operation's expansion: its full id, side effects and idempotency key."""

    state_id: str
    side_effects: SideEffects = SideEffects.PURE
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class StateGraph:
    """An operation's expansion: states in order, and dependency edges ``(before, after)``."""

    states: tuple[StateNode, ...]
    edges: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Ports:
    """The context keys an operation reads from earlier steps (imports) and offers to later ones (exports)."""

    imports: tuple[str, ...] = ()
    exports: tuple[str, ...] = ()


def _no_ports(config: Any) -> Ports:
    return Ports()


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation as the planner sees it: id, version, ports and expansion, both pure functions of the config.

    ``expand(op_path, config)`` receives ``"<machine_id>.<step_id>"`` and returns
    the step's `StateGraph`, whose ids should start with that path.
    """

    op_id: str
    op_version: str
    expand: Callable[[str, Any], StateGraph]
    ports: Callable[[Any], Ports] = _no_ports


def linear_op(op_id: str, op_version: str, locals_: tuple[str, ...], *, imports: tuple[str, ...] = (),
              exports: tuple[str, ...] = (), side_effects: SideEffects = SideEffects.PURE,
              idempotency_key: str | None = None) -> Operation:
    """An operation whose expansion is a chain of states with fixed local ids (the common case).

    >>> op = linear_op("send", "v1", ("prepare", "post"))
    >>> [n.state_id for n in op.expand("m.s", {}).states], op.expand("m.s", {}).edges
    (['m.s.prepare', 'm.s.post'], (('m.s.prepare', 'm.s.post'),))
    """
    def expand(op_path: str, config: Any) -> StateGraph:
        ids = tuple(f"{op_path}.{local}" for local in locals_)
        return StateGraph(tuple(StateNode(i, side_effects, idempotency_key) for i in ids), tuple(zip(ids, ids[1:])))

    def ports(config: Any) -> Ports:
        return Ports(imports, exports)

    expand.__qualname__ = ports.__qualname__ = f"linear_op({op_id!r}, {op_version!r})"
    return Operation(op_id, op_version, expand, ports)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a pipeline: which operation, which version, with which config (JSON data)."""

    step_id: str
    op_id: str
    op_version: str
    config: Any = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A named, versioned list of steps; ``machine_id`` prefixes every state id of its plan."""

    machine_id: str
    pipeline_version: str
    steps: tuple[Step, ...]


def single_op_pipeline(machine_id: str, op_id: str, op_version: str, config: Any = None,
                       pipeline_version: str = "v1") -> Pipeline:
    """A pipeline of one step, ``main``, running one operation: the source's ``single_op_pipeline``.

    >>> single_op_pipeline("job", "fetch", "v1", {"n": 1}).steps
    (Step(step_id='main', op_id='fetch', op_version='v1', config={'n': 1}),)
    """
    return Pipeline(machine_id, pipeline_version, (Step("main", op_id, op_version, {} if config is None else config),))


@dataclass(frozen=True, slots=True)
class Registry:
    """Operations by ``(op_id, op_version)``; registering the same pair again replaces it, as in the source."""

    ops: Mapping[tuple[str, str], Operation] = field(default_factory=dict)

    @classmethod
    def of(cls, *ops: Operation) -> Registry:
        """A registry of ``ops``; a later one with the same id and version wins."""
        return cls({(op.op_id, op.op_version): op for op in ops})

    def register(self, op: Operation) -> Registry:
        """A new registry with ``op`` added (or replacing the one with its id and version)."""
        return Registry({**self.ops, (op.op_id, op.op_version): op})

    def resolve(self, op_id: str, op_version: str, step_id: str | None = None) -> Operation | PlanFailure:
        """The operation registered as ``(op_id, op_version)``, or ``op_not_found``."""
        op = self.ops.get((op_id, op_version))
        if op is not None:
            return op
        where = f"step {step_id!r}: " if step_id is not None else ""
        return PlanFailure(Code.OP_NOT_FOUND, f"{where}operation {op_id!r} version {op_version!r} is not in the registry",
                           step_id)
