"""The session kernel alone, and a session driving three inputs through routed effects.

``session`` checks `machines.session` over two input ids and two run ids (and
an unnamed run, which must be refused). Every kind of step keeps a contract a
user of the kernel relies on: the ledger stays honest (an input leaves the
session only by the step that consumes, fails past its budget or abandons
it); an input is accepted once, only where input is taken; a named run starts
only with an ACTIVE executor and none in flight, and ends in the phase it
started from unless a stop was pending; only the run in flight reports, it
applies once and commits only an applied input; the executor registration
follows attach/detach (DRAINING while a run is held) and attach/detach never
move the phase, except that an attach completes a recovery; retire keeps all
work and shows RETIRED; recycle returns to IDLE keeping the queue; reset
empties the queue and returns to IDLE; stop from a quiet phase stops at once,
while running it is deferred (once); terminal sessions never move.

``session_inputs`` composes one session with three `machines.input` instances
(``in1``, ``in2``, ``in3``). Every change to an input is a session effect
routed in the same atomic step -- ``QueueInput`` as ``Queue``,
``StageInput`` as ``Stage(run_id)``, ``ApplyInput`` as ``Apply``,
``ConsumeInput`` as ``Consume``, ``RollBackInput`` as ``RunFailed`` and
``AbandonInput`` as ``Abandon`` -- so a session step that an input refuses
(accepting an input that already finished) is refused whole. The inputs'
own domain is `STRAYS`: messages that reach them without going through the
session (reports from an older run ``r0``, unnamed stage / supersede /
coalesce requests, an abandonment "as exhausted"); each must be refused,
which is what the inputs' ``same_run``, ``names_*`` and ``lifecycle_reason``
guards are for. The session's own step and state properties are checked on
the session instance; the cross-machine properties say the session's ledger
and the inputs' phases always agree, and every input state is one a store
would write. Deadlock means a live session that can do nothing; inputs the
session never accepted may stay ACCEPTED.

The system runs over one run id by default: the session alone already checks
stale reports from a second run, and two run ids in the system make every
rolled-back input remember which run it lost (130,342 states, about 20 s,
instead of 23,976 states in about 4 s). Inputs and session share a budget of
two attempts, so a retry and an exhaustion are both reachable.

``stage_only_when_idle=False`` seeds the bug of starting a run while one is in
flight; both specs catch it in a 6-state trace (``ledger_accounted`` and
``run_starts_from_the_queue``, on the session's own step; in the system the
state it reaches stages two inputs, against ``one_staged``).

Liveness. Both specs are ``recoverable``: from every reachable state the
session can still be stopped or destroyed (their final states), whatever it
holds and wherever its run is. Neither turns on ``terminates``: a session
lives as long as its environment keeps it -- under weak fairness of the
session's own rows it may attach and detach its executor forever (a 2-state
lasso), and new work may keep arriving -- so it ends only when someone stops
or destroys it. What must eventually happen is stated under explicit
fairness instead. ``session`` assumes the shell keeps re-registering an
executor while it can (``weak_fair(AttachExecutor)``, `SESSION_FAIRNESS`)
and checks ``recovery_completes`` (a RECOVERING session serves again: live,
with an ACTIVE executor, or is ended) and ``stop_settles`` (likewise a
STOPPED one; here a stop is final at once). ``session_inputs`` assumes the
runtime also starts, applies and commits the runs it can, strongly
(`SYSTEM_FAIRNESS`; a detach or a crash may disable them again and again),
and checks ``backlog_drains``: whenever an input is queued, the queue is
empty later (each of the three inputs is accepted once, so nothing starves).
Liveness costs ``session`` about 6% more time and ``session_inputs`` about 20%.

Three knobs replay the source runtime's history (``reference/source-history``),
each defaulting to the fixed behaviour; the finding is pinned with ``expect``
only when the knob selects the bug:

* ``session_inputs --set defer_total=false`` (`STRANDED`): after a run failed
  the loop deferred its input behind the backlog, and when the input had just
  been abandoned at its attempt limit the defer was refused and the loop lost
  its wake, stranding the backlog. ``backlog_drains`` reports an 8-state lasso
  (in1 fails twice and is abandoned; in2 stays queued, stuttering forever);
  no safety property sees it.
* ``session --set stopped=absorbs`` (`STOP_ABSORBS`): STOPPED was absorbing
  for resume -- re-registering a stopped session was accepted and changed
  nothing. ``stop_settles`` reports a 2-state lasso (Stop, then the absorbed
  re-registration forever) and ``recovery_completes`` a 3-state one (Recover,
  Stop); ``registration_follows_attach_detach`` also sees the attach that
  grants nothing (3 states). ``--set stopped=revives`` is the source's fix
  (STOPPED is no longer terminal; an attach re-admits it to IDLE): it holds,
  with the same 644 states. The default, ``final``, is this model's design.
* ``session --set recover_settles_drain=false`` (`DRAIN_NOT_SETTLED`):
  DRAINING was absorbing for registration -- recovery replayed a DRAINING
  registration and every attach was refused while it drained, so one run cut
  off by a crash left the session unresumable. ``recovery_completes`` reports
  a 6-state lasso (attach, accept, start, detach, recover: RECOVERING and
  DRAINING forever); the invariant ``registration_consistent``, which says
  DRAINING only while a RUNNING session holds a run, sees that state too.

Mutation scores (`kernel.checker.mutants`; tests/specs/test_mutation.py prints
them): ``session`` alone catches 240 of its 243 mutants. Dropping
``accepting`` from ``IDLE --AcceptInput`` is equivalent (IDLE always takes
input); dropping or negating ``queued`` on ``StartRun`` lets a run start
with an input the queue does not hold, and the update that looks it up
raises before any property fails (a crash is no violation, so those two
survive). In the system the one surviving input mutant drops
``attempts_left`` from ``Stage``, equivalent here because the session only
ever queues an input with attempts left, so an exhausted input is never
staged. The session mutants that survive in the system (19 of 243) are those
two crashes, the IDLE ``accepting`` one, and 16 that reach exactly the
states of the unmutated system because they drop or negate a session guard
that the routed input duplicates -- ``new_input`` (Queue), ``names_run``
(Stage), ``same_run`` / ``not_applied`` / ``applied`` (Apply, Consume,
RunFailed) -- so the input refuses and the whole step is refused;
``session`` alone kills those 16. Six more reach the same states but are
caught by ``backlog_drains``: negating ``same_run`` or ``applied`` on one of
the three ``CommitRun`` rows leaves a run that can never commit, and the
backlog behind it waits forever. The session's witnesses (a deferred stop, a
draining executor, an applied run) are checked in the system too, so a
session step the system could no longer take would be noticed.
"""

from __future__ import annotations

from typing import Any

from statewright.kernel.checker import (
    Kind,
    Property,
    Spec,
    always,
    always_step,
    leads_to,
    sometimes,
    strong_fair,
    weak_fair,
)
from statewright.kernel.system import Action, Route, System
from statewright.machines.input import (
    INPUT,
    Abandon,
    AbandonReason,
    Apply,
    AwaitConsumption,
    Coalesce,
    Consume,
    Input,
    InputPhase,
    Queue,
    RunFailed,
    Stage,
    Supersede,
    authorize_seed,
)
from statewright.machines.input import RUNNING as INPUT_RUNNING
from statewright.machines.session import (
    TERMINAL,
    AbandonInput,
    AcceptInput,
    ApplyInput,
    ApplyRun,
    AttachExecutor,
    CancelRun,
    CommitRun,
    ConsumeInput,
    Destroy,
    DetachExecutor,
    FailRun,
    QueueInput,
    Recover,
    Recycle,
    Registration,
    Reset,
    Retire,
    RollBackInput,
    Session,
    SessionPhase,
    StageInput,
    StartRun,
    Stop,
    accepts_input,
    held,
    processes_queue,
    session_machine,
    visible_phase,
)
from statewright.specs.registry import REGISTRY

P = SessionPhase
RUN_ENDS = (CommitRun, FailRun, CancelRun)


def session_inputs_domain(input_ids: tuple[str, ...], run_ids: tuple[str, ...]) -> list[Any]:
    """Every operation, for every input id and run id; a run may also be started without a name (refused)."""
    return [
        AttachExecutor(),
        DetachExecutor(),
        *(AcceptInput(i) for i in input_ids),
        *(StartRun(r, i) for r in ("", *run_ids) for i in input_ids),
        *(ApplyRun(r) for r in run_ids),
        *(end(r, i) for end in RUN_ENDS for r in run_ids for i in input_ids),
        Retire(),
        Recycle(),
        Reset(),
        Stop(),
        Destroy(),
        Recover(),
    ]


# -- properties of the session's own steps -----------------------------------------------


def terminal_never_changes(before: Session, event: Any, after: Session) -> bool:
    """Terminal precedence: a stopped or destroyed session takes nothing."""
    return before.phase not in TERMINAL or after == before


def _terminal_never_changes(terminal: frozenset[SessionPhase]) -> Any:
    """`terminal_never_changes` for a machine whose terminal phases are ``terminal``."""
    if terminal == TERMINAL:
        return terminal_never_changes

    def test(before: Session, event: Any, after: Session) -> bool:
        return before.phase not in terminal or after == before

    test.__doc__ = terminal_never_changes.__doc__
    return test


def ledger_accounted(before: Session, event: Any, after: Session) -> bool:
    """An input leaves the session only through the step that ends its run or abandons it."""
    gone = set(held(before)) - set(held(after))
    allowed = set(after.abandoned)
    if isinstance(event, RUN_ENDS):
        allowed.add(event.input_id)
    return gone <= allowed


def stop_deferred_while_running(before: Session, event: Any, after: Session) -> bool:
    """Stop while a run is in flight keeps the run and only records the request."""
    if not (before.phase is P.RUNNING and isinstance(event, Stop)):
        return True
    return after.phase is P.RUNNING and after.stop_requested and after.run_id == before.run_id


def run_ends_where_it_started(before: Session, event: Any, after: Session) -> bool:
    """A run ends in the phase it started from (its ``pre_run``), or STOPPED when a stop was pending."""
    if not (isinstance(event, RUN_ENDS) and before.run_id is not None and after.run_id is None):
        return True
    return after.phase is (P.STOPPED if before.stop_requested else before.pre_run)


def only_the_run_in_flight_reports(before: Session, event: Any, after: Session) -> bool:
    """Apply, commit, fail and cancel are taken only from the current run (and name its input)."""
    if isinstance(event, RUN_ENDS):
        return before.run_id is not None and (event.run_id, event.input_id) == (before.run_id, before.input_id)
    if isinstance(event, ApplyRun):
        return before.run_id is not None and event.run_id == before.run_id
    return True


def applied_once_before_commit(before: Session, event: Any, after: Session) -> bool:
    """A run applies its input once, and commits only an applied input."""
    if isinstance(event, ApplyRun):
        return not before.applied and after.applied and after.phase is before.phase
    if isinstance(event, CommitRun):
        return before.applied
    return True


def run_starts_from_the_queue(before: Session, event: Any, after: Session) -> bool:
    """A named run starts only with an executor and no run in flight, takes one queued input and is RUNNING.

    It remembers the phase it was started from, so it can return there.
    """
    if not isinstance(event, StartRun):
        return True
    attempts = dict(before.queued).get(event.input_id)
    return (bool(event.run_id) and before.run_id is None and attempts is not None
            and before.registration is Registration.ACTIVE and after.phase is P.RUNNING
            and (after.run_id, after.input_id, after.attempt) == (event.run_id, event.input_id, attempts + 1)
            and after.pre_run is visible_phase(before) and held(after) == held(before))


def registration_follows_attach_detach(before: Session, event: Any, after: Session) -> bool:
    """One executor at a time: attach needs none and makes it ACTIVE; detach needs an ACTIVE one
    and leaves it DRAINING while a run is held, UNREGISTERED otherwise."""
    if isinstance(event, AttachExecutor):
        return before.registration is Registration.UNREGISTERED and after.registration is Registration.ACTIVE
    if isinstance(event, DetachExecutor):
        drain = Registration.DRAINING if before.run_id is not None else Registration.UNREGISTERED
        return before.registration is Registration.ACTIVE and after.registration is drain
    return True


def executor_keeps_phase_and_work(before: Session, event: Any, after: Session) -> bool:
    """Attaching or detaching changes neither the phase nor the inputs held, except that an attach
    completes a recovery: back to RUNNING with the held run, else to the phase recovery left."""
    if not isinstance(event, (AttachExecutor, DetachExecutor)):
        return True
    if held(after) != held(before) or after.run_id != before.run_id:
        return False
    if isinstance(event, AttachExecutor) and before.phase is P.RECOVERING:
        return after.phase is (P.RUNNING if before.run_id is not None else before.pre_run)
    if isinstance(event, AttachExecutor) and before.phase is P.STOPPED:  # a revival (``stopped="revives"``)
        return after.phase in (P.IDLE, P.STOPPED)
    return after.phase is before.phase


def accepted_once_where_input_is_taken(before: Session, event: Any, after: Session) -> bool:
    """An input is accepted once, only by a session that takes input, and only joins the queue."""
    if not isinstance(event, AcceptInput):
        return True
    return (accepts_input(visible_phase(before)) and event.input_id not in held(before)
            and after.phase is before.phase and (event.input_id, 0) in after.queued
            and held(after) == tuple(sorted((*held(before), event.input_id))))


def retire_keeps_the_work(before: Session, event: Any, after: Session) -> bool:
    """Only a session taking input retires; it then shows RETIRED and still holds everything."""
    if not isinstance(event, Retire):
        return True
    return (accepts_input(visible_phase(before)) and visible_phase(after) is P.RETIRED
            and after.queued == before.queued and after.run_id == before.run_id and after.abandoned == ())


def recycle_returns_to_idle(before: Session, event: Any, after: Session) -> bool:
    """Recycle brings a retired session back to IDLE keeping its queue."""
    if not isinstance(event, Recycle):
        return True
    return before.phase is P.RETIRED and after.phase is P.IDLE and after.queued == before.queued


def reset_empties_the_queue(before: Session, event: Any, after: Session) -> bool:
    """Reset (never over a run) abandons every queued input and returns to IDLE."""
    if not isinstance(event, Reset):
        return True
    return (before.run_id is None and after.phase is P.IDLE and after.queued == ()
            and after.abandoned == tuple(i for i, _ in before.queued))


def stop_from_a_quiet_phase_is_immediate(before: Session, event: Any, after: Session) -> bool:
    """Stop with no run being executed stops at once and gives up everything held; a second
    Stop while one is deferred is refused."""
    if not isinstance(event, Stop):
        return True
    if before.phase is P.RUNNING:
        return not before.stop_requested
    return after.phase is P.STOPPED and after.abandoned == held(before)


def run_matches_phase(s: Session) -> bool:
    """A run (with its staged input) is held exactly in RUNNING, or RECOVERING after a crash."""
    has_run = s.run_id is not None
    if (s.input_id is not None) != has_run or (s.attempt > 0) != has_run:
        return False
    if s.phase is P.RUNNING:
        return has_run
    return not has_run or s.phase is P.RECOVERING


def registration_consistent(s: Session) -> bool:
    """DRAINING only while a run is held by a running session; RUNNING has an executor."""
    if s.registration is Registration.DRAINING and not (s.phase is P.RUNNING and s.run_id is not None):
        return False
    return s.phase is not P.RUNNING or s.registration is not Registration.UNREGISTERED


def destroyed_accepts_nothing(s: Session) -> bool:
    return s.phase is not P.DESTROYED or (
        not accepts_input(visible_phase(s)) and not processes_queue(s.phase) and held(s) == ()
    )


def retired_run_shows_retired(s: Session) -> bool:
    """A run started from (or retired into) RETIRED is shown as RETIRED and takes no input."""
    if not (s.phase is P.RUNNING and s.pre_run is P.RETIRED):
        return True
    return visible_phase(s) is P.RETIRED and not accepts_input(visible_phase(s))


def session_properties(terminal: frozenset[SessionPhase] = TERMINAL) -> list[Property]:
    """The session's own properties; ``terminal`` is its machine's terminal phases."""
    return [
        always_step("terminal_never_changes", _terminal_never_changes(terminal)),
        always_step("ledger_accounted", ledger_accounted),
        always_step("stop_deferred_while_running", stop_deferred_while_running),
        always_step("run_ends_where_it_started", run_ends_where_it_started),
        always_step("only_the_run_in_flight_reports", only_the_run_in_flight_reports),
        always_step("applied_once_before_commit", applied_once_before_commit),
        always_step("run_starts_from_the_queue", run_starts_from_the_queue),
        always_step("registration_follows_attach_detach", registration_follows_attach_detach),
        always_step("executor_keeps_phase_and_work", executor_keeps_phase_and_work),
        always_step("accepted_once_where_input_is_taken", accepted_once_where_input_is_taken),
        always_step("retire_keeps_the_work", retire_keeps_the_work),
        always_step("recycle_returns_to_idle", recycle_returns_to_idle),
        always_step("reset_empties_the_queue", reset_empties_the_queue),
        always_step("stop_from_a_quiet_phase_is_immediate", stop_from_a_quiet_phase_is_immediate),
        always("run_matches_phase", run_matches_phase),
        always("registration_consistent", registration_consistent),
        always("destroyed_accepts_nothing", destroyed_accepts_nothing),
        always("retired_run_shows_retired", retired_run_shows_retired),
        always("attempts_within_budget",
               lambda s: all(0 <= n < s.max_attempts for _, n in s.queued) and 0 <= s.attempt <= s.max_attempts),
        sometimes("reach_stopped", lambda s: s.phase is P.STOPPED),
        sometimes("reach_destroyed", lambda s: s.phase is P.DESTROYED),
        sometimes("reach_retired", lambda s: s.phase is P.RETIRED),
        sometimes("reach_stop_deferred", lambda s: s.phase is P.RUNNING and s.stop_requested),
        sometimes("reach_draining", lambda s: s.registration is Registration.DRAINING),
        sometimes("reach_running_retired", lambda s: s.phase is P.RUNNING and s.pre_run is P.RETIRED),
        sometimes("reach_applied", lambda s: s.applied),
    ]


# -- liveness --------------------------------------------------------------------------------


def serving(s: Session) -> bool:
    """The session is live and has an ACTIVE executor: it takes and runs work again."""
    return s.phase in (P.IDLE, P.RUNNING, P.RETIRED) and s.registration is Registration.ACTIVE


def session_liveness(terminal: frozenset[SessionPhase] = TERMINAL) -> list[Property]:
    """What must eventually happen to a session whose executor keeps registering (`SESSION_FAIRNESS`).

    ``recovery_completes``: a recovering session serves again (or is ended).
    ``stop_settles``: a stopped session is ended for good or serves again --
    with STOPPED terminal, as here, a stop is final at once.
    """

    def settled(s: Session) -> bool:
        return serving(s) or s.phase in terminal

    return [
        leads_to("recovery_completes", lambda s: s.phase is P.RECOVERING, settled),
        leads_to("stop_settles", lambda s: s.phase is P.STOPPED, settled),
    ]


SESSION_FAIRNESS = (weak_fair(AttachExecutor),)
"""The shell keeps (re-)registering an executor while it can: a resume retries until it is served."""

DRAIN_NOT_SETTLED: dict[str, int] = {
    "recovery_completes": 6,  # Attach, Accept, StartRun, Detach (DRAINING), Recover; stutters in RECOVERING
    "registration_consistent": 6,  # the same RECOVERING state still DRAINING
}
"""What ``recover_settles_drain=False`` (the source before its fix) breaks, with the shortest traces."""

STOP_ABSORBS: dict[str, int] = {
    "stop_settles": 2,  # Stop; every attach is absorbed, so it stutters in STOPPED
    "recovery_completes": 3,  # Recover, Stop: a recovery that is stopped is wedged the same way
    "registration_follows_attach_detach": 3,  # Stop, then an attach that grants nothing
}
"""What ``stopped="absorbs"`` (the source before its fix) breaks, with the shortest traces."""


@REGISTRY.spec
def session(inputs: int = 2, runs: int = 2, max_attempts: int = 2, stage_only_when_idle: bool = True,
            recover_settles_drain: bool = True, stopped: str = "final") -> Spec:
    """The session kernel alone: ledger, one run at a time, deferred stop, terminal precedence."""
    ids = tuple(f"in{k}" for k in range(1, inputs + 1))
    run_ids = tuple(f"r{k}" for k in range(1, runs + 1))
    machine = session_machine(max_attempts, stage_only_when_idle=stage_only_when_idle,
                              recover_settles_drain=recover_settles_drain, stopped=stopped)
    terminal = frozenset(p for p in SessionPhase if p in machine.terminal_phases)
    expect: dict[str, int] = {}
    if not recover_settles_drain:
        expect.update(DRAIN_NOT_SETTLED)
    if stopped == "absorbs":
        expect.update(STOP_ABSORBS)
    return Spec(
        "session",
        machine,
        inputs=session_inputs_domain(ids, run_ids),
        properties=[*session_properties(terminal), *session_liveness(terminal)],
        expect=expect,
        fairness=SESSION_FAIRNESS,
        recoverable=True,
        doc=__doc__ or "",
    )


# -- the session with three inputs ---------------------------------------------------------


STRAYS: tuple[Any, ...] = (
    Stage(""), Apply("r0"), AwaitConsumption("r0"), Consume("r0"), RunFailed("r0"),
    Supersede(""), Coalesce(""), Abandon(AbandonReason.MAX_ATTEMPTS_EXHAUSTED),
)
"""Messages that reach an input without going through its session, all of which it must refuse:
reports from an older run ``r0`` that lost it, unnamed stage / supersede / coalesce requests, and
a request to abandon it as exhausted (the retry rule decides that, nobody asks for it)."""


def strays_refused(before: Any, event: Any, after: Any) -> bool:
    """An input takes no stray message: a stale run's report or a malformed request changes nothing."""
    return event not in STRAYS


def inputs_storable(v: Any) -> bool:
    """Every input state is one a store would write (`machines.input.authorize_seed`): outcome matches phase."""
    return all(authorize_seed(s) == () for _, s in _inputs(v))


def _route(effect: Any, source: str) -> tuple[str, Any]:
    match effect:
        case QueueInput(input_id):
            return input_id, Queue()
        case StageInput(input_id, run_id):
            return input_id, Stage(run_id)
        case ApplyInput(input_id, run_id):
            return input_id, Apply(run_id)
        case ConsumeInput(input_id, run_id):
            return input_id, Consume(run_id)
        case RollBackInput(input_id, run_id):
            return input_id, RunFailed(run_id)
        case AbandonInput(input_id, reason):
            return input_id, Abandon(AbandonReason(reason.value))
    raise TypeError(f"not a session effect: {effect!r}")  # pragma: no cover


def _inputs(v: Any) -> list[tuple[str, Input]]:
    return [(n, v[k]) for k, n in enumerate(v.names) if n != "session"]


def staged_has_run_id(v: Any) -> bool:
    """An input a run holds names the session's run."""
    return all(s.run_id and s.run_id == v.session.run_id for _, s in _inputs(v) if s.phase in INPUT_RUNNING)


def one_staged(v: Any) -> bool:
    """At most one input is held by a run."""
    return sum(s.phase in INPUT_RUNNING for _, s in _inputs(v)) <= 1


def run_holds_its_input(v: Any) -> bool:
    """A session with a run has exactly its input staged or applied, and none otherwise."""
    running = [n for n, s in _inputs(v) if s.phase in INPUT_RUNNING]
    want = [] if v.session.input_id is None else [v.session.input_id]
    return running == want


def ledger_agrees(v: Any) -> bool:
    """The session's queue is exactly the QUEUED inputs, with the same attempt counts."""
    queued = tuple((n, s.attempts) for n, s in _inputs(v) if s.phase is InputPhase.QUEUED)
    return bool(queued == v.session.queued)


def applied_matches(v: Any) -> bool:
    """The session's ``applied`` flag is the phase of the input its run holds."""
    s = v.session
    return s.input_id is None or (v[v.names.index(s.input_id)].phase is InputPhase.APPLIED) == s.applied


def dead_session_holds_nothing(v: Any) -> bool:
    """A stopped or destroyed session leaves no input queued or running."""
    if v.session.phase not in TERMINAL:
        return True
    return all(s.phase is InputPhase.ACCEPTED or s.phase in INPUT.terminal_phases for _, s in _inputs(v))


def terminal_system_frozen(before: Any, action: Action, after: Any) -> bool:
    """A terminal (e.g. destroyed) session accepts nothing: no step changes anything."""
    return before.session.phase not in TERMINAL or after == before


def stop_deferred_in_system(before: Any, action: Action, after: Any) -> bool:
    """Stop while running changes no input; the run's input stays with the run."""
    if not (isinstance(action.input, Stop) and before.session.phase is P.RUNNING):
        return True
    return after.session.phase is P.RUNNING and _inputs(after) == _inputs(before)


def _session_step(test: Any) -> Any:
    """A session step property as a per-instance one: input instances' steps pass."""
    def local(before: Any, event: Any, after: Any) -> bool:
        return not isinstance(before, Session) or bool(test(before, event, after))

    return local


def _session_state(test: Any) -> Any:
    def of_system(v: Any) -> bool:
        return bool(test(v.session))

    return of_system


RESTATED_WITNESSES = {"reach_stopped", "reach_destroyed", "reach_retired"}
"""Session witnesses the system states under its own names (``session_stopped``, ...)."""


def session_properties_in_system() -> list[Property]:
    """The session's own properties, checked on the session instance of a system.

    Its witnesses come along too (but those the system restates): a session
    step that the system can no longer take -- a deferred stop, a detach that
    leaves a run draining -- is then noticed.
    """
    out: list[Property] = []
    for p in session_properties():
        if p.kind is Kind.STEP:
            out.append(always_step(p.name, _session_step(p.test), each=True))
        elif p.kind is Kind.ALWAYS:
            out.append(always(p.name, _session_state(p.test)))
        elif p.kind is Kind.SOMETIMES and p.name not in RESTATED_WITNESSES:
            out.append(sometimes(p.name, _session_state(p.test)))
    return out


def backlog_waits(v: Any) -> bool:
    """Some input is queued."""
    return any(s.phase is InputPhase.QUEUED for _, s in _inputs(v))


def backlog_empty(v: Any) -> bool:
    return not backlog_waits(v)


SYSTEM_FAIRNESS = (
    weak_fair(AttachExecutor), strong_fair(StartRun), strong_fair(ApplyRun), strong_fair(CommitRun),
)
"""The runtime does its part: it keeps an executor registered, and a run it can start, apply or
commit infinitely often it does (strong: a detach or a crash may disable them again and again)."""

STRANDED: dict[str, int] = {
    "backlog_drains": 8,  # Attach, Accept in1, Accept in2, in1 fails twice (exhausted): in2 waits forever
}
"""What ``defer_total=False`` (the source before its fix) breaks, with the shortest trace."""


@REGISTRY.spec
def session_inputs(runs: int = 1, max_attempts: int = 2, stage_only_when_idle: bool = True,
                   defer_total: bool = True) -> Spec:
    """One session staging three inputs one at a time through routed effects."""
    names = ("in1", "in2", "in3")
    run_ids = tuple(f"r{k}" for k in range(1, runs + 1))
    system: System[Any] = System(
        "session_inputs",
        {"session": session_machine(max_attempts, stage_only_when_idle=stage_only_when_idle,
                                    defer_total=defer_total),
         **{n: INPUT for n in names}},
        routes=[Route(t, _route) for t in
                (QueueInput, StageInput, ApplyInput, ConsumeInput, RollBackInput, AbandonInput)],
        initial_states={n: Input(max_attempts=max_attempts) for n in names},
    )
    return Spec(
        "session_inputs",
        system,
        inputs={"session": session_inputs_domain(names, run_ids), **{n: STRAYS for n in names}},
        properties=[
            *session_properties_in_system(),
            always_step("terminal_system_frozen", terminal_system_frozen),
            always_step("stop_deferred_in_system", stop_deferred_in_system),
            always_step("strays_refused", strays_refused, each=True),
            always("staged_has_run_id", staged_has_run_id),
            always("one_staged", one_staged),
            always("run_holds_its_input", run_holds_its_input),
            always("ledger_agrees", ledger_agrees),
            always("applied_matches", applied_matches),
            always("dead_session_holds_nothing", dead_session_holds_nothing),
            always("inputs_storable", inputs_storable),
            sometimes("session_stopped", lambda v: v.session.phase is P.STOPPED),
            sometimes("session_destroyed", lambda v: v.session.phase is P.DESTROYED),
            sometimes("session_retired", lambda v: v.session.phase is P.RETIRED),
            sometimes("input_consumed", lambda v: any(s.phase is InputPhase.CONSUMED for _, s in _inputs(v))),
            sometimes("input_exhausted", lambda v: any(
                s.phase is InputPhase.ABANDONED and s.outcome is not None
                and getattr(s.outcome, "reason", None) is AbandonReason.MAX_ATTEMPTS_EXHAUSTED
                for _, s in _inputs(v))),
            sometimes("all_consumed", lambda v: all(s.phase is InputPhase.CONSUMED for _, s in _inputs(v))),
            leads_to("backlog_drains", backlog_waits, backlog_empty),
        ],
        expect={} if defer_total else STRANDED,
        final=lambda v: v.session.phase in TERMINAL,
        fairness=SYSTEM_FAIRNESS,
        recoverable=True,
        doc=__doc__ or "",
    )
