"""The one writer: every base and delta enters the storage as a `PendingFile`.

A pending file is written under a hidden temporary name beside its target,
committed with its version (framed, flushed if `fsync`), then renamed over
the target: a reader, or a restart after a kill, sees the old file or the new
one, never part of one. Left without `install` (an error, a client gone), it
removes itself and any folder made for it: a write that stored nothing
leaves nothing.

Two ways in, one file format (`fileformat`):
- `write(version, data)`: the whole file from memory, a cell or a table. A
  small cell is framed in memory and written with one `writev`; a larger
  one is written from where it lies, between its frame's two halves.
- `append(chunk)`, then `seal(version)`: a body too long to hold (over
  blobs.IN_MEMORY_BYTES) is written into the cell as it arrives, at the offset a
  one-row file's cell begins; pyarrow frames it once the body has ended, with
  the version the object then gets, so a write that landed during the upload
  only moves the version on.
Either way the crc32c of the cell is computed from the bytes as they are
written (`crc32c`, never a second pass) and framed into the file
(`checksum`); a native table carries none.
Every failure of the disk becomes a StorageError naming the key, never a path.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa

from flame_cache.store import checksum
from flame_cache.store.errors import InvalidArgument, StorageError
from flame_cache.store.frames import data_offset, file_pieces, opaque_frame
from flame_cache.store.folders import Folders
from flame_cache.store.keys import MAX_SEGMENT_BYTES, ObjectKey
from flame_cache.store.rename import replace_file

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"

Chunk = bytes | memoryview | pa.Buffer  # anything with the buffer protocol


class PendingFile:
    """A new file for `target` (of object `key`), until it is installed."""

    def __init__(self, folders: Folders, key: ObjectKey, target: str) -> None:
        self.folders = folders
        self.key = key
        self.target = target
        self.folder = target.rpartition("/")[0]
        self.temp = temp_beside(target)
        self.size = 0  # bytes of the cell appended so far
        self.crc32c = 0  # of the cell appended so far, or written (None: a table)
        self._fd: int | None = None
        self._installed = False

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._installed:
            self.discard()

    # -- writing ----------------------------------------------------------

    def write(self, version: int, data: pa.Buffer | pa.Table, crc: int | None = None) -> None:
        """The whole file from memory, committed (see the module's docstring);
        `crc` is the data's crc32c if the caller has it already."""
        with self._failures():
            fd = self._open()
            if isinstance(data, pa.Table):
                self.crc32c = None
                with pa.ipc.new_file(pa.PythonFile(_Sink(fd), mode="w"), data.schema) as writer:
                    writer.write_table(data)
            else:
                self.crc32c = checksum.of(data) if crc is None else crc
                write_all(fd, file_pieces(version, data, self.crc32c))
            self._close()

    def append(self, chunk: Chunk) -> None:
        """Write the next part of the cell now (not copied)."""
        with self._failures():
            if self._fd is None:
                os.lseek(self._open(), data_offset(), os.SEEK_SET)
            assert self._fd is not None
            write_all(self._fd, [chunk])
            self.crc32c = checksum.extend(self.crc32c, chunk)
            self.size += memoryview(chunk).nbytes

    def seal(self, version: int) -> None:
        """Frame the appended cell (never empty: a short body is written
        whole) as `version` and close the file; the caller holds the key's
        lock, so the version is final."""
        assert self._fd is not None and self.size > 0
        with self._failures():
            head, tail = opaque_frame(version, self.size, self.crc32c)
            if len(head) != data_offset():  # a cell of 2 GiB or more: its schema says large_binary
                self._move_cell(len(head))
            os.pwrite(self._fd, head, 0)
            os.pwrite(self._fd, tail, len(head) + self.size)
            self._close()

    def install(self) -> None:
        """Rename the committed file over its target (and flush the folder)."""
        renamed = False
        try:
            replace_file(self.temp, self.target)
            renamed = True
            self._installed = True
            self.folders.flush(self.folder)
        except FileNotFoundError as exc:
            if renamed:
                raise self._error(exc, renamed=True) from exc
            raise StorageError(
                f"could not store object {str(self.key)!r}: its temporary file was removed "
                "(was its namespace deleted during the upload?); nothing was stored"
            ) from None
        except OSError as exc:
            raise self._error(exc, renamed=renamed) from exc

    def discard(self) -> None:
        """Remove the unfinished file, and folders made for it if now empty."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.folders.discard(self.temp)

    # -- internals --------------------------------------------------------

    def _open(self) -> int:
        self._fd = self.folders.create_file(self.temp)
        return self._fd

    def _close(self) -> None:
        assert self._fd is not None
        if self.folders.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None

    def _move_cell(self, offset: int) -> None:
        """Copy the cell to a new temporary file at `offset` (in the kernel):
        a cell of 2 GiB or more has a longer frame ahead of it."""
        assert self._fd is not None
        moved = temp_beside(self.target)
        fd = self.folders.create_file(moved)
        source, done = data_offset(), 0
        try:
            while done < self.size:
                copied = os.copy_file_range(self._fd, fd, self.size - done, source + done, offset + done)
                if copied == 0:
                    raise OSError(errno.EIO, f"the upload's file ended {self.size - done} bytes early")
                done += copied
        except BaseException:
            os.close(fd)
            self.folders.discard(moved)
            raise
        self.discard()
        self._fd, self.temp = fd, moved

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """While writing: a disk error becomes a StorageError (the file
        removed), and data that has no IPC file form an InvalidArgument."""
        try:
            yield
        except OSError as exc:
            self.discard()
            raise self._error(exc) from exc
        except pa.ArrowException as exc:
            self.discard()
            raise InvalidArgument(f"object {str(self.key)!r} cannot be stored as an Arrow IPC file: {exc}") from exc
        except BaseException:
            self.discard()
            raise

    def _error(self, exc: OSError, *, renamed: bool = False) -> StorageError:
        log.error("writing object %s failed: %s", self.key, exc)
        outcome = "it may or may not be stored" if renamed else "nothing was stored"
        return StorageError(f"could not store object {str(self.key)!r}: {disk_failure(exc)}; {outcome}")


class _Sink:
    """A file for pyarrow's writer over a descriptor, through `write_all`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False

    def write(self, data: Chunk) -> int:
        write_all(self.fd, [data])
        return memoryview(data).nbytes

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True


def write_all(fd: int, parts: Sequence[Chunk]) -> None:
    """Write `parts` in order at the descriptor's position, whole: a write
    may take less than it is given (at most about 2 GiB on Linux)."""
    views = [memoryview(part).cast("B") for part in parts]
    views = [view for view in views if view.nbytes]
    while views:
        written = os.writev(fd, views)
        while views and written >= views[0].nbytes:
            written -= views.pop(0).nbytes
        if views:
            views[0] = views[0][written:]


def temp_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to `name`:
    unique by a per-process random prefix and a counter (no system call).
    `name` is cut (at a character) so the whole fits a file name; it is only
    there for a reader of the folder. No key segment begins with '.', so no
    key can name one."""
    tail = f"{TEMP_MARK}{_TEMP_PREFIX}{next(_temp_numbers):016x}"
    return f".{cut_name(name, MAX_SEGMENT_BYTES - 1 - len(tail))}{tail}"


def temp_beside(path: str) -> str:
    """The temporary path, in the same folder, of a file to be renamed to `path`."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/{temp_name(name)}"


def cut_name(name: str, room: int) -> str:
    """`name` cut to at most `room` bytes of UTF-8, at a character: for names
    that add to a key's segment and must still fit a file name."""
    return name.encode("utf-8")[:room].decode("utf-8", "ignore")


_TEMP_PREFIX = secrets.token_hex(8)
_temp_numbers = itertools.count()  # next() on it is atomic under the GIL
_TEMP_NAME = re.compile(r"\..+" + re.escape(TEMP_MARK) + r"[0-9a-f]{32}")


def is_temp_name(name: str) -> bool:
    """Exactly our temporary names: start-up deletes these, and nothing else."""
    return _TEMP_NAME.fullmatch(name) is not None


def disk_failure(exc: OSError) -> str:
    """What an operator should read for a failed write."""
    if exc.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if exc.errno == errno.EROFS:
        return "the storage is read-only"
    return os.strerror(exc.errno) if exc.errno else str(exc)
