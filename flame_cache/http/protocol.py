"""The rules every HTTP connection is held to, whichever parser reads it.

uvicorn (0.54) arms its keep-alive timer only after a response, so a
connection that never sends a byte is held forever, and it caps neither the
number of connections nor (for a head that arrives whole) the size of a
request head. It answers an over-large or malformed head with a bare 400
and closes at once, so a client still sending gets a TCP reset instead of
the answer.

Rules here:
- a connection must complete its request head within `header_timeout`
  seconds of connecting or of its previous response, else it is closed
  (with 408 if it sent part of a head);
- at most `max_connections` connections are open; one more makes room by
  closing the connection that has waited longest for a request head, or, if
  every connection is busy with a request, is answered 503;
- a request line over MAX_REQUEST_LINE bytes is 414, a head over
  `max_head` bytes 431, a request with both Content-Length and
  Transfer-Encoding 400 (ambiguous framing is how requests are smuggled
  past a proxy), a Transfer-Encoding other than chunked 501, any other
  malformed head 400 naming the parser's reason;
- a refused connection is answered, its sending side shut, what the client
  still sends is read and dropped for at most LINGER seconds, then closed.

`HeadGuard` holds the rules; each parser's module (h11_protocol.py,
httptools_protocol.py) tells it where a head begins and ends.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger("flame_cache.http")

MAX_REQUEST_LINE = 32 * 1024  # bytes; keys are at most 767 (2,301 percent-encoded); longer lines reach the routes, which name the bad segment
DEFAULT_MAX_HEAD = 64 * 1024  # bytes of request line and headers together
LINGER = 2.0  # seconds a refused connection's remaining input is drained


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float  # seconds to complete a request head
    max_connections: int
    max_head: int = DEFAULT_MAX_HEAD


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer given by the transport, before any route sees the request."""

    status: int
    code: str
    message: str

    def response(self) -> bytes:
        """The whole HTTP/1.1 response, JSON `{"error", "message"}` as the routes answer."""
        body = json.dumps({"error": self.code, "message": self.message}).encode()
        phrase = http.HTTPStatus(self.status).phrase
        head = (
            f"HTTP/1.1 {self.status} {phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        return head.encode("ascii") + body


def line_too_long() -> Refusal:
    return Refusal(414, "uri_too_long", f"the request line is longer than {MAX_REQUEST_LINE} bytes")


def head_too_large(max_head: int) -> Refusal:
    return Refusal(431, "headers_too_large", f"the request line and headers are larger than {max_head} bytes")


def two_framings() -> Refusal:
    return Refusal(
        400, "bad_request", "the request has both Content-Length and Transfer-Encoding; send one (RFC 9112, section 6.1)"
    )


def malformed(reason: object, status: int = 400) -> Refusal:
    return Refusal(status, "bad_request" if status == 400 else "not_implemented", f"malformed HTTP request: {reason}")


def head_refusal(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]], max_head: int) -> Refusal | None:
    """A parsed head we refuse: too long (it can arrive whole, past a
    parser's own limit), two framings, or a coding other than chunked.
    `headers` have lower-case names."""
    if len(method) + len(target) + len(b"  HTTP/1.1") > MAX_REQUEST_LINE:
        return line_too_long()
    size, names, coding = 0, set(), None
    for name, value in headers:
        size += len(name) + len(value) + 4
        names.add(name)
        if name == b"transfer-encoding":
            coding = value
    if size > max_head:
        return head_too_large(max_head)
    if b"content-length" in names and b"transfer-encoding" in names:
        return two_framings()
    if coding is not None and coding.rsplit(b",", 1)[-1].strip().lower() != b"chunked":
        return malformed("Only Transfer-Encoding: chunked is supported", 501)
    return None


class HeadGuard:
    """The rules of this module over one of uvicorn's protocol classes
    (mixed in before it). A subclass per server (`server.guarded_protocol`)
    carries its limits and its waiting list. The parser's side says whether
    the connection awaits a head (`_awaiting_head`), has sent part of one
    (`_partial_head`), and feeds what arrives (`_parse`)."""

    limits: ClassVar[ConnectionLimits]
    refusals: ClassVar[Any]  # a ThrottledLog, or None
    # Connections waiting for a request head, oldest first (a dict keeps order);
    # only the event loop's thread touches it.
    waiting: ClassVar[dict[HeadGuard, None]]
    # uvicorn's protocol provides these
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set
    client: tuple[str, int] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def _awaiting_head(self) -> bool:
        raise NotImplementedError

    def _partial_head(self) -> bool:
        raise NotImplementedError

    def _parse(self, data: bytes) -> None:
        raise NotImplementedError

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        if self._make_room():
            self._await_head()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused: the rest of what the client sends is dropped
        self._parse(data)
        if not self._awaiting_head():
            self._head_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    # -- uvicorn's hooks ---------------------------------------------------

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # may already have read a pipelined head
        if not self.transport.is_closing() and not self._lingering and self._awaiting_head():
            self._await_head()

    def shutdown(self) -> None:
        if self._lingering:
            self.transport.close()
        else:
            super().shutdown()  # type: ignore[misc]

    # -- the rules ---------------------------------------------------------

    def refuse(self, refusal: Refusal) -> None:
        """Answer `refusal`, then close once the client has stopped sending (or after LINGER s)."""
        self._head_done()
        if self.refusals is not None:
            client = "%s:%d" % self.client if self.client else "a client"
            self.refusals.log(logging.INFO, f"refused-{refusal.status}", "HTTP %s refused (%d): %s", client, refusal.status, refusal.message)
        self.transport.write(refusal.response())
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER, self.transport.close)

    def _make_room(self) -> bool:
        """Keep at most max_connections open; False if this one was refused."""
        if len(self.connections) <= self.limits.max_connections:
            return True
        oldest = next(iter(self.waiting), None)
        if oldest is not None:
            oldest._close_idle()
            return True
        self.refuse(
            Refusal(
                503,
                "too_many_connections",
                f"the server has {self.limits.max_connections} connections open, all busy "
                "(cache.http.max_connections); try again",
            )
        )
        return False

    def _await_head(self) -> None:
        self._head_done()
        self.waiting[self] = None
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _head_done(self) -> None:
        self.waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._awaiting_head():
            return
        if self._partial_head():
            seconds = f"{self.limits.header_timeout:g}"
            self.refuse(Refusal(408, "request_timeout", f"no complete request head within {seconds}s (cache.http.header_timeout)"))
        else:
            self._close_idle()

    def _close_idle(self) -> None:
        """Close a connection that sent nothing of its next request."""
        self._head_done()
        self.transport.close()
