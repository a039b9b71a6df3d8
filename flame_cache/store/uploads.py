"""Writing a base that arrives as a stream of chunks, in bounded memory.

The body goes straight into a hidden temporary file beside its target
(`.<name>.arrow.tmp-<hex>`, the layout's own temporary names, which a
restart removes), as it arrives: each chunk is written where the data cell
of a one-row opaque IPC file begins (`data_offset`), so the file ends up as
the same one-cell file `Layout.write_base` writes, and a get maps its cell
without a copy. What surrounds the cell (magic, schema, batch metadata, the
version and offsets, padding, footer) depends on the size and the version,
so pyarrow frames it when the body has ended (`disk.opaque_frame`), under
the key's lock, with the version the object gets then: a write that landed
during the upload only moves the version on. The rename and the clearing of
old deltas happen in the order `Layout.write_base` uses, so a crash leaves
the old object or the new one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from flame_cache.store.disk import Chunk, Layout, data_offset, opaque_frame, write_all
from flame_cache.store.errors import StorageError
from flame_cache.store.keys import ObjectKey

STREAM_BYTES = 4 * 1024 * 1024  # a body over this is streamed to its file, not collected first

SizeCheck = Callable[[int], None]  # raises ObjectTooLarge for a size over the limit


def read_head(chunks: Iterator[Chunk], limit: int, check: SizeCheck) -> tuple[list[Chunk], bool]:
    """Chunks from the front of a stream until more than `limit` bytes came
    or it ended; True if it ended. A short body then needs no streaming."""
    head: list[Chunk] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += memoryview(chunk).nbytes
        check(size)
        if size > limit:
            return head, False
    return head, True


def collect(chunks: Iterable[Chunk], check: SizeCheck) -> pa.Buffer:
    """A whole body in memory (a delta, a short body, or any body with storage
    `none`), refused as soon as it passes the limit."""
    parts: list[Chunk] = []
    size = 0
    for chunk in chunks:
        size += memoryview(chunk).nbytes
        check(size)
        parts.append(chunk)
    return pa.py_buffer(b"".join(parts))


class BaseUpload:
    """A base being written to a temporary file, then framed and installed.

    Use as a context manager: leaving it without `install` removes the file.
    """

    def __init__(self, layout: Layout, key: ObjectKey, check: SizeCheck) -> None:
        self.layout = layout
        self.key = key
        self.check = check
        self.size = 0
        self.temp = layout.temp_path(layout.base_path(key))
        self._fd: int | None = None

    def __enter__(self) -> BaseUpload:
        try:
            self._fd = self.layout.create_raw_file(self.temp)
            os.lseek(self._fd, data_offset(), os.SEEK_SET)
        except OSError as exc:
            self._discard()
            raise self.layout.write_error(self.key, exc) from exc
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._discard()

    def write(self, chunks: Iterable[Chunk]) -> None:
        """Append the chunks to the cell (each written as it comes, not copied)."""
        assert self._fd is not None
        for chunk in chunks:
            self.size += memoryview(chunk).nbytes
            self.check(self.size)
            try:
                write_all(self._fd, (chunk,))
            except OSError as exc:
                raise self.layout.write_error(self.key, exc) from exc

    def finish(self, version: int) -> None:
        """Frame the cell as version `version` and close the file (fsynced if
        configured). The caller holds the key's lock."""
        head, tail = opaque_frame(version, self.size)
        try:
            if len(head) != data_offset():  # a cell of 2 GiB or more: its schema says large_binary
                self._move_cell(len(head))
            assert self._fd is not None
            os.pwrite(self._fd, head, 0)
            os.pwrite(self._fd, tail, len(head) + self.size)
            if self.layout.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        except OSError as exc:
            raise self.layout.write_error(self.key, exc) from exc

    def install(self, *, fresh: bool) -> None:
        """Rename into place and drop old deltas, as `Layout.write_base` does."""
        if not self.temp.exists():
            raise StorageError(
                f"could not store object {str(self.key)!r}: its temporary file was removed "
                "(was its namespace deleted during the upload?); nothing was stored"
            )
        self.layout.install_base(self.key, self.temp, fresh=fresh)

    def _move_cell(self, offset: int) -> None:
        """Copy the cell to a new temporary file at `offset` (in the kernel)."""
        assert self._fd is not None
        temp = self.layout.temp_path(self.layout.base_path(self.key))
        fd = self.layout.create_raw_file(temp)
        source, done = data_offset(), 0
        try:
            while done < self.size:
                copied = os.copy_file_range(self._fd, fd, self.size - done, source + done, offset + done)
                if copied == 0:
                    raise OSError(f"the upload's file ended {self.size - done} bytes early")
                done += copied
        except BaseException:
            os.close(fd)
            self.layout.discard(temp)
            raise
        os.close(self._fd)
        self.layout.discard(self.temp)
        self._fd, self.temp = fd, temp

    def _discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.temp.exists():  # not installed: the file goes, with any folder made for it
            self.layout.discard(self.temp)
