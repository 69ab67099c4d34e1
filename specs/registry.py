"""The registry of named specs: what `statewright check NAME` and `list` read.

A spec is registered by a builder function whose keyword parameters (with
their defaults) are the knobs ``--set KEY=VALUE`` can turn; the default's type
(bool, int, float, an Enum, str) decides how a value is parsed. The same rules
hold for builders in users' own files and modules (`adapters.project.targets`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from inspect import Parameter, signature
from typing import Any

from statewright.kernel.checker import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine
from statewright.kernel.system import System

__all__ = ["Entry", "Registry", "builder_params", "machines_of", "no_parameter", "parse_value"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A registered spec: its name, builder, parameter defaults and a one-line summary."""

    name: str
    build: Callable[..., Spec]
    params: Mapping[str, Any]
    summary: str

    def spec(self, **overrides: Any) -> Spec:
        """Build the spec, with some parameters overridden (unknown ones are an error)."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise DefinitionError(no_parameter(unknown[0], self.params, self.name))
        return self.build(**{**self.params, **overrides})


def no_parameter(key: str, params: Iterable[str], spec: str | None = None) -> str:
    """The one-line error for a ``--set`` name that spec ``spec`` (None: any chosen spec) lacks, with a close one.

    >>> no_parameter("rmz", ["rms", "all_prepared", "commit_sent"], "two_phase")
    "spec 'two_phase' has no parameter 'rmz' (did you mean 'rms'?); its parameters: rms, all_prepared, commit_sent"
    >>> no_parameter("n", ["rms", "all_prepared"])
    "none of the chosen specs has a parameter 'n'; their parameters: rms, all_prepared"
    """
    known = list(dict.fromkeys(params))
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    what = f"spec {spec!r} has no parameter {key!r}" if spec else f"none of the chosen specs has a parameter {key!r}"
    return f"{what}{hint}; {'its' if spec else 'their'} parameters: {', '.join(known) or 'none'}"


def builder_params(build: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of a spec builder with their defaults; one without a default is an error.

    >>> def spec(n: int = 3, strict: bool = False) -> None: ...
    >>> builder_params(spec)
    {'n': 3, 'strict': False}
    """
    params: dict[str, Any] = {}
    for p in signature(build).parameters.values():
        if p.kind in (Parameter.VAR_POSITIONAL, Parameter.VAR_KEYWORD):
            continue
        if p.default is Parameter.empty:
            raise DefinitionError(f"spec builder {build.__name__}: parameter {p.name!r} needs a default")
        params[p.name] = p.default
    return params


def parse_value(entry: Entry, key: str, raw: str) -> Any:
    """Parse ``raw`` for parameter ``key`` by the type of its default.

    bool: true/false, yes/no, on/off, 1/0; int; float; an Enum member by name or
    value; anything else (str, None) is passed on as the string.

    >>> parse_value(Entry("x", dict, {"n": 3, "rate": 0.5}, ""), "rate", "2.5")
    2.5
    """
    if key not in entry.params:
        raise DefinitionError(no_parameter(key, entry.params, entry.name))
    default = entry.params[key]
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise DefinitionError(f"{key}={raw!r}: expected true or false")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise DefinitionError(f"{key}={raw!r}: expected an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise DefinitionError(f"{key}={raw!r}: expected a number") from None
    if isinstance(default, Enum):
        members = type(default)
        for member in members:
            if raw.strip() in (member.name, str(member.value)) or raw.strip().upper() == member.name:
                return member
        raise DefinitionError(f"{key}={raw!r}: expected one of {', '.join(m.name for m in members)}")
    return raw


@dataclass
class Registry:
    """Named spec builders and the machines they exercise, in registration order."""

    entries: dict[str, Entry] = field(default_factory=dict)
    machines: dict[str, Machine[Any]] = field(default_factory=dict)

    def spec(self, build: Callable[..., Spec]) -> Callable[..., Spec]:
        """Register ``build`` under its spec's name (a decorator).

        Every parameter needs a default; the spec is built once here, so a
        definition error surfaces at import rather than at check time.
        """
        params = builder_params(build)
        built = build()
        doc = (build.__doc__ or built.doc or "").strip().splitlines()
        entry = Entry(built.name, build, params, doc[0] if doc else "")
        if entry.name in self.entries:
            raise DefinitionError(f"two specs are called {entry.name!r}")
        self.entries[entry.name] = entry
        for m in machines_of(built):
            self.machines.setdefault(m.name, m)
        return build

    def machine(self, machine: Machine[Any]) -> Machine[Any]:
        """Register a library machine so `statewright list` shows it."""
        self.machines[machine.name] = machine
        return machine

    def get(self, name: str) -> Entry:
        """The entry called ``name``; the error lists the known names."""
        try:
            return self.entries[name]
        except KeyError:
            raise DefinitionError(f"unknown spec {name!r}; known specs: {', '.join(self.entries)}") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)


def machines_of(spec: Spec | Machine[Any] | System[Any]) -> list[Machine[Any]]:
    """The distinct machines of a spec's model (or of a model), in instance order, one per name."""
    model = spec.model if isinstance(spec, Spec) else spec
    if isinstance(model, Machine):
        return [model]
    first: dict[str, Machine[Any]] = {}
    for m in model.machines:
        first.setdefault(m.name, m)
    return list(first.values())


REGISTRY = Registry()
"""The bundled specs; importing `specs` fills it."""
