"""The wire format both protocols share: what an upload means, what a read sends.

Flight's DoPut/DoGet and the HTTP mirror's Arrow-stream routes carry exactly
the same batches, so they are decoded and made here, once:
- an upload (Flight's reader, or an IPC byte stream over HTTP) is a schema
  and record batches; `upload_body` turns them into what the store writes:
  an opaque upload's `data` cells as they arrive (its `version` cells are
  ignored: the server assigns versions), or any other schema as a native
  table, kept as sent;
- a read (`objects.Read`) goes out as `read_batches`: a base row alone in
  its batch, its cell straight from the blob's buffer, and consecutive
  patch rows sharing batches; Flight sends `read_table` (kept with its
  snapshot for the next reader), HTTP `ipc_chunks`, the same batches as an
  IPC stream in pieces, a large base's bytes read from its blob piece by
  piece rather than held;
- the chunked form (`chunked:` tickets, `?chunked=true`) also says, in its
  schema metadata (`flame.cache.crc32c`, as a stored file does), the
  checksum of the base it sends, so a client can check what it received;
  Flight sends it as `chunked_batches`, each base row read from the blob
  by range (a large base is never mapped whole).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa

from flame_cache.store.blobs import Blob, BufferBlob
from flame_cache.store.checksum import METADATA_KEY, to_metadata
from flame_cache.store.errors import InvalidArgument
from flame_cache.store.objects import (
    Kind,
    Read,
    ReadMode,
    Row,
    RowKind,
    binary_cell,
    binary_cells,
    cells_as_buffers,
    is_opaque_schema,
)
from flame_cache.store.splice import Splice

CHUNKED_TICKET = "chunked:"  # the ticket prefix of the chunked form (flight/requests.py)
CHUNK_BYTES = 4 * 1024 * 1024  # a chunked read's base rows; the patch bytes one batch shares; the largest cell built in memory
PIECE_BYTES = 1024 * 1024  # what one HTTP body message carries, either way
LARGE_CELL = 2**31 - 1  # past this a cell needs large_binary
KEPT_IPC_BYTES = 256 * 1024  # the longest answer `ipc_bytes` keeps with its snapshot
_KEEP_BYTES = 64 * 1024  # buffers the IPC sink keeps by reference rather than copying
_CACHED = {ReadMode.FULL: "full", ReadMode.PATCHES: "patches"}  # the reads kept in `Snapshot.responses`
# What pyarrow raises for a bad IPC stream: ArrowInvalid, or OSError (ArrowIOError) for one cut
# short or garbled. The stream is read from memory, so an OSError here is about its bytes.
_BAD_STREAM = (pa.ArrowInvalid, OSError)

T = TypeVar("T")
SizeCheck = Callable[[int], None]  # raises ObjectTooLarge for a size over the limit


# -- uploads --------------------------------------------------------------


def upload_body(schema: pa.Schema, batches: Iterable[pa.RecordBatch], check: SizeCheck) -> Iterator[pa.Buffer] | pa.Table:
    """An upload as the store takes it (SPEC 4.1): opaque rows as their data
    cells, in order, as they arrive (the store counts those); any other
    schema as a native table, its batches collected, `check` seeing the
    bytes received so far."""
    if is_opaque_schema(schema):
        return (cell for batch in batches for cell in cells_as_buffers(batch.column(1)) if cell.size)
    collected, received = [], 0
    for batch in batches:
        received += batch.nbytes
        check(received)
        collected.append(batch)
    return pa.Table.from_batches(collected, schema=schema)


def ipc_stream(chunks: Iterator[bytes]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and batches of an Arrow IPC stream arriving as byte chunks
    (an HTTP body); InvalidArgument, naming what is wrong, for a bad stream."""
    try:
        reader = pa.ipc.open_stream(io.BufferedReader(_ChunkReader(chunks), PIECE_BYTES))
    except _BAD_STREAM as exc:
        raise InvalidArgument(f"the body is not an Arrow IPC stream: {exc}") from None
    return reader.schema, _batches_of(reader)


def _batches_of(reader: pa.ipc.RecordBatchStreamReader) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except _BAD_STREAM as exc:
            raise InvalidArgument(f"the body is not a valid Arrow IPC stream: {exc}") from None


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


# -- reads ----------------------------------------------------------------


@functools.cache
def response_schema(*, large: bool = False) -> pa.Schema:
    """`version: uint64, kind: utf8, data: binary`, all non-null (SPEC 4.2)."""
    return pa.schema(
        [
            pa.field("version", pa.uint64(), nullable=False),
            pa.field("kind", pa.utf8(), nullable=False),
            pa.field("data", pa.large_binary() if large else pa.binary(), nullable=False),
        ]
    )


@dataclass(frozen=True, slots=True)
class _Part:
    """`size` bytes of `blob` from `offset`: one cell to send (a base may go
    as several in the chunked form)."""

    version: int
    kind: RowKind
    blob: Blob
    offset: int
    size: int


def read_batches(read: Read, *, chunked: bool, held: Callable[[_Part], pa.Buffer] | None = None):
    """(schema, batches) answering `read`. With `chunked`, a base over
    CHUNK_BYTES goes as several `base` rows of at most that. `held` gives a
    base cell's buffer (default: the blob's whole buffer, sliced)."""
    snapshot = read.snapshot
    if snapshot.kind is Kind.TABLE and read.mode is ReadMode.FULL:
        table = snapshot.base
        return table.schema, iter(table.to_batches())
    parts = [part for row in read.rows for part in _parts(row, chunked)]
    large = any(part.size > LARGE_CELL for part in parts)
    schema = response_schema(large=large)
    if chunked:
        schema = _with_base_checksum(schema, read)
    return schema, (_batch(schema, group, large, held or _whole) for group in _groups(parts))


def chunked_batches(read: Read) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """`read_batches` of the chunked form, made as they are sent: a base
    row's bytes are read from its blob by range (memory-mapped, a 3 GiB base
    would count 3 GiB towards the process as it went out), so a read holds
    about one row at a time, whatever the object's size."""
    return read_batches(read, chunked=True, held=_by_range)


def _by_range(part: _Part) -> pa.Buffer:
    if isinstance(part.blob, BufferBlob):
        return _whole(part)  # already in memory: a slice, no copy
    return pa.py_buffer(part.blob.read(part.offset, part.size))


def _with_base_checksum(schema: pa.Schema, read: Read) -> pa.Schema:
    """The schema with the base's crc32c in its metadata, for a read that
    sends the base and knows its checksum (upstream's files carry none)."""
    rows = read.rows
    if not rows or rows[0].kind is not RowKind.BASE or rows[0].data.crc32c is None:
        return schema
    return schema.with_metadata({METADATA_KEY: to_metadata(rows[0].data.crc32c)})


def read_table(read: Read) -> pa.Table:
    """`read_batches` of the compatible form as one table (Flight), kept
    with the snapshot (`_kept`); a patch-only table holds a copy of its deltas."""

    def made() -> pa.Table:
        schema, batches = read_batches(read, chunked=False)
        return pa.Table.from_batches(list(batches), schema=schema)

    return _kept(read, "table", made)


def ipc_bytes(read: Read, *, chunked: bool) -> bytes:
    """`ipc_chunks` joined (HTTP, for a read whose bytes are in memory), kept
    with the snapshot (`_kept`) if at most KEPT_IPC_BYTES: the copy is memory
    the eviction limits do not count, so only short answers are kept."""
    return _kept(
        read,
        "ipc chunked" if chunked else "ipc",
        lambda: b"".join(ipc_chunks(read, chunked=chunked)),
        keeps=lambda answer: len(answer) <= KEPT_IPC_BYTES,
    )


def _kept(read: Read, form: str, made: Callable[[], T], keeps: Callable[[T], bool] = lambda answer: True) -> T:
    """`made()`, or what it made for the same read of the snapshot before.
    A snapshot keeps, per form, its full read and its latest patch-only read
    (an object's clients mostly hold the same version), so repeated reads do
    no Python work per row; patch-only reads are told apart by their row
    count. `keeps` says whether an answer is worth keeping."""
    mode = _CACHED.get(read.mode)
    if mode is None:
        return made()
    slot = f"{form} {mode}"
    rows, kept = read.snapshot.responses.get(slot, (None, None))
    if rows == len(read.rows) and kept is not None:
        return kept
    answer = made()
    if keeps(answer):
        read.snapshot.responses[slot] = (len(read.rows), answer)
    return answer


def ipc_chunks(read: Read, *, chunked: bool) -> Iterator[bytes]:
    """`read_batches` as an Arrow IPC stream, in pieces of about PIECE_BYTES
    (HTTP). A base cell over CHUNK_BYTES is not held to build its batch: the
    batch gets a stand-in (`store.splice`) and the sink sends the blob's
    bytes in its place, read piece by piece, so one base cell of any size
    goes out byte for byte as pyarrow writes it, in bounded memory."""
    sink = _Sink()
    schema, batches = read_batches(read, chunked=chunked, held=sink.held)
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            sink.check_spliced()
            yield from _merge(sink.drain())
    yield from _merge(sink.drain())


def _parts(row: Row, chunked: bool) -> Iterator[_Part]:
    size = row.data.size
    step = CHUNK_BYTES if chunked and row.kind is RowKind.BASE and size > CHUNK_BYTES else max(size, 1)
    for offset in range(0, max(size, 1), step):
        yield _Part(row.version, row.kind, row.data, offset, min(step, size - offset))


def _groups(parts: Iterable[_Part]) -> Iterator[list[_Part]]:
    """Parts as they share batches: a base part alone, so its cell goes out
    straight from its buffer; consecutive patches together, up to
    CHUNK_BYTES of data, so a patch-only read of 100 small deltas is one
    message rather than 100."""
    group: list[_Part] = []
    size = 0
    for part in parts:
        if group and (part.kind is RowKind.BASE or size + part.size > CHUNK_BYTES):
            yield group
            group, size = [], 0
        if part.kind is RowKind.BASE:
            yield [part]
        else:
            group.append(part)
            size += part.size
    if group:
        yield group


def _whole(part: _Part) -> pa.Buffer:
    buffer = part.blob.buffer()
    return buffer if part.offset == 0 and part.size == buffer.size else buffer.slice(part.offset, part.size)


def _batch(schema: pa.Schema, parts: list[_Part], large: bool, held: Callable[[_Part], pa.Buffer]) -> pa.RecordBatch:
    """One batch of `parts`; a single part's cell is not copied."""
    if len(parts) == 1:
        data = binary_cell(held(parts[0]) if parts[0].kind is RowKind.BASE else _whole(parts[0]), large=large)
    else:
        data = binary_cells([_whole(part) for part in parts], large=large)
    return pa.record_batch(
        [pa.array([p.version for p in parts], pa.uint64()), pa.array([p.kind.value for p in parts], pa.utf8()), data],
        schema=schema,
    )


class _Sink:
    """A file for pyarrow's IPC writer that keeps what it is given, by
    reference, and sends a spliced base's bytes from its blob."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[pa.Buffer | bytes | tuple[Splice, _Part]] = []
        self._splice: tuple[Splice, _Part] | None = None

    def held(self, part: _Part) -> pa.Buffer:
        """A base part's buffer: its bytes if small, else a stand-in."""
        if part.size <= CHUNK_BYTES:
            return pa.py_buffer(part.blob.read(part.offset, part.size))
        self._splice = (Splice(part.size), part)
        return self._splice[0].buffer

    def check_spliced(self) -> None:
        if self._splice is not None:
            self._splice[0].check_used()
            self._splice = None

    def write(self, data) -> int:  # noqa: ANN001 (bytes or pa.Buffer)
        if self._splice is not None and self._splice[0].matches(data):
            self.parts.append(self._splice)
            return self._splice[0].size
        if isinstance(data, pa.Buffer) and data.size >= _KEEP_BYTES:
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
            if isinstance(part, tuple):
                _, spliced = part
                yield from blob_pieces(spliced.blob, spliced.offset, spliced.offset + spliced.size)
            elif isinstance(part, pa.Buffer):
                yield from blob_pieces(BufferBlob(part), 0, part.size)
            elif part:
                yield part


def blob_pieces(blob: Blob, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of a blob, PIECE_BYTES at a time (raw HTTP bodies, ranges)."""
    for offset in range(start, end, PIECE_BYTES):
        yield blob.read(offset, min(PIECE_BYTES, end - offset))


def _merge(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Small writes (metadata, padding) joined, so messages are not tiny."""
    pieces = Pieces()
    for chunk in chunks:
        if (piece := pieces.add(chunk)) is not None:
            yield piece
    if (piece := pieces.rest()) is not None:
        yield piece


class Pieces:
    """Joins chunks into pieces of at least PIECE_BYTES: what a body sends or
    receives at a time (few messages, few thread hand-overs)."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bytes | None:
        """The next whole piece, once the chunks added make one."""
        if chunk:
            self._pending.append(chunk)
            self._size += len(chunk)
        return self.rest() if self._size >= PIECE_BYTES else None

    def rest(self) -> bytes | None:
        """What is left (None if nothing)."""
        if not self._pending:
            return None
        piece = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._size = [], 0
        return piece
