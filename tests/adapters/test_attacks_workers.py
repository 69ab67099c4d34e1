"""Issue 17, items 4-10: the checker's workers always stop, and user code cannot fake a pass.

Each test reproduces an attack the second adversarial trial made: a stop
request while workers judge slow properties (4), a coordinator killed with
SIGKILL (5), a time limit with workers (6), a spec that starts a thread holding
a lock (7), ``sys.exit`` and ``KeyboardInterrupt`` from user code (8), user code
that is not a function of its state (9), and states of megabytes under a
memory budget (10). What could hang runs in a subprocess with a timeout, and
leftover worker processes are looked for by pid.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from statewright import Guard, Machine, Spec, System, SystemGuard, Transition, UserCodeError, always, check
from statewright.adapters.checking import memory
from statewright.adapters.checking.fork import ForkPool
from statewright.adapters.cli import run
from statewright.kernel.checker import Options, StopReason, Verdict
from statewright.kernel.checker.levels import prepare_levels
from statewright.kernel.checker.watch import Watch
from statewright.specs import REGISTRY

ROOT = Path(__file__).resolve().parent.parent.parent


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def python(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter that imports this tree; a hang fails the test (TimeoutExpired)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone_within(pids: set[int], seconds: float) -> set[int]:
    """The pids still alive once ``seconds`` have passed (polling; empty as soon as all are gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return set()
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


# -- 4: a stop request while the workers judge ----------------------------------------------------------

BLOCKED_JUDGE = """
    import os, sys, time
    from pathlib import Path
    from statewright.kernel.checker import workers as parallel
    from statewright.kernel.checker import StopReason, always
    from statewright.adapters.checking import check
    from statewright.specs import REGISTRY
    from tests.kernel.test_levels import safety

    parallel.FORK_AT = 1  # workers from the first level on
    flag = Path(sys.argv[1])
    parent = os.getpid()

    def slow(v):
        if os.getpid() != parent:  # in a worker: judging this state takes an hour
            flag.write_text("judging")
            time.sleep(3600)
        return True

    spec = safety(REGISTRY.get("two_phase").spec())
    spec = spec.__class__(spec.name, spec.model, spec.inputs, [always("slow", slow)], deadlock=False)
    report = check(spec, workers=2, should_stop=lambda: StopReason.INTERRUPTED if flag.exists() else None)
    print(report.stopped_by, report.verdict.value, len(parallel.__dict__) > 0)
"""


@pytest.mark.slow
def test_a_stop_request_is_answered_while_workers_judge(tmp_path: Path) -> None:
    done = python(BLOCKED_JUDGE, str(tmp_path / "judging"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["interrupted", "bounded"]


# -- 5: the coordinator killed with SIGKILL -----------------------------------------------------------

LONG_CHECK = """
    import os, time
    from statewright.kernel.checker import workers as parallel
    from statewright.kernel.checker import always
    from statewright.adapters.checking import check
    from statewright.specs import REGISTRY
    from tests.kernel.test_levels import safety

    parallel.FORK_AT = 1
    parent = os.getpid()

    def slow(v):
        if os.getpid() != parent:
            time.sleep(3600)
        return True

    spec = safety(REGISTRY.get("two_phase").spec())
    spec = spec.__class__(spec.name, spec.model, spec.inputs, [always("slow", slow)], deadlock=False)
    print("started", flush=True)
    check(spec, workers=2)
"""


@pytest.mark.slow
def test_workers_do_not_outlive_a_coordinator_killed_with_sigkill() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    coordinator = subprocess.Popen([sys.executable, "-c", textwrap.dedent(LONG_CHECK)], env=env, cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert coordinator.stdout is not None and coordinator.stdout.readline() == "started\n"
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = children(coordinator.pid)
            time.sleep(0.05)
        assert len(workers) == 2, "the check never started its workers"
        coordinator.kill()
        coordinator.wait()
        assert gone_within(workers, 20) == set(), "workers outlived their coordinator"
    finally:
        coordinator.kill()
        for pid in children(coordinator.pid) | set():
            os.kill(pid, signal.SIGKILL)


def test_a_worker_holds_only_its_own_end_of_its_pipe() -> None:
    spec = REGISTRY.get("two_phase").spec()
    planned = prepare_levels(spec, Options(workers=3))
    assert planned is not None
    pool = ForkPool(spec, *planned, 3)
    try:
        pids = {p.pid for p in pool.processes}
        assert memory.watched >= pids and memory.in_use() > 0
        for process, connection in zip(pool.processes, pool.connections):
            fd = connection.fileno()
            target = os.readlink(f"/proc/self/fd/{fd}")
            held = {os.readlink(f"/proc/{process.pid}/fd/{n}") for n in os.listdir(f"/proc/{process.pid}/fd")}
            assert target not in held, "a worker still holds the coordinator's end of a pipe"
    finally:
        pool.close()
    assert not memory.watched & pids


# -- 6: a time limit with workers ----------------------------------------------------------------------


def test_a_time_limit_with_workers_runs_on_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from statewright.adapters.checking import fork
    from statewright.kernel.checker import workers as parallel

    monkeypatch.setattr(parallel, "FORK_AT", 1)
    started: list[int] = []
    real = fork.fork_pool

    def counting(*args: Any) -> Any:
        started.append(args[-1])
        return real(*args)

    monkeypatch.setattr(fork, "fork_pool", counting)
    spec = REGISTRY.get("two_phase").spec()
    report = check(spec, workers=2, time_limit=600)
    assert started == [2] and report.complete and report.distinct_states == 288
    code, out, err = cli("check", "two_phase", "--workers", "2", "--time-limit", "600", "--quiet")
    assert code == 0 and "288 distinct states" in out and err == ""


# -- 7: a spec that starts a thread holding a lock -------------------------------------------------------

THREADED = """
    import threading
    import time
    from statewright import always
    from statewright.specs import REGISTRY

    lock = threading.Lock()

    def busy():
        while True:
            with lock:  # held most of the time: a fork copies it held, and no thread in the copy releases it
                time.sleep(0.01)
            time.sleep(0.0001)

    threading.Thread(target=busy, name="lock-holder", daemon=True).start()

    def locked(v):
        with lock:
            return True

    _base = REGISTRY.get("input_lifecycle").spec(n=6)
    SPEC = _base.__class__("threaded", _base.model, _base.inputs, [*_base.properties, always("locked", locked)])
"""


@pytest.mark.slow
def test_a_spec_that_starts_a_thread_is_checked_in_process_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "threaded.py").write_text(textwrap.dedent(THREADED))
    done = subprocess.run([sys.executable, "-m", "statewright", "check", "threaded.py", "--workers", "2", "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("threaded: OK -- 76,516 distinct states")
    assert "other thread is running (lock-holder): forking would copy their locks" in done.stderr


# -- 8: sys.exit and KeyboardInterrupt from user code -----------------------------------------------------


class P(Enum):
    A = 1
    B = 2


@dataclass(frozen=True, slots=True)
class Go: ...


def exiting(s: Any, i: Any) -> bool:
    sys.exit(0)


def interrupting(s: Any, i: Any) -> bool:
    raise KeyboardInterrupt


def machine(guard: Any) -> Machine[P]:
    return Machine("m", initial=P.A, terminal={P.B}, transitions=[Transition(P.A, Go, P.B, guard=Guard("g", guard))])


def test_sys_exit_in_a_guard_is_a_user_code_error() -> None:
    with pytest.raises(UserCodeError, match=r"guard 'g' \(.*test_attacks_workers.py:\d+\) called sys.exit\(0\)"):
        check(Spec("m", machine(exiting), [Go()]))


@pytest.mark.parametrize("body, message", [
    ("import sys\nsys.exit(0)\n", "called sys.exit(0)"),
    ("from tests.adapters.test_attacks_workers import Go, machine, exiting\n"
     "from statewright import Spec\nSPEC = Spec('m', machine(exiting), [Go()])\n", "called sys.exit(0)"),
    ("from tests.adapters.test_attacks_workers import Go, machine, interrupting\n"
     "from statewright import Spec\nSPEC = Spec('m', machine(interrupting), [Go()])\n",
     "raised KeyboardInterrupt"),
])
def test_exit_and_interrupt_from_user_code_fail_with_a_message(tmp_path: Path, body: str, message: str) -> None:
    spec_file = tmp_path / "user.py"
    spec_file.write_text(body)
    code, out, err = cli("check", str(spec_file))
    assert code == 2 and out == "" and err.startswith("statewright: error: ") and message in err, err


# -- 9: user code that is not a function of its state -------------------------------------------------------


class Q(Enum):
    RUN = 1


@dataclass(frozen=True, slots=True)
class C:
    phase: Q = Q.RUN
    n: int = 0


@dataclass(frozen=True, slots=True)
class Inc: ...


def test_a_guard_that_changes_its_mind_is_named_not_an_internal_error() -> None:
    seen: Counter[Any] = Counter()

    def first_time_only(s: C, i: Inc) -> bool:
        seen[s] += 1
        return seen[s] == 1  # true while searching, false when the trace is rebuilt

    counter = Machine("counter", initial=C(), transitions=[
        Transition(Q.RUN, Inc, Q.RUN, guard=Guard("first_time_only", first_time_only),
                   update=lambda s, i: replace(s, n=s.n + 1))])
    spec = Spec("c", counter, [Inc()], [always("small", lambda s: s.n < 3)], deadlock=False)
    with pytest.raises(UserCodeError) as caught:
        check(spec)
    err = caught.value
    assert err.where == "transition #0 (RUN --Inc[first_time_only]--> RUN)" and err.machine == "counter"
    assert "gave a different answer when the same state was stepped again" in str(err)


def test_a_system_guard_that_changes_its_mind_is_named() -> None:
    calls: Counter[Any] = Counter()

    def flaky(v: Any, me: int, i: Any) -> bool:
        calls[v] += 1
        return calls[v] <= 2

    counter = Machine("counter", initial=C(), transitions=[
        Transition(Q.RUN, Inc, Q.RUN, update=lambda s, i: replace(s, n=min(s.n + 1, 3)))])
    pair: System[Any] = System("pair", {"a": counter, "b": counter}, guards=[SystemGuard("flaky", Inc, flaky)])
    spec = Spec("p", pair, {"a": [Inc()], "b": [Inc()]}, [always("small", lambda v: v.a.n + v.b.n < 3)],
                deadlock=False)
    with pytest.raises(UserCodeError, match="gave a different answer"):
        check(spec)


# -- 10: states of megabytes under a memory budget -------------------------------------------------------------


def test_the_budget_is_polled_as_often_as_the_states_size_needs() -> None:
    """A gauge that grows 8 MB a state (the attack's states), a 500 MB budget: stopped near 62 states, not 1,024."""
    explored = [0]

    def gauge() -> int:
        return 100_000_000 + 8_000_000 * explored[0]

    watch = Watch(Options(max_memory=500_000_000, memory=gauge))
    stop = None
    while stop is None:
        explored[0] += 1
        if watch.due(explored[0]):
            stop = watch.poll(explored[0], explored[0], explored[0], 1)
    assert stop is StopReason.MEMORY and 50 <= explored[0] <= 64
    assert gauge() <= 500_000_000 + 8_000_000 * 14  # past the budget by a handful of states at most


def test_a_check_of_big_states_stops_at_the_budget_with_a_report() -> None:
    """States of a megabyte each (at most 300 of them, so a broken budget cannot take the machine down)."""

    @dataclass(frozen=True, slots=True)
    class Blob:
        phase: Q = Q.RUN
        n: int = 0
        payload: bytes = b""

    grow = Machine("grow", initial=Blob(), transitions=[
        Transition(Q.RUN, Inc, Q.RUN, guard=Guard("below_300", lambda s, i: s.n < 300),
                   update=lambda s, i: replace(s, n=s.n + 1, payload=bytes([s.n % 256]) * 1_000_000))])
    spec = Spec("grow", grow, [Inc()], deadlock=False)
    budget = memory.rss() + 60_000_000
    report = check(spec, max_memory=budget)
    assert report.stopped_by is StopReason.MEMORY and report.verdict is Verdict.BOUNDED
    assert report.distinct_states < 100  # a poll every 1,024 states would have taken all 300 (300 MB)
