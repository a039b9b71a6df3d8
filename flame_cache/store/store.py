"""The one store both protocols share.

Thread-safety: writes to one key serialise on that key's lock (a fixed set of
striped locks), so every acknowledged write gets its own version. Readers
take no key lock on the fast path: they pick up the key's current immutable
`Snapshot`, which a writer swaps in whole.

Start-up only lists what is on disk; an object's file is opened (memory
mapped) the first time it is asked for.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from flame_cache.store.cells import locate_cells
from flame_cache.store.disk import Chunk, Layout
from flame_cache.store.errors import (
    InvalidArgument,
    ObjectNotFound,
    StorageError,
    VersionConflict,
)
from flame_cache.store.eviction import Eviction, LruTracker
from flame_cache.store.keys import Namespace, ObjectKey, Selector, shorten
from flame_cache.store.limits import DEFAULT_MAX_DELTAS, MAX_KEY_BYTES, WriteLimits
from flame_cache.store.objects import Kind, ObjectInfo, Snapshot, stamp_table
from flame_cache.store.uploads import STREAM_BYTES, BaseUpload, collect, read_head
from flame_cache.store.views import FileBlob, ObjectView

log = logging.getLogger(__name__)

_STRIPES = 64

Upload = pa.Buffer | pa.Table | Iterable[Chunk]  # a base in memory, or in chunks as it arrives


class _Entry:
    """An indexed object. `info` is None until its file was first read.

    Start-up indexes every object on disk, so an entry is kept small (index
    memory is a target: under 300 bytes an object): it holds its key as the
    one string that is also its index key, and makes the ObjectKey on use.
    """

    __slots__ = ("name", "info", "snapshot")

    def __init__(self, key: ObjectKey | str) -> None:
        self.name = key if isinstance(key, str) else str(key)
        self.info: ObjectInfo | None = None
        self.snapshot: Snapshot | None = None

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.segments)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.name.split("/"))


class Store:
    def __init__(
        self,
        root: Path | None,
        *,
        eviction: Eviction = Eviction(),
        max_deltas: int = DEFAULT_MAX_DELTAS,
        fsync: bool = False,
        max_object_size: int | None = None,
        max_key_bytes: int = MAX_KEY_BYTES,
    ) -> None:
        self.layout = Layout(root, fsync=fsync) if root is not None else None
        self.eviction = eviction
        self.write_limits = WriteLimits(max_object_size, max_key_bytes, max_deltas)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # guards _entries and _lru
        self._stripes = [threading.RLock() for _ in range(_STRIPES)]
        self._lru = LruTracker(eviction)
        if self.layout is not None:
            self._index_disk()

    @property
    def persistent(self) -> bool:
        return self.layout is not None

    # -- writes ----------------------------------------------------------

    def put(self, target: str, data: Upload, *, expect_version: int | None = None) -> ObjectInfo:
        """Create or replace (SPEC 4.1).

        `target` is a key (replaced if it exists, a 3-segment key is created
        as named) or a namespace (a new object with a fresh id). With
        `expect_version`, the write happens only if the object is at that
        version now (0: only if it does not exist). `data` in chunks is
        streamed to disk when long (`put_stream`).
        """
        parts = target.split("/") if isinstance(target, str) else []
        if len(parts) == 2 and self._find(ObjectKey.parse(target)) is None or len(parts) == 1:
            return self.create(target, data, expect_version=expect_version)
        if len(parts) not in (2, 3):
            raise InvalidArgument(
                f"{target!r} has {len(parts)} segments; expected a namespace ('session', 'app/session') "
                "or a key ('app/session/object')"
            )
        return self._write(ObjectKey.parse(target), data, expect_version, must_exist=False)

    def create(self, namespace_text: str, data: Upload, *, expect_version: int | None = None) -> ObjectInfo:
        """A new object with a fresh uuid4 id in a namespace."""
        key = Namespace.parse(namespace_text).new_key()
        return self._write(key, data, expect_version, must_exist=False)

    def replace(self, key_text: str, data: Upload, *, expect_version: int | None = None) -> ObjectInfo:
        """Replace an object that must exist (the seed's UPDATE)."""
        return self._write(ObjectKey.parse(key_text), data, expect_version, must_exist=True)

    def _write(self, key: ObjectKey, data: Upload, expect_version: int | None, must_exist: bool) -> ObjectInfo:
        if isinstance(data, (pa.Buffer, pa.Table)):
            return self._write_base(key, data, expect_version, must_exist=must_exist)
        return self._put_stream(key, data, expect_version, must_exist)

    # -- streamed writes and bounded reads (the HTTP mirror) ---------------
    #
    # Bodies arrive in chunks and large objects must never sit whole in
    # memory, so these read and write files in bounded pieces; versions, key
    # locks, delta clearing and installation are the same as above.

    def put_stream(
        self,
        key_text: str,
        data: Upload,
        *,
        expect_version: int | None = None,
        must_exist: bool = False,
    ) -> ObjectInfo:
        """Create or replace exactly `key_text` (2 or 3 segments), from chunks.

        A body up to `STREAM_BYTES` is written as `put` writes it; a longer
        one is streamed into a temporary file without holding the key's lock,
        which is taken only to check the version, frame the file and rename
        it in. `expect_version` as in `put`; `must_exist` makes it a replace.
        Past the maximum object size: ObjectTooLarge at once, nothing stored.
        """
        return self._write(ObjectKey.parse(key_text), data, expect_version, must_exist)

    def patch_stream(self, key_text: str, chunks: Iterable[bytes], *, expect_version: int | None = None) -> ObjectInfo:
        """`patch`, from chunks, only if the object is at `expect_version` (if given).

        Deltas are held in memory like every delta, so the body is collected
        (refused as soon as it alone passes the maximum object size).
        """
        key = ObjectKey.parse(key_text)
        delta = collect(chunks, lambda size: self.write_limits.check_size(key_text, size, what=" with this patch"))
        with self._key_lock(key):  # re-entrant: `patch` takes it again
            if expect_version is not None:
                self._check_version(key, expect_version, must_exist=True)
            return self.patch(key_text, delta)

    def open(self, key_text: str) -> ObjectView:
        """The current version of an object for bounded reads (close it after).

        With disk storage the base is read from the file in chunks and not
        loaded into memory; otherwise, and for native tables or compressed
        files, the view wraps the ordinary snapshot.
        """
        key = ObjectKey.parse(key_text)
        with self._key_lock(key):
            entry = self._require(key)
            if self.layout is not None:
                view = self._open_file(entry)
                if view is not None:
                    return view
            return ObjectView.of_snapshot(entry.snapshot or self._load(entry))

    def list_page(
        self, selector_text: str = "", *, after: str | None = None, limit: int | None = 100
    ) -> tuple[list[ObjectInfo], str | None]:
        """One page of `list`: objects sorted by key after the key `after`,
        and the cursor for the next page (None on the last). Only the page's
        objects are looked at, and from metadata (as `info`)."""
        selector = Selector.parse(selector_text, allow_all=True)
        try:
            after_segments = ObjectKey.parse(after).segments if after else ()
        except InvalidArgument as exc:
            raise InvalidArgument(f"cursor {shorten(after)} is not a key (pass next_cursor as it came): {exc}") from None
        with self._lock:
            keyed = [(e.segments, e) for e in self._entries.values()]  # each name split once
        entries = sorted(
            ((segments, e) for segments, e in keyed if selector.covers(segments) and segments > after_segments),
            key=lambda pair: pair[0],
        )
        page: list[ObjectInfo] = []
        for _, entry in entries:
            if len(page) == limit:
                return page, page[-1].key  # more follow
            try:
                with self._key_lock(entry.key):
                    page.append(self._stat(entry))
            except ObjectNotFound:
                continue  # deleted (or set aside as damaged) since we looked
        return page, None

    def namespaces(self, selector_text: str = "") -> list[tuple[str, int]]:
        """Namespaces (a key without its object id) and their object counts."""
        selector = Selector.parse(selector_text, allow_all=True)
        with self._lock:
            counts = Counter(e.name.rpartition("/")[0] for e in self._entries.values() if selector.covers(e.segments))
        return sorted(counts.items())

    def usage(self, *, stored: bool = True) -> dict[str, int]:
        """Counts of objects and of those loaded, the bytes loaded, and with
        `stored` the bytes stored (object sizes where known, else the size of
        the object's file: a stat per object not read since start-up)."""
        with self._lock:
            entries = list(self._entries.values())
            usage = {"objects": len(entries), "loaded": len(self._lru), "loaded_bytes": self._lru.memory}
        if not stored:
            return usage
        total = 0
        for entry in entries:
            info = entry.info
            if info is not None:
                total += info.size
            elif self.layout is not None:
                try:
                    total += self.layout.base_path(entry.key).stat().st_size
                except OSError:
                    pass
        return {**usage, "stored_bytes": total}

    def health(self) -> str | None:
        """None if the store can serve reads and writes, else why not (both
        protocols' health checks ask this): the storage folder must be there
        and writable."""
        if self.layout is None:
            return None
        root = self.layout.root
        if not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
            return f"storage {root} is missing or not writable"
        return None

    def _put_stream(
        self, key: ObjectKey, data: Iterable[Chunk], expect_version: int | None, must_exist: bool
    ) -> ObjectInfo:
        chunks = iter(data)
        check = functools.partial(self.write_limits.check_size, str(key))
        head, ended = read_head(chunks, STREAM_BYTES, check)
        if ended or self.layout is None:
            body = collect(itertools.chain(head, chunks), check)
            return self._write_base(key, body, expect_version, must_exist=must_exist)
        self._check_version(key, expect_version, must_exist)  # fail before the upload
        with BaseUpload(self.layout, key, check) as upload:
            upload.write(itertools.chain(head, chunks))
            with self._key_lock(key):
                current = self._check_version(key, expect_version, must_exist)  # a write may have landed
                upload.finish(current + 1)
                upload.install(fresh=current == 0)
                info = ObjectInfo(str(key), current + 1, 0, upload.size, Kind.OPAQUE, time.time())
                self._install_info(self._find(key) or _Entry(key), info)
        log.debug("wrote %s version %d (%d bytes, streamed)", key, info.version, info.size)
        return info

    def _check_version(self, key: ObjectKey, expect_version: int | None, must_exist: bool) -> int:
        """The current version (0: no object), if it is the expected one."""
        with self._key_lock(key):
            entry = self._require(key) if must_exist else self._find(key)
            current = self._stat(entry).version if entry else 0
            if expect_version is not None and expect_version != current:
                raise VersionConflict(str(key), expect_version, current)
            if entry is None:
                self.write_limits.check_new_key(str(key))
            return current

    def _stat(self, entry: _Entry) -> ObjectInfo:
        """`_info` without loading a large base; the caller holds the key lock."""
        if entry.info is not None or self.layout is None:
            return self._info(entry)
        view = self._open_file(entry)
        if view is None:
            return self._info(entry)
        view.close()
        return view.info

    def _open_file(self, entry: _Entry) -> ObjectView | None:
        """A view reading the base file in chunks; None if it must be loaded
        instead (table, compressed, damaged). The caller holds the key lock."""
        assert self.layout is not None
        key = entry.key
        try:
            file = open(self.layout.base_path(key), "rb", buffering=0)
        except FileNotFoundError:
            if entry.snapshot is not None:
                return None  # a snapshot not (yet) on disk is served from memory
            self._forget(entry)
            raise ObjectNotFound(f"object {str(key)!r} not found") from None
        try:
            cells = locate_cells(f"/proc/self/fd/{file.fileno()}")  # the very file opened
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
            cells = None  # `_load` reports it and sets it aside
        if cells is None:
            file.close()
            return None
        base_version = cells.version or 1
        snapshot = entry.snapshot
        if snapshot is not None and snapshot.kind is Kind.OPAQUE and snapshot.base_version == base_version:
            deltas, updated = snapshot.deltas, snapshot.updated
        else:
            deltas = tuple(self.layout.read_deltas(key, base_version))
            updated = os.fstat(file.fileno()).st_mtime
        size = cells.size + sum(d.size for d in deltas)
        info = ObjectInfo(str(key), base_version + len(deltas), len(deltas), size, Kind.OPAQUE, updated)
        with self._lock:
            if entry.info is None and self._entries.get(str(key)) is entry:
                entry.info = info
        return ObjectView(info, base_version, FileBlob(file, cells.data), deltas)

    def _install_info(self, entry: _Entry, info: ObjectInfo) -> None:
        """Install an object whose data is only on disk (read on demand)."""
        name = entry.name
        with self._lock:
            self._entries[name] = entry
            entry.info = info
            entry.snapshot = None
            self._lru.remove(name)

    def _write_base(
        self, key: ObjectKey, data: pa.Buffer | pa.Table, expect_version: int | None, *, must_exist: bool
    ) -> ObjectInfo:
        with self._key_lock(key):
            current = self._check_version(key, expect_version, must_exist)
            entry = self._find(key) if current else None
            self.write_limits.check_size(str(key), data.nbytes if isinstance(data, pa.Table) else data.size)
            version = current + 1
            if isinstance(data, pa.Table):  # one dictionary per column: the IPC file format allows no other
                data = stamp_table(data.unify_dictionaries(), version)
            snapshot = Snapshot(str(key), version, version, data)
            if self.layout is not None:
                with self._on_storage_error(entry):
                    self.layout.write_base(key, version, data, fresh=current == 0)
            self._install(entry or _Entry(key), snapshot)
        log.debug("wrote %s version %d (%d bytes)", key, version, snapshot.size)
        return snapshot.info()

    def patch(self, key_text: str, delta: pa.Buffer) -> ObjectInfo:
        """Append one delta to an existing opaque object (SPEC 4.1, PATCH:)."""
        key = ObjectKey.parse(key_text)
        with self._key_lock(key):
            entry = self._require(key)
            current = entry.snapshot or self._load(entry)
            if current.kind is Kind.TABLE:
                raise InvalidArgument(f"object {key_text!r} is a native Arrow table; only opaque objects take patches")
            self.write_limits.check_deltas(key_text, len(current.deltas))
            self.write_limits.check_size(key_text, current.size + delta.size, what=" with this patch")
            snapshot = current.with_delta(delta, time.time())
            if self.layout is not None:
                with self._on_storage_error(entry):
                    self.layout.write_delta(key, len(current.deltas), snapshot.version, delta)
            self._install(entry, snapshot)
        return snapshot.info()

    def delete(self, selector_text: str) -> int:
        """Delete the object, namespace or `app/*` named, and all below it."""
        selector = Selector.parse(selector_text)
        if self.layout is not None:
            for key in self.layout.scan(selector.segments):
                self._find(key)
        with self._lock:
            keys = [e.key for e in self._entries.values() if selector.covers(e.segments)]
        deleted = sum(self._delete_one(key) for key in keys)
        if self.layout is not None and selector.segments:
            self.layout.prune_empty_dirs(selector.segments[:2])
        log.info("deleted %d object(s) under %r", deleted, selector_text)
        return deleted

    def _delete_one(self, key: ObjectKey) -> bool:
        """Files first: if the disk refuses, the object stays whole and served."""
        with self._key_lock(key):
            if self._entries.get(str(key)) is None:
                return False
            if self.layout is not None:
                self.layout.delete(key)
            with self._lock:
                entry = self._entries.pop(str(key), None)
                self._lru.remove(str(key))
            return entry is not None

    @contextmanager
    def _on_storage_error(self, entry: _Entry | None) -> Iterator[None]:
        """If a write fails part way (the disk is full, or an fsync failed
        after the rename), the file on disk is the truth: drop what memory
        holds of the object, so the next access reads it again."""
        try:
            yield
        except StorageError:
            if entry is not None:
                with self._lock:
                    entry.snapshot = entry.info = None
                    self._lru.remove(entry.name)
            raise

    # -- reads -----------------------------------------------------------

    def get(self, key_text: str) -> Snapshot:
        """The current whole version of an object."""
        entry = self._entries.get(key_text)  # an indexed name is a valid key: no need to parse it
        if entry is None:
            entry = self._require(ObjectKey.parse(key_text))
        snapshot = entry.snapshot
        if snapshot is not None:
            with self._lock:
                self._lru.touch(key_text)
            return snapshot
        key = entry.key
        with self._key_lock(key):
            return entry.snapshot or self._load(self._require(key))

    def info(self, key_text: str) -> ObjectInfo:
        """Metadata of an object, also one dropped on disk by another process.
        A large base is not read for it: its file's metadata says enough."""
        key = ObjectKey.parse(key_text)
        with self._key_lock(key):
            return self._stat(self._require(key))

    def list(self, selector_text: str = "") -> list[ObjectInfo]:
        """Every object the selector covers, in key order (`list_page` unbounded)."""
        return self.list_page(selector_text, limit=None)[0]

    # -- internals -------------------------------------------------------

    def _key_lock(self, key: ObjectKey) -> threading.RLock:
        return self._stripes[zlib.crc32(str(key).encode("utf-8", "surrogatepass")) % _STRIPES]

    def _find(self, key: ObjectKey) -> _Entry | None:
        entry = self._entries.get(str(key))
        if entry is None and self.layout is not None and self.layout.base_path(key).is_file():
            with self._lock:  # a file another process dropped in (flamepy local storage)
                entry = self._entries.setdefault(str(key), _Entry(key))
        return entry

    def _require(self, key: ObjectKey) -> _Entry:
        entry = self._find(key)
        if entry is None:
            raise ObjectNotFound(f"object {str(key)!r} not found")
        return entry

    def _info(self, entry: _Entry) -> ObjectInfo:
        if entry.info is not None:
            return entry.info
        with self._key_lock(entry.key):
            return entry.info or self._load(entry).info()

    def _load(self, entry: _Entry) -> Snapshot:
        """Read an object from disk; the caller holds its key lock."""
        key = entry.key
        if self._entries.get(str(key)) is not entry or self.layout is None:
            raise ObjectNotFound(f"object {str(key)!r} not found")
        try:
            snapshot = self._read_disk(key)
        except FileNotFoundError:
            self._forget(entry)
            raise ObjectNotFound(f"object {str(key)!r} not found") from None
        except OSError as exc:
            if exc.errno is not None:  # the disk, not the file: maybe passing, so nothing is moved
                log.error("reading object %s failed: %s", key, exc)
                raise StorageError(f"could not read object {str(key)!r}: {exc.strerror or exc}") from None
            self._set_aside(entry, str(exc))  # pyarrow's IOError about the bytes, e.g. a bad footer
            raise ObjectNotFound(f"object {str(key)!r} was damaged on disk and has been set aside") from None
        except (pa.ArrowException, ValueError, TypeError, LookupError) as exc:  # what a bad file raises
            self._set_aside(entry, str(exc))
            raise ObjectNotFound(f"object {str(key)!r} was damaged on disk and has been set aside") from None
        self._install(entry, snapshot)
        return snapshot

    def _set_aside(self, entry: _Entry, problem: str) -> None:
        """Quarantine a damaged object and stop serving it; the caller holds its key lock."""
        assert self.layout is not None
        moved = self.layout.quarantine(entry.key)
        self._forget(entry)
        log.error("object %s is damaged on disk (%s); moved it to %s", entry.key, problem, moved or "nowhere")

    def _read_disk(self, key: ObjectKey) -> Snapshot:
        layout = self.layout
        assert layout is not None
        stored = layout.read_base(key)
        base_version = stored.version or 1
        updated = layout.base_path(key).stat().st_mtime
        if isinstance(stored.data, pa.Table):
            return Snapshot(str(key), base_version, base_version, stamp_table(stored.data, base_version), (), updated)
        deltas = tuple(layout.read_deltas(key, base_version))
        return Snapshot(str(key), base_version + len(deltas), base_version, stored.data, deltas, updated)

    def _install(self, entry: _Entry, snapshot: Snapshot) -> None:
        name = entry.name
        with self._lock:
            self._entries[name] = entry
            entry.info = snapshot.info()
            entry.snapshot = snapshot
            self._lru.add(name, snapshot.size)
            for victim in self._lru.victims():
                self._evict(victim)

    def _evict(self, name: str) -> None:
        """Drop a loaded object from memory (caller holds `_lock`).

        With disk storage it is read again on demand; with `none` storage the
        memory was the only copy, so eviction deletes it.
        """
        entry = self._entries.get(name)
        if entry is None:
            return
        entry.snapshot = None
        if self.layout is None:
            del self._entries[name]
            log.warning("evicted %s: with storage 'none' it is gone", name)

    def _forget(self, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(entry.name) is entry:
                del self._entries[entry.name]
            self._lru.remove(entry.name)

    def _index_disk(self) -> None:
        assert self.layout is not None
        started = time.monotonic()
        for key in self.layout.scan(tidy=True):
            name = str(key)
            self._entries[name] = _Entry(name)
        log.info(
            "indexed %d object(s) in %s in %.2fs",
            len(self._entries),
            self.layout.root,
            time.monotonic() - started,
        )

    # -- the storage check -----------------------------------------------

    def start_disk_check(self) -> threading.Thread | None:
        """Run `check_disk` in the background: start-up indexes names only,
        so serving starts at once and damage is found moments later."""
        if self.layout is None:
            return None
        thread = threading.Thread(target=self._check_disk_logged, name="storage-check", daemon=True)
        thread.start()
        return thread

    def check_disk(self) -> list[str]:
        """Set aside every object whose files are cut short, empty or not Arrow
        files (judged by their framing, without reading data), and report
        each; the keys set aside. Safe beside requests: a suspect object is
        checked again under its key lock, and objects loaded since are fine."""
        if self.layout is None:
            return []
        with self._lock:
            entries = list(self._entries.values())
        damaged: list[str] = []
        for entry in entries:
            if entry.snapshot is not None or self.layout.find_damage(entry.key) is None:
                continue
            with self._key_lock(entry.key):
                if entry.snapshot is not None or self._entries.get(entry.name) is not entry:
                    continue
                problem = self.layout.find_damage(entry.key)
                if problem is None:
                    continue
                self._set_aside(entry, problem)
            damaged.append(entry.name)
        return damaged

    def _check_disk_logged(self) -> None:
        started = time.monotonic()
        try:
            damaged = self.check_disk()
        except Exception:  # a bug here must not go unseen, nor stop serving
            log.exception("the storage check failed")
            return
        log.info(
            "storage check: %d damaged object(s) set aside%s in %.2fs",
            len(damaged),
            f" ({', '.join(damaged[:10])}{', ...' if len(damaged) > 10 else ''})" if damaged else "",
            time.monotonic() - started,
        )
