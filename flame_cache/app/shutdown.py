"""Graceful stop: in-flight requests finish, but within a bound.

SIGTERM (Docker, Kubernetes) or Ctrl-C asks for a stop: the servers stop
taking new requests and the ones in flight run to their end. A client that
stalls must not keep the process alive for ever, so after
`cache.shutdown_timeout` seconds, or at a second signal, the process exits
with EXIT_FORCED. That cuts the remaining requests off, and is still safe
for the data: every write is a temporary file renamed into place, so a cut-off
upload leaves nothing behind that a restart would serve.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger("flame_cache")

EXIT_FORCED = 3  # 0: clean stop, 1: start-up failed, 2: bad configuration


class StopSignals:
    """SIGTERM and SIGINT: the first asks for a graceful stop, a second forces it."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.forced = threading.Event()

    def install(self) -> StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def wait(self) -> None:
        """Block until a stop is asked for. Python runs signal handlers in the
        main thread only, and the kernel may deliver the signal to any thread
        (a gRPC or request thread): a main thread blocked without a timeout
        would then not notice it until something else woke it. So it wakes
        every 0.1 s."""
        while not self.requested.wait(0.1):
            pass

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested.is_set():
            self.forced.set()
        self.requested.set()


def stop_within(stops: list[Callable[[], None]], timeout: float, signals: StopSignals) -> bool:
    """Run each stop (each blocks until its server's in-flight requests are
    done) side by side; True if all returned within `timeout` seconds and no
    second signal came."""
    threads = [threading.Thread(target=stop, name=f"stop-{i}", daemon=True) for i, stop in enumerate(stops)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        while thread.is_alive():
            left = deadline - time.monotonic()
            if left <= 0 or signals.forced.is_set():
                return False
            thread.join(min(left, 0.1))
    return True


def exit_now(code: int) -> None:
    """Leave at once: stuck request threads must not hold the process."""
    logging.shutdown()
    os._exit(code)
