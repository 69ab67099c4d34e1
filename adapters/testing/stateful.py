"""Hypothesis suites generated from a spec: random programs against the model.

`suite(spec)` builds a `RuleBasedStateMachine` whose model state is the
spec's machine state (or system view). It reads the same transition table as
`step` and the checker, applies every action with `kernel.system.settle` (a
lone machine as a one-instance system) and judges the microsteps it returns;
what determinism, terminal precedence and deadlock mean comes from
`kernel.checker.semantics`, as for the checker:

* one rule per compiled table row (per source phase) of every *group* of
  instances -- instances sharing a machine and an input domain, as the
  checker's local tables do -- named ``<group>__<SOURCE>_<Input>[_<guard>]_<TARGET>``;
* for a system the rule's instance is drawn from a `Bundle` that an
  ``@initialize`` rule fills with the group's instance names; its input is
  drawn (``st.data()``) from the instance's domain inputs -- a list, or a
  function of its local state -- that this row would take right now;
* its precondition holds exactly when some domain input of some instance in
  the group is accepted with this row as the first enabled one (as `step`
  picks rows; every enabled one under ``determinism=False``), system guards
  and routed inputs included; an instance drawn with nothing to take by the
  row makes the step a no-op, never a rejected example. An input that may go
  several ways (a ``choose`` row, routed inputs to one, or several rows) is
  drawn together with the way, as the checker explores each;
* after each rule every ``transition`` property (per instance with
  ``each=True``), terminal precedence and determinism are asserted, and every
  ``always`` property is an ``@invariant``;
* a ``restart`` rule, enabled only where nothing else is, checks that the
  state is final (no deadlock) and starts the model over from its initial
  state, so a lifecycle that ends early does not waste the rest of the
  program;
* an ``explore`` initialize rule picks, per program, whether rules prefer
  actions that reach a state the program has not seen yet (3 programs in 4)
  or choose uniformly among everything enabled. Random walks keep falling
  back to states they have seen (DieHard's shortest solution is found by
  about 1 in 270 uniform 30-step walks); preferring new states finds it
  within a few dozen programs, and the uniform programs still take the
  self-loops and returns a novelty walk skips.

Properties the spec *expects* to be violated are left out unless
``include_expected=True``: the suite tests what must hold. A failure raises
`PropertyViolation` (an ``AssertionError``) naming the property, with a note
holding the inputs the program took as a `replay` call.

`run_suite` runs a suite with a seed (0 unless given, so every run draws the
same programs) and, on a failure, shrinks hypothesis's program further to
the inputs that matter and prints them as Python to paste -- ``replay(spec,
[Action(instance='i1', input=Stage()), ...])`` after the lines that rebuild
the spec -- with the seed that finds it again. `replay` feeds such a list of
inputs, or a checker trace, through the same logic, and `regression_test`
turns a counterexample into a pytest function in one call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from hypothesis import HealthCheck, Phase, note, seed as hypothesis_seed, settings as Settings
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from statewright.adapters.testing.programs import program_text
from statewright.kernel.checker import check, semantics
from statewright.kernel.checker import Kind, Spec, TraceStep
from statewright.kernel.errors import DefinitionError
from statewright.kernel.machine import Machine, Rule
from statewright.kernel.step import Rejected, current_phase, enabled_rules
from statewright.kernel.system import Action, Blocked, Fired, Microstep, System, settlements

__all__ = [
    "DEFAULT_SEED",
    "PropertyViolation",
    "Replayed",
    "SuiteResult",
    "Way",
    "regression_test",
    "replay",
    "run_program",
    "run_suite",
    "suite",
]


class PropertyViolation(AssertionError):
    """A property of the spec failed in a generated (or replayed) program.

    ``step`` is the number of steps taken when it failed (set by `replay`).
    """

    def __init__(self, prop: str, detail: str) -> None:
        super().__init__(f"property {prop!r} violated: {detail}")
        self.property = prop
        self.detail = detail
        self.step: int | None = None


DEFAULT_SEED = 0
"""The seed `run_suite` draws programs from unless told otherwise: every run draws the same ones."""


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """What `run_suite` found: ``failure`` says what failed and how to reproduce it, None when it passed.

    ``examples`` counts the programs hypothesis ran (shrinking included) and
    ``steps`` the rules they applied; ``seed`` draws the same programs again.
    ``program`` is the failing program as Python to paste (a `replay` call
    after the lines that rebuild the spec), when it could be written so.
    """

    spec: str
    passed: bool
    examples: int
    steps: int
    seed: int
    failure: str | None = None
    program: str | None = None


@dataclass(frozen=True, slots=True)
class Way:
    """An input that may go several ways (a choosing row, or several enabled rows), and which way it takes.

    ``n`` counts from 0 in the order the suite finds the ways (rows in table
    order, then a row's choices); a bare input in a `replay` list takes way 0.
    """

    input: Any
    n: int


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay that raised nothing: ``steps`` taken, and why it stopped early (None: the whole trace)."""

    steps: int
    stopped: str | None = None


@dataclass(frozen=True, slots=True)
class _Group:
    """Instances sharing a machine and a domain: one bundle and one rule per row."""

    label: str
    machine: Machine[Any]
    positions: tuple[int, ...]
    names: tuple[str, ...]
    domain: Any  # a tuple of inputs, or fn(local state) -> inputs


@dataclass(frozen=True, slots=True)
class _Outcome:
    """An accepted action: the model state after it, `settle`'s microsteps and the compiled row of each."""

    state: Any
    microsteps: tuple[Microstep[Any], ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class _Moves:
    """Every accepted action from one state, by (group, first row) and by (instance, input).

    An action that may go several ways (a choosing row, or every enabled row
    of a spec without determinism) has one outcome per way: numbered within
    its row in ``by_rule``, listed in ``by_action``.
    """

    by_rule: Mapping[tuple[int, Rule], Mapping[tuple[str, Any, int], _Outcome]]
    by_action: Mapping[tuple[str, Any], list[tuple[int, Rule, _Outcome]]]
    ambiguous: tuple[str, ...]
    cut: bool


@dataclass
class _Stepper:
    """A spec compiled for stepping one action at a time, with its properties split by kind."""

    spec: Spec
    include_expected: bool
    groups: list[_Group] = field(default_factory=list)
    cache: dict[Any, _Moves] = field(default_factory=dict)
    strategies: dict[tuple[Any, ...], st.SearchStrategy[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec, model = self.spec, self.spec.model
        skip = set() if self.include_expected else set(spec.expect)
        props = [p for p in spec.properties if p.name not in skip]
        self.system: System[Any] | None = model if isinstance(model, System) else None
        self.always = [(p.name, p.test) for p in props if p.kind is Kind.ALWAYS]
        trans = [p for p in props if p.kind is Kind.STEP]
        self.local_props = [(p.name, p.test) for p in trans if p.each or self.system is None]
        self.global_props = [(p.name, p.test) for p in trans if not (p.each or self.system is None)]
        self.deadlock = spec.deadlock and "deadlock" not in skip
        self.determinism = spec.determinism and "determinism" not in skip
        self.every_row = not spec.determinism
        self.precedence = spec.terminal_precedence and "terminal_precedence" not in skip
        if self.system is None:
            assert isinstance(model, Machine)
            self.names: tuple[str, ...] = (model.name,)
            self.machines: tuple[Machine[Any], ...] = (model,)
            domains: list[Any] = [spec.inputs]
            # a lone machine steps as a one-instance system (no guards, no routes): one step for both
            self.stepping: System[Any] = System(model.name, {"machine": model})
        else:
            self.names, self.machines = self.system.names, self.system.machines
            raw = cast(Mapping[str, Any], spec.inputs)
            domains = [raw.get(n) for n in self.names]
            self.stepping = self.system
        # the compiled row of each (row index, source phase), per instance: what a microstep fired
        self.rows = [{(r.index, r.source): r for r in m.rules} for m in self.machines]
        keyed: dict[tuple[int, int], list[int]] = {}
        for k, d in enumerate(domains):
            if d is not None:
                keyed.setdefault((id(self.machines[k]), id(d)), []).append(k)
        counts: dict[str, int] = {}
        for ks in keyed.values():
            counts[self.machines[ks[0]].name] = counts.get(self.machines[ks[0]].name, 0) + 1
        for ks in keyed.values():
            m, d = self.machines[ks[0]], domains[ks[0]]
            label = m.name if counts[m.name] == 1 else f"{m.name}_{self.names[ks[0]]}"
            self.groups.append(_Group(_ident(label), m, tuple(ks), tuple(self.names[k] for k in ks),
                                      d if callable(d) else tuple(d)))

    def locals_of(self, state: Any) -> list[Any]:
        return [state] if self.system is None else list(state)

    def attempt(self, state: Any, k: int, event: Any) -> list[_Outcome]:
        """Every way one action may go (`settlements`, as the checker explores it); empty if refused."""
        settled = settlements(self.stepping, self.locals_of(state), k, event, state, self.brancher)
        if isinstance(settled, Blocked):
            return []
        return [
            _Outcome(s.after[0] if self.system is None else self.system.make(s.after), s.microsteps,
                     tuple(self.rule_of(m) for m in s.microsteps))
            for s in settled
        ]

    def brancher(self, k: int, local: Any, event: Any) -> Sequence[Fired[Any]] | Rejected:
        return self.stepping.branch_local(k, local, event, every_row=self.every_row)

    def rule_of(self, micro: Microstep[Any]) -> Rule:
        """The compiled row a microstep fired: its row index, from the phase it fired in."""
        m = self.machines[micro.position]
        return self.rows[micro.position][(micro.rule, current_phase(m, micro.before, micro.input))]

    def moves(self, state: Any) -> _Moves:
        """Every accepted domain action from ``state`` (memoised: the model is a function)."""
        found = self.cache.get(state)
        if found is not None:
            return found
        by_rule: dict[tuple[int, Rule], dict[tuple[str, Any, int], _Outcome]] = {}
        by_action: dict[tuple[str, Any], list[tuple[int, Rule, _Outcome]]] = {}
        ambiguous: list[str] = []
        constraint = self.spec.constraint
        cut = constraint is not None and not constraint(state)
        locals_ = self.locals_of(state)
        for gi, g in enumerate(self.groups if not cut else ()):
            for k, name in zip(g.positions, g.names):
                local = locals_[k]
                for event in tuple(g.domain(local)) if callable(g.domain) else g.domain:
                    enabled = enabled_rules(g.machine, local, event)
                    if not enabled:
                        continue
                    why = semantics.ambiguity(g.machine, local, event, enabled)
                    if why is not None:
                        ambiguous.append(why)
                    for out in self.attempt(state, k, event):
                        first = out.rules[0]
                        ways = by_rule.setdefault((gi, first), {})
                        n = sum(1 for (nm, ev, _) in ways if nm == name and ev == event)
                        ways[(name, event, n)] = out
                        by_action.setdefault((name, event), []).append((gi, first, out))
        moves = self.cache[state] = _Moves(by_rule, by_action, tuple(ambiguous), cut)
        return moves

    def judge_step(self, before: Any, name: str, event: Any, out: _Outcome) -> None:
        """Assert every transition property, terminal precedence and determinism on one action."""
        for micro, r in zip(out.microsteps, out.rules):
            for prop, test in self.local_props:
                if not test(micro.before, micro.input, micro.after):
                    who = "" if self.system is None else f"{micro.instance}: "
                    raise PropertyViolation(prop, f"{who}{micro.before!r} --{micro.input!r}--> {micro.after!r}")
            m = self.machines[micro.position]
            if self.precedence and semantics.leaves_terminal(m, r):
                raise PropertyViolation("terminal_precedence", f"{m.name} left terminal phase by {r.label}")
        if self.determinism:
            for micro in out.microsteps:
                m = self.machines[micro.position]
                why = semantics.ambiguity(m, micro.before, micro.input, enabled_rules(m, micro.before, micro.input))
                if why is not None:
                    raise PropertyViolation("determinism", why)
        if self.global_props:
            act = Action(name, event)
            for prop, test in self.global_props:
                if not test(before, act, out.state):
                    raise PropertyViolation(prop, f"{before!r} --{act!r}--> {out.state!r}")

    def judge_state(self, state: Any) -> None:
        """Assert every ``always`` property and determinism of the state's own inputs."""
        for prop, test in self.always:
            if not test(state):
                raise PropertyViolation(prop, f"in {state!r}")
        if self.determinism:
            amb = self.moves(state).ambiguous
            if amb:
                raise PropertyViolation("determinism", amb[0])

    def judge_quiescent(self, state: Any) -> None:
        """Nothing is enabled: that must be a final state (or a state the spec's constraint cuts)."""
        if not self.deadlock or self.moves(state).cut:
            return
        terminal = [m.is_terminal(s) for m, s in zip(self.machines, self.locals_of(state))]
        if not semantics.is_final(state, terminal, self.spec.final, spec=self.spec.name):
            raise PropertyViolation("deadlock", f"no input is accepted in non-final {state!r}")

    def choices(self, events: list[Any]) -> st.SearchStrategy[Any]:
        """``sampled_from(events)``, built once per distinct list (hypothesis validates each new strategy)."""
        key = tuple(events)
        found = self.strategies.get(key)
        if found is None:
            found = self.strategies[key] = st.sampled_from(key)
        return found

    def rule_names(self) -> dict[tuple[int, Rule], str]:
        """One method name per (group, compiled row), unique within the suite."""
        out: dict[tuple[int, Rule], str] = {}
        taken: set[str] = {"restart", "determinism", "explore", "teardown"}
        for gi, g in enumerate(self.groups):
            for r in g.machine.rules:
                guards = "".join(f"_{x.name}" for x in r.guards)
                base = _ident(f"{g.label}__{_pname(r.source)}_{r.input.__name__}{guards}_{_pname(r.target)}")
                name, n = base, 1
                while name in taken:
                    n += 1
                    name = f"{base}_{n}"
                taken.add(name)
                out[(gi, r)] = name
        return out


def suite(spec: Spec, *, include_expected: bool = False) -> type[RuleBasedStateMachine]:
    """Build the hypothesis state machine for ``spec`` (see the module docstring).

    >>> from hypothesis import settings
    >>> from hypothesis.stateful import run_state_machine_as_test
    >>> from statewright.specs import REGISTRY
    >>> DieHard = suite(REGISTRY.get("diehard").spec())
    >>> DieHard.__name__
    'DiehardSuite'
    >>> run_state_machine_as_test(DieHard, settings=settings(max_examples=5, database=None, derandomize=True))
    """
    plan = _Stepper(spec, include_expected)
    ns: dict[str, Any] = {"_plan": plan, "_counts": [0, 0], "_program": [],
                          "__doc__": f"Generated hypothesis suite for spec {spec.name!r}."}
    names = plan.rule_names()
    ns["_rule_names"] = names
    for gi, g in enumerate(plan.groups):
        bundle = None
        if plan.system is not None:
            bname = "instances" if len(plan.groups) == 1 else f"instances_{g.label}"
            bundle = ns[bname] = Bundle(bname)
            ns[f"init_{bname}"] = _initializer(bundle, g.names, f"init_{bname}")
        for r in g.machine.rules:
            # a row whose input is not in a fixed domain is only ever reached through a route
            if callable(g.domain) or any(type(e) is r.input for e in g.domain):
                ns[names[(gi, r)]] = _row_rule(plan, gi, r, bundle, names[(gi, r)])
    for prop, _test in plan.always:
        ns[_ident(f"always__{prop}")] = _invariant(plan, prop, _ident(f"always__{prop}"))
    if plan.determinism:
        ns["determinism"] = _invariant(plan, None, "determinism")
    ns["_invariant_names"] = [_ident(f"always__{p}") for p, _ in plan.always] + ["determinism"] * plan.determinism

    def __init__(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        self.state = plan.spec.model.initial
        self.seen = {self.state}
        self.novelty = False
        self.options_key = None
        self.options = None
        self._counts[0] += 1
        self._program.clear()  # the inputs this program took since the last start: what `replay` repeats

    def restart(self: Any) -> None:
        with _noted(self):
            plan.judge_quiescent(self.state)
        note("# nothing is enabled: start over from the initial state")
        self._program.clear()
        self.state = plan.spec.model.initial
        plan.judge_state(self.state)

    def explore(self: Any, prefer_new_states: bool) -> None:
        self.novelty = prefer_new_states

    ns["__init__"] = __init__
    ns["explore"] = initialize(prefer_new_states=st.sampled_from((True, True, True, False)))(explore)
    ns["restart"] = precondition(lambda self: not plan.moves(self.state).by_action)(rule()(restart))
    ns["__repr__"] = lambda self: f"{type(self).__name__}(state={self.state!r})"
    cls = type(f"{camel(spec.name)}Suite", (RuleBasedStateMachine,), ns)
    return cast(type[RuleBasedStateMachine], cls)


def _options(self: Any) -> Mapping[tuple[int, Rule], Mapping[tuple[str, Any, int], _Outcome]]:
    """The accepted actions a rule may draw from: those reaching a state new to this program, if any."""
    key = (self.state, len(self.seen))
    if self.options_key == key:
        return self.options  # type: ignore[no-any-return]
    plan: _Stepper = self._plan
    options: Mapping[tuple[int, Rule], Mapping[tuple[str, Any, int], _Outcome]] = plan.moves(self.state).by_rule
    if self.novelty:
        seen = self.seen
        fresh = {k: {a: o for a, o in v.items() if o.state not in seen} for k, v in options.items()}
        fresh = {k: v for k, v in fresh.items() if v}
        if fresh:
            options = fresh
    self.options_key, self.options = key, options
    return options


def _take(self: Any, gi: int, r: Rule, name: str, event: Any, n: int) -> None:
    """Apply way ``n`` of the accepted action ``name <- event`` (found among the state's moves) and judge it."""
    plan: _Stepper = self._plan
    moves = plan.moves(self.state)
    out = moves.by_rule[(gi, r)][(name, event, n)]
    way = next(k for k, w in enumerate(moves.by_action[(name, event)]) if w[2] is out)
    taken = event if plan.system is None else Action(name, event)
    self._program.append(Way(taken, way) if way else taken)
    before = self.state
    self.state = out.state
    self.seen.add(out.state)
    self._counts[1] += 1
    with _noted(self):
        plan.judge_step(before, name, event, out)


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    return fn


def _row_rule(plan: _Stepper, gi: int, r: Rule, bundle: Any, name: str) -> Any:
    """A rule for one row: draw an instance (from the bundle), then one of its inputs this row takes."""
    only = plan.groups[gi].names[0]

    def draw(self: Any, instance: str, data: st.DataObject) -> None:
        ways = _options(self).get((gi, r), {})
        events = [(e, n) for (nm, e, n) in ways if nm == instance]
        if not events:
            note(f"# no-op: {instance} takes no input by this row here")
            return
        if len(events) == 1:  # nothing to choose: a draw would only cost time
            event, n = events[0]
            note(f"# {instance} takes {event!r}" + (f" (way {n})" if n else ""))
        else:
            event, n = data.draw(plan.choices(events), label=f"{instance} takes (input, way)")
        _take(self, gi, r, instance, event, n)

    if bundle is None:
        def body(self: Any, data: st.DataObject) -> None:
            draw(self, only, data)
        decorated = rule(data=st.data())(_named(body, name))
    else:
        def sys_body(self: Any, instance: str, data: st.DataObject) -> None:
            draw(self, instance, data)
        decorated = rule(instance=bundle, data=st.data())(_named(sys_body, name))
    return precondition(lambda self: (gi, r) in _options(self))(decorated)


def _initializer(bundle: Any, names: tuple[str, ...], name: str) -> Any:
    def init(self: Any) -> Any:
        return multiple(*names)
    return initialize(target=bundle)(_named(init, name))  # type: ignore[no-untyped-call]


def _invariant(plan: _Stepper, prop: str | None, name: str) -> Any:
    tests = dict(plan.always)

    def check_always(self: Any) -> None:
        with _noted(self):
            if prop is None:
                amb = plan.moves(self.state).ambiguous
                if amb:
                    raise PropertyViolation("determinism", amb[0])
            elif not tests[prop](self.state):
                raise PropertyViolation(prop, f"in {self.state!r}")

    return invariant()(_named(check_always, name))


def run_suite(
    spec: Spec,
    *,
    examples: int = 200,
    steps: int = 50,
    seed: int | None = None,
    include_expected: bool = False,
    shrink: bool = True,
    spec_code: str | None = None,
    rerun: str | None = None,
) -> SuiteResult:
    """Run the generated suite of ``spec``; on failure, ``failure`` says what failed and how to reproduce it.

    Hypothesis draws the programs from ``seed`` (`DEFAULT_SEED` when None,
    so every run draws the same ones); no example database is used.
    ``shrink=False`` reports the first failing program as found (faster, longer).

    On a failure the inputs of hypothesis's shrunk program are shrunk further
    -- each is dropped while the rest still fail the same way -- and printed
    as Python to paste (`SuiteResult.program`): ``spec_code`` (lines that bind
    ``spec``; the command and the pytest plugin pass how to rebuild their
    target) and a `replay` call that raises the same failure. When the inputs
    alone do not reproduce it, hypothesis's own program is shown instead,
    without the invariant calls it makes after every step. The last line
    names the seed and ``rerun``, how to run the same programs again
    (default: the `run_suite` call).

    >>> from statewright.specs import REGISTRY
    >>> run_suite(REGISTRY.get("diehard").spec(), examples=5).passed
    True
    """
    seed = DEFAULT_SEED if seed is None else seed
    cls = suite(spec, include_expected=include_expected)
    counts: list[int] = cls._counts  # type: ignore[attr-defined]
    quiet = {f"state.{name}()" for name in cls._invariant_names}  # type: ignore[attr-defined]
    failed = _run(cls, examples=examples, steps=steps, seed=seed, shrink=shrink)
    if failed is None:
        return SuiteResult(spec.name, True, counts[0], counts[1], seed)
    exc, reported = failed
    again = rerun or f"run_suite(spec, examples={examples}, steps={steps}, seed={seed})"
    seed_line = f"seed {seed}: `{again}` runs the same programs and finds it again"
    plan: _Stepper = cls._plan  # type: ignore[attr-defined]
    inputs = _shortest(plan, list(cls._program), exc)  # type: ignore[attr-defined]
    if inputs is None:
        hypothesis_program = "\n".join(line for line in _failure(exc, reported).splitlines() if line not in quiet)
        return SuiteResult(spec.name, False, counts[0], counts[1], seed, f"{hypothesis_program}\n{seed_line}")
    program, exact = program_text(inputs, spec_code=spec_code, spec_name=spec.name)
    count = f"{len(inputs)} input{'' if len(inputs) == 1 else 's'}"
    how = "paste it into Python to reproduce the failure" if exact else \
        "some values are written by their repr and may need editing before it runs"
    text = "\n".join([_headline(exc), f"The failing program, shrunk to {count} ({how}):", "", program, "", seed_line])
    return SuiteResult(spec.name, False, counts[0], counts[1], seed, text, program)


def run_program(
    cls: type[RuleBasedStateMachine],
    *,
    examples: int,
    steps: int,
    seed: int | None,
    shrink: bool = True,
    quiet: Collection[str] = (),
) -> str | None:
    """Run a generated state machine under statewright's settings; the failing program, or None.

    No example database; derandomized unless ``seed`` is given. Lines in
    ``quiet`` (invariant calls hypothesis prints after every step) are left
    out of the printed program. Any exception, not only a property failure,
    counts as a failing program.
    """
    failed = _run(cls, examples=examples, steps=steps, seed=seed, shrink=shrink)
    if failed is None:
        return None
    return "\n".join(line for line in _failure(*failed).splitlines() if line not in quiet)


def _run(
    cls: type[RuleBasedStateMachine], *, examples: int, steps: int, seed: int | None, shrink: bool
) -> tuple[Exception, list[str]] | None:
    """Run the state machine's test: None when it passes, else the exception and what hypothesis reported.

    The last program hypothesis runs is the one it reports, so a suite's
    ``_program`` holds that program's inputs afterwards.
    """
    config = Settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate) + ((Phase.shrink,) if shrink else ()),
        print_blob=False,
        report_multiple_bugs=False,
    )
    test = get_state_machine_test(cls, settings=config)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    reported: list[str] = []
    try:
        with with_reporter(lambda value: reported.append(str(value))):
            test()
    except Exception as exc:
        return exc, reported
    return None


def _headline(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@contextmanager
def _noted(machine: Any) -> Iterator[None]:
    """Adds the program's inputs so far, as a `replay` call, to a `PropertyViolation` raised inside.

    So a suite run by hypothesis directly (``suite(spec).TestCase``) names
    the inputs too, not only hypothesis's rule calls.
    """
    try:
        yield
    except PropertyViolation as exc:
        text, _ = program_text(list(machine._program), spec_code=None, spec_name=machine._plan.spec.name)
        exc.add_note("The inputs, as a replay (statewright):\n" + text)
        raise


def _same_failure(plan: _Stepper, inputs: Sequence[Any], key: tuple[str, object]) -> bool:
    """Whether replaying ``inputs`` fails as the suite did: the same property, or the same exception type."""
    try:
        _replay_inputs(plan, inputs)
    except PropertyViolation as exc:
        return key == ("property", exc.property)
    except Exception as exc:
        return key == ("raised", type(exc))
    return False


def _shortest(plan: _Stepper, inputs: list[Any], exc: BaseException) -> list[Any] | None:
    """The fewest of ``inputs`` that still fail like ``exc`` (None when they do not reproduce it at all).

    Drops each input in turn and keeps the drop while the rest still fail
    the same way, until no single input can go: hypothesis shrinks the rule
    calls, and this removes what its program keeps for the rules' sake.
    """
    key = ("property", exc.property) if isinstance(exc, PropertyViolation) else ("raised", type(exc))
    if not _same_failure(plan, inputs, key):
        return None
    changed = True
    while changed:
        changed = False
        i = 0
        while i < len(inputs):
            fewer = inputs[:i] + inputs[i + 1:]
            if _same_failure(plan, fewer, key):
                inputs, changed = fewer, True
            else:
                i += 1
    return inputs


def _replay_inputs(plan: _Stepper, inputs: Sequence[Any]) -> Replayed:
    """Take ``inputs`` one by one from the model's initial state, judging as the suite does (see `replay`)."""
    state = plan.spec.model.initial
    taken = 0
    try:
        plan.judge_state(state)
        for taken, item in enumerate(inputs, 1):
            way = 0
            if isinstance(item, Way):
                item, way = item.input, item.n
            if plan.system is None:
                name, event = plan.names[0], item
            elif isinstance(item, Action):
                name, event = item.instance, item.input
            else:
                raise TypeError(f"replay: {plan.spec.name!r} is a system, so each input is an "
                                f"Action(instance, input); input {taken} is {item!r}")
            _hashable(plan.spec, taken, item)
            ways = plan.moves(state).by_action.get((name, event), [])
            if way >= len(ways):
                why = f"takes {event!r} in {len(ways)} ways, not way {way}" if ways else f"does not take {event!r}"
                return Replayed(taken - 1, f"step {taken}: {name} {why}")
            out = ways[way][2]
            before, state = state, out.state
            plan.judge_step(before, name, event, out)
            plan.judge_state(state)
        if not plan.moves(state).by_action:
            plan.judge_quiescent(state)  # what the suite's restart asserts where nothing is enabled
    except PropertyViolation as exc:
        exc.step = taken
        raise
    return Replayed(len(inputs))


def replay(
    spec: Spec, trace: Sequence[TraceStep] | Sequence[Any], *, include_expected: bool = True, loop: int | None = None
) -> Replayed:
    """Feed a checker trace, or a list of inputs, through the generated suite's logic, step by step.

    ``trace`` is a trace of ``check(spec)`` (`TraceStep`s), or the inputs to
    take from the model's initial state: inputs of the machine, or, for a
    system, ``Action(instance, input)``s; a `Way` picks one of the ways an
    input may go. A failing `run_suite` prints such a list. After the last
    input, a state where nothing is enabled must be final (no deadlock), as
    the suite asserts.

    For a lasso (a temporal counterexample, ``loop`` = `PropertyResult.loop`)
    the replay also checks that the loop closes: the last state steps back to
    the state at index ``loop`` (or stutters there when ``loop`` is the last
    index); `Replayed.stopped` says so when it does not.

    Raises `PropertyViolation` (with ``step`` set) where a property fails --
    for a trace of ``check(spec)`` that is the checker's own finding. Returns
    a `Replayed` when the trace runs out, or stops early where the model
    refuses a step or reaches a different state (a fixed model, say). Expected
    violations are asserted by default, so an expected finding replays too.
    A trace's failure carries a note with its inputs as such a list.

    >>> from statewright.kernel.checker import check
    >>> from statewright.specs import REGISTRY
    >>> from statewright.specs.diehard import BigToSmall, FillBig
    >>> spec = REGISTRY.get("diehard").spec()
    >>> trace = check(spec).result("not_solved").trace
    >>> try:
    ...     replay(spec, trace)
    ... except PropertyViolation as exc:
    ...     print(exc.property, "at step", exc.step)
    not_solved at step 6
    >>> replay(spec, [FillBig(), BigToSmall()])
    Replayed(steps=2, stopped=None)
    """
    cls = suite(spec, include_expected=include_expected)
    plan: _Stepper = cls._plan  # type: ignore[attr-defined]
    if trace and not isinstance(trace[0], TraceStep):
        if loop is not None:
            raise TypeError("replay: loop= belongs to a trace of TraceSteps, not to a list of inputs")
        return _replay_inputs(plan, trace)
    steps_: Sequence[TraceStep] = trace
    state = plan.spec.model.initial
    inputs: list[Any] = []
    start = ""
    taken = 0
    try:
        if steps_ and steps_[0].state != state:
            if steps_[0].state not in _initial_views(spec):
                return Replayed(0, f"the trace starts from {steps_[0].state!r}, not an initial state")
            state = steps_[0].state  # one of the spec's several initial states (Spec(init=...))
            start = f"# from the initial state {state!r}, not the model's own:\n"
        plan.judge_state(state)
        for taken, item in enumerate(steps_[1:], 1):
            if plan.system is None:
                name, event = plan.names[0], item.input
            else:
                name, event = item.input.instance, item.input.input
            _hashable(spec, taken, item.input)
            ways = plan.moves(state).by_action.get((name, event))
            if not ways:
                return Replayed(taken - 1, f"step {taken}: {name} does not take {event!r}")
            # the way the trace went (a choice, or one of several enabled rows); else the first
            way = next((k for k, w in enumerate(ways) if w[2].state == item.state), 0)
            out = ways[way][2]
            inputs.append(Way(item.input, way) if way else item.input)
            before, state = state, out.state
            plan.judge_step(before, name, event, out)
            plan.judge_state(state)
            if item.state != state:
                return Replayed(taken, f"step {taken}: reached {state!r}, the trace has {item.state!r}")
    except PropertyViolation as exc:
        exc.step = taken
        text, _ = program_text(inputs, spec_code=None, spec_name=spec.name)
        exc.add_note("The trace's inputs, as a replay:\n" + start + text)
        raise
    steps = max(len(steps_) - 1, 0)
    if loop is not None and loop < len(steps_) - 1:
        back = steps_[loop].state
        every = plan.moves(state).by_action.values()
        if not any(out.state == back for each in every for _, _, out in each):
            return Replayed(steps, f"the loop does not close: no input leads from step {steps} back to step {loop}")
    return Replayed(steps)


def _hashable(spec: Spec, step: int, event: Any) -> None:
    """A `DefinitionError` naming the step and the field when ``event`` cannot be hashed (as every input must)."""
    try:
        hash(event)
    except TypeError:
        from statewright.adapters.testing.traces import unhashable  # pydantic comes with it: only on this path

        raise DefinitionError(f"spec {spec.name!r}: replay: step {step}: {unhashable(event)}; "
                              "statewright's inputs must be hashable") from None


def _initial_views(spec: Spec) -> list[Any]:
    """Every initial state of ``spec`` as the states a trace shows."""
    from statewright.kernel.checker.space import StateSpace

    space = StateSpace(spec)
    return [space.view(key) for key in space.raw_initials]


def regression_test(spec: Spec, property_name: str, *, against: Spec | None = None) -> Callable[[], None]:
    """Check ``spec``, take the counterexample of ``property_name`` and return a test replaying it.

    The test replays the trace against ``against`` (default: ``spec`` itself,
    so it fails while the bug is there): it fails with `PropertyViolation`
    when the property is broken again and passes when the model refuses the
    trace or the trace no longer breaks it. ``test.trace`` holds the trace.

    >>> from statewright.specs import REGISTRY
    >>> entry = REGISTRY.get("input_lifecycle")
    >>> test = regression_test(entry.spec(n=2, stage_guard=False), "at_most_one_staged",
    ...                        against=entry.spec(n=2))
    >>> test()   # the fixed model refuses the second Stage
    """
    report = check(spec)
    result = report.result(property_name)
    if result.trace is None or result.holds is not False:
        report = check(spec, keep_going=True)
        result = report.result(property_name)
    if result.trace is None or result.holds is not False:
        raise DefinitionError(f"spec {spec.name!r}: property {property_name!r} has no counterexample to replay")
    trace = result.trace
    target = against if against is not None else spec

    def test() -> None:
        replay(target, trace)

    name = _ident(f"test_{spec.name}_{property_name}_regression")
    fn = _named(test, name)
    fn.__doc__ = f"Replays the {len(trace)}-state counterexample of {property_name!r} found in {spec.name!r}."
    fn.trace = trace  # type: ignore[attr-defined]
    return fn


def _failure(exc: BaseException, reported: list[str]) -> str:
    """The exception and the program hypothesis attached to it (as notes, or through the reporter)."""
    if isinstance(exc, BaseExceptionGroup):
        return "\n\n".join(_failure(e, []) for e in exc.exceptions)
    notes = [n for n in getattr(exc, "__notes__", ()) if not n.startswith(("Explanation:", "Highest target"))]
    return "\n".join([f"{type(exc).__name__}: {exc}", *(notes or reported)]).rstrip()


def _pname(phase: object) -> str:
    return phase.name if isinstance(phase, Enum) else repr(phase)


def _ident(text: str) -> str:
    out = re.sub(r"\W+", "_", text).strip("_")
    return out if out and not out[0].isdigit() else f"_{out}"


def camel(name: str) -> str:
    """A spec name as a class-name prefix: ``session_inputs`` -> ``SessionInputs``."""
    return "".join(part.capitalize() for part in re.split(r"[\W_]+", name) if part) or "Spec"
