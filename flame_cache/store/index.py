"""What the store knows of each object, and which loaded objects memory keeps.

Start-up indexes every object on disk by name; an entry learns its `info` and
`snapshot` when the object is first read. Memory holds loaded snapshots up to
`cache.eviction`'s bounds, least recently used first to go. Writes to one key
serialise on that key's lock (one of a fixed set of striped locks); the index
itself is guarded by one short lock that no disk work is done under.
"""

from __future__ import annotations

import logging
import threading
import zlib

from flame_cache.store.eviction import Eviction, LruTracker
from flame_cache.store.keys import ObjectKey
from flame_cache.store.objects import ObjectInfo, Snapshot
from flame_cache.store.stats import MEMORY, StoreStats

log = logging.getLogger(__name__)

_STRIPES = 64


class Entry:
    """An indexed object. `info` is None until its file was first read.

    Kept small (index memory is a target: under 300 bytes an object): it holds
    its key as the one string that is also its index key, and makes the
    ObjectKey on use.
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


class Index:
    """Entries by key, the LRU of loaded snapshots, and the key locks."""

    def __init__(self, eviction: Eviction, *, persistent: bool, stats: StoreStats | None = None) -> None:
        self.persistent = persistent  # False: memory is the only copy, so eviction deletes
        self.stats = stats or StoreStats()  # counts what memory lets go of
        self.lock = threading.Lock()  # guards `entries` and the LRU
        self.entries: dict[str, Entry] = {}
        self._lru = LruTracker(eviction)
        self._stripes = [threading.RLock() for _ in range(_STRIPES)]

    def key_lock(self, key: ObjectKey | str) -> threading.RLock:
        return self._stripes[zlib.crc32(str(key).encode("utf-8", "surrogatepass")) % _STRIPES]

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def adopt(self, key: ObjectKey) -> Entry:
        """The entry of `key`, made if it has none (a file found on disk)."""
        with self.lock:
            return self.entries.setdefault(str(key), Entry(key))

    def all(self) -> list[Entry]:
        with self.lock:
            return list(self.entries.values())

    def touch(self, name: str) -> None:
        with self.lock:
            self._lru.touch(name)

    def install(self, entry: Entry, snapshot: Snapshot) -> None:
        """`snapshot` is now the object's current version, kept in memory."""
        with self.lock:
            self.entries[entry.name] = entry
            entry.info = snapshot.info()
            entry.snapshot = snapshot
            self._lru.add(entry.name, snapshot.size)
            for victim in self._lru.victims():
                self._evict(victim)

    def install_info(self, entry: Entry, info: ObjectInfo) -> None:
        """The object's current version is `info`, on disk only (read on demand)."""
        with self.lock:
            self.entries[entry.name] = entry
            entry.info = info
            entry.snapshot = None
            self._lru.remove(entry.name)

    def learn(self, entry: Entry, info: ObjectInfo) -> None:
        """What a read found of an object not kept in memory (if still current)."""
        with self.lock:
            if entry.info is None and self.entries.get(entry.name) is entry:
                entry.info = info

    def drop_memory(self, entry: Entry) -> None:
        """Forget what memory holds of the object; the next read goes to disk."""
        with self.lock:
            entry.snapshot = entry.info = None
            self._lru.remove(entry.name)

    def remove(self, entry: Entry) -> bool:
        """Drop the object from the index; False if it was not (or no longer) there."""
        with self.lock:
            self._lru.remove(entry.name)
            if self.entries.get(entry.name) is entry:
                del self.entries[entry.name]
                return True
            return False

    def usage(self) -> dict[str, int]:
        with self.lock:
            return {"objects": len(self.entries), "loaded": len(self._lru), "loaded_bytes": self._lru.memory}

    def _evict(self, name: str) -> None:
        """Drop a loaded object from memory (the caller holds `lock`). With
        disk storage it is read again on demand; with `none` storage memory
        was the only copy, so eviction deletes it."""
        entry = self.entries.get(name)
        if entry is None:
            return
        entry.snapshot = None
        self.stats.evicted(MEMORY)
        if not self.persistent:
            del self.entries[name]
            log.warning("evicted %s: with storage 'none' it is gone", name)
