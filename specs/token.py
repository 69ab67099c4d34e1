"""Capability tokens and operator sessions: what must hold (`machines.token`).

``token``: one token issued as a worker (bound to ``t1`` or ``t2``) or an
operator, verified with two verbs (``post_result``: workers only;
``cancel_task``: operators only), two task ids, times ``0..times-1``, a good
or bad signature, swept at any of those times, or revoked. Issue is offered
with every binding for both roles (so a worker bound to nothing and an
operator bound to a task too) and with a budget of ``uses`` or of none, so
both of its guards are tried both ways; ``bound_as_its_role`` and
``issued_usable`` say what they protect.
With the defaults (expiry 2, uses 2) that is 31 distinct states, depth 5.
``terminates`` and ``recoverable`` hold: a token remembers no clock, every
accepted call spends a use, so the state graph has no cycle, and a live
token can always be revoked.
Seeded bugs:
``task_guard=false`` drops the ownership guard (``worker_stays_on_task``
fails with a 3-state trace) and ``use_guard=false`` drops the use budget
(``uses_never_negative`` fails with a 5-state trace).

``operator``: one session attached, heartbeating, owning ``t1``/``t2``,
detached on request or by a missed heartbeat, and reattached, at times
``0..times-1``; the scan's threshold is ``miss_after`` while the property
holds it to ``timeout``. Besides keeping its tasks, a session never goes back
to NEW, a heartbeat never changes its phase, and a task joins it only once
(``OwnTask`` is offered again for a task already owned). Defaults: 81
distinct states, depth 7. A session has no terminal phase: it heartbeats,
detaches and reattaches for as long as its operator wants, so
``terminates`` is left off (it would report Attach, Detach, Reattach,
Detach, back to step 3). It is ``recoverable`` to its home, ATTACHED
(`attached`): a detached session can always reattach, with its tasks (with
the default home, a final state, all 81 states would be trapped). Seeded bugs:
``reattach_keeps_tasks=false`` (a reattach that builds a fresh session, as
the seed's attach does) breaks ``tasks_kept`` with a 5-state trace, and
``miss_after=0`` (the seed's ``interval.as_secs() * threshold`` for a
sub-second interval) breaks ``miss_only_after_timeout`` with a 3-state trace.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from statewright.kernel.checker import Spec, always, always_step, sometimes, terminal_stable
from statewright.kernel.machine import Machine, Transition
from statewright.machines.token import (
    GATE,
    TASK_SCOPED,
    TERMINAL,
    TOKEN,
    Attach,
    Detach,
    DetachReason,
    Heartbeat,
    Issue,
    MissHeartbeat,
    OwnTask,
    Reattach,
    Revoke,
    Role,
    Session,
    SessionPhase,
    Sweep,
    Token,
    TokenPhase,
    Verb,
    Verify,
    has_uses,
    operator_machine,
    owns_task,
)
from statewright.specs.registry import REGISTRY

TASKS = ("t1", "t2")
VERBS = (Verb.POST_RESULT, Verb.CANCEL_TASK)
ROLES = (Role.WORKER, Role.OPERATOR)


def without_guard(machine: Machine[Any], guard: object) -> Machine[Any]:
    """A copy of ``machine`` whose rows no longer test ``guard`` (a seeded bug)."""

    def strip(t: Transition) -> Transition:
        gs = t.guard if isinstance(t.guard, (list, tuple)) else (t.guard,) if t.guard is not None else ()
        return replace(t, guard=tuple(g for g in gs if g is not guard))

    return Machine(machine.name, initial=machine.initial, transitions=[strip(t) for t in machine.transitions],
                   terminal=machine.terminal, inputs=machine.inputs, effects=machine.effects, doc=machine.doc)


# -- token properties ---------------------------------------------------------------


def worker_stays_on_task(before: Token, event: Any, _after: Token) -> bool:
    if not isinstance(event, Verify) or before.role is not Role.WORKER or event.verb not in TASK_SCOPED:
        return True
    return event.task_id == before.task_id


def no_use_when_spent(before: Token, event: Any, after: Token) -> bool:
    """An accepted Verify comes from a live token with a use left, and takes exactly one."""
    if not isinstance(event, Verify):
        return True
    return before.phase is TokenPhase.ACTIVE and before.uses_left > 0 and after.uses_left == before.uses_left - 1


def no_use_after_expiry(before: Token, event: Any, _after: Token) -> bool:
    return not isinstance(event, Verify) or event.now < before.expires_at


def verb_within_gate(before: Token, event: Any, _after: Token) -> bool:
    return not isinstance(event, Verify) or (before.role is not None and event.verb in GATE[before.role])


def signed(_before: Token, event: Any, _after: Token) -> bool:
    return not isinstance(event, Verify) or event.signature_ok


def bound_as_its_role(token: Token) -> bool:
    """An issued worker token is bound to one task; a token of any other role to none."""
    return token.phase is TokenPhase.UNISSUED or (token.role is Role.WORKER) == (token.task_id is not None)


def issued_usable(before: Token, event: Any, after: Token) -> bool:
    """A token is never issued already spent: it starts with at least one use."""
    return not isinstance(event, Issue) or after.uses_left >= 1


def retired_for_cause(before: Token, event: Any, after: Token) -> bool:
    """EXPIRED only once past expiry; EXHAUSTED only when spent and not expired."""
    if after.phase is TokenPhase.EXPIRED and before.phase is not TokenPhase.EXPIRED:
        return isinstance(event, Sweep) and event.now >= before.expires_at
    if after.phase is TokenPhase.EXHAUSTED and before.phase is not TokenPhase.EXHAUSTED:
        return isinstance(event, Sweep) and before.uses_left == 0 and event.now < before.expires_at
    return True


@REGISTRY.spec
def token(
    times: int = 4, expiry: int = 2, uses: int = 2, task_guard: bool = True, use_guard: bool = True
) -> Spec:
    """One capability token (worker or operator); 31 states, depth 5 by default."""
    machine: Machine[Any] = TOKEN
    if not task_guard:
        machine = without_guard(machine, owns_task)
    if not use_guard:
        machine = without_guard(machine, has_uses)
    clock = range(times)
    inputs: list[Any] = [
        *(Issue(role, task, expiry, n) for role in ROLES for task in (None, *TASKS) for n in (uses, 0)),
        *(Verify(verb, task, now, ok) for verb in VERBS for task in TASKS for now in clock for ok in (True, False)),
        *(Sweep(now) for now in clock),
        Revoke(),
    ]
    return Spec(
        "token",
        machine,
        inputs=inputs,
        properties=[
            terminal_stable(TERMINAL),
            always_step("worker_stays_on_task", worker_stays_on_task),
            always_step("no_use_when_spent", no_use_when_spent),
            always("uses_never_negative", lambda s: s.uses_left >= 0),
            always_step("no_use_after_expiry", no_use_after_expiry),
            always_step("verb_within_gate", verb_within_gate),
            always_step("signed", signed),
            always_step("retired_for_cause", retired_for_cause),
            always("bound_as_its_role", bound_as_its_role),
            always_step("issued_usable", issued_usable),
            sometimes("exhausted", lambda s: s.phase is TokenPhase.EXHAUSTED),
            sometimes("expired", lambda s: s.phase is TokenPhase.EXPIRED),
            sometimes("revoked", lambda s: s.phase is TokenPhase.REVOKED),
            sometimes("worker_spent", lambda s: s.role is Role.WORKER and s.uses_left == 0),
        ],
        terminates=True,
        recoverable=True,
        doc=__doc__ or "",
    )


# -- operator properties ------------------------------------------------------------


def tasks_kept(before: Session, _event: Any, after: Session) -> bool:
    """No step loses a task: detach, miss and reattach keep the list."""
    return set(before.tasks) <= set(after.tasks)


def lifecycle_keeps_tasks(before: Session, event: Any, after: Session) -> bool:
    return not isinstance(event, (Detach, MissHeartbeat, Reattach, Heartbeat)) or after.tasks == before.tasks


def never_back_to_new(before: Session, _event: Any, after: Session) -> bool:
    """NEW means "never attached"; once attached, a session is attached or detached for good."""
    return before.phase is SessionPhase.NEW or after.phase is not SessionPhase.NEW


def heartbeat_keeps_phase(before: Session, event: Any, after: Session) -> bool:
    """A heartbeat refreshes an attached session; it never attaches, detaches or resets one."""
    return not isinstance(event, Heartbeat) or after.phase is before.phase


def tasks_distinct(session: Session) -> bool:
    """A task joins a session at most once: the owned list has no repeats."""
    return len(set(session.tasks)) == len(session.tasks)


def time_monotone(before: Session, _event: Any, after: Session) -> bool:
    return before.phase is SessionPhase.NEW or after.last_seen >= before.last_seen


def attached(session: Session) -> bool:
    """The operator's home: attached. Nothing ends a session, so it must always be able to come back."""
    return session.phase is SessionPhase.ATTACHED


def _buggy_reattach(state: Session, event: Reattach) -> Session:
    return replace(state, last_seen=event.now, reattached=True, detached_by=None, tasks=())


@REGISTRY.spec
def operator(times: int = 4, timeout: int = 2, miss_after: int = 2, reattach_keeps_tasks: bool = True) -> Spec:
    """One operator session with two tasks; 81 states, depth 7 by default."""
    machine: Machine[Any] = operator_machine(miss_after)
    if not reattach_keeps_tasks:
        machine = Machine(
            machine.name, initial=machine.initial, terminal=machine.terminal, inputs=machine.inputs,
            effects=machine.effects, doc=machine.doc,
            transitions=[replace(t, update=_buggy_reattach) if t.input is Reattach else t
                         for t in machine.transitions],
        )

    def miss_only_after_timeout(before: Session, event: Any, after: Session) -> bool:
        if before.phase is SessionPhase.ATTACHED and after.phase is SessionPhase.DETACHED:
            return isinstance(event, Detach) or (isinstance(event, MissHeartbeat)
                                                 and event.now - before.last_seen >= timeout)
        return True

    clock = range(times)
    inputs: list[Any] = [
        *(Attach(now) for now in clock),
        *(Heartbeat(now) for now in clock),
        *(OwnTask(t) for t in TASKS),
        Detach(),
        *(MissHeartbeat(now) for now in clock),
        *(Reattach(now) for now in clock),
    ]
    return Spec(
        "operator",
        machine,
        inputs=inputs,
        properties=[
            terminal_stable(TERMINAL),
            always_step("tasks_kept", tasks_kept),
            always_step("lifecycle_keeps_tasks", lifecycle_keeps_tasks),
            always_step("miss_only_after_timeout", miss_only_after_timeout),
            always_step("time_monotone", time_monotone),
            always_step("never_back_to_new", never_back_to_new),
            always_step("heartbeat_keeps_phase", heartbeat_keeps_phase),
            always("tasks_distinct", tasks_distinct),
            sometimes("reattached_with_tasks", lambda s: s.phase is SessionPhase.ATTACHED and s.reattached
                      and s.tasks == TASKS),
            sometimes("missed_with_tasks", lambda s: s.detached_by is DetachReason.HEARTBEAT_MISSED
                      and bool(s.tasks)),
            always("detached_by_iff_detached",
                   lambda s: (s.phase is SessionPhase.DETACHED) == (s.detached_by is not None)),
        ],
        recoverable=True,
        home=attached,
        doc=__doc__ or "",
    )
