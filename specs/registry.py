"""The registry of named specs: what `statewright check NAME` and `list` read.

A spec is registered by a builder function whose keyword parameters (with
their defaults) are the knobs ``--set KEY=VALUE`` can turn; the default's type
(int, bool, str) decides how a value is parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from inspect import Parameter, signature
from typing import Any

from statewright.kernel.check.spec import Spec
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine
from statewright.kernel.system import System

__all__ = ["Entry", "Registry", "parse_value"]


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
            known = ", ".join(self.params) or "none"
            raise DefinitionError(f"spec {self.name!r} has no parameter {unknown[0]!r} (parameters: {known})")
        return self.build(**{**self.params, **overrides})


def parse_value(entry: Entry, key: str, raw: str) -> Any:
    """Parse ``raw`` for parameter ``key`` by the type of its default."""
    if key not in entry.params:
        known = ", ".join(entry.params) or "none"
        raise DefinitionError(f"spec {entry.name!r} has no parameter {key!r} (parameters: {known})")
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
        params: dict[str, Any] = {}
        for p in signature(build).parameters.values():
            if p.default is Parameter.empty:
                raise DefinitionError(f"spec builder {build.__name__}: parameter {p.name!r} needs a default")
            params[p.name] = p.default
        built = build()
        doc = (build.__doc__ or built.doc or "").strip().splitlines()
        entry = Entry(built.name, build, params, doc[0] if doc else "")
        if entry.name in self.entries:
            raise DefinitionError(f"two specs are called {entry.name!r}")
        self.entries[entry.name] = entry
        for m in _machines_of(built.model):
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


def _machines_of(model: Machine[Any] | System[Any]) -> list[Machine[Any]]:
    if isinstance(model, Machine):
        return [model]
    return list({id(m): m for m in model.machines}.values())


REGISTRY = Registry()
"""The bundled specs; importing `specs` fills it."""
