"""The on-disk layout of SPEC 2: where each key's files are, and moving them.

    <root>/<seg>/<seg>[/<seg>].arrow           the base (or a native table)
    <root>/.../<object>.deltas/<n>.arrow       delta n, n = 0, 1, 2 ... in order

This is the storage seam: the store reaches files only through `Layout`'s
methods (read, pending files, install, delete, scan, quarantine, damage), so
another tier (an object store) can stand beside the local disk without the
protocols or the store's rules changing. Guarantees kept here: a key's files
are only ever replaced whole (by rename); a replace renames the new base in
before it clears old deltas, a fresh object clears leftovers first, and a
delete removes the base before its deltas, so a crash leaves the old object
or the new one (plus, at worst, leftovers that reads ignore and `repair`
removes). Reads change nothing on disk.

Paths below the root are plain strings joined with '/': a key's segments are
checked (no '/', no '..', none begins with '.'), so nothing needs parsing, and
a put's path costs no `pathlib` objects (which were about a sixth of a small
put's profiled time; bench/README.md). The root itself stays a `Path` for callers.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from flame_cache.store.blobs import IN_MEMORY_BYTES, Blob
from flame_cache.store.errors import StorageError
from flame_cache.store.expiry import is_sidecar_name, sidecar_object_id
from flame_cache.store.fileformat import StoredFile, framing_problem, read_stored, verify_blob
from flame_cache.store.folders import Folders
from flame_cache.store.keys import DELTAS_SUFFIX, MAX_SEGMENT_BYTES, OBJECT_SUFFIX, ObjectKey, is_folder_segment, is_object_id
from flame_cache.store.pending import PendingFile, cut_name, disk_failure, is_temp_name

log = logging.getLogger(__name__)

SUFFIX = OBJECT_SUFFIX
# A write from memory up to this size, without fsync, takes tens of microseconds
# (figures: bench/README.md): short enough for the HTTP event loop to make it itself.
SHORT_WRITE_BYTES = 1024 * 1024
QUARANTINE = ".quarantine"  # hidden, like temporary names: no key segment begins with '.'


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as its files hold it: the base file, its live deltas, and the
    number of the next delta file (one past the highest there is)."""

    base: StoredFile
    deltas: tuple[Blob, ...]
    next_delta_file: int


@dataclass
class ScanFacts:
    """What the start-up scan saw beside the keys, from the folder listings it
    makes anyway: with `measure`, each object's bytes on disk (base and
    deltas, from the entries' stat) and last write (the newest mtime); the
    expiry sidecars (`.<id>.ttl`) of the objects found."""

    measure: bool = False
    objects: dict[str, list[float]] = field(default_factory=dict)  # name: [bytes, last write]
    sidecars: dict[str, str] = field(default_factory=dict)  # name: its sidecar's path

    def note(self, name: str, entry: os.DirEntry) -> None:
        if self.measure:
            stat = entry.stat(follow_symlinks=False)
            self._add(name, stat.st_size, stat.st_mtime)

    def note_deltas(self, name: str, entry: os.DirEntry) -> None:
        if self.measure:
            self._add(name, *folder_bytes(entry.path))

    def _add(self, name: str, size: int, written: float) -> None:
        known = self.objects.setdefault(name, [0, 0.0])
        known[0] += size
        known[1] = max(known[1], written)


def folder_bytes(path: str) -> tuple[int, float]:
    """Bytes of the files in a folder (not below it), and the newest mtime."""
    size, written = 0, 0.0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    size += stat.st_size
                    written = max(written, stat.st_mtime)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return size, written


class Layout:
    """Maps keys to paths under one storage root and moves files atomically."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.top = str(root)  # the root as the start of every path below it
        self.folders = Folders(root, fsync=fsync)
        self._turns = threading.Lock()  # see `turn`

    def base_path(self, key: ObjectKey) -> str:
        return f"{self.top}/{'/'.join(key.segments)}{SUFFIX}"

    def deltas_dir(self, key: ObjectKey) -> str:
        return f"{self.top}/{'/'.join(key.segments)}{DELTAS_SUFFIX}"

    def delta_path(self, key: ObjectKey, index: int) -> str:
        return f"{self.deltas_dir(key)}/{index}{SUFFIX}"

    def exists(self, key: ObjectKey) -> bool:
        return os.path.isfile(self.base_path(key))

    def stored_bytes(self, key: ObjectKey) -> int:
        """Bytes of the object's files on disk: its base and its deltas folder."""
        try:
            base = os.stat(self.base_path(key)).st_size
        except FileNotFoundError:
            base = 0
        return base + folder_bytes(self.deltas_dir(key))[0]

    # -- writing ---------------------------------------------------------

    def pending_base(self, key: ObjectKey) -> PendingFile:
        return PendingFile(self.folders, key, self.base_path(key))

    def pending_delta(self, key: ObjectKey, index: int) -> PendingFile:
        return PendingFile(self.folders, key, self.delta_path(key, index))

    def install_base(self, pending: PendingFile, *, fresh: bool) -> None:
        """Rename a committed base into place and drop old deltas: for a
        fresh object (version 1) leftovers of an earlier one at that key go
        first; on a replace they go after, and a crash in between leaves
        deltas older than the base, which reads ignore."""
        deltas = self.deltas_dir(pending.key)
        if fresh and os.path.exists(deltas):
            _remove_tree(deltas)
            self.folders.flush(pending.folder)  # leftovers must not outlive a power loss
        pending.install()
        if not fresh:
            _remove_tree(deltas)

    def short_write(self, size: int) -> bool:
        """A write from memory of at most SHORT_WRITE_BYTES that does not fsync:
        a handful of system calls of tens of microseconds (bench/README.md)."""
        return not self.folders.fsync and size <= SHORT_WRITE_BYTES

    def turn(self, size: int) -> AbstractContextManager[object]:
        """Writes from memory take turns. One is a handful of short system
        calls, each of which lets go of the GIL: with several writers at once
        every call handed the GIL to another thread and waited to get it back
        (a convoy), slower together than one alone. Taking turns, a writer's
        calls rarely find another writer waiting. Writes over IN_MEMORY_BYTES
        (their copies are worth running side by side) and writes that fsync
        (the disk flushes those together) do not queue. Figures: bench/README.md."""
        if self.folders.fsync or size > IN_MEMORY_BYTES:
            return nullcontext()
        return self._turns

    # -- deleting --------------------------------------------------------

    def delete(self, key: ObjectKey) -> None:
        """Remove the base first, then the deltas: a crash in between leaves
        only orphan deltas, which the next start-up clears."""
        base = self.base_path(key)
        try:
            with suppress(FileNotFoundError):
                os.unlink(base)
            self.folders.flush(os.path.dirname(base))
        except OSError as exc:
            log.error("deleting %s failed: %s", base, exc)
            raise StorageError(f"could not delete object {str(key)!r}: {disk_failure(exc)}") from exc
        _remove_tree(self.deltas_dir(key))

    def prune_empty_dirs(self, segments: tuple[str, ...]) -> None:
        """Remove empty directories at and below `segments`, then empty parents."""
        self.folders.prune(segments)

    # -- reading ---------------------------------------------------------

    def read(self, key: ObjectKey, *, verify: bool = True) -> StoredObject:
        """The object's base and its live deltas, in order; nothing on disk
        changes. Deltas older than the base (a crash during a replace) and
        unfinished temporary files are skipped, not removed (`repair` does).
        With `verify` every file's data is compared with the checksum it
        carries (once, here: this is the load; without, for metadata only).
        Raises FileNotFoundError if there is no base; ArrowInvalid, OSError or
        ChecksumMismatch if a file is damaged."""
        base = read_stored(self.base_path(key), verify=verify)
        if isinstance(base.data, pa.Table):
            return StoredObject(base, (), 0)
        names = self.delta_names(key)
        deltas = tuple(data for _, data in self.live_deltas(key, base.version or 1, names, verify=verify))
        return StoredObject(base, deltas, delta_number(names[-1]) + 1 if names else 0)

    def live_deltas(
        self, key: ObjectKey, base_version: int, names: list[str], *, verify: bool = True
    ) -> list[tuple[str, Blob]]:
        """(file name, bytes) of each of the delta files `names` that is newer
        than the base, in order; with `verify`, each one's data is compared
        with its checksum (ChecksumMismatch naming the file)."""
        live, folder = [], self.deltas_dir(key)
        for name in names:
            path = f"{folder}/{name}"
            stored = read_stored(path, verify=False)
            if not isinstance(stored.data, Blob):
                raise pa.ArrowInvalid(f"{path} is not an opaque delta")
            if not is_stale(stored.version, base_version):
                if verify:
                    verify_blob(stored.data, path)
                live.append((name, stored.data))
        return live

    def delta_names(self, key: ObjectKey) -> list[str]:
        """The delta files of `key` (`<n>.arrow`), in order of n."""
        try:
            names = os.listdir(self.deltas_dir(key))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted((n for n in names if is_delta_name(n)), key=delta_number)

    def find_damage(self, key: ObjectKey) -> str | None:
        """What is wrong with the object's files, judged by their Arrow file
        framing alone (the magic bytes at both ends), without reading data:
        a file cut short, emptied by a power loss, or not Arrow at all."""
        problem = framing_problem(self.base_path(key))
        if problem is not None:
            return f"its base {problem}"
        folder = self.deltas_dir(key)
        for name in self.delta_names(key):
            problem = framing_problem(f"{folder}/{name}")
            if problem is not None:
                return f"its delta {name} {problem}"
        return None

    def quarantine(self, key: ObjectKey) -> Path | None:
        """Move a damaged object aside, under `.quarantine/`, keeping its path;
        None if the disk refused (it is then refused again on each read)."""
        target = self.root.joinpath(QUARANTINE, *key.segments[:-1])
        tail = f"{SUFFIX}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        moved = target / f"{cut_name(key.object_id, MAX_SEGMENT_BYTES - len(tail) - len(DELTAS_SUFFIX))}{tail}"
        try:
            target.mkdir(parents=True, exist_ok=True)
            for source, dest in ((self.base_path(key), moved), (self.deltas_dir(key), Path(f"{moved}{DELTAS_SUFFIX}"))):
                if os.path.exists(source):
                    os.replace(source, dest)
        except OSError as exc:
            log.error("could not move damaged object %s aside: %s", key, exc)
            return None
        return moved

    # -- discovering -----------------------------------------------------

    def scan(self, below: tuple[str, ...] = (), *, tidy: bool = False, facts: ScanFacts | None = None) -> Iterator[ObjectKey]:
        """Every object file at or below `below` (a selector's segments). With
        `tidy` (start-up only, when no write is in flight) unfinished
        temporary files and orphan deltas are removed; foreign names are
        reported, never fatal. Only names that a key can map to are followed:
        `below` is a key only if its last segment may be an object id, and a
        folder only if every segment may be a folder (never a `.deltas/`).
        `facts` (start-up) collects what the listings show of each object."""
        folders = all(map(is_folder_segment, below))
        if 2 <= len(below) <= 3 and all(map(is_folder_segment, below[:-1])) and is_object_id(below[-1]):
            if self.exists(ObjectKey(below)):
                yield ObjectKey(below)
        if len(below) < 3 and folders:
            yield from self._scan_dir("/".join((self.top, *below)), below, tidy, facts)

    def _scan_dir(
        self, folder: str, segments: tuple[str, ...], tidy: bool, facts: ScanFacts | None = None
    ) -> Iterator[ObjectKey]:
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
                    remove_any(entry.path)
            elif not segments and name == QUARANTINE:
                continue
            elif segments and is_sidecar_name(name) and not entry.is_dir():
                if sidecar_object_id(name) in object_names:
                    if facts is not None:
                        facts.sidecars["/".join((*segments, sidecar_object_id(name)))] = entry.path
                elif tidy:
                    log.warning("removing expiry file %s whose object is gone", entry.path)
                    remove_any(entry.path)
            elif entry.is_dir():
                if name.endswith(DELTAS_SUFFIX) and name[: -len(DELTAS_SUFFIX)] in object_names:
                    if facts is not None and is_object_id(name[: -len(DELTAS_SUFFIX)]):
                        facts.note_deltas("/".join((*segments, name[: -len(DELTAS_SUFFIX)])), entry)
                    continue
                if segments and name.endswith(DELTAS_SUFFIX) and _holds_only_deltas(entry.path):
                    if tidy:
                        log.warning("removing deltas %s whose object is gone", entry.path)
                        remove_any(entry.path)
                elif len(segments) < 2 and is_folder_segment(name):
                    yield from self._scan_dir(entry.path, (*segments, name), tidy, facts)
                elif tidy:
                    log.warning("ignoring foreign directory %s", entry.path)
            elif name.endswith(SUFFIX) and segments and is_object_id(name[: -len(SUFFIX)]):
                key = ObjectKey((*segments, name[: -len(SUFFIX)]))
                if facts is not None:
                    facts.note(str(key), entry)
                yield key
            elif tidy:
                log.warning("ignoring foreign file %s", entry.path)


def is_delta_name(name: str) -> bool:
    """`<n>.arrow`, n decimal digits."""
    return name.endswith(SUFFIX) and _is_index(name[: -len(SUFFIX)])


def delta_number(name: str) -> int:
    """n of a delta file `<n>.arrow`."""
    return int(name[: -len(SUFFIX)])


def is_stale(delta_version: int, base_version: int) -> bool:
    """A delta older than its base: a replace renames the new base in, then
    clears the old deltas, and a crash in between leaves them. Upstream's
    deltas carry version 0 and follow a base of version 0 (read as 1); beside
    a base of version 2 or more, which only a replace writes, they are such
    leftovers too."""
    if delta_version:
        return delta_version <= base_version
    return base_version > 1


def remove_any(path: str | Path) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(FileNotFoundError):
            os.unlink(path)


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _holds_only_deltas(path: str) -> bool:
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):  # deleted meanwhile
        return False
    return bool(names) and all(is_delta_name(n) or is_temp_name(n) for n in names)


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()
