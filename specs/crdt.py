"""CRDT: a grow-only counter gossiped between nodes, ported from tlaplus/Examples, specifications/FiniteMonotonic.

``CRDT.tla`` with its bounded model ``MC_Constraint_CRDT.tla``. Each node
keeps a view of every node's count; a node increments its own entry, and any
node may gossip its view to any node (itself included), which takes the
pointwise maximum. ``converge`` is a flag that, once set, stops increments:
from then on gossip alone must make every view equal.

TLA+ to the table
-----------------
* ``counter`` (a function of functions) is `Counters`'s ``counter``, a tuple
  of rows: ``counter[n][o]`` is node n's view of node o's count. Nodes are
  0..nodes-1 (TLA+'s model values n1, n2, ... in that order).
* ``Increment(n)``, ``Gossip(n, o)`` and ``Converge`` are inputs with the
  nodes as fields. ``Gossip`` has one row *per ordered pair*, each with a guard
  that picks its pair, because ``Fairness == \\A n, o : WF_vars(Gossip(n, o))``
  is one condition per pair, and a row is what a fairness condition can name.
  Gossip of a node to itself, or of nothing new, leaves the state as it is, as
  in TLA+; so does ``Converge`` once the flag is set.
* ``CONSTRAINT StateConstraint`` (every count at most ``bound``, 3) is
  ``Spec(constraint=...)``.
* Invariants ``TypeOK`` and ``Safety``; ``Monotonicity`` is an action property
  (``monotonic``); ``Liveness == converge ~> Convergence`` is ``leads_to``.

TLC 2.20, nodes {n1, n2}: 200 distinct states, depth 10, no error; TLC's
1,201 "states generated" are the initial state and the 1,200 steps that
statewright counts too. The upstream model, 3 nodes: 50,000 distinct states,
depth 17 (TLC: 20 s).

Seeded bugs (TLC's mutants), each breaking ``liveness``: ``fair=false`` drops
the fairness (``MC_Constraint_CRDT_NoFair``); ``one_way=true`` keeps it only
for gossip *from* node 0 (``MC_Constraint_CRDT_OneWay``), so node 0 may never
learn what the others counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from statewright.kernel.checker import Spec, always, always_step, leads_to, weak_fair
from statewright.kernel.machine import Guard, Machine, Transition
from statewright.specs.registry import REGISTRY

__all__ = ["Converge", "Counters", "Gossip", "Increment", "converged", "crdt", "crdt_machine"]


class Replica(Enum):
    """The counters have no lifecycle: one phase, all data."""

    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class Counters:
    phase: Replica = Replica.RUNNING
    counter: tuple[tuple[int, ...], ...] = ((0, 0), (0, 0))
    converge: bool = False


@dataclass(frozen=True, slots=True)
class Increment:
    """Node ``node`` counts one more."""

    node: int


@dataclass(frozen=True, slots=True)
class Gossip:
    """Node ``receiver`` merges ``sender``'s view into its own."""

    sender: int
    receiver: int


@dataclass(frozen=True, slots=True)
class Converge:
    """No more increments from here on."""


def converged(s: Counters) -> bool:
    """TLA+'s ``Convergence``: every node has the same view."""
    return all(row == s.counter[0] for row in s.counter)


def _increment(s: Counters, i: Increment) -> Counters:
    row = s.counter[i.node]
    mine = row[: i.node] + (row[i.node] + 1,) + row[i.node + 1 :]
    return replace(s, counter=s.counter[: i.node] + (mine,) + s.counter[i.node + 1 :])


def _gossip(s: Counters, i: Gossip) -> Counters:
    merged = tuple(map(max, s.counter[i.sender], s.counter[i.receiver]))
    return replace(s, counter=s.counter[: i.receiver] + (merged,) + s.counter[i.receiver + 1 :])


def _pair(n: int, o: int) -> Guard[Counters, Gossip]:
    return Guard(f"gossip_{n}_to_{o}", lambda _s, i: (i.sender, i.receiver) == (n, o))


def crdt_machine(nodes: int) -> Machine[Counters]:
    """The table for ``nodes`` nodes: Increment, Converge, and one Gossip row per ordered pair."""
    run = Replica.RUNNING
    zero = tuple((0,) * nodes for _ in range(nodes))
    return Machine(
        "crdt",
        initial=Counters(counter=zero),
        transitions=[
            Transition(run, Increment, run, guard=Guard("not_converging", lambda s, _: not s.converge),
                       update=_increment),
            *(Transition(run, Gossip, run, guard=_pair(n, o), update=_gossip)
              for n in range(nodes) for o in range(nodes)),
            Transition(run, Converge, run, update=lambda s, _: replace(s, converge=True)),
        ],
        doc="A grow-only counter CRDT with gossip between every pair of nodes.",
    )


def _monotonic(s: Counters, _: Any, t: Counters) -> bool:
    return all(a <= b for row, later in zip(s.counter, t.counter) for a, b in zip(row, later))


@REGISTRY.spec
def crdt(nodes: int = 2, bound: int = 3, fair: bool = True, one_way: bool = False) -> Spec:
    """Gossiped grow-only counters (TLA+ MC_Constraint_CRDT); fair=false or one_way=true break liveness."""
    machine = crdt_machine(nodes)
    gossip_rows = [row for row in machine.transitions if row.input is Gossip]
    pairs = [(n, o) for n in range(nodes) for o in range(nodes)]  # the order of gossip_rows
    fairness = [weak_fair(row) for (n, _o), row in zip(pairs, gossip_rows) if fair and (n == 0 or not one_way)]
    ok = fair and not one_way
    return Spec(
        "crdt",
        machine,
        inputs=[*(Increment(n) for n in range(nodes)), *(Gossip(n, o) for n, o in pairs), Converge()],
        properties=[
            always("type_ok", lambda s: all(len(row) == nodes and min(row) >= 0 for row in s.counter)),
            always("safety", lambda s: all(s.counter[n][n] >= s.counter[o][n] for n, o in pairs)),
            always_step("monotonic", _monotonic),
            leads_to("liveness", lambda s: s.converge, converged),
        ],
        constraint=lambda s: all(v <= bound for row in s.counter for v in row),
        fairness=fairness,
        expect=[] if ok else ["liveness"],
        doc=__doc__ or "",
    )
