"""Raw pyarrow.flight calls in the shapes our tests use: flamepy's opaque upload
schema, the one-PutResult DoPut, and the version/kind/data rows of DoGet."""

from __future__ import annotations

import bson
import pyarrow as pa
import pyarrow.flight as flight

OPAQUE = pa.schema([("version", pa.uint64()), ("data", pa.binary())])
RESPONSE = pa.schema(
    [
        pa.field("version", pa.uint64(), nullable=False),
        pa.field("kind", pa.utf8(), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
    ]
)
FORMAT = b"flame.cache.format"
VERSION = b"flame.cache.version"
MiB = 1 << 20


def opaque(data: bytes, *, row_bytes: int | None = None, version: int = 0, data_type=pa.binary()) -> pa.Table:
    """flamepy's upload shape: `version: uint64, data: binary`, optionally in several rows."""
    step = row_bytes or max(len(data), 1)
    cells = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    schema = pa.schema([("version", pa.uint64()), ("data", data_type)])
    return pa.table(
        {"version": pa.array([version] * len(cells), pa.uint64()), "data": pa.array(cells, data_type)}, schema=schema
    )


def put(client: flight.FlightClient, descriptor: flight.FlightDescriptor, table: pa.Table) -> dict:
    """DoPut `table`; the one PutResult's BSON app_metadata, decoded."""
    writer, reader = client.do_put(descriptor, table.schema)
    with writer:
        writer.write_table(table)
        writer.done_writing()
        first = reader.read()
        assert first is not None, "DoPut answered no PutResult"
        assert reader.read() is None, "DoPut answered more than one PutResult"
    return bson.decode(first.to_pybytes())


def put_path(client: flight.FlightClient, path: str, data: bytes, **shape) -> dict:
    return put(client, flight.FlightDescriptor.for_path(path), opaque(data, **shape))


def patch(client: flight.FlightClient, key: str, data: bytes) -> dict:
    return put(client, flight.FlightDescriptor.for_command(f"PATCH:{key}".encode()), opaque(data))


def get(client: flight.FlightClient, ticket: str) -> pa.Table:
    return client.do_get(flight.Ticket(ticket.encode())).read_all()


def rows(table: pa.Table) -> list[tuple[int, str, bytes]]:
    assert table.schema.names == ["version", "kind", "data"], table.schema
    return list(zip(*(table.column(n).to_pylist() for n in ("version", "kind", "data"))))
