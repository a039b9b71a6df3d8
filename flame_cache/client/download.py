"""A read over Flight: DoGet of the `chunked:` ticket (SPEC 4.2, store/wire.py).

The chunked form sends an opaque object's base as rows of at most 4 MiB
(so an object of any size fits gRPC's messages), then one row per patch;
its schema metadata carries the base's crc32c (`flame.cache.crc32c`) where
the server stored one. `Download` hands out the base's bytes row by row as
they arrive, sums their crc32c, and stops the stream at the first patch:
a read holds one row at a time. A native table is handed out as the Arrow
IPC stream of its batches, as the HTTP mirror sends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.client.errors import ChecksumMismatch, ClientError, InvalidArgument
from flame_cache.store.checksum import from_metadata
from flame_cache.store.checksum import extend as crc_extend
from flame_cache.store.objects import FORMAT_KEY, FORMAT_TABLE, VERSION_KEY, cell_slices
from flame_cache.store.wire import CHUNKED_TICKET


def ticket(key: str) -> flight.Ticket:
    """The chunked ticket for `key`, version 0 (send everything).
    InvalidArgument for a key with ':', which the ticket would read as a
    version (the server refuses every other bad key itself)."""
    if ":" in key:
        raise InvalidArgument(key, "not an object key: a key segment may not contain ':'")
    return flight.Ticket(f"{CHUNKED_TICKET}{key}".encode())


@dataclass(slots=True)
class Received:
    """What a finished download got: the version, its bytes, and the
    stored checksum it was checked against (None: the object has none)."""

    key: str
    version: int
    size: int
    crc32c: int | None


class Download:
    """The rows of one DoGet, read as they come. Iterate `chunks()` once;
    then `received` says what came. pyarrow's errors propagate."""

    def __init__(self, reader: flight.FlightStreamReader, key: str) -> None:
        self._reader = reader
        self.key = key
        self.schema = reader.schema
        metadata = self.schema.metadata or {}
        self.is_table = metadata.get(FORMAT_KEY) == FORMAT_TABLE
        self.stored_crc = None if self.is_table else _stored_crc(metadata, key)
        self.received: Received | None = None

    def chunks(self) -> Iterator[pa.Buffer | bytes]:
        """The object's bytes in order: the base of an opaque object (its
        deltas are not part of it, as over HTTP), or a table's IPC stream.
        ChecksumMismatch after the last chunk if the base does not match."""
        if self.is_table:
            yield from self._table_stream()
        else:
            yield from self._base()

    def cancel(self) -> None:
        """Stop the server's stream (a reader that stopped early)."""
        self._reader.cancel()

    def _base(self) -> Iterator[pa.Buffer]:
        crc = size = 0
        version = None
        for batch in self._batches():
            kinds, versions, cells = batch.column(1).to_pylist(), batch.column(0).to_pylist(), cell_slices(batch.column(2))
            for row, kind in enumerate(kinds):
                if kind != "base":
                    self.cancel()  # the patches follow: not part of the bytes
                    self._finish(version, size, crc)
                    return
                version = versions[row]
                cell = cells[row]
                crc, size = crc_extend(crc, cell), size + cell.size
                yield cell
        self._finish(version, size, crc)

    def _finish(self, version: int | None, size: int, crc: int) -> None:
        if version is None:
            raise ClientError(self.key, "the server sent no base row")
        if self.stored_crc is not None and crc != self.stored_crc:
            raise ChecksumMismatch(
                self.key,
                f"the bytes received do not match its stored checksum "
                f"(crc32c {self.stored_crc:08x} stored, {crc:08x} received); do not use them",
            )
        self.received = Received(self.key, version, size, self.stored_crc)

    def _table_stream(self) -> Iterator[bytes]:
        sink = _Collected()
        size = 0
        with pa.ipc.new_stream(sink, self.schema) as writer:
            for batch in self._batches():
                writer.write_batch(batch)
                for piece in sink.drain():
                    size += len(piece)
                    yield piece
        for piece in sink.drain():
            size += len(piece)
            yield piece
        version = int((self.schema.metadata or {}).get(VERSION_KEY, b"0"))
        self.received = Received(self.key, version, size, None)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                chunk = self._reader.read_chunk()
            except StopIteration:
                return
            if chunk.data is not None:
                yield chunk.data


def _stored_crc(metadata: dict[bytes, bytes], key: str) -> int | None:
    try:
        return from_metadata(metadata)
    except ValueError as exc:  # not 8 hex digits
        raise ClientError(key, f"the server sent a malformed checksum: {exc}") from None


class _Collected:
    """A file for pyarrow's IPC writer that keeps what it is given, to hand on."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:  # noqa: ANN001 (any buffer)
        self._parts.append(bytes(data))
        return len(self._parts[-1])

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def drain(self) -> list[bytes]:
        parts, self._parts = self._parts, []
        return parts
