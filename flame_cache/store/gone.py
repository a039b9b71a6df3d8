"""Why it is gone (SPEC 8): for a bounded set of recently evicted, expired or
damaged keys, NOT_FOUND says what happened, so a user can tell a lost object from a typo.

Kept in memory only (a restart forgets it), at most `GONE_KEYS` names, the
oldest forgotten first; a key written again is forgotten at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timezone

GONE_KEYS = 10_000
EVICTED = "it was evicted to stay under cache.capacity"
EXPIRED = "it expired"


class GoneKeys:
    def __init__(self, bound: int = GONE_KEYS) -> None:
        self.bound = bound
        self._lock = threading.Lock()
        self._why: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def record(self, name: str, why: str, when: float) -> None:
        with self._lock:
            self._why.pop(name, None)
            self._why[name] = (why, when)
            while len(self._why) > self.bound:
                self._why.popitem(last=False)

    def discard(self, name: str) -> None:
        if self._why:  # most stores have nothing here: no lock on the write path
            with self._lock:
                self._why.pop(name, None)

    def reason(self, name: str) -> str | None:
        """`<why> at <UTC time>`, or None for a key not recently evicted or expired."""
        found = self._why.get(name)
        if found is None:
            return None
        why, when = found
        return f"{why} at {stamp(when)}"


def stamp(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
