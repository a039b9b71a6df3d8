"""The one store both protocols share.

Thread-safety: writes to one key serialise on that key's lock (a fixed set of
striped locks), so every acknowledged write gets its own version. Readers
take no key lock on the fast path: they pick up the key's current immutable
`Snapshot`, which a writer swaps in whole.

Start-up only lists what is on disk; an object's file is opened (memory
mapped) the first time it is asked for.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from pathlib import Path

import pyarrow as pa

from flame_cache.store.disk import Layout
from flame_cache.store.errors import InvalidArgument, LimitExceeded, ObjectNotFound, VersionConflict
from flame_cache.store.eviction import Limits, LruTracker
from flame_cache.store.keys import Namespace, ObjectKey, Selector
from flame_cache.store.objects import Kind, ObjectInfo, Snapshot, stamp_table

log = logging.getLogger(__name__)

DEFAULT_MAX_DELTAS = 1000
_STRIPES = 64


class _Entry:
    """An indexed object. `info` is None until its file was first read."""

    __slots__ = ("key", "info", "snapshot")

    def __init__(self, key: ObjectKey) -> None:
        self.key = key
        self.info: ObjectInfo | None = None
        self.snapshot: Snapshot | None = None


class Store:
    def __init__(
        self,
        root: Path | None,
        *,
        limits: Limits = Limits(),
        max_deltas: int = DEFAULT_MAX_DELTAS,
        fsync: bool = False,
    ) -> None:
        self.layout = Layout(root, fsync=fsync) if root is not None else None
        self.limits = limits
        self.max_deltas = max_deltas
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # guards _entries and _lru
        self._stripes = [threading.RLock() for _ in range(_STRIPES)]
        self._lru = LruTracker(limits)
        if self.layout is not None:
            self._index_disk()

    @property
    def persistent(self) -> bool:
        return self.layout is not None

    # -- writes ----------------------------------------------------------

    def put(self, target: str, data: pa.Buffer | pa.Table, *, expect_version: int | None = None) -> ObjectInfo:
        """Create or replace (SPEC 4.1).

        `target` is a key (replaced if it exists, a 3-segment key is created
        as named) or a namespace (a new object with a fresh id). With
        `expect_version`, the write happens only if the object is at that
        version now (0: only if it does not exist).
        """
        parts = target.split("/") if isinstance(target, str) else []
        if len(parts) == 2 and self._find(ObjectKey.parse(target)) is None or len(parts) == 1:
            return self.create(target, data, expect_version=expect_version)
        if len(parts) not in (2, 3):
            raise InvalidArgument(
                f"{target!r} has {len(parts)} segments; expected a namespace ('session', 'app/session') "
                "or a key ('app/session/object')"
            )
        return self._write_base(ObjectKey.parse(target), data, expect_version, must_exist=False)

    def create(self, namespace_text: str, data: pa.Buffer | pa.Table, *, expect_version: int | None = None) -> ObjectInfo:
        """A new object with a fresh uuid4 id in a namespace."""
        key = Namespace.parse(namespace_text).new_key()
        return self._write_base(key, data, expect_version, must_exist=False)

    def replace(self, key_text: str, data: pa.Buffer | pa.Table, *, expect_version: int | None = None) -> ObjectInfo:
        """Replace an object that must exist (the seed's UPDATE)."""
        return self._write_base(ObjectKey.parse(key_text), data, expect_version, must_exist=True)

    def _write_base(
        self, key: ObjectKey, data: pa.Buffer | pa.Table, expect_version: int | None, *, must_exist: bool
    ) -> ObjectInfo:
        with self._key_lock(key):
            entry = self._require(key) if must_exist else self._find(key)
            current = self._info(entry).version if entry else 0
            if expect_version is not None and expect_version != current:
                raise VersionConflict(str(key), expect_version, current)
            version = current + 1
            if isinstance(data, pa.Table):
                data = stamp_table(data, version)
            snapshot = Snapshot(str(key), version, version, data)
            if self.layout is not None:
                self.layout.write_base(key, version, data, fresh=entry is None)
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
            if len(current.deltas) >= self.max_deltas:
                raise LimitExceeded(
                    f"object {key_text!r} has {len(current.deltas)} deltas, the most allowed; "
                    "replace it (update_object) to compact"
                )
            snapshot = current.with_delta(delta, time.time())
            if self.layout is not None:
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
            keys = [e.key for e in self._entries.values() if selector.covers(e.key)]
        deleted = sum(self._delete_one(key) for key in keys)
        if self.layout is not None and selector.segments:
            self.layout.prune_empty_dirs(selector.segments[:2])
        log.info("deleted %d object(s) under %r", deleted, selector_text)
        return deleted

    def _delete_one(self, key: ObjectKey) -> bool:
        with self._key_lock(key):
            with self._lock:
                entry = self._entries.pop(str(key), None)
                self._lru.remove(str(key))
            if entry is None:
                return False
            if self.layout is not None:
                self.layout.delete(key)
            return True

    # -- reads -----------------------------------------------------------

    def get(self, key_text: str) -> Snapshot:
        """The current whole version of an object."""
        key = ObjectKey.parse(key_text)
        entry = self._require(key)
        snapshot = entry.snapshot
        if snapshot is not None:
            with self._lock:
                self._lru.touch(key_text)
            return snapshot
        with self._key_lock(key):
            return entry.snapshot or self._load(self._require(key))

    def info(self, key_text: str) -> ObjectInfo:
        """Metadata of an object, also one dropped on disk by another process."""
        key = ObjectKey.parse(key_text)
        return self._info(self._require(key))

    def list(self, selector_text: str = "") -> list[ObjectInfo]:
        selector = Selector.parse(selector_text, allow_all=True)
        with self._lock:
            entries = sorted(
                (e for e in self._entries.values() if selector.covers(e.key)), key=lambda e: e.key.segments
            )
        infos = []
        for entry in entries:
            try:
                infos.append(self._info(entry))
            except ObjectNotFound:
                continue  # deleted (or set aside as damaged) since we looked
        return infos

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"objects": len(self._entries), "loaded": len(self._lru), "loaded_bytes": self._lru.memory}

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
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            moved = self.layout.quarantine(key)
            self._forget(entry)
            log.error("object %s is damaged on disk (%s); moved it to %s", key, exc, moved)
            raise ObjectNotFound(f"object {str(key)!r} was damaged on disk and has been set aside") from None
        self._install(entry, snapshot)
        return snapshot

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
        name = str(entry.key)
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
            if self._entries.get(str(entry.key)) is entry:
                del self._entries[str(entry.key)]
            self._lru.remove(str(entry.key))

    def _index_disk(self) -> None:
        assert self.layout is not None
        started = time.monotonic()
        for key in self.layout.scan(tidy=True):
            self._entries[str(key)] = _Entry(key)
        log.info(
            "indexed %d object(s) in %s in %.2fs",
            len(self._entries),
            self.layout.root,
            time.monotonic() - started,
        )
