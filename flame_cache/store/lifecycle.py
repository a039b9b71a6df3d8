"""What the store lets go of, and why (SPEC 8): capacity, expiry, why a key is gone.

`Lifecycle` holds the three together, with the bookkeeping the store's write
and delete paths call under a key's lock:
- capacity (`capacity.Capacity`): the bytes of every object's files and of
  writes in progress; writes reserve room first and it evicts through the
  store's delete path;
- expiry (`expiry.Expiry`): the rules and per-object deadlines, a deadline
  kept beside its object in a hidden `.<id>.ttl` file;
- why it is gone (`gone.GoneKeys`): evicted, expired or damaged keys, for
  their NOT_FOUND.
"""

from __future__ import annotations

import logging
import time

from flame_cache.store import expiry as expiries
from flame_cache.store.capacity import Capacity
from flame_cache.store.errors import InvalidArgument, ObjectNotFound, StorageError
from flame_cache.store.expiry import MAX_TTL, Expiry, ExpiryRule
from flame_cache.store.gone import EVICTED, EXPIRED, GoneKeys, stamp
from flame_cache.store.index import Entry
from flame_cache.store.keys import ObjectKey
from flame_cache.store.layout import Layout
from flame_cache.store.patterns import Pattern
from flame_cache.store.stats import CAPACITY, EXPIRY, StoreStats

log = logging.getLogger(__name__)


class Lifecycle:
    def __init__(
        self,
        layout: Layout | None,
        capacity: int | None,
        pin: tuple[Pattern, ...],
        rules: tuple[ExpiryRule, ...],
        stats: StoreStats | None = None,
    ) -> None:
        """`capacity` applies with disk storage only (None: unbounded);
        `stats` counts the evictions and expirations."""
        self.layout = layout
        self.capacity = Capacity(capacity if layout is not None else None, pin)
        self.expiry = Expiry(rules)
        self.gone = GoneKeys()
        self.stats = stats or StoreStats()

    # -- asked by reads ------------------------------------------------------

    def is_expired(self, name: str) -> bool:
        return self.expiry.active and self.expiry.expired(name, time.time())

    def accessed(self, name: str) -> ObjectNotFound | None:
        """A read of `name`: its use counted; the error to raise if it expired."""
        if self.expiry.active:
            now = time.time()
            if self.expiry.expired(name, now):
                return self.expired_error(name)
            self.expiry.accessed(name, now)
        self.capacity.touch(name)
        return None

    def live(self, entries: list[Entry]) -> list[Entry]:
        """The entries but the expired ones (the sweep deletes those)."""
        if not self.expiry.active:
            return entries
        now = time.time()
        return [entry for entry in entries if not self.expiry.expired(entry.name, now)]

    def not_found(self, name: str) -> ObjectNotFound:
        why = self.gone.reason(name)
        return ObjectNotFound(f"object {name!r} not found" + (f": {why}" if why else ""))

    def expired_error(self, name: str) -> ObjectNotFound:
        deadline = self.expiry.deadline(name)
        return ObjectNotFound(f"object {name!r} not found: it expired at {stamp(deadline or time.time())}")

    # -- called by writes and deletes, under the key's lock --------------------

    def written(self, key: ObjectKey, ttl: float | None) -> None:
        """After a write's file is in: the key is no longer gone, a rule's
        clock restarts, a TTL given with it is set."""
        name = str(key)
        self.gone.discard(name)
        self.expiry.wrote(name, time.time())
        if ttl is not None:
            self.set_ttl(key, ttl)

    def set_ttl(self, key: ObjectKey, ttl: float) -> None:
        """The object's own deadline (0 clears it), kept beside it."""
        check_ttl(ttl)
        deadline = time.time() + ttl if ttl > 0 else None
        if self.layout is not None:
            base = self.layout.base_path(key)
            try:
                if deadline is None:
                    expiries.remove_sidecar(base, fsync=self.layout.folders.fsync)
                else:
                    expiries.write_sidecar(base, deadline, fsync=self.layout.folders.fsync)
            except OSError as exc:
                log.error("keeping the ttl of %s failed: %s", key, exc)
                raise StorageError(f"could not keep the ttl of object {str(key)!r}: {exc.strerror or exc}") from None
        self.expiry.set_deadline(str(key), deadline)

    def may_delete(self, name: str, why: str | None) -> bool:
        """Whether a delete for `why` still applies (an expired object written
        again since it was found due does not go); an eviction is logged
        first, so a kill during it leaves no unexplained loss."""
        if why == EXPIRED and not self.expiry.expired(name, time.time()):
            return False
        if why == EVICTED:
            size = self.capacity.size_of(name) or 0
            log.info("evicting %s (%d bytes) to stay under cache.capacity (%s bytes)", name, size, self.capacity.limit)
        return True

    def deleted(self, key: ObjectKey, why: str | None) -> None:
        """After an object's files are gone: its TTL file too, its bytes and
        deadline forgotten, and `why` (evicted, expired) counted and kept."""
        name = str(key)
        if self.layout is not None:
            expiries.remove_sidecar(self.layout.base_path(key), fsync=self.layout.folders.fsync)
        freed = self.capacity.forget(name)
        deadline, what = self.expiry.deadline(name), self.expiry.why(name)
        self.expiry.forget(name)
        if why == EVICTED:
            self.stats.evicted(CAPACITY, freed)
        elif why == EXPIRED:
            self.stats.evicted(EXPIRY)
            log.info("expired %s (%s ran out at %s)", name, what, stamp(deadline or time.time()))
        if why is not None:
            self.gone.record(name, why, time.time())

    def set_aside(self, key: ObjectKey, why: str) -> None:
        """A damaged object moved to the quarantine: forgotten, and `why` kept."""
        name = str(key)
        self.capacity.forget(name)
        self.expiry.forget(name)
        if self.layout is not None:
            expiries.remove_sidecar(self.layout.base_path(key))
        self.gone.record(name, why, time.time())

    def remeasure(self, key: ObjectKey) -> None:
        """Count the object's files again: the storage check removed
        leftovers, or a write failed part way."""
        if self.capacity.enabled and self.layout is not None:
            self.capacity.resize(str(key), self.layout.stored_bytes(key))

    def usage(self) -> dict[str, int]:
        return self.capacity.usage()


def check_ttl(ttl: float | None) -> None:
    """A TTL is 0 (clear) or a number of seconds up to a century."""
    if ttl is not None and not (isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and 0 <= ttl <= MAX_TTL):
        raise InvalidArgument(f"ttl {ttl!r} must be a number of seconds from 0 (clear it) to {MAX_TTL:.0f}")
