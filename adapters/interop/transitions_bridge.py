"""Interop with pytransitions: check the machine you already have, or drive a statewright one with its API.

Theory of operation
-------------------
`from_transitions` reads a `transitions.Machine` (or the config dict you would
pass to one) and declares the same lifecycle as a statewright `Machine`:

* every state reachable from the initial state through the declared triggers
  becomes a phase of a generated ``Enum`` (its name and value are the state's
  name); the state of the bridged machine *is* that phase; states marked
  ``final`` become terminal phases;
* every trigger becomes one frozen input dataclass (``melt`` -> ``Melt``) with
  one ``bool`` field per condition its transitions test;
* every pytransitions transition becomes one table row; ``dest=None``
  (internal) and ``dest='='`` (reflexive) stay in the source phase.

Conditions read model data the bridge cannot see, so a condition's outcome is
treated as *unknown*: it arrives as a field of the input, and the spec's input
domain holds every combination of outcomes (``Heat(is_flammable=True,
is_really_hot=False)``, ...). The checker therefore explores every condition
both ways at every step, while a state with no trigger that could ever fire
(whatever the data) is still a deadlock -- modelling conditions as facts that a
free "set" input flips would give every state a successor and hide exactly
the trap states worth finding. Distinct states are the reachable phases.

pytransitions tries the transitions of a trigger in the order they were added
and takes the first whose conditions pass. Each row therefore also carries a
guard ``not (...)`` per earlier row of the same trigger and source, so at most
one row is enabled (the kernel's ``determinism`` check holds by
construction), and a row behind an unconditional one, which pytransitions can
never take, is dropped and noted.

What is left out is listed in `Bridged.notes`, never silently: callbacks
(``before``/``after``/``prepare``, ``on_enter``/``on_exit`` and machine-level
ones) are side effects the table does not model; auto transitions
(``to_<state>``) are skipped unless asked for, since they make every state
reachable from every other; states unreachable from the initial state are
dropped. Nested (hierarchical) machines are refused with a `DefinitionError`.

`to_transitions` goes the other way: a `transitions.Machine` whose trigger
methods call `kernel.step.step` underneath, so guards and terminal precedence
are the kernel's. The model keeps ``statewright_state`` (the kernel state),
``statewright_effects`` (the effects of the last accepted trigger) and
``statewright_result`` (the last `Accepted`/`Rejected`); ``model.state`` is
the phase name. As in pytransitions, a trigger with no transition out of the
current phase (including every trigger in a terminal phase) raises
``transitions.core.MachineError``, and one whose guards fail returns False.

>>> from transitions import Machine as PyMachine
>>> from statewright.kernel.checker import check
>>> m = PyMachine(states=["solid", "liquid", "gas", "plasma"], initial="solid",
...               transitions=[["melt", "solid", "liquid"], ["evaporate", "liquid", "gas"],
...                            ["sublimate", "solid", "gas"], ["ionize", "gas", "plasma"]])
>>> bridged = from_transitions(m)
>>> report = check(bridged.spec)
>>> report.result("deadlock").status.value, report.distinct_states
('violated', 4)
>>> [type(s.input).__name__ for s in report.result("deadlock").trace[1:]]
['Sublimate', 'Ionize']
>>> lump = to_transitions(bridged)
>>> lump.melt(), lump.state
(True, 'liquid')
"""

from __future__ import annotations

import dataclasses
import itertools
import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any

from transitions.core import Machine as PyMachine

from statewright.kernel.checker import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.kernel.step import Accepted, step

__all__ = ["Bridged", "from_transitions", "to_transitions"]

STATE = "statewright_state"
EFFECTS = "statewright_effects"
RESULT = "statewright_result"

_CALLBACKS = ("before_state_change", "after_state_change", "prepare_event", "finalize_event", "on_exception", "on_final")


@dataclasses.dataclass(frozen=True, slots=True)
class Bridged:
    """A pytransitions machine read as a statewright one, ready to check.

    ``spec`` explores ``machine`` with every trigger and every combination of
    condition outcomes; ``triggers`` maps each pytransitions trigger name to its
    input type; ``conditions`` names the conditions explored both ways;
    ``notes`` lists what the bridge left out or changed, one line each;
    ``idle_triggers`` are triggers with no transition from a reachable state
    (no input type; `to_transitions` still defines them, and calling one raises
    ``MachineError`` as pytransitions would).
    """

    machine: Machine[Enum]
    spec: Spec
    triggers: Mapping[str, type]
    conditions: tuple[str, ...]
    notes: tuple[str, ...]
    idle_triggers: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class _Row:
    trigger: str
    source: str
    dest: str
    conditions: tuple[tuple[str, bool], ...]  # (condition name, outcome it needs)


def _callback_name(cb: Any) -> str:
    if isinstance(cb, str):
        return cb
    return str(getattr(cb, "__qualname__", None) or getattr(cb, "__name__", None) or repr(cb))


def _condition_name(func: Any, where: str) -> str:
    if isinstance(func, str):
        return func
    name = getattr(func, "__name__", "")
    if not name or name == "<lambda>":
        raise DefinitionError(
            f"{where}: condition {func!r} has no name; the bridge names a condition's outcome after it, "
            "so pass a method name or a def"
        )
    return str(name)


def _is_nested_state(state: Any) -> bool:
    if isinstance(state, PyMachine):
        return True
    return isinstance(state, Mapping) and any(k in state for k in ("children", "states", "parallel"))


def _as_machine(source: Any) -> PyMachine:
    try:
        from transitions.extensions.nesting import HierarchicalMachine
    except ImportError:  # pragma: no cover - part of every transitions release we support
        HierarchicalMachine = ()  # type: ignore[assignment,misc]
    if isinstance(source, HierarchicalMachine):
        raise DefinitionError(
            f"{type(source).__name__}: nested (hierarchical) states are not supported; flatten the machine first"
        )
    if isinstance(source, PyMachine):
        return source
    if not isinstance(source, Mapping):
        raise DefinitionError(f"from_transitions needs a transitions.Machine or its config dict, got {source!r}")
    config = {k: v for k, v in source.items() if k != "model"}
    states = config.get("states")
    if isinstance(states, Sequence) and not isinstance(states, str):
        nested = [_state_label(s) for s in states if _is_nested_state(s)]
        if nested:
            raise DefinitionError(
                f"nested (hierarchical) states are not supported: {', '.join(nested)}; flatten the machine first"
            )
        # pytransitions writes into state dicts; keep the caller's config untouched
        config["states"] = [dict(s) if isinstance(s, Mapping) else s for s in states]
    try:
        return PyMachine(model=None, **config)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DefinitionError(f"pytransitions refused the config: {exc}") from exc


def _state_label(state: Any) -> str:
    if isinstance(state, Mapping):
        return repr(state.get("name", state))
    return repr(getattr(state, "name", state))


def _is_auto(machine: PyMachine, trigger: str, t: Any) -> bool:
    """Whether ``t`` is one of the ``to_<state>`` transitions pytransitions adds by itself."""
    if not machine.auto_transitions or t.dest is None:
        return False
    attr = machine.model_attribute
    auto = f"to_{t.dest}" if attr == "state" else f"to_{attr}_{t.dest}"
    return trigger == auto and not (t.conditions or t.prepare or t.before or t.after)


def _rows(machine: PyMachine, auto: bool, notes: list[str]) -> list[_Row]:
    rows: list[_Row] = []
    skipped_auto = False
    known = set(machine.states)
    for trigger, event in machine.events.items():
        for source, ts in event.transitions.items():
            for t in ts:
                if not auto and _is_auto(machine, trigger, t):
                    skipped_auto = True
                    continue
                where = f"trigger {trigger!r} from {source!r}"
                dest = source if t.dest is None else t.dest
                for name in (source, dest):
                    if name not in known:
                        raise DefinitionError(f"{where}: unknown state {name!r}")
                conds = tuple((_condition_name(c.func, where), bool(c.target)) for c in t.conditions)
                rows.append(_Row(trigger, source, dest, conds))
                for kind in ("prepare", "before", "after"):
                    for cb in getattr(t, kind):
                        note = f"callback ignored: {kind}={_callback_name(cb)} on trigger {trigger!r}"
                        if note not in notes:
                            notes.append(note)
    if skipped_auto:
        notes.append("auto transitions (to_<state>) skipped; pass auto_transitions=True to include them")
    return rows


def _unshadowed(rows: Sequence[_Row], notes: list[str]) -> list[_Row]:
    """Drop the rows pytransitions can never take: those behind an unconditional one."""
    closed: set[tuple[str, str]] = set()
    kept: list[_Row] = []
    for r in rows:
        if (r.trigger, r.source) in closed:
            notes.append(
                f"transition {r.trigger!r} {r.source!r} -> {r.dest!r} dropped: an earlier unconditional "
                "transition of the same trigger always wins"
            )
            continue
        if not r.conditions:
            closed.add((r.trigger, r.source))
        kept.append(r)
    return kept


def _reachable(initial: str, rows: Sequence[_Row]) -> set[str]:
    seen = {initial}
    todo = [initial]
    while todo:
        here = todo.pop()
        for r in rows:
            if r.source == here and r.dest not in seen:
                seen.add(r.dest)
                todo.append(r.dest)
    return seen


def _class_name(trigger: str) -> str:
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", trigger) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts)
    return name if name.isidentifier() else f"Trigger_{name}"


def _field_name(condition: str) -> str:
    name = re.sub(r"\W", "_", condition)
    if not name.isidentifier() or keyword.iskeyword(name):
        name = f"c_{name}"
    return name


def _guard(label: str, field: str, wanted: bool) -> Guard[Any]:
    if wanted:
        return Guard(label, lambda _s, i: getattr(i, field) is True)
    return Guard(f"not {label}", lambda _s, i: getattr(i, field) is False)


def _all_hold(conds: tuple[tuple[str, bool], ...], fields: Mapping[str, str]) -> Callable[[Any, Any], bool]:
    pairs = tuple((fields[c], wanted) for c, wanted in conds)
    return lambda _s, i: all(getattr(i, f) is wanted for f, wanted in pairs)


def _shadow(conds: tuple[tuple[str, bool], ...], fields: Mapping[str, str]) -> Guard[Any]:
    """``not (a and b)``: an earlier row of the same trigger and source did not fire."""
    ok = _all_hold(conds, fields)
    return Guard(f"not {_describe(conds)}", lambda s, i: not ok(s, i))


def _describe(conds: tuple[tuple[str, bool], ...]) -> str:
    parts = [c if wanted else f"not {c}" for c, wanted in conds]
    return parts[0] if len(parts) == 1 and conds[0][1] else f"({' and '.join(parts)})"


def from_transitions(
    machine_or_config: Any,
    *,
    name: str | None = None,
    auto_transitions: bool = False,
) -> Bridged:
    """Read a pytransitions machine (or its config dict) as a statewright machine and spec.

    See the module docstring for how conditions, final states, callbacks and
    auto transitions are treated. Raises `DefinitionError` for what the bridge
    cannot represent (nested states, unnamed conditions, unknown states).
    """
    pm = _as_machine(machine_or_config)
    models = [type(m).__name__ for m in pm.models if m is not pm]
    label = name or pm.name.rstrip(": ").strip() or (models[0] if models else "transitions")
    me = f"pytransitions machine {label!r}"
    initial = pm.initial
    if initial is None or initial not in pm.states:
        raise DefinitionError(f"{me}: no initial state")
    notes: list[str] = []
    rows = _rows(pm, auto_transitions, notes)
    for state_name, st in pm.states.items():
        for kind in ("on_enter", "on_exit"):
            for cb in getattr(st, kind):
                notes.append(f"callback ignored: {kind}={_callback_name(cb)} on state {state_name!r}")
    for kind in _CALLBACKS:
        for cb in getattr(pm, kind):
            notes.append(f"callback ignored: machine-level {kind}={_callback_name(cb)}")

    declared = list(dict.fromkeys(r.trigger for r in rows))
    rows = _unshadowed(rows, notes)
    reached = _reachable(initial, rows)
    names = [n for n in pm.states if n in reached]
    dropped = [n for n in pm.states if n not in reached]
    if dropped:
        notes.append(f"states unreachable from {initial!r} dropped: {', '.join(map(repr, dropped))}")
    rows = [r for r in rows if r.source in reached]
    if not rows:
        raise DefinitionError(f"{me}: no transition leaves the initial state {initial!r}; nothing to check")
    try:
        phase_type = Enum(f"{_class_name(label)}Phase", [(n, n) for n in names])  # type: ignore[misc]
    except ValueError as exc:
        raise DefinitionError(f"{me}: a state name cannot be a phase name: {exc}") from exc
    phase: dict[str, Enum] = {n: phase_type[n] for n in names}
    final = {n for n in names if pm.states[n].final}

    conditions: list[str] = []
    fields: dict[str, str] = {}
    per_trigger: dict[str, list[str]] = {}
    for r in rows:
        mine = per_trigger.setdefault(r.trigger, [])
        for c, _ in r.conditions:
            if c not in fields:
                f = _field_name(c)
                clash = [o for o, of in fields.items() if of == f]
                if clash:
                    raise DefinitionError(f"{me}: conditions {clash[0]!r} and {c!r} both map to field {f!r}")
                fields[c] = f
                conditions.append(c)
            if c not in mine:
                mine.append(c)
    inputs: dict[str, type] = {}
    for trigger, conds in per_trigger.items():
        inputs[trigger] = dataclasses.make_dataclass(
            _class_name(trigger), [(fields[c], bool) for c in conds], frozen=True, slots=True
        )

    table: list[Transition] = []
    earlier: dict[tuple[str, str], list[tuple[tuple[str, bool], ...]]] = {}
    left_final: list[str] = []
    for r in rows:
        before = earlier.setdefault((r.trigger, r.source), [])
        guards: dict[str, Guard[Any]] = {}
        for c, wanted in r.conditions:
            g = _guard(c, fields[c], wanted)
            guards.setdefault(g.name, g)
        for prior in before:
            shadow = _shadow(prior, fields)
            guards.setdefault(shadow.name, shadow)
        before.append(r.conditions)
        leaves = r.source in final
        if leaves and r.source not in left_final:
            left_final.append(r.source)
        table.append(
            Transition(
                phase[r.source],
                inputs[r.trigger],
                phase[r.dest],
                guard=tuple(guards.values()) or None,
                from_terminal=leaves,
            )
        )
    for s in left_final:
        notes.append(
            f"final state {s!r} has transitions out; kept (from_terminal=True), so terminal_precedence will flag them"
        )

    kernel_machine: Machine[Enum] = Machine(
        label,
        initial=phase[initial],
        transitions=table,
        terminal={phase[n] for n in final},
        inputs=tuple(inputs.values()),
        doc=f"bridged from pytransitions; conditions explored both ways: {', '.join(conditions) or 'none'}",
    )
    domain: list[Any] = []
    for trigger, cls in inputs.items():
        k = len(per_trigger[trigger])
        for outcome in itertools.product((True, False), repeat=k):
            domain.append(cls(*outcome))
    spec = Spec(label, kernel_machine, domain, doc=kernel_machine.doc)
    idle = tuple(t for t in declared if t not in inputs)
    if idle:
        notes.append(f"triggers with no transition from a reachable state: {', '.join(map(repr, idle))}")
    return Bridged(kernel_machine, spec, dict(inputs), tuple(conditions), tuple(notes), idle)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def to_transitions(
    machine: Machine[Any] | Bridged,
    model: Any = None,
    *,
    state: Any = None,
) -> PyMachine:
    """A `transitions.Machine` on ``model`` whose triggers run `kernel.step.step`.

    One trigger per input type: the pytransitions trigger name for a `Bridged`
    machine, else the input class name in snake case (``WakeUp`` ->
    ``wake_up``). A trigger's arguments build the input (``model.stage(run_id="r1")``).
    ``model=None`` makes the returned machine its own model, as pytransitions
    does. ``state`` starts from a kernel state other than the initial one.
    """
    idle: tuple[str, ...] = ()
    if isinstance(machine, Bridged):
        km = machine.machine
        trigger_of = {cls: t for t, cls in machine.triggers.items()}
        idle = machine.idle_triggers
    else:
        km = machine
        trigger_of = {cls: _snake(cls.__name__) for cls in km.input_types}
    start = km.initial if state is None else state
    pm = PyMachine(
        model=None,
        states=[p.name for p in km.phases],
        initial=km.phase_of(start).name,
        auto_transitions=False,
        name=km.name,
    )
    for trigger in idle:  # an event with no transitions: pytransitions raises MachineError when called
        pm.events[trigger] = pm._create_event(trigger, pm)
    holder: Any = pm if model is None else model
    added: set[tuple[str, str, str]] = set()
    for rule in km.rules:
        trigger = trigger_of[rule.input]
        key = (trigger, rule.source.name, rule.target.name)
        if key in added:
            continue
        added.add(key)
        pm.add_transition(
            trigger, rule.source.name, rule.target.name, conditions=[_runner(km, holder, rule.input, rule.target)]
        )
    setattr(holder, STATE, start)
    setattr(holder, EFFECTS, ())
    setattr(holder, RESULT, None)
    pm.add_model(holder)
    return pm


def _runner(km: Machine[Any], holder: Any, input_type: type, target: Enum) -> Callable[..., bool]:
    """The condition of one pytransitions transition: step the kernel, pass iff it lands on ``target``.

    pytransitions tries a trigger's transitions in turn; `step` is pure, so
    running it once per candidate gives the same answer each time and exactly
    one candidate (or none, on rejection) passes and stores the new state.
    """

    def statewright_step(*args: Any, **kwargs: Any) -> bool:
        result = step(km, getattr(holder, STATE), input_type(*args, **kwargs))
        setattr(holder, RESULT, result)
        if isinstance(result, Accepted) and km.phase_of(result.state) is target:
            setattr(holder, STATE, result.state)
            setattr(holder, EFFECTS, result.effects)
            return True
        return False

    return statewright_step

