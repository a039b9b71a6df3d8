"""Large bodies sent from their files by the kernel (sendfile), not copied
through Python: ASGI's `http.response.zerocopysend` extension.

A raw GET of an object read from its file otherwise costs, per 1 MiB piece,
a thread hand-over, a pread into a new bytes object and a copy into the
socket. With sendfile the bytes go from the page cache to the socket; the
event loop only waits for the socket to take them. A large base was read
whole for its checksum when it was loaded, so its pages are cached and a
send does not wait for the disk (a cold page would be read by the kernel
inside sendfile, on the loop's thread). Middlewares that count body bytes
must count a zerocopysend message's `count` too (the edge's metrics do).

The server side (httptools_protocol.py) advertises the extension in
`scope["extensions"]` on plain TCP with asyncio's loop, whose transports
send files natively; a route uses it only when it is there (`offered`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from flame_cache.store.blobs import FileBlob

ZEROCOPY = "http.response.zerocopysend"


def offered(scope: Scope) -> bool:
    return ZEROCOPY in (scope.get("extensions") or {})


class Descriptor:
    """The file object asyncio's sendfile asks for, over a descriptor it does not own."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return offset  # asyncio moves the position after sending; reads here use offsets only


async def send_file(transport: asyncio.Transport, fd: int, offset: int, count: int) -> bool:
    """`count` bytes of `fd` from `offset` onto `transport` (after what it
    holds); False if the client went away (the transport is then closed)."""
    try:
        await asyncio.get_running_loop().sendfile(transport, Descriptor(fd), offset, count, fallback=False)
    except ConnectionError:
        transport.close()
        return False
    return True


def wrap_send(send: Callable[[Message], Awaitable[None]], transport: asyncio.Transport, cycle: Any) -> Callable:
    """uvicorn's httptools `send`, also taking zerocopysend messages: the
    bytes go by sendfile, then an empty body message closes or continues the
    response as the cycle expects (its Content-Length accounting included)."""

    async def zero_copy_send(message: Message) -> None:
        if message["type"] != ZEROCOPY:
            return await send(message)
        if not cycle.disconnected and cycle.scope["method"] != "HEAD":
            count = message["count"]
            if not await send_file(transport, message["file"].fileno(), message.get("offset", 0), count):
                cycle.disconnected = True  # as uvicorn marks a client gone mid-response
                return
            cycle.expected_content_length -= count
        await send({"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)})

    return zero_copy_send


class BlobFileResponse(Response):
    """Bytes [start, end) of a FileBlob, sent by zerocopysend; the blob (and
    so its descriptor) is held until the last byte is sent."""

    def __init__(self, blob: FileBlob, start: int, end: int, status: int, headers: dict[str, str], media_type: str) -> None:
        super().__init__(None, status, headers, media_type)
        self.blob, self.start, self.end = blob, start, end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        runs = self.blob.spans(self.start, self.end)
        for i, (fd, offset, length) in enumerate(runs):
            await send({"type": ZEROCOPY, "file": Descriptor(fd), "offset": offset, "count": length,
                        "more_body": i < len(runs) - 1})  # fmt: skip
        if not runs:
            await send({"type": "http.response.body", "body": b""})
