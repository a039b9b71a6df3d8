"""Reading a DoPut body: checked while it arrives, dropped if the client left.

gRPC ends a client stream the same way whether the client finished or
vanished (killed, network cut): the reader just runs out of batches. Only
the call's cancelled flag tells the two apart, so an upload is stored only if
the call is still live after its last batch; otherwise a truncated body
would replace a whole object.

A client that closes its writer early (pyarrow does so when `with writer:`
exits on an exception) ends the stream normally, which no server can tell
from a finished upload. So a client may declare what it sends: the first
batch's app_metadata `{"size": N}` (bytes of an opaque upload's data) or
`{"rows": N}` (rows of any upload). A declared upload that goes past its
declaration is refused at once; one that ends short stores nothing.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.store import InvalidArgument
from flame_cache.store.limits import WriteLimits
from flame_cache.store.objects import cells_as_buffers, is_opaque_schema
from flame_cache.store.store import Upload
from flame_cache.store.streams import opaque_payload
from flame_cache.store.uploads import STREAM_BYTES

log = logging.getLogger(__name__)
MAX_DECLARATION_BYTES = 4096


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


@dataclass(frozen=True, slots=True)
class Declared:
    """What the client said it would send (None: not said)."""

    size: int | None = None
    rows: int | None = None

    @classmethod
    def parse(cls, metadata: pa.Buffer | None, target: str, opaque: bool) -> Declared:
        """From the first batch's app_metadata. Metadata that is not a JSON
        object naming `size` or `rows` is another client's, and ignored;
        InvalidArgument if those are not whole numbers, or `size` is given
        for a native table (its bytes depend on the encoding)."""
        if metadata is None or not 0 < metadata.size <= MAX_DECLARATION_BYTES:
            return cls()
        try:
            document = json.loads(metadata.to_pybytes())
        except (UnicodeDecodeError, ValueError):
            return cls()
        numbers = {k: v for k, v in document.items() if k in ("size", "rows")} if isinstance(document, dict) else {}
        if any(type(v) is not int or v < 0 for v in numbers.values()):
            raise InvalidArgument(
                f"the upload to {target!r}: its first app_metadata must declare whole numbers, as in "
                f'{{"size": N}} or {{"rows": N}}; got {metadata.to_pybytes()[:100]!r}'
            )
        if "size" in numbers and not opaque:
            raise InvalidArgument(f"the upload to {target!r} is a native table: declare its 'rows', not a 'size'")
        return cls(numbers.get("size"), numbers.get("rows"))

    def check(self, target: str, size: int, rows: int, *, ended: bool) -> None:
        """Refuse an upload past its declaration, or one that ended short of it."""
        for what, declared, seen in (("bytes", self.size, size), ("rows", self.rows, rows)):
            if declared is None or seen == declared or (seen < declared and not ended):
                continue
            outcome = "ended after" if seen < declared else "went past its declaration at"
            raise InvalidArgument(
                f"the upload to {target!r} {outcome} {seen} of the {declared} {what} it declared; nothing was stored"
            )


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
    received = count = rows = 0
    declared: Declared | None = None
    for chunk in reader:
        if declared is None:
            declared = Declared.parse(chunk.app_metadata, target, opaque)
        batch = chunk.data
        if batch is None:  # a message with app_metadata only
            continue
        cells = cells_as_buffers(batch.column(1)) if opaque else []
        received += sum(cell.size for cell in cells) if opaque else batch.nbytes
        rows += batch.num_rows
        limits.check_upload(target, received)
        declared.check(target, received, rows, ended=False)
        count += 1
        yield batch, cells, received
    if context.is_cancelled():
        log.warning("DoPut to %r: the client went away after %d batch(es); nothing stored", target, count)
        raise flight.FlightCancelledError(f"the upload to {target!r} was cut off by the client; nothing was stored")
    (declared or Declared()).check(target, received, rows, ended=True)
