"""Which loaded objects to let go of when memory or count limits are passed."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

POLICIES = ("lru", "none")


DEFAULT_PIN = ("*/pkg/*",)  # Flame's application packages: never evicted under cache.capacity


@dataclass(frozen=True, slots=True)
class Eviction:
    """`None` means unbounded. Policy `none` never evicts (from memory).
    `pin`: key patterns that eviction under `cache.capacity` never deletes."""

    policy: str = "lru"
    max_memory: int | None = None
    max_objects: int | None = None
    pin: tuple[str, ...] = DEFAULT_PIN


class LruTracker:
    """Least-recently-used order of loaded objects and the bytes they hold.

    Not thread-safe: the store calls it under its own lock.
    """

    def __init__(self, eviction: Eviction) -> None:
        self.limits = eviction
        self._order: OrderedDict[str, int] = OrderedDict()
        self.memory = 0

    def __len__(self) -> int:
        return len(self._order)

    def touch(self, key: str) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def add(self, key: str, size: int) -> None:
        self.remove(key)
        self._order[key] = size
        self.memory += size

    def remove(self, key: str) -> None:
        size = self._order.pop(key, None)
        if size is not None:
            self.memory -= size

    def victims(self) -> list[str]:
        """Oldest keys to drop until the limits hold again (removed here)."""
        if self.limits.policy == "none":
            return []
        out: list[str] = []
        while self._order and self._over():
            key, size = self._order.popitem(last=False)
            self.memory -= size
            out.append(key)
        return out

    def _over(self) -> bool:
        limits = self.limits
        if limits.max_objects is not None and len(self._order) > limits.max_objects:
            return True
        return limits.max_memory is not None and self.memory > limits.max_memory
