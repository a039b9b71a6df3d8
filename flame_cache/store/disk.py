"""The on-disk layout of SPEC 2, in Arrow IPC file format.

    <root>/<seg>/<seg>[/<seg>].arrow           the base (or a native table)
    <root>/.../<object>.deltas/<n>.arrow       delta n, n = 0, 1, 2 ... in order

Each opaque file holds rows `version: uint64, data: binary`; a native table
keeps its own schema with `flame.cache.version` in the metadata. Files are
written to a hidden temporary name beside the target and renamed over it, so
a reader or a restart sees the old file or the new one, never half of one.
Reads memory-map the file: a get does not copy the object.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from flame_cache.store.errors import InvalidArgument, StorageError
from flame_cache.store.keys import (
    DELTAS_SUFFIX,
    MAX_SEGMENT_BYTES,
    OBJECT_SUFFIX,
    ObjectKey,
    is_folder_segment,
    is_object_id,
)
from flame_cache.store.objects import (
    VERSION_KEY,
    binary_cell,
    cells_as_buffers,
    is_opaque_schema,
    join_buffers,
)
from flame_cache.store.rename import replace_file
from flame_cache.store.splice import FramingFile, Splice

log = logging.getLogger(__name__)

SUFFIX = OBJECT_SUFFIX
TEMP_MARK = ".tmp-"
QUARANTINE = ".quarantine"  # hidden, like temporary names: no key segment begins with '.'

SMALL_FILE_BYTES = 256 * 1024  # files up to about this size are framed in memory, then written at once
QUEUED_WRITE_BYTES = 4 * 1024 * 1024  # writes up to this size take turns (`Layout._queue`)

Chunk = bytes | memoryview | pa.Buffer  # anything with the buffer protocol
_Opened = TypeVar("_Opened")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What one file on disk holds. `version` 0 means the file carries none
    (written by upstream or by flamepy's local-storage mode)."""

    version: int
    data: pa.Buffer | pa.Table


class Layout:
    """Maps keys to paths under one storage root and moves files atomically."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        # A delete prunes empty folders; a write makes its folder, then its file
        # in it. This lock keeps a prune out of the gap between the two.
        self._folders = threading.Lock()
        self._turns = threading.Lock()  # see `_queue`
        root.mkdir(parents=True, exist_ok=True)

    def base_path(self, key: ObjectKey) -> Path:
        *dirs, name = key.segments
        return self.root.joinpath(*dirs, name + SUFFIX)

    def deltas_dir(self, key: ObjectKey) -> Path:
        *dirs, name = key.segments
        return self.root.joinpath(*dirs, name + DELTAS_SUFFIX)

    def delta_path(self, key: ObjectKey, index: int) -> Path:
        return self.deltas_dir(key) / f"{index}{SUFFIX}"

    # -- writing ---------------------------------------------------------

    def write_base(self, key: ObjectKey, version: int, data: pa.Buffer | pa.Table, *, fresh: bool) -> None:
        """Write the base of `key` and drop its deltas (see `install_base`)."""
        path = self.base_path(key)
        with self._queue(data):
            self.install_base(key, self._write_temp(key, path, version, data), fresh=fresh)

    def install_base(self, key: ObjectKey, temp: Path, *, fresh: bool) -> None:
        """Rename a finished temporary base into place and drop old deltas.

        On a replace the base is renamed into place before the old deltas go:
        a crash in between leaves deltas older than the base, which
        `read_deltas` drops. A fresh object starts at version 1, so leftovers
        of an earlier object at that key are cleared before it appears.
        """
        if fresh and self.deltas_dir(key).exists():
            self._remove_tree(self.deltas_dir(key))
            self.flush(self.deltas_dir(key).parent)  # leftovers must not outlive a power loss
        self._rename(key, temp, self.base_path(key))
        if not fresh:
            self._remove_tree(self.deltas_dir(key))

    def write_delta(self, key: ObjectKey, index: int, version: int, data: pa.Buffer) -> None:
        path = self.delta_path(key, index)
        with self._queue(data):
            self._rename(key, self._write_temp(key, path, version, data), path)

    def _queue(self, data: pa.Buffer | pa.Table) -> AbstractContextManager[object]:
        """Writes from memory take turns. One is a handful of short system
        calls, each of which lets go of the GIL: with several writers at once,
        every call handed the GIL to another thread and waited to get it back
        (a convoy), and 8 writers of 1 KiB together did 0.74 of what one did
        alone. Taking turns, a writer's calls rarely find another writer
        waiting (8 writers: 1.1x one; at 1 MiB 1.0x either way, about 10%
        more when queued). Longer writes (past 4 MiB one takes over a
        millisecond, and the copies are worth running side by side) and
        writes that fsync (the disk flushes those together) do not queue."""
        if self.fsync or not (isinstance(data, pa.Buffer) and data.size <= QUEUED_WRITE_BYTES):
            return nullcontext()
        return self._turns

    def discard(self, temp: Path) -> None:
        """Remove an unfinished temporary file, and the folders made for it if
        that leaves them empty: a write that stored nothing leaves nothing."""
        with self._folders:
            temp.unlink(missing_ok=True)
            folder = temp.parent
            while folder != self.root and _try_rmdir(folder):
                folder = folder.parent

    def temp_path(self, path: Path) -> Path:
        """A hidden temporary name beside `path`, which start-up knows to remove."""
        return path.with_name(temp_name(path.name))

    def _write_temp(self, key: ObjectKey, path: Path, version: int, data: pa.Buffer | pa.Table) -> Path:
        temp = self.temp_path(path)
        try:
            if isinstance(data, pa.Buffer):
                self._write_cell_file(temp, version, data)
            else:
                with self.create_file(temp) as sink:
                    with pa.ipc.new_file(sink, data.schema) as writer:  # stamped with its version by the store
                        writer.write_table(data)
                self.flush(temp)
        except BaseException as exc:
            self.discard(temp)
            if isinstance(exc, OSError):
                raise self.write_error(key, exc) from exc
            if isinstance(exc, pa.ArrowException):  # the data itself has no IPC file form
                raise InvalidArgument(f"object {str(key)!r} cannot be stored as an Arrow IPC file: {exc}") from exc
            raise
        return temp

    def _write_cell_file(self, temp: Path, version: int, data: pa.Buffer) -> None:
        """A one-row opaque file in one write. Every system call and most
        pyarrow calls let go of the GIL, and with many writers each hand-over
        costs more than the call itself; pyarrow writing the file makes a call
        per IPC part. So a small file is framed in memory, a larger one gets
        its frame from `opaque_frame` and its cell is written from where it is."""
        if data.size <= SMALL_FILE_BYTES:
            sink = pa.BufferOutputStream()
            _write_opaque(sink, version, data)
            parts: list[Chunk] = [sink.getvalue()]
        else:
            head, tail = opaque_frame(version, data.size)
            parts = [head, data, tail]
        fd = self.create_raw_file(temp)
        try:
            write_all(fd, parts)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _rename(self, key: ObjectKey, temp: Path, path: Path) -> None:
        renamed = False
        try:
            replace_file(temp, path)
            renamed = True
            self.flush(path.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise self.write_error(key, exc, renamed=renamed) from exc

    def write_error(self, key: ObjectKey, exc: OSError, *, renamed: bool = False) -> StorageError:
        """The error a client gets for a failed write: the key, not our paths."""
        log.error("writing object %s failed: %s", key, exc)
        outcome = "it may or may not be stored" if renamed else "nothing was stored"
        return StorageError(f"could not store object {str(key)!r}: {disk_failure(exc)}; {outcome}")

    def flush(self, path: Path) -> None:
        """fsync a file or folder, if this layout promises durability."""
        if self.fsync:
            _fsync_path(path)

    def create_file(self, path: Path) -> pa.NativeFile:
        """Open a new file for writing, making its folders; a concurrent
        delete cannot prune them before the file is in place."""
        return self._create(path, lambda: pa.OSFile(str(path), "wb"))

    def create_raw_file(self, path: Path) -> int:
        """`create_file`, as a descriptor (also for positional reads)."""
        return self._create(path, lambda: os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))

    def _create(self, path: Path, create: Callable[[], _Opened]) -> _Opened:
        """The folder usually exists: then no lock is needed, as a prune
        cannot remove a folder with a file in it (with fsync the lock also
        waits out another writer's flush of a folder it just made)."""
        if not self.fsync:
            try:
                return create()
            except FileNotFoundError:
                pass
        with self._folders:
            self._make_dirs(path.parent)
            return create()

    def _make_dirs(self, folder: Path) -> None:
        """`mkdir -p`; with fsync, each new folder's parent is flushed too, or
        a power loss could drop the folder with the file acknowledged in it."""
        if folder.is_dir():
            return
        missing = []
        while not folder.is_dir() and folder != self.root:
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            new.mkdir(exist_ok=True)
            self.flush(new.parent)

    # -- deleting --------------------------------------------------------

    def delete(self, key: ObjectKey) -> None:
        """Remove the base first, then the deltas: a crash in between leaves
        only orphan deltas, which the next start-up clears."""
        base = self.base_path(key)
        try:
            base.unlink(missing_ok=True)
            self.flush(base.parent)
        except OSError as exc:
            log.error("deleting %s failed: %s", base, exc)
            raise StorageError(f"could not delete object {str(key)!r}: {disk_failure(exc)}") from exc
        self._remove_tree(self.deltas_dir(key))

    def prune_empty_dirs(self, segments: tuple[str, ...]) -> None:
        """Remove empty directories at and below `segments`, then empty parents."""
        top = self.root.joinpath(*segments)
        with self._folders:
            for folder, _, _ in os.walk(top, topdown=False):
                _try_rmdir(folder)
            for depth in range(len(segments) - 1, 0, -1):
                _try_rmdir(self.root.joinpath(*segments[:depth]))

    @staticmethod
    def _remove_tree(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    # -- reading ---------------------------------------------------------

    def read_base(self, key: ObjectKey) -> StoredFile:
        return read_file(self.base_path(key))

    def read_deltas(self, key: ObjectKey, base_version: int) -> list[pa.Buffer]:
        """Deltas of `key` in order; drops (and deletes) ones older than the base.

        Delta files carry their own version; upstream's carry 0 and count in
        order after the base. The caller holds the key's lock, so no delta
        write is in flight: temporary files here are a crash's leftovers.
        """
        folder = self.deltas_dir(key)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            if is_temp_name(entry.name):
                log.warning("removing unfinished temporary file %s", entry.path)
                _remove_any(entry.path)
        names = [e.name for e in entries if e.name.endswith(SUFFIX) and e.is_file()]
        indexed = sorted((int(n[: -len(SUFFIX)]), n) for n in names if _is_index(n[: -len(SUFFIX)]))
        deltas: list[pa.Buffer] = []
        for _, name in indexed:
            stored = read_file(folder / name)
            if not isinstance(stored.data, pa.Buffer):
                raise pa.ArrowInvalid(f"{folder / name} is not an opaque delta")
            if _is_stale(stored.version, base_version):
                log.info("dropping stale delta %s (version %d, base %d)", folder / name, stored.version, base_version)
                (folder / name).unlink(missing_ok=True)
                continue
            deltas.append(stored.data)
        self._renumber(folder, [n for _, n in indexed if (folder / n).exists()])
        return deltas

    @staticmethod
    def _renumber(folder: Path, names: list[str]) -> None:
        """Keep live deltas named 0..n-1 so the next patch lands at n."""
        for index, name in enumerate(names):
            if name != f"{index}{SUFFIX}":
                os.replace(folder / name, folder / f"{index}{SUFFIX}")

    def quarantine(self, key: ObjectKey) -> Path | None:
        """Move a damaged object aside, under `.quarantine/`, keeping its path;
        None if the disk refused (it is then refused again on each read)."""
        target = self.root.joinpath(QUARANTINE, *key.segments[:-1])
        tail = f"{SUFFIX}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        moved = target / f"{_cut(key.object_id, MAX_SEGMENT_BYTES - len(tail) - len(DELTAS_SUFFIX))}{tail}"
        try:
            target.mkdir(parents=True, exist_ok=True)
            for source, dest in ((self.base_path(key), moved), (self.deltas_dir(key), Path(f"{moved}{DELTAS_SUFFIX}"))):
                if source.exists():
                    os.replace(source, dest)
        except OSError as exc:
            log.error("could not move damaged object %s aside: %s", key, exc)
            return None
        return moved

    def find_damage(self, key: ObjectKey) -> str | None:
        """What is wrong with the object's files, judged by their Arrow file
        framing alone (the magic bytes at both ends), without reading data:
        a file cut short, emptied by a power loss, or not Arrow at all."""
        problem = _framing_problem(self.base_path(key))
        if problem is not None:
            return f"its base {problem}"
        try:
            names = [e.name for e in os.scandir(self.deltas_dir(key)) if e.name.endswith(SUFFIX)]
        except (FileNotFoundError, NotADirectoryError):
            return None
        for name in names:
            problem = _framing_problem(self.deltas_dir(key) / name)
            if problem is not None:
                return f"its delta {name} {problem}"
        return None

    # -- discovering -----------------------------------------------------

    def scan(self, below: tuple[str, ...] = (), *, tidy: bool = False) -> Iterator[ObjectKey]:
        """Every object file at or below `below` (a selector's segments). With
        `tidy` (start-up only, when no write is in flight) unfinished
        temporary files and orphan deltas are removed; foreign names are
        reported, never fatal. Only names that a key can map to are followed:
        `below` is a key only if its last segment may be an object id, and a
        folder only if every segment may be a folder (never a `.deltas/`)."""
        folders = all(map(is_folder_segment, below))
        if 2 <= len(below) <= 3 and all(map(is_folder_segment, below[:-1])) and is_object_id(below[-1]):
            if self.base_path(ObjectKey(below)).is_file():
                yield ObjectKey(below)
        if len(below) < 3 and folders:
            yield from self._scan_dir(self.root.joinpath(*below), below, tidy)

    def _scan_dir(self, folder: Path, segments: tuple[str, ...], tidy: bool) -> Iterator[ObjectKey]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        object_names = {e.name[: -len(SUFFIX)] for e in entries if e.name.endswith(SUFFIX)}
        for entry in entries:
            name = entry.name
            if is_temp_name(name):
                if tidy:
                    log.warning("removing unfinished temporary file %s", entry.path)
                    _remove_any(entry.path)
            elif not segments and name == QUARANTINE:
                continue
            elif entry.is_dir():
                if name.endswith(DELTAS_SUFFIX) and name[: -len(DELTAS_SUFFIX)] in object_names:
                    continue
                if segments and name.endswith(DELTAS_SUFFIX) and _holds_only_deltas(entry.path):
                    if tidy:
                        log.warning("removing deltas %s whose object is gone", entry.path)
                        _remove_any(entry.path)
                elif len(segments) < 2 and is_folder_segment(name):
                    yield from self._scan_dir(Path(entry.path), (*segments, name), tidy)
                elif tidy:
                    log.warning("ignoring foreign directory %s", entry.path)
            elif name.endswith(SUFFIX) and segments and is_object_id(name[: -len(SUFFIX)]):
                yield ObjectKey((*segments, name[: -len(SUFFIX)]))
            elif tidy:
                log.warning("ignoring foreign file %s", entry.path)


def read_file(path: Path) -> StoredFile:
    """Memory-map one IPC file; opaque rows join into one buffer."""
    source = pa.memory_map(str(path))
    reader = pa.ipc.open_file(source)
    schema = reader.schema
    if not is_opaque_schema(schema):
        table = reader.read_all()
        return StoredFile(_metadata_version(schema), table)
    chunks: list[pa.Buffer] = []
    version = 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        if batch.num_rows and not version:
            version = batch.column(0)[0].as_py() or 0
        chunks.extend(cells_as_buffers(batch.column(1)))
    return StoredFile(version, join_buffers(chunks) if chunks else pa.py_buffer(b""))


def temp_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to `name`:
    unique by a per-process random prefix and a counter (no system call).
    `name` is cut (at a character) so the whole fits a file name; it is only
    there for a reader of the folder. No key segment begins with '.', so no
    key can name one."""
    tail = f"{TEMP_MARK}{_TEMP_PREFIX}{next(_temp_numbers):016x}"
    return f".{_cut(name, MAX_SEGMENT_BYTES - 1 - len(tail))}{tail}"


def _cut(name: str, room: int) -> str:
    """`name` cut to at most `room` bytes of UTF-8, at a character: for names
    that add a suffix to a key's segment and must still fit a file name."""
    return name.encode("utf-8")[:room].decode("utf-8", "ignore")


_TEMP_PREFIX = secrets.token_hex(8)
_temp_numbers = itertools.count()  # next() on it is atomic under the GIL


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


def _write_opaque(sink: pa.NativeFile | FramingFile, version: int, data: pa.Buffer) -> None:
    """A one-row opaque file: `version: uint64, data: binary` (large_binary from 2 GiB)."""
    cell = binary_cell(data)
    schema = _opaque_schema(cell.type)
    batch = pa.record_batch([pa.array([version], pa.uint64()), cell], schema=schema)
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)


@functools.cache
def _opaque_schema(data_type: pa.DataType) -> pa.Schema:
    return pa.schema([("version", pa.uint64()), ("data", data_type)])


def opaque_frame(version: int, size: int) -> tuple[bytes, bytes]:
    """What a one-row opaque file holds before and after its `size`-byte data
    cell (size > 0): so a cell written first can be framed once complete."""
    splice = Splice(size)
    sink = FramingFile(splice)
    _write_opaque(sink, version, splice.buffer)
    splice.check_used()
    return sink.head, sink.tail


@functools.cache
def data_offset() -> int:
    """Where the data cell of a one-row opaque file under 2 GiB begins."""
    return len(opaque_frame(1, 1)[0])


ARROW_MAGIC = b"ARROW1"


def _framing_problem(path: Path) -> str | None:
    """None if `path` starts and ends like an Arrow IPC file; else what is wrong.
    A missing file is no problem here: it was replaced or deleted meanwhile."""
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


def _metadata_version(schema: pa.Schema) -> int:
    raw = (schema.metadata or {}).get(VERSION_KEY, b"0")
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def _holds_only_deltas(path: str) -> bool:
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):  # deleted meanwhile
        return False
    return bool(names) and all(n.endswith(SUFFIX) and _is_index(n[: -len(SUFFIX)]) or is_temp_name(n) for n in names)


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_stale(delta_version: int, base_version: int) -> bool:
    """A delta older than its base: a replace renames the new base in, then
    clears the old deltas, and a crash in between leaves them. Upstream's
    deltas carry version 0 and follow a base of version 0 (read as 1); beside
    a base of version 2 or more, which only a replace writes, they are such
    leftovers too."""
    if delta_version:
        return delta_version <= base_version
    return base_version > 1


def _try_rmdir(path: str | Path) -> bool:
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def _remove_any(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
