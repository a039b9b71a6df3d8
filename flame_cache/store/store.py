"""The one store both protocols share: its API, and the rules of every write.

Both protocols call these methods with keys they parsed once at their edge
(text is parsed here, once, for other callers). Rules kept here, for both:
- versions: create is 1, each replace and each patch + 1; a write's
  `Condition` (If-Match, the seed's UPDATE) is checked under the key's lock,
  so every acknowledged write has its own version and racing conditional
  writes have one winner;
- limits: key length on create, object size once per chunk that arrives,
  deltas per object;
- memory or disk (`blobs.IN_MEMORY_BYTES`): a body up to it is collected, written from memory
  and kept for the next get; a longer one is written to its file as it
  arrives, without holding the key's lock;
- reads never wait for writers and get one whole version (an immutable
  `Snapshot`); reads change nothing on disk;
- the lifecycle (SPEC 8): every write reserves its room under
  `cache.capacity` first (`lifecycle`: `capacity.Capacity` evicts through
  `_delete_one`); an expired object (`expiry.Expiry`) answers NOT_FOUND at
  once and the sweep deletes it; NOT_FOUND of a key recently evicted or
  expired says so (`gone.GoneKeys`);
- integrity: a write's crc32c is computed as its bytes arrive (`checksum`)
  and compared with the one its client sent, if any, before anything is
  installed; a load compares every file's data with the checksum it carries,
  and a mismatch sets the object aside like any other damage (and NOT_FOUND
  of that key says so, too).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flame_cache.store import checksum
from flame_cache.store import expiry as expiries
from flame_cache.store.lifecycle import Lifecycle, check_ttl
from flame_cache.store.blobs import IN_MEMORY_BYTES, BufferBlob, join_buffers
from flame_cache.store.capacity import Reservation, file_bytes
from flame_cache.store.conditions import ANY_STATE, MUST_EXIST, Condition
from flame_cache.store.errors import InvalidArgument, ObjectNotFound, StorageError
from flame_cache.store.eviction import Eviction
from flame_cache.store.expiry import ExpiryRule
from flame_cache.store.gone import EVICTED, EXPIRED
from flame_cache.store.index import Entry, Index
from flame_cache.store.keys import Namespace, ObjectKey, Selector, shorten
from flame_cache.store.layout import Layout, ScanFacts
from flame_cache.store.limits import DEFAULT_MAX_DELTAS, MAX_KEY_BYTES, WriteLimits
from flame_cache.store.objects import Kind, ObjectInfo, Snapshot, stamp_table
from flame_cache.store.pending import Chunk
from flame_cache.store.stats import StoreStats

log = logging.getLogger(__name__)

Body = pa.Buffer | pa.Table | Iterable[Chunk]  # a base in memory, or its bytes as they arrive
KeyLike = ObjectKey | str
Visible = Callable[[tuple[str, ...]], bool] | None  # which keys a listing may show; None: all


@dataclass(frozen=True, slots=True)
class Upload:
    """What a write of a base asks besides its bytes: the `condition` on the
    current version, the `target` the client named (a key or a namespace,
    for messages), the `crc32c` it sent (None: none), its own `ttl`."""

    condition: Condition
    target: str
    crc32c: int | None = None
    ttl: float | None = None


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
        capacity: int | None = None,
        expiry: tuple[ExpiryRule, ...] = (),
    ) -> None:
        """`capacity` bounds the bytes of object files (disk storage only);
        `eviction.pin` names what it never evicts; `expiry` holds the rules."""
        self.layout = Layout(root, fsync=fsync) if root is not None else None
        capacity = capacity if root is not None else None
        self.write_limits = WriteLimits(max_object_size, max_key_bytes, max_deltas, capacity)
        self.stats = StoreStats()  # evictions by reason, quarantines, checksum mismatches
        self.index = Index(eviction, persistent=root is not None, stats=self.stats)
        self.lifecycle = Lifecycle(self.layout, capacity, eviction.pin, expiry, self.stats)
        self.lifecycle.capacity.evict = self._evict
        if self.layout is not None:
            self._index_disk()

    @property
    def persistent(self) -> bool:
        return self.layout is not None

    # -- writes ----------------------------------------------------------

    def put(
        self,
        key: KeyLike,
        body: Body,
        *,
        condition: Condition = ANY_STATE,
        crc32c: int | None = None,
        ttl: float | None = None,
    ) -> ObjectInfo:
        """Create or replace exactly `key`: deltas cleared, version + 1 (a new
        object starts at 1), if `condition` holds and, given `crc32c`, the
        body's bytes have that checksum (else InvalidArgument, nothing
        stored). `ttl` (seconds; 0 clears) sets the object's own expiry."""
        key = _key(key)
        return self._put(key, body, Upload(condition, str(key), crc32c, ttl))

    def create(
        self, namespace: Namespace | str, body: Body, *, crc32c: int | None = None, ttl: float | None = None
    ) -> ObjectInfo:
        """A new object with a fresh uuid4 id in a namespace."""
        space = namespace if isinstance(namespace, Namespace) else Namespace.parse(namespace)
        return self._put(space.new_key(), body, Upload(Condition(exists=False), str(space), crc32c, ttl))

    def _put(self, key: ObjectKey, body: Body, upload: Upload) -> ObjectInfo:
        """`put`, as `upload` asks."""
        check_ttl(upload.ttl)
        if isinstance(body, pa.Table) and upload.crc32c is not None:
            raise InvalidArgument(
                f"a checksum applies to an object's bytes; {upload.target!r} would be a native Arrow table, "
                "which carries none"
            )
        if isinstance(body, (pa.Buffer, pa.Table)):
            return self._write_whole(key, body, upload)
        chunks = self._counted(upload.target, body)
        head, ended = _head(chunks, IN_MEMORY_BYTES)
        if ended or self.layout is None:
            return self._write_whole(key, _join(itertools.chain(head, chunks)), upload)
        return self._write_streamed(key, itertools.chain(head, chunks), upload)

    def patch(
        self,
        key: KeyLike,
        delta: pa.Buffer | Iterable[Chunk],
        *,
        condition: Condition = MUST_EXIST,
        crc32c: int | None = None,
        ttl: float | None = None,
    ) -> ObjectInfo:
        """Append one delta to an existing opaque object (held in memory, like
        every delta, so its bytes are collected first); given `crc32c`, only
        if the delta has that checksum."""
        key = _key(key)
        check_ttl(ttl)
        if not isinstance(delta, pa.Buffer):
            delta = _join(self._counted(str(key), delta, " with this patch"))
        crc = checksum.of(delta)
        checksum.check_upload(str(key), crc32c, crc)
        with self.lifecycle.capacity.reservation(str(key)) as room:
            room.grow(file_bytes(delta.size))  # before the key's lock: making room may evict
            with self.index.key_lock(key):
                entry = self._require(key)
                current = entry.snapshot or self._load(entry)
                condition.check(str(key), current.version)
                if current.kind is Kind.TABLE:
                    raise InvalidArgument(f"object {str(key)!r} is a native Arrow table; only opaque objects take patches")
                self.write_limits.check_deltas(str(key), len(current.deltas))
                self.write_limits.check_size(str(key), current.size + delta.size, what=" with this patch")
                snapshot = current.with_delta(delta, time.time())
                if self.layout is not None:
                    with self._on_storage_error(entry), self.layout.turn(delta.size):
                        with self.layout.pending_delta(key, current.next_delta_file) as pending:
                            pending.write(snapshot.version, delta, crc)
                            pending.install()
                    if room.active:
                        room.settle(added=os.stat(pending.target).st_size)
                self.index.install(entry, snapshot)
                self.lifecycle.written(key, ttl)
        return snapshot.info()

    def expire(self, key: KeyLike, ttl: float) -> float | None:
        """Give an existing object its own TTL, `ttl` seconds from now (0
        clears it: the rules of cache.expiry apply again); its deadline."""
        key = _key(key)
        with self.index.key_lock(key):
            self._require(key)
            self.lifecycle.set_ttl(key, ttl)  # refuses a bad ttl before anything changes
        return self.lifecycle.expiry.deadline(str(key))

    def expires(self, name: str) -> float | None:
        """When the object expires (seconds since the epoch), if it does."""
        return self.lifecycle.expiry.deadline(name)

    def delete(self, selector: Selector | str) -> int:
        """Delete the object, namespace or `app/*` named, and all below it."""
        selector = selector if isinstance(selector, Selector) else Selector.parse(selector)
        if self.layout is not None:
            for key in self.layout.scan(selector.segments):
                self._find(key)  # files dropped in by another process go too
        doomed = [entry for entry in self.index.all() if selector.covers(entry.segments)]
        deleted = sum(self._delete_one(entry.key) for entry in doomed)
        if self.layout is not None and selector.segments:
            self.layout.prune_empty_dirs(selector.segments[:2])
        log.info("deleted %d object(s) under %r", deleted, str(selector))
        return deleted

    def _write_whole(self, key: ObjectKey, data: pa.Buffer | pa.Table, upload: Upload) -> ObjectInfo:
        """A base from memory, written under the key's lock and kept in memory;
        its room under cache.capacity is reserved first."""
        size = data.nbytes if isinstance(data, pa.Table) else data.size
        crc = None if isinstance(data, pa.Table) else checksum.of(data)
        if crc is not None:
            checksum.check_upload(upload.target, upload.crc32c, crc)
        with self.lifecycle.capacity.reservation(str(key)) as room:
            if room.active:  # refuse what would fail anyway before evicting for it
                self.write_limits.check_size(str(key), size)
                self._current_version(key, upload.condition)
            room.grow(file_bytes(size, table=isinstance(data, pa.Table)))
            return self._write_whole_in(key, data, size, crc, upload, room)

    def _write_whole_in(
        self, key: ObjectKey, data: pa.Buffer | pa.Table, size: int, crc: int | None, upload: Upload, room: Reservation
    ) -> ObjectInfo:
        with self.index.key_lock(key):
            current = self._current_version(key, upload.condition)
            self.write_limits.check_size(str(key), size)
            version = current + 1
            if isinstance(data, pa.Table):  # one dictionary per column: the IPC file format allows no other
                data = stamp_table(data.unify_dictionaries(), version)
            entry = self._find(key) if current else None
            if self.layout is not None:
                with self._on_storage_error(entry), self.layout.turn(size):
                    with self.layout.pending_base(key) as pending:
                        pending.write(version, data, crc)
                        self.layout.install_base(pending, fresh=current == 0)
                if room.active:
                    room.settle(size=self.layout.stored_bytes(key))
            base = data if isinstance(data, pa.Table) else BufferBlob(data, crc)
            snapshot = Snapshot(str(key), version, version, base)
            self.index.install(entry or Entry(key), snapshot)
            self.lifecycle.written(key, upload.ttl)
        log.debug("wrote %s version %d (%d bytes)", key, version, size)
        return snapshot.info()

    def _write_streamed(self, key: ObjectKey, chunks: Iterator[Chunk], upload: Upload) -> ObjectInfo:
        """A long base, written to its file as it arrives (its checksum
        summed as it comes); the key's lock is taken only to check the version
        again, frame the file and rename it. Its room under cache.capacity is
        reserved chunk by chunk, before each is written, and released (the
        temporary file gone) if it fails."""
        assert self.layout is not None
        condition = upload.condition
        self._current_version(key, condition)  # fail before the upload
        with self.lifecycle.capacity.reservation(str(key)) as room, self.layout.pending_base(key) as pending:
            room.grow(file_bytes(0))
            for chunk in chunks:
                room.grow(memoryview(chunk).nbytes)
                pending.append(chunk)
            assert pending.crc32c is not None
            checksum.check_upload(upload.target, upload.crc32c, pending.crc32c)  # leaving, the file removes itself
            if room.active and pending.size > 2**31 - 2 * 4096:
                room.grow(pending.size)  # a cell of 2 GiB or more is copied once to a new temporary file
            with self.index.key_lock(key):
                current = self._current_version(key, condition)  # a write may have landed meanwhile
                entry = self._find(key)
                with self._on_storage_error(entry, key):
                    pending.seal(current + 1)
                    self.layout.install_base(pending, fresh=current == 0)
                if room.active:
                    room.settle(size=self.layout.stored_bytes(key))
                info = ObjectInfo(str(key), current + 1, 0, pending.size, Kind.OPAQUE, time.time())
                self.index.install_info(entry or Entry(key), info)
                self.lifecycle.written(key, upload.ttl)
        log.debug("wrote %s version %d (%d bytes, streamed)", key, info.version, info.size)
        return info

    def _current_version(self, key: ObjectKey, condition: Condition) -> int:
        """The object's version (0: none), if `condition` holds for it; a key
        being created must also fit `max_key_bytes`."""
        with self.index.key_lock(key):
            entry = self._find(key)
            if entry is not None and self.lifecycle.is_expired(entry.name):
                self._delete_one(key, why=EXPIRED)  # a write to an expired key starts a new object
                entry = None
            try:
                current = self._info(entry).version if entry else 0
            except ObjectNotFound:
                current = 0
            condition.check(str(key), current)
            if current == 0:
                self.write_limits.check_new_key(str(key))
            return current

    def _counted(self, target: str, chunks: Iterable[Chunk], what: str = "") -> Iterator[Chunk]:
        """`chunks`, refused (ObjectTooLarge) as soon as they pass the
        maximum object size: the one size check of a body as it arrives."""
        size = 0
        for chunk in chunks:
            size += memoryview(chunk).nbytes
            self.write_limits.check_upload(target, size, what=what)
            yield chunk

    def _delete_one(self, key: ObjectKey, *, why: str | None = None, timeout: float = -1) -> bool:
        """Files first: if the disk refuses, the object stays whole and served.
        `why` (evicted, expired) is logged and kept for NOT_FOUND to tell;
        `timeout` bounds the wait for the key's lock (False if it passed)."""
        lock = self.index.key_lock(key)
        if not lock.acquire(timeout=timeout):
            return False
        try:
            name = str(key)
            entry = self.index.get(name)
            if entry is None:
                return False
            if not self.lifecycle.may_delete(name, why):
                return False  # written again, or its TTL changed, since it was found due
            if self.layout is not None:
                self.layout.delete(key)
            removed = self.index.remove(entry)
            self.lifecycle.deleted(key, why)
            return removed
        finally:
            lock.release()

    def _evict(self, name: str) -> bool:
        """Make room under cache.capacity: delete `name` (Capacity's victim)
        through the delete path, waiting at most a second for its key's lock."""
        try:
            done = self._delete_one(ObjectKey(tuple(name.split("/"))), why=EVICTED, timeout=1.0)
        except StorageError:
            return False
        if not done and self.index.get(name) is None:  # gone already
            self.lifecycle.capacity.forget(name)
            return True
        return done

    def expire_now(self, name: str) -> bool:
        """The sweep: delete an object whose deadline has passed (if it still has)."""
        try:
            return self._delete_one(ObjectKey(tuple(name.split("/"))), why=EXPIRED)
        except StorageError as exc:
            log.error("could not delete expired object %s: %s", name, exc)
            return False

    @contextmanager
    def _on_storage_error(self, entry: Entry | None, key: ObjectKey | None = None) -> Iterator[None]:
        """If a write fails part way (the disk is full, or an fsync failed
        after the rename), the file on disk is the truth: drop what memory
        holds of the object, so the next access reads it again (and count
        its files again)."""
        try:
            yield
        except StorageError:
            if entry is not None:
                self.index.drop_memory(entry)
                self.lifecycle.remeasure(key or entry.key)
            raise

    # -- reads -----------------------------------------------------------

    def get(self, key: KeyLike) -> Snapshot:
        """The current whole version of an object."""
        name = str(key)
        entry = self.index.get(name)  # an indexed name is a valid key: no need to parse it
        if entry is None:
            entry = self._require(_key(key))
        expired = self.lifecycle.accessed(name)
        if expired is not None:
            raise expired
        snapshot = entry.snapshot
        if snapshot is not None:
            self.index.touch(name)
            return snapshot
        with self.index.key_lock(name):
            return entry.snapshot or self._load(self._require(entry.key))

    def resident(self, key: KeyLike) -> Snapshot | None:
        """`get` if the object is in memory (so it touches no disk: an event
        loop may call it), else None: then call `get`, which loads it or
        raises ObjectNotFound."""
        name = str(key)
        entry = self.index.get(name)
        if entry is None or entry.snapshot is None:
            return None
        return self.get(name)

    def short_write(self, size: int) -> bool:
        """True if writing `size` bytes from memory is a few short system
        calls (no fsync, at most SHORT_WRITE_BYTES): an event loop may make
        that write itself rather than hand it to a thread."""
        return self.layout is None or self.layout.short_write(size)

    def info(self, key: KeyLike) -> ObjectInfo:
        """Metadata of an object, also one dropped on disk by another process.
        An object not in memory is read for it, not kept."""
        key = _key(key)
        with self.index.key_lock(key):
            return self._info(self._require(key))

    def exists(self, key: KeyLike) -> bool:
        key = _key(key)
        return self._find(key) is not None and not self.lifecycle.is_expired(str(key))

    def list_page(
        self, selector_text: str = "", *, after: str | None = None, limit: int | None = 100, visible: Visible = None
    ) -> tuple[list[ObjectInfo], str | None]:
        """One page of `list`: objects sorted by key after the key `after`,
        and the cursor for the next page (None on the last). Only the page's
        objects are looked at; `visible` (given a key's segments) leaves out
        the keys it refuses (what the caller may not read)."""
        selector = Selector.parse(selector_text, allow_all=True)
        try:
            after_segments = ObjectKey.parse(after).segments if after else ()
        except InvalidArgument as exc:
            raise InvalidArgument(f"cursor {shorten(after)} is not a key (pass next_cursor as it came): {exc}") from None
        keyed = [(entry.segments, entry) for entry in self.lifecycle.live(self.index.all())]  # each name split once
        entries = sorted(
            (
                (segments, e)
                for segments, e in keyed
                if selector.covers(segments) and segments > after_segments and (visible is None or visible(segments))
            ),
            key=lambda pair: pair[0],
        )
        page: list[ObjectInfo] = []
        for _, entry in entries:
            if len(page) == limit:
                return page, page[-1].key  # more follow
            try:
                with self.index.key_lock(entry.name):
                    page.append(self._info(entry))
            except ObjectNotFound:
                continue  # deleted (or set aside as damaged) since we looked
        return page, None

    def list(self, selector_text: str = "", *, visible: Visible = None) -> list[ObjectInfo]:
        """Every object the selector covers, in key order (`list_page` unbounded)."""
        return self.list_page(selector_text, limit=None, visible=visible)[0]

    def namespaces(self, selector_text: str = "", *, visible: Visible = None) -> list[tuple[str, int]]:
        """Namespaces (a key without its object id) and their object counts
        (of the keys `visible` allows, if given)."""
        selector = Selector.parse(selector_text, allow_all=True)
        counts = Counter(
            e.name.rpartition("/")[0]
            for e in self.lifecycle.live(self.index.all())
            if selector.covers(e.segments) and (visible is None or visible(e.segments))
        )
        return sorted(counts.items())

    def usage(self, *, stored: bool = True) -> dict[str, int]:
        """Counts of objects and of those loaded, the bytes loaded, objects
        set aside for a checksum mismatch since start-up, and with `stored`
        the bytes stored (`stored_bytes`), what was evicted, expired and set
        aside (`stats.StoreStats`) and cache.capacity's figures."""
        counts = self.stats.counts()
        usage = {**self.index.usage(), "checksum_mismatches": counts["checksum_mismatches"]}
        if not stored:
            return usage
        return {**usage, **counts, "stored_bytes": self.stored_bytes(), **self.lifecycle.usage()}

    def stored_bytes(self) -> int:
        """The bytes of every object: their sizes where known, else the size
        of the object's base file (a stat per object not read since start-up)."""
        total = 0
        for entry in self.index.all():
            if entry.info is not None:
                total += entry.info.size
            elif self.layout is not None:
                try:
                    total += os.stat(self.layout.base_path(entry.key)).st_size
                except OSError:
                    pass
        return total

    def disk_bytes(self) -> int:
        """The bytes of object files: exact under cache.capacity, which counts
        every base and delta file; else `stored_bytes`; 0 with storage `none`."""
        if self.layout is None:
            return 0
        capacity = self.lifecycle.capacity
        return capacity.used if capacity.enabled else self.stored_bytes()

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

    # -- internals -------------------------------------------------------

    def _find(self, key: ObjectKey) -> Entry | None:
        entry = self.index.get(str(key))
        if entry is None and self.layout is not None and self.layout.exists(key):
            entry = self.index.adopt(key)  # a file another process dropped in (flamepy local storage)
            self.lifecycle.capacity.adopt(entry.name, self.layout.stored_bytes(key) if self.lifecycle.capacity.enabled else 0)
            self.lifecycle.expiry.wrote(entry.name, time.time())
        return entry

    def _require(self, key: ObjectKey) -> Entry:
        """The object's entry; NOT_FOUND (saying why, if it was evicted or
        expired) if there is none or it has expired."""
        entry = self._find(key)
        if entry is None:
            raise self.lifecycle.not_found(str(key))
        if self.lifecycle.is_expired(entry.name):
            raise self.lifecycle.expired_error(entry.name)
        return entry

    def _info(self, entry: Entry) -> ObjectInfo:
        """The entry's info, read from disk (not kept) if not known yet; the
        caller holds the key's lock."""
        if entry.info is not None:
            return entry.info
        info = (entry.snapshot or self._load(entry, keep=False)).info()
        self.index.learn(entry, info)
        return info

    def _load(self, entry: Entry, *, keep: bool = True) -> Snapshot:
        """Read an object from disk (the caller holds its key lock); `keep`
        installs it in memory for the next read, and only then are its files
        compared with their checksums (a read for metadata alone, `_info`,
        does not read a large base's data)."""
        key = entry.key
        if self.index.get(entry.name) is not entry or self.layout is None:
            raise self.lifecycle.not_found(entry.name)  # deleted, evicted or expired since it was found
        try:
            stored = self.layout.read(key, verify=keep)
        except FileNotFoundError:
            self.index.remove(entry)
            self.lifecycle.capacity.forget(entry.name)
            raise ObjectNotFound(f"object {str(key)!r} not found") from None
        except OSError as exc:
            if exc.errno is not None:  # the disk, not the file: maybe passing, so nothing is moved
                log.error("reading object %s failed: %s", key, exc)
                raise StorageError(f"could not read object {str(key)!r}: {exc.strerror or exc}") from None
            raise self.set_aside(entry, str(exc)) from None  # pyarrow's IOError about the bytes, e.g. a bad footer
        except checksum.ChecksumMismatch as exc:
            raise self.set_aside(entry, str(exc), exc.reason) from None
        except (pa.ArrowException, ValueError, TypeError, LookupError) as exc:  # what a bad file raises
            raise self.set_aside(entry, str(exc)) from None
        snapshot = _snapshot(str(key), stored)
        if keep:
            self.index.install(entry, snapshot)
        return snapshot

    def _index_disk(self) -> None:
        assert self.layout is not None
        started = time.monotonic()
        entries = self.index.entries
        facts = ScanFacts(measure=self.lifecycle.capacity.enabled or bool(self.lifecycle.expiry.rules))
        for key in self.layout.scan(tidy=True, facts=facts):
            name = str(key)
            entries[name] = Entry(name)
        if facts.measure:
            found = {name: (int(size), written) for name, (size, written) in facts.objects.items() if name in entries}
            self.lifecycle.capacity.load(found)
            for name, (_, written) in found.items():
                self.lifecycle.expiry.wrote(name, written)
        for name, path in facts.sidecars.items():
            deadline = expiries.read_sidecar(path)
            if deadline is not None and name in entries:
                self.lifecycle.expiry.set_deadline(name, deadline)
        log.info("indexed %d object(s) in %s in %.2fs", len(entries), self.layout.root, time.monotonic() - started)
        if self.lifecycle.capacity.enabled:
            log.info(
                "capacity: %d of %d bytes used by object files (cache.capacity)", self.lifecycle.capacity.used, self.lifecycle.capacity.limit
            )

    # -- damage ----------------------------------------------------------

    def set_aside(self, entry: Entry, problem: str, reason: str | None = None) -> ObjectNotFound:
        """Quarantine a damaged object and stop serving it (the caller holds
        its key lock); the error that its reader gets. `problem` is logged
        (it may name paths); `reason`, if given, is told to clients, and later
        reads are told it was set aside until the key is written again (`gone`)."""
        assert self.layout is not None
        moved = self.layout.quarantine(entry.key)
        self.index.remove(entry)
        log.error("object %s is damaged on disk (%s); moved it to %s", entry.key, problem, moved or "nowhere")
        why = f"it was damaged on disk{f' ({reason})' if reason else ''} and has been set aside"
        self.stats.set_aside(checksum=reason == checksum.MISMATCH)
        if moved is not None:
            self.lifecycle.set_aside(entry.key, why)
        return ObjectNotFound(f"object {entry.name!r} {why.removeprefix('it ')}")


def _key(key: KeyLike) -> ObjectKey:
    return key if isinstance(key, ObjectKey) else ObjectKey.parse(key)


def _snapshot(name: str, stored) -> Snapshot:  # noqa: ANN001 (layout.StoredObject)
    """The snapshot of what `Layout.read` found: a base without a version
    (upstream's) is version 1, and its deltas count on from there."""
    base_version = stored.base.version or 1
    data, updated = stored.base.data, stored.base.modified
    if isinstance(data, pa.Table):
        return Snapshot(name, base_version, base_version, stamp_table(data, base_version), (), updated)
    version = base_version + len(stored.deltas)
    return Snapshot(name, version, base_version, data, stored.deltas, updated, stored.next_delta_file)


def _head(chunks: Iterator[Chunk], limit: int) -> tuple[list[Chunk], bool]:
    """Chunks from the front of a stream until more than `limit` bytes came
    or it ended; True if it ended: a short body then needs no streaming."""
    head: list[Chunk] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += memoryview(chunk).nbytes
        if size > limit:
            return head, False
    return head, True


def _join(chunks: Iterable[Chunk]) -> pa.Buffer:
    """A whole body in memory (no copy for a single buffer)."""
    parts = [part if isinstance(part, pa.Buffer) else pa.py_buffer(part) for part in chunks]
    parts = [part for part in parts if part.size]
    return join_buffers(parts) if parts else pa.py_buffer(b"")
