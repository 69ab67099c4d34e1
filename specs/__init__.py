"""What must hold: bundled specs, registered by name in `REGISTRY`.

Importing this package registers every bundled spec (ports of reference TLA+
models for now; the lifecycle library's own specs join them) and the library
machines, so `statewright list` can show both.
"""

from statewright.specs import cas, diehard, input, input_lifecycle, loop_frame, run, session, task, token, two_phase
from statewright.specs import alternating_bit, coffee_can, crdt, ewd840  # TLA+ ports: several inits, constraints, liveness
from statewright.specs import lamport_mutex  # TLA+ port: one record for the whole system
from statewright.specs import order_payment  # routes settled atomically, and delivered asynchronously
from statewright.specs import dispatch  # the dispatcher's protocol: cursor, lease, crashes
from statewright.specs import launcher  # the run engine: start/resume, snapshots, the run-id bug
from statewright.specs import facts  # fact-keyed IO: live, replay, missing facts
from statewright.specs import child_runs  # a parent and its child run: linkage events once
from statewright.specs.registry import REGISTRY, Entry, Registry

__all__ = ["REGISTRY", "Entry", "Registry", "cas", "diehard", "input", "input_lifecycle", "loop_frame", "run", "session", "task", "token", "two_phase",
           "alternating_bit", "coffee_can", "crdt", "ewd840", "lamport_mutex",
           "order_payment", "dispatch", "launcher", "facts", "child_runs"]
