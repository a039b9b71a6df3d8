"""Arrow shapes shared by both protocols: what an upload means, what a read sends.

Flight's DoPut/DoGet and the HTTP mirror's Arrow-stream routes carry exactly
the same batches, so they are made here, once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

import pyarrow as pa

from flame_cache.store.objects import (
    Kind,
    Read,
    ReadMode,
    Row,
    RowKind,
    binary_cell,
    binary_cells,
    cells_as_buffers,
    is_opaque_schema,
    join_buffers,
)

LARGE_CELL = 2**31 - 1
_SLOTS = {ReadMode.FULL: "full", ReadMode.PATCHES: "patches"}  # the reads kept in `Snapshot.responses`
PATCH_BATCH_BYTES = 4 * 1024 * 1024  # patch rows share a batch up to this much data


@functools.cache
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
    """An upload as the store takes it: opaque rows become one byte buffer
    (their `data` cells joined in order; `version` cells are ignored), any
    other schema stays a native table. Only short uploads come here (the
    store streams longer ones to disk), so the join copies little."""
    if not is_opaque_schema(table.schema):
        return table
    return opaque_payload(buf for chunk in table.column("data").chunks for buf in cells_as_buffers(chunk))


def opaque_payload(cells: Iterable[pa.Buffer]) -> pa.Buffer:
    """The bytes of an opaque upload: its `data` cells joined in order (no
    copy for a single cell)."""
    chunks = [cell for cell in cells if cell.size]
    return join_buffers(chunks) if chunks else pa.py_buffer(b"")


def read_stream(read: Read, *, chunk_size: int | None = None) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """The schema and batches that answer `read` (batched by `row_groups`).

    With `chunk_size`, the base goes out as several `base` rows of at most
    that many bytes each: the chunked ticket form.
    """
    snapshot = read.snapshot
    if snapshot.kind is Kind.TABLE and read.mode is ReadMode.FULL:
        table = snapshot.base
        return table.schema, table.to_batches()
    rows = read.rows if chunk_size is None else tuple(_split_base(read.rows, chunk_size))
    large = any(row.data.size > LARGE_CELL for row in rows)
    schema = response_schema(large=large)
    return schema, [rows_batch(schema, group, large) for group in row_groups(rows)]


def response_table(read: Read, *, chunk_size: int | None = None) -> pa.Table:
    """`read_stream` as one table, kept with its snapshot for the next reader:
    the full read's, and the latest patch-only read's (the clients of an
    object mostly hold the same version), so repeated gets do no Python work
    per row. The patch-only table holds a copy of its deltas."""
    slot = _SLOTS.get(read.mode) if chunk_size is None else None
    if slot is not None:
        rows, table = read.snapshot.responses.get(slot, (None, None))
        if rows == len(read.rows) and table is not None:  # the row count tells patch-only reads apart
            return table
    schema, batches = read_stream(read, chunk_size=chunk_size)
    table = pa.Table.from_batches(batches, schema=schema)
    if slot is not None:
        read.snapshot.responses[slot] = (len(read.rows), table)
    return table


class _RowLike(Protocol):
    kind: RowKind
    data: pa.Buffer | None  # None only for a base row


_RowT = TypeVar("_RowT", bound=_RowLike)


def row_groups(rows: Iterable[_RowT]) -> Iterator[tuple[_RowT, ...]]:
    """Rows as they share batches: a base row alone, so its cell goes out
    straight from its (memory-mapped) buffer; consecutive patch rows together,
    up to PATCH_BATCH_BYTES of data, so a patch-only read of 100 small deltas
    is one message rather than 100. Both protocols batch this way."""
    group: list[_RowT] = []
    size = 0
    for row in rows:
        if group and (row.kind is RowKind.BASE or size + row.data.size > PATCH_BATCH_BYTES):
            yield tuple(group)
            group, size = [], 0
        if row.kind is RowKind.BASE:
            yield (row,)
        else:
            group.append(row)
            size += row.data.size
    if group:
        yield tuple(group)


def rows_batch(schema: pa.Schema, rows: Sequence[Row], large: bool) -> pa.RecordBatch:
    """One batch of `rows`; a single row's cell is not copied."""
    cells = [row.data for row in rows]
    data = binary_cell(cells[0], large=large) if len(cells) == 1 else binary_cells(cells, large=large)
    return pa.record_batch(
        [pa.array([r.version for r in rows], pa.uint64()), pa.array([r.kind.value for r in rows], pa.utf8()), data],
        schema=schema,
    )


def _split_base(rows: tuple[Row, ...], chunk_size: int) -> Iterator[Row]:
    for row in rows:
        if row.kind is not RowKind.BASE or row.data.size <= chunk_size:
            yield row
            continue
        for start in range(0, row.data.size, chunk_size):
            yield Row(row.version, row.kind, row.data.slice(start, min(chunk_size, row.data.size - start)))
