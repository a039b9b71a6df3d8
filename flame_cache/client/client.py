"""`Client`: flame-cache over Arrow Flight, streaming both ways.

Writes read their source a chunk at a time and reads hand on one row at a
time, so a transfer holds about `chunk_size` bytes (4 MiB) whatever the
object's size; objects over 2 GiB travel in rows of the `chunked:` ticket.
Every download is checked against the crc32c the server stored. Every call
carries the token, if there is one; every failure is a `ClientError`
(errors.py) naming the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.flight as flight

from flame_cache.client.download import Download, Received, ticket
from flame_cache.client.errors import translated
from flame_cache.client.models import ObjectRef, ObjectStat
from flame_cache.client.settings import Settings, resolve
from flame_cache.client.sinks import Destination, open_sink
from flame_cache.client.sources import Source, open_source
from flame_cache.client.upload import Progress, send
from flame_cache.store.wire import CHUNK_BYTES

# As flamepy's client, no gRPC limit on message sizes (ours stay near one row). And a receive window
# of one row: left to itself (BDP probing), gRPC widens it until a fast download keeps 100-150 MiB
# waiting in the client's memory; at 4 MiB it still allows 4 GB/s at 1 ms round trips.
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", CHUNK_BYTES),
]


class Client:
    """One cache, found as flamepy finds it (settings.py) unless told:
    `endpoint` (`grpc://` or `grpc+tls://`), `ca_file`, `token` or
    `token_file`. `timeout` bounds the small calls (stat, list, delete),
    not transfers. Safe to share between threads. SettingsError if the
    settings cannot be resolved."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        ca_file: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        chunk_size: int = CHUNK_BYTES,
        timeout: float | None = 60.0,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or resolve(endpoint, ca_file=ca_file, token=token, token_file=token_file)
        self.endpoint = self.settings.endpoint
        self.chunk_size = chunk_size
        self.timeout = timeout
        self._flight: flight.FlightClient | None = None

    # -- writes ------------------------------------------------------------

    def put(self, target: str, source: Source, *, size: int | None = None, progress: Progress | None = None) -> ObjectRef:
        """Write `source` (a path, a binary file, bytes or an iterator of
        bytes) to `target`: a key (created or replaced) or a namespace (a new
        object in it). An upload that fails half way stores nothing. `size`:
        what an iterator will yield, if known. OSError if a path cannot be
        read; ClientError."""
        with open_source(source, self.chunk_size, size) as chunks, self._errors(target):
            return send(self._connection(), self._options(timed=False), target, chunks, progress)

    # -- reads -------------------------------------------------------------

    def get(self, key: str, dest: Destination, *, progress: Progress | None = None) -> Received:
        """Write the object's bytes to `dest` (a path or a binary file): an
        opaque object's base, or a table's Arrow IPC stream. A path gets the
        whole checked object or is left as it was. ChecksumMismatch if the
        bytes do not match; OSError if `dest` cannot be written; ClientError."""
        download = self.open(key)  # first: a missing key makes no file
        try:
            with open_sink(dest) as sink:
                for chunk in self._chunks(download, progress):
                    sink.write(chunk)
        except BaseException:
            _cancel(download)  # a sink that failed: free the server's stream now, not at garbage collection
            raise
        assert download.received is not None
        return download.received

    def iter_chunks(self, key: str, *, progress: Progress | None = None) -> Iterator[pa.Buffer | bytes]:
        """The object's bytes as `get` writes them, a row (<= 4 MiB) at a
        time; ChecksumMismatch after the last one if they do not match."""
        return self._chunks(self.open(key), progress)

    def open(self, key: str) -> Download:
        """Start reading `key`: the Download knows its schema before any
        bytes are read (`is_table`, `stored_crc`). NotFound etc."""
        with self._errors(key):
            return Download(self._connection().do_get(ticket(key), self._options(timed=False)), key)

    def _chunks(self, download: Download, progress: Progress | None) -> Iterator[pa.Buffer | bytes]:
        finished = False
        try:
            with self._errors(download.key):
                for chunk in download.chunks():
                    if progress is not None:
                        progress(len(chunk) if isinstance(chunk, bytes) else chunk.size)
                    yield chunk
            finished = True
        finally:
            if not finished:  # stopped early or failed: free the server's stream
                _cancel(download)

    # -- metadata and deletes ---------------------------------------------

    def stat(self, key: str) -> ObjectStat:
        """Version, size, deltas, kind and times of one object. NotFound etc."""
        with self._errors(key):
            info = self._connection().get_flight_info(flight.FlightDescriptor.for_path(key), self._options())
        return ObjectStat.from_flight_info(info)

    def list(self, prefix: str = "") -> list[ObjectStat]:
        """Every object under `prefix` (a namespace, a key or `app/*`; "" for all)."""
        with self._errors(prefix or "*"):
            infos = list(self._connection().list_flights(prefix.encode(), self._options()))
        return sorted((ObjectStat.from_flight_info(info) for info in infos), key=lambda stat: stat.key)

    def delete(self, selector: str) -> None:
        """Delete an object, a namespace and everything in it, or every
        session of an app (`app/*`). Deleting nothing is not an error."""
        with self._errors(selector):
            list(self._connection().do_action(flight.Action("DELETE", selector.encode()), self._options()))

    # -- the connection ------------------------------------------------------

    def close(self) -> None:
        if self._flight is not None:
            self._flight.close()
            self._flight = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> flight.FlightClient:
        if self._flight is None:
            self._flight = self._new_connection()
        return self._flight

    def _new_connection(self) -> flight.FlightClient:
        return flight.FlightClient(
            self.endpoint, tls_root_certs=self.settings.root_certs(), generic_options=GRPC_OPTIONS
        )

    def _options(self, *, timed: bool = True) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(timeout=self.timeout if timed else None, headers=self.settings.headers)

    def _errors(self, subject: str) -> contextlib.AbstractContextManager[None]:
        return translated(subject, self.endpoint)


def _cancel(download: Download) -> None:
    with contextlib.suppress(Exception):  # already ended, or the connection is gone
        download.cancel()
