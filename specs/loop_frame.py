"""A flow run with a root frame, one loop and its body frames (machines/loop_frame.py), checked whole.

The model: the run record, the root frame (step ``a`` and loop node ``loop``,
independent, so the step interleaves with the whole loop), the loop with
``limit`` iterations (default 2) and one body frame per iteration (``b1``,
``b2``: a body frame belongs to exactly one iteration, so two iterations need
two of them; ``limit=1`` is the root + one body frame model). ``cancel``
adds cancelling the run at any time; ``fail`` (on by default) lets every
granted step fail (`FailStep`, which appends to the run's failure ledger) and
the run fail (`FailRun`).

Every input is tried on every frame (the root frame tries ``CompleteBody``,
body frames try ``FinishFrame``), so the guards that keep them apart are
exercised. Properties, beside the built-in deadlock (a state is final once the run is
COMPLETED, FAILED or CANCELED), determinism and terminal precedence:

* ``terminal_stable`` -- a completed frame, loop or run (or a failed or
  canceled run) never changes, checked on every record's own steps;
* ``failed_run_has_ledger_entry`` -- a FAILED run records at least one entry
  in its failure ledger;
* ``nothing_leaves_failed`` -- once the run is FAILED no record changes;
* ``fails_by_its_own_cas`` -- the run enters FAILED only by its own
  ``cas_run_status`` (`FailRun`), the step that emits `FlowFailed`;
* ``failure_ledger_only_grows`` -- every step keeps the ledger as it was,
  or appends one row to it;
* ``within_limit`` -- the loop's iteration count, its ledger and the body
  frames registered never exceed the limit;
* ``requests_within_limit`` -- a body frame is requested only for an
  iteration below the limit (granting one past it has no frame to run in);
* ``one_iteration_per_body`` -- each registered body frame has an iteration,
  is the frame the loop hands that iteration, and is the ledger's only row for
  it; the ledger has one row per iteration, in order;
* ``granted_slot_in_running_frame`` -- the run's granted slots are exactly the
  slots the frames hold, each belongs to a RUNNING frame, is not also done,
  and a frame waits only on loops whose slot it granted;
* ``granted_before_completed`` -- a slot completes (in the run and in its
  frame) only after it was granted;
* ``nothing_before_the_run`` -- while the run is PENDING every record is as
  created;
* ``loop_phase_matches_count`` -- a REGISTERED loop has not iterated, an
  ITERATING or COMPLETED one has;
* ``bodies_in_order`` -- the body frames of earlier iterations are completed
  and only the current iteration's frame, the loop's active one, is open;
* ``records_agree`` -- the run's view (loops registered/done, body frame
  requested/running, iteration, completed slots, outputs, the failure
  ledger, one row per failed step) matches the frames and the loop: what a
  torn write would break;
* ``completed_loop_is_closed`` -- a completed loop has every body frame it
  started completed (one per iteration);
* ``completed_run_is_whole`` -- a completed run completed every record and
  has no failure;
* ``all_or_nothing`` -- every step changes exactly the records of its store
  operation (rejected steps change none, by the kernel's construction);
* ``iteration_advances_with_frame`` -- when the loop's iteration count moves,
  it moves by one and in the same step the iteration's body frame is
  registered, the ledger gains its row and the run points at the frame;
* witnesses: the run completes (after a loop at the limit, and after one that
  stopped early), is canceled, fails (at the root step, and in a loop body),
  the loop completes at the limit and early, the last body frame completes.

``terminates`` and ``recoverable`` hold (final: the run COMPLETED, FAILED or
CANCELED): every operation moves a record forward or an iteration on, up to
``limit``, so the state graph has no cycle, and no live state is stuck --
weak fairness of each record's rows ends the run, and an end is reachable
from everywhere.

``torn_grant=true`` seeds a bug: grant body frame start commits the loop, the
ledger and the run, and registers the frame later, as a separate action (its
own ``Register`` input, allowed once the ledger names it). The torn step is
the 7th state of the shortest trace (StartRun, StartFrame, GrantSlot(loop),
StartLoop, RequestBody, GrantBody); ``all_or_nothing`` reports it.
"""

from __future__ import annotations

from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes, terminal_stable
from statewright.kernel.system import Action, SystemGuard
from statewright.machines.loop_frame import (
    FLOW_ROUTES,
    BodyGranted,
    CancelRun,
    CompleteBody,
    CompleteLoop,
    CompleteStep,
    FailRun,
    FailStep,
    FinishFrame,
    FinishRun,
    FlowRun,
    Frame,
    FramePhase,
    GrantBody,
    GrantSlot,
    Loop,
    LoopPhase,
    NoteBody,
    Register,
    Replay,
    RequestBody,
    RunPhase,
    StartFrame,
    StartLoop,
    StartRun,
    body_frame,
    flow_system,
    root_frame,
)
from statewright.specs.registry import REGISTRY

TERMINAL = frozenset({RunPhase.COMPLETED, RunPhase.FAILED, RunPhase.CANCELED, FramePhase.COMPLETED,
                      LoopPhase.COMPLETED})
FINAL = (RunPhase.COMPLETED, RunPhase.FAILED, RunPhase.CANCELED)

FOOTPRINT: dict[type, tuple[str, ...]] = {
    StartRun: ("run",),
    FinishRun: ("run",),
    CancelRun: ("run",),
    FailRun: ("run",),
    StartFrame: ("frame",),
    FinishFrame: ("frame",),
    Register: ("frame",),  # only ever acted on directly in the torn variant
    GrantSlot: ("frame", "run"),
    CompleteStep: ("frame", "run"),
    FailStep: ("frame", "run"),
    StartLoop: ("loop", "parent", "run"),
    RequestBody: ("loop", "run"),
    GrantBody: ("loop", "body", "run"),
    Replay: (),
    CompleteBody: ("frame", "loop", "run"),
    CompleteLoop: ("loop", "parent", "run"),
}
"""The records each store operation commits, by the input that starts it."""


def _bodies(view: Any) -> list[tuple[str, Frame]]:
    return [(name, getattr(view, name)) for name in view.loop.frames]


def _frames(view: Any) -> list[tuple[str, Frame]]:
    return [("root", view.root), *_bodies(view)]


def within_limit(view: Any) -> bool:
    loop: Loop = view.loop
    registered = sum(f.phase is not FramePhase.ABSENT for _, f in _bodies(view))
    return loop.iteration <= loop.limit and len(loop.ledger) <= loop.limit and registered <= loop.limit


def requests_within_limit(view: Any) -> bool:
    loop: Loop = view.loop
    return not loop.requested or loop.iteration < loop.limit


def one_iteration_per_body(view: Any) -> bool:
    loop = view.loop
    if [n for n, _ in loop.ledger] != list(range(1, loop.iteration + 1)):
        return False
    for name, f in _bodies(view):
        if f.phase is FramePhase.ABSENT:
            if f.iteration != 0 or any(frame == name for _, frame in loop.ledger):
                return False
            continue
        rows = [n for n, frame in loop.ledger if frame == name]
        if rows != [f.iteration] or not 1 <= f.iteration <= loop.iteration or loop.frames[f.iteration - 1] != name:
            return False
    return True


def granted_slot_in_running_frame(view: Any) -> bool:
    held = {(name, node) for name, f in _frames(view) for node in f.granted}
    if view.run.granted != held or view.run.granted & view.run.completed:
        return False
    return all(
        f.phase is FramePhase.RUNNING and not f.granted & f.done and f.looping <= f.granted
        and not f.failed & (f.granted | f.done)
        for _, f in _frames(view)
        if f.granted or f.looping or f.failed
    )


def failed_run_has_ledger_entry(view: Any) -> bool:
    return view.run.phase is not RunPhase.FAILED or len(view.run.failures) >= 1


def nothing_leaves_failed(before: Any, _action: Action, after: Any) -> bool:
    """A FAILED run is final for every record: no step changes anything once it failed."""
    return before.run.phase is not RunPhase.FAILED or after == before


def fails_by_its_own_cas(before: Any, action: Action, after: Any) -> bool:
    """The run enters FAILED only by cas_run_status (`FailRun` on the run), the step that emits FlowFailed."""
    entered = before.run.phase is not RunPhase.FAILED and after.run.phase is RunPhase.FAILED
    return not entered or (action.instance == "run" and isinstance(action.input, FailRun))


def failure_ledger_only_grows(before: Any, _action: Action, after: Any) -> bool:
    """The ledger keeps every row it had, in order, and gains at most one per step."""
    was, now = before.run.failures, after.run.failures
    return now[:len(was)] == was and len(now) - len(was) in (0, 1)


def granted_before_completed(before: Any, _action: Action, after: Any) -> bool:
    """A slot completes only after it was granted, in the run and in its frame."""
    if not after.run.completed - before.run.completed <= before.run.granted:
        return False
    return all(a.done - b.done <= b.granted for (_, b), (_, a) in zip(_frames(before), _frames(after)))


def nothing_before_the_run(view: Any) -> bool:
    """While the run is PENDING every record is as created."""
    if view.run.phase is not RunPhase.PENDING:
        return True
    return bool(view.run == FlowRun() and view.root == root_frame() and view.loop.phase is LoopPhase.ABSENT
                and all(f == body_frame() for _, f in _bodies(view)))


def loop_phase_matches_count(view: Any) -> bool:
    loop: Loop = view.loop
    if loop.phase in (LoopPhase.ABSENT, LoopPhase.REGISTERED):
        return loop.iteration == 0 and loop.active is None and (loop.phase is LoopPhase.REGISTERED
                                                                or not loop.requested)
    return loop.iteration >= 1


def bodies_in_order(view: Any) -> bool:
    """Earlier iterations' body frames are completed; only the current one may be open, as the loop's active frame."""
    loop: Loop = view.loop
    for n, name in loop.ledger:
        f = getattr(view, name)
        current = n == loop.iteration and loop.active is not None
        if current != (f.phase is not FramePhase.COMPLETED) or (current and loop.active != name):
            return False
    return True


def records_agree(view: Any) -> bool:
    run: FlowRun = view.run
    loop = view.loop
    started = loop.phase is not LoopPhase.ABSENT
    done = loop.phase is LoopPhase.COMPLETED
    completed = {(name, node) for name, f in _frames(view) for node in f.done}
    outputs = {(f.iteration, node) for _, f in _frames(view) for node in f.done if node in f.steps}
    waiting = "loop" in view.root.looping
    return (
        run.loops == ({"loop"} if started else set())
        and run.loops_done == ({"loop"} if done else set())
        and waiting == (started and not done)
        and run.requested == loop.requested
        and run.body == loop.active
        and run.iteration == loop.iteration
        and run.completed == completed
        and run.outputs == outputs
        and sorted(run.failures) == sorted((f.iteration, node) for _, f in _frames(view) for node in f.failed)
    )


def completed_loop_is_closed(view: Any) -> bool:
    loop = view.loop
    if loop.phase is not LoopPhase.COMPLETED:
        return True
    return loop.closed == loop.iteration and all(getattr(view, f).phase is FramePhase.COMPLETED for _, f in loop.ledger)


def completed_run_is_whole(view: Any) -> bool:
    if view.run.phase is not RunPhase.COMPLETED:
        return True
    return (not view.run.failures and view.root.phase is FramePhase.COMPLETED and view.loop.phase is LoopPhase.COMPLETED
            and all(f.phase in (FramePhase.ABSENT, FramePhase.COMPLETED) for _, f in _bodies(view)))


def all_or_nothing(before: Any, action: Action, after: Any) -> bool:
    roles = FOOTPRINT[type(action.input)]
    names: set[str] = set()
    for role in roles:
        if role == "frame":
            names.add(action.instance)
        elif role == "parent":
            names.add(before.loop.parent)
        elif role == "body":
            names.add(before.loop.frames[before.loop.iteration])
        else:
            names.add(role)
    changed = {n for n, b, a in zip(before.names, before, after) if a != b}
    return changed == names


def iteration_advances_with_frame(before: Any, _action: Action, after: Any) -> bool:
    n = after.loop.iteration
    if n == before.loop.iteration:
        return True
    frame = after.loop.frames[n - 1]
    was, now = getattr(before, frame), getattr(after, frame)
    return (
        n == before.loop.iteration + 1
        and was.phase is FramePhase.ABSENT
        and now.phase is FramePhase.PENDING
        and now.iteration == n
        and (n, frame) in after.loop.ledger
        and after.run.body == frame
        and after.run.iteration == n
    )


def _torn_body_granted(e: BodyGranted, source: str) -> list[tuple[str, Any]]:
    """The seeded bug: the grant commits the loop and the run; the frame waits for its own action."""
    return [("run", NoteBody(e.frame, e.iteration))]


def _ledger_names_me(view: Any, me: int, event: Register) -> bool:
    return (event.iteration, view.names[me]) in view.loop.ledger


@REGISTRY.spec
def loop_frame(limit: int = 2, cancel: bool = True, torn_grant: bool = False, fail: bool = True) -> Spec:
    """A flow run's frames and loop: eight store operations, each all-or-nothing."""
    if torn_grant:
        system = flow_system(
            limit,
            routes={**FLOW_ROUTES, BodyGranted: _torn_body_granted},
            guards=[SystemGuard("ledger_names_me", Register, _ledger_names_me)],
        )
    else:
        system = flow_system(limit)
    bodies = system.names[3:]
    run_inputs: list[Any] = [StartRun(), FinishRun(), *([FailRun()] if fail else []), *([CancelRun()] if cancel else [])]
    body_inputs: list[Any] = [StartFrame(), GrantSlot("s"), CompleteStep("s"), *([FailStep("s")] if fail else []),
                              FinishFrame(), CompleteBody()]
    if torn_grant:
        body_inputs += [Register(k) for k in range(1, limit + 1)]
    loop: Loop = system.initial[system.position["loop"]]

    def loop_completed(v: Any) -> bool:
        return bool(v.loop.phase is LoopPhase.COMPLETED)

    failing = [
        always("failed_run_has_ledger_entry", failed_run_has_ledger_entry),
        always_step("nothing_leaves_failed", nothing_leaves_failed),
        always_step("fails_by_its_own_cas", fails_by_its_own_cas),
        always_step("failure_ledger_only_grows", failure_ledger_only_grows),
        sometimes("run_failed_at_the_root", lambda v: v.run.phase is RunPhase.FAILED and (0, "a") in v.run.failures),
        sometimes("run_failed_in_a_body",
                  lambda v: v.run.phase is RunPhase.FAILED and any(n >= 1 for n, _ in v.run.failures)),
    ]
    early = [  # a loop of one iteration cannot stop before its limit
        sometimes("run_completed_after_early_exit",
                  lambda v: v.run.phase is RunPhase.COMPLETED and v.loop.iteration < loop.limit),
        sometimes("loop_completed_early", lambda v: loop_completed(v) and v.loop.iteration < loop.limit),
    ]

    return Spec(
        "loop_frame",
        system,
        inputs={
            "run": run_inputs,
            "root": [StartFrame(), GrantSlot("a"), GrantSlot("loop"), CompleteStep("a"), CompleteStep("loop"),
                     *([FailStep("a"), FailStep("loop")] if fail else []), FinishFrame(), CompleteBody()],
            "loop": [StartLoop(), RequestBody(), GrantBody(), Replay(), CompleteLoop()],
            **{name: body_inputs for name in bodies},
        },
        properties=[
            terminal_stable(TERMINAL, each=True),
            always("within_limit", within_limit),
            always("requests_within_limit", requests_within_limit),
            always("one_iteration_per_body", one_iteration_per_body),
            always("granted_slot_in_running_frame", granted_slot_in_running_frame),
            always_step("granted_before_completed", granted_before_completed),
            always("nothing_before_the_run", nothing_before_the_run),
            always("loop_phase_matches_count", loop_phase_matches_count),
            always("bodies_in_order", bodies_in_order),
            always("records_agree", records_agree),
            always("completed_loop_is_closed", completed_loop_is_closed),
            always("completed_run_is_whole", completed_run_is_whole),
            *(failing if fail else []),
            always_step("all_or_nothing", all_or_nothing),
            always_step("iteration_advances_with_frame", iteration_advances_with_frame),
            sometimes("run_completed_after_full_loop",
                      lambda v: v.run.phase is RunPhase.COMPLETED and v.loop.iteration == loop.limit),
            sometimes("loop_completed_at_limit", lambda v: loop_completed(v) and v.loop.iteration == loop.limit),
            *(early if limit > 1 else []),
            sometimes("last_body_completed", lambda v: getattr(v, bodies[-1]).phase is FramePhase.COMPLETED),
            *([sometimes("run_canceled", lambda v: v.run.phase is RunPhase.CANCELED)] if cancel else []),
        ],
        final=lambda v: v.run.phase in FINAL,
        terminates=True,
        recoverable=True,
        doc=__doc__ or "",
    )
