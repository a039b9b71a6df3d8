"""Bounded reads of one whole version of an object.

A `Snapshot` holds its base as one buffer, which for a large object means
mapping or loading all of it. An `ObjectView` gives the base as a `Blob`
instead: bytes read on demand, by offset, in chunks the caller chooses. With
disk storage that is `pread` on a file descriptor opened under the key's
lock, so a concurrent replace (a rename) cannot tear a read: the view keeps
reading the version it opened.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import pyarrow as pa

from flame_cache.store.cells import Cell
from flame_cache.store.objects import Kind, ObjectInfo, ReadMode, RowKind, Snapshot

_EMPTY = pa.py_buffer(b"")


class Blob(Protocol):
    """Bytes that are read by range rather than held."""

    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class BufferBlob:
    """A blob over a buffer already in memory (storage `none`, compressed files)."""

    def __init__(self, buffer: pa.Buffer) -> None:
        self._buffer = buffer
        self.size = buffer.size

    def read(self, offset: int, length: int) -> bytes:
        return self._buffer.slice(offset, max(0, min(length, self.size - offset))).to_pybytes()

    def close(self) -> None:
        pass


class FileBlob:
    """The base's cells in an open file, read with `pread`; owns the file."""

    def __init__(self, file: BinaryIO, cells: tuple[Cell, ...]) -> None:
        self._file = file
        self._cells = cells
        self._starts: list[int] = []
        total = 0
        for cell in cells:
            self._starts.append(total)
            total += cell.size
        self.size = total

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        parts: list[bytes] = []
        index = bisect.bisect_right(self._starts, offset) - 1
        while offset < end and 0 <= index < len(self._cells):
            cell, cell_start = self._cells[index], self._starts[index]
            within = offset - cell_start
            take = min(cell.size - within, end - offset)
            part = os.pread(self._file.fileno(), take, cell.offset + within)
            if len(part) != take:
                raise OSError(f"{self._file.name}: the file ended early (truncated?)")
            parts.append(part)
            offset += take
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class ViewRow:
    """A row to send: a `base` row's bytes are the whole `ObjectView.base`."""

    version: int
    kind: RowKind
    data: pa.Buffer | None  # None: the base blob


@dataclass(frozen=True)
class ObjectView:
    """One whole version of an object, its base readable in bounded chunks.

    `snapshot` is set when the object was read the ordinary way (memory-only
    storage, native tables, compressed files); protocol code then sends it
    exactly as Flight does. Close the view (or use `with`) to release the file.
    """

    info: ObjectInfo
    base_version: int
    base: Blob | None  # None for a native table
    deltas: tuple[pa.Buffer, ...]
    snapshot: Snapshot | None = None

    @classmethod
    def of_snapshot(cls, snapshot: Snapshot) -> ObjectView:
        base = None if snapshot.kind is Kind.TABLE else BufferBlob(snapshot.base)
        return cls(snapshot.info(), snapshot.base_version, base, snapshot.deltas, snapshot)

    def rows(self, client_version: int) -> tuple[ReadMode, tuple[ViewRow, ...]]:
        """What a client holding `client_version` is sent (the rules of `Snapshot.read`)."""
        info = self.info
        shape = self.snapshot or Snapshot(info.key, info.version, self.base_version, _EMPTY, self.deltas, info.updated)
        read = shape.read(client_version)
        if shape.kind is Kind.TABLE:
            return read.mode, ()
        rows = tuple(ViewRow(r.version, r.kind, None if r.kind is RowKind.BASE else r.data) for r in read.rows)
        return read.mode, rows

    def close(self) -> None:
        if self.base is not None:
            self.base.close()

    def __enter__(self) -> ObjectView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
