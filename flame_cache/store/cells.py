"""Where an opaque IPC file keeps its cells, found without reading the data.

A large base must be streamed (HTTP downloads, Range requests) without
mapping or loading the whole file:
the pages of a memory map count towards the process's RSS once touched. So
the file is memory-mapped only to let pyarrow parse its metadata; the data
buffers it hands back are never read, their addresses only turned into file
offsets, and the bytes are then read with `pread` in bounded chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flame_cache.store.objects import cells_as_buffers, is_opaque_schema

VERSION_CELL_BYTES = 8  # uint64


@dataclass(frozen=True, slots=True)
class Cell:
    """`size` bytes at file offset `offset`."""

    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class FileCells:
    """The cells of an opaque file: its base is the `data` cells joined in order.

    `version` follows `disk.read_file`: the first non-zero version of a
    batch's first row, 0 if the file carries none.
    """

    version: int
    data: tuple[Cell, ...]

    @property
    def size(self) -> int:
        return sum(cell.size for cell in self.data)


def locate_cells(path: Path | str) -> FileCells | None:
    """The cells of the opaque IPC file at `path`.

    None when the bytes do not lie in the file as they are read (a native
    table, compressed buffers): such objects are read through the store's
    ordinary load. A damaged file raises pyarrow's ArrowInvalid.
    """
    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_file(source)
        if not is_opaque_schema(reader.schema):
            return None
        source.seek(0)
        start = source.read_buffer(1).address  # zero-copy slice: the address of file offset 0
        end = start + source.size()
        version = 0
        data: list[Cell] = []
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            if batch.num_rows == 0:
                continue
            versions = batch.column(0)
            if not version:
                version = versions[0].as_py() or 0
            version_buffer = versions.buffers()[1]
            first = version_buffer.address + versions.offset * VERSION_CELL_BYTES
            if not (start <= first and first + batch.num_rows * VERSION_CELL_BYTES <= end):
                return None
            for buffer in cells_as_buffers(batch.column(1)):
                if buffer.size == 0:
                    continue
                if not (start <= buffer.address and buffer.address + buffer.size <= end):
                    return None
                data.append(Cell(buffer.address - start, buffer.size))
        return FileCells(version, tuple(data))
    finally:
        source.close()
