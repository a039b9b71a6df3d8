"""Response bodies that stream an object in bounded chunks.

Raw bytes are read from the view's base blob a chunk at a time. The Arrow
stream carries exactly the rows DoGet sends (`store.streams.read_stream`),
serialised by pyarrow's IPC writer into a sink that keeps the buffers it is
handed by reference. A base cell of more than INLINE_BYTES is not read into
memory to build its batch: the batch gets a stand-in buffer of the same size
(`store.splice`), and when the writer hands that
buffer to the sink, the sink splices in the base's real bytes, read from the
file chunk by chunk. So the compatible form, one base cell of any size, is
sent without holding the base, and is byte for byte what pyarrow would write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from flame_cache.store import ReadMode, RowKind
from flame_cache.store.objects import binary_cell
from flame_cache.store.splice import Splice
from flame_cache.store.streams import LARGE_CELL, read_stream, response_schema, row_groups, rows_batch
from flame_cache.store.views import Blob, ObjectView, ViewRow

CHUNK_BYTES = 1024 * 1024  # what one response body message carries
INLINE_BYTES = 4 * 1024 * 1024  # base cells up to this are read, larger ones spliced
KEEP_BYTES = 64 * 1024  # buffers the sink keeps by reference rather than copying
SPLIT_BYTES = 4 * 1024 * 1024  # the chunked form's base rows (as Flight's `chunked:` ticket)


def raw_chunks(blob: Blob, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of the blob; closes it when done or abandoned."""
    try:
        for offset in range(start, end, CHUNK_BYTES):
            yield blob.read(offset, min(CHUNK_BYTES, end - offset))
    finally:
        blob.close()


def arrow_chunks(view: ObjectView, client_version: int, *, chunked: bool) -> tuple[ReadMode, Iterator[bytes]]:
    """The read mode and the IPC stream answering `client_version` (as a
    DoGet ticket `<key>:<client_version>`, or `chunked:<key>:...`)."""
    if view.snapshot is not None:  # read the ordinary way: send exactly what DoGet sends
        read = view.snapshot.read(client_version)
        schema, batches = read_stream(read, chunk_size=SPLIT_BYTES if chunked else None)
        return read.mode, _serialise(schema, ((batch, None) for batch in batches), view)
    mode, rows = view.rows(client_version)
    assert view.base is not None
    sizes = [size for row in rows for _, size in _cells(row, view.base.size, chunked)]
    schema = response_schema(large=any(size > LARGE_CELL for size in sizes))
    return mode, _serialise(schema, _batches(schema, view.base, rows, chunked), view)


@dataclass(frozen=True, slots=True)
class _Splice:
    """A stand-in buffer -> the base bytes it stands for."""

    blob: Blob
    offset: int
    mark: Splice  # the stand-in, and the check that pyarrow passed it on whole

    @property
    def size(self) -> int:
        return self.mark.size


def _cells(row: ViewRow, base_size: int, chunked: bool) -> Iterator[tuple[int, int]]:
    """(offset, size) of the cells a row is sent as: the base split into
    SPLIT_BYTES rows in the chunked form, any other row whole."""
    if row.data is not None:
        yield 0, row.data.size
    elif not chunked or base_size <= SPLIT_BYTES:
        yield 0, base_size
    else:
        for offset in range(0, base_size, SPLIT_BYTES):
            yield offset, min(SPLIT_BYTES, base_size - offset)


def _batches(
    schema: pa.Schema, base: Blob, rows: tuple[ViewRow, ...], chunked: bool
) -> Iterator[tuple[pa.RecordBatch, _Splice | None]]:
    """The batches DoGet sends for these rows (`row_groups`)."""
    large = pa.types.is_large_binary(schema.field("data").type)
    for group in row_groups(rows):
        if group[0].kind is RowKind.PATCH:
            yield rows_batch(schema, group, large), None
            continue
        for offset, size in _cells(group[0], base.size, chunked):
            yield _base_batch(schema, base, group[0].version, offset, size, large)


def _base_batch(
    schema: pa.Schema, base: Blob, version: int, offset: int, size: int, large: bool
) -> tuple[pa.RecordBatch, _Splice | None]:
    splice = None
    if size <= INLINE_BYTES:
        data = pa.py_buffer(base.read(offset, size))
    else:
        splice = _Splice(base, offset, Splice(size))
        data = splice.mark.buffer
    batch = pa.record_batch(
        [pa.array([version], pa.uint64()), pa.array([RowKind.BASE.value], pa.utf8()), binary_cell(data, large=large)],
        schema=schema,
    )
    return batch, splice


class _Sink:
    """A file for pyarrow's writer that keeps what it is given, by reference."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[pa.Buffer | bytes | _Splice] = []
        self.splice: _Splice | None = None

    def write(self, data) -> int:  # noqa: ANN001 (bytes or pa.Buffer)
        splice = self.splice
        if splice is not None and splice.mark.matches(data):
            self.parts.append(splice)
            return splice.size
        if isinstance(data, pa.Buffer) and data.size >= KEEP_BYTES:
            self.parts.append(data)  # an array's buffer: immutable, kept alive by the reference
        else:
            self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def drain(self) -> Iterator[bytes]:
        parts, self.parts = self.parts, []
        for part in parts:
            if isinstance(part, _Splice):
                for offset in range(part.offset, part.offset + part.size, CHUNK_BYTES):
                    yield part.blob.read(offset, min(CHUNK_BYTES, part.offset + part.size - offset))
            elif isinstance(part, pa.Buffer):
                for offset in range(0, part.size, CHUNK_BYTES):
                    yield part.slice(offset, min(CHUNK_BYTES, part.size - offset)).to_pybytes()
            elif part:
                yield part


def _serialise(
    schema: pa.Schema, batches: Iterator[tuple[pa.RecordBatch, _Splice | None]], view: ObjectView
) -> Iterator[bytes]:
    """The IPC stream of `batches`, produced lazily, one batch at a time."""
    sink = _Sink()
    try:
        with pa.ipc.new_stream(sink, schema) as writer:
            for batch, splice in batches:
                sink.splice = splice
                writer.write_batch(batch)
                if splice is not None:
                    splice.mark.check_used()
                sink.splice = None
                yield from _merge(sink.drain())
        yield from _merge(sink.drain())
    finally:
        view.close()


def _merge(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Small writes (metadata, padding) joined, so messages are not tiny."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= CHUNK_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
