"""Client adapters: the same operations against each kind of server.

Every adapter answers `put`, `get`, `not_modified`, `patch`, `patches` and
`prepare_not_modified`. Flight rows use one `FlightAdapter` for flame-cache and
for the bare server alike (flamepy's upload schema, tickets `<key>:<version>`);
Redis rows use redis-py; HTTP rows use bench/http_adapter.py.
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import bson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from bench.http_adapter import HttpAdapter, NotAvailable

# flamepy 0.6's upload schema (flamepy.core.cache._serialize_object / upload_object)
UPLOAD_SCHEMA = pa.schema([pa.field("version", pa.uint64()), pa.field("data", pa.binary())])
MiB = 1 << 20

__all__ = ["Payload", "FlightAdapter", "StreamingClientAdapter", "RedisAdapter", "HttpAdapter", "NotAvailable", "make_adapter"]


def make_bytes(size: int, seed: int = 0) -> bytes:
    """`size` incompressible-looking bytes, made fast: one random block repeated."""
    block = random.Random(seed * 7919 + size).randbytes(min(size, MiB))
    if not block:
        return b""
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest] if rest else block * whole


class Payload:
    """One object's bytes, and the same bytes as flamepy's upload batches.

    `row_bytes` None: one row, like `put_object`; else rows of at most that
    many bytes, one batch each, like `upload_object` (1 MiB). Zero-copy: the
    batches are views of `raw`.
    """

    def __init__(self, size: int, row_bytes: int | None = MiB, seed: int = 0) -> None:
        self.size = size
        self.raw = make_bytes(size, seed)
        self.view = memoryview(self.raw)
        buffer = pa.py_buffer(self.raw)
        step = row_bytes or max(size, 1)
        starts = range(0, size, step) if size else [0]
        self.batches = [
            pa.record_batch(
                [pa.array([0], pa.uint64()), _binary_cell(buffer.slice(start, min(step, size - start)))],
                schema=UPLOAD_SCHEMA,
            )
            for start in starts
        ]


def _binary_cell(data: pa.Buffer) -> pa.Array:
    offsets = pa.array([0, data.size], type=pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), 1, [None, offsets, data])


def data_bytes(table: pa.Table) -> int:
    """Bytes in the `data` column of a response."""
    if table.num_rows == 0:
        return 0
    return pc.sum(pc.binary_length(table.column("data"))).as_py() or 0


class FlightAdapter:
    name = "flight"

    def __init__(self, endpoint: str) -> None:
        self.client = flight.FlightClient(endpoint)

    def _put(self, descriptor: flight.FlightDescriptor, payload: Payload) -> int:
        writer, reader = self.client.do_put(descriptor, UPLOAD_SCHEMA)
        for batch in payload.batches:
            writer.write_batch(batch)
        writer.done_writing()
        result = reader.read()
        writer.close()
        return bson.decode(result.to_pybytes())["version"] if result is not None else 0

    def _read(self, ticket: str) -> pa.Table:
        return self.client.do_get(flight.Ticket(ticket.encode())).read_all()

    def put(self, key: str, payload: Payload) -> int:
        return self._put(flight.FlightDescriptor.for_path(key), payload)

    def get(self, key: str) -> int:
        return data_bytes(self._read(f"{key}:0"))

    def prepare_not_modified(self, key: str, payload: Payload) -> int:
        return self.put(key, payload)

    def not_modified(self, key: str, version: int) -> None:
        table = self._read(f"{key}:{version}")
        if table.num_rows:
            raise RuntimeError(f"{key}:{version}: expected not modified (no rows), got {table.num_rows} rows")

    def patch(self, key: str, payload: Payload) -> int:
        return self._put(flight.FlightDescriptor.for_command(f"PATCH:{key}".encode()), payload)

    def patches(self, key: str, since: int) -> int:
        """Rows of a patch-only read (ticket `<key>:<since>`)."""
        return self._read(f"{key}:{since}").num_rows

    def close(self) -> None:
        self.client.close()


class RedisAdapter:
    """SET/GET of the same bytes. Versions only where a workload needs them:
    `<key>:v` holds the version a not-modified check compares, `<key>:deltas`
    is a list of patches (RPUSH to patch, LRANGE for a patch-only read)."""

    name = "redis"

    def __init__(self, endpoint: str) -> None:
        import redis

        parts = urlsplit(endpoint)
        self.r = redis.Redis(host=parts.hostname, port=parts.port, socket_timeout=600)

    def put(self, key: str, payload: Payload) -> int:
        self.r.set(key, payload.view)
        return 1

    def get(self, key: str) -> int:
        value = self.r.get(key)
        if value is None:
            raise KeyError(key)
        return len(value)

    def prepare_not_modified(self, key: str, payload: Payload) -> int:
        self.r.set(key, payload.view)
        self.r.set(f"{key}:v", 1)
        return 1

    def not_modified(self, key: str, version: int) -> None:
        current = self.r.get(f"{key}:v")
        if current is None or int(current) != version:
            raise RuntimeError(f"{key}: expected version {version}, got {current!r}")

    def patch(self, key: str, payload: Payload) -> int:
        return 1 + self.r.rpush(f"{key}:deltas", payload.view)

    def patches(self, key: str, since: int) -> int:
        return len(self.r.lrange(f"{key}:deltas", since - 1, -1))

    def close(self) -> None:
        self.r.close()


class StreamingClientAdapter:
    """flame_cache.client: puts from the payload's bytes (declared size),
    gets through the `chunked:` ticket in rows of 4 MiB, checked against the
    stored crc32c, each row counted and dropped (nothing joined). Only puts
    and gets: the other workloads are flamepy's, which the `flight` column runs."""

    name = "client"

    def __init__(self, endpoint: str) -> None:
        from flame_cache.client import Client

        self.client = Client(endpoint, timeout=600)

    def put(self, key: str, payload: Payload) -> int:
        return self.client.put(key, payload.view, size=len(payload.view)).version

    def get(self, key: str) -> int:
        return sum(len(chunk) if isinstance(chunk, bytes) else chunk.size for chunk in self.client.iter_chunks(key))

    def _not_a_client_row(self, *args) -> int:
        raise NotAvailable("n/a: the client column runs puts and gets only")

    prepare_not_modified = not_modified = patch = patches = _not_a_client_row

    def close(self) -> None:
        self.client.close()


def make_adapter(address: dict):
    kind, endpoint = address["kind"], address["endpoint"]
    if kind == "flight":
        return FlightAdapter(endpoint)
    if kind == "client":
        return StreamingClientAdapter(endpoint)
    if kind == "redis":
        return RedisAdapter(endpoint)
    if kind == "http":
        return HttpAdapter(endpoint)
    raise ValueError(f"unknown client kind {kind!r}")
