"""Objects as the store holds them, and the version rules of a read.

An object is either *opaque* (a base byte string plus ordered deltas) or a
*native* Arrow table. A `Snapshot` is one whole version of an object: it is
immutable, so a reader holding one can never see a torn write. Its base is a
`Blob` wherever the bytes are (memory, a map, a file), and `Snapshot.read`
holds the rules of SPEC 4.2 (full, patches only, not modified), once, for
both protocols.
"""

from __future__ import annotations

import itertools
import struct
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import pyarrow as pa

from flame_cache.store.blobs import Blob, BufferBlob, join_buffers

FORMAT_KEY = b"flame.cache.format"
VERSION_KEY = b"flame.cache.version"
FORMAT_TABLE = b"arrow-table-v1"

OPAQUE_FIELDS = ("version", "data")
MAX_VERSION = 2**64 - 1  # versions are uint64 cells
_BINARY, _LARGE_BINARY, _UINT64 = pa.binary(), pa.large_binary(), pa.uint64()
_OPAQUE_NAMES = list(OPAQUE_FIELDS)
# flamepy's two upload schemas as it sends them (nullable fields): one C++ comparison recognises them
_USUAL_OPAQUE = tuple(pa.schema([("version", _UINT64), ("data", data)]) for data in (_BINARY, _LARGE_BINARY))


class Kind(str, Enum):
    OPAQUE = "opaque"
    TABLE = "table"


def is_opaque_schema(schema: pa.Schema) -> bool:
    """True for flamepy's `version: uint64, data: binary` upload schema.

    A schema that says `flame.cache.format = arrow-table-v1`, or any other
    shape, is a native table and is kept as sent.
    """
    usual = schema.equals(_USUAL_OPAQUE[0]) or schema.equals(_USUAL_OPAQUE[1])  # metadata aside
    if not usual and (len(schema) != 2 or schema.names != _OPAQUE_NAMES):
        return False
    metadata = schema.metadata
    if metadata and metadata.get(FORMAT_KEY) == FORMAT_TABLE:
        return False
    if usual:
        return True
    version, data = schema.types  # the same shape with other nullability or field metadata
    return version == _UINT64 and (data == _BINARY or data == _LARGE_BINARY)


def stamp_table(table: pa.Table, version: int) -> pa.Table:
    """The table with `flame.cache.format` and `.version` set; other metadata kept."""
    metadata = dict(table.schema.metadata or {})
    metadata[FORMAT_KEY] = FORMAT_TABLE
    metadata[VERSION_KEY] = str(version).encode()
    return table.replace_schema_metadata(metadata)


def cells_as_buffers(column: pa.Array) -> list[pa.Buffer]:
    """The bytes of a binary column, as zero-copy slices of its data buffer.

    Without nulls the cells are contiguous, so one slice covers the column;
    null cells add nothing.
    """
    if len(column) == 0:
        return []
    _, offsets_buffer, data = column.buffers()
    if data is None:
        return []
    if column.null_count == 0:
        offsets = _offsets(column, offsets_buffer)
        return [data.slice(offsets[0], offsets[-1] - offsets[0])]
    return [cell for cell in cell_slices(column) if cell is not None]


def cell_slices(column: pa.Array) -> list[pa.Buffer | None]:
    """Each cell of a binary column as a zero-copy slice of its data buffer
    (None for a null). Indexing the array instead (`column[i].as_buffer()`)
    copies each cell into a scalar first: a third of a client's 64 MiB get."""
    if len(column) == 0:
        return []
    _, offsets_buffer, data = column.buffers()
    data = data or pa.py_buffer(b"")  # no data buffer: every cell empty
    offsets = _offsets(column, offsets_buffer)
    valid = column.is_valid().to_pylist() if column.null_count else None
    return [
        data.slice(offsets[i], offsets[i + 1] - offsets[i]) if valid is None or valid[i] else None
        for i in range(len(column))
    ]


def _offsets(column: pa.Array, offsets_buffer: pa.Buffer) -> memoryview:
    """A binary column's offsets (`offsets_buffer`, its second buffer), read
    in place (little-endian, as Arrow writes them here): no Python list of them."""
    large = column.type == pa.large_binary()
    width = 8 if large else 4
    end = column.offset + len(column) + 1
    return memoryview(offsets_buffer)[column.offset * width : end * width].cast("q" if large else "i")


def binary_cell(data: pa.Buffer, *, large: bool | None = None) -> pa.Array:
    """A one-element binary array over `data`, without copying it."""
    if large is None:
        large = data.size >= 2**31
    offsets = pa.py_buffer(struct.pack("<qq" if large else "<ii", 0, data.size))
    return pa.Array.from_buffers(_LARGE_BINARY if large else _BINARY, 1, [None, offsets, data])


def binary_cells(cells: list[pa.Buffer], *, large: bool) -> pa.Array:
    """A binary array of several cells, their bytes copied once into one buffer."""
    offsets = [0, *itertools.accumulate(cell.size for cell in cells)]
    offset_type = pa.int64() if large else pa.int32()
    buffers = [None, pa.array(offsets, type=offset_type).buffers()[1], join_buffers(cells)]
    return pa.Array.from_buffers(pa.large_binary() if large else pa.binary(), len(cells), buffers)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One whole version of an object.

    Opaque: `base` is a blob and `deltas` hold the patches, whose versions
    are always `base_version + 1 ... version`. Native: `base` is a table.
    """

    key: str
    version: int
    base_version: int
    base: Blob | pa.Table
    deltas: tuple[Blob, ...] = ()
    updated: float = field(default_factory=time.time)
    # Where the storage puts the next delta: its delta files are numbered from
    # 0, and after a crash files older than the base may hold lower numbers.
    next_delta_file: int = 0
    # Answers to reads, made once by the protocols (Flight's tables, wire.read_table;
    # HTTP's response heads): the snapshot never changes, so neither do they.
    responses: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def kind(self) -> Kind:
        return Kind.TABLE if isinstance(self.base, pa.Table) else Kind.OPAQUE

    @property
    def size(self) -> int:
        base = self.base.nbytes if isinstance(self.base, pa.Table) else self.base.size
        return base + sum(d.size for d in self.deltas)

    def info(self) -> ObjectInfo:
        return ObjectInfo(self.key, self.version, len(self.deltas), self.size, self.kind, self.updated)

    def with_delta(self, delta: pa.Buffer, updated: float) -> Snapshot:
        """The next version, with `delta` appended (opaque objects only)."""
        return replace(
            self,
            version=self.version + 1,
            deltas=(*self.deltas, BufferBlob(delta)),
            updated=updated,
            next_delta_file=self.next_delta_file + 1,
        )

    def read(self, client_version: int) -> Read:
        """What a client that holds `client_version` must be sent (SPEC 4.2)."""
        if client_version and client_version == self.version:
            return Read(ReadMode.NOT_MODIFIED, self, ())
        if self.kind is Kind.TABLE:
            return Read(ReadMode.FULL, self, ())
        if 0 < client_version and self.base_version <= client_version < self.version:
            start = client_version - self.base_version
            return Read(ReadMode.PATCHES, self, self._patch_rows(start))
        base = Row(self.base_version, RowKind.BASE, self.base)
        return Read(ReadMode.FULL, self, (base, *self._patch_rows(0)))

    def _patch_rows(self, start: int) -> tuple[Row, ...]:
        return tuple(
            Row(self.base_version + 1 + i, RowKind.PATCH, self.deltas[i]) for i in range(start, len(self.deltas))
        )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What listings, FlightInfo and HEAD report about an object."""

    key: str
    version: int
    deltas: int
    size: int
    kind: Kind
    updated: float


class ReadMode(str, Enum):
    NOT_MODIFIED = "not-modified"
    PATCHES = "patches"
    FULL = "full"


class RowKind(str, Enum):
    BASE = "base"
    PATCH = "patch"


@dataclass(frozen=True, slots=True)
class Row:
    version: int
    kind: RowKind
    data: Blob


@dataclass(frozen=True, slots=True)
class Read:
    """The answer to a read: for opaque objects the rows to send, in order."""

    mode: ReadMode
    snapshot: Snapshot
    rows: tuple[Row, ...]

    @property
    def data_bytes(self) -> int:
        """The bytes of the rows' cells: what an opaque read sends, framing aside."""
        return sum(row.data.size for row in self.rows)
