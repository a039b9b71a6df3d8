"""Graceful stop (issue 4.6): on SIGTERM the server takes no new requests, lets the ones in
flight finish and exits 0; a request that outlasts `cache.shutdown_timeout` (or a second
signal) is cut off and the process exits 3, with nothing torn on disk.

A request is known to be in flight without any timing: an upload has pushed more bytes
than gRPC buffers (so the server is reading it), a download has delivered its first batch.
"""

from __future__ import annotations

import signal
import time

import pyarrow.flight as flight
import pytest

from tests.flight_client import OPAQUE, MiB, get, opaque, put_path, rows
from tests.server import CacheServer

IN_FLIGHT_BYTES = 32 * MiB  # more than any gRPC flow-control window
EXIT_FORCED = 3


def wait_for_log(server: CacheServer, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in the server log:\n{server.log()}")
        time.sleep(0.05)


def assert_new_requests_refused(server: CacheServer, timeout: float = 10.0) -> None:
    """New requests get UNAVAILABLE once the stop has begun. The log line comes
    just before gRPC stops taking calls, so one sent at once may still be served.
    The late client has a connection of its own (gRPC would share the upload's)."""
    deadline = time.monotonic() + timeout
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    while time.monotonic() < deadline:
        try:
            with flight.FlightClient(server.endpoint, generic_options=own_connection) as late:
                list(late.list_actions(options=flight.FlightCallOptions(timeout=5)))
        except flight.FlightUnavailableError:
            return
        time.sleep(0.05)
    raise AssertionError(f"new requests were still served {timeout}s after the stop began")


def start_upload(client: flight.FlightClient, key: str):
    """An upload that is surely being read by the server, not yet finished."""
    writer, reader = client.do_put(flight.FlightDescriptor.for_path(key), OPAQUE)
    for _ in range(IN_FLIGHT_BYTES // MiB):
        writer.write_table(opaque(b"u" * MiB))
    return writer, reader


def test_an_upload_in_flight_at_sigterm_completes_and_the_server_exits_0(make_server):
    server = make_server()
    with server.client() as client:
        key = put_path(client, "app/sess", b"first version")["key"]
        writer, reader = start_upload(client, key)
        server.process.send_signal(signal.SIGTERM)
        wait_for_log(server, "stopping: finishing in-flight requests")

        assert_new_requests_refused(server)  # while the upload is still in flight

        writer.write_table(opaque(b"the end"))
        writer.done_writing()
        ack = reader.read()
        writer.close()
    assert ack is not None, "the in-flight upload was not acknowledged"
    assert server.process.wait(30) == 0, server.log()
    assert "Traceback" not in server.log()

    server.start()
    with server.client() as client:
        [(version, kind, data)] = rows(get(client, key))
    assert (version, kind, len(data)) == (2, "base", IN_FLIGHT_BYTES + len(b"the end"))
    assert data.endswith(b"the end")


def test_a_download_in_flight_at_sigterm_completes_and_the_server_exits_0(make_server):
    server = make_server()
    size = 40 * MiB
    with server.client() as client:
        key = put_path(client, "app/sess", b"d" * size, row_bytes=4 * MiB)["key"]
        stream = client.do_get(flight.Ticket(f"chunked:{key}".encode()))
        first = stream.read_chunk().data  # the server is streaming
        server.process.send_signal(signal.SIGTERM)
        wait_for_log(server, "stopping: finishing in-flight requests")
        rest = stream.read_all()
    received = first.column("data").to_pylist() + rest.column("data").to_pylist()
    assert b"".join(received) == b"d" * size
    assert server.process.wait(30) == 0, server.log()


def test_a_stalled_request_is_cut_off_after_the_shutdown_timeout(make_server):
    """shutdown_timeout: 1. An upload that stalls is cut off: the process exits 3 by itself,
    the client gets an error, and the object keeps its acknowledged version."""
    server = make_server(shutdown_timeout=1)
    with server.client() as client:
        key = put_path(client, "app/sess", b"acknowledged")["key"]
        writer, reader = start_upload(client, key)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == EXIT_FORCED, server.log()
        with pytest.raises(flight.FlightError):
            writer.write_table(opaque(b"too late"))
            writer.done_writing()
            reader.read()
            writer.close()
    assert "cutting them off" in server.log()

    server.start()
    with server.client() as client:
        assert rows(get(client, key)) == [(1, "base", b"acknowledged")]
    assert not [p for p in server.storage.rglob("*") if ".tmp-" in p.name]


def test_a_second_signal_stops_at_once(make_server):
    server = make_server(shutdown_timeout=600)
    with server.client() as client:
        key = put_path(client, "app/sess", b"acknowledged")["key"]
        writer, _ = start_upload(client, key)  # held open: dropping it would end the call
        server.process.send_signal(signal.SIGTERM)
        wait_for_log(server, "stopping: finishing in-flight requests")
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(30) == EXIT_FORCED, server.log()
        del writer
    server.start()
    with server.client() as client:
        assert rows(get(client, key)) == [(1, "base", b"acknowledged")]
