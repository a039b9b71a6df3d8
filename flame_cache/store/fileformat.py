"""The Arrow IPC file format of a stored base or delta: written once, parsed once.

An opaque file holds rows `version: uint64, data: binary` (`large_binary`
from 2 GiB). We write one row, so the object's bytes are one cell that a get
maps without a copy; files with several rows (upstream's, or flamepy's local
storage mode) are read too, their cells joined in order. A native table keeps
its own schema, with its version in `flame.cache.version`. An opaque file
we write carries the crc32c of its data in its schema metadata
(`checksum.METADATA_KEY`); native tables carry none (their IPC structure is
all that is checked).

Parsing memory-maps the file only for pyarrow to read the metadata: the data
buffers it hands back are turned into file offsets (cells), so a large base
is never touched here, except to check its checksum: `read_stored` reads the
data once to compare it with the checksum the file carries (with `verify`),
a large base by `pread` in bounded pieces, never mapped whole. Guarantee:
`read_stored` either returns the whole, checked structure of a file (and
with `verify` its data as it was written) or raises (pyarrow's ArrowInvalid,
OSError, or checksum.ChecksumMismatch), and never changes the file.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import pyarrow as pa

from flame_cache.store import checksum
from flame_cache.store.blobs import IN_MEMORY_BYTES, Blob, BufferBlob, Cell, FileBlob, Pace, join_buffers
from flame_cache.store.objects import VERSION_KEY, binary_cell, cells_as_buffers, is_opaque_schema
from flame_cache.store.splice import FramingFile

ARROW_MAGIC = b"ARROW1"
_VERSION_CELL_BYTES = 8  # uint64


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What one file holds. `version` 0: the file carries none (upstream's)."""

    version: int
    data: Blob | pa.Table
    modified: float  # the file's mtime


# -- writing --------------------------------------------------------------


def write_opaque(sink: pa.NativeFile | FramingFile, version: int, data: pa.Buffer, crc: int) -> None:
    """A one-row opaque file of `data` (whose crc32c is `crc`) at `version`."""
    cell = binary_cell(data)
    schema = _opaque_schema(cell.type).with_metadata({checksum.METADATA_KEY: checksum.to_metadata(crc)})
    batch = pa.record_batch([pa.array([version], pa.uint64()), cell], schema=schema)
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)


@functools.cache
def _opaque_schema(data_type: pa.DataType) -> pa.Schema:
    return pa.schema([("version", pa.uint64()), ("data", data_type)])


# -- reading --------------------------------------------------------------


def read_stored(path: str, *, verify: bool = True) -> StoredFile:
    """Parse the file at `path`: its version and its data, a table or a blob
    (left in the file when large and uncompressed, else in memory or mapped),
    the blob's `crc32c` the checksum the file carries. With `verify` the data
    is read once and compared with it. FileNotFoundError if it is gone;
    ArrowInvalid, OSError or ChecksumMismatch if damaged."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        stored = _parse(fd, path)
    except BaseException:
        os.close(fd)
        raise
    if not isinstance(stored.data, FileBlob):
        os.close(fd)  # a FileBlob owns it now
    if verify:
        verify_blob(stored.data, path)
    return stored


def _parse(fd: int, path: str) -> StoredFile:
    modified = os.fstat(fd).st_mtime
    source = pa.memory_map(f"/proc/self/fd/{fd}")  # the very file opened
    try:
        reader = pa.ipc.open_file(source)
        schema = reader.schema
        if not is_opaque_schema(schema):
            return StoredFile(_metadata_version(schema), reader.read_all(), modified)
        crc = checksum.from_metadata(schema.metadata)
        version, cells = _locate(source, reader)
        if cells is not None and sum(c.size for c in cells) > IN_MEMORY_BYTES:
            return StoredFile(version, FileBlob(fd, cells, path, crc), modified)
        buffers = [buf for i in range(reader.num_record_batches) for buf in _data_cells(reader.get_batch(i))]
        return StoredFile(version, BufferBlob(join_buffers(buffers), crc), modified)
    finally:
        source.close()  # buffers read from it keep the mapping alive


def verify_blob(data: Blob | pa.Table, name: str, pace: Pace | None = None) -> int:
    """Compare a stored blob's bytes with the checksum its file carries
    (ChecksumMismatch if they differ); the bytes read (0: nothing to check,
    a native table or a file without a checksum). `pace` bounds the rate."""
    if not isinstance(data, Blob) or data.crc32c is None:
        return 0
    actual = data.checksum(pace)
    if actual != data.crc32c:
        raise checksum.mismatch(name, data.crc32c, actual)
    return data.size


def _locate(source: pa.MemoryMappedFile, reader: pa.ipc.RecordBatchFileReader) -> tuple[int, tuple[Cell, ...] | None]:
    """The file's version (the first non-zero one of a batch's first row) and
    the file offsets of its data cells; cells None where the bytes do not lie
    in the file as they are read (compressed buffers)."""
    source.seek(0)
    start = source.read_buffer(1).address  # zero-copy slice: the address of file offset 0
    end = start + source.size()
    version, cells, inside = 0, [], True
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        if batch.num_rows == 0:
            continue
        versions = batch.column(0)
        if not version:
            version = versions[0].as_py() or 0
        first = versions.buffers()[1].address + versions.offset * _VERSION_CELL_BYTES
        inside = inside and start <= first and first + batch.num_rows * _VERSION_CELL_BYTES <= end
        for buffer in _data_cells(batch):
            inside = inside and start <= buffer.address and buffer.address + buffer.size <= end
            cells.append(Cell(buffer.address - start, buffer.size))
    return version, tuple(cells) if inside else None


def _data_cells(batch: pa.RecordBatch) -> list[pa.Buffer]:
    return [buffer for buffer in cells_as_buffers(batch.column(1)) if buffer.size]


def _metadata_version(schema: pa.Schema) -> int:
    raw = (schema.metadata or {}).get(VERSION_KEY, b"0")
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def framing_problem(path: str) -> str | None:
    """None if `path` starts and ends like an Arrow IPC file; else what is wrong
    (judged by the magic bytes at both ends, without reading data). A missing
    file is no problem here: it was replaced or deleted meanwhile."""
    try:
        with open(path, "rb", buffering=0) as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                return "is empty"
            magic = len(ARROW_MAGIC)
            if size < 2 * magic + 4 or os.pread(file.fileno(), magic, 0) != ARROW_MAGIC:
                return f"is not an Arrow IPC file ({size} bytes)"
            if os.pread(file.fileno(), magic, size - magic) != ARROW_MAGIC:
                return f"is cut short ({size} bytes, no Arrow footer)"
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None
