"""Request bodies: which kind they are, and how their chunks reach the store.

The store is synchronous and a body arrives on the event loop, so a write
runs in a worker thread that pulls the body one piece at a time from the
loop: neither side ever holds more than a piece (about 1 MiB).

- `application/octet-stream` (or no Content-Type): the bytes are the object.
- `application/vnd.apache.arrow.stream`: an Arrow IPC stream, meaning what
  DoPut's payload means (`payload_from_table`): the opaque schema's `data`
  cells joined in order, read batch by batch; any other schema is a native
  table, kept whole as Flight keeps it.
- Anything else: 415.
"""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.to_thread
import pyarrow as pa
from fastapi import Request

from flame_cache.http.errors import HttpError
from flame_cache.store import InvalidArgument
from flame_cache.store.limits import WriteLimits
from flame_cache.store.objects import cells_as_buffers, is_opaque_schema
from flame_cache.store.streams import payload_from_table
from flame_cache.store.uploads import SizeCheck

RAW = "application/octet-stream"
ARROW = "application/vnd.apache.arrow.stream"
PIECE_BYTES = 1024 * 1024
T = TypeVar("T")
# What pyarrow raises for a bad stream: ArrowInvalid, or OSError (ArrowIOError)
# for one cut short or garbled ("expected to read N bytes"). The body is read
# from memory, so an OSError here is about its bytes, never the disk.
_BAD_STREAM = (pa.ArrowInvalid, OSError)

# For the OpenAPI document of PUT, POST and PATCH.
UPLOAD_BODY = {
    "requestBody": {
        "required": False,  # an empty body is an empty object
        "description": (
            f"`{RAW}`: the object's bytes (a missing Content-Type means this too). "
            f"`{ARROW}`: an Arrow IPC stream with DoPut's meaning: schema `version: uint64, data: binary` "
            "is opaque bytes (the data cells joined); any other schema is stored as a native table."
        ),
        "content": {
            RAW: {"schema": {"type": "string", "format": "binary"}},
            ARROW: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def body_kind(request: Request, limits: WriteLimits, target: str, what: str = "") -> tuple[str, SizeCheck]:
    """RAW or ARROW for the request's Content-Type; 415 otherwise, and 413
    at once when Content-Length already says the body is too large. Also the
    same rule for the bytes as they arrive (`with_body`): an Arrow table is
    read whole before the store sees it, so the store's own check comes late."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("", RAW, ARROW):
        raise HttpError(415, "unsupported_media_type", f"Content-Type {media!r} is not accepted; send {RAW} or {ARROW}")
    check = functools.partial(limits.check_size, target, what=what)
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        check(int(declared))
    return ARROW if media == ARROW else RAW, check


async def with_body(request: Request, work: Callable[[Iterator[bytes]], T], check: SizeCheck) -> T:
    """Run `work(chunks)` in a worker thread, `chunks` being the request body;
    `check` sees the bytes received so far (413 as soon as they pass the limit)."""
    pieces = _pieces(request.stream())

    async def next_piece() -> bytes | None:
        return await anext(pieces, None)

    def chunks() -> Iterator[bytes]:
        received = 0
        while (piece := anyio.from_thread.run(next_piece)) is not None:
            received += len(piece)
            check(received)
            yield piece

    return await anyio.to_thread.run_sync(lambda: work(chunks()))


async def _pieces(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body in pieces of about PIECE_BYTES (fewer thread hand-overs)."""
    pending: list[bytes] = []
    size = 0
    async for chunk in stream:
        if chunk:
            pending.append(chunk)
            size += len(chunk)
        if size >= PIECE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def upload_payload(kind: str, chunks: Iterator[bytes]) -> Iterator[bytes] | pa.Table:
    """What the store writes: byte chunks, or a native table."""
    if kind == RAW:
        return chunks
    reader = _open_arrow(chunks)
    if not is_opaque_schema(reader.schema):
        try:
            return payload_from_table(reader.read_all())
        except _BAD_STREAM as exc:
            raise InvalidArgument(f"the body is not a valid Arrow IPC stream: {exc}") from None
    return _opaque_cells(reader)


def delta_payload(kind: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A patch body: raw bytes, or an opaque Arrow stream (never a table:
    refused from its schema, before its batches are read)."""
    if kind == RAW:
        return chunks
    reader = _open_arrow(chunks)
    if not is_opaque_schema(reader.schema):
        raise InvalidArgument(
            f"a patch must use the opaque schema 'version: uint64, data: binary'; got {reader.schema}"
        )
    return _opaque_cells(reader)


def _open_arrow(chunks: Iterator[bytes]) -> pa.ipc.RecordBatchStreamReader:
    try:
        return pa.ipc.open_stream(io.BufferedReader(_ChunkReader(chunks), PIECE_BYTES))
    except _BAD_STREAM as exc:
        raise InvalidArgument(f"the body is not an Arrow IPC stream: {exc}") from None


def _opaque_cells(reader: pa.ipc.RecordBatchStreamReader) -> Iterator[bytes]:
    """The data cells, batch by batch (version cells are ignored: the server assigns versions)."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except _BAD_STREAM as exc:
            raise InvalidArgument(f"the body is not a valid Arrow IPC stream: {exc}") from None
        yield from cells_as_buffers(batch.column(1))


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for pyarrow's reader)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[override]
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._current = memoryview(chunk)
        size = min(len(target), len(self._current))
        target[:size] = self._current[:size]
        self._current = self._current[size:]
        return size
