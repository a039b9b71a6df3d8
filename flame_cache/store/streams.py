"""Arrow shapes shared by both protocols: what an upload means, what a read sends.

Flight's DoPut/DoGet and the HTTP mirror's Arrow-stream routes carry exactly
the same batches, so they are made here, once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from flame_cache.store.objects import (
    Kind,
    Read,
    ReadMode,
    Row,
    RowKind,
    binary_cell,
    cells_as_buffers,
    is_opaque_schema,
    join_buffers,
)

LARGE_CELL = 2**31 - 1


def response_schema(*, large: bool = False) -> pa.Schema:
    """`version: uint64, kind: utf8, data: binary`, all non-null (SPEC 4.2)."""
    return pa.schema(
        [
            pa.field("version", pa.uint64(), nullable=False),
            pa.field("kind", pa.utf8(), nullable=False),
            pa.field("data", pa.large_binary() if large else pa.binary(), nullable=False),
        ]
    )


def payload_from_table(table: pa.Table) -> pa.Buffer | pa.Table:
    """An upload as the store keeps it: opaque rows become one byte buffer
    (their `data` cells joined in order; `version` cells are ignored), any
    other schema stays a native table."""
    if not is_opaque_schema(table.schema):
        return table
    chunks = [buf for chunk in table.column("data").chunks for buf in cells_as_buffers(chunk)]
    return join_buffers(chunks) if chunks else pa.py_buffer(b"")


def read_stream(read: Read, *, chunk_size: int | None = None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and batches that answer `read`.

    One batch per row, so a large base is sent straight from its (memory
    mapped) buffer. With `chunk_size`, the base goes out as several `base`
    rows of at most that many bytes each (patches stay whole): the chunked
    ticket form.
    """
    snapshot = read.snapshot
    if snapshot.kind is Kind.TABLE and read.mode is ReadMode.FULL:
        table = snapshot.base
        return table.schema, iter(table.to_batches())
    rows = read.rows if chunk_size is None else tuple(_split_base(read.rows, chunk_size))
    large = any(row.data.size > LARGE_CELL for row in rows)
    schema = response_schema(large=large)
    return schema, (_row_batch(schema, row, large) for row in rows)


def _split_base(rows: tuple[Row, ...], chunk_size: int) -> Iterator[Row]:
    for row in rows:
        if row.kind is not RowKind.BASE or row.data.size <= chunk_size:
            yield row
            continue
        for start in range(0, row.data.size, chunk_size):
            yield Row(row.version, row.kind, row.data.slice(start, min(chunk_size, row.data.size - start)))


def _row_batch(schema: pa.Schema, row: Row, large: bool) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.array([row.version], pa.uint64()),
            pa.array([row.kind.value], pa.utf8()),
            binary_cell(row.data, large=large),
        ],
        schema=schema,
    )
