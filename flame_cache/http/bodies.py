"""Request bodies: which kind they are, and how their chunks reach the store.

The store is synchronous and a body arrives on the event loop, so a write
runs in a worker thread that pulls the body one piece at a time from the
loop: neither side ever holds more than a piece (about 1 MiB). The store
counts the bytes as they come (413 as soon as they pass the limit). A short
body of a short write (`Store.short_write`: at most 1 MiB, no fsync) is read
whole and written on the loop itself: two thread hand-overs cost more.

- `application/octet-stream` (or no Content-Type): the bytes are the object.
- `application/vnd.apache.arrow.stream`: an Arrow IPC stream, meaning what
  DoPut's payload means (`store.wire.upload_body`).
- Anything else: 415.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.to_thread
import pyarrow as pa
from fastapi import Request

from flame_cache.http.errors import HttpError
from flame_cache.store import InvalidArgument
from flame_cache.store.limits import WriteLimits
from flame_cache.store.objects import is_opaque_schema
from flame_cache.store.wire import Pieces, ipc_stream, upload_body

RAW = "application/octet-stream"
ARROW = "application/vnd.apache.arrow.stream"
T = TypeVar("T")

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


def body_kind(request: Request, limits: WriteLimits, target: str, what: str = "") -> str:
    """RAW or ARROW for the request's Content-Type; 415 otherwise, and 413
    at once when Content-Length already says the body is too large."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("", RAW, ARROW):
        raise HttpError(415, "unsupported_media_type", f"Content-Type {media!r} is not accepted; send {RAW} or {ARROW}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        limits.check_size(target, int(declared), what=what)
    return ARROW if media == ARROW else RAW


async def with_body(request: Request, work: Callable[[Iterator[bytes]], T], short: Callable[[int], bool]) -> T:
    """Run `work(chunks)`, `chunks` being the request body: on the event loop
    if its Content-Length is one that `short` accepts (the store's
    `short_write`: the body is read whole first, and the write is quicker
    than a hand-over to a thread and back), else in a worker thread."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and short(int(declared)):
        body = await request.body()
        return work(iter((body,) if body else ()))
    pieces = _pieces(request.stream())

    async def next_piece() -> bytes | None:
        return await anext(pieces, None)

    def chunks() -> Iterator[bytes]:
        while (piece := anyio.from_thread.run(next_piece)) is not None:
            yield piece

    return await anyio.to_thread.run_sync(lambda: work(chunks()))


async def _pieces(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body in pieces of about PIECE_BYTES (fewer thread hand-overs)."""
    pieces = Pieces()
    async for chunk in stream:
        if (piece := pieces.add(chunk)) is not None:
            yield piece
    if (piece := pieces.rest()) is not None:
        yield piece


def upload_payload(kind: str, chunks: Iterator[bytes], limits: WriteLimits, target: str) -> Iterator[bytes] | pa.Table:
    """What the store writes: byte chunks, or what an Arrow stream means."""
    if kind == RAW:
        return chunks
    schema, batches = ipc_stream(_bounded(chunks, limits, target))
    return upload_body(schema, batches, functools.partial(limits.check_upload, target))


def delta_payload(kind: str, chunks: Iterator[bytes], limits: WriteLimits, target: str) -> Iterator[bytes] | Iterator[pa.Buffer]:
    """A patch body: raw bytes, or an opaque Arrow stream (never a table:
    refused from its schema, before its batches are read)."""
    if kind == RAW:
        return chunks
    schema, batches = ipc_stream(_bounded(chunks, limits, target, " with this patch"))
    if not is_opaque_schema(schema):
        raise InvalidArgument(f"a patch must use the opaque schema 'version: uint64, data: binary'; got {schema}")
    return upload_body(schema, batches, lambda size: None)


def _bounded(chunks: Iterator[bytes], limits: WriteLimits, target: str, what: str = "") -> Iterator[bytes]:
    """An Arrow stream's bytes, refused as soon as they pass the maximum
    object size: pyarrow reads a whole batch before the store sees its
    cells, so the encoded stream (never smaller than its data) is bounded
    here as it arrives."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        limits.check_upload(target, received, what=what)
        yield chunk
