"""Every HTTP request's way in and out: one middleware, one wrapper of `send`.

In, before any route, in this order: the Host must be allowed and an unsafe
request from a browser must come from this server's own origin (origins.py),
and the target must decode (targets.py); a refusal is answered here. Out:
every response gets its Date (dates.py); a bug answers 500 JSON naming the
error if no response had started, and the connection stays usable
(Starlette's last resort would re-raise and uvicorn drop it), while one that
had started can only be cut short, so the client sees an incomplete body
rather than wrong data; every answer of 400 or more, and every response
cut short, logs one line (errors.log_error_response); and every request is
reported to the metrics once it has ended (its operation, metrics.py; its
status; its time; the body bytes it received and sent), with no Python call
but for its name. These were seven middlewares; as one, a request pays for
one wrapper of `send`, not seven.
"""

from __future__ import annotations

import logging
import time

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flame_cache.http.dates import dated
from flame_cache.http.errors import error_response, log_error_response, log_failure
from flame_cache.http.metrics import Operations
from flame_cache.http.origins import AllowedHosts, origin_refusal
from flame_cache.http.targets import target_problem
from flame_cache.http.zerocopy import ZEROCOPY
from flame_cache.metrics import HTTP, RequestMetrics

log = logging.getLogger(__name__)
LOGGED_BODY_BYTES = 4096  # of an error response, for its code and message; error bodies are small
_STATUSES = {status: str(status) for status in range(100, 600)}  # the metrics' outcome label, made once


class Edge:
    """`requests` is what every request is reported to, named by `operations`."""

    def __init__(self, app: ASGIApp, hosts: AllowedHosts, requests: RequestMetrics, operations: Operations) -> None:
        self.app = app
        self.hosts = hosts
        self.operations = operations
        self.flying = requests.in_flight(HTTP)
        self.report = requests.report

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(receive, send)
        self.flying.append(True)
        started = time.perf_counter()
        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, exchange.receive, exchange.send)
            else:
                await self._serve(scope, exchange)
        except Exception as exc:
            log_failure(scope, "aborted", f"{type(exc).__name__}: {exc}", server_side=True)
            raise
        finally:
            seconds = time.perf_counter() - started
            status = _STATUSES.get(exchange.status) or str(exchange.status or 500)  # none sent: uvicorn's 500
            self.report((HTTP, self.operations.name(scope), status, seconds, exchange.received, exchange.sent))
            self.flying.pop()
        if exchange.status >= 400:
            log_error_response(scope, exchange.status, bytes(exchange.body))

    def _refusal(self, scope: Scope) -> Response | None:
        """The answer to a request refused before routing, or None."""
        problem = self.hosts.refusal(scope)
        if problem is not None:
            log.info("%s %s refused (400): %s", scope["method"], scope["path"], problem)
            return error_response(400, "host_not_allowed", problem)
        problem = origin_refusal(scope)
        if problem is not None:
            log.info("%s", problem)
            return error_response(403, "cross_origin", problem)
        problem = target_problem(scope)
        if problem is not None:
            return error_response(400, "bad_request", problem)
        return None

    async def _serve(self, scope: Scope, exchange: _Exchange) -> None:
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if exchange.started:
                raise
            response = error_response(500, "internal", f"internal error: {type(exc).__name__}: {exc}")
            await response(scope, exchange.receive, exchange.send)


class _Exchange:
    """One request's way in and its response's way out: the body bytes
    counted both ways; the response dated, its status and error body kept."""

    __slots__ = ("_receive", "_send", "status", "started", "body", "received", "sent")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self.status = 0
        self.started = False
        self.body = bytearray()
        self.received = self.sent = 0

    async def receive(self) -> Message:
        message = await self._receive()
        self.received += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            message["headers"] = dated(list(message.get("headers", [])), time.time())
        elif message["type"] == ZEROCOPY:  # a file's bytes by sendfile (zerocopy.py): no body to look at
            self.sent += message["count"]
        else:
            body = message.get("body", b"")
            self.sent += len(body)
            if self.status >= 400 and len(self.body) < LOGGED_BODY_BYTES:
                self.body.extend(body[: LOGGED_BODY_BYTES - len(self.body)])
        await self._send(message)
