"""A declared upload that ends short stores nothing (hardening issue, item 9).

pyarrow ends a DoPut stream normally when its writer is closed, also when `with writer:`
is left on an exception, so the server sees a complete upload: without a declaration a
half-written 10.5 MB upload replaced the whole object. A client that declares what it
sends (the first batch's app_metadata `{"size": N}`, or `{"rows": N}`) is protected: an
upload that ends short, or goes past what it declared, is refused and stores nothing.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flight_client import OPAQUE, get, opaque, put_path, rows
from tests.server import storage_snapshot

MiB = 1 << 20


class Interrupted(Exception):
    """What the client's own code raised half way through its upload."""


def _upload(client: flight.FlightClient, key: str, table: pa.Table, declared: dict | None, *, stop_after: int | None):
    """Write `table` batch by batch, declaring `declared` on the first batch; raise
    Interrupted inside `with writer:` after `stop_after` batches. The PutResult's
    error, if any, is raised when the writer closes."""
    writer, reader = client.do_put(flight.FlightDescriptor.for_path(key), table.schema)
    with writer:
        for number, batch in enumerate(table.to_batches(max_chunksize=1)):
            if number == stop_after:
                raise Interrupted
            if number == 0 and declared is not None:
                writer.write_with_metadata(batch, pa.py_buffer(json.dumps(declared).encode()))
            else:
                writer.write_batch(batch)
        writer.done_writing()
        reader.read()


@pytest.mark.parametrize("total_mib", [3, 11], ids=["collected", "streamed to disk"])
def test_an_interrupted_declared_upload_stores_nothing(server, total_mib):
    body = bytes(range(256)) * (total_mib * MiB // 256)
    key = f"declared/s/o{total_mib}"
    with server.client() as client:
        put_path(client, key, b"the whole old object")
        before = storage_snapshot(server.storage)
        table = opaque(body, row_bytes=MiB)
        with pytest.raises((Interrupted, pa.ArrowInvalid)):
            _upload(client, key, table, {"size": len(body)}, stop_after=2)
        assert rows(get(client, key)) == [(1, "base", b"the whole old object")]
        assert storage_snapshot(server.storage) == before


def test_without_a_declaration_the_same_interruption_is_a_complete_upload(server):
    """What the README warns of: the server cannot tell, so the cut body is stored."""
    key = "declared/s/undeclared"
    with server.client() as client:
        put_path(client, key, b"old")
        with pytest.raises(Interrupted):
            _upload(client, key, opaque(b"x" * 3 * MiB, row_bytes=MiB), None, stop_after=2)
        assert rows(get(client, key)) == [(2, "base", b"x" * 2 * MiB)]


def test_a_short_or_long_declaration_is_refused_naming_both_counts(server):
    with server.client() as client:
        put_path(client, "declared/s/exact", b"old")
        table = opaque(b"y" * 300, row_bytes=100)
        with pytest.raises(pa.ArrowInvalid, match=r"ended after 300 of the 301 bytes it declared; nothing was stored"):
            _upload(client, "declared/s/exact", table, {"size": 301}, stop_after=None)
        with pytest.raises(pa.ArrowInvalid, match=r"went past its declaration at 200 of the 150 bytes"):
            _upload(client, "declared/s/exact", table, {"size": 150}, stop_after=None)
        with pytest.raises(pa.ArrowInvalid, match=r"ended after 3 of the 4 rows"):
            _upload(client, "declared/s/exact", table, {"rows": 4}, stop_after=None)
        assert rows(get(client, "declared/s/exact")) == [(1, "base", b"old")]
        _upload(client, "declared/s/exact", table, {"size": 300, "rows": 3}, stop_after=None)
        assert rows(get(client, "declared/s/exact")) == [(2, "base", b"y" * 300)]


def test_native_tables_declare_rows(server):
    table = pa.table({"n": list(range(10))})
    with server.client() as client:
        with pytest.raises(pa.ArrowInvalid, match="native table: declare its 'rows'"):
            _upload(client, "declared/s/table", table, {"size": 80}, stop_after=None)
        with pytest.raises(pa.ArrowInvalid, match="ended after 10 of the 11 rows"):
            _upload(client, "declared/s/table", table, {"rows": 11}, stop_after=None)
        _upload(client, "declared/s/table", table, {"rows": 10}, stop_after=None)
        assert client.do_get(flight.Ticket(b"declared/s/table")).read_all().column("n").to_pylist() == list(range(10))


@pytest.mark.parametrize("metadata", [b'{"size": -1}', b'{"size": "10"}', b'{"rows": 1.5}', b'{"size": true}'])
def test_a_bad_declaration_is_refused_clearly(server, metadata):
    with server.client() as client:
        with pytest.raises(pa.ArrowInvalid, match="first app_metadata must declare whole numbers"):
            _upload_with_metadata(client, "declared/s/bad", metadata)


@pytest.mark.parametrize("metadata", [b"not json", b'{"other": 1}', b"[1]", b"\xff"])
def test_other_clients_metadata_is_no_declaration(server, metadata):
    with server.client() as client:
        _upload_with_metadata(client, "declared/s/other", metadata)
        assert rows(get(client, "declared/s/other"))[0][2] == b"z"


def _upload_with_metadata(client: flight.FlightClient, key: str, metadata: bytes) -> None:
    writer, reader = client.do_put(flight.FlightDescriptor.for_path(key), OPAQUE)
    with writer:
        writer.write_with_metadata(opaque(b"z").to_batches()[0], pa.py_buffer(metadata))
        writer.done_writing()
        reader.read()


# -- a size declared at the end (a client reading a pipe) ----------------------------


def _upload_with_trailer(client: flight.FlightClient, key: str, body: bytes, trailer: bytes | None, *, more: bool = False):
    """Promise a trailer on the first batch, send `body` in 100-byte rows, then the
    `trailer` metadata (None: none), then, with `more`, one more row."""
    writer, reader = client.do_put(flight.FlightDescriptor.for_path(key), OPAQUE)
    with writer:
        for number, batch in enumerate(opaque(body, row_bytes=100).to_batches(max_chunksize=1)):
            if number == 0:
                writer.write_with_metadata(batch, pa.py_buffer(b'{"size": "trailer"}'))
            else:
                writer.write_batch(batch)
        if trailer is not None:
            writer.write_metadata(pa.py_buffer(trailer))
        if more:
            writer.write_batch(opaque(b"late").to_batches()[0])
        writer.done_writing()
        reader.read()


def test_a_trailer_declares_the_size_at_the_end(server):
    """`{"size": "trailer"}` first, `{"size": N}` in a last message of its own: stored only
    if that trailer came and matches; the old object stays otherwise."""
    key = "declared/s/trailer"
    with server.client() as client:
        put_path(client, key, b"old")
        for trailer, more, refusal in (
            (None, False, r"ended without the trailer \{\"size\": N\} it promised; nothing was stored"),
            (b'{"size": 301}', False, r"ended after 300 of the 301 bytes it declared"),
            (b'{"size": 299}', False, r"went past its declaration at 300 of the 299 bytes|ended after 300"),
            (b'{"size": 300}', True, r"sent data after its trailer; nothing was stored"),
            (b'{"size": "300"}', False, r"its trailer must declare whole numbers"),
        ):
            with pytest.raises(pa.ArrowInvalid, match=refusal):
                _upload_with_trailer(client, key, b"t" * 300, trailer, more=more)
            assert rows(get(client, key)) == [(1, "base", b"old")]
        _upload_with_trailer(client, key, b"t" * 300, b'{"size": 300}')
        assert rows(get(client, key)) == [(2, "base", b"t" * 300)]


def test_a_native_table_cannot_promise_a_size(server):
    table = pa.table({"n": [1]})
    writer, reader = server.client().do_put(flight.FlightDescriptor.for_path("declared/s/t2"), table.schema)
    with pytest.raises(pa.ArrowInvalid, match="native table"):
        with writer:
            writer.write_with_metadata(table.to_batches()[0], pa.py_buffer(b'{"size": "trailer"}'))
            writer.done_writing()
            reader.read()
