"""Capability tokens and operator sessions of the swarm engine.

Theory of operation
-------------------
Two lifecycles from the task engine (``reference/SEEDS.md``,
"mlua-swarm-engine.rs.txt"), both pure tables; time arrives as ``now`` fields.

**TOKEN.** A capability token is minted by ``Issue`` with a role, an expiry
time, a budget of uses and -- for a worker -- the one task it is bound to.
Every call the bearer makes is a ``Verify(verb, task_id, now, signature_ok)``
that either consumes one use or is refused, state unchanged, by the first
failing guard of one row, checked in the seed's order::

    signature_valid   the signature checked out (the signer's verdict is input)
    not_expired       now < expires_at
    verb_allowed      the role x verb gate lets this role use this verb
    owns_task         a worker token touching a task names its bound task
    has_uses          a use is left

Three terminal phases retire a token: ``REVOKED`` (``Revoke``), ``EXPIRED``
and ``EXHAUSTED``. Expiry and exhaustion are found by the engine's
housekeeping ``Sweep(now)``: a token past its expiry is EXPIRED (expiry wins
when both hold), a live one with no uses left is EXHAUSTED, and a sweep
finding neither is refused. Until a sweep retires it, a token that cannot be
used is refused by ``not_expired`` / ``has_uses``, exactly as the seed's store
keeps the record and answers ``TokenExpired`` / ``TokenUsesExhausted``.

**OPERATOR.** An operator session is attached (``Attach(now)``), refreshed by
``Heartbeat(now)``, detached on request (``Detach``) or by the heartbeat-miss
scan (``MissHeartbeat(now)``, allowed only once ``now - last_seen`` reaches the
machine's ``miss_after``), and brought back by ``Reattach(now)``. Tasks the
session starts (``OwnTask``) survive every detach and reattach.

Choices the source leaves open, and why:

* The seed consumes a use *before* its task-ownership check, so a worker that
  names the wrong task burns a use on a call that fails. Here ``owns_task``
  is a guard of the same row: a refused call changes nothing.
* The seed's gate table is not in the excerpt; `GATE` is this module's
  reading of its verbs (workers run their own task and may spawn, operators
  drive and cancel, seniors and observers read). ``token_machine(gate)``
  takes another one, as the seed's ``with_gate`` does.
* Only task-scoped verbs (`TASK_SCOPED`) face the ownership gate; starting or
  dispatching a task stays open to workers so recursive swarms work, as in
  the seed (its spawn-depth limit belongs to the task lifecycle).
* ``Issue`` insists that a worker token is bound to a task and other roles are
  not, and that the budget is at least one use, so no reachable token is
  unusable from birth.
* ``expired`` means ``now >= expires_at``: the instant of expiry is already
  too late.
* A ``now`` earlier than a previous one is not refused by the token: it
  remembers no clock, and each verification is judged on its own input.
* The seed's heartbeat also flips a detached session back to attached; here
  coming back is always an explicit ``Reattach``, and a ``Heartbeat`` on a
  detached session is refused (no transition). Session time never runs
  backwards: ``clock_monotone`` refuses a heartbeat or reattach older than
  ``last_seen``.
* ``reattached`` records that the session came back at least once (the shell
  replays senior answers stored while it was away) and ``detached_by`` why a
  detached session left; both are data for the shell, and they let a check
  show a witness for a reattach and for a missed heartbeat.

Example: a worker token used on its own task, refused on another, then spent.

>>> from statewright.kernel.step import step
>>> t = step(TOKEN, Token(), Issue(Role.WORKER, "t1", expires_at=10, uses=1)).state
>>> step(TOKEN, t, Verify(Verb.POST_RESULT, "t2", now=0)).guards
('owns_task',)
>>> t = step(TOKEN, t, Verify(Verb.POST_RESULT, "t1", now=0)).state
>>> t.phase, t.uses_left
(<TokenPhase.ACTIVE: 'active'>, 0)
>>> step(TOKEN, t, Verify(Verb.POST_RESULT, "t1", now=1)).guards
('has_uses',)
>>> step(TOKEN, t, Sweep(now=1)).state.phase
<TokenPhase.EXHAUSTED: 'exhausted'>
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from statewright.kernel.machine import Guard, Machine, Transition

__all__ = [
    "GATE",
    "OPERATOR",
    "TASK_SCOPED",
    "TERMINAL",
    "TOKEN",
    "Attach",
    "Detach",
    "DetachReason",
    "Issue",
    "MissHeartbeat",
    "OwnTask",
    "Reattach",
    "Heartbeat",
    "Revoke",
    "Role",
    "Session",
    "SessionAttached",
    "SessionDetached",
    "SessionPhase",
    "SessionReattached",
    "Sweep",
    "TaskOwned",
    "Token",
    "TokenExhausted",
    "TokenExpired",
    "TokenIssued",
    "TokenPhase",
    "TokenRevoked",
    "TokenUsed",
    "Verb",
    "Verify",
    "operator_machine",
    "token_machine",
]


class Role(Enum):
    """Who holds a token."""

    OPERATOR = "operator"
    SENIOR = "senior"
    WORKER = "worker"
    OBSERVER = "observer"


class Verb(Enum):
    """What a token's bearer asks the engine to do."""

    START_TASK = "start_task"
    DISPATCH_ATTEMPT = "dispatch_attempt"
    FETCH_PROMPT = "fetch_prompt"
    FETCH_DATA = "fetch_data"
    EMIT_OUTPUT = "emit_output"
    POST_RESULT = "post_result"
    READ_TASK_STATE = "read_task_state"
    CANCEL_TASK = "cancel_task"
    POLL_TASK = "poll_task"
    QUERY_SENIOR = "query_senior"
    HEARTBEAT = "heartbeat"
    DETACH_SESSION = "detach_session"


V = Verb
GATE: Mapping[Role, frozenset[Verb]] = {
    Role.OPERATOR: frozenset({
        V.START_TASK, V.DISPATCH_ATTEMPT, V.FETCH_DATA, V.READ_TASK_STATE,
        V.CANCEL_TASK, V.POLL_TASK, V.HEARTBEAT, V.DETACH_SESSION,
    }),
    Role.WORKER: frozenset({
        V.START_TASK, V.DISPATCH_ATTEMPT, V.FETCH_PROMPT, V.FETCH_DATA, V.EMIT_OUTPUT,
        V.POST_RESULT, V.READ_TASK_STATE, V.POLL_TASK, V.QUERY_SENIOR,
    }),
    Role.SENIOR: frozenset({V.FETCH_DATA, V.READ_TASK_STATE, V.POLL_TASK}),
    Role.OBSERVER: frozenset({V.READ_TASK_STATE, V.POLL_TASK}),
}
"""The default role x verb gate: the verbs each role may use."""

TASK_SCOPED = frozenset({V.FETCH_PROMPT, V.POST_RESULT, V.READ_TASK_STATE, V.CANCEL_TASK, V.POLL_TASK})
"""Verbs that touch one task's state; a worker may use them only on its bound task."""


# -- token ----------------------------------------------------------------------


class TokenPhase(Enum):
    """Where a capability token is in its life."""

    UNISSUED = "unissued"
    ACTIVE = "active"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    REVOKED = "revoked"


TERMINAL = frozenset({TokenPhase.EXHAUSTED, TokenPhase.EXPIRED, TokenPhase.REVOKED})


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``task_id`` is the bound task of a worker token (None otherwise)."""

    phase: TokenPhase = TokenPhase.UNISSUED
    role: Role | None = None
    task_id: str | None = None
    expires_at: int = 0
    uses_left: int = 0


@dataclass(frozen=True, slots=True)
class Issue:
    """Mint the token for ``role`` (bound to ``task_id`` for a worker)."""

    role: Role
    task_id: str | None
    expires_at: int
    uses: int


@dataclass(frozen=True, slots=True)
class Verify:
    """The bearer calls ``verb`` (on ``task_id``, if any) at ``now``; the signer's verdict rides along."""

    verb: Verb
    task_id: str | None
    now: int
    signature_ok: bool = True


@dataclass(frozen=True, slots=True)
class Sweep:
    """Housekeeping at ``now``: retire the token if it is expired or spent."""

    now: int


@dataclass(frozen=True, slots=True)
class Revoke:
    """Withdraw the token for good."""


@dataclass(frozen=True, slots=True)
class TokenIssued:
    role: Role
    task_id: str | None
    expires_at: int
    uses: int


@dataclass(frozen=True, slots=True)
class TokenUsed:
    verb: Verb
    task_id: str | None
    uses_left: int


@dataclass(frozen=True, slots=True)
class TokenExpired:
    now: int


@dataclass(frozen=True, slots=True)
class TokenExhausted:
    pass


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    uses_left: int


def binding_fits_role(state: Token, event: Issue) -> bool:
    """A worker token is bound to one task; no other role's token is."""
    return (event.role is Role.WORKER) == (event.task_id is not None)


def has_budget(state: Token, event: Issue) -> bool:
    return event.uses >= 1


def signature_valid(state: Token, event: Verify) -> bool:
    return event.signature_ok


def not_expired(state: Token, event: Verify) -> bool:
    return event.now < state.expires_at


def owns_task(state: Token, event: Verify) -> bool:
    """Worker tokens touch only their bound task; other roles may touch any."""
    return state.role is not Role.WORKER or event.verb not in TASK_SCOPED or event.task_id == state.task_id


def has_uses(state: Token, event: Verify) -> bool:
    return state.uses_left > 0


def past_expiry(state: Token, event: Sweep) -> bool:
    return event.now >= state.expires_at


def before_expiry(state: Token, event: Sweep) -> bool:
    """Complement of ``past_expiry``: expiry takes precedence over exhaustion."""
    return event.now < state.expires_at


def spent(state: Token, event: Sweep) -> bool:
    return state.uses_left <= 0


def _issue(state: Token, event: Issue) -> Token:
    return replace(state, role=event.role, task_id=event.task_id, expires_at=event.expires_at, uses_left=event.uses)


def _use(state: Token, event: Verify) -> Token:
    return replace(state, uses_left=state.uses_left - 1)


def token_machine(gate: Mapping[Role, frozenset[Verb]] = GATE) -> Machine[Token]:
    """The token lifecycle under role x verb ``gate`` (the default is `GATE`)."""

    def verb_allowed(state: Token, event: Verify) -> bool:
        return state.role is not None and event.verb in gate.get(state.role, frozenset())

    P = TokenPhase
    return Machine(
        "token",
        initial=Token(),
        terminal=TERMINAL,
        inputs=(Issue, Verify, Sweep, Revoke),
        effects=(TokenIssued, TokenUsed, TokenExpired, TokenExhausted, TokenRevoked),
        transitions=[
            Transition(P.UNISSUED, Issue, P.ACTIVE, guard=[binding_fits_role, has_budget], update=_issue,
                       emit=lambda s, i: (TokenIssued(i.role, i.task_id, i.expires_at, i.uses),)),
            Transition(P.ACTIVE, Verify, P.ACTIVE,
                       guard=[signature_valid, not_expired, verb_allowed, owns_task, has_uses], update=_use,
                       emit=lambda s, i: (TokenUsed(i.verb, i.task_id, s.uses_left),)),
            Transition(P.ACTIVE, Sweep, P.EXPIRED, guard=past_expiry,
                       emit=lambda s, i: (TokenExpired(i.now),)),
            Transition(P.ACTIVE, Sweep, P.EXHAUSTED, guard=[spent, before_expiry], emit=(TokenExhausted(),)),
            Transition(P.ACTIVE, Revoke, P.REVOKED, emit=lambda s, i: (TokenRevoked(s.uses_left),)),
        ],
        doc="A capability token: signature, expiry, role x verb gate, task binding and a budget of uses.",
    )


TOKEN = token_machine()


# -- operator session -------------------------------------------------------------


class SessionPhase(Enum):
    """Whether an operator session is connected."""

    NEW = "new"
    ATTACHED = "attached"
    DETACHED = "detached"


class DetachReason(Enum):
    REQUESTED = "requested"
    HEARTBEAT_MISSED = "heartbeat_missed"


@dataclass(frozen=True, slots=True)
class Session:
    """One operator session; ``tasks`` (sorted ids) survive every detach.

    ``detached_by`` says why a detached session went away (None while attached).
    """

    phase: SessionPhase = SessionPhase.NEW
    last_seen: int = 0
    tasks: tuple[str, ...] = ()
    reattached: bool = False
    detached_by: DetachReason | None = None


@dataclass(frozen=True, slots=True)
class Attach:
    now: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    now: int


@dataclass(frozen=True, slots=True)
class OwnTask:
    """The session started ``task_id``; it now owns it."""

    task_id: str


@dataclass(frozen=True, slots=True)
class Detach:
    """The operator asks to leave; its tasks stay."""


@dataclass(frozen=True, slots=True)
class MissHeartbeat:
    """The heartbeat-miss scan at ``now`` found the session silent."""

    now: int


@dataclass(frozen=True, slots=True)
class Reattach:
    now: int


@dataclass(frozen=True, slots=True)
class SessionAttached:
    now: int


@dataclass(frozen=True, slots=True)
class TaskOwned:
    task_id: str


@dataclass(frozen=True, slots=True)
class SessionDetached:
    reason: DetachReason
    tasks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionReattached:
    tasks: tuple[str, ...]


def clock_monotone(state: Session, event: Heartbeat | Reattach) -> bool:
    """Session time never runs backwards."""
    return event.now >= state.last_seen


def task_is_new(state: Session, event: OwnTask) -> bool:
    return event.task_id not in state.tasks


def _seen(state: Session, event: Attach | Heartbeat) -> Session:
    return replace(state, last_seen=event.now)


def _own(state: Session, event: OwnTask) -> Session:
    return replace(state, tasks=tuple(sorted((*state.tasks, event.task_id))))


def _reattach(state: Session, event: Reattach) -> Session:
    return replace(state, last_seen=event.now, reattached=True, detached_by=None)


def _detach(reason: DetachReason) -> Callable[[Session, object], Session]:
    return lambda state, _event: replace(state, detached_by=reason)


def operator_machine(miss_after: int = 30) -> Machine[Session]:
    """The operator session lifecycle; the scan may detach after ``miss_after`` silent time units."""
    heartbeat_missed: Guard[Session] = Guard("heartbeat_missed", lambda s, i: i.now - s.last_seen >= miss_after)
    P = SessionPhase
    return Machine(
        "operator",
        initial=Session(),
        inputs=(Attach, Heartbeat, OwnTask, Detach, MissHeartbeat, Reattach),
        effects=(SessionAttached, TaskOwned, SessionDetached, SessionReattached),
        transitions=[
            Transition(P.NEW, Attach, P.ATTACHED, update=_seen, emit=lambda s, i: (SessionAttached(i.now),)),
            Transition(P.ATTACHED, Heartbeat, P.ATTACHED, guard=clock_monotone, update=_seen),
            Transition(P.ATTACHED, OwnTask, P.ATTACHED, guard=task_is_new, update=_own,
                       emit=lambda s, i: (TaskOwned(i.task_id),)),
            Transition(P.ATTACHED, Detach, P.DETACHED, update=_detach(DetachReason.REQUESTED),
                       emit=lambda s, i: (SessionDetached(DetachReason.REQUESTED, s.tasks),)),
            Transition(P.ATTACHED, MissHeartbeat, P.DETACHED, guard=heartbeat_missed,
                       update=_detach(DetachReason.HEARTBEAT_MISSED),
                       emit=lambda s, i: (SessionDetached(DetachReason.HEARTBEAT_MISSED, s.tasks),)),
            Transition(P.DETACHED, Reattach, P.ATTACHED, guard=clock_monotone, update=_reattach,
                       emit=lambda s, i: (SessionReattached(s.tasks),)),
        ],
        doc="An operator session: attach, heartbeat, detach (asked or missed) and reattach; tasks survive.",
    )


OPERATOR = operator_machine()
