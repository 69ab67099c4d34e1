"""Liveness on an explicit state graph: fair cycles by strongly connected components, and recoverability.

Theory of operation
-------------------
The search hands over the state graph it explored as compact integer arrays
(`Graph`): states are ``0..n-1``, the edges of state ``s`` are
``offsets[s]:offsets[s+1]`` of ``targets`` and ``labels`` (CSR), and every edge
carries an integer *action label*. Nothing here builds per-state objects; all
working storage is int arrays, lists of ints and bytearrays indexed by state or
edge, and every traversal is iterative.

*Behaviours* are TLA+'s: infinite paths from an initial state in which every
state may also take an implicit *stuttering* step (stay where it is). A
terminal (deadlocked) state can only stutter, so a behaviour may end there by
stuttering forever. *CUT* edges (target ``CUT``, -1) are successors the search
pruned with a state constraint: as in TLC they count for ``ENABLED`` but can
never be traversed. Consequence: a fairly treated action that is enabled at the
constraint boundary but can only be taken across it makes every behaviour that
stays at that boundary unfair, so the boundary cannot produce a liveness
counterexample through that action. A self-loop edge is an edge like any other:
it enables and takes its label (TLA+'s ``<<A>>_v`` would count it as
stuttering; a search that wants that drops self-loops before handing over).

*Fairness* is a list of `Condition` s, each a kind and a set of labels. A
condition is *enabled* at ``s`` when ``s`` has an edge (CUT edges included)
with one of its labels, and *taken* when the behaviour follows such an edge.
Weak fairness (WF) requires: taken infinitely often, or disabled infinitely
often; strong fairness (SF): taken infinitely often, or enabled only finitely
often. Only what happens infinitely often matters, so a lasso is fair iff its
cycle is: stuttering forever at ``s`` is fair iff no condition is enabled at
``s``; a cycle that visits the state set ``C`` along the edges ``E`` is fair iff
every weak condition has an edge in ``E`` or a state of ``C`` where it is
disabled, and every strong condition has an edge in ``E`` or no state of ``C``
where it is enabled.

*Deciding* a property means finding a fair cycle (or a fair stuttering state)
inside a restricted subgraph, reachable from some sources:

==========================  ================================  ==================================
property                    restricted to (and sources)       the cycle must also
==========================  ================================  ==================================
``eventually(p)``   <>p     ¬p states (initial ¬p states)
``leads_to(p, q)``  p ~> q  ¬q states (reachable p∧¬q states)
``always_eventually(p)``    ¬p states (reachable ¬p states)
``eventually_always(p)``    all states (initial states)       visit a ¬p state
==========================  ================================  ==================================

Candidates are found on strongly connected components, as TLC and SPIN do: an
iterative Tarjan over the restricted graph from the sources (one int array
holds each state's DFS number, then its component's tag; no recursion, so
millions of states are fine). Each condition is one bit; every edge gets the mask of the
conditions its label belongs to and every state the OR of its edges' masks (what
it enables). A component ``C`` with its internal edges is fair when every
condition enabled in all of ``C`` (weak) or anywhere in ``C`` (strong) is the
label of some internal edge. If a weak condition fails, no cycle inside ``C``
can be fair (a sub-cycle only loses edges and disabling states). If only strong
conditions fail, a fair cycle must avoid the states enabling them: those states
are removed and the rest is decomposed again (Streett emptiness). Each round
removes every state enabling some strong condition, so the recursion is at
most as deep as there are strong conditions. A stuttering state is a candidate
when no condition is enabled there.

A *lasso* (`Lasso`) is built in two parts. The prefix is a breadth-first path
to the nearest candidate state, so it is the shortest one that reaches any
candidate. For ``leads_to`` it reaches a trigger state through any states, then
stays in ¬q; the second search enters each trigger at its distance from the
initial states, so the two parts together are shortest. The cycle starts there and chains shortest legs inside the
component, each to the nearest edge or state that satisfies a condition still
owed (a weak condition by a disabling state or an edge, a strong one by an
edge; ``eventually_always`` also owes a ¬p state), then takes the shortest path
back to a point of the walk at or before the first requirement met. Last, any
sub-loop between two visits of one state is cut when the rest of the cycle
still pays everything owed.

*Recoverability* (AG EF home) needs no fairness: `trapped` marks the states
from which no home state can be reached along non-CUT edges. It runs the same
Tarjan over the whole graph and settles each SCC in completion order (every SCC
completes after the SCCs it reaches), which is faster in CPython than building
the reverse graph. `path_to` gives a shortest path from an initial state to a
flagged state. A bounded search makes CUT states look trapped when their way
home lies beyond the bound; the caller reports such a result as bounded.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import chain, islice, repeat
from operator import and_, le, not_, or_
from typing import Final

from statewright.kernel.checker.fairness import Condition, Fairness

__all__ = [
    "CUT",
    "Predicate",
    "STUTTER",
    "Condition",
    "Fairness",
    "Graph",
    "Lasso",
    "always_eventually",
    "eventually",
    "eventually_always",
    "leads_to",
    "path_to",
    "trapped",
]

CUT: Final = -1
"""The target of an edge the search pruned: it counts for ENABLED but is never followed."""
STUTTER: Final = -1
"""The edge of a lasso step that stays in the same state."""

Predicate = Sequence[int]
"""A per-state boolean: a bytearray, bytes or list of bools/ints (truthy = holds), one entry per state."""


@dataclass(frozen=True, slots=True)
class Graph:
    """An explicit state graph in CSR form: the edges of state ``s`` are ``offsets[s]:offsets[s+1]``.

    ``targets[e]`` is the state edge ``e`` leads to (or `CUT`), ``labels[e]`` its
    action label. The arrays are read, never written.

    >>> g = Graph.build(3, [(0, 1, 7), (1, 2, 8), (1, CUT, 9)])
    >>> g.states, list(g.targets), list(g.edges_from(1)), g.source(2)
    (3, [1, 2, -1], [1, 2], 1)
    """

    initial: tuple[int, ...]
    offsets: array[int]
    targets: array[int]
    labels: array[int]

    def __post_init__(self) -> None:
        n = len(self.offsets) - 1
        m = len(self.targets)
        if n < 0 or self.offsets[0] != 0 or self.offsets[n] != m or len(self.labels) != m:
            raise ValueError("graph: offsets must start at 0 and end at len(targets) == len(labels)")
        if not all(map(le, self.offsets, islice(self.offsets, 1, None))):
            raise ValueError("graph: offsets must not decrease")
        if m and (min(self.targets) < CUT or max(self.targets) >= n):
            raise ValueError(f"graph: every target must be a state (0..{n - 1}) or CUT")
        if any(not 0 <= s < n for s in self.initial):
            raise ValueError(f"graph: every initial state must be a state (0..{n - 1})")

    @classmethod
    def build(cls, states: int, edges: Iterable[tuple[int, int, int]], initial: Iterable[int] = (0,)) -> Graph:
        """A graph of ``states`` states from ``(source, target, label)`` triples, kept in the given order per source."""
        out: list[list[tuple[int, int]]] = [[] for _ in range(states)]
        for source, target, label in edges:
            if not 0 <= source < states:
                raise ValueError(f"graph: edge source {source} is not a state (0..{states - 1})")
            out[source].append((target, label))
        offsets, targets, labels = array("q", [0]), array("q"), array("q")
        for pairs in out:
            for target, label in pairs:
                targets.append(target)
                labels.append(label)
            offsets.append(len(targets))
        return cls(tuple(initial), offsets, targets, labels)

    @property
    def states(self) -> int:
        """How many states there are."""
        return len(self.offsets) - 1

    def edges_from(self, state: int) -> range:
        """The indices of the edges leaving ``state``."""
        return range(self.offsets[state], self.offsets[state + 1])

    def source(self, edge: int) -> int:
        """The state edge ``edge`` leaves."""
        return bisect_right(self.offsets, edge) - 1


@dataclass(frozen=True, slots=True)
class Lasso:
    """A counterexample behaviour: ``states[0]`` is initial, ``edges[i]`` leads ``states[i]`` onwards.

    The next state after ``states[i]`` is ``states[i + 1]``; after the last one it is
    ``states[loop]``, and the behaviour repeats ``states[loop:]`` forever. An edge
    of `STUTTER` stays put (only ever the last one, with ``loop`` the last index).
    """

    states: tuple[int, ...]
    edges: tuple[int, ...]
    loop: int

    @property
    def prefix(self) -> tuple[int, ...]:
        """The states before the cycle."""
        return self.states[: self.loop]

    @property
    def cycle(self) -> tuple[int, ...]:
        """The states repeated forever."""
        return self.states[self.loop :]

    @property
    def stutters(self) -> bool:
        """Whether the behaviour ends by stuttering forever in its last state."""
        return self.edges[-1] == STUTTER


# --- breadth-first search -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tree:
    """A breadth-first search: parents (-1 at a root), depths, discovery order, the goal state hit (or -1)."""

    parent: list[int]
    depth: list[int]
    order: list[int]
    hit: int

    def path(self, state: int) -> list[int]:
        """The tree path from a root to ``state``."""
        out = [state]
        parent = self.parent
        while parent[state] >= 0:
            state = parent[state]
            out.append(state)
        out.reverse()
        return out


def _breadth_first(
    graph: Graph, starts: Sequence[int], depths: Sequence[int] | None, seen: bytearray, goal: Predicate
) -> _Tree:
    """Search from ``starts`` (entering at ``depths``, ascending; None: all 0) through unseen states until a goal.

    ``seen`` has one more entry than there are states, set, so that CUT targets
    (index -1) are never followed; blocked states are simply pre-set in it.
    """
    ol, tl = graph.offsets, graph.targets
    n = len(ol) - 1
    parent, depth, order = [-1] * n, [0] * n, []
    j, total, d = 0, len(starts), depths[0] if depths else 0
    level: list[int] = []
    while True:
        while j < total and (depths is None or depths[j] <= d):
            s = starts[j]
            j += 1
            if not seen[s]:
                seen[s] = 1
                depth[s] = d
                order.append(s)
                if goal[s]:
                    return _Tree(parent, depth, order, s)
                level.append(s)
        if not level:
            if j == total or depths is None:
                return _Tree(parent, depth, order, -1)
            d = depths[j]
            continue
        d += 1
        nxt: list[int] = []
        for v in level:
            for w in tl[ol[v] : ol[v + 1]]:
                if not seen[w]:
                    seen[w] = 1
                    parent[w] = v
                    depth[w] = d
                    nxt.append(w)
                    if goal[w]:
                        order.extend(nxt)
                        return _Tree(parent, depth, order, w)
        order.extend(nxt)
        level = nxt


def _edge(graph: Graph, u: int, w: int) -> int:
    """The first edge from ``u`` to ``w``."""
    a = graph.offsets[u]
    return a + graph.targets[a : graph.offsets[u + 1]].index(w)


def _flags(values: Predicate, n: int, what: str) -> bytes:
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries for a graph of {n} states")
    return bytes(map(bool, values))


def _blocked(flags: bytes) -> bytearray:
    """A ``seen`` bytearray: the flagged states, and the CUT slot at the end."""
    return bytearray(flags) + b"\x01"


# --- components ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Component:
    """A fair strongly connected component: members, tag, and the AND / OR of its states' enabled masks."""

    members: list[int]
    tag: int
    everywhere: int
    somewhere: int


class _Search:
    """One liveness question over one graph: restricted SCCs, fair candidates, and the lasso.

    ``num`` holds, per state: 0 not yet visited; a DFS number while on Tarjan's
    stack; ``out`` when blocked or finished outside any non-trivial component;
    the component's tag (``> out``, unique) once finished inside one.
    """

    def __init__(self, graph: Graph, fairness: Sequence[Condition], blocked: bytearray, visit: bytes | None) -> None:
        self.graph = graph
        self.n = n = graph.states
        self.blocked = blocked
        self.visit = visit
        self.out = n + 1
        self.next_tag = n + 2
        self.num = array("q", map(self.out.__mul__, blocked))
        self.low = array("q", bytes(8 * (n + 1)))
        self.weak = self.strong = 0
        bits: dict[int, int] = {}
        for i, c in enumerate(fairness):
            if c.kind is Fairness.WEAK:
                self.weak |= 1 << i
            else:
                self.strong |= 1 << i
            for label in c.labels:
                bits[label] = bits.get(label, 0) | 1 << i
        self.visit_bit = 1 << len(fairness) if visit is not None else 0
        self.fair = bool(bits)
        self.edge_mask: list[int] = list(map(bits.get, graph.labels, repeat(0))) if bits else []
        self.mask = [0] * (n + 1)  # what each visited state enables

    def enables(self, v: int) -> int:
        """The conditions enabled at ``v``, as a mask."""
        ol = self.graph.offsets
        return reduce(or_, self.edge_mask[ol[v] : ol[v + 1]], 0) if self.fair else 0

    def stutter_fair(self, v: int) -> bool:
        """Whether stuttering forever at ``v`` is fair (and, for eventually_always, ¬p)."""
        return not self.mask[v] and (self.visit is None or bool(self.visit[v]))

    def tarjan(self, roots: Iterable[int], finished: list[int]) -> list[list[int]]:
        """The non-trivial SCCs reachable from ``roots`` through unvisited states (iterative Tarjan).

        Every state reached is appended to ``finished`` when its SCC completes, so
        each SCC is a contiguous run there and comes after every SCC it reaches.
        The hot loop costs each edge one lookup and one comparison, since both
        finished and blocked states hold numbers above any DFS number.
        """
        ol, tl, num, low = self.graph.offsets, self.graph.targets, self.num, self.low
        comps: list[list[int]] = []
        stack: list[int] = []
        push = stack.append
        counter = 0
        for r in roots:
            if num[r]:
                continue
            counter += 1
            num[r] = lv = counter
            v, it = r, iter(tl[ol[r] : ol[r + 1]])
            push(r)
            vs, its = [v], [it]
            while True:
                for w in it:
                    x = num[w]
                    if x >= lv:
                        continue
                    if x:
                        lv = x
                        continue
                    low[v] = lv
                    counter += 1
                    num[w] = lv = counter
                    v, it = w, iter(tl[ol[w] : ol[w + 1]])
                    push(w)
                    vs.append(v)
                    its.append(it)
                    break
                else:
                    vs.pop()
                    its.pop()
                    if lv == num[v]:
                        self.pop_component(stack, v, comps, finished)
                        if not vs:
                            break
                        v, it = vs[-1], its[-1]
                        lv = low[v]
                    else:
                        v, it = vs[-1], its[-1]
                        if low[v] < lv:
                            lv = low[v]
        return comps

    def pop_component(self, stack: list[int], root: int, comps: list[list[int]], finished: list[int]) -> None:
        """Tag the SCC rooted at ``root`` (the top of ``stack`` down to it); keep it if it has a cycle."""
        ol, num = self.graph.offsets, self.num
        if stack[-1] == root:
            stack.pop()
            finished.append(root)
            if root not in self.graph.targets[ol[root] : ol[root + 1]]:
                num[root] = self.out
                return
            members = [root]
        else:  # the stack is ordered by DFS number
            i = bisect_left(stack, num[root], key=num.__getitem__)
            members = stack[i:]
            del stack[i:]
            finished.extend(members)
        tag = self.next_tag
        self.next_tag += 1
        for u in members:
            num[u] = tag
        comps.append(members)

    def fair_components(self, comps: list[list[int]]) -> list[_Component]:
        """The components (after Streett refinement) that admit a fair cycle through all their states."""
        mask, num, visit = self.mask, self.num, self.visit
        fair: list[_Component] = []
        while comps:
            members = comps.pop()
            if visit is not None and not any(map(visit.__getitem__, members)):
                continue
            everywhere = reduce(and_, map(mask.__getitem__, members))
            somewhere = reduce(or_, map(mask.__getitem__, members))
            need = (self.weak & everywhere) | (self.strong & somewhere)
            tag = num[members[0]]
            missing = self.untaken(members, tag, need) if need else 0
            if not missing:
                fair.append(_Component(members, tag, everywhere, somewhere))
            elif not missing & self.weak:
                keep = [v for v in members if not mask[v] & missing]
                for v in keep:
                    num[v] = 0
                comps.extend(self.tarjan(keep, []))
        return fair

    def untaken(self, members: list[int], tag: int, need: int) -> int:
        """The conditions of ``need`` that no internal edge of the component takes."""
        ol, tl, em, num = self.graph.offsets, self.graph.targets, self.edge_mask, self.num
        for v in members:
            a, b = ol[v], ol[v + 1]
            for w, m in zip(tl[a:b], em[a:b]):
                if m & need and num[w] == tag:
                    need &= ~m
                    if not need:
                        return 0
        return need

    def answer(self, starts: Sequence[int], depths: Sequence[int] | None, forward: _Tree | None) -> Lasso | None:
        """A fair lasso from ``starts`` inside the unblocked states, or None when every behaviour satisfies the property."""
        for i, s in enumerate(starts):  # a fair stutter at a nearest start is as short as it gets
            if depths is not None and depths[i] != depths[0]:
                break
            self.mask[s] = self.enables(s)
            if self.stutter_fair(s):
                return self.lasso([s], forward, None)
        visited: list[int] = []
        comps = self.tarjan(starts, visited)
        if self.fair:
            self.compute_masks(visited)
        mask, visit = self.mask, self.visit
        quiet: Iterable[int] = map(not_, map(mask.__getitem__, visited))
        if visit is not None:
            quiet = map(and_, quiet, map(visit.__getitem__, visited))
        fair = {c.tag: c for c in self.fair_components(comps)}
        if not fair and not any(quiet):
            return None
        # Every candidate as one flag per state (unvisited states cannot be hit: same sources, same restriction).
        still = map(not_, mask) if visit is None else map(and_, map(not_, mask), visit)
        goal = bytearray(map(or_, still, map(fair.__contains__, self.num)))
        tree = _breadth_first(self.graph, starts, depths, bytearray(self.blocked), goal)
        hit = tree.hit
        return self.lasso(tree.path(hit), forward, None if self.stutter_fair(hit) else fair[self.num[hit]])

    def compute_masks(self, visited: list[int]) -> None:
        """What each visited state enables (all states at once, in C, when most are visited)."""
        ol, em = self.graph.offsets, self.edge_mask
        if len(visited) > self.n // 4:
            spans = map(slice, ol, islice(ol, 1, None))
            self.mask = list(map(reduce, repeat(or_), map(em.__getitem__, spans), repeat(0)))
            self.mask.append(0)
        else:
            mask = self.mask
            for v in visited:
                mask[v] = reduce(or_, em[ol[v] : ol[v + 1]], 0)

    def lasso(self, path: list[int], forward: _Tree | None, comp: _Component | None) -> Lasso:
        """The prefix ``path`` (from a start; from an initial state through ``forward``) and a cycle at its end."""
        if forward is not None:
            path = forward.path(path[0])[:-1] + path
        edges = [_edge(self.graph, u, w) for u, w in zip(path, path[1:])]
        if comp is None:
            return Lasso(tuple(path), (*edges, STUTTER), len(path) - 1)
        walk, steps, loop = _Cycle(self, comp, path[-1]).build()
        return Lasso(tuple(path + walk[1:]), tuple(edges + steps), len(path) - 1 + loop)


_SHORTEN_LIMIT: Final = 2_000
"""Longer cycles are left as built (cutting sub-loops is cubic in the worst case)."""


class _Cycle:
    """A fair cycle through a fair component: shortest legs to what is still owed, then back."""

    def __init__(self, search: _Search, comp: _Component, entry: int) -> None:
        self.s = search
        self.tag = comp.tag
        self.entry = entry
        self.disabling = search.weak & ~comp.everywhere  # weak conditions some state here disables
        self.owed = ((search.weak | search.strong) & comp.somewhere) | search.visit_bit

    def met_at(self, v: int) -> int:
        """What visiting ``v`` satisfies: weak conditions disabled there, and ¬p for eventually_always."""
        met = self.disabling & ~self.s.mask[v]
        if self.s.visit is not None and self.s.visit[v]:
            met |= self.s.visit_bit
        return met

    def build(self) -> tuple[list[int], list[int], int]:
        """Walk states (from the entry), the edges taken (one more: the last closes the loop) and the loop index."""
        tl, em = self.s.graph.targets, self.s.edge_mask
        states, edges = [self.entry], list[int]()
        owed = self.owed & ~self.met_at(self.entry)
        first = 0 if owed != self.owed or not owed else -1
        while owed:
            for e in self.leg(states[-1], owed):
                edges.append(e)
                met = em[e] & owed if em else 0
                owed &= ~met
                if met and first < 0:
                    first = len(states) - 1
                states.append(tl[e])
                met = self.met_at(tl[e]) & owed
                owed &= ~met
                if met and first < 0:
                    first = len(states) - 1
        targets = {states[i]: i for i in range(first + 1)}  # a later visit wins: shorter cycle
        if targets.get(states[-1], len(states)) < len(states) - 1:  # the legs came back already
            loop = targets[states.pop()]
        else:
            back = self.back(states[-1], targets)
            states.extend(tl[e] for e in back[:-1])
            edges += back
            loop = targets[tl[back[-1]]]
        cycle, steps = self.shorten(states[loop:], edges[loop:])
        return states[:loop] + cycle, edges[:loop] + steps, loop

    def shorten(self, states: list[int], edges: list[int]) -> tuple[list[int], list[int]]:
        """Cut the sub-loops (between two visits of one state) that the cycle pays nothing owed with.

        Greedy legs can pay a debt early that a later leg pays again on the way;
        each round cuts the longest removable sub-loop. What positions ``< i``
        and ``>= j`` pay is a prefix OR and a suffix OR, so a cut costs O(1) to try.
        """
        em, owed = self.s.edge_mask, self.owed
        while len(states) <= _SHORTEN_LIMIT:
            size = len(states)
            pays = [(em[e] if em else 0) | self.met_at(v) for v, e in zip(states, edges)]
            before, after = [0] * (size + 1), [0] * (size + 1)
            for k in range(size):
                before[k + 1] = before[k] | pays[k]
                after[size - 1 - k] = after[size - k] | pays[size - 1 - k]
            visits: dict[int, list[int]] = {}
            for k, v in enumerate(states + states[:1]):  # the closing return counts as a visit at ``size``
                visits.setdefault(v, []).append(k)
            best = (0, 0)
            for at in visits.values():
                for a, i in enumerate(at):
                    for j in reversed(at[a + 1 :]):
                        if j - i < size and j - i > best[1] - best[0] and (before[i] | after[j]) & owed == owed:
                            best = (i, j)
                            break
            i, j = best
            if i == j:
                break
            states, edges = states[:i] + states[j:], edges[:i] + edges[j:]
        return states, edges

    def leg(self, start: int, owed: int) -> list[int]:
        """The edges of a shortest path inside the component to the nearest edge or state that meets ``owed``."""
        search, tag = self.s, self.tag
        ol, tl, em, num, mask = search.graph.offsets, search.graph.targets, search.edge_mask, search.num, search.mask
        disabled = self.disabling & owed
        visit = search.visit if owed & search.visit_bit else None
        parent = {start: -1}
        frontier = [start]
        for v in frontier:
            a = ol[v]
            for e, w in enumerate(tl[a : ol[v + 1]], a):
                if num[w] != tag:
                    continue
                if (em and em[e] & owed) or disabled & ~mask[w] or (visit is not None and visit[w]):
                    return self.edges_to(parent, v) + [e]
                if w not in parent:
                    parent[w] = v
                    frontier.append(w)
        raise RuntimeError("internal error: a fair component lacks what it was judged fair by")

    def back(self, start: int, targets: dict[int, int]) -> list[int]:
        """The edges of a shortest non-empty path inside the component from ``start`` to one of ``targets``."""
        graph, num, tag = self.s.graph, self.s.num, self.tag
        ol = graph.offsets
        outside = bytearray(map(tag.__ne__, num))
        goal = bytearray(len(outside))
        for t in targets:
            goal[t] = 1
        firsts = [w for w in dict.fromkeys(graph.targets[ol[start] : ol[start + 1]]) if num[w] == tag]
        tree = _breadth_first(graph, firsts, None, outside, goal)
        if tree.hit < 0:
            raise RuntimeError("internal error: a strongly connected component is not strongly connected")
        path = [start, *tree.path(tree.hit)]
        return [_edge(graph, u, w) for u, w in zip(path, path[1:])]

    def edges_to(self, parent: dict[int, int], v: int) -> list[int]:
        path = [v]
        while parent[v] >= 0:
            v = parent[v]
            path.append(v)
        path.reverse()
        return [_edge(self.s.graph, u, w) for u, w in zip(path, path[1:])]


# --- the properties -----------------------------------------------------------------------


def eventually(graph: Graph, p: Predicate, fairness: Sequence[Condition] = ()) -> Lasso | None:
    """<>p: a fair behaviour that never reaches a ``p`` state, or None if there is none.

    >>> g = Graph.build(2, [(0, 1, 7)])           # 0 --7--> 1; 1 is terminal
    >>> eventually(g, [False, True])               # without fairness, 0 may stutter forever
    Lasso(states=(0,), edges=(-1,), loop=0)
    >>> eventually(g, [False, True], [Condition.weak({7})]) is None
    True
    """
    n = graph.states
    ps = _flags(p, n, "p")
    starts = list(dict.fromkeys(s for s in graph.initial if not ps[s]))
    return _Search(graph, fairness, _blocked(ps), None).answer(starts, None, None)


def leads_to(graph: Graph, p: Predicate, q: Predicate, fairness: Sequence[Condition] = ()) -> Lasso | None:
    """p ~> q: a fair behaviour that reaches a ``p`` state and never a ``q`` state from there on, or None.

    >>> g = Graph.build(3, [(0, 1, 1), (1, 2, 2), (1, 0, 3)])   # 1 goes on to 2, or back to 0
    >>> p, q, moves = [0, 1, 0], [0, 0, 1], Condition.weak({1, 3})
    >>> leads_to(g, p, q, [moves, Condition.weak({2})])            # 2 is disabled in 0 every round
    Lasso(states=(0, 1, 0), edges=(0, 2, 0), loop=1)
    >>> leads_to(g, p, q, [moves, Condition.strong({2})]) is None  # ...but enabled infinitely often
    True
    """
    n = graph.states
    ps, qs = _flags(p, n, "p"), _flags(q, n, "q")
    forward = _breadth_first(graph, list(dict.fromkeys(graph.initial)), None, _blocked(bytes(n)), bytes(n))
    starts = [s for s in forward.order if ps[s] and not qs[s]]
    depths = [forward.depth[s] for s in starts]
    return _Search(graph, fairness, _blocked(qs), None).answer(starts, depths, forward)


def always_eventually(graph: Graph, p: Predicate, fairness: Sequence[Condition] = ()) -> Lasso | None:
    """[]<>p: a fair behaviour that from some point on never visits a ``p`` state, or None.

    >>> g = Graph.build(2, [(0, 1, 1), (1, 0, 2)])
    >>> always_eventually(g, [True, False]).cycle    # stutter in 1
    (1,)
    >>> always_eventually(g, [True, False], [Condition.weak({2})]) is None
    True
    """
    return leads_to(graph, [1] * graph.states, p, fairness)


def eventually_always(graph: Graph, p: Predicate, fairness: Sequence[Condition] = ()) -> Lasso | None:
    """<>[]p: a fair behaviour that visits ``¬p`` states infinitely often, or None.

    >>> g = Graph.build(2, [(0, 1, 1), (1, 0, 2), (1, 1, 3)])
    >>> eventually_always(g, [False, True]).cycle      # stutter in the initial ¬p state
    (0,)
    >>> eventually_always(g, [False, True], [Condition.weak({1, 3})])
    Lasso(states=(0, 1), edges=(0, 1), loop=0)
    """
    n = graph.states
    ps = _flags(p, n, "p")
    starts = list(dict.fromkeys(graph.initial))
    visit = bytes(map(not_, ps)) + b"\x00"  # one entry more, like every per-state flag here
    return _Search(graph, fairness, _blocked(bytes(n)), visit).answer(starts, None, None)


# --- recoverability -----------------------------------------------------------------------


def trapped(graph: Graph, home: Predicate) -> bytearray:
    """The states from which no ``home`` state can be reached (1 = trapped), following non-CUT edges.

    >>> g = Graph.build(4, [(0, 1, 0), (1, 0, 0), (0, 2, 0), (2, 3, 0), (3, CUT, 0)])
    >>> list(trapped(g, [1, 0, 0, 0]))
    [0, 0, 1, 1]
    """
    n = graph.states
    good = bytearray(_flags(home, n, "home")) + b"\x00"  # the CUT slot is never good
    search = _Search(graph, (), _blocked(bytes(n)), None)
    finished: list[int] = []
    search.tarjan(range(n), finished)
    # SCCs complete after every SCC they reach: one pass in that order settles each for good.
    ol, tl, num, out = graph.offsets, graph.targets, search.num, search.out
    i, total = 0, len(finished)
    while i < total:
        v = finished[i]
        tag = num[v]
        if tag == out:
            if not good[v] and any(map(good.__getitem__, tl[ol[v] : ol[v + 1]])):
                good[v] = 1
            i += 1
            continue
        j = i + 1
        while j < total and num[finished[j]] == tag:
            j += 1
        members = finished[i:j]
        succ = chain.from_iterable(tl[ol[u] : ol[u + 1]] for u in members)
        if any(map(good.__getitem__, members)) or any(map(good.__getitem__, succ)):
            for u in members:
                good[u] = 1
        i = j
    del good[n]
    return good.translate(bytes([1, 0]) + bytes(254))


def path_to(graph: Graph, targets: Predicate) -> tuple[int, ...] | None:
    """A shortest path of states from an initial state to a ``targets`` state (non-CUT edges), or None.

    >>> g = Graph.build(4, [(0, 1, 0), (1, 0, 0), (0, 2, 0), (2, 3, 0)])
    >>> path_to(g, trapped(g, [1, 0, 0, 0]))
    (0, 2)
    """
    n = graph.states
    goal = _flags(targets, n, "targets")
    tree = _breadth_first(graph, list(dict.fromkeys(graph.initial)), None, _blocked(bytes(n)), goal)
    return None if tree.hit < 0 else tuple(tree.path(tree.hit))
