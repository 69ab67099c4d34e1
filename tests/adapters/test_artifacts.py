"""The artifact store port's contract, on every backend (memory, SQLite, PostgreSQL).

Each test is a coroutine taking a fresh `ArtifactStore` (and a `Backend`
that can tamper behind the store's back and count staged chunks); the ``go``
fixture opens the store, runs it with `asyncio.run` and closes it. Chunks
are small (`SMALL`) so that a few kilobytes span several of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import sqlite3
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from statewright.adapters.runtime.artifacts import (
    ArtifactKind,
    ArtifactStore,
    MemoryArtifacts,
    Other,
    canonical,
    kind_from_text,
    kind_text,
)
from statewright.adapters.runtime.artifacts_sqlite import SqliteArtifacts
from statewright.adapters.runtime.errors import BadInput, Corrupt, NotAStore, NotFound
from statewright.adapters.runtime.sqlite import SqliteStore
from statewright.adapters.runtime.store import Catalog

SMALL = 1024


class Backend:
    """Where a test's store lives, and what a test may do behind its back."""

    def __init__(self, name: str, locator: str) -> None:
        self.name = name
        self.locator = locator
        self.memory: MemoryArtifacts | None = None

    async def open(self, chunk: int = SMALL) -> ArtifactStore:
        if self.name == "memory":
            if self.memory is None:
                self.memory = MemoryArtifacts(chunk=chunk)
            return self.memory
        if self.name == "sqlite":
            return await SqliteArtifacts.open(self.locator, chunk=chunk)
        from statewright.adapters.runtime.artifacts_postgres import PostgresArtifacts

        return await PostgresArtifacts.open(self.locator, chunk=chunk)

    async def tamper(self, id: str, n: int, new: bytes | None) -> None:
        """Replace chunk ``n`` of ``id`` with ``new``, or delete it (``None``), with no help from the store."""
        if self.memory is not None:
            if new is None:
                del self.memory.chunks[id][n]
            else:
                self.memory.chunks[id][n] = new
        elif self.name == "sqlite":
            with sqlite3.connect(self.locator) as db:
                (blob,) = db.execute("SELECT blob FROM artifacts WHERE id = ?", (id,)).fetchone()
                if new is None:
                    db.execute("DELETE FROM artifact_chunks WHERE blob = ? AND n = ?", (blob, n))
                else:
                    db.execute("UPDATE artifact_chunks SET bytes = ? WHERE blob = ? AND n = ?", (new, blob, n))
        else:
            import asyncpg  # type: ignore[import-untyped]

            conn = await asyncpg.connect(self.locator)
            try:
                blob = await conn.fetchval("SELECT blob FROM statewright.artifacts WHERE id = $1", id)
                if new is None:
                    await conn.execute("DELETE FROM statewright.artifact_chunks WHERE blob = $1 AND n = $2", blob, n)
                else:
                    await conn.execute("UPDATE statewright.artifact_chunks SET bytes = $1 WHERE blob = $2 AND n = $3",
                                       new, blob, n)
            finally:
                await conn.close()

    async def chunk_rows(self) -> int:
        """Chunk rows stored in all (staged or not); for memory, the chunks of every artifact."""
        if self.memory is not None:
            return sum(len(c) for c in self.memory.chunks.values())
        if self.name == "sqlite":
            with sqlite3.connect(self.locator) as db:
                return int(db.execute("SELECT count(*) FROM artifact_chunks").fetchone()[0])
        import asyncpg

        conn = await asyncpg.connect(self.locator)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM statewright.artifact_chunks"))
        finally:
            await conn.close()


Test = Callable[[ArtifactStore, Backend], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        return Backend("postgres", str(request.getfixturevalue("postgres_dsn")))
    return Backend(str(request.param), str(tmp_path / "s.db"))


@pytest.fixture
def go(backend: Backend) -> Callable[[Test], None]:
    def run(test: Test) -> None:
        async def main() -> None:
            store = await backend.open()
            try:
                await test(store, backend)
            finally:
                await store.close()

        asyncio.run(main())

    return run


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start:start + size]


DATA = bytes(range(256)) * 20  # 5120 bytes: five chunks of SMALL


def test_put_is_content_addressed_and_idempotent(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        first = await store.put(ArtifactKind.OUTPUT, DATA)
        assert first == sha(DATA)
        assert await store.put(ArtifactKind.OUTPUT, [DATA[:7], DATA[7:3000], b"", DATA[3000:]]) == first
        assert await store.put(ArtifactKind.OUTPUT, pieces(DATA, 333)) == first
        assert await store.put(ArtifactKind.OUTPUT, bytearray(DATA)) == first
        assert await store.get(first) == DATA
        assert await backend.chunk_rows() == 5  # one copy, however often it was put
        assert await store.exists(first)
        assert await store.put(ArtifactKind.OUTPUT, b"") == sha(b"")
        assert await store.get(sha(b"")) == b""

    go(test)


def test_kinds_are_recorded_and_the_first_one_kept(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        ids = {}
        for kind in [*ArtifactKind, Other("trace")]:
            ids[kind_text(kind)] = await store.put(kind, kind_text(kind).encode())
        for text, id in ids.items():
            info = await store.stat(id)
            assert (kind_text(info.kind), info.size, info.id) == (text, len(text), id)
            assert info.created > 0
        manifest = await store.put(ArtifactKind.MANIFEST, canonical({"steps": [], "id": 1}))
        assert await store.get(manifest) == b'{"id":1,"steps":[]}'
        assert await store.put(ArtifactKind.OUTPUT, b'{"id":1,"steps":[]}') == manifest
        assert (await store.stat(manifest)).kind is ArtifactKind.MANIFEST
        assert (await store.stat(ids["other:trace"])).kind == Other("trace")

    go(test)


def test_kind_text_round_trips_and_bad_kinds_are_refused() -> None:
    for kind in [*ArtifactKind, Other("x"), Other("other:y")]:
        assert kind_from_text(kind_text(kind)) == kind
    with pytest.raises(BadInput):
        kind_text(Other(""))
    with pytest.raises(BadInput):
        kind_text("manifest")  # type: ignore[arg-type]
    with pytest.raises(Corrupt):
        kind_from_text("blueprint")


def test_missing_and_malformed_ids(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        missing = sha(b"never put")
        assert not await store.exists(missing)
        for read in (store.get, store.stat):
            with pytest.raises(NotFound) as info:
                await read(missing)
            assert info.value.code == "not_found"
        with pytest.raises(NotFound):
            async for _ in store.stream(missing):
                pass
        for bad in ("sha256:" + "A" * 64, "0" * 64, "sha256:abc", 7):
            with pytest.raises(BadInput) as bad_info:
                await store.exists(bad)  # type: ignore[arg-type]
            assert bad_info.value.code == "bad_input"
        with pytest.raises(BadInput):
            await store.put(ArtifactKind.OUTPUT, ["text, not bytes"])  # type: ignore[list-item]
        with pytest.raises(BadInput):
            await store.put(ArtifactKind.OUTPUT, "text")  # type: ignore[arg-type]
        assert await backend.chunk_rows() == 0

    go(test)


@pytest.mark.parametrize("damage", ["changed", "deleted", "swapped length"])
def test_a_tampered_chunk_reads_as_corrupt(go: Callable[[Test], None], damage: str) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        id = await store.put(ArtifactKind.CONTEXT_SNAPSHOT, DATA)
        new = {"changed": b"\xff" * SMALL, "deleted": None, "swapped length": DATA[:SMALL - 1]}[damage]
        await backend.tamper(id, 2, new)
        with pytest.raises(Corrupt) as info:
            await store.get(id)
        assert info.value.code == "corrupt" and id in str(info.value)
        got = []
        with pytest.raises(Corrupt):
            async for chunk in store.stream(id):
                got.append(chunk)
        assert len(got) < 5  # the reader never had all of the wrong bytes without the error
        assert await store.exists(id)  # the row is there; its bytes are not its id's

    go(test)


def test_open_streams_the_stored_chunks(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        id = await store.put(ArtifactKind.OUTPUT, pieces(DATA + b"tail", 100))
        sizes = [len(chunk) async for chunk in store.stream(id)]
        assert sizes == [SMALL] * 5 + [4]

    go(test)


def test_a_put_cancelled_halfway_leaves_nothing(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        halfway = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            for n in range(10):
                yield bytes([n]) * SMALL
                if n == 4:
                    halfway.set()
                    await asyncio.sleep(3600)

        put = asyncio.ensure_future(store.put(ArtifactKind.OUTPUT, slow()))
        await halfway.wait()
        await asyncio.sleep(0.05)
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        whole = b"".join(bytes([n]) * SMALL for n in range(10))
        assert not await store.exists(sha(whole))
        assert await backend.chunk_rows() == 0  # what it staged went with it
        assert await store.put(ArtifactKind.OUTPUT, whole) == sha(whole)  # and the store still works
        assert await store.get(sha(whole)) == whole

    go(test)


def test_a_put_whose_source_fails_leaves_nothing(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        def broken() -> Iterator[bytes]:
            yield b"x" * SMALL * 3
            raise OSError("the source went away")

        with pytest.raises(OSError, match="went away"):
            await store.put(ArtifactKind.OUTPUT, broken())
        assert await backend.chunk_rows() == 0

    go(test)


def test_concurrent_puts_of_the_same_content_in_one_process(go: Callable[[Test], None]) -> None:
    async def test(store: ArtifactStore, backend: Backend) -> None:
        ids = await asyncio.gather(*(store.put(ArtifactKind.OUTPUT, pieces(DATA, 500)) for _ in range(4)))
        assert set(ids) == {sha(DATA)}
        assert await backend.chunk_rows() == 5
        assert await store.get(sha(DATA)) == DATA

    go(test)


def _put_in_a_process(name: str, locator: str, start: float) -> str:
    """A child process: open the artifacts, wait for the common start, put `DATA` in small pieces."""
    async def main() -> str:
        store = await Backend(name, locator).open()
        try:
            await asyncio.sleep(max(0.0, start - time.time()))
            return await store.put(ArtifactKind.OUTPUT, pieces(DATA, 200))
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)  # a memory store is one process's
def test_two_processes_putting_the_same_content_both_succeed_with_one_row(backend: Backend) -> None:
    asyncio.run(_opened(backend))  # the tables exist before the race
    start = time.time() + 1.5
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        ids = list(pool.map(_put_in_a_process, [backend.name] * 2, [backend.locator] * 2, [start] * 2))
    assert ids == [sha(DATA)] * 2

    async def after() -> None:
        store = await backend.open()
        try:
            assert await store.get(sha(DATA)) == DATA
            assert await backend.chunk_rows() == 5
        finally:
            await store.close()

    asyncio.run(after())


async def _opened(backend: Backend) -> None:
    await (await backend.open()).close()


def _streaming(backend: Backend, size: int, chunk: int) -> tuple[int, float, float]:
    """Put ``size`` bytes from a generator and read them back chunk by chunk; peak traced memory, put and get MB/s."""
    def source() -> Iterator[bytes]:
        block = bytes(range(256)) * 256  # 64 KiB
        for n in range(size // len(block)):
            yield n.to_bytes(8, "big") + block[8:]

    async def main() -> tuple[int, float, float]:
        store = await backend.open(chunk)
        try:
            tracemalloc.start()
            t0 = time.perf_counter()
            id = await store.put(ArtifactKind.OUTPUT, source())
            t1 = time.perf_counter()
            expected = hashlib.sha256()
            for piece in source():
                expected.update(piece)
            assert id == "sha256:" + expected.hexdigest()
            got = hashlib.sha256()
            total = 0
            t2 = time.perf_counter()
            async for piece in store.stream(id):
                got.update(piece)
                total += len(piece)
            t3 = time.perf_counter()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert (total, "sha256:" + got.hexdigest()) == (size, id)
            return peak, size / 1e6 / (t1 - t0), size / 1e6 / (t3 - t2)
        finally:
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            await store.close()

    return asyncio.run(main())


def test_streaming_holds_a_few_chunks_not_the_artifact(tmp_path: Path) -> None:
    size, chunk = 4 << 20, 64 << 10
    peak, _, _ = _streaming(Backend("sqlite", str(tmp_path / "s.db")), size, chunk)
    assert peak < size / 8, f"peak {peak} bytes for a {size}-byte artifact"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_a_64_mib_artifact_streams_in_bounded_memory(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    locator = str(request.getfixturevalue("postgres_dsn")) if name == "postgres" else str(tmp_path / "s.db")
    size = 64 << 20
    peak, put, get = _streaming(Backend(name, locator), size, 1 << 20)
    print(json.dumps({"backend": name, "size": size, "peak": peak, "put_MBps": round(put, 1),
                      "get_MBps": round(get, 1)}))
    assert peak < 16 << 20, f"peak {peak} bytes for a {size}-byte artifact"


def test_artifacts_live_beside_a_sqlite_store(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        async with await SqliteArtifacts.open(path) as artifacts:
            id = await artifacts.put(ArtifactKind.MANIFEST, b"{}")
        await (await SqliteStore.open(path, Catalog({}))).close()  # still a store
        async with await SqliteArtifacts.open(path) as artifacts:
            assert await artifacts.get(id) == b"{}"
        other = tmp_path / "other.db"
        with sqlite3.connect(other) as db:
            db.execute("CREATE TABLE mine (x)")
        with pytest.raises(NotAStore):
            await SqliteArtifacts.open(other)

    asyncio.run(main())


def test_memory_artifacts_and_a_killed_put_swept(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "s.db")
        async with await SqliteArtifacts.open(path, chunk=SMALL) as artifacts:
            with sqlite3.connect(path) as db:  # what a put killed mid-way leaves: chunks no row points at
                db.execute("INSERT INTO artifact_chunks (blob, n, bytes) VALUES ('dead', 0, x'00')")
            id = await artifacts.put(ArtifactKind.OUTPUT, DATA)
            assert await artifacts.sweep() == 1
            assert await artifacts.get(id) == DATA
        assert isinstance(MemoryArtifacts(), ArtifactStore)

    asyncio.run(main())
