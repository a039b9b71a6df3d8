"""uvicorn in a thread of the cache process, so HTTP shares the Flight server's store.

The socket is bound before the thread starts, so a port in use fails
start-up at once with the OS's reason. Signals stay with the main thread
(uvicorn installs none off it); `stop` asks uvicorn to finish in-flight
requests, waiting at most GRACE seconds. Connections are served by
`protocol.HeadGuard` under `ConnectionLimits`, on the parser named
here (PARSER), in the loop named here (LOOP): never whatever is installed.

TLS (`https://`): the SSLContext the process built and checked at start-up
(app/tls.py) is handed to uvicorn after its configuration is loaded, so
uvicorn wraps each connection in it and the guarded protocol runs inside,
as over plain TCP (its header timeout starts once the handshake is done).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import threading
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from flame_cache.http.h11_protocol import GuardedH11Protocol
from flame_cache.http.httptools_protocol import GuardedHttpToolsProtocol
from flame_cache.http.protocol import ConnectionLimits
from flame_cache.http.throttle import ThrottledLog

log = logging.getLogger(__name__)
GRACE = 10.0
# Pending connections the kernel queues, and the most asyncio accepts in one
# go, before any of them counts against max_connections: up to twice this
# many descriptors above max_connections, for a moment (nginx's default).
BACKLOG = 511
# accept() fails with these when the process or the system is out of descriptors or memory.
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# uvicorn's HTTP parser and event loop, named (never "auto": the guards are
# per parser, zero-copy sends need asyncio's sendfile, and the accept-error
# handler is asyncio's); chosen on measurement (bench/README.md, "Parser and loop").
PARSER = "httptools"
LOOP = "asyncio"


class _Server(uvicorn.Server):
    """uvicorn's server, with the loop's errors logged at a bounded rate."""

    def __init__(self, config: uvicorn.Config, throttled: ThrottledLog) -> None:
        super().__init__(config)
        self.throttled = throttled

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(self._loop_error)
        await super().startup(sockets)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio reports a failed accept() once per waiting connection, with
        a traceback, and retries a second later: one line per interval instead."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES:
            self.throttled.log(
                logging.ERROR,
                f"accept-{exc.errno}",
                "HTTP cannot accept connections: %s; retrying (see cache.http.max_connections and the open-file limit)",
                exc.strerror or exc,
            )
            return
        message = str(context.get("message", "error"))
        if self.throttled.log(logging.ERROR, f"loop-{message}", "HTTP event loop: %s", message):
            loop.default_exception_handler(context)


def _not_uvicorn_invalid_request(record: logging.LogRecord) -> bool:
    """uvicorn warns once per malformed request; the protocol logs those, throttled."""
    return record.getMessage() != "Invalid HTTP request received."


logging.getLogger("uvicorn.error").addFilter(_not_uvicorn_invalid_request)


class HttpServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None = None,
        parser: str | None = None,
        loop: str | None = None,
    ) -> None:
        """Serve `app` on `host`:`port` (0: a free port, in `port` once started),
        over TLS with `ssl_context` if given; `parser` and `loop` replace
        PARSER and LOOP (the benchmark compares them)."""
        self.host = host
        self.tls = ssl_context is not None
        self.limits = limits
        throttled = ThrottledLog(log)
        self.config = uvicorn.Config(
            app,
            http=guarded_protocol(limits, throttled, parser or PARSER),
            loop=loop or LOOP,
            lifespan="off",
            log_config=None,  # the process's logging, as configured by the CLI
            access_log=False,
            date_header=False,  # the edge (http/edge.py) sends Date, so Last-Modified is never later
            timeout_graceful_shutdown=int(GRACE),
            backlog=BACKLOG,
        )
        if ssl_context is not None:
            self.config.load()  # uvicorn's own load would make a context of its own settings: ours replaces it
            self.config.ssl = ssl_context
        self.parser, self.loop = parser or PARSER, loop or LOOP
        self.server = _Server(self.config, throttled)
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> HttpServer:
        """Bind, then serve on a thread; OSError if the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # Name the protocol: asyncio sets TCP_NODELAY only on sockets it knows
        # are TCP, and without it small bodies wait ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
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
        log.info("HTTP on uvicorn %s, parser %s, event loop %s", uvicorn.__version__, self.parser, self.loop)
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


PROTOCOLS = {"h11": GuardedH11Protocol, "httptools": GuardedHttpToolsProtocol}  # uvicorn's parsers, guarded


def guarded_protocol(limits: ConnectionLimits, refusals: Any, parser: str) -> type:
    """A protocol class for one server, on `parser` (h11 or httptools): its
    limits, and its own waiting list; ValueError for another parser."""
    base = PROTOCOLS.get(parser)
    if base is None:
        raise ValueError(f"unknown HTTP parser {parser!r}: h11 or httptools")
    return type(f"Server{base.__name__}", (base,), {"limits": limits, "refusals": refusals, "waiting": {}})
