"""The connection rules of protocol.py on uvicorn's httptools protocol.

llhttp (httptools' parser) sets no limit on a head's size and keeps a
header's value until it is whole, so the bytes of an incomplete head are
counted as they arrive and the head is refused once past the limit: it
never holds more than `max_head` and one read. A whole head is checked as
h11's is (protocol.head_refusal) before its request starts. A head llhttp
refuses is answered with llhttp's reason.

On plain TCP with asyncio's loop (whose transports send files natively)
each request is offered ASGI's zerocopysend extension (zerocopy.py); every
response's head leaves with its first body write (corked.py); a request's
body reaches the app in pieces of up to 1 MiB, copied once (intake.py),
and a long one is read from the socket up to 1 MiB at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import is_ssl

from flame_cache.http.protocol import (
    MAX_REQUEST_LINE,
    HeadGuard,
    Refusal,
    head_refusal,
    head_too_large,
    line_too_long,
    malformed,
    two_framings,
)
from flame_cache.http.corked import CorkedTransport, corked_send
from flame_cache.http.intake import BodyBuffer, buffered_receive
from flame_cache.http.zerocopy import ZEROCOPY, wrap_send
from flame_cache.store.wire import PIECE_BYTES

LONG_BODY = PIECE_BYTES  # a body longer than this is read from the socket PIECE_BYTES at a time


class Refused(Exception):
    """Raised in a parser callback: llhttp stops, and the head is refused."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def refusal_of(exc: httptools.HttpParserError) -> Refusal:
    """What to answer for a head llhttp (or a callback of ours) stopped at."""
    if isinstance(exc.__context__, Refused):
        return exc.__context__.refusal
    reason = str(exc)
    if "Content-Length" in reason and "Transfer-Encoding" in reason:
        return two_framings()
    return malformed(reason)


class GuardedHttpToolsProtocol(HeadGuard, HttpToolsProtocol):
    """One HTTP connection read by httptools, under protocol.py's rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._begun = False  # a request's first byte was read
        self._headed = False  # ... and its whole head, and its body is not yet all read
        self._head_bytes = 0  # bytes read while a head was incomplete
        self._zero_copy = False
        self._body = BodyBuffer()  # the body of the request being read
        self._long_reads = False  # the transport reads PIECE_BYTES at a time (_long_body_reads)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        native = type(self.loop).sendfile is not asyncio.AbstractEventLoop.sendfile  # uvloop has none
        self._zero_copy = native and not is_ssl(transport)

    def _awaiting_head(self) -> bool:
        """No head being read or answered: the last request was read whole and answered."""
        return not self._headed and (self.cycle is None or self.cycle.response_complete)

    def _partial_head(self) -> bool:
        return self._begun

    def _parse(self, data: bytes) -> None:
        """uvicorn's data_received, answering refusals as protocol.py says."""
        self._unset_keepalive_if_required()
        if not self._headed:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self.refuse(refusal_of(exc))
            return
        if self._begun and not self._headed:
            if len(self.url) > MAX_REQUEST_LINE:
                self.refuse(line_too_long())
            elif self._head_bytes > self.limits.max_head:
                self.refuse(head_too_large(self.limits.max_head))

    # -- parser callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True

    def on_headers_complete(self) -> None:
        refusal = head_refusal(self.parser.get_method(), self.url, self.headers, self.limits.max_head)
        if refusal is not None:
            raise Refused(refusal)
        self._headed = True
        if self._zero_copy:
            self.scope["extensions"] = {ZEROCOPY: {}}
        super().on_headers_complete()
        if self.cycle.scope is self.scope:  # else an upgrade: no request to answer here
            self._wrap(self.cycle)

    def _wrap(self, cycle: Any) -> None:
        """Put the cycle's send, transport and receive behind ours, until its
        response is sent. Each wrapper refers to the cycle, so left on it they
        would make every request a reference cycle that only the garbage
        collector frees (27 objects a request; collections took about 6% of a
        small GET's CPU, bench/README.md). The app keeps its own references."""
        transport, send, receive, on_response = self.transport, cycle.send, cycle.receive, cycle.on_response
        if self._zero_copy:
            send = wrap_send(send, transport, cycle)
        cycle.transport = corked = CorkedTransport(transport, cycle)
        cycle.send = corked_send(send, corked)
        self._body = BodyBuffer()
        cycle.receive = buffered_receive(receive, self._body)

        def sent() -> None:
            del cycle.send, cycle.receive
            cycle.transport, cycle.on_response = transport, on_response
            on_response()

        cycle.on_response = sent

    def on_body(self, body: bytes) -> None:
        """uvicorn's on_body, the bytes kept in the cycle's BodyBuffer (intake.py)."""
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        if self._body.add(body):
            self.flow.pause_reading()
        cycle.message_event.set()
        self._long_body_reads()

    def _long_body_reads(self) -> None:
        """Once a body passes LONG_BODY the connection reads up to
        PIECE_BYTES at a time (asyncio's transport reads 256 KiB at most)
        until the request ends: fewer, larger reads, often a whole piece in
        one chunk. Other requests keep the default: each read allocates its
        maximum first, which costs 1 MiB bodies more than it saves them."""
        if self._body.received > LONG_BODY and not self._long_reads and hasattr(self.transport, "max_size"):
            self.transport.max_size = PIECE_BYTES  # type: ignore[attr-defined]
            self._long_reads = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._begun = self._headed = False
        self._head_bytes = 0
        if self._long_reads:
            del self.transport.max_size  # type: ignore[attr-defined]  # the class's default again
            self._long_reads = False
        if self.cycle.response_complete and not self._lingering and not self.transport.is_closing():
            self._await_head()  # answered before its body was read: the next head's time starts now
