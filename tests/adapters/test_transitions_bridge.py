"""The pytransitions bridge: its documentation's examples, round-tripped through the checker."""

from __future__ import annotations

import doctest
import itertools
import random
from typing import Any

import pytest
from transitions import Machine as PyMachine
from transitions import State
from transitions.core import MachineError
from transitions.extensions import HierarchicalMachine

from statewright.adapters.interop.transitions_bridge import Bridged, from_transitions, to_transitions
from statewright.kernel.checker import Status, Verdict, check
from statewright.kernel.errors import DefinitionError
from statewright.kernel.step import Accepted, Reason, Rejected

MATTER_STATES = ["solid", "liquid", "gas", "plasma"]
MATTER = [  # the pytransitions README's matter example, dict form
    {"trigger": "melt", "source": "solid", "dest": "liquid"},
    {"trigger": "evaporate", "source": "liquid", "dest": "gas"},
    {"trigger": "sublimate", "source": "solid", "dest": "gas"},
    {"trigger": "ionize", "source": "gas", "dest": "plasma"},
]
TRIGGERS = ["melt", "evaporate", "sublimate", "ionize"]


class Matter:
    """The README's model: conditions read its data."""

    def __init__(self, flammable: bool = False, hot: bool = False) -> None:
        self.flammable = flammable
        self.hot = hot

    def is_flammable(self) -> bool:
        return self.flammable

    def is_really_hot(self) -> bool:
        return self.hot


class NarcolepticSuperhero:
    """The pytransitions README's superhero, verbatim apart from annotations."""

    states = ["asleep", "hanging out", "hungry", "sweaty", "saving the world"]

    def __init__(self, name: str) -> None:
        self.name = name
        self.kittens_rescued = 0
        self.machine = PyMachine(model=self, states=NarcolepticSuperhero.states, initial="asleep")
        self.machine.add_transition(trigger="wake_up", source="asleep", dest="hanging out")
        self.machine.add_transition("work_out", "hanging out", "hungry")
        self.machine.add_transition("eat", "hungry", "hanging out")
        self.machine.add_transition("distress_call", "*", "saving the world", before="change_into_super_secret_costume")
        self.machine.add_transition("complete_mission", "saving the world", "sweaty", after="update_journal")
        self.machine.add_transition("clean_up", "sweaty", "asleep", conditions=["is_exhausted"])
        self.machine.add_transition("clean_up", "sweaty", "hanging out")
        self.machine.add_transition("nap", "*", "asleep")

    def update_journal(self) -> None:
        self.kittens_rescued += 1

    @property
    def is_exhausted(self) -> bool:
        return random.random() < 0.5

    def change_into_super_secret_costume(self) -> None:
        pass


def fire(model: Any, trigger: str, **kwargs: Any) -> bool | str:
    """A trigger's outcome as pytransitions reports it: True, False or 'MachineError'."""
    try:
        return bool(getattr(model, trigger)(**kwargs))
    except MachineError:
        return "MachineError"


def inputs(trace: Any) -> list[str]:
    return [repr(s.input) for s in trace[1:]]


# -- from_transitions -> check -------------------------------------------------------------


def test_matter_as_in_the_readme_finds_plasma_is_a_trap() -> None:
    lump = Matter()
    machine = PyMachine(lump, states=MATTER_STATES, transitions=MATTER, initial="liquid")
    bridged = from_transitions(machine)
    report = check(bridged.spec)
    assert report.verdict is Verdict.VIOLATED
    assert (report.distinct_states, report.depth) == (3, 3)
    dead = report.result("deadlock")
    assert dead.status is Status.VIOLATED and dead.trace is not None
    assert len(dead.trace) == 3 and inputs(dead.trace) == ["Evaporate()", "Ionize()"]
    assert dead.trace[-1].state.name == "plasma"
    assert [p.name for p in bridged.machine.phases] == ["liquid", "gas", "plasma"]
    assert "states unreachable from 'liquid' dropped: 'solid'" in bridged.notes
    assert bridged.machine.name == "Matter" and bridged.conditions == ()
    assert bridged.idle_triggers == ("melt", "sublimate")


def test_matter_config_with_plasma_final_verifies() -> None:
    states: list[Any] = ["solid", "liquid", "gas", State("plasma", final=True)]
    bridged = from_transitions({"states": states, "transitions": MATTER, "initial": "solid", "name": "matter"})
    report = check(bridged.spec)
    assert report.verdict is Verdict.OK and report.complete
    assert (report.distinct_states, report.generated, report.depth) == (4, 4, 3)
    assert {p.name for p in bridged.machine.terminal_phases} == {"plasma"}
    assert all(c.fired for c in report.coverage)
    # a dict state with final=True says the same
    same = from_transitions({"states": MATTER_STATES[:3] + [{"name": "plasma", "final": True}],
                             "transitions": MATTER, "initial": "solid"})
    assert check(same.spec).verdict is Verdict.OK


def test_list_form_transitions_and_initial_solid() -> None:
    config = {"states": MATTER_STATES, "initial": "solid",
              "transitions": [[t["trigger"], t["source"], t["dest"]] for t in MATTER]}
    bridged = from_transitions(config)
    report = check(bridged.spec)
    assert report.distinct_states == 4
    dead = report.result("deadlock").trace
    assert dead is not None and len(dead) == 3 and inputs(dead) == ["Sublimate()", "Ionize()"]
    assert set(bridged.triggers) == set(TRIGGERS)
    assert [t.__name__ for t in bridged.machine.input_types] == ["Melt", "Evaporate", "Sublimate", "Ionize"]


def test_conditions_are_explored_both_ways_in_declaration_order() -> None:
    matter = Matter()
    machine = PyMachine(matter, states=MATTER_STATES, transitions=MATTER, initial="solid")
    machine.add_transition("heat", "solid", "gas", conditions="is_flammable")
    machine.add_transition("heat", "solid", "liquid", conditions=["is_really_hot"])
    bridged = from_transitions(machine)
    assert bridged.conditions == ("is_flammable", "is_really_hot")
    assert [repr(i) for i in bridged.spec.inputs if type(i).__name__ == "Heat"] == [  # type: ignore[union-attr]
        "Heat(is_flammable=True, is_really_hot=True)",
        "Heat(is_flammable=True, is_really_hot=False)",
        "Heat(is_flammable=False, is_really_hot=True)",
        "Heat(is_flammable=False, is_really_hot=False)",
    ]
    # pytransitions takes the first passing transition, so the second row also needs the first to fail
    assert "solid --Heat[is_really_hot, not is_flammable]--> liquid" in bridged.machine.labels
    report = check(bridged.spec, keep_going=True)
    assert report.distinct_states == 4 and report.generated == 7
    assert report.result("determinism").status is Status.HOLDS
    fired = {c.label: c.fired for c in report.coverage}
    assert fired["solid --Heat[is_flammable]--> gas"] == 2  # whether or not it is also really hot
    assert fired["solid --Heat[is_really_hot, not is_flammable]--> liquid"] == 1


def test_superhero_verifies_with_both_clean_up_branches() -> None:
    batman = NarcolepticSuperhero("Batman")
    bridged = from_transitions(batman.machine)
    report = check(bridged.spec)
    assert report.verdict is Verdict.OK
    assert (report.distinct_states, report.generated, report.depth) == (5, 16, 3)
    assert bridged.conditions == ("is_exhausted",)
    fired = {c.label: c.fired for c in report.coverage}
    assert fired["sweaty --CleanUp[is_exhausted]--> asleep"] == 1
    assert fired["sweaty --CleanUp[not is_exhausted]--> hanging out"] == 1
    assert bridged.notes == (
        "callback ignored: before=change_into_super_secret_costume on trigger 'distress_call'",
        "callback ignored: after=update_journal on trigger 'complete_mission'",
        "auto transitions (to_<state>) skipped; pass auto_transitions=True to include them",
    )


def test_a_trap_behind_a_condition_is_a_deadlock_with_a_shortest_trace() -> None:
    order = PyMachine(
        name="order",
        states=["new", "paid", "shipped", "backordered", State("delivered", final=True)],
        transitions=[
            ["pay", "new", "paid"],
            {"trigger": "ship", "source": "paid", "dest": "shipped", "conditions": "in_stock"},
            ["ship", "paid", "backordered"],
            ["deliver", "shipped", "delivered"],
        ],
        initial="new",
    )
    bridged = from_transitions(order)
    report = check(bridged.spec)
    dead = report.result("deadlock")
    assert report.verdict is Verdict.VIOLATED and dead.trace is not None
    assert len(dead.trace) == 3
    assert inputs(dead.trace) == ["Pay()", "Ship(in_stock=False)"]
    assert dead.trace[-1].state.name == "backordered"


def test_unless_internal_and_reflexive() -> None:
    bridged = from_transitions({
        "states": ["idle", "busy"],
        "initial": "idle",
        "transitions": [
            {"trigger": "start", "source": "idle", "dest": "busy", "unless": "paused"},
            {"trigger": "poke", "source": "busy", "dest": None},
            {"trigger": "tick", "source": "*", "dest": "="},
            ["stop", "busy", "idle"],
        ],
    })
    assert bridged.machine.labels == (
        "idle --Start[not paused]--> busy",
        "busy --Poke--> busy",
        "idle --Tick--> idle",
        "busy --Tick--> busy",
        "busy --Stop--> idle",
    )
    report = check(bridged.spec)
    assert report.verdict is Verdict.OK and (report.distinct_states, report.generated) == (2, 5)


def test_leaving_a_final_state_is_kept_and_flagged_by_terminal_precedence() -> None:
    bridged = from_transitions({
        "states": ["a", {"name": "done", "final": True}],
        "initial": "a",
        "transitions": [["finish", "a", "done"], ["reset", "*", "a"]],
    })
    assert any("final state 'done' has transitions out" in n for n in bridged.notes)
    report = check(bridged.spec)
    tp = report.result("terminal_precedence")
    assert tp.status is Status.VIOLATED and tp.trace is not None
    assert inputs(tp.trace) == ["Finish()", "Reset()"]


def test_auto_transitions_on_request() -> None:
    machine = PyMachine(states=MATTER_STATES, transitions=MATTER, initial="liquid")
    bridged = from_transitions(machine, auto_transitions=True, name="matter")
    report = check(bridged.spec)
    assert report.verdict is Verdict.OK and report.distinct_states == 4
    assert "to_solid" in bridged.triggers and bridged.machine.name == "matter"


def test_a_transition_behind_an_unconditional_one_is_dropped_and_noted() -> None:
    bridged = from_transitions({"states": ["a", "b", "c"], "initial": "a",
                                "transitions": [["go", "a", "b"], ["go", "a", "c"], ["back", "b", "a"]]})
    assert bridged.machine.labels == ("a --Go--> b", "b --Back--> a")
    assert "transition 'go' 'a' -> 'c' dropped: an earlier unconditional transition of the same trigger always wins" in bridged.notes
    assert "states unreachable from 'a' dropped: 'c'" in bridged.notes


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (HierarchicalMachine(states=["a", {"name": "b", "children": ["x", "y"]}], initial="a"), "nested"),
        ({"states": ["a", {"name": "b", "children": ["x"]}], "initial": "a"}, "nested (hierarchical) states are not supported: 'b'"),
        ({"states": ["a"], "initial": "a", "transitions": [{"trigger": "go", "source": "a", "dest": "a",
                                                             "conditions": lambda: True}]}, "has no name"),
        ({"states": ["a", "b"], "initial": "a", "transitions": [["go", "a", "nowhere"]]}, "unknown state 'nowhere'"),
        ({"states": ["a", "b"], "initial": "a", "transitions": [["go", "b", "a"]]}, "no transition leaves the initial state 'a'"),
        ("not a machine", "needs a transitions.Machine"),
    ],
)
def test_what_the_bridge_refuses(source: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_transitions(source)


def test_the_config_dict_is_not_mutated() -> None:
    state = {"name": "plasma", "final": True}
    from_transitions({"states": MATTER_STATES[:3] + [state], "transitions": MATTER, "initial": "solid"})
    assert state == {"name": "plasma", "final": True}


# -- to_transitions: the round trip ----------------------------------------------------------


def run_sequence(model: Any, sequence: tuple[str, ...], **kwargs: Any) -> list[tuple[bool | str, str]]:
    return [(fire(model, t, **kwargs), str(model.state)) for t in sequence]


@pytest.mark.parametrize("initial", ["solid", "liquid"])
def test_matter_round_trip_agrees_with_pytransitions_on_every_sequence(initial: str) -> None:
    bridged = from_transitions({"states": MATTER_STATES, "transitions": MATTER, "initial": initial})
    check(bridged.spec)
    compared = 0
    for n in range(5):
        for sequence in itertools.product(TRIGGERS, repeat=n):
            original = Matter()
            PyMachine(original, states=MATTER_STATES, transitions=MATTER, initial=initial)
            ours = Matter()
            to_transitions(bridged, ours)
            assert run_sequence(ours, sequence) == run_sequence(original, sequence), sequence
            compared += 1
    assert compared == 1 + 4 + 16 + 64 + 256


def test_conditions_round_trip_agrees_with_the_model_data() -> None:
    def build(model: Matter) -> PyMachine:
        machine = PyMachine(model, states=MATTER_STATES, transitions=MATTER, initial="solid")
        machine.add_transition("heat", "solid", "gas", conditions="is_flammable")
        machine.add_transition("heat", "solid", "liquid", conditions=["is_really_hot"])
        return machine

    bridged = from_transitions(build(Matter()))
    for flammable, hot in itertools.product((True, False), repeat=2):
        original = Matter(flammable, hot)
        build(original)
        ours = to_transitions(bridged)  # the returned machine is its own model
        facts = {"is_flammable": flammable, "is_really_hot": hot}
        assert (fire(ours, "heat", **facts), ours.state) == (fire(original, "heat"), getattr(original, "state"))


def test_superhero_round_trip() -> None:
    bridged = from_transitions(NarcolepticSuperhero("Batman").machine)
    hero = to_transitions(bridged)
    assert hero.state == "asleep"
    assert hero.wake_up() and hero.distress_call() and hero.complete_mission()
    assert hero.state == "sweaty"
    assert hero.clean_up(is_exhausted=False) and hero.state == "hanging out"
    assert hero.statewright_state.name == "hanging out"
    result = hero.statewright_result
    assert isinstance(result, Accepted) and result.effects == ()
    with pytest.raises(MachineError, match="Can't trigger event eat from state hanging out"):
        hero.eat()


def test_guards_and_terminal_precedence_are_the_kernels() -> None:
    bridged = from_transitions({
        "states": ["draft", "review", State("published", final=True)],
        "initial": "draft",
        "transitions": [["submit", "draft", "review"],
                        {"trigger": "publish", "source": "review", "dest": "published", "conditions": "approved"},
                        ["revise", "review", "draft"]],
    })
    doc = to_transitions(bridged)
    assert doc.submit() is True
    assert doc.publish(approved=False) is False and doc.state == "review"
    rejected = doc.statewright_result
    assert isinstance(rejected, Rejected) and rejected.reason is Reason.GUARD_FAILED
    assert rejected.guards == ("approved",)
    assert doc.publish(approved=True) is True and doc.state == "published"
    with pytest.raises(MachineError):
        doc.revise()  # terminal: the table has no row out, so pytransitions has no transition
    assert doc.statewright_state.name == "published"


def test_to_transitions_on_a_kernel_machine_uses_snake_case_triggers() -> None:
    from dataclasses import dataclass
    from enum import Enum

    from statewright.kernel.machine import Machine, Transition

    class Phase(Enum):
        QUEUED = "queued"
        STAGED = "staged"
        DONE = "done"

    @dataclass(frozen=True, slots=True)
    class StageRun:
        run_id: str

    @dataclass(frozen=True, slots=True)
    class Finish:
        pass

    @dataclass(frozen=True, slots=True)
    class Staged:
        run_id: str

    def real_run(state: Any, event: StageRun) -> bool:
        return event.run_id != ""

    machine = Machine("input", initial=Phase.QUEUED, terminal={Phase.DONE}, transitions=[
        Transition(Phase.QUEUED, StageRun, Phase.STAGED, guard=real_run, emit=lambda s, i: (Staged(i.run_id),)),
        Transition(Phase.STAGED, Finish, Phase.DONE),
    ])

    class Model:
        pass

    model = Model()
    pm = to_transitions(machine, model)
    assert isinstance(pm, PyMachine) and model.state == "QUEUED"  # type: ignore[attr-defined]
    assert model.stage_run(run_id="") is False  # type: ignore[attr-defined]
    assert model.stage_run(run_id="r1") is True  # type: ignore[attr-defined]
    assert model.statewright_effects == (Staged("r1"),)  # type: ignore[attr-defined]
    assert model.finish() and model.state == "DONE"  # type: ignore[attr-defined]
    with pytest.raises(MachineError):
        model.stage_run(run_id="r2")  # type: ignore[attr-defined]


def test_the_bridged_value_is_frozen() -> None:
    bridged = from_transitions({"states": MATTER_STATES, "transitions": MATTER, "initial": "solid"})
    assert isinstance(bridged, Bridged)
    with pytest.raises(AttributeError):
        bridged.notes = ()  # type: ignore[misc]


README = '''
>>> from transitions import Machine, State
>>> from statewright.adapters.interop.transitions_bridge import from_transitions, to_transitions
>>> from statewright.kernel.checker import check
>>> order = Machine(
...     name="order",
...     states=["new", "paid", "shipped", "backordered", State("delivered", final=True)],
...     transitions=[
...         ["pay", "new", "paid"],
...         {"trigger": "ship", "source": "paid", "dest": "shipped", "conditions": "in_stock"},
...         ["ship", "paid", "backordered"],          # nothing ever leaves 'backordered'
...         ["deliver", "shipped", "delivered"],
...     ],
...     initial="new",
... )
>>> bridged = from_transitions(order)
>>> bridged.conditions                                # explored both ways
('in_stock',)
>>> report = check(bridged.spec)
>>> report.result("deadlock").status
<Status.VIOLATED: 'violated'>
>>> [(step.input, step.state.name) for step in report.result("deadlock").trace]
[(None, 'new'), (Pay(), 'paid'), (Ship(in_stock=False), 'backordered')]
>>> shop = to_transitions(bridged)                   # drive it with pytransitions' API
>>> shop.pay(), shop.ship(in_stock=True), shop.deliver(), shop.state
(True, True, True, 'delivered')
'''


def test_readme_snippet_runs() -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(README, {}, "readme", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
