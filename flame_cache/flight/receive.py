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

A client that learns its size only at the end (it reads a pipe) declares
`{"size": "trailer"}` first and its size last, in a message with
app_metadata only, `{"size": N}`; an upload that ends without that
trailer, or whose trailer is not what it sent, stores nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.flight import metrics as calls
from flame_cache.store import InvalidArgument
from flame_cache.store.objects import cells_as_buffers

log = logging.getLogger(__name__)
MAX_DECLARATION_BYTES = 4096
TRAILER = "trailer"  # `{"size": "trailer"}`: the size is declared at the end


def received_batches(
    context: flight.ServerCallContext, reader: flight.MetadataRecordBatchReader, target: str, opaque: bool
) -> Iterator[pa.RecordBatch]:
    """The upload's record batches as they arrive (`store.wire.upload_body`
    decodes them); FlightCancelledError at the end if the client went away,
    InvalidArgument if it did not send what it declared."""
    received = count = rows = 0
    declared: Declared | None = None
    trailer: Declared | None = None
    for chunk in reader:
        first, batch = declared is None, chunk.data
        if first:
            declared = Declared.parse(chunk.app_metadata, target, opaque)
        if batch is None:  # a message with app_metadata only: a trailer, if one was promised
            if declared.trailer and not first:
                trailer = Declared.parse(chunk.app_metadata, target, opaque, trailer=True)
            continue
        if trailer is not None:
            raise InvalidArgument(f"the upload to {target!r} sent data after its trailer; nothing was stored")
        count += 1
        rows += batch.num_rows
        calls.received(context, batch.get_total_buffer_size())  # the buffers' sizes: no pass over the data
        if declared.counts:
            received += _data_bytes(batch) if opaque else batch.nbytes
            declared.check(target, received, rows, ended=False)
        yield batch
    if context.is_cancelled():
        log.warning("DoPut to %r: the client went away after %d batch(es); nothing stored", target, count)
        raise flight.FlightCancelledError(f"the upload to {target!r} was cut off by the client; nothing was stored")
    _final(declared or Declared(), trailer, target).check(target, received, rows, ended=True)


def _final(declared: Declared, trailer: Declared | None, target: str) -> Declared:
    """What the upload must have sent: its trailer's size, if it promised one."""
    if not declared.trailer:
        return declared
    if trailer is None or trailer.size is None:
        raise InvalidArgument(
            f"the upload to {target!r} ended without the trailer {{\"size\": N}} it promised; nothing was stored"
        )
    return trailer


def _data_bytes(batch: pa.RecordBatch) -> int:
    """The bytes of an opaque batch's data cells (what `size` declares)."""
    return sum(cell.size for cell in cells_as_buffers(batch.column(1)))


@dataclass(frozen=True, slots=True)
class Declared:
    """What the client said it would send (None: not said)."""

    size: int | None = None
    rows: int | None = None
    trailer: bool = False  # the size comes last, in a message of its own

    @property
    def counts(self) -> bool:
        """Whether what arrives must be counted against a declaration."""
        return self.size is not None or self.rows is not None or self.trailer

    @classmethod
    def parse(cls, metadata: pa.Buffer | None, target: str, opaque: bool, *, trailer: bool = False) -> Declared:
        """From the first batch's app_metadata (or, with `trailer`, the last
        message's). Metadata that is not a JSON object naming `size` or `rows`
        is another client's, and ignored; InvalidArgument if those are not
        whole numbers (or, first, a `size` of "trailer"), or `size` is given
        for a native table (its bytes depend on the encoding)."""
        if metadata is None or not 0 < metadata.size <= MAX_DECLARATION_BYTES:
            return cls()
        try:
            document = json.loads(metadata.to_pybytes())
        except (UnicodeDecodeError, ValueError):
            return cls()
        numbers = {k: v for k, v in document.items() if k in ("size", "rows")} if isinstance(document, dict) else {}
        promised = not trailer and numbers.get("size") == TRAILER
        if promised:
            del numbers["size"]
        if any(type(v) is not int or v < 0 for v in numbers.values()):
            raise InvalidArgument(
                f"the upload to {target!r}: its {'trailer' if trailer else 'first app_metadata'} must declare whole "
                f'numbers, as in {{"size": N}} or {{"rows": N}}; got {metadata.to_pybytes()[:100]!r}'
            )
        if ("size" in numbers or promised) and not opaque:
            raise InvalidArgument(f"the upload to {target!r} is a native table: declare its 'rows', not a 'size'")
        return cls(numbers.get("size"), numbers.get("rows"), promised)

    def check(self, target: str, size: int, rows: int, *, ended: bool) -> None:
        """Refuse an upload past its declaration, or one that ended short of it."""
        for what, declared, seen in (("bytes", self.size, size), ("rows", self.rows, rows)):
            if declared is None or seen == declared or (seen < declared and not ended):
                continue
            outcome = "ended after" if seen < declared else "went past its declaration at"
            raise InvalidArgument(
                f"the upload to {target!r} {outcome} {seen} of the {declared} {what} it declared; nothing was stored"
            )
