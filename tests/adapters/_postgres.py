"""A throwaway PostgreSQL server for tests and benchmarks: started once, on a Unix socket only.

`start` runs ``initdb`` into a fresh temporary directory and ``pg_ctl start``
with TCP switched off and ``fsync`` off (nothing here needs to survive a
crash of the machine), so it takes a second or two; `Server.stop` kills it
(``-m immediate``) and removes the directory. PostgreSQL refuses to run as
root, so under root (containers, CI) the server runs as the ``postgres`` user
(else ``nobody``), which then owns the directory; root's clients reach its
socket regardless. Every test gets its own database from `Server.database`.

When no server can be had (no binaries, ``initdb`` fails), `start` raises
`Unavailable` with a one-line reason; callers decide whether that skips or
fails (`required` reads ``STATEWRIGHT_REQUIRE_POSTGRES``, which CI sets).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

__all__ = ["Server", "Unavailable", "binaries", "required", "start"]

USER = "statewright"
PORT = 5433  # only names the socket file (.s.PGSQL.5433): the server listens on no TCP port
_TOOLS = ("initdb", "pg_ctl", "postgres")


class Unavailable(Exception):
    """No PostgreSQL server could be started here; the message is one line saying why."""


def required() -> bool:
    """Whether a missing PostgreSQL fails the tests instead of skipping them (CI sets the variable)."""
    return os.environ.get("STATEWRIGHT_REQUIRE_POSTGRES", "") == "1"


def binaries() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``/``postgres``: from PATH, else the newest ``/usr/lib/postgresql/*/bin``."""
    found = [shutil.which(tool) for tool in _TOOLS]
    if all(found):
        return Path(str(found[0])).resolve().parent
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if all((p / t).exists() for t in _TOOLS)),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in re.split(r"\D+", p.parent.name)],
    )
    return versions[-1] if versions else None


@dataclass
class Server:
    """A running throwaway server: its directory (also the socket's) and the databases handed out."""

    root: Path
    bindir: Path
    runas: str | None
    fsync: bool = False
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def dsn(self, database: str = "postgres") -> str:
        """A DSN for ``database`` over the Unix socket, usable from any process of this user."""
        return f"postgresql://{USER}@/{database}?host={self.root}&port={PORT}"

    def database(self) -> str:
        """A DSN of a new, empty database (``t_1``, ``t_2``, ...)."""
        name = f"t_{next(self._serial)}"
        asyncio.run(self._create(name))
        return self.dsn(name)

    def drop(self, dsn: str) -> None:
        """Drop the database of ``dsn`` (from `database`), ending any session still in it; errors ignored."""
        name = dsn.split("/")[3].split("?")[0]
        try:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # a test stopped the server, or the database is gone already: nothing to reclaim

    async def _create(self, name: str) -> None:
        await self._admin(f'CREATE DATABASE "{name}"')

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``pg_ctl`` on this server's data directory, as the server's user."""
        return _run([str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args], self.runas, self.root)

    def stop(self) -> None:
        """Kill the server (no checkpoint: its data is thrown away) and remove its directory."""
        try:
            self.pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Start the server again after a `pg_ctl stop` (tests that take it away from a store)."""
        result = self.pg_ctl("start", "-w", "-l", str(self.root / "log"), "-o", _options(self.root, self.fsync))
        if result.returncode != 0:
            raise Unavailable(f"pg_ctl start failed: {_last_line(result)}")


def start_for_bench(wanted: bool, *, fsync: bool = True) -> Server | None:
    """A benchmark's server: started when ``wanted``, else (or when none can start, said on stdout) None."""
    if not wanted:
        return None
    try:
        return start(fsync=fsync)
    except Unavailable as exc:
        print(f"PostgreSQL part skipped: {exc}", flush=True)
        return None


def start(*, fsync: bool = False) -> Server:
    """Initialise and start a server in a new temporary directory; `Unavailable` if that cannot be done.

    ``fsync`` stays off for tests (nothing outlives the session); benchmarks turn it on.
    """
    bindir = binaries()
    if bindir is None:
        raise Unavailable("PostgreSQL not found (no initdb/pg_ctl on PATH nor in /usr/lib/postgresql/*/bin)")
    runas = _unprivileged_user() if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp" if Path("/tmp").is_dir() else None))
    try:
        if runas is not None:
            pw = pwd.getpwnam(runas)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        init = _run(
            [str(bindir / "initdb"), "-D", str(root / "data"), "--auth=trust", "-U", USER, "--encoding=UTF8",
             "--locale=C", "--no-sync"],
            runas, root,
        )
        if init.returncode != 0:
            raise Unavailable(f"initdb failed: {_last_line(init)}")
        server = Server(root, bindir, runas, fsync)
        try:
            server.restart()
        except BaseException:
            server.pg_ctl("stop", "-m", "immediate")  # in case it started but did not answer in time
            raise
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def _options(root: Path, fsync: bool) -> str:
    """The server's options: socket in ``root`` (short path, owner-only), no TCP, fsync as asked."""
    return (f"-c listen_addresses='' -k {root} -p {PORT} -c fsync={'on' if fsync else 'off'}"
            " -c unix_socket_permissions=0700")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise Unavailable("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


def _run(argv: list[str], runas: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as ``runas`` when given; missing binaries become `Unavailable`."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    extra: dict[str, object] = {}
    if runas is not None:
        pw = pwd.getpwnam(runas)
        env["HOME"] = str(cwd)
        extra = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    try:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, **extra)  # type: ignore[call-overload, no-any-return]
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{Path(argv[0]).name} could not run: {exc}") from None


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


# -- a proxy that loses a COMMIT's reply -----------------------------------------------------------


class Cut:
    """Where `CommitCutter` cuts the next COMMIT: after the server answered it, or before it got it."""

    AFTER_REPLY = "after_reply"  # the server committed; the client never hears so
    BEFORE_SERVER = "before_server"  # the client sent COMMIT; the server never gets it and rolls back


@dataclass
class CommitCutter:
    """A Unix-socket proxy in front of a `Server` that cuts a connection at its next COMMIT, when armed.

    It reads the PostgreSQL wire protocol just enough to spot a simple-query
    ``COMMIT`` from the client (asyncpg sends ``BEGIN`` and ``COMMIT`` as simple
    queries) and the server's ``CommandComplete`` for it. `arm` sets where the
    next COMMIT is cut (`Cut`); the connection is then closed on both sides, so
    the client sees a lost connection after it sent COMMIT -- whether or not the
    server committed. ``cuts`` counts the COMMITs cut so far. `dsn` names a
    database through the proxy; run it in the test's own event loop
    (``async with``).
    """

    server: Server
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cut", dir="/tmp")))
    cuts: int = 0
    _armed: str | None = None
    _listener: asyncio.AbstractServer | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def dsn(self, direct: str) -> str:
        """``direct`` (a DSN of `Server.database`) through this proxy."""
        return direct.replace(f"host={self.server.root}", f"host={self.root}")

    def arm(self, where: str) -> None:
        self._armed = where

    @property
    def armed(self) -> bool:
        return self._armed is not None

    async def __aenter__(self) -> CommitCutter:
        self._listener = await asyncio.start_unix_server(self._serve, path=str(self.root / f".s.PGSQL.{PORT}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        for w in self._writers:
            w.close()
        await self._listener.wait_closed()
        shutil.rmtree(self.root, ignore_errors=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_unix_connection(str(self.server.root / f".s.PGSQL.{PORT}"))
        self._writers += [client_w, server_w]
        committing = asyncio.Event()  # this connection sent a COMMIT that is to be cut

        def cut() -> None:
            self.cuts += 1
            client_w.transport.abort()
            server_w.transport.abort()

        async def upstream() -> None:
            first = True
            while True:
                if first:  # the startup message has no type byte
                    head = await client_r.readexactly(4)
                    body = await client_r.readexactly(int.from_bytes(head, "big") - 4)
                    server_w.write(head + body)
                    first = False
                    continue
                kind = await client_r.readexactly(1)
                head = await client_r.readexactly(4)
                body = await client_r.readexactly(int.from_bytes(head, "big") - 4)
                if kind == b"Q" and body.rstrip(b"\x00").strip().upper() == b"COMMIT" and self._armed:
                    where, self._armed = self._armed, None
                    if where == Cut.BEFORE_SERVER:
                        cut()
                        return
                    committing.set()
                server_w.write(kind + head + body)
                await server_w.drain()

        async def downstream() -> None:
            while True:
                kind = await server_r.readexactly(1)
                head = await server_r.readexactly(4)
                body = await server_r.readexactly(int.from_bytes(head, "big") - 4)
                if kind == b"C" and committing.is_set() and body.rstrip(b"\x00") == b"COMMIT":
                    cut()  # committed on the server; the reply is lost
                    return
                client_w.write(kind + head + body)
                await client_w.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for p in pumps:
                p.cancel()
            for p in pumps:
                try:
                    await p
                except (asyncio.CancelledError, OSError, asyncio.IncompleteReadError, ConnectionError):
                    pass
            client_w.transport.abort()
            server_w.transport.abort()
