"""The liveness engine: exact lassos on hand-made graphs, an independent validator, and random cross-checks.

The cross-checks decide every property twice more: by brute force over all
state subsets (tiny graphs), and by a networkx implementation of the same
fairness definitions (Streett refinement on networkx SCCs).
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Iterable, Sequence

import networkx as nx
import pytest

from statewright.kernel.checker.liveness import (
    CUT,
    STUTTER,
    Condition,
    Fairness,
    Graph,
    Lasso,
    always_eventually,
    eventually,
    eventually_always,
    leads_to,
    path_to,
    trapped,
)

Flags = Sequence[int]


def flags(n: int, *on: int) -> bytes:
    return bytes(1 if s in on else 0 for s in range(n))


def W(*labels: int) -> Condition:
    return Condition.weak(labels)


def S(*labels: int) -> Condition:
    return Condition.strong(labels)


# --- an independent validator -------------------------------------------------------------


def enabled(g: Graph, s: int, c: Condition) -> bool:
    return any(g.labels[e] in c.labels for e in g.edges_from(s))


def follow(g: Graph, lasso: Lasso) -> tuple[list[int], list[int]]:
    """Check the lasso walks real edges from an initial state and closes; return its cycle's states and edges."""
    states, edges, loop = lasso.states, lasso.edges, lasso.loop
    assert states and len(edges) == len(states) and 0 <= loop < len(states)
    assert states[0] in g.initial
    for i, (s, e) in enumerate(zip(states, edges)):
        nxt = states[i + 1] if i + 1 < len(states) else states[loop]
        if e == STUTTER:
            assert i == len(states) - 1 and loop == i, "only the last step may stutter"
        else:
            assert e in g.edges_from(s) and g.targets[e] == nxt, f"step {i}: edge {e} does not lead {s} -> {nxt}"
    return list(states[loop:]), [e for e in edges[loop:] if e != STUTTER]


def fair(g: Graph, cycle: Iterable[int], taken_edges: Iterable[int], fairness: Sequence[Condition]) -> bool:
    """The definitions, literally: WF taken or disabled somewhere; SF taken or enabled nowhere."""
    states, taken = set(cycle), {g.labels[e] for e in taken_edges}
    for c in fairness:
        took = bool(taken & c.labels)
        on = [enabled(g, s, c) for s in states]
        if c.kind is Fairness.WEAK and not (took or not all(on)):
            return False
        if c.kind is Fairness.STRONG and not (took or not any(on)):
            return False
    return True


def violates(prop: str, lasso: Lasso, p: Flags, q: Flags) -> bool:
    states, cycle = lasso.states, lasso.cycle
    if prop == "eventually":
        return not any(p[s] for s in states)
    if prop == "always_eventually":
        return not any(p[s] for s in cycle)
    if prop == "eventually_always":
        return any(not p[s] for s in cycle)
    tail_ok = all(not q[s] for s in cycle)
    return tail_ok and any(p[s] and all(not q[t] for t in states[i:]) for i, s in enumerate(states))


def valid(g: Graph, prop: str, lasso: Lasso, p: Flags, q: Flags, fairness: Sequence[Condition]) -> None:
    cycle, edges = follow(g, lasso)
    assert fair(g, cycle, edges, fairness), f"unfair cycle {cycle} via {edges}"
    assert violates(prop, lasso, p, q), f"{lasso} does not violate {prop}"


def decide(prop: str, g: Graph, p: Flags, q: Flags, fairness: Sequence[Condition]) -> Lasso | None:
    if prop == "eventually":
        return eventually(g, p, fairness)
    if prop == "leads_to":
        return leads_to(g, p, q, fairness)
    if prop == "always_eventually":
        return always_eventually(g, p, fairness)
    return eventually_always(g, p, fairness)


PROPS = ("eventually", "leads_to", "always_eventually", "eventually_always")


# --- hand-made graphs, exact answers ------------------------------------------------------


def test_without_fairness_the_initial_state_may_stutter_forever() -> None:
    g = Graph.build(2, [(0, 1, 7)])
    assert eventually(g, [False, True]) == Lasso((0,), (STUTTER,), 0)
    assert eventually(g, [True, False]) is None
    assert eventually(g, [False, True], [W(7)]) is None


def test_a_terminal_state_stutters_fairly() -> None:
    g = Graph.build(2, [(0, 1, 7)])
    lasso = eventually(g, [False, False], [W(7)])
    assert lasso == Lasso((0, 1), (0, STUTTER), 1)
    assert lasso.prefix == (0,) and lasso.cycle == (1,) and lasso.stutters


def test_weak_fairness_allows_what_strong_fairness_forbids() -> None:
    # 0 <-> 1, and 1 may leave to 2 (label 2): label 2 is enabled in 1 only, so
    # infinitely often but never continuously along 0, 1, 0, 1, ...
    g = Graph.build(3, [(0, 1, 0), (1, 0, 1), (1, 2, 2)])
    p = flags(3, 2)
    moves = W(0, 1)
    lasso = eventually(g, p, [moves, W(2)])
    assert lasso == Lasso((0, 1), (0, 1), 0)
    valid(g, "eventually", lasso, p, p, [moves, W(2)])
    assert eventually(g, p, [moves, S(2)]) is None
    assert eventually(g, p, [moves]) == Lasso((0, 1), (0, 1), 0)
    assert eventually(g, p, [W(2)]) == Lasso((0,), (STUTTER,), 0)  # nothing forces 0 to move


def test_cut_edges_count_as_enabled_but_are_never_taken() -> None:
    # 1 is at the constraint boundary: its fair action (label 1) leads out of the explored graph.
    g = Graph.build(2, [(0, 1, 0), (1, CUT, 1)])
    never = flags(2)
    assert eventually(g, never, [W(0)]) == Lasso((0, 1), (0, STUTTER), 1)
    assert eventually(g, never, [W(0), W(1)]) is None  # staying at the boundary is unfair
    # A cycle along the boundary whose states all enable a cut action never takes it.
    ring = Graph.build(2, [(0, 1, 0), (1, 0, 0), (0, CUT, 1), (1, CUT, 1)])
    assert eventually(ring, never, [W(0)]) == Lasso((0, 1), (0, 2), 0)  # edges are numbered by source
    assert eventually(ring, never, [W(0), W(1)]) is None
    assert eventually(ring, never, [W(0, 1)]) == Lasso((0, 1), (0, 2), 0)


def test_streett_refinement_finds_the_fair_subcycle() -> None:
    # {0, 1, 2} is one component; 2 enables s (label 9) towards the p state 3.
    edges = [(0, 1, 0), (1, 0, 0), (1, 2, 0), (2, 1, 0), (2, 3, 9)]
    g = Graph.build(4, edges)
    p = flags(4, 3)
    lasso = eventually(g, p, [W(0), S(9)])
    assert lasso == Lasso((0, 1), (0, 1), 0)
    assert 2 not in lasso.cycle
    valid(g, "eventually", lasso, p, p, [W(0), S(9)])
    # Without the 0 <-> 1 cycle nothing fair is left once 2 is removed.
    g2 = Graph.build(4, [(0, 2, 0), (2, 0, 0), (2, 3, 9)])
    assert eventually(g2, p, [W(0), S(9)]) is None
    assert eventually(g2, p, [W(0), W(9)]) == Lasso((0, 2), (0, 1), 0)


def test_streett_refinement_recurses_through_several_strong_conditions() -> None:
    # A ring 0 -> 1 -> 2 -> 3 -> 0 with chords 0 <-> 2; 1 enables s1 (out), 3 enables s2 (out).
    edges = [(0, 1, 0), (1, 2, 0), (2, 3, 0), (3, 0, 0), (0, 2, 0), (2, 0, 0), (1, 4, 1), (3, 4, 2)]
    g = Graph.build(5, edges)
    p = flags(5, 4)
    fairness = [W(0), S(1), S(2)]
    lasso = eventually(g, p, fairness)
    assert lasso is not None and set(lasso.cycle) == {0, 2}
    valid(g, "eventually", lasso, p, p, fairness)


def test_a_weak_condition_enabled_everywhere_and_never_taken_rules_out_every_subcycle() -> None:
    edges = [(0, 1, 0), (1, 0, 0), (0, 0, 0), (0, 2, 5), (1, 2, 5)]
    g = Graph.build(3, edges)
    p = flags(3, 2)
    assert eventually(g, p, [W(5)]) is None
    assert eventually(g, p, [S(5)]) is None
    lasso = eventually(g, p, [W(0)])
    assert lasso == Lasso((0, 1), (0, 3), 0)
    valid(g, "eventually", lasso, p, p, [W(0)])


def test_leads_to_prefix_goes_through_any_states() -> None:
    # 0 (a q state) -> 1 (p) -> 2 -> 2: the trigger is after a q state.
    g = Graph.build(3, [(0, 1, 0), (1, 2, 0), (2, 2, 1)])
    p, q = flags(3, 1), flags(3, 0)
    fairness = [W(0, 1)]
    assert leads_to(g, p, q, fairness) == Lasso((0, 1, 2), (0, 1, 2), 2)
    assert leads_to(g, p, q) == Lasso((0, 1), (0, STUTTER), 1)
    assert leads_to(g, p, flags(3, 2), fairness) is None
    assert leads_to(g, p, flags(3, 1), fairness) is None  # p and q together: satisfied at once
    assert leads_to(g, flags(3), q) is None  # never triggered


def test_leads_to_stays_out_of_q_only_after_the_trigger() -> None:
    # 0 -> 1 (p) -> 2 (q) -> 1: every visit to 1 is answered by 2.
    g = Graph.build(3, [(0, 1, 0), (1, 2, 0), (2, 1, 0)])
    p, q = flags(3, 1), flags(3, 2)
    assert leads_to(g, p, q, [W(0)]) is None
    assert leads_to(g, p, q) == Lasso((0, 1), (0, STUTTER), 1)


def test_always_eventually() -> None:
    g = Graph.build(2, [(0, 1, 1), (1, 0, 2)])
    p = flags(2, 0)
    assert always_eventually(g, p) == Lasso((0, 1), (0, STUTTER), 1)
    assert always_eventually(g, p, [W(2)]) is None
    assert always_eventually(g, flags(2), [W(1, 2)]) == Lasso((0, 1), (0, 1), 0)
    assert always_eventually(g, flags(2, 0, 1)) is None


def test_eventually_always() -> None:
    g = Graph.build(2, [(0, 1, 1), (1, 0, 2), (1, 1, 3)])
    p = flags(2, 1)
    assert eventually_always(g, p) == Lasso((0,), (STUTTER,), 0)
    assert eventually_always(g, p, [W(1)]) == Lasso((0, 1), (0, 1), 0)
    assert eventually_always(g, p, [W(1), S(2)]) == Lasso((0, 1), (0, 1), 0)
    # Fair behaviours settle in 1 by its self-loop: only 0 -> 1 -> 1 ... once 2 may be ignored.
    assert eventually_always(g, p, [W(1, 3)]) == Lasso((0, 1), (0, 1), 0)
    g2 = Graph.build(2, [(0, 1, 1), (1, 1, 3)])
    assert eventually_always(g2, p, [W(1)]) is None
    assert eventually_always(g2, p) == Lasso((0,), (STUTTER,), 0)


def test_the_prefix_is_the_shortest_to_any_candidate() -> None:
    # A long arm 0 -> 1 -> 2 -> 3 -> 3, a short arm 0 -> 4 -> 4; the initial states are 0 and 5 -> 3.
    edges = [(0, 1, 0), (1, 2, 0), (2, 3, 0), (3, 3, 0), (0, 4, 0), (4, 4, 0), (5, 3, 0)]
    g = Graph.build(6, edges, initial=(0,))
    assert eventually(g, flags(6), [W(0)]) == Lasso((0, 4), (1, 5), 1)
    g2 = Graph.build(6, edges, initial=(0, 5))
    assert eventually(g2, flags(6, 0), [W(0)]) == Lasso((5, 3), (6, 4), 1)


def test_the_leads_to_prefix_is_shortest_through_both_parts() -> None:
    # Trigger 1 is nearer the start but far from its cycle (4); trigger 6 is one step further and loops at once.
    edges = [(0, 1, 0), (1, 2, 0), (2, 3, 0), (3, 4, 0), (4, 4, 0), (0, 5, 0), (5, 6, 0), (6, 6, 0)]
    g = Graph.build(7, edges)
    assert leads_to(g, flags(7, 1, 6), flags(7), [W(0)]) == Lasso((0, 5, 6), (1, 6, 7), 2)
    assert leads_to(g, flags(7, 1), flags(7), [W(0)]) == Lasso((0, 1, 2, 3, 4), (0, 2, 3, 4, 5), 4)


def test_the_cycle_takes_the_edge_that_fairness_asks_for() -> None:
    # Two edges 0 -> 1: only the second one (label 1) is the strongly fair action.
    g = Graph.build(2, [(0, 1, 0), (0, 1, 1), (1, 0, 0)])
    fairness = [W(0), S(1)]
    lasso = eventually(g, flags(2), fairness)
    assert lasso == Lasso((0, 1), (1, 2), 0)
    valid(g, "eventually", lasso, flags(2), flags(2), fairness)


def test_the_cycle_meets_every_condition_it_owes() -> None:
    # A ring of 6 states; each of three strong conditions can only be taken at one place.
    n = 6
    edges = [(s, (s + 1) % n, 0) for s in range(n)] + [(0, 0, 1), (2, 2, 2), (4, 4, 3)]
    g = Graph.build(n, edges)
    fairness = [W(0), S(1), S(2), S(3)]
    lasso = eventually(g, flags(n), fairness)
    assert lasso is not None
    valid(g, "eventually", lasso, flags(n), flags(n), fairness)
    assert {g.labels[e] for e in lasso.edges[lasso.loop :]} == {0, 1, 2, 3}
    assert len(lasso.cycle) == 9  # six ring steps and three loops
    # eventually_always owes a ¬p state too.
    p = flags(n, 0, 1, 2, 3, 4)
    lasso = eventually_always(g, p, [W(0)])
    assert lasso is not None and 5 in lasso.cycle
    valid(g, "eventually_always", lasso, p, p, [W(0)])


def test_a_weak_condition_met_by_a_disabling_state() -> None:
    # 0 <-> 1 <-> 2; label 5 (enabled in 1 and 2, leading to the p state 3) is met by visiting 0.
    edges = [(0, 1, 0), (1, 0, 0), (1, 2, 0), (2, 1, 0), (1, 3, 5), (2, 3, 5)]
    g = Graph.build(4, edges, initial=(2,))
    fairness = [W(0), W(5)]
    lasso = eventually(g, flags(4, 3), fairness)
    assert lasso is not None and 0 in lasso.cycle
    valid(g, "eventually", lasso, flags(4, 3), flags(4, 3), fairness)


def test_unreachable_components_do_not_count() -> None:
    g = Graph.build(3, [(0, 2, 0), (1, 1, 0)])
    p = flags(3, 2)
    assert eventually(g, p, [W(0)]) is None
    assert eventually_always(g, p, [W(0)]) is None


# --- trapped and path_to ------------------------------------------------------------------


def test_trapped_and_the_path_to_it() -> None:
    edges = [(0, 1, 0), (1, 0, 0), (1, 2, 0), (2, 3, 0), (3, 2, 0), (0, 4, 0), (4, CUT, 0)]
    g = Graph.build(5, edges)
    home = flags(5, 0)
    assert list(trapped(g, home)) == [0, 0, 1, 1, 1]
    assert path_to(g, trapped(g, home)) == (0, 4)
    assert path_to(g, trapped(g, flags(5, 2))) == (0, 4)
    assert path_to(g, trapped(g, flags(5, 4, 2))) is None
    assert path_to(g, flags(5, 3)) == (0, 1, 2, 3)


def test_bad_graphs_are_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        Graph.build(2, [(2, 0, 0)])
    with pytest.raises(ValueError, match="target"):
        Graph.build(2, [(0, 2, 0)])
    with pytest.raises(ValueError, match="initial"):
        Graph.build(2, [], initial=(3,))
    with pytest.raises(ValueError, match="decrease"):
        Graph((0,), array("q", [0, 2, 1, 2]), array("q", [0, 0]), array("q", [0, 0]))
    with pytest.raises(ValueError, match="entries"):
        eventually(Graph.build(2, []), [True])


# --- random cross-checks ------------------------------------------------------------------


def random_case(rnd: random.Random, n: int) -> tuple[Graph, bytes, bytes, list[Condition]]:
    """A random graph (some CUT edges, self-loops, several initial states), p, q and fairness.

    Half the time the whole next-state relation is weakly fair too (as with
    TLA+'s WF_vars(Next)), so that stuttering is fair only where nothing is
    enabled and the cycles, strong conditions and Streett refinement decide.
    """
    labels = range(5)
    edges = []
    for s in range(n):
        for _ in range(rnd.choice((0, 1, 2, 2, 3, 3))):
            target = CUT if rnd.random() < 0.08 else rnd.randrange(n)
            edges.append((s, target, rnd.choice(labels)))
    initial = tuple(rnd.sample(range(n), min(n, rnd.choice((1, 1, 2)))))
    g = Graph.build(n, edges, initial)
    p = bytes(rnd.random() < 0.3 for _ in range(n))
    q = bytes(rnd.random() < 0.3 for _ in range(n))
    fairness = [
        Condition(rnd.choice(list(Fairness)), frozenset(rnd.sample(labels, rnd.choice((1, 1, 2)))), f"c{i}")
        for i in range(rnd.choice((0, 1, 2, 2, 3)))
    ]
    if rnd.random() < 0.5:
        fairness.append(Condition.weak(labels, "next"))
    return g, p, q, fairness


def streett_case(rnd: random.Random, n: int) -> tuple[Graph, bytes, bytes, list[Condition]]:
    """A denser random graph under WF(next) and strong conditions on single labels: Streett refinement decides often."""
    labels = range(5)
    edges = []
    for s in range(n):
        for _ in range(rnd.choice((2, 2, 3, 3))):
            edges.append((s, CUT if rnd.random() < 0.05 else rnd.randrange(n), rnd.choice(labels)))
    g = Graph.build(n, edges, (0,))
    p = bytes(rnd.random() < 0.35 for _ in range(n))
    q = bytes(rnd.random() < 0.35 for _ in range(n))
    strong = [Condition.strong({label}) for label in rnd.sample(labels, rnd.choice((1, 2)))]
    fairness = [Condition.weak(labels, "next"), *strong]
    return g, p, q, fairness


def reach(g: Graph, sources: Iterable[int], allowed: Callable[[int], bool]) -> set[int]:
    seen = {s for s in sources if allowed(s)}
    todo = list(seen)
    while todo:
        s = todo.pop()
        for e in g.edges_from(s):
            t = g.targets[e]
            if t != CUT and allowed(t) and t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def internal(g: Graph, states: set[int]) -> list[int]:
    return [e for s in states for e in g.edges_from(s) if g.targets[e] in states]


def stutter_fair(g: Graph, s: int, fairness: Sequence[Condition]) -> bool:
    return not any(enabled(g, s, c) for c in fairness)


def region(prop: str, g: Graph, p: Flags, q: Flags) -> tuple[set[int], Callable[[int], bool]]:
    """The states a violating behaviour may settle in, and what the cycle must also visit."""
    n = g.states
    if prop == "eventually":
        return reach(g, g.initial, lambda s: not p[s]), lambda s: True
    if prop == "eventually_always":
        return reach(g, g.initial, lambda s: True), lambda s: not p[s]
    trigger = p if prop == "leads_to" else [1] * n
    avoid = q if prop == "leads_to" else p
    sources = [s for s in reach(g, g.initial, lambda s: True) if trigger[s] and not avoid[s]]
    return reach(g, sources, lambda s: not avoid[s]), lambda s: True


def brute_force(prop: str, g: Graph, p: Flags, q: Flags, fairness: Sequence[Condition]) -> bool:
    """Violated? Every subset of the region that is strongly connected, judged with all its internal edges."""
    allowed, must = region(prop, g, p, q)
    if any(stutter_fair(g, s, fairness) and must(s) for s in allowed):
        return True
    members = sorted(allowed)
    for bits in range(1, 1 << len(members)):
        sub = {s for i, s in enumerate(members) if bits >> i & 1}
        edges = internal(g, sub)
        if not edges or not any(must(s) for s in sub):
            continue
        if all(reach(g, [s], sub.__contains__) == sub for s in sub) and fair(g, sub, edges, fairness):
            return True
    return False


def with_networkx(prop: str, g: Graph, p: Flags, q: Flags, fairness: Sequence[Condition]) -> bool:
    """Violated? Streett refinement over networkx SCCs, with the definitions spelled out again."""
    allowed, must = region(prop, g, p, q)
    if any(stutter_fair(g, s, fairness) and must(s) for s in allowed):
        return True
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(allowed)
    graph.add_edges_from((s, g.targets[e]) for s in allowed for e in g.edges_from(s) if g.targets[e] in allowed)
    work = [set(c) for c in nx.strongly_connected_components(graph)]
    while work:
        comp = work.pop()
        edges = internal(g, comp)
        if not edges or not any(must(s) for s in comp):
            continue
        taken = {g.labels[e] for e in edges}
        idle = [c for c in fairness if not taken & c.labels]
        weak_bad = [c for c in idle if c.kind is Fairness.WEAK and all(enabled(g, s, c) for s in comp)]
        strong_bad = [c for c in idle if c.kind is Fairness.STRONG and any(enabled(g, s, c) for s in comp)]
        if weak_bad:
            continue
        if not strong_bad:
            return True
        rest = {s for s in comp if not any(enabled(g, s, c) for c in strong_bad)}
        work.extend(set(c) for c in nx.strongly_connected_components(graph.subgraph(rest)))
    return False


@pytest.mark.parametrize("chunk", range(6))
def test_random_small_graphs_against_brute_force(chunk: int) -> None:
    for seed in range(chunk * 50, chunk * 50 + 50):
        rnd = random.Random(seed)
        g, p, q, fairness = random_case(rnd, rnd.randint(1, 7))
        for prop in PROPS:
            lasso = decide(prop, g, p, q, fairness)
            expected = brute_force(prop, g, p, q, fairness)
            assert (lasso is not None) == expected, f"seed {seed}, {prop}: engine {lasso}, brute force {expected}"
            assert (lasso is not None) == with_networkx(prop, g, p, q, fairness), f"seed {seed}, {prop}"
            if lasso is not None:
                valid(g, prop, lasso, p, q, fairness)


@pytest.mark.parametrize("chunk", range(4))
def test_random_strongly_fair_graphs_against_brute_force(chunk: int) -> None:
    for seed in range(500 + chunk * 50, 500 + chunk * 50 + 50):
        rnd = random.Random(seed)
        g, p, q, fairness = streett_case(rnd, rnd.randint(3, 7))
        for prop in PROPS:
            lasso = decide(prop, g, p, q, fairness)
            assert (lasso is not None) == brute_force(prop, g, p, q, fairness), f"seed {seed}, {prop}: engine {lasso}"
            if lasso is not None:
                valid(g, prop, lasso, p, q, fairness)


@pytest.mark.parametrize("chunk", range(2))
def test_random_larger_graphs_against_networkx(chunk: int) -> None:
    for seed in range(1000 + chunk * 50, 1000 + chunk * 50 + 50):
        rnd = random.Random(seed)
        g, p, q, fairness = random_case(rnd, rnd.randint(8, 40))
        for prop in PROPS:
            lasso = decide(prop, g, p, q, fairness)
            expected = with_networkx(prop, g, p, q, fairness)
            assert (lasso is not None) == expected, f"seed {seed}, {prop}: engine {lasso}, networkx {expected}"
            if lasso is not None:
                valid(g, prop, lasso, p, q, fairness)


def test_random_trapped_against_networkx_ancestors() -> None:
    for seed in range(100):
        rnd = random.Random(seed)
        g, p, _, _ = random_case(rnd, rnd.randint(1, 30))
        graph: nx.DiGraph[int] = nx.DiGraph()
        graph.add_nodes_from(range(g.states))
        graph.add_edges_from((g.source(e), t) for e, t in enumerate(g.targets) if t != CUT)
        good = {s for s in range(g.states) if p[s]}
        for s in list(good):
            good |= nx.ancestors(graph, s)
        expected = [0 if s in good else 1 for s in range(g.states)]
        assert list(trapped(g, p)) == expected, f"seed {seed}"
        path = path_to(g, expected)
        if 1 not in expected or not any(nx.has_path(graph, i, t) for i in g.initial for t in range(g.states) if expected[t]):
            assert path is None
        else:
            assert path is not None and expected[path[-1]] and path[0] in g.initial
            pairs = [(i, t) for i in g.initial for t in range(g.states) if expected[t] and nx.has_path(graph, i, t)]
            shortest = min(nx.shortest_path_length(graph, i, t) for i, t in pairs)
            assert len(path) == shortest + 1
            assert all(graph.has_edge(a, b) for a, b in zip(path, path[1:]))


# --- a big graph (the performance target's shape; no time is asserted) --------------------


@pytest.mark.slow
def test_half_a_million_states() -> None:
    n, degree = 500_000, 6
    rnd = random.Random(7)
    targets = array("q", [rnd.randrange(n) for _ in range(n * degree)])
    labels = array("q", [rnd.randrange(60) for _ in range(n * degree)])
    g = Graph((0,), array("q", range(0, n * degree + 1, degree)), targets, labels)
    p = bytes(rnd.random() < 0.01 for _ in range(n))
    fairness = [W(*(label for label in range(60) if label % 6 == k)) for k in range(6)]
    lasso = eventually(g, p, fairness)
    assert lasso is not None and not lasso.stutters
    valid(g, "eventually", lasso, p, p, fairness)
