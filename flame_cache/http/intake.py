"""A request body reaches the app in pieces of up to PIECE_BYTES, copied once.

uvicorn's httptools protocol appends each chunk llhttp parses to a
bytearray, stops reading from the socket past 64 KiB and, when the app
asks, copies the bytearray into a new bytes: two copies of every byte,
and a message (with a pause and a resume of the socket, and a trip through
the edge and Starlette) for every 64-256 KiB. Here a cycle's chunks are
kept as llhttp made them and joined once when the app asks (one chunk goes
as it is), and reading stops only past PIECE_BYTES: a 64 MiB upload is
about 64 messages, each already the piece the store writes
(`http/bodies.py`), and while the store's thread writes one piece the
connection reads the next (at most PIECE_BYTES and one socket read are
held per connection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Message

from flame_cache.store.wire import PIECE_BYTES


class BodyBuffer:
    """The body bytes of one request read from the socket and not yet received by the app."""

    __slots__ = ("_chunks", "_size", "received")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self.received = 0  # the body's bytes read so far, taken or not

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; True once the buffer holds PIECE_BYTES or more (stop reading)."""
        self._chunks.append(chunk)
        self._size += len(chunk)
        self.received += len(chunk)
        return self._size >= PIECE_BYTES

    def take(self) -> bytes:
        """All the bytes held, joined (a single chunk as it is), and the buffer emptied."""
        chunks, self._chunks, self._size = self._chunks, [], 0
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


def buffered_receive(receive: Callable[[], Awaitable[Message]], buffer: BodyBuffer) -> Callable[[], Awaitable[Message]]:
    """uvicorn's `receive` (which waits for body bytes, resumes reading and
    tells a disconnect) with the body taken from `buffer`."""

    async def receive_buffered() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            message["body"] = buffer.take()
        return message

    return receive_buffered
