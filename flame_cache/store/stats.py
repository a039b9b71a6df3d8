"""What the store let go of, and what it found damaged, counted since start-up (SPEC 8, 10).

One `StoreStats` per store. The store's paths tell it as each thing happens:
an object dropped from memory (`index.Index`), evicted under cache.capacity
or deleted because it expired (`lifecycle.Lifecycle.deleted`), set aside as
damaged, for a checksum mismatch or another reason (`Store.set_aside`).
STATS and /metrics read the counts; this module knows nothing of either.
"""

from __future__ import annotations

import threading

MEMORY, CAPACITY, EXPIRY = "memory", "capacity", "expiry"
REASONS = (MEMORY, CAPACITY, EXPIRY)  # why an object was let go of: /metrics' `reason` label


class StoreStats:
    """Counts of evictions by reason, of the bytes cache.capacity evicted, of
    objects set aside and of those set aside for a checksum mismatch.
    Thread-safe: every path that counts may run on any request's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._evictions = dict.fromkeys(REASONS, 0)
        self._evicted_bytes = 0  # of object files, under cache.capacity
        self._quarantines = 0
        self._checksum_failures = 0

    def evicted(self, reason: str, size: int = 0) -> None:
        """One object let go of for `reason` (one of REASONS; KeyError for
        another), `size` bytes of its files freed."""
        with self._lock:
            self._evictions[reason] += 1
            self._evicted_bytes += size

    def set_aside(self, *, checksum: bool) -> None:
        """One damaged object quarantined; `checksum`: its data did not match
        the checksum its file carries."""
        with self._lock:
            self._quarantines += 1
            self._checksum_failures += checksum

    def evictions(self) -> dict[str, int]:
        """Evictions by reason, every reason present."""
        with self._lock:
            return dict(self._evictions)

    def counts(self) -> dict[str, int]:
        """Everything, under the names STATS has always used."""
        with self._lock:
            return {
                "evictions": self._evictions[CAPACITY],
                "evicted_bytes": self._evicted_bytes,
                "expirations": self._evictions[EXPIRY],
                "memory_evictions": self._evictions[MEMORY],
                "quarantines": self._quarantines,
                "checksum_mismatches": self._checksum_failures,
            }
