"""What a file or module offers as specs, and `Target`, the spec a command runs.

An attribute named explicitly (``orders.py:order_spec``) may be a `Spec`, a
*builder* (a function returning a `Spec`, whose keyword parameters, all with
defaults, become ``--set`` knobs; being named, it is called even without an
annotation), a `Registry` or a module. A whole file or module contributes, in
definition order:

* every public module-level `Spec` object;
* every public function *defined in that module* whose return annotation names
  ``Spec`` (``-> Spec``, ``-> "sw.Spec"``) and whose parameters all have
  defaults -- functions without that annotation are never called;
* the entries of every module-level `Registry` whose builders are defined in
  that module or below it (so ``statewright.specs`` means the bundled specs).

A builder is called once when it is loaded (to learn its spec's name and
surface its errors early). A `Spec` object with the same name as a builder of
the same module is taken for that builder's default build and left out. Two
different targets giving specs of one name are an error naming both
(`by_name`). Where the modules come from is `adapters.project.targets`' business.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from statewright.adapters.project.errors import UsageError, describe, user_location
from statewright.adapters.project.source import Source, importable
from statewright.kernel.checker import Spec
from statewright.kernel.errors import DefinitionError
from statewright.specs.registry import Entry, Registry, builder_params, no_parameter

__all__ = ["BUNDLED", "Target", "by_name", "from_entry", "targets_of", "unique"]

BUNDLED = "bundled"


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """One spec a command can run: its name, how to build it, its knobs and where it came from.

    ``source`` is the builder function or `Spec` object itself: two targets
    with the same source are the same spec reached twice. ``default`` is the
    spec built with the defaults, when loading already built it. ``home`` is
    the module and attribute a `Spec` object was found under (what
    `spec_code` imports it by).
    """

    name: str
    build: Callable[..., Spec]
    params: Mapping[str, Any]
    origin: str
    summary: str = ""
    source: object = None
    default: Spec | None = None
    home: tuple[str, str] | None = None

    @property
    def entry(self) -> Entry:
        """The target as a registry `Entry` (what `specs.registry.parse_value` reads)."""
        return Entry(self.name, self.build, self.params, self.summary)

    @property
    def bundled(self) -> bool:
        return self.origin == BUNDLED

    def spec_code(self, overrides: Mapping[str, Any] | None = None) -> str | None:
        """Python lines that bind ``spec`` to this spec (with ``overrides``) in a fresh interpreter.

        None when it cannot be named so (a builder defined inside a function,
        a ``__main__`` script, a parameter value with no literal form). A
        spec from a user's file is imported by the file's name, from its folder.

        >>> from statewright.specs import REGISTRY
        >>> print(from_entry(REGISTRY.get("two_phase"), BUNDLED).spec_code({"rms": 2}))
        from statewright.specs import REGISTRY
        spec = REGISTRY.get('two_phase').spec(rms=2)
        """
        src = Source()
        args = ", ".join(f"{k}={src.value(v)}" for k, v in (overrides or {}).items())
        if self.bundled:
            src.need("statewright.specs", "REGISTRY")
            expression = f"REGISTRY.get({self.name!r}).spec({args})"
        elif isinstance(self.source, Spec):
            module = importable(self.home[0]) if self.home else None
            if module is None or self.home is None or args:
                return None
            src.need(module, self.home[1].split(".")[0])
            expression = self.home[1]
        elif callable(self.source):
            expression = f"{src.name(self.source)}({args})"
        else:
            return None
        return "\n".join([*src.import_lines(), f"spec = {expression}"]) if src.exact else None

    def spec(self, **overrides: Any) -> Spec:
        """The spec with some parameters overridden; a failing builder is a `UsageError` naming it."""
        if not overrides and self.default is not None:
            return self.default
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise UsageError(no_parameter(unknown[0], self.params, self.name))
        settings = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        what = f"spec {self.name!r}" + (f" ({settings})" if settings else "")
        built = _call_builder(self.build, what, {**self.params, **overrides})
        if not isinstance(built, Spec):
            raise UsageError(f"{what}: its builder returned {type(built).__name__}, not a Spec")
        return built


def _call_builder(build: Callable[..., Any], what: str, kwargs: Mapping[str, Any]) -> Any:
    try:
        return build(**kwargs)
    except DefinitionError:
        raise
    except (Exception, SystemExit) as exc:
        where = user_location(exc)
        message = f"{where}: {describe(exc)} (in {what})" if where else f"{what}: {describe(exc)}"
        raise UsageError(message, original=exc) from exc


def _returns_spec(fn: Callable[..., Any]) -> bool:
    """Whether ``fn``'s return annotation names `Spec` (never calls or evaluates anything)."""
    annotation = inspect.signature(fn, eval_str=False).return_annotation
    if isinstance(annotation, type):
        return issubclass(annotation, Spec)
    if isinstance(annotation, str):
        return annotation.strip().strip("'\"").split(".")[-1] == "Spec"
    return False


def _defined_below(fn: object, module: ModuleType) -> bool:
    owner = getattr(fn, "__module__", None) or ""
    return owner == module.__name__ or owner.startswith(module.__name__ + ".")


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def from_entry(entry: Entry, origin: str) -> Target:
    return Target(entry.name, entry.build, dict(entry.params), origin, entry.summary, entry.build)


def _builder(fn: Callable[..., Any], origin: str, where: str, *, explicit: bool) -> Target | None:
    """A builder target: called once with its defaults to learn its spec's name."""
    try:
        params = builder_params(fn)
    except DefinitionError as exc:
        if explicit:
            raise UsageError(f"{where}{origin}: {exc} (every knob of a spec builder needs a default)") from None
        return None
    built = _call_builder(fn, f"{where}{origin}", params)
    if not isinstance(built, Spec):
        if explicit:
            raise UsageError(f"{where}{origin} returned {type(built).__name__}, not a Spec")
        return None
    return Target(built.name, fn, params, origin, _first_line(fn.__doc__) or _first_line(built.doc), fn, built)


def _from_spec(spec: Spec, origin: str, home: tuple[str, str]) -> Target:
    return Target(spec.name, lambda: spec, {}, origin, _first_line(spec.doc), spec, spec, home)


def _registry(registry: Registry, module: ModuleType | None, origin: str) -> list[Target]:
    out = []
    for entry in registry.entries.values():
        if module is None or _defined_below(entry.build, module):
            bundled = (getattr(entry.build, "__module__", "") or "").startswith("statewright.specs")
            out.append(from_entry(entry, BUNDLED if bundled else f"{origin}:{entry.name}"))
    return out


def attribute_of(module: ModuleType, attribute: str, origin: str, where: str) -> Any:
    """``module``'s (dotted) ``attribute``; a `UsageError` naming the closest name when it has none."""
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            names = [n for n in vars(module) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{where}{origin} has no attribute {attribute!r}{hint}")
        value = getattr(value, part)
    return value


def targets_of(module: ModuleType, attribute: str | None, origin: str, where: str) -> list[Target]:
    """The targets of a module, or of one of its attributes."""
    if attribute is None:
        found = _discover(module, origin, where)
        if not found:
            raise UsageError(
                f"{where}{origin}: no specs found (a file or module offers its Spec objects, functions "
                "annotated `-> Spec` whose parameters all have defaults, and Registry entries)"
            )
        return found
    value = attribute_of(module, attribute, origin, where)
    label = f"{origin}:{attribute}"
    if isinstance(value, Spec):
        return [_from_spec(value, label, (module.__name__, attribute))]
    if isinstance(value, Registry):
        return _registry(value, None, label)
    if isinstance(value, ModuleType):
        return targets_of(value, None, label, where)
    if callable(value) and not isinstance(value, type):
        target = _builder(value, label, where, explicit=True)
        assert target is not None
        return [target]
    kind = "a class" if isinstance(value, type) else f"a {type(value).__name__}"
    raise UsageError(f"{where}{label} is {kind}, not a Spec, a spec builder or a Registry")


def _discover(module: ModuleType, origin: str, where: str) -> list[Target]:
    builders: list[Target] = []
    objects: list[Target] = []
    for attr, value in list(vars(module).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, Spec):
            objects.append(_from_spec(value, f"{origin}:{attr}", (module.__name__, attr)))
        elif isinstance(value, Registry):
            builders += _registry(value, module, origin)
        elif inspect.isfunction(value) and value.__module__ == module.__name__ and _returns_spec(value):
            target = _builder(value, f"{origin}:{attr}", where, explicit=False)
            if target is not None:
                builders.append(target)
    built = {t.name for t in builders}
    return unique([*builders, *(t for t in objects if t.name not in built)], keep_order_of=vars(module))


def unique(targets: Iterable[Target], keep_order_of: Mapping[str, Any] | None = None) -> list[Target]:
    """Targets without repeats of one source, in first-seen order."""
    seen: dict[int, Target] = {}
    for t in targets:
        seen.setdefault(id(t.source), t)
    out = list(seen.values())
    if keep_order_of is not None:
        order = {id(v): i for i, v in enumerate(keep_order_of.values())}
        out.sort(key=lambda t: order.get(id(t.source), len(order)))
    return out


def by_name(targets: Iterable[Target]) -> dict[str, Target]:
    """Targets by spec name; two different ones with one name are an error naming both origins."""
    out: dict[str, Target] = {}
    for t in targets:
        other = out.get(t.name)
        if other is not None and other.source is not t.source:
            raise UsageError(f"two specs are called {t.name!r}: {other.origin} and {t.origin}")
        out.setdefault(t.name, t)
    return out
