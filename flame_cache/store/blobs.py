"""An opaque object's bytes, behind one interface, wherever they are.

A base is in memory (just written, storage `none`, a compressed or several-row
file joined on load), memory-mapped (a small file), or left in its file and
read by range (a large file): the pages of a memory map count towards the
process's memory once touched, so a large base that the HTTP mirror streams
is read with `pread` instead. Every reader asks the same two things of it:
the whole base as one buffer (Flight's compatible form sends it as ONE cell),
or `length` bytes from `offset` (bounded reads: HTTP, ranges, chunked rows).

A blob never changes: a file-backed one keeps the file it was opened on, so
a replace (a rename over it) cannot tear a read that holds it. `crc32c` is
the checksum of its bytes where known (written by us, or read from a file
that carries one: `checksum`); `checksum()` computes it afresh.
"""

from __future__ import annotations

import bisect
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from flame_cache.store.checksum import extend as crc_extend
from flame_cache.store.checksum import of as crc_of

# Memory or disk, decided once: a base up to this many bytes is held in memory
# (a body is collected as it arrives, a stored base is mapped when read); a
# larger one is written to its file as it arrives and read from it by range.
IN_MEMORY_BYTES = 4 * 1024 * 1024
CHECK_BYTES = 4 * 1024 * 1024  # what a checksum of a file-backed blob reads at a time

Pace = Callable[[int], None]  # told the bytes just read; sleeps to keep a rate


def join_buffers(chunks: list[pa.Buffer]) -> pa.Buffer:
    """One contiguous buffer from `chunks`: no copy for a single chunk, else one."""
    if len(chunks) == 1:
        return chunks[0]
    joined = pa.allocate_buffer(sum(c.size for c in chunks))
    view, offset = memoryview(joined), 0
    for chunk in chunks:
        view[offset : offset + chunk.size] = memoryview(chunk)
        offset += chunk.size
    return joined


class Blob:
    """Bytes of one version of an object (a base or a delta)."""

    size: int
    crc32c: int | None

    def buffer(self) -> pa.Buffer:
        """All the bytes as one buffer (mapped or joined; no copy where one cell)."""
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only at the end)."""
        raise NotImplementedError

    def to_pybytes(self) -> bytes:
        return self.read(0, self.size)

    def checksum(self, pace: Pace | None = None) -> int:
        """The crc32c of the bytes as they are now (read once, in order)."""
        raise NotImplementedError


class BufferBlob(Blob):
    """Bytes already in memory, or in a memory map."""

    __slots__ = ("_buffer", "size", "crc32c")

    def __init__(self, buffer: pa.Buffer, crc32c: int | None = None) -> None:
        self._buffer = buffer
        self.size = buffer.size
        self.crc32c = crc32c

    def buffer(self) -> pa.Buffer:
        return self._buffer

    def read(self, offset: int, length: int) -> bytes:
        return self._buffer.slice(offset, max(0, min(length, self.size - offset))).to_pybytes()

    def checksum(self, pace: Pace | None = None) -> int:
        if pace is None:
            return crc_of(self._buffer)
        crc = 0
        for offset in range(0, self.size, CHECK_BYTES):
            part = self._buffer.slice(offset, min(CHECK_BYTES, self.size - offset))
            crc = crc_extend(crc, part)
            pace(part.size)
        return crc


@dataclass(frozen=True, slots=True)
class Cell:
    """`size` bytes at file offset `offset`."""

    offset: int
    size: int


class FileBlob(Blob):
    """The data cells of an open file, joined in order, read with `pread`.

    Owns the descriptor (closed when the blob is dropped). `buffer()` maps the
    file only when asked (Flight), once; bounded reads never touch the map.
    """

    def __init__(self, fd: int, cells: tuple[Cell, ...], name: str, crc32c: int | None = None) -> None:
        self._fd = fd
        self.crc32c = crc32c
        self._cells = cells
        self._name = name
        self._starts = [0]
        for cell in cells:
            self._starts.append(self._starts[-1] + cell.size)
        self.size = self._starts[-1]
        self._mapped: pa.Buffer | None = None
        self._lock = threading.Lock()
        weakref.finalize(self, os.close, fd)

    def buffer(self) -> pa.Buffer:
        with self._lock:
            if self._mapped is None:
                self._mapped = self._map()
            return self._mapped

    def _map(self) -> pa.Buffer:
        source = pa.memory_map(f"/proc/self/fd/{self._fd}")  # the very file opened
        try:
            parts = []
            for cell in self._cells:
                source.seek(cell.offset)
                parts.append(source.read_buffer(cell.size))  # zero-copy: a slice of the map
        finally:
            source.close()  # the buffers keep the mapping alive
        return join_buffers(parts) if parts else pa.py_buffer(b"")

    def spans(self, offset: int, end: int) -> list[tuple[int, int, int]]:
        """Bytes [offset, end) as (descriptor, file offset, length) runs, for
        a server that sends them from the file itself (sendfile); the
        descriptor lives as long as this blob."""
        runs = []
        index = bisect.bisect_right(self._starts, offset) - 1
        while offset < end:
            cell, within = self._cells[index], offset - self._starts[index]
            take = min(cell.size - within, end - offset)
            runs.append((self._fd, cell.offset + within, take))
            offset += take
            index += 1
        return runs

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        parts: list[bytes] = []
        index = bisect.bisect_right(self._starts, offset) - 1
        while offset < end:
            cell, within = self._cells[index], offset - self._starts[index]
            take = min(cell.size - within, end - offset)
            part = os.pread(self._fd, take, cell.offset + within)
            if len(part) != take:
                raise OSError(f"{self._name}: the file ended early (truncated?)")
            parts.append(part)
            offset += take
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def checksum(self, pace: Pace | None = None) -> int:
        """Read with `preadv` into one reused buffer, never mapped: a check of
        a large file costs CHECK_BYTES of memory, not the file's size."""
        crc, scratch = 0, bytearray(min(CHECK_BYTES, max(self.size, 1)))
        view = memoryview(scratch)
        for cell in self._cells:
            done = 0
            while done < cell.size:
                want = min(len(scratch), cell.size - done)
                got = os.preadv(self._fd, [view[:want]], cell.offset + done)
                if got <= 0:
                    raise OSError(f"{self._name}: the file ended early (truncated?)")
                crc = crc_extend(crc, view[:got])
                done += got
                if pace is not None:
                    pace(got)
        return crc


EMPTY = BufferBlob(pa.py_buffer(b""))
