"""Reading a DoPut body: checked while it arrives, dropped if the client left.

gRPC ends a client stream the same way whether the client finished or
vanished (killed, network cut): the reader just runs out of batches. Only
the call's cancelled flag tells the two apart, so an upload is stored only if
the call is still live after its last batch; otherwise a truncated body
would replace a whole object.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.store.limits import WriteLimits
from flame_cache.store.objects import Body, cells_as_buffers, is_opaque_schema
from flame_cache.store.streams import payload_from_table

log = logging.getLogger(__name__)


def receive(
    context: flight.ServerCallContext, reader: flight.MetadataRecordBatchReader, target: str, limits: WriteLimits
) -> Body | pa.Table:
    """The upload's payload (SPEC 4.1), read batch by batch; over the maximum
    object size it is refused at once, without reading the rest."""
    schema = reader.schema
    opaque = is_opaque_schema(schema)
    batches: list[pa.RecordBatch] = []
    received = 0
    for chunk in reader:
        batch = chunk.data
        if batch is None:  # a message with app_metadata only
            continue
        received += payload_bytes(batch, opaque)
        limits.check_upload(target, received)
        batches.append(batch)
    if context.is_cancelled():
        log.warning("DoPut to %r: the client went away after %d batch(es); nothing stored", target, len(batches))
        raise flight.FlightCancelledError(f"the upload to {target!r} was cut off by the client; nothing was stored")
    return payload_from_table(pa.Table.from_batches(batches, schema=schema))


def payload_bytes(batch: pa.RecordBatch, opaque: bool) -> int:
    """What the batch adds to the object's size, as the store counts it: the
    `data` cells of an opaque upload, the whole batch of a native table."""
    if opaque:
        return sum(buffer.size for buffer in cells_as_buffers(batch.column(1)))
    return batch.nbytes
