"""Every store failure is a typed `StoreError` with a stable code -- never a raw sqlite3, OS, encoding or user error.

Three boundaries are tested: SQLite's errors (`sqlite._mapped`, one table from
result code to error, then real files that are not databases, truncated,
read-only, full or garbled), the values a write carries (`store.prepare`, the
same for every backend: bad strings, deep nesting, fields of the wrong type,
an authorize function that raises), and the command line, which prints a
store's error as one line and exits 2.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statewright.adapters.cli import command
from statewright.adapters.runtime import sqlite as sqlite_module
from statewright.adapters.runtime.memory import MemoryStore
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import (
    Append,
    AppendTerminal,
    Busy,
    Cas,
    Catalog,
    Conflict,
    Corrupt,
    Full,
    InvalidState,
    Io,
    NotAStore,
    NotFound,
    PermissionDenied,
    ReadOnly,
    Store,
    StoreError,
    canonical_json,
)
from statewright.machines.input import INPUT, Input, InputPhase, authorize_seed
from statewright.machines.session import SESSION, Session
from tests.adapters.test_store_contract import CATALOG, QUEUED, seed, snapshot

SQLITE_BOUNDARY = sqlite_module._mapped  # the one boundary under test


# -- the mapping, code by code --------------------------------------------------------


def test_every_code_is_stable_and_every_error_a_store_error() -> None:
    from statewright.adapters.runtime import store

    errors = [getattr(store, name) for name in store.__all__]
    errors = [e for e in errors if isinstance(e, type) and issubclass(e, StoreError)]
    assert {e.__name__: e.code for e in errors} == {
        "StoreError": "store_error", "Conflict": "conflict", "Busy": "busy", "NotFound": "not_found",
        "Corrupt": "corrupt", "InvalidState": "invalid_state", "BadInput": "bad_input", "NotAStore": "not_a_store",
        "IncompatibleSchema": "incompatible_schema", "ReadOnly": "read_only", "Full": "full", "Io": "io",
        "PermissionDenied": "permission_denied", "BadOption": "bad_option",
        "UnknownOutcome": "unknown_outcome", "AlreadyApplied": "already_applied", "RequestReused": "request_reused",
        "LeaseLost": "lease_lost", "Unacknowledged": "unacknowledged",
    }


def sqlite_error(cls: type[sqlite3.Error], code: int | None, message: str = "boom") -> sqlite3.Error:
    """A sqlite3 error as the module raises it: the result code and its name set on the instance."""
    exc = cls(message)
    if code is not None:
        exc.sqlite_errorcode = code
        exc.sqlite_errorname = f"CODE_{code}"
    return exc


async def mapped(exc: BaseException, *, opening: bool = False) -> BaseException:
    try:
        async with SQLITE_BOUNDARY("k1", "loading 'k1'", opening=opening):
            raise exc
    except BaseException as out:  # noqa: BLE001 - what came out is what is checked
        return out
    raise AssertionError("unreachable")


MAPPING: list[tuple[str, BaseException, bool, type[StoreError]]] = [
    ("BUSY", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_BUSY), False, Busy),
    ("BUSY_SNAPSHOT", sqlite_error(sqlite3.OperationalError, 517), False, Busy),
    ("LOCKED", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_LOCKED), False, Busy),
    ("CORRUPT", sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_CORRUPT), False, Corrupt),
    ("NOTADB at open", sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_NOTADB), True, NotAStore),
    ("NOTADB later", sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_NOTADB), False, Corrupt),
    ("READONLY", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_READONLY), False, ReadOnly),
    ("READONLY_DIRECTORY", sqlite_error(sqlite3.OperationalError, 1544), False, ReadOnly),
    ("READONLY_DBMOVED", sqlite_error(sqlite3.OperationalError, 1032), False, ReadOnly),
    ("FULL", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_FULL), False, Full),
    ("IOERR", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_IOERR), False, Io),
    ("IOERR_FSTAT", sqlite_error(sqlite3.OperationalError, 1802), False, Io),
    ("CANTOPEN", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_CANTOPEN), True, Io),
    ("PERM", sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_PERM), False, Io),
    ("AUTH", sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_AUTH), False, PermissionDenied),
    ("TOOBIG", sqlite_error(sqlite3.DataError, sqlite3.SQLITE_TOOBIG), False, InvalidState),
    ("CONSTRAINT_UNIQUE", sqlite_error(sqlite3.IntegrityError, 2067), False, Conflict),
    ("not UTF-8", sqlite3.OperationalError("Could not decode to UTF-8 column 'state' with text 'x'"), False, Corrupt),
    ("OSError", OSError(errno.EIO, "Input/output error"), False, Io),
    ("EROFS", OSError(errno.EROFS, "Read-only file system"), False, ReadOnly),
    ("ENOSPC", OSError(errno.ENOSPC, "No space left on device"), False, Full),
]


@pytest.mark.parametrize("case", MAPPING, ids=[m[0] for m in MAPPING])
def test_each_sqlite_failure_becomes_its_typed_error(case: tuple[str, BaseException, bool, type[StoreError]]) -> None:
    _, exc, opening, expected = case
    out = asyncio.run(mapped(exc, opening=opening))
    assert type(out) is expected and out.__cause__ is exc
    assert isinstance(out, StoreError) and out.key == "k1"


@pytest.mark.parametrize("code", [sqlite3.SQLITE_ERROR, sqlite3.SQLITE_MISUSE, sqlite3.SQLITE_RANGE, None])
def test_any_other_sqlite_failure_is_a_plain_store_error_naming_the_operation(code: int | None) -> None:
    out = asyncio.run(mapped(sqlite_error(sqlite3.ProgrammingError, code, "bad parameter")))
    assert type(out) is StoreError and out.code == "store_error"
    assert str(out).startswith("loading 'k1': bad parameter")


@pytest.mark.parametrize("exc", [asyncio.CancelledError(), KeyError("ours"), InvalidState("ours")])
def test_the_boundary_passes_cancellation_and_our_own_errors_through(exc: BaseException) -> None:
    assert asyncio.run(mapped(exc)) is exc


# -- real files --------------------------------------------------------------------------


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


async def seeded(path: Path) -> None:
    async with await SqliteStore.open(path, CATALOG) as store:
        await seed(store)


async def caught(work: Awaitable[Any]) -> StoreError:
    with pytest.raises(StoreError) as info:
        await work
    return info.value


def test_a_file_that_is_not_a_database_is_not_a_store_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    junk = bytes(range(256)) * 16
    path.write_bytes(junk)
    error = run(caught(SqliteStore.open(path, CATALOG)))
    assert type(error) is NotAStore and "not a statewright store" in str(error)
    assert path.read_bytes() == junk and sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]


@pytest.mark.parametrize("size", [50, 1000, 4096, 8192])
def test_a_truncated_store_is_corrupt(tmp_path: Path, size: int) -> None:
    path = tmp_path / "s.db"
    run(seeded(path))  # closing checkpoints the log into the file and removes it
    assert not Path(f"{path}-wal").exists() and path.stat().st_size > size
    os.truncate(path, size)
    error = run(caught(SqliteStore.open(path, CATALOG)))
    assert type(error) is Corrupt and "SQLITE_CORRUPT" in str(error), error


def test_a_read_only_uri_opens_reads_and_refuses_writes(tmp_path: Path) -> None:
    """``mode=ro`` opens the file O_RDONLY, exactly as SQLite does for a file it may not write: SQLITE_READONLY."""
    path = tmp_path / "s.db"
    run(seeded(path))

    async def go() -> None:
        async with await SqliteStore.open(f"file:{path}?mode=ro", CATALOG) as store:
            before = await snapshot(store)
            assert (await store.load("in1")).version == 1
            for write in (store.cas("in1", 1, QUEUED), store.append("in1", 2, [("x", {})]),
                          store.append_terminal("in1", "x", {}), store.commit([Cas("n", 0, Input(), "input")])):
                error = await caught(write)
                assert type(error) is ReadOnly and "SQLITE_READONLY" in str(error)
            assert await snapshot(store) == before

    run(go())


def test_a_query_only_connection_is_read_only_too(tmp_path: Path) -> None:
    """``PRAGMA query_only`` answers with the same primary code, SQLITE_READONLY (8), not another one."""

    async def go() -> None:
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG) as store:
            await seed(store)
            await store._db.execute("PRAGMA query_only = 1")
            assert type(await caught(store.cas("in1", 1, QUEUED))) is ReadOnly
            await store._db.execute("PRAGMA query_only = 0")
            assert (await store.cas("in1", 1, QUEUED)).version == 2

    run(go())


def as_another_user(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` where file modes apply: in a forked child that drops root to ``nobody``, or here when not root.

    Root ignores a file's mode, so for a real read-only file the test gives up
    root's privileges (in a child, so this process keeps them).
    """
    if os.geteuid() != 0:
        return work()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            payload = json.dumps(work()).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload = json.dumps({"child failed": repr(exc)}).encode()
        os.write(write, payload)
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    out: dict[str, Any] = json.loads(b"".join(chunks))
    assert "child failed" not in out, out
    return out


def codes(path: Path) -> dict[str, Any]:
    """Open the store at ``path``, read it and try to write it; each outcome as a code."""

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            store = await SqliteStore.open(path, CATALOG)
        except StoreError as exc:
            return {"open": exc.code, "message": str(exc)}
        out["open"] = "ok"
        try:
            out["load"] = (await store.load("in1")).version
            for name, write in (("cas", store.cas("in1", 1, QUEUED)), ("append", store.append("in1", 2, [("x", {})]))):
                try:
                    await write
                    out[name] = "ok"
                except StoreError as exc:
                    out[name] = exc.code
        finally:
            await store.close()
        return out

    return asyncio.run(go())


def shared_dir() -> Path:
    """A folder ``nobody`` can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="statewright-ro-"))
    folder.chmod(0o755)
    return folder


def test_a_read_only_file_opens_reads_and_refuses_writes() -> None:
    folder = shared_dir()
    try:
        folder.chmod(0o777)  # the folder is writable: SQLite can make its -shm index, the file stays read-only
        path = folder / "s.db"
        run(seeded(path))
        path.chmod(0o444)
        assert as_another_user(lambda: codes(path)) == {"open": "ok", "load": 1, "cas": "read_only", "append": "read_only"}
    finally:
        shutil.rmtree(folder)


def test_a_store_in_a_read_only_folder_is_read_only() -> None:
    folder = shared_dir()
    try:
        path = folder / "s.db"
        run(seeded(path))
        path.chmod(0o644)
        folder.chmod(0o555)  # nobody may create the -shm index a WAL reader needs: SQLITE_READONLY_DIRECTORY
        out = as_another_user(lambda: codes(path))
        assert out["open"] == "read_only" and "SQLITE_READONLY" in out["message"], out
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_a_full_database_refuses_the_batch_whole_and_keeps_working(tmp_path: Path) -> None:
    """``PRAGMA max_page_count`` caps the file for real: SQLite answers SQLITE_FULL, as on a full disk."""

    async def go() -> None:
        async with await SqliteStore.open(tmp_path / "s.db", CATALOG) as store:
            await seed(store)
            async with store._db.execute("PRAGMA page_count") as cur:
                row = await cur.fetchone()
            assert row is not None
            await store._db.execute(f"PRAGMA max_page_count = {row[0] + 4}")
            before = await snapshot(store)
            big = [("Blob", {"text": "x" * 200_000})]
            error = await caught(store.commit([Cas("in1", 1, QUEUED), Append("in1", 2, tuple(big))]))
            assert type(error) is Full and error.code == "full" and "SQLITE_FULL" in str(error)
            assert await snapshot(store) == before
            assert (await store.cas("in1", 1, QUEUED)).version == 2  # small writes still fit

    run(go())


@pytest.mark.parametrize(
    "garble",
    [
        "UPDATE instances SET state = CAST(x'7b22ff22' AS TEXT) WHERE key = 'in1'",  # not UTF-8
        "UPDATE instances SET state = 42 WHERE key = 'in1'",
        "UPDATE instances SET state = '{\"phase\": 7}' WHERE key = 'in1'",
        "UPDATE instances SET version = 'one' WHERE key = 'in1'",
        "UPDATE instances SET machine = x'00ff' WHERE key = 'in1'",
        "UPDATE events SET data = x'5b5d' WHERE key = 'in1' AND seq = 1",  # a BLOB, not text
        "UPDATE events SET data = CAST(x'ff' AS TEXT) WHERE key = 'in1' AND seq = 1",
        "UPDATE events SET data = '[' WHERE key = 'in1' AND seq = 1",
        "UPDATE events SET kind = x'00' WHERE key = 'in1' AND seq = 1",
        "UPDATE events SET seq = 'two' WHERE key = 'in1' AND seq = 1",
        "UPDATE events SET data = '" + "[" * 5000 + "' WHERE key = 'in1' AND seq = 1",
    ],
)
def test_a_garbled_row_is_corrupt_for_its_key_only(tmp_path: Path, garble: str) -> None:
    path = tmp_path / "s.db"
    run(seeded(path))
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute(garble)
    raw.close()

    async def go() -> None:
        async with await SqliteStore.open(path, CATALOG) as store:
            error = await caught(store.load("in1") if "instances" in garble else store.read_log("in1"))
            assert type(error) is Corrupt and error.key == "in1", error
            assert (await store.load("in2")).state == QUEUED and len(await store.read_log("in2")) == 2

    run(go())


def test_a_key_that_is_not_text_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    run(seeded(path))
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE instances SET key = x'ff00' WHERE key = 'in1'")
    raw.close()
    assert type(run(caught(_keys(path)))) is Corrupt


async def _keys(path: Path) -> list[str]:
    async with await SqliteStore.open(path, CATALOG) as store:
        return await store.keys()


@pytest.mark.parametrize("where", ["a folder", "a missing folder"])
def test_a_path_sqlite_cannot_open_is_io(tmp_path: Path, where: str) -> None:
    path = tmp_path if where == "a folder" else tmp_path / "missing" / "s.db"
    error = run(caught(SqliteStore.open(path, CATALOG)))
    assert type(error) is Io and error.code == "io"


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    async def go() -> None:
        store = await SqliteStore.open(tmp_path / "s.db", CATALOG)
        await seed(store)
        await store.close()
        await store.close()  # twice is fine
        for work in (store.load("in1"), store.read_log("in1"), store.keys(), store.cas("in1", 1, QUEUED)):
            error = await caught(work)
            assert type(error) is StoreError and "closed" in str(error)

    run(go())


# -- what a write carries: the same refusal on every backend ---------------------------


def raises(test: Callable[[Store], Awaitable[None]], tmp_path: Path) -> None:
    """Run ``test`` on a fresh memory store and a fresh SQLite store."""

    async def go() -> None:
        for store in (MemoryStore(CATALOG), await SqliteStore.open(tmp_path / "s.db", CATALOG)):
            try:
                await seed(store)
                await test(store)
            finally:
                await store.close()

    asyncio.run(go())


async def refused(store: Store, work: Awaitable[Any], expected: type[StoreError] = InvalidState) -> StoreError:
    before = await snapshot(store)
    error = await caught(work)
    assert type(error) is expected, (type(store).__name__, error)
    assert await snapshot(store) == before
    return error


def deep(levels: int) -> Any:
    data: Any = 0
    for _ in range(levels):
        data = [data]
    return data


BAD_PAYLOADS = {
    "lone surrogate": {"run_id": "\ud800"},
    "lone surrogate key": {"\udfff": 1},
    "100,000 levels": deep(100_000),
    "65 levels": deep(65),
    "int past 4300 digits": 10**5000,
    "not JSON data": {"x": object()},
    "float": {"at": 0.5},
}


@pytest.mark.parametrize("payload", list(BAD_PAYLOADS), ids=list(BAD_PAYLOADS))
def test_payloads_no_store_can_hold_are_invalid_states(tmp_path: Path, payload: str) -> None:
    data = BAD_PAYLOADS[payload]

    async def test(store: Store) -> None:
        await refused(store, store.append("in1", 2, [("Bad", data)]))
        await refused(store, store.append_terminal("in1", "Bad", data))
        await refused(store, store.commit([Cas("in1", 1, QUEUED), Append("in1", 2, (("Bad", data),))]))

    raises(test, tmp_path)


def test_canonical_json_refuses_with_invalid_state_only() -> None:
    for data in BAD_PAYLOADS.values():
        with pytest.raises(InvalidState):
            canonical_json(data)
    assert canonical_json(deep(64)) == "[" * 64 + "0" + "]" * 64


@pytest.mark.parametrize(
    "op",
    [
        Cas("\ud800", 0, Input(), "input"),
        Cas("nul\x00key", 0, Input(), "input"),
        Cas("k" * 1025, 0, Input(), "input"),
        Cas(5, 0, Input(), "input"),  # type: ignore[arg-type]
        Cas("in1", "1", QUEUED),  # type: ignore[arg-type]
        Cas("in1", -1, QUEUED),
        Cas("in1", 1, Input(run_id="\ud800")),
        Cas("in1", 1, QUEUED, ["input"]),  # type: ignore[arg-type]
        Append("in1", 2, (("\ud800", {}),)),
        Append("in1", 2, ((7, {}),)),  # type: ignore[arg-type]
        Append("in1", 2, (("Queue",),)),  # type: ignore[arg-type]
        AppendTerminal("in1", "nul\x00kind", {}),
    ],
    ids=lambda op: type(op).__name__,
)
def test_keys_kinds_and_versions_no_store_can_hold_are_invalid_states(tmp_path: Path, op: Any) -> None:
    async def test(store: Store) -> None:
        await refused(store, store.commit([op]))
        await refused(store, store.commit([Cas("in1", 1, QUEUED), op]))

    raises(test, tmp_path)


def test_a_batch_id_no_store_can_hold_is_an_invalid_state(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        await refused(store, store.commit([Cas("in1", 1, QUEUED)], batch="\ud800"))  # type: ignore[call-arg]

    raises(test, tmp_path)


def test_reads_under_a_key_no_write_could_make_find_nothing(tmp_path: Path) -> None:
    async def test(store: Store) -> None:
        for key in ("\ud800", "a\x00b", 5, "k" * 5000):
            assert type(await caught(store.load(key))) is NotFound  # type: ignore[arg-type]
            assert await store.read_log(key) == []  # type: ignore[arg-type]

    raises(test, tmp_path)


SESSION_CATALOG = Catalog({"input": INPUT, "session": SESSION}, {"input": authorize_seed})


@pytest.mark.parametrize(
    ("machine", "state", "field"),
    [
        ("session", replace(Session(), registration=123), "registration"),  # type: ignore[arg-type]
        ("session", replace(Session(), queued=[("in1", 0)]), "queued"),  # type: ignore[arg-type]
        ("session", replace(Session(), applied=1), "applied"),  # type: ignore[arg-type]
        ("input", replace(Input(), attempts="2"), "attempts"),  # type: ignore[arg-type]
        ("input", replace(Input(), attempts=True), "attempts"),
        ("input", replace(Input(InputPhase.QUEUED), max_attempts=3.0), "max_attempts"),  # type: ignore[arg-type]
    ],
    ids=["enum as int", "list for tuple", "int for bool", "str for int", "bool for int", "float for int"],
)
def test_a_state_that_would_not_read_back_the_same_is_refused_naming_the_field(
    tmp_path: Path, machine: str, state: Any, field: str
) -> None:
    async def go() -> None:
        for store in (MemoryStore(SESSION_CATALOG), await SqliteStore.open(tmp_path / "s.db", SESSION_CATALOG)):
            try:
                error = await refused(store, store.cas("x", 0, state, machine=machine))
                assert field in str(error), error
            finally:
                await store.close()

    asyncio.run(go())


def test_authorize_never_sees_a_field_of_the_wrong_type() -> None:
    seen: list[Any] = []

    def authorize(state: Input) -> tuple[str, ...]:
        seen.append(state)
        return authorize_seed(state)

    catalog = Catalog({"input": INPUT}, {"input": authorize})
    with pytest.raises(InvalidState, match="attempts"):
        catalog.validate("input", replace(Input(), attempts="2"))  # type: ignore[arg-type]
    assert seen == []


def broken_authorize(state: Input) -> tuple[str, ...]:
    return (str(1 // state.attempts),)  # raises ZeroDivisionError at attempts=0


def test_an_authorize_function_that_raises_is_an_invalid_state_naming_it_and_its_line(tmp_path: Path) -> None:
    catalog = Catalog({"input": INPUT}, {"input": broken_authorize})
    line = broken_authorize.__code__.co_firstlineno + 1

    async def go() -> None:
        for store in (MemoryStore(catalog), await SqliteStore.open(tmp_path / "s.db", catalog)):
            try:
                error = await refused(store, store.cas("in1", 0, Input(), machine="input"))
                assert "broken_authorize raised ZeroDivisionError" in str(error)
                assert f"test_errors.py:{line}" in str(error)
            finally:
                await store.close()

    asyncio.run(go())


# -- the command line --------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = command.run(list(argv), out=out, err=err)
    return code, err.getvalue()


@pytest.mark.parametrize("damage", ["junk", "truncated", "empty", "folder"])
def test_inspect_of_a_damaged_file_is_one_line_and_exit_2(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "s.db"
    if damage == "junk":
        path.write_bytes(bytes(range(256)) * 8)
    elif damage == "truncated":
        run(seeded(path))
        os.truncate(path, 3000)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    code, err = cli("inspect", str(path))
    assert code == 2 and err.count("\n") == 1 and err.startswith("statewright: error: "), err
    assert "Traceback" not in err


@pytest.mark.parametrize("error", [ReadOnly("s.db: read-only"), Full("s.db: full"), Corrupt("s.db: damaged"),
                                   StoreError("opening s.db: misuse")])
def test_a_store_error_in_any_command_is_one_line_with_its_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: StoreError
) -> None:
    """Any command that touches a store: its typed error is the user's one line, not an internal error."""
    from statewright.adapters.cli import inspecting

    def failing(*args: Any) -> int:
        raise error

    monkeypatch.setattr(inspecting, "inspect_command", failing)
    path = tmp_path / "s.db"
    run(seeded(path))
    code, err = cli("inspect", str(path))
    assert code == 2 and err == f"statewright: error: {error.code}: {error}\n"


# -- a store nobody closed -------------------------------------------------------------------

UNCLOSED = """
import asyncio, gc, sys, tempfile, pathlib
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Catalog
from statewright.machines.input import INPUT, Input

async def opened():
    store = await SqliteStore.open(pathlib.Path(tempfile.mkdtemp()) / "s.db", Catalog({"input": INPUT}))
    await store.cas("in1", 0, Input(), machine="input")
    return store

how = sys.argv[1]
if how == "kept until exit":
    kept = asyncio.run(opened())
elif how == "dropped after its loop closed":
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    store = loop.run_until_complete(opened())
    loop.close()
    del store
    gc.collect()
else:
    async def drop():
        await opened()
    asyncio.run(drop())
    gc.collect()
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kept until exit", "dropped after its loop closed", "dropped in its loop"])
def test_an_unclosed_store_warns_as_a_file_does_and_never_hangs_or_prints_a_traceback(how: str) -> None:
    """Was 'RuntimeError: Event loop is closed' tracebacks at exit, or an interpreter that never exited."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-c", UNCLOSED, how],
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{how}: the interpreter did not exit within 30 s")
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr, done.stderr
    if how != "kept until exit":  # a warning at interpreter exit may be printed or not, as for a file
        assert "ResourceWarning: unclosed SqliteStore on " in done.stderr, done.stderr
