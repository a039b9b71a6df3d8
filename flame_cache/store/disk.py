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

import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flame_cache.store.errors import StorageError
from flame_cache.store.keys import ObjectKey, check_segment
from flame_cache.store.objects import (
    VERSION_KEY,
    binary_cell,
    cells_as_buffers,
    is_opaque_schema,
    join_buffers,
)

log = logging.getLogger(__name__)

SUFFIX = ".arrow"
DELTAS_SUFFIX = ".deltas"
TEMP_MARK = ".tmp-"
QUARANTINE = ".quarantine"


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
        """Write the base of `key` and drop its deltas.

        On a replace the base is renamed into place before the old deltas go:
        a crash in between leaves deltas older than the base, which
        `read_deltas` drops. A fresh object starts at version 1, so leftovers
        of an earlier object at that key are cleared before it appears.
        """
        if fresh:
            self._remove_tree(self.deltas_dir(key))
        self._write_atomically(self.base_path(key), version, data)
        if not fresh:
            self._remove_tree(self.deltas_dir(key))

    def write_delta(self, key: ObjectKey, index: int, version: int, data: pa.Buffer) -> None:
        self._write_atomically(self.delta_path(key, index), version, data)

    def _write_atomically(self, path: Path, version: int, data: pa.Buffer | pa.Table) -> None:
        temp = path.with_name(f".{path.name}{TEMP_MARK}{uuid.uuid4().hex}")
        try:
            sink = self._create(temp)
            with sink:
                _write_ipc(sink, version, data)
            if self.fsync:
                _fsync_path(temp)
            os.replace(temp, path)
            if self.fsync:
                _fsync_path(path.parent)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StorageError(f"could not write {path}: {exc.strerror or exc}") from exc
            raise

    @staticmethod
    def _create(path: Path) -> pa.NativeFile:
        """Open a new file, making its folder; once more if a concurrent
        delete pruned the folder in between."""
        for attempt in (1, 2):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return pa.OSFile(str(path), "wb")
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- deleting --------------------------------------------------------

    def delete(self, key: ObjectKey) -> None:
        """Remove the base first, then the deltas: a crash in between leaves
        only orphan deltas, which the next start-up clears."""
        self.base_path(key).unlink(missing_ok=True)
        self._remove_tree(self.deltas_dir(key))

    def prune_empty_dirs(self, segments: tuple[str, ...]) -> None:
        """Remove empty directories at and below `segments`, then empty parents."""
        top = self.root.joinpath(*segments)
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
        order after the base.
        """
        folder = self.deltas_dir(key)
        try:
            names = [e.name for e in os.scandir(folder) if e.name.endswith(SUFFIX) and e.is_file()]
        except FileNotFoundError:
            return []
        indexed = sorted((int(n[: -len(SUFFIX)]), n) for n in names if n[: -len(SUFFIX)].isdigit())
        deltas: list[pa.Buffer] = []
        for _, name in indexed:
            stored = read_file(folder / name)
            if not isinstance(stored.data, pa.Buffer):
                raise pa.ArrowInvalid(f"{folder / name} is not an opaque delta")
            if 0 < stored.version <= base_version:
                log.info("dropping stale delta %s (version %d <= base %d)", folder / name, stored.version, base_version)
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

    def quarantine(self, key: ObjectKey) -> Path:
        """Move a damaged object aside, under `.quarantine/`, keeping its path."""
        target = self.root.joinpath(QUARANTINE, *key.segments[:-1])
        target.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved = target / f"{key.object_id}{SUFFIX}.{stamp}"
        for source, dest in ((self.base_path(key), moved), (self.deltas_dir(key), Path(f"{moved}{DELTAS_SUFFIX}"))):
            if source.exists():
                os.replace(source, dest)
        return moved

    # -- discovering -----------------------------------------------------

    def scan(self, below: tuple[str, ...] = (), *, tidy: bool = False) -> Iterator[ObjectKey]:
        """Every object file at or below `below`. With `tidy` (start-up only,
        when no write is in flight) unfinished temporary files and orphan
        deltas are removed; foreign names are reported, never fatal."""
        if len(below) >= 2 and self.base_path(ObjectKey(below)).is_file():
            yield ObjectKey(below)
        if len(below) < 3:
            yield from self._scan_dir(self.root.joinpath(*below), below, tidy)

    def _scan_dir(self, folder: Path, segments: tuple[str, ...], tidy: bool) -> Iterator[ObjectKey]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        object_names = {e.name[: -len(SUFFIX)] for e in entries if e.name.endswith(SUFFIX)}
        for entry in entries:
            name = entry.name
            if TEMP_MARK in name and name.startswith("."):
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
                elif len(segments) < 2 and _valid_segment(name):
                    yield from self._scan_dir(Path(entry.path), (*segments, name), tidy)
                elif tidy:
                    log.warning("ignoring foreign directory %s", entry.path)
            elif name.endswith(SUFFIX) and segments and _valid_segment(name[: -len(SUFFIX)]):
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


def _write_ipc(sink: pa.NativeFile, version: int, data: pa.Buffer | pa.Table) -> None:
    if isinstance(data, pa.Table):  # stamped with its version by the store
        with pa.ipc.new_file(sink, data.schema) as writer:
            writer.write_table(data)
        return
    cell = binary_cell(data)
    schema = pa.schema([("version", pa.uint64()), ("data", cell.type)])
    batch = pa.record_batch([pa.array([version], pa.uint64()), cell], schema=schema)
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)


def _metadata_version(schema: pa.Schema) -> int:
    raw = (schema.metadata or {}).get(VERSION_KEY, b"0")
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def _valid_segment(name: str) -> bool:
    try:
        check_segment(name)
    except ValueError:
        return False
    return True


def _holds_only_deltas(path: str) -> bool:
    names = os.listdir(path)
    return bool(names) and all(n.endswith(SUFFIX) and n[: -len(SUFFIX)].isdigit() for n in names)


def _try_rmdir(path: str | Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


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
