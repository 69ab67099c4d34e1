"""`statewright inspect` on anyone's store: records decoded through the machines of the loaded specs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from statewright.adapters.cli import run
from statewright.adapters.project.targets import Loader
from statewright.adapters.runtime.sqlite import SCHEMA_VERSION, SqliteStore
from statewright.adapters.runtime.store import Catalog
from statewright.specs.registry import machines_of

if TYPE_CHECKING:
    from statewright.adapters.runtime.postgres import PostgresStore
from tests.adapters.test_cli_targets import ORDERS, write_orders


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_store(db: Path | str, target: str) -> None:
    """Two orders (one paid) of the user's machine, written through the store (a SQLite file or a DSN)."""
    with Loader() as loader:
        spec = loader.resolve(target)[0].spec()
        machine = machines_of(spec)[0]
        paid = spec.model.initial.__class__(phase=next(p for p in machine.phases if p.name == "PAID"))

        async def opened(catalog: Catalog) -> SqliteStore | PostgresStore:
            if isinstance(db, str):
                from statewright.adapters.runtime.postgres import PostgresStore

                return await PostgresStore.open(db, catalog)
            return await SqliteStore.open(db, catalog)

        async def write() -> None:
            async with await opened(Catalog({machine.name: machine})) as store:
                await store.cas("order-42", 0, paid, machine=machine.name)
                await store.append("order-42", 0, [("input", {"type": "Pay"})])
                await store.cas("order-43", 0, machine.initial, machine=machine.name)

        asyncio.run(write())


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_orders(tmp_path)
    write_store(tmp_path / "shop.db", "orders.py:order_spec")
    return tmp_path


def test_records_of_a_machine_nobody_loaded_are_unknown_not_corrupt(shop: Path) -> None:
    code, out, _ = cli("inspect", "shop.db")
    assert code == 0
    assert out.splitlines() == [
        "order-42: unknown machine 'order': load its spec with --spec",
        '    1 input      {"type": "Pay"}',
        "order-43: unknown machine 'order': load its spec with --spec",
    ]
    assert "CORRUPT" not in out


def test_spec_decodes_through_the_users_machines(shop: Path) -> None:
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py:order_spec")
    assert code == 0, err
    assert out.splitlines() == [
        "order-42: order PAID (version 1)",
        '    1 input      {"type": "Pay"}',
        "order-43: order NEW (version 1)",
    ]
    code, out, _ = cli("inspect", "shop.db", "--spec", "orders.py", "--key", "order-43")
    assert code == 0 and out == "order-43: order NEW (version 1)\n"


def test_in_a_project_the_projects_machines_are_used(shop: Path) -> None:
    (shop / "pyproject.toml").write_text('[tool.statewright]\nspecs = ["orders.py"]\n')
    code, out, _ = cli("inspect", "shop.db")
    assert code == 0 and out.splitlines()[0] == "order-42: order PAID (version 1)"


def test_a_users_machine_named_like_a_bundled_one_is_not_decoded_by_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_orders(tmp_path)
    (tmp_path / "orders.py").write_text(ORDERS.replace('"order",', '"run",'))
    write_store(tmp_path / "runs.db", "orders.py:order_spec")
    code, out, _ = cli("inspect", "runs.db")  # the bundled `run` machine has another state type
    assert code == 1 and "order-42: CORRUPT" in out
    code, out, _ = cli("inspect", "runs.db", "--spec", "orders.py")
    assert code == 0 and out.splitlines()[0] == "order-42: run PAID (version 1)"


def test_what_is_not_a_store_is_a_one_line_error_and_stays_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notadb.db").write_text("hello, I am text\n")
    with sqlite3.connect(tmp_path / "other.db") as raw:
        raw.execute("CREATE TABLE people (name TEXT)")
    raw.close()
    before = (tmp_path / "other.db").read_bytes()
    for argv, message in [
        (["inspect", "notadb.db"], "notadb.db is not a SQLite database"),
        (["inspect", "other.db"], "other.db is a SQLite database but not a statewright store"),
        (["inspect", "missing.db"], "no database at missing.db"),
        (["inspect", "."], "no database at ."),
    ]:
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err.startswith("statewright: error: ") and message in err, err
        assert err.count("\n") == 1 and "internal error" not in err
    assert (tmp_path / "other.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notadb.db", "other.db"]


# -- read-only: inspect never writes, converts or creates a file --------------------


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` by name, with the sha256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def refused(argv: list[str], message: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and err.startswith("statewright: error: ") and message in err, err
    assert err.count("\n") == 1 and "internal error" not in err


def test_someone_elses_database_is_refused_and_left_exactly_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    raw = sqlite3.connect(tmp_path / "app.db")
    with raw:
        raw.execute("PRAGMA journal_mode = DELETE")
        raw.execute("CREATE TABLE users (name TEXT)")
        raw.execute("INSERT INTO users VALUES ('ada')")
    raw.close()
    (tmp_path / "empty.db").touch()
    (tmp_path / "junk.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    before = fingerprint(tmp_path)
    refused(["inspect", "app.db"], "app.db is a SQLite database but not a statewright store (it has no instances table)")
    refused(["inspect", "empty.db"], "empty.db is empty: not a statewright store")
    refused(["inspect", "junk.db"], "junk.db is not a statewright store")
    refused(["inspect", "gone.db"], "no database at gone.db")
    assert fingerprint(tmp_path) == before  # no -wal, -shm or -journal, no new tables, still journal mode delete
    assert (tmp_path / "app.db").read_bytes()[18:20] == b"\x01\x01" and (tmp_path / "empty.db").stat().st_size == 0
    assert not (tmp_path / "gone.db").exists()


def test_a_truncated_store_is_not_a_store(shop: Path) -> None:
    whole = (shop / "shop.db").read_bytes()
    for size in (100, 4096):
        (shop / "cut.db").write_bytes(whole[:size])
        refused(["inspect", "cut.db"], "cut.db is not a statewright store: database disk image is malformed")
        assert (shop / "cut.db").read_bytes() == whole[:size]


def test_a_store_from_a_newer_statewright_names_its_schema_version(shop: Path) -> None:
    raw = sqlite3.connect(shop / "shop.db")
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    refused(["inspect", "shop.db"], f"shop.db has schema version 99, newer than this statewright reads ({SCHEMA_VERSION})")


def test_a_read_only_store_in_a_read_only_folder_is_read_without_a_write(shop: Path) -> None:
    before = fingerprint(shop)
    (shop / "shop.db").chmod(0o444)
    shop.chmod(0o555)  # as root this stops nothing: the fingerprint shows that nothing was attempted
    try:
        code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
    finally:
        shop.chmod(0o755)
        (shop / "shop.db").chmod(0o644)
    assert code == 0, err
    assert out.splitlines()[0] == "order-42: order PAID (version 1)"
    assert fingerprint(shop) == before  # byte for byte, and no -wal or -shm left behind


def test_a_writer_holding_the_lock_does_not_stop_inspect_nor_is_disturbed(shop: Path) -> None:
    writer = sqlite3.connect(shop / "shop.db", isolation_level=None)
    try:
        writer.execute("INSERT INTO instances VALUES ('order-44', 'order', ?, 1)",
                       (writer.execute("SELECT state FROM instances WHERE key = 'order-43'").fetchone()[0],))
        writer.execute("BEGIN IMMEDIATE")  # committed order-44 sits in the -wal; now hold the write lock
        writer.execute("DELETE FROM events")
        before = fingerprint(shop)
        assert {"shop.db-wal", "shop.db-shm"} <= set(before)
        started = time.monotonic()
        code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
        assert time.monotonic() - started < 2.0
        assert code == 0, err
        assert out.splitlines() == [
            "order-42: order PAID (version 1)",
            '    1 input      {"type": "Pay"}',  # the writer's uncommitted delete is not seen
            "order-43: order NEW (version 1)",
            "order-44: order NEW (version 1)",  # committed to the log, not yet to the file: read through it
        ]
        assert fingerprint(shop) == before
    finally:
        writer.execute("ROLLBACK")
        writer.close()


WRITER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
state = db.execute("SELECT state FROM instances WHERE key = 'order-43'").fetchone()[0]
db.execute("BEGIN IMMEDIATE")
db.execute("DELETE FROM events WHERE key LIKE 'bulk-%'")
db.execute("DELETE FROM instances WHERE key LIKE 'bulk-%' AND key > 'bulk-0150'")
db.executemany("INSERT INTO events VALUES (?, ?, 'input', ?, 0, (SELECT coalesce(max(position), 0) + 1 FROM events), 0, 0)",
               [(f"bulk-{i:04d}", j, '{"type": "Pay", "pad": "%s"}' % ("y" * 300)) for i in range(150) for j in (1, 2)])
db.executemany("INSERT INTO instances VALUES (?, 'order', ?, 1)", [(f"late-{i:04d}", state) for i in range(300)])
db.execute("COMMIT")
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the changed pages land in the file inspect is reading
db.close()
"""


@pytest.fixture
def busy_shop(shop: Path) -> Path:
    """The shop, grown to 400 more instances with logs over many pages, idle (no -wal, no -shm)."""
    raw = sqlite3.connect(shop / "shop.db")
    with raw:
        state = raw.execute("SELECT state FROM instances WHERE key = 'order-43'").fetchone()[0]
        raw.executemany("INSERT INTO instances VALUES (?, 'order', ?, 1)", [(f"bulk-{i:04d}", state) for i in range(400)])
        raw.executemany("INSERT INTO events VALUES (?, ?, 'input', ?, 0, (SELECT coalesce(max(position), 0) + 1 FROM events), 0, 0)",
                        [(f"bulk-{i:04d}", j, '{"type": "Pay", "pad": "%s"}' % ("x" * 200))
                         for i in range(400) for j in (1, 2, 3)])
    raw.close()
    assert sorted(p.name for p in shop.iterdir() if p.name.startswith("shop.db")) == ["shop.db"]
    return shop


def test_a_writer_and_a_checkpoint_during_an_idle_read_are_no_false_alarm(
    busy_shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inspect began on an idle store, then a writer and a checkpoint changed the file: it said CORRUPT (exit 1)."""
    from statewright.adapters.cli import inspecting

    shown = inspecting._Inspection.instance
    wrote: list[int] = []

    def instance(self: Any, rowid: Any, key: Any) -> None:
        if not wrote:  # once, after the read has begun: another process writes and checkpoints
            wrote.append(subprocess.run([sys.executable, "-c", WRITER, str(busy_shop / "shop.db")]).returncode)
        shown(self, rowid, key)

    monkeypatch.setattr(inspecting._Inspection, "instance", instance)
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
    assert wrote == [0]
    monkeypatch.setattr(inspecting._Inspection, "instance", shown)
    after = cli("inspect", "shop.db", "--spec", "orders.py")
    assert "CORRUPT" not in out and "garbled" not in out and err == "", (out[-500:], err)
    assert (code, out) == after[:2] and code == 0  # the whole store as the writer left it, read again
    assert len(out.splitlines()) == 3 + 150 * 3 + 300 + 1


def test_a_log_without_its_index_is_retried_then_one_line_and_left_alone(shop: Path) -> None:
    """A writer just starting has its -wal before its -shm: retried; a log left without one is refused, untouched."""
    (shop / "shop.db-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    before = fingerprint(shop)
    refused(["inspect", "shop.db"], "shop.db has a write-ahead log but no shop.db-shm index")
    assert fingerprint(shop) == before


def test_garbled_rows_are_shown_as_garbled_and_the_rest_still_shown(shop: Path) -> None:
    raw = sqlite3.connect(shop / "shop.db")
    with raw:
        raw.execute("UPDATE events SET data = '{not json' WHERE key = 'order-42'")
        raw.execute("INSERT INTO events VALUES ('order-42', 2, 'input', '{\"type\": \"Ship\"}', 1, (SELECT coalesce(max(position), 0) + 1 FROM events), 0, 0)")
        raw.execute("INSERT INTO instances VALUES ('order-420', 'order', 'garbage', 1)")
        raw.execute("INSERT INTO instances VALUES ('order-421', 'order', '{}', 'x')")
        raw.execute("INSERT INTO events VALUES ('order-421', 1, 'input', X'00ff', 0, (SELECT coalesce(max(position), 0) + 1 FROM events), 0, 0)")
    raw.close()
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == "order-42: order PAID (version 1)"
    assert lines[1].startswith("    1 input      <garbled: {not json: Expecting property name")
    assert lines[2:] == [
        '    2 input      {"type": "Ship"} [terminal]',
        "order-420: CORRUPT -- record 'order-420' cannot be decoded: 1 validation error for Order",
        "order-421: CORRUPT -- <garbled: machine, state, version = 'order', '{}', 'x'>",
        "    1 input      <garbled: b'\\x00\\xff'>",
        "order-43: order NEW (version 1)",
    ]


DEEP = "[" * 100_000 + "]" * 100_000  # JSON far past Python's recursion limit


def past_limit() -> int:
    """Nesting past the recursion limit in force now (another test's hypothesis run may have left it raised)."""
    return sys.getrecursionlimit() + 500


def test_an_event_nested_too_deep_is_one_garbled_line_and_the_rest_is_shown(shop: Path) -> None:
    """Was ``internal error: RecursionError``, and the instances after it were never shown."""
    raw = sqlite3.connect(shop / "shop.db")
    with raw:
        raw.execute("UPDATE events SET data = ? WHERE key = 'order-42'", (DEEP,))
        raw.execute("INSERT INTO events VALUES ('order-42', 2, 'input', ?, 0, (SELECT coalesce(max(position), 0) + 1 FROM events), 0, 0)", ('{"a": ' * past_limit() + "1" + "}" * past_limit(),))
        raw.execute("INSERT INTO instances VALUES ('order-41', 'order', ?, 1)", ('{"phase": ' + DEEP + "}",))
    raw.close()
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
    assert code == 1 and err == "", err
    assert out.splitlines() == [
        "order-41: CORRUPT -- record 'order-41' cannot be decoded: 1 validation error for Order",
        "order-42: order PAID (version 1)",
        "    1 input      <garbled: nested too deep to decode (past Python's recursion limit)>",
        "    2 input      <garbled: nested too deep to decode (past Python's recursion limit)>",
        "order-43: order NEW (version 1)",
    ]


def test_stored_text_cannot_forge_a_line_of_output(shop: Path) -> None:
    raw = sqlite3.connect(shop / "shop.db")
    with raw:
        state = raw.execute("SELECT state FROM instances WHERE key = 'order-43'").fetchone()[0]
        raw.execute("INSERT INTO instances VALUES (?, 'order', ?, 1)", ("evil\norder-99: order SHIPPED (version 7)", state))
        raw.execute("INSERT INTO instances VALUES (CAST(X'6f72ff' AS TEXT), 'order', ?, 1)", (state,))
        raw.execute("INSERT INTO events VALUES (?, 1, ?, '\"\\u001b[2J\"', 0, (SELECT coalesce(max(position), 0) + 1 FROM events), 0, 0)",
                    ("evil\norder-99: order SHIPPED (version 7)", "in\x1b[31mput\\"))
    raw.close()
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
    assert code == 0, err
    assert "\x1b" not in out
    assert out.splitlines() == [
        "evil\\norder-99: order SHIPPED (version 7): order NEW (version 1)",
        '    1 in\\x1b[31mput\\\\ "\\u001b[2J"',
        "order-42: order PAID (version 1)",
        '    1 input      {"type": "Pay"}',
        "order-43: order NEW (version 1)",
        "or\\udcff: order NEW (version 1)",
    ]
    code, _, err = cli("inspect", "shop.db", "--key", "nope")
    assert code == 2 and err.count("\n") == 1 and "evil\\norder-99" in err


# -- the read side: consumers, their lag and leases, dead letters ---------------------


NOW = [4_000_000_000.0]  # the stores' clock, by which leases are dated: 2096, then 2001 (so that one has expired)


def write_consumers(db: Path | str) -> None:
    """Two consumers of the shop's log: ``audit`` caught up and free, ``mailer`` lagging with one dead letter.

    order-42's log gets two effects (positions 2 and 3; its ``Pay`` input is
    1). ``audit`` (1 partition) is advanced to 3 and released. ``mailer`` (2
    partitions) gave up on position 2 with a dead letter and advanced to 2 in
    order-42's partition, whose lease it still holds (until 2096); its other
    partition was leased in 2001 and never advanced.
    """
    from statewright.adapters.runtime.readside import partition_of
    from statewright.adapters.runtime.store import Advance, DeadLetter

    async def opened() -> Any:
        catalog = Catalog({})
        if isinstance(db, str):
            from statewright.adapters.runtime.postgres import PostgresStore

            return await PostgresStore.open(db, catalog, clock=lambda: NOW[0])
        return await SqliteStore.open(db, catalog, clock=lambda: NOW[0])

    async def write() -> None:
        async with await opened() as store:
            await store.append("order-42", 1, [("effect", {"type": "Mailed", "to": "ada"}),
                                               ("effect", {"type": "Billed"})])
            await store.register("audit")
            await store.lease("audit", 0, "audit-1", 30)
            await store.commit([Advance("audit", 0, 0, 3, "audit-1")])
            await store.release("audit", 0, "audit-1")
            await store.register("mailer", partitions=2)
            mine = partition_of("order-42", 2)
            await store.lease("mailer", mine, "mailer@host-a", 30)
            await store.commit([
                DeadLetter("mailer", mine, 2, "order-42", 2, "effect", {"type": "Mailed", "to": "ada"}, "handler_error",
                           "send on Mailed of 'order-42'#2: OSError: no route\nto host\x1b[2J (at mail.py:7)", 5,
                           "mailer@host-a"),
                Advance("mailer", mine, 0, 2, "mailer@host-a"),
            ])
            NOW[0] = 1_000_000_000.0
            await store.lease("mailer", 1 - mine, "mailer@host-b", 30)
            NOW[0] = 4_000_000_000.0

    asyncio.run(write())


CONSUMERS = [
    "consumers (latest position 3):",
    "  consumer  partition  cursor  lag  lease",
    "  audit     0/1        3       0    -",
    "  mailer    0/2        2       1    mailer@host-a until 2096-10-02 07:07:10 UTC",
    "  mailer    1/2        0       3    mailer@host-b expired 2001-09-09 01:47:10 UTC",
    "dead letters (1):",
    "  consumer  effect      code           attempts  error",
    "  mailer    order-42#2  handler_error  5         send on Mailed of 'order-42'#2: OSError: no route\\nto host\\x1b[2J "
    "(at mail.py:7)",
]


def test_consumers_their_lag_leases_and_dead_letters_follow_the_instances(shop: Path) -> None:
    write_consumers(shop / "shop.db")
    before = fingerprint(shop)
    code, out, err = cli("inspect", "shop.db", "--spec", "orders.py")
    assert code == 0, err
    assert "\x1b" not in out
    assert out.splitlines() == [
        "order-42: order PAID (version 1)",
        '    1 input      {"type": "Pay"}',
        '    2 effect     {"to": "ada", "type": "Mailed"}',
        '    3 effect     {"type": "Billed"}',
        "order-43: order NEW (version 1)",
        *CONSUMERS,
    ]
    assert fingerprint(shop) == before  # read-only, consumers and all
    code, out, _ = cli("inspect", "shop.db", "--spec", "orders.py", "--key", "order-43")
    assert code == 0 and out == "order-43: order NEW (version 1)\n"  # --key: those instances only


def test_a_store_without_consumers_shows_no_consumers(shop: Path) -> None:
    async def register_and_forget() -> None:
        async with await SqliteStore.open(shop / "shop.db", Catalog({})) as store:
            await store.register("gone")
            await store.unregister("gone", force=True)

    asyncio.run(register_and_forget())
    code, out, _ = cli("inspect", "shop.db", "--spec", "orders.py")
    assert code == 0 and out.splitlines()[-1] == "order-43: order NEW (version 1)"


def test_garbled_consumer_rows_are_shown_as_garbled_and_counted_as_damage(shop: Path) -> None:
    write_consumers(shop / "shop.db")
    raw = sqlite3.connect(shop / "shop.db")
    with raw:
        raw.execute("UPDATE consumers SET cursor = 'x', owner = 'w', until = 'soon' WHERE name = 'audit'")
        raw.execute("UPDATE dead_letters SET attempts = 2.5, key = X'00'")
    raw.close()
    code, out, _ = cli("inspect", "shop.db", "--spec", "orders.py")
    assert code == 1
    assert out.splitlines()[-7:] == [
        "  consumer  partition  cursor          lag  lease",
        "  audit     0/1        <garbled: 'x'>  ?    w until <garbled: 'soon'>",
        "  mailer    0/2        2               1    mailer@host-a until 2096-10-02 07:07:10 UTC",
        "  mailer    1/2        0               3    mailer@host-b expired 2001-09-09 01:47:10 UTC",
        "dead letters (1):",
        "  consumer  effect                code           attempts        error",
        "  mailer    <garbled: b'\\x00'>#2  handler_error  <garbled: 2.5>  send on Mailed of 'order-42'#2: "
        "OSError: no route\\nto host\\x1b[2J (at mail.py:7)",
    ]


# -- PostgreSQL: the same command on a DSN ----------------------------------------------


def pg(dsn: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def run_sql() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run_sql())


def test_a_postgresql_store_reads_exactly_as_the_same_sqlite_store(shop: Path, postgres_dsn: str) -> None:
    write_store(postgres_dsn, "orders.py:order_spec")
    on_sqlite = cli("inspect", "shop.db", "--spec", "orders.py")
    on_postgres = cli("inspect", postgres_dsn, "--spec", "orders.py")
    assert on_postgres == on_sqlite and on_sqlite[0] == 0
    code, out, _ = cli("inspect", postgres_dsn, "--spec", "orders.py", "--key", "order-43")
    assert code == 0 and out == "order-43: order NEW (version 1)\n"


def test_postgresql_inspect_reads_in_a_read_only_snapshot_and_past_a_held_lock(shop: Path, postgres_dsn: str) -> None:
    from statewright.adapters.runtime.postgres import PostgresReader

    write_store(postgres_dsn, "orders.py:order_spec")

    async def main() -> None:
        import asyncpg

        snapshot = await PostgresReader.open(postgres_dsn)
        try:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):  # its transaction cannot write
                await snapshot._conn.execute("DELETE FROM statewright.instances")
        finally:
            await snapshot.close()
        writer = await asyncpg.connect(postgres_dsn)  # holds every writer off, as a long batch would
        try:
            await writer.execute("BEGIN")
            await writer.execute("LOCK TABLE statewright.instances IN EXCLUSIVE MODE")
            await writer.execute("UPDATE statewright.instances SET version = 7 WHERE key = 'order-43'")
            code, out, err = await asyncio.to_thread(cli, "inspect", postgres_dsn, "--spec", "orders.py")
            assert code == 0, err
            assert out.splitlines()[-1] == "order-43: order NEW (version 1)"  # the committed row, not the lock's
            await writer.execute("ROLLBACK")
        finally:
            await writer.close()

    asyncio.run(main())


def test_postgresql_inspect_refusals_are_one_line(shop: Path, postgres_dsn: str) -> None:
    bad_password = postgres_dsn.replace("statewright@", "statewright:s3cret@").replace("/t_", "/missing_")
    for dsn, message in [
        (postgres_dsn, "not a statewright store"),  # an empty database
        (bad_password, "missing_"),
    ]:
        code, out, err = cli("inspect", dsn)
        assert code == 2 and out == "" and err.startswith("statewright: error: ") and message in err, err
        assert err.count("\n") == 1 and "s3cret" not in err and "internal error" not in err
    write_store(postgres_dsn, "orders.py:order_spec")
    pg(postgres_dsn, "UPDATE statewright.statewright_schema SET version = 99")
    code, out, err = cli("inspect", postgres_dsn)
    assert code == 2 and "schema version 99 is newer" in err and err.count("\n") == 1


def test_postgresql_an_event_nested_too_deep_is_one_garbled_line_and_the_rest_is_shown(
    shop: Path, postgres_dsn: str
) -> None:
    write_store(postgres_dsn, "orders.py:order_spec")
    pg(postgres_dsn, f"UPDATE statewright.events SET data = '{DEEP}' WHERE key = 'order-42'")
    code, out, err = cli("inspect", postgres_dsn, "--spec", "orders.py")
    assert code == 1 and err == "", err
    assert out.splitlines() == [
        "order-42: order PAID (version 1)",
        "    1 input      <garbled: nested too deep to decode (past Python's recursion limit)>",
        "order-43: order NEW (version 1)",
    ]


def test_postgresql_garbled_rows_are_shown_as_garbled_and_the_rest_still_shown(shop: Path, postgres_dsn: str) -> None:
    write_store(postgres_dsn, "orders.py:order_spec")
    pg(postgres_dsn, """
        UPDATE statewright.events SET data = '{not json' WHERE key = 'order-42';
        INSERT INTO statewright.events VALUES ('order-42', 2, 'input', '{"type": "Ship"}', true, 1000, 0, 0);  -- position, at, bucket (schema 4)
        INSERT INTO statewright.instances VALUES ('order-420', 'order', 'garbage', 1);
        INSERT INTO statewright.instances VALUES (E'order-\\n\\x1b[31m', 'order', '{}', 1);
    """)
    code, out, err = cli("inspect", postgres_dsn, "--spec", "orders.py")
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == "order-\\n\\x1b[31m: order NEW (version 1)"  # escaped: it forges no line
    assert lines[1] == "order-42: order PAID (version 1)"
    assert lines[2].startswith("    1 input      <garbled: {not json: Expecting property name")
    assert lines[3] == '    2 input      {"type": "Ship"} [terminal]'
    assert lines[4].startswith("order-420: CORRUPT -- record 'order-420' cannot be decoded")
    assert lines[5:] == ["order-43: order NEW (version 1)"]


def test_postgresql_consumers_read_exactly_as_the_same_sqlite_ones(shop: Path, postgres_dsn: str) -> None:
    write_store(postgres_dsn, "orders.py:order_spec")
    write_consumers(postgres_dsn)
    write_consumers(shop / "shop.db")
    on_sqlite = cli("inspect", "shop.db", "--spec", "orders.py")
    on_postgres = cli("inspect", postgres_dsn, "--spec", "orders.py")
    assert on_postgres == on_sqlite and on_sqlite[0] == 0
    assert on_postgres[1].splitlines()[-len(CONSUMERS):] == CONSUMERS


def test_an_unknown_key_names_twenty_instances_and_counts_the_rest(tmp_path: Path) -> None:
    from statewright.machines.input import INPUT, Input

    async def fill() -> None:
        async with await SqliteStore.open(tmp_path / "many.db", Catalog({"input": INPUT})) as store:
            for n in range(25):
                await store.cas(f"in{n:02d}", 0, Input(), machine="input")

    asyncio.run(fill())
    code, out, err = cli("inspect", str(tmp_path / "many.db"), "--key", "nope")
    assert code == 2
    names = ", ".join(f"in{n:02d}" for n in range(20))
    assert err.strip().endswith(f"(instances: {names} and 5 more)"), err
