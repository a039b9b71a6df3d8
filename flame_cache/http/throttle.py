"""Log lines that can repeat thousands of times a second, at a bounded rate."""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """At most one line per `kind` every `interval` seconds; the next line
    says how many were left out. Thread-safe, so one instance can serve the
    HTTP loop and any other thread."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `kind` was logged within the interval;
        True if it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._dropped[kind] = self._dropped.get(kind, 0) + 1
                return False
            self._last[kind] = now
            dropped = self._dropped.pop(kind, 0)
        if dropped:
            message += " (%d more like this in the last %.0fs not logged)"
            args = (*args, dropped, now - last if last is not None else self.interval)
        self.logger.log(level, message, *args)
        return True
