"""Reading a DoPut body: checked while it arrives, dropped if the client left.

gRPC ends a client stream the same way whether the client finished or
vanished (killed, network cut): the reader just runs out of batches. Only
the call's cancelled flag tells the two apart, so an upload is stored only if
the call is still live after its last batch; otherwise a truncated body
would replace a whole object.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.store.limits import WriteLimits
from flame_cache.store.objects import cells_as_buffers, is_opaque_schema
from flame_cache.store.store import Upload
from flame_cache.store.streams import opaque_payload
from flame_cache.store.uploads import STREAM_BYTES

log = logging.getLogger(__name__)


def receive(
    context: flight.ServerCallContext,
    reader: flight.MetadataRecordBatchReader,
    schema: pa.Schema,
    target: str,
    limits: WriteLimits,
    *,
    stream: bool,
) -> Upload:
    """The upload's payload (SPEC 4.1), read batch by batch; over the maximum
    object size it is refused at once, without reading the rest. `schema` is
    the reader's, asked for once (most pyarrow calls let go of the GIL).

    With `stream`, opaque rows past STREAM_BYTES come back as their cells
    while they still arrive: the store writes each to disk as it comes, so
    the network and the disk work at once and the body never sits whole in
    memory. Whatever consumes them gets FlightCancelledError at the end if
    the client went away, and stores nothing.
    """
    opaque = is_opaque_schema(schema)
    batches = _checked(context, reader, target, limits, opaque)
    head: list[tuple[pa.RecordBatch, list[pa.Buffer]]] = []
    for batch, cells, received in batches:
        head.append((batch, cells))
        if stream and opaque and received > STREAM_BYTES:
            rest = ((batch, cells) for batch, cells, _ in batches)
            return (cell for _, cells in itertools.chain(head, rest) for cell in cells if cell.size)
    if opaque:  # as `payload_from_table`, from the cells already found
        return opaque_payload(cell for _, cells in head for cell in cells)
    return pa.Table.from_batches([batch for batch, _ in head], schema=schema)


def _checked(
    context: flight.ServerCallContext,
    reader: flight.MetadataRecordBatchReader,
    target: str,
    limits: WriteLimits,
    opaque: bool,
) -> Iterator[tuple[pa.RecordBatch, list[pa.Buffer], int]]:
    """Each batch, its `data` cells (opaque uploads; else none) and the bytes
    received so far, as the store counts them: the cells of an opaque upload,
    the whole batch of a native table. Raises if the client left."""
    received = count = 0
    for chunk in reader:
        batch = chunk.data
        if batch is None:  # a message with app_metadata only
            continue
        cells = cells_as_buffers(batch.column(1)) if opaque else []
        received += sum(cell.size for cell in cells) if opaque else batch.nbytes
        limits.check_upload(target, received)
        count += 1
        yield batch, cells, received
    if context.is_cancelled():
        log.warning("DoPut to %r: the client went away after %d batch(es); nothing stored", target, count)
        raise flight.FlightCancelledError(f"the upload to {target!r} was cut off by the client; nothing was stored")
