"""`cache.capacity`: the bytes of object files the storage may hold, and
which objects go to keep them under it (SPEC 8).

One accounting object, `Capacity`, guarded by its own lock, knows the bytes
of every object's files (base, deltas) and the bytes reserved by writes in
progress, and keeps `used + reserved <= limit` at every moment:
- a write reserves room *before* it writes: a body of known size at once
  (its bytes plus the file's framing), a streamed one chunk by chunk as it
  arrives; a reservation that cannot fit evicts whole objects, least
  recently used first, until it does;
- once the write's file is renamed in (under the key's lock), the
  reservation becomes the object's measured size (`Reservation.settle`); a
  replace's old files count until then, so the accounting is never under
  what the disk holds; a write that fails releases what it reserved once its
  temporary file is gone;
- eviction goes through the store's delete path (`evict`, given by the
  store), under the victim's key lock, never the writer's own key, and
  without this lock held, so readers and other writers are not stopped;
- objects matching `cache.eviction.pin` are counted but never chosen.

The LRU order is the order of uses (a read or a write); at start-up it is
the order of the files' last writes (`load`). With no limit nothing is
tracked (no memory per object) and every call is a no-op.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from flame_cache.store.errors import InsufficientStorage, ObjectTooLarge
from flame_cache.store.eviction import DEFAULT_PIN
from flame_cache.store.patterns import Pattern, first_match

log = logging.getLogger(__name__)

FRAME_BYTES = 4096  # reserved beyond an opaque cell for its file's framing (about 650 bytes)
WAIT_FOR_ROOM = 10.0  # seconds a write waits for room held by other writes in progress


def file_bytes(size: int, *, table: bool = False) -> int:
    """What to reserve for a file holding `size` bytes of data: a one-row
    opaque file adds its framing; a table's IPC file adds schema, padding and
    footer (the estimate is settled to the file's size once written)."""
    if table:
        return size + size // 8 + 64 * 1024
    return size + FRAME_BYTES


class Capacity:
    """`limit` None: unbounded (nothing tracked). `evict(name)` deletes an
    object to make room (True once it is gone, False if it cannot be now)."""

    def __init__(self, limit: int | None = None, pin: tuple[str, ...] = DEFAULT_PIN) -> None:
        self.limit = limit
        self.pins = tuple(Pattern.parse(p) for p in pin)
        self.evict: Callable[[str], bool] = lambda name: False
        self._cond = threading.Condition(threading.Lock())
        self._order: OrderedDict[str, int] = OrderedDict()  # evictable: bytes on disk, least recently used first
        self._pinned: dict[str, int] = {}  # bytes of pinned objects
        self._evicting: set[str] = set()
        self.used = 0  # bytes of object files
        self.reserved = 0  # bytes reserved by writes in progress

    @property
    def enabled(self) -> bool:
        return self.limit is not None

    def pinned(self, name: str) -> bool:
        return first_match(self.pins, name) is not None

    # -- accounting --------------------------------------------------------

    def load(self, sizes: dict[str, tuple[int, float]]) -> None:
        """Start-up: each object's bytes on disk and last write; the LRU order
        starts from the last writes (oldest first to go)."""
        if not self.enabled:
            return
        with self._cond:
            for name, (size, _) in sorted(sizes.items(), key=lambda item: item[1][1]):
                self._put(name, size)

    def adopt(self, name: str, size: int) -> None:
        """An object found on disk after start-up (another process's file)."""
        if self.enabled:
            with self._cond:
                if name not in self._order and name not in self._pinned:
                    self._put(name, size)

    def touch(self, name: str) -> None:
        """A use (a read): the object goes to the back of the LRU order."""
        if self.enabled:
            with self._cond:
                if name in self._order:
                    self._order.move_to_end(name)

    def forget(self, name: str) -> int:
        """The object's files are gone (deleted, evicted, set aside); the bytes freed."""
        if not self.enabled:
            return 0
        with self._cond:
            size = self._order.pop(name, None)
            if size is None:
                size = self._pinned.pop(name, 0)
            self.used -= size
            self._cond.notify_all()
            return size

    def resize(self, name: str, size: int) -> None:
        """The object's files were counted again: `size` bytes (its place in
        the LRU order kept)."""
        if not self.enabled:
            return
        with self._cond:
            for sizes in (self._order, self._pinned):
                if name in sizes:
                    self.used += size - sizes[name]
                    sizes[name] = size
                    self._cond.notify_all()
                    return

    def size_of(self, name: str) -> int | None:
        with self._cond:
            size = self._order.get(name)
            return size if size is not None else self._pinned.get(name)

    def usage(self) -> dict[str, int]:
        """The limit and the bytes used, reserved and pinned (nothing when unbounded)."""
        if not self.enabled:
            return {}
        assert self.limit is not None
        with self._cond:
            return {
                "capacity_bytes": self.limit,
                "used_bytes": self.used,
                "reserved_bytes": self.reserved,
                "pinned_bytes": sum(self._pinned.values()),
            }

    def _put(self, name: str, size: int) -> None:
        """(lock held) the object has `size` bytes, and was just used."""
        old = self._order.pop(name, None)
        if old is None:
            old = self._pinned.pop(name, 0)
        if self.pinned(name):
            self._pinned[name] = size
        else:
            self._order[name] = size
        self.used += size - old

    # -- reservations -------------------------------------------------------

    def reservation(self, name: str) -> Reservation:
        return Reservation(self, name) if self.enabled else _NO_RESERVATION

    def _reserve(self, name: str, amount: int, held: int) -> None:
        """Reserve `amount` more bytes for a write to `name` that holds `held`
        already, evicting as needed; ObjectTooLarge if it could never fit,
        InsufficientStorage if what is left cannot be evicted."""
        assert self.limit is not None
        if held + amount > self.limit:
            raise ObjectTooLarge(
                f"object {name!r} needs more than {held + amount - FRAME_BYTES} bytes of storage, over "
                f"cache.capacity ({self.limit} bytes)"
            )
        deadline = time.monotonic() + WAIT_FOR_ROOM
        busy: set[str] = set()  # victims whose key lock could not be had just now
        while True:
            with self._cond:
                if self.used + self.reserved + amount <= self.limit:
                    self.reserved += amount
                    return
                victim = next((n for n in self._order if n != name and n not in busy and n not in self._evicting), None)
                if victim is None:
                    others = self.reserved - held
                    if not (busy or self._evicting or others > 0) or time.monotonic() > deadline:
                        raise self._full(name, amount, others)
                    self._cond.wait(0.05)  # evictions or writes in progress will free or settle their room
                    busy.clear()
                    continue
                self._evicting.add(victim)
            try:
                gone = self.evict(victim)
            finally:
                with self._cond:
                    self._evicting.discard(victim)
                    self._cond.notify_all()
            if not gone:
                busy.add(victim)

    def _full(self, name: str, amount: int, others: int) -> InsufficientStorage:
        assert self.limit is not None
        free = self.limit - self.used - self.reserved
        held = f"; {others} bytes are held by other writes in progress" if others > 0 else ""
        return InsufficientStorage(
            f"could not store object {name!r}: it needs {amount} more bytes and cache.capacity "
            f"({self.limit} bytes) has {max(free, 0)} free; every object left is pinned (cache.eviction.pin) "
            f"or in use{held}; nothing was stored"
        )

    def _settle(self, name: str, held: int, size: int | None, added: int) -> None:
        """A write's file is in place: the object now has `size` bytes (or
        `added` more), and its reservation is over."""
        with self._cond:
            self.reserved -= held
            current = self._order.get(name, self._pinned.get(name, 0))
            self._put(name, size if size is not None else current + added)
            self._cond.notify_all()

    def _release(self, held: int) -> None:
        if held:
            with self._cond:
                self.reserved -= held
                self._cond.notify_all()


class Reservation:
    """Room for one write to one object; release it by leaving the `with`
    block (after the write's temporary file is gone), settle it once the
    write's file is renamed in (the caller holds the key's lock)."""

    __slots__ = ("capacity", "name", "held")

    def __init__(self, capacity: Capacity, name: str) -> None:
        self.capacity, self.name, self.held = capacity, name, 0

    @property
    def active(self) -> bool:
        return True

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.capacity._release(self.held)
        self.held = 0

    def grow(self, amount: int) -> None:
        self.capacity._reserve(self.name, amount, self.held)
        self.held += amount

    def settle(self, *, size: int | None = None, added: int = 0) -> None:
        self.capacity._settle(self.name, self.held, size, added)
        self.held = 0


class _NoReservation(Reservation):
    """Without a capacity: nothing to reserve or settle."""

    def __init__(self) -> None:
        pass

    @property
    def active(self) -> bool:
        return False

    def __exit__(self, *exc: object) -> None:
        pass

    def grow(self, amount: int) -> None:
        pass

    def settle(self, *, size: int | None = None, added: int = 0) -> None:
        pass


_NO_RESERVATION = _NoReservation()
