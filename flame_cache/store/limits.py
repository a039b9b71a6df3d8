"""What one write may create: object size, key length, deltas per object.

The store checks these on every write, so both protocols refuse the same
requests with the same message; the protocols may check earlier (while a body
streams in) to stop reading sooner, with the same rules from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame_cache.store.errors import KeyTooLong, LimitExceeded, ObjectTooLarge
from flame_cache.store.keys import MAX_SEGMENT_BYTES

DEFAULT_MAX_DELTAS = 1000  # as upstream
MAX_KEY_BYTES = 3 * MAX_SEGMENT_BYTES + 2  # the longest key the grammar allows


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """`max_object_size` None: unbounded. Sizes are in bytes; an object's size
    is its base plus all its deltas (what a full read sends)."""

    max_object_size: int | None = None
    max_key_bytes: int = MAX_KEY_BYTES
    max_deltas: int = DEFAULT_MAX_DELTAS
    capacity: int | None = None  # cache.capacity: no object may be larger

    def check_new_key(self, key: str) -> None:
        """Only keys being created are checked: an existing object (or one a
        larger limit let in) stays readable and writable."""
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > self.max_key_bytes:
            raise KeyTooLong(
                f"key {key[:64]!r}{'...' if len(key) > 64 else ''} is {size} bytes, over the maximum key "
                f"length of {self.max_key_bytes} bytes (cache.limits.max_key_bytes)"
            )

    def check_size(self, key: str, size: int, *, what: str = "") -> None:
        if self.max_object_size is not None and size > self.max_object_size:
            raise ObjectTooLarge(
                f"object {key!r}{what} would be {size} bytes, over the maximum object size of "
                f"{self.max_object_size} bytes (cache.limits.max_object_size)"
            )
        if self.capacity is not None and size > self.capacity:
            raise ObjectTooLarge(
                f"object {key!r}{what} would be {size} bytes, more than the storage holds in all "
                f"(cache.capacity = {self.capacity} bytes)"
            )

    def check_upload(self, target: str, received: int, *, what: str = "") -> None:
        """For a body as it arrives: stop as soon as it cannot fit."""
        if self.max_object_size is not None and received > self.max_object_size:
            raise ObjectTooLarge(
                f"the upload to {target!r}{what} is over the maximum object size of {self.max_object_size} bytes "
                f"(cache.limits.max_object_size): refused after {received} bytes"
            )
        if self.capacity is not None and received > self.capacity:
            raise ObjectTooLarge(
                f"the upload to {target!r}{what} is more than the storage holds in all (cache.capacity = "
                f"{self.capacity} bytes): refused after {received} bytes"
            )

    def check_deltas(self, key: str, deltas: int) -> None:
        if deltas >= self.max_deltas:
            raise LimitExceeded(
                f"object {key!r} has {deltas} deltas, the most allowed (cache.limits.max_deltas = "
                f"{self.max_deltas}); replace it (update_object) to compact"
            )
