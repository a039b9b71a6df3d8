"""A response head and a short body leave in one write: one system call,
one TCP segment.

uvicorn writes a response's head as soon as the app starts the response,
and its body on the next message, so a short response costs two `send`
calls; on the 1 KiB GET they were a fifth of the event loop's time
(bench/README.md, "Parser and loop"). Each request's cycle gets its own
`CorkedTransport`: the head is held until the first body write, which
carries it, and is written at the latest once the message after it has
been handled (a HEAD, a 304, an empty body) or before the connection is
closed. What is written before the head (100 Continue) goes at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message

JOINED_BYTES = 64 * 1024  # a longer body is written after its head, not copied into one buffer with it


class CorkedTransport:
    """The transport of one response: its head held, then sent with the body."""

    __slots__ = ("_transport", "_cycle", "_armed", "_head")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle  # uvicorn's RequestResponseCycle: it writes the head once response_started
        self._armed = True
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._armed and self._cycle.response_started:
            self._armed, self._head = False, data
            return
        head, self._head = self._head, None
        if head is None:
            self._transport.write(data)
        elif len(data) <= JOINED_BYTES:
            self._transport.write(head + data)
        else:
            self._transport.write(head)
            self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def corked_send(send: Callable[[Message], Awaitable[None]], corked: CorkedTransport) -> Callable:
    """`send`, with a held head written once a body message is handled, and
    before any other message (zerocopysend writes to the socket itself)."""

    async def send_corked(message: Message) -> None:
        kind = message["type"]
        if kind not in ("http.response.start", "http.response.body"):
            corked.flush()
        try:
            await send(message)
        finally:
            if kind != "http.response.start":
                corked.flush()

    return send_corked
