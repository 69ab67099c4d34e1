"""Errors that point at the user's code: which callable, where it is defined, in which state, reached how.

Every kind of user code the kernel calls gets one test: a function that
raises when the counter reaches 2 must come back as a `UserCodeError` whose
one-line message names the model, the row or property, and ``file:line`` of
the function, and whose trace is the shortest one to the state it failed in.
Then the definition mistakes that used to pass silently or fail obscurely:
NaN, mutable and unhashable states, updates returning another type, emits
returning something other than a tuple.
"""

from __future__ import annotations

import inspect
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest

from statewright.kernel import (
    Action,
    DefinitionError,
    Guard,
    Machine,
    Route,
    Spec,
    System,
    SystemGuard,
    Transition,
    UserCodeError,
    always,
    always_step,
    check,
    sometimes,
    step,
)


class P(Enum):
    COUNTING = 1


@dataclass(frozen=True, slots=True)
class Count:
    phase: P = P.COUNTING
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    n: int


@dataclass(frozen=True, slots=True)
class Other:
    phase: P = P.COUNTING
    n: int = 0


def below_3(s: Count, i: Inc) -> bool:
    return s.n < 3


def bump(s: Count, i: Inc) -> Count:
    return replace(s, n=s.n + 1)


ROW = "transition #0 (COUNTING --Inc[below_3]--> COUNTING)"
COUNTED = "in Count(phase=<P.COUNTING: 1>, n=2) with Inc()"


def counter(name: str = "counter", **row: Any) -> Machine[Count]:
    """0 -> 1 -> 2 -> 3 by Inc; ``row`` overrides the row's guard, update or emit."""
    fields: dict[str, Any] = {"guard": below_3, "update": bump, **row}
    return Machine(name, initial=Count(), transitions=[Transition(P.COUNTING, Inc, P.COUNTING, **fields)])


def spec_of(model: Machine[Any] | System[Any], inputs: Any = (Inc(),), **kw: Any) -> Spec:
    domain = inputs if isinstance(model, System) or callable(inputs) else list(inputs)
    return Spec("spec", model, domain, deadlock=False, **kw)


def at(fn: Callable[..., Any]) -> str:
    """``file:line`` of ``fn``'s definition, found independently of the kernel."""
    return f"{__file__}:{inspect.getsourcelines(fn)[1]}"


def failure(run: Callable[[], object]) -> UserCodeError:
    with pytest.raises(UserCodeError) as info:
        run()
    err = info.value
    assert "\n" not in str(err)
    return err


def expect(err: UserCodeError, head: str, fn: Callable[..., Any], problem: str, trace: int | None) -> None:
    """``str(err)`` is ``head (file:line) problem...`` and the trace has ``trace`` states."""
    assert str(err).startswith(f"{head} ({at(fn)}) {problem}"), str(err)
    assert err.location == at(fn) and err.function == fn.__qualname__
    assert (len(err.trace) if err.trace is not None else None) == trace


# -- callables that raise once the counter reaches 2 -------------------------------


def flaky_guard(s: Count, i: Inc) -> bool:
    return 10 // (2 - s.n) > 0


def flaky_update(s: Count, i: Inc) -> Count:
    return replace(s, n={0: 1, 1: 2}[s.n])


def flaky_emit(s: Count, i: Inc) -> tuple[Any, ...]:
    return (Ping({1: 1, 2: 2}[s.n]),)


def flaky_state(s: Count) -> bool:
    return 10 // (2 - s.n) > 0


def flaky_witness(s: Count) -> bool:
    return 10 // (2 - s.n) < 0


def flaky_step(before: Count, event: Any, after: Count) -> bool:
    return 10 // (2 - before.n) > 0


def flaky_domain(s: Count) -> list[Inc]:
    return [Inc()] * (10 // (2 - s.n))


def flaky_global(before: Any, act: Action, after: Any) -> bool:
    return bool(10 // (2 - before.a.n) > 0)


def flaky_gate(view: Any, me: int, event: Inc) -> bool:
    return bool(10 // (2 - view.a.n) > 0)


ROUTES: dict[str, tuple[str, Inc]] = {"a": ("b", Inc())}


def flaky_route(effect: Ping, source: str) -> tuple[str, Inc]:
    return ROUTES["a" if effect.n < 2 else "b"]


DIVIDED = "raised ZeroDivisionError: integer division or modulo by zero"


# -- a machine's own rows ------------------------------------------------------------


def test_a_raising_guard_names_the_row_the_guard_and_its_line() -> None:
    err = failure(lambda: check(spec_of(counter(guard=flaky_guard))))
    row = "transition #0 (COUNTING --Inc[flaky_guard]--> COUNTING)"
    assert str(err) == f"machine 'counter', {row}, guard 'flaky_guard' ({at(flaky_guard)}) {DIVIDED}, {COUNTED}"
    assert err.machine == "counter" and err.spec == "spec" and err.where == f"{row}, guard 'flaky_guard'"
    assert err.state == Count(n=2) and err.input == Inc()
    assert isinstance(err.original, ZeroDivisionError) and err.__cause__ is err.original
    assert err.trace is not None and [s.state.n for s in err.trace] == [0, 1, 2]


def test_a_raising_update_names_the_row() -> None:
    err = failure(lambda: check(spec_of(counter(update=flaky_update))))
    expect(err, f"machine 'counter', {ROW}, update", flaky_update, "raised KeyError: 2, " + COUNTED, 3)


def test_a_raising_emit_names_the_row() -> None:
    err = failure(lambda: check(spec_of(counter(emit=flaky_emit))))
    # emit is given the new state: the step from 2 to 3 fails, found expanding n=2
    expect(err, f"machine 'counter', {ROW}, emit", flaky_emit,
           "raised KeyError: 3, in Count(phase=<P.COUNTING: 1>, n=3)", 3)


def test_a_raising_invariant_names_the_property_with_the_trace_to_its_state() -> None:
    err = failure(lambda: check(spec_of(counter(), properties=[always("calm", flaky_state)])))
    expect(err, "spec 'spec', property 'calm'", flaky_state, DIVIDED + ", in Count(phase=<P.COUNTING: 1>, n=2)", 3)
    assert err.input is None


def test_a_raising_sometimes_names_the_property() -> None:
    err = failure(lambda: check(spec_of(counter(), properties=[sometimes("seen", flaky_witness)])))
    expect(err, "spec 'spec', property 'seen'", flaky_witness, DIVIDED, 3)


def test_a_raising_transition_property_of_a_machine_names_it() -> None:
    err = failure(lambda: check(spec_of(counter(), properties=[always_step("grows", flaky_step)])))
    expect(err, "machine 'counter', property 'grows'", flaky_step, DIVIDED + ", " + COUNTED, 3)
    assert err.spec == "spec"


def test_a_raising_constraint_is_named() -> None:
    err = failure(lambda: check(spec_of(counter(), constraint=flaky_state)))
    expect(err, "spec 'spec', constraint", flaky_state, DIVIDED, 3)


def test_a_raising_final_is_named() -> None:
    spec = Spec("spec", counter(guard=Guard("below_2", lambda s, i: s.n < 2)), [Inc()], final=flaky_state)
    err = failure(lambda: check(spec))
    expect(err, "spec 'spec', final", flaky_state, DIVIDED, 3)


def test_a_raising_input_domain_is_named() -> None:
    err = failure(lambda: check(spec_of(counter(), flaky_domain)))
    expect(err, "machine 'counter', input domain", flaky_domain, DIVIDED + ", in Count(phase=<P.COUNTING: 1>, n=2)", 3)


# -- systems -----------------------------------------------------------------------------


def pair(**kw: Any) -> System[Any]:
    return System("pair", {"a": counter(), "b": counter()}, **kw)


def test_a_raising_input_domain_of_an_instance_names_the_instance() -> None:
    err = failure(lambda: check(spec_of(pair(), {"a": flaky_domain, "b": [Inc()]})))
    expect(err, "machine 'counter', input domain of instance 'a'", flaky_domain, DIVIDED, 3)


def test_a_raising_system_guard_names_the_system_and_the_guard() -> None:
    model = pair(guards=[SystemGuard("calm", Inc, flaky_gate)])
    err = failure(lambda: check(spec_of(model, {"a": [Inc()], "b": [Inc()]})))
    expect(err, "spec 'spec', system 'pair', system guard 'calm'", flaky_gate, DIVIDED, 3)
    assert err.input == Action("a", Inc())


def test_a_raising_system_transition_property_names_it() -> None:
    spec = spec_of(pair(), {"a": [Inc()], "b": [Inc()]}, properties=[always_step("steady", flaky_global)])
    err = failure(lambda: check(spec))
    expect(err, "spec 'spec', property 'steady'", flaky_global, DIVIDED, 3)
    assert err.input == Action("a", Inc())


def test_a_raising_per_instance_property_names_the_machine_and_property() -> None:
    spec = spec_of(pair(), {"a": [Inc()], "b": [Inc()]}, properties=[always_step("grows", flaky_step, each=True)])
    err = failure(lambda: check(spec))
    expect(err, "machine 'counter', property 'grows'", flaky_step, DIVIDED + ", " + COUNTED, 3)


def test_a_raising_route_names_the_effect_it_routes() -> None:
    pinger = counter("pinger", guard=Guard("below_2", lambda s, i: s.n < 2), emit=lambda s, i: (Ping(s.n),))
    model: System[Any] = System("pair", {"a": pinger, "b": counter()}, routes=[Route(Ping, flaky_route)])
    err = failure(lambda: check(spec_of(model, {"a": [Inc()]})))
    # (0, 0) -> (1, 1); expanding (1, 1) emits Ping(2), whose route raises
    expect(err, "spec 'spec', system 'pair', route of Ping", flaky_route, "raised KeyError: 'b', in PairState(", 2)
    assert err.input == Ping(2)


def test_system_step_at_run_time_raises_the_same_error_without_a_trace() -> None:
    model = pair(guards=[SystemGuard("calm", Inc, flaky_gate)])
    state = model.make([Count(n=2), Count()])
    err = failure(lambda: model.step(state, Action("b", Inc())))
    expect(err, "system 'pair', system guard 'calm'", flaky_gate, DIVIDED, None)
    assert err.spec is None and err.machine is None


# -- the pure step ------------------------------------------------------------------------


def test_step_raises_a_user_code_error_caused_by_the_original() -> None:
    err = failure(lambda: step(counter(guard=flaky_guard), Count(n=2), Inc()))
    assert err.trace is None and err.spec is None and err.machine == "counter"
    assert isinstance(err.__cause__, ZeroDivisionError) and err.original is err.__cause__
    assert str(err).endswith(f"guard 'flaky_guard' ({at(flaky_guard)}) {DIVIDED}, {COUNTED}")


def test_a_named_lambda_is_located_at_its_own_line() -> None:
    boom = Guard("boom", lambda s, i: s.n // 0 > 0)
    err = failure(lambda: step(counter(guard=boom), Count(), Inc()))
    assert err.location == at(boom.test) and err.function.endswith("<locals>.<lambda>")
    assert err.where == "transition #0 (COUNTING --Inc[boom]--> COUNTING), guard 'boom'"


def test_a_definition_error_raised_by_user_code_passes_through_unchanged() -> None:
    mine = DefinitionError("the model says no")

    def refuse(s: Count, i: Inc) -> bool:
        raise mine

    with pytest.raises(DefinitionError) as info:
        check(spec_of(counter(guard=refuse)))
    assert info.value is mine and not isinstance(info.value, UserCodeError)


# -- values a callable returned that cannot be used ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Gauge:
    phase: P = P.COUNTING
    x: float = 0.0


def nan_at_1(s: Gauge, i: Inc) -> Gauge:
    return replace(s, x=1.0 if s.x == 0.0 else math.nan)


def test_a_nan_in_a_state_is_refused_at_the_row_that_made_it() -> None:
    gauge = Machine("gauge", initial=Gauge(), transitions=[Transition(P.COUNTING, Inc, P.COUNTING, update=nan_at_1)])
    err = failure(lambda: check(spec_of(gauge)))
    expect(err, "machine 'gauge', transition #0 (COUNTING --Inc--> COUNTING), update", nan_at_1,
           "returned a state that holds nan, which is not equal to itself", 2)
    assert err.state == Gauge(x=1.0) and err.original is None


@dataclass(frozen=True, slots=True)
class Tagged:
    phase: P = P.COUNTING
    tags: tuple[Any, ...] = ()


def nested_nan(s: Tagged, i: Inc) -> Tagged:
    return replace(s, tags=(frozenset({("x", math.nan)}),))


def test_a_nan_deep_inside_tuples_and_frozensets_is_found() -> None:
    tagged = Machine("tagged", initial=Tagged(), transitions=[
        Transition(P.COUNTING, Inc, P.COUNTING, update=nested_nan)])
    err = failure(lambda: check(spec_of(tagged)))
    expect(err, "machine 'tagged', transition #0 (COUNTING --Inc--> COUNTING), update", nested_nan,
           "returned a state that holds nan", 1)


@dataclass
class Loose:
    phase: P = P.COUNTING
    n: int = 0

    __hash__ = object.__hash__


def mutate_in_place(s: Loose, i: Inc) -> Loose:
    s.n += 1
    return s


def test_a_mutable_state_is_refused_before_an_update_can_change_it_in_place() -> None:
    loose = Machine("loose", initial=Loose(), transitions=[
        Transition(P.COUNTING, Inc, P.COUNTING, guard=Guard("below_3", lambda s, i: s.n < 3), update=mutate_in_place)])
    err = failure(lambda: check(spec_of(loose)))
    assert str(err) == ("machine 'loose', initial state is Loose(phase=<P.COUNTING: 1>, n=0), a dataclass that is "
                        "not frozen (use @dataclass(frozen=True)), in Loose(phase=<P.COUNTING: 1>, n=0)")
    assert err.location == "" and err.spec == "spec" and err.trace is not None and len(err.trace) == 1


@dataclass(unsafe_hash=True)
class Box:
    items: int = 0


@dataclass(frozen=True, slots=True)
class Boxed:
    phase: P = P.COUNTING
    box: Box | None = None


def box_it(s: Boxed, i: Inc) -> Boxed:
    return replace(s, box=Box())


def test_a_mutable_value_inside_a_frozen_state_is_refused() -> None:
    boxed = Machine("boxed", initial=Boxed(), transitions=[Transition(P.COUNTING, Inc, P.COUNTING, update=box_it)])
    err = failure(lambda: check(spec_of(boxed)))
    expect(err, "machine 'boxed', transition #0 (COUNTING --Inc--> COUNTING), update", box_it,
           "returned a state that holds Box(items=0), a dataclass that is not frozen", 1)


def other_class(s: Count, i: Inc) -> Other:
    return Other(n=s.n + 1)


def as_dict(s: Count, i: Inc) -> dict[str, int]:
    return {"n": s.n + 1}


@pytest.mark.parametrize(("update", "returned"), [
    (other_class, "returned Other(phase=<P.COUNTING: 1>, n=1), not a Count"),
    (as_dict, "returned dict {'n': 1}, not a Count"),
])
def test_an_update_returning_another_type_is_refused(update: Callable[..., Any], returned: str) -> None:
    err = failure(lambda: check(spec_of(counter(update=update))))
    expect(err, f"machine 'counter', {ROW}, update", update, returned, 1)
    assert err.state == Count()


@dataclass(frozen=True, slots=True)
class Bag:
    phase: P = P.COUNTING
    items: Any = ()


def listify(s: Bag, i: Inc) -> Bag:
    return replace(s, items=[1])


def test_an_unhashable_state_is_refused() -> None:
    bag = Machine("bag", initial=Bag(), transitions=[Transition(P.COUNTING, Inc, P.COUNTING, update=listify)])
    err = failure(lambda: check(spec_of(bag)))
    expect(err, "machine 'bag', transition #0 (COUNTING --Inc--> COUNTING), update", listify,
           "returned Bag(phase=<P.COUNTING: 1>, items=[1]), which is not hashable (unhashable type: 'list')", 1)


def test_an_unhashable_initial_state_is_refused() -> None:
    bag = Machine("bag", initial=Bag(items=[0]), transitions=[Transition(P.COUNTING, Inc, P.COUNTING)])
    err = failure(lambda: check(spec_of(bag)))
    assert str(err).startswith("machine 'bag', initial state is not hashable (unhashable type: 'list')")


def test_an_initial_state_of_another_type_is_refused_naming_the_instance() -> None:
    model: System[Any] = System("pair", {"a": counter(), "b": counter()}, initial_states={"b": {"n": 0}})
    err = failure(lambda: check(spec_of(model, {"a": [Inc()], "b": [Inc()]})))
    assert str(err).startswith("machine 'counter', initial state of instance 'b' is dict {'n': 0}, not a Count, in ")
    assert err.spec == "spec" and err.trace is not None and len(err.trace) == 1


def test_an_unhashable_input_names_the_domain() -> None:
    err = failure(lambda: check(spec_of(counter(), [[1]])))
    assert str(err) == ("machine 'counter', input domain produced list [1], which is not hashable "
                        "(use frozen dataclasses), in Count(phase=<P.COUNTING: 1>, n=0)")
    assert err.trace is not None and len(err.trace) == 1


def single(s: Count, i: Inc) -> Any:
    return Ping(s.n)


def listed(s: Count, i: Inc) -> Any:
    return [Ping(s.n)]


def nothing(s: Count, i: Inc) -> Any:
    return None


@pytest.mark.parametrize(("emit", "returned"), [
    (single, "returned Ping(n=1), not a tuple of effects"),
    (listed, "returned list [Ping(n=1)], not a tuple of effects"),
    (nothing, "returned None, not a tuple of effects"),
])
def test_an_emit_that_returns_no_tuple_is_refused(emit: Callable[..., Any], returned: str) -> None:
    err = failure(lambda: check(spec_of(counter(emit=emit))))
    expect(err, f"machine 'counter', {ROW}, emit", emit, returned, 1)
    err = failure(lambda: step(counter(emit=emit), Count(), Inc()))
    expect(err, f"machine 'counter', {ROW}, emit", emit, returned, None)


def test_an_undeclared_effect_is_refused() -> None:
    m = Machine("counter", initial=Count(), effects=(Ping,), transitions=[
        Transition(P.COUNTING, Inc, P.COUNTING, guard=below_3, update=bump, emit=lambda s, i: (Ping(s.n), s.n))])
    err = failure(lambda: check(spec_of(m)))
    assert str(err).startswith(f"machine 'counter', {ROW}, emit (")
    assert "returned int 1 among its effects, which is not in the machine's effects" in str(err)


# -- the error itself ---------------------------------------------------------------------------


def test_long_reprs_are_cut_and_the_message_stays_one_line() -> None:
    err = UserCodeError(where="property 'p'", problem="raised ValueError: a\nb", state="x" * 5000, input=None)
    assert str(err) == "property 'p' raised ValueError: a\\nb, in '" + "x" * 196 + "..."


def test_attributes_are_read_only_and_within_fills_in_what_is_missing() -> None:
    err = UserCodeError(where="constraint", problem="raised KeyError: 'k'", state=1, machine="m")
    with pytest.raises(AttributeError):
        err.where = "elsewhere"
    filled = err.within(spec="s", trace=())
    assert (filled.spec, filled.trace, filled.machine) == ("s", (), "m")
    assert filled.within(spec="other").spec == "s"


def test_the_error_survives_pickling() -> None:
    err = failure(lambda: check(spec_of(counter(update=as_dict))))
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is UserCodeError and str(again) == str(err) and again.trace == err.trace
