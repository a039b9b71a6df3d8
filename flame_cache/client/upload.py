"""A write over Flight: DoPut of the opaque schema, one chunk a row (SPEC 4.1).

Every upload declares its size (flight/receive.py), so that one cut short
stores nothing: where it is known in advance, `{"size": N}` in the first
batch's app_metadata; where it is not (a pipe, an iterator),
`{"size": "trailer"}` there and `{"size": N}` in a last message of its own,
which a failed upload never sends. pyarrow ends a call normally when its
writer is closed, even after a failure, so without the declaration the
server would store what had arrived.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.client.errors import ClientError
from flame_cache.client.models import ObjectRef
from flame_cache.client.sources import Chunks
from flame_cache.store.objects import binary_cell

OPAQUE_SCHEMA = pa.schema([pa.field("version", pa.uint64()), pa.field("data", pa.binary())])
Progress = Callable[[int], None]  # told the bytes just moved
TRAILER = "trailer"  # flight/receive.py: the size comes in a last message
_VERSION_CELL = pa.array([0], pa.uint64())  # ignored by the server, which assigns versions


def send(
    client: flight.FlightClient,
    options: flight.FlightCallOptions,
    target: str,
    chunks: Chunks,
    progress: Progress | None = None,
) -> ObjectRef:
    """Upload `chunks` to `target` (a key or namespace) and return the
    server's ObjectRef. pyarrow's errors propagate (the caller translates
    them); ClientError if the server answered without a PutResult."""
    writer, reader = client.do_put(flight.FlightDescriptor.for_path(target), OPAQUE_SCHEMA, options)
    try:
        sent = _write_all(writer, chunks, progress)
        if chunks.size is None:
            writer.write_metadata(_declaration(sent))
        writer.done_writing()
        result = reader.read()
    except BaseException:
        with contextlib.suppress(Exception):  # the server refuses what fell short of its declaration
            writer.close()
        raise
    writer.close()
    if result is None:
        raise ClientError(target, "the server acknowledged no write (no PutResult)")
    return ObjectRef.from_put_result(result.to_pybytes())


def _write_all(writer: flight.FlightStreamWriter, chunks: Chunks, progress: Progress | None) -> int:
    """Send every chunk, the first with the declaration; the bytes sent."""
    declaration: pa.Buffer | None = _declaration(TRAILER if chunks.size is None else chunks.size)
    sent = 0
    for piece in chunks.pieces:
        _write(writer, piece, declaration)
        declaration, sent = None, sent + piece.size
        if progress is not None:
            progress(piece.size)
    if declaration is not None:  # an empty object: one empty row
        _write(writer, pa.py_buffer(b""), declaration)
    return sent


def _declaration(size: int | str) -> pa.Buffer:
    return pa.py_buffer(json.dumps({"size": size}).encode())


def _write(writer: flight.FlightStreamWriter, piece: pa.Buffer, declaration: pa.Buffer | None) -> None:
    batch = pa.RecordBatch.from_arrays([_VERSION_CELL, binary_cell(piece, large=False)], schema=OPAQUE_SCHEMA)
    if declaration is None:
        writer.write_batch(batch)
    else:
        writer.write_with_metadata(batch, declaration)
