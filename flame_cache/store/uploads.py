"""Writing a base that arrives as a stream of chunks, in bounded memory.

The body goes straight into a hidden temporary file beside its target
(`.<name>.arrow.tmp-<hex>`, the layout's own temporary names, which a
restart removes), as rows of at most `ROW_BYTES`: an opaque IPC file of SPEC
2 with several rows, whose base is their `data` cells joined. The file is
written with the version the upload expects to get; if another write to the
key lands first, the version cells are rewritten in place (8 bytes a row)
before the file is renamed over the target. The rename and the clearing of
old deltas happen in the order `Layout.write_base` uses, so a crash leaves
the old object or the new one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from flame_cache.store.cells import locate_cells
from flame_cache.store.disk import Layout
from flame_cache.store.errors import StorageError
from flame_cache.store.keys import ObjectKey

ROW_BYTES = 4 * 1024 * 1024
ROW_SCHEMA = pa.schema([("version", pa.uint64()), ("data", pa.binary())])


SizeCheck = Callable[[int], None]  # raises ObjectTooLarge for a size over the limit


def read_head(chunks: Iterator[bytes], limit: int, check: SizeCheck) -> tuple[list[bytes], bool]:
    """Chunks from the front of a stream until more than `limit` bytes came
    or it ended; True if it ended. A short body then needs no file."""
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        check(size)
        if size > limit:
            return head, False
    return head, True


def collect(chunks: Iterable[bytes], check: SizeCheck) -> pa.Buffer:
    """A whole body in memory (a delta, or any body with storage `none`),
    refused as soon as it passes the limit."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        check(size)
        parts.append(bytes(chunk))
    return pa.py_buffer(b"".join(parts))


class BaseUpload:
    """A base being written to a temporary file, then installed by rename.

    Use as a context manager: leaving it without `install` removes the file.
    """

    def __init__(self, layout: Layout, key: ObjectKey, version: int, check: SizeCheck) -> None:
        self.layout = layout
        self.key = key
        self.version = version
        self.check = check
        self.size = 0
        self.path = layout.base_path(key)
        self.temp = layout.temp_path(self.path)
        self._pending = bytearray()
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def __enter__(self) -> BaseUpload:
        try:
            self._sink = self.layout.create_file(self.temp)
            self._writer = pa.ipc.new_file(self._sink, ROW_SCHEMA)
        except OSError as exc:
            self._discard()
            raise self.layout.write_error(self.key, exc) from exc
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._discard()

    def write(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.size += len(chunk)
            self.check(self.size)
            self._pending += chunk
            while len(self._pending) >= ROW_BYTES:
                self._write_row(bytes(self._pending[:ROW_BYTES]))
                del self._pending[:ROW_BYTES]

    def finish(self) -> None:
        """Write the last row and close the file (and fsync it if configured)."""
        if self._pending or self.size == 0:
            self._write_row(bytes(self._pending))
            self._pending = bytearray()
        assert self._writer is not None and self._sink is not None
        try:
            self._writer.close()
            self._writer = None
            self._sink.close()
            self.layout.flush(self.temp)
        except OSError as exc:
            raise self.layout.write_error(self.key, exc) from exc

    def restamp(self, version: int) -> None:
        """Rewrite every row's version cell in the finished temporary file."""
        cells = locate_cells(self.temp)
        if cells is None:  # we wrote it: plain, opaque, uncompressed
            raise StorageError(f"could not store object {str(self.key)!r}: its upload file has an unexpected layout")
        packed = struct.pack("<Q", version)
        with open(self.temp, "r+b", buffering=0) as file:
            for offset in cells.version_cells:
                os.pwrite(file.fileno(), packed, offset)
            if self.layout.fsync:
                os.fsync(file.fileno())
        self.version = version

    def install(self, *, fresh: bool) -> None:
        """Rename into place and drop old deltas, as `Layout.write_base` does."""
        if not self.temp.exists():
            raise StorageError(
                f"could not store object {str(self.key)!r}: its temporary file was removed "
                "(was its namespace deleted during the upload?); nothing was stored"
            )
        self.layout.install_base(self.key, self.temp, fresh=fresh)

    def _write_row(self, data: bytes) -> None:
        assert self._writer is not None
        batch = pa.record_batch(
            [pa.array([self.version], pa.uint64()), pa.array([data], pa.binary())], schema=ROW_SCHEMA
        )
        try:
            self._writer.write_batch(batch)
        except OSError as exc:
            raise self.layout.write_error(self.key, exc) from exc

    def _discard(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception:  # already closed, or the disk failed: the file goes anyway
            pass
        if self._sink is not None and not self._sink.closed:
            self._sink.close()
        if self.temp.exists():  # not installed: the file goes, with any folder made for it
            self.layout.discard(self.temp)
