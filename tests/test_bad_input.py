"""Bad input that is not a plain refusal (test_errors.py has those): uploads cut off by
the client, odd but valid batches, and keys that only look hostile (SPEC 2, 4.1, 4.5).

A cut-off upload must store nothing (gRPC ends a dead client's stream like a finished
one); dictionary-encoded and empty batches are stored as sent; look-alike characters
make distinct keys inside the storage root.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flight_client import OPAQUE, get, opaque, patch, put, put_path, rows
from tests.server import CacheServer, clean_env, storage_snapshot


def listing(client: flight.FlightClient) -> set[str]:
    return {"/".join(p.decode() for p in info.descriptor.path) for info in client.list_flights(b"")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("bad-input")
    server = CacheServer(workdir, workdir / "storage").start()
    yield server
    server.stop()


# -- uploads cut off half way -------------------------------------------------

# A client process that starts an upload, sends part of it, and dies without a word.
DYING_CLIENT = textwrap.dedent(
    """
    import os, signal, sys, time
    import pyarrow as pa, pyarrow.flight as flight
    endpoint, kind, target = sys.argv[1:4]
    schema = pa.schema([("version", pa.uint64()), ("data", pa.binary())])
    descriptor = (flight.FlightDescriptor.for_command(f"PATCH:{target}".encode()) if kind == "patch"
                  else flight.FlightDescriptor.for_path(target))
    client = flight.FlightClient(endpoint)
    writer, reader = client.do_put(descriptor, schema)
    for i in range(8):  # 8 of the rows of a larger upload
        writer.write_batch(pa.record_batch(
            [pa.array([0], pa.uint64()), pa.array([b"partial %d " % i * 4096])], schema=schema))
    time.sleep(0.5)  # let the rows reach the server
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("kind", ["create", "replace", "patch"])
def test_a_client_killed_mid_upload_changes_nothing(server: CacheServer, tmp_path: Path, kind: str):
    """A client killed half way through a DoPut (create in a namespace, replace, patch) leaves
    every object as it was, creates none, leaves no temporary file, and the server keeps
    serving. (gRPC ends the stream of a dead client as if it had finished.)"""
    with server.client() as client:
        key = put_path(client, "cut", b"the whole object")["key"]
        patch(client, key, b"a whole delta")
        before_rows, before_keys = rows(get(client, key)), listing(client)
    before_files = storage_snapshot(server.storage)
    target = "cut" if kind == "create" else key
    script = tmp_path / "dying_client.py"
    script.write_text(DYING_CLIENT)
    done = subprocess.run(
        [sys.executable, str(script), server.endpoint, kind, target], env=clean_env(), capture_output=True, timeout=60
    )
    assert done.returncode == -9, done.stderr.decode()

    with server.client() as client:
        assert rows(get(client, key)) == before_rows
        assert listing(client) == before_keys
        after = storage_snapshot(server.storage)
        assert after == before_files, f"files changed: {set(after) ^ set(before_files)}"
        assert patch(client, key, b"after")["version"] == 3  # and it takes writes
    assert server.alive()
    assert "client went away" in server.log()


def test_an_upload_past_its_deadline_is_not_stored(server: CacheServer):
    """A client whose call times out half way through an upload (the call is cancelled)
    gets an error, and nothing of the upload is stored."""
    with server.client() as client:
        key = put_path(client, "late", b"on time")["key"]
        options = flight.FlightCallOptions(timeout=0.5)
        writer, _ = client.do_put(flight.FlightDescriptor.for_path(key), OPAQUE, options=options)
        with pytest.raises(flight.FlightError):
            writer.write_table(opaque(b"first half"))
            time.sleep(1.5)  # past the deadline
            writer.write_table(opaque(b"second half"))
            writer.done_writing()
            writer.close()
        assert rows(get(client, key)) == [(1, "base", b"on time")]


# -- odd but valid batches ------------------------------------------------------


def test_dictionary_encoded_batches_are_stored_and_read_back(server: CacheServer):
    """A native table whose batches carry different dictionaries (which the Arrow IPC
    file format cannot hold as sent) is stored and read back with the same values, and
    survives a restart; a dictionary-encoded patch is refused as not opaque."""
    schema = pa.schema([("city", pa.dictionary(pa.int32(), pa.utf8())), ("n", pa.int64())])
    batches = [
        pa.record_batch([pa.array(["Oslo", "Lima"]).dictionary_encode(), pa.array([1, 2])], schema=schema),
        pa.record_batch([pa.array(["Pune", "Oslo"]).dictionary_encode(), pa.array([3, 4])], schema=schema),
    ]
    table = pa.Table.from_batches(batches)
    with server.client() as client:
        key = put(client, flight.FlightDescriptor.for_path("dict"), table)["key"]
        got = get(client, key)
        assert got.column("city").to_pylist() == ["Oslo", "Lima", "Pune", "Oslo"]
        assert got.column("n").to_pylist() == [1, 2, 3, 4]
        assert pa.types.is_dictionary(got.schema.field("city").type)

        dict_opaque = pa.table(
            {"version": pa.array([0], pa.uint64()), "data": pa.array([b"x"]).dictionary_encode()}
        )
        with pytest.raises(pa.ArrowInvalid, match="opaque"):
            put(client, flight.FlightDescriptor.for_command(f"PATCH:{key}".encode()), dict_opaque)
    server.restart()
    with server.client() as client:
        assert get(client, key).column("city").to_pylist() == ["Oslo", "Lima", "Pune", "Oslo"]


def test_empty_uploads_are_empty_objects(server: CacheServer):
    """An opaque upload with no rows (or no batches at all) is an empty object; an empty
    patch is an empty delta; a native table without rows keeps its schema."""
    with server.client() as client:
        no_rows = put(client, flight.FlightDescriptor.for_path("empty"), OPAQUE.empty_table())["key"]
        assert rows(get(client, no_rows)) == [(1, "base", b"")]
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("empty"), OPAQUE)
        writer.done_writing()  # the schema, then nothing
        no_batches = reader.read()
        writer.close()
        assert no_batches is not None
        assert patch(client, no_rows, b"")["version"] == 2
        assert rows(get(client, no_rows)) == [(1, "base", b""), (2, "patch", b"")]

        schema = pa.schema([("a", pa.int64()), ("b", pa.utf8())])
        table_key = put(client, flight.FlightDescriptor.for_path("empty"), schema.empty_table())["key"]
        got = get(client, table_key)
        assert got.num_rows == 0 and got.schema.names == ["a", "b"]


def test_other_shapes_of_the_upload_schema_are_native_tables(server: CacheServer):
    """Only `version: uint64, data: binary|large_binary` is opaque: a near miss (int64
    version, utf8 data, swapped columns) is kept as a native table and cannot be patched
    by, or patch, an opaque object."""
    near_misses = [
        pa.table({"version": pa.array([0], pa.int64()), "data": pa.array([b"x"])}),
        pa.table({"version": pa.array([0], pa.uint64()), "data": pa.array(["x"])}),
        pa.table({"data": pa.array([b"x"]), "version": pa.array([0], pa.uint64())}),
    ]
    with server.client() as client:
        opaque_key = put_path(client, "shapes", b"opaque")["key"]
        for table in near_misses:
            key = put(client, flight.FlightDescriptor.for_path("shapes"), table)["key"]
            got = get(client, key)
            assert got.schema.metadata[b"flame.cache.format"] == b"arrow-table-v1"
            assert got.replace_schema_metadata(None).equals(table)
            with pytest.raises(pa.ArrowInvalid, match="opaque"):
                put(client, flight.FlightDescriptor.for_command(f"PATCH:{opaque_key}".encode()), table)
        assert rows(get(client, opaque_key)) == [(1, "base", b"opaque")]


# -- keys that only look hostile -----------------------------------------------

LOOKALIKES = {
    "fullwidth-dots": "\uff0e\uff0e",  # looks like '..'
    "division-slash": "a\u2215b",  # looks like 'a/b'
    "fullwidth-solidus": "a\uff0fb",
    "fullwidth-colon": "a\uff1ab",  # looks like 'a:b'
    "zero-width-joiner": "a\u200db",
    "combining-accent": "e\u0301",  # NFD of 'é'
    "precomposed": "\u00e9",  # NFC of 'é'
}


def test_look_alike_keys_are_distinct_objects_inside_the_storage_root(server: CacheServer):
    """Characters that look like '/', '..' or ':' are ordinary characters: each key is its
    own object, stored at exactly its own path under the storage root, and NFC and NFD
    spellings of a name stay two objects (keys are compared as bytes)."""
    assert unicodedata.normalize("NFC", LOOKALIKES["combining-accent"]) == LOOKALIKES["precomposed"]
    root = server.storage.resolve()
    with server.client() as client:
        for name, segment in LOOKALIKES.items():
            key = f"app/looks/{segment}"
            assert put_path(client, key, name.encode())["key"] == key
        for name, segment in LOOKALIKES.items():
            assert rows(get(client, f"app/looks/{segment}")) == [(1, "base", name.encode())]
            path = (server.storage / "app" / "looks" / f"{segment}.arrow").resolve()
            assert path.is_file() and path.parent == root / "app" / "looks"
    assert {p.name for p in (root / "app" / "looks").iterdir()} == {f"{s}.arrow" for s in LOOKALIKES.values()}
    assert server.alive()
