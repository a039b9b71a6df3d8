"""uvicorn in a thread of the cache process, so HTTP shares the Flight server's store.

The socket is bound before the thread starts, so a port in use fails
start-up at once with the OS's reason. Signals stay with the main thread
(uvicorn installs none off it); `stop` asks uvicorn to finish in-flight
requests, waiting at most GRACE seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from flame_cache.app.config import Endpoint

log = logging.getLogger(__name__)
GRACE = 10.0


class HttpServer:
    def __init__(self, app: FastAPI, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.config = uvicorn.Config(
            app,
            http="h11",
            lifespan="off",
            log_config=None,  # the process's logging, as configured by the CLI
            access_log=False,
            date_header=False,  # DateHeaders sends Date, so Last-Modified is never later
            timeout_graceful_shutdown=int(GRACE),
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self.port = endpoint.port

    @property
    def url(self) -> str:
        host = f"[{self.endpoint.host}]" if ":" in self.endpoint.host else self.endpoint.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> HttpServer:
        """Bind, then serve on a thread; OSError if the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self.endpoint.host else socket.AF_INET
        # Name the protocol: asyncio sets TCP_NODELAY only on sockets it knows
        # are TCP, and without it small bodies wait ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.endpoint.host, self.endpoint.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the HTTP server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is None:
            return
        self.server.should_exit = True
        self._thread.join(GRACE + 5)
        if self._thread.is_alive():
            log.warning("HTTP server did not stop within %.0fs", GRACE + 5)
