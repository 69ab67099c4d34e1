"""The artifact store port: immutable, content-addressed blobs (manifests, snapshots, fact payloads, outputs).

Theory of operation
-------------------
An artifact is a sequence of bytes named by its content: its id is
``"sha256:"`` and the lowercase hex SHA-256 of the bytes (the source's
`ArtifactId`, with the algorithm spelled out so that another one can come
later). Putting the same bytes twice is one artifact and the same id, whatever
the kind given the second time: the kind of the first put is recorded and kept
(`ArtifactInfo.kind`). What is canonical is the caller's business; `canonical`
gives the canonical JSON bytes the stores use, so that equal values give equal
ids.

Bytes go in and out in chunks (`CHUNK`, 1 MiB by default): `ArtifactStore.put`
takes bytes or an iterable (sync or async) of chunks of any size, and
`ArtifactStore.stream` yields the stored chunks one at a time, so neither holds a
large artifact whole. (The stream is not called ``open``, the issue's word: the
SQL backends' constructors are ``open``, as the stores' are.) A put is all or nothing: the SQL backends stage the
chunks under a key nobody reads and make the artifact visible with one short
transaction once the last chunk is in; a put that fails or is cancelled
deletes what it staged, and nothing was ever visible.

Reads verify: `ArtifactStore.get` and `ArtifactStore.stream` hash what they read
and raise `Corrupt` when it is not the id's content (a chunk changed, lost or
added behind the store's back). `stream` holds one chunk back, so a reader gets
the error instead of the last chunk and never the whole of wrong bytes without
it. Errors are the store port's (`errors`): `NotFound`, `Corrupt`, `BadInput`
(not an id, not a kind, not bytes), and from the SQL backends `Io`, `Full`,
`ReadOnly`, `Busy`, mapped by the stores' own boundaries.

Backends: `MemoryArtifacts` here; `artifacts_sqlite.SqliteArtifacts` and
`artifacts_postgres.PostgresArtifacts` keep artifacts in tables of their own
beside a store's, in the same file or database.

>>> import asyncio
>>> async def demo():
...     artifacts = MemoryArtifacts()
...     first = await artifacts.put(ArtifactKind.OUTPUT, b"hello")
...     again = await artifacts.put(Other("log"), [b"hel", b"lo"])
...     return first == again, first[:15], await artifacts.get(first), (await artifacts.stat(first)).kind
>>> asyncio.run(demo())
(True, 'sha256:2cf24dba', b'hello', <ArtifactKind.OUTPUT: 'output'>)
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, NewType, Protocol, Self, TypeAlias, TypeVar, runtime_checkable

from statewright.adapters.runtime.errors import BadInput, Corrupt, NotFound
from statewright.adapters.runtime.shielded import shielded
from statewright.adapters.runtime.store import canonical_json

__all__ = [
    "CHUNK",
    "ArtifactId",
    "ArtifactInfo",
    "ArtifactKind",
    "ArtifactStore",
    "Data",
    "Kind",
    "MemoryArtifacts",
    "Other",
    "StagedArtifacts",
    "artifact_id",
    "canonical",
    "chunks_of",
    "kind_from_text",
    "kind_text",
]

T = TypeVar("T")

CHUNK = 1 << 20
"""Bytes per stored chunk by default (1 MiB): what a put stages at a time and what `stream` yields."""

ArtifactId = NewType("ArtifactId", str)
"""``"sha256:"`` and 64 lowercase hex digits: the SHA-256 of the artifact's bytes."""

_ID = re.compile(r"sha256:[0-9a-f]{64}")
_PREFIX = "sha256:"


class ArtifactKind(Enum):
    """What an artifact is for (retention, validation, output handling); the source's kinds but ``Other``.

    An operation's or backend's own kind is `Other` with a name.
    """

    MANIFEST = "manifest"
    CONTEXT_SNAPSHOT = "context_snapshot"
    FACT_PAYLOAD = "fact_payload"
    SECRET_PAYLOAD = "secret_payload"  # ciphertext only: plaintext secrets never go into the artifact store
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Other:
    """An operation- or backend-specific kind (the source's ``ArtifactKind::Other(String)``)."""

    name: str


Kind: TypeAlias = ArtifactKind | Other
"""Any artifact kind: one of the source's, or `Other`."""

Data: TypeAlias = "bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes]"
"""What `ArtifactStore.put` takes: the bytes, or their chunks (of any sizes) from an iterable, sync or async."""


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """What a store records of an artifact besides its bytes: kind, size in bytes, Unix time of its first put."""

    id: ArtifactId
    kind: Kind
    size: int
    created: float


@runtime_checkable
class ArtifactStore(Protocol):
    """Immutable, content-addressed blobs: the source's ``ArtifactStore`` (put, get, exists) plus streaming."""

    async def put(self, kind: Kind, data: Data) -> ArtifactId:
        """Store ``data`` (bytes or chunks) and return its id; the same bytes again return the same id."""
        ...

    async def get(self, id: str) -> bytes:
        """The whole artifact, verified against its id (`Corrupt`); `NotFound` when there is none."""
        ...

    def stream(self, id: str) -> AsyncIterator[bytes]:
        """The artifact's chunks one at a time, verified as they go (`Corrupt` instead of the last chunk)."""
        ...

    async def exists(self, id: str) -> bool:
        """Whether the artifact is stored, without reading its bytes."""
        ...

    async def stat(self, id: str) -> ArtifactInfo:
        """Its kind, size and time of first put; `NotFound` when there is none."""
        ...

    async def close(self) -> None:
        """Release the store's connections; safe to call twice."""
        ...


def artifact_id(text: str) -> ArtifactId:
    """``text`` as an `ArtifactId`, or `BadInput` when it is not ``sha256:`` and 64 lowercase hex digits.

    >>> artifact_id("sha256:" + "0" * 64)[:10]
    'sha256:000'
    """
    if not isinstance(text, str) or not _ID.fullmatch(text):
        raise BadInput(f"not an artifact id (sha256: and 64 lowercase hex digits): {text!r:.80}")
    return ArtifactId(text)


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (sorted keys, no whitespace, no floats): equal values, equal ids.

    >>> canonical({"b": 1, "a": [True, None]})
    b'{"a":[true,null],"b":1}'
    """
    return canonical_json(value).encode()


def kind_text(kind: Kind) -> str:
    """How a kind is stored: the enum's value, or ``other:`` and the name.

    >>> kind_text(ArtifactKind.MANIFEST), kind_text(Other("trace"))
    ('manifest', 'other:trace')
    """
    if isinstance(kind, ArtifactKind):
        return kind.value
    if isinstance(kind, Other) and isinstance(kind.name, str) and kind.name:
        return "other:" + kind.name
    raise BadInput(f"not an artifact kind: {kind!r:.80} (an ArtifactKind, or Other with a non-empty name)")


def kind_from_text(text: Any, id: str = "") -> Kind:
    """A stored kind read back (`kind_text`'s inverse); `Corrupt` when it is neither form."""
    if isinstance(text, str):
        if text.startswith("other:") and len(text) > 6:
            return Other(text[6:])
        try:
            return ArtifactKind(text)
        except ValueError:
            pass
    raise Corrupt(f"artifact {id} has an unreadable kind {text!r:.80}", key=id or None)


async def chunks_of(data: Data, size: int = CHUNK) -> AsyncIterator[bytes]:
    """``data`` cut into chunks of exactly ``size`` bytes (the last one shorter, none empty).

    Chunks of any size come in; at most one chunk and one incoming piece are
    held at a time. Anything but bytes-like pieces is `BadInput`.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), size):
            yield bytes(view[start:start + size])
        return
    buffer = bytearray()
    if isinstance(data, AsyncIterable):
        async for piece in data:
            buffer += _piece(piece)
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
    elif isinstance(data, Iterable) and not isinstance(data, str):
        for piece in data:
            buffer += _piece(piece)
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
    else:
        raise BadInput(f"an artifact is bytes or an iterable of bytes, not {type(data).__name__}")
    if buffer:
        yield bytes(buffer)


def _piece(piece: Any) -> bytes | bytearray | memoryview:
    if not isinstance(piece, (bytes, bytearray, memoryview)):
        raise BadInput(f"an artifact's chunks are bytes, not {type(piece).__name__}")
    return piece


class Hasher:
    """The running SHA-256 of an artifact's chunks and their total size; `id` once they are all in."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)

    @property
    def id(self) -> ArtifactId:
        return ArtifactId(_PREFIX + self._sha.hexdigest())


async def verified(id: ArtifactId, size: int, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` passed on one behind, so that a mismatch with ``id`` or ``size`` raises `Corrupt` in place of the last."""
    hasher = Hasher()
    held: bytes | None = None
    async for chunk in chunks:
        if not isinstance(chunk, bytes):
            raise Corrupt(f"artifact {id} has a chunk that is not bytes ({type(chunk).__name__})", key=id)
        hasher.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if hasher.id != id or hasher.size != size:
        raise Corrupt(f"artifact {id}: its stored bytes ({hasher.size} of {size}) hash to {hasher.id}, not to its id",
                      key=id)
    if held is not None:
        yield held


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    """Every chunk of ``stream`` joined (what `get` is on every backend)."""
    return b"".join([chunk async for chunk in stream])


def not_found(id: str) -> NotFound:
    return NotFound(f"no artifact {id}", key=id)


class StagedArtifacts:
    """What both SQL backends do the same way; each subclass says it in its own SQL.

    A put stages its chunks under a random ``blob`` key, each chunk a short
    write of its own (so a large put never holds a lock long), then publishes
    the artifact's row in one transaction -- or, when the same bytes were
    there already, drops its staged chunks in that transaction. A put that
    fails or is cancelled drops what it staged. Reads go chunk by chunk,
    through `verified`. Subclasses give the SQL: `_stage`, `_publish`,
    `_drop`, `_chunk_at`, `_artifact_row`, `_transaction`, and
    ``_created_types``, the types a stored creation time may read back as.
    """

    _chunk: int
    _clock: Callable[[], float]
    _created_types: tuple[type, ...] = (float,)

    async def put(self, kind: Kind, data: Data) -> ArtifactId:
        text = kind_text(kind)
        blob = secrets.token_hex(16)
        hasher = Hasher()
        try:
            async for chunk in chunks_of(data, self._chunk):
                n = hasher.size // self._chunk
                hasher.update(chunk)
                await shielded(self._stage, blob, n, chunk)
            id, size, created = hasher.id, hasher.size, float(self._clock())
            await self._transaction(lambda: self._publish(id, text, size, created, blob))
            return id
        except BaseException:
            try:
                await shielded(self._drop, blob)  # even while the caller is being cancelled (best effort)
            except Exception:
                pass  # nothing points at them: `sweep` takes them later
            raise

    async def get(self, id: str) -> bytes:
        return await read_all(self.stream(id))

    async def stream(self, id: str) -> AsyncIterator[bytes]:
        info, blob = await self._row(id)

        async def stored() -> AsyncIterator[bytes]:
            n = 0
            while (chunk := await self._chunk_at(blob, n)) is not None:
                yield chunk
                n += 1

        async for chunk in verified(info.id, info.size, stored()):
            yield chunk

    async def exists(self, id: str) -> bool:
        return await self._artifact_row(artifact_id(id)) is not None

    async def stat(self, id: str) -> ArtifactInfo:
        return (await self._row(id))[0]

    async def _row(self, id: str) -> tuple[ArtifactInfo, str]:
        key = artifact_id(id)
        row = await self._artifact_row(key)
        if row is None:
            raise not_found(key)
        kind, size, created, blob = row
        if type(size) is not int or not isinstance(created, self._created_types) or not isinstance(blob, str):
            raise Corrupt(f"artifact {key}'s row is garbled: size {size!r}, created {created!r}", key=key)
        return ArtifactInfo(key, kind_from_text(kind, key), size, float(row[2])), blob  # (`created`, checked above)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        raise NotImplementedError

    async def _stage(self, blob: str, n: int, chunk: bytes) -> None:
        """Write one staged chunk (its own short write)."""
        raise NotImplementedError

    async def _publish(self, id: ArtifactId, kind: str, size: int, created: float, blob: str) -> None:
        """Inside a transaction: insert the artifact's row pointing at ``blob``, or drop ``blob`` if ``id`` exists."""
        raise NotImplementedError

    async def _drop(self, blob: str) -> None:
        """Delete ``blob``'s staged chunks unless an artifact points at them."""
        raise NotImplementedError

    async def _chunk_at(self, blob: str, n: int) -> bytes | None:
        """Chunk ``n`` of ``blob``, or None past its last."""
        raise NotImplementedError

    async def _artifact_row(self, id: ArtifactId) -> Any:
        """``(kind, size, created, blob)`` of artifact ``id``, or None."""
        raise NotImplementedError

    async def _transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        raise NotImplementedError


class MemoryArtifacts:
    """An `ArtifactStore` in this process's memory, for tests and single-process use; chunked like the others."""

    def __init__(self, *, chunk: int = CHUNK, clock: Any = time.time) -> None:
        if not (isinstance(chunk, int) and chunk > 0):
            raise BadInput(f"chunk must be a positive number of bytes, got {chunk!r}")
        self._chunk = chunk
        self._clock = clock
        self._infos: dict[str, ArtifactInfo] = {}
        self.chunks: dict[str, list[bytes]] = {}
        """The stored chunks by id: public so that tests can damage them behind the store's back."""

    async def put(self, kind: Kind, data: Data) -> ArtifactId:
        text = kind_text(kind)
        hasher = Hasher()
        staged: list[bytes] = []
        async for chunk in chunks_of(data, self._chunk):
            hasher.update(chunk)
            staged.append(chunk)
        id = hasher.id
        if id not in self._infos:  # nothing was awaited since the check: no other put can interleave
            self._infos[id] = ArtifactInfo(id, kind_from_text(text), hasher.size, float(self._clock()))
            self.chunks[id] = staged
        return id

    async def get(self, id: str) -> bytes:
        return await read_all(self.stream(id))

    async def stream(self, id: str) -> AsyncIterator[bytes]:
        info = await self.stat(id)

        async def stored() -> AsyncIterator[bytes]:
            for chunk in list(self.chunks.get(id, [])):
                yield chunk

        async for chunk in verified(info.id, info.size, stored()):
            yield chunk

    async def exists(self, id: str) -> bool:
        return artifact_id(id) in self._infos

    async def stat(self, id: str) -> ArtifactInfo:
        info = self._infos.get(artifact_id(id))
        if info is None:
            raise not_found(id)
        return info

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> MemoryArtifacts:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
