"""What is on disk is what gets served: across restarts, from a storage directory the
upstream Rust server wrote, past damaged or half-written files, and when flamepy's
local-storage mode drops a file in beside a running server (SPEC 2, 3, 4.3, 7).
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flight_client import (
    FORMAT,
    OPAQUE,
    VERSION,
    MiB,
    get,
    opaque,
    patch,
    put,
    put_path,
    rows,
)

# -- helpers ---------------------------------------------------------------


def listing(client, criteria: bytes = b"") -> dict[str, dict]:
    return {
        "/".join(p.decode() for p in info.descriptor.path): json.loads(info.app_metadata)
        for info in client.list_flights(criteria)
    }


def write_upstream(path: Path, batches: list[list[bytes]]) -> None:
    """An object file as the upstream Rust server wrote it: Arrow IPC *file* format,
    ZSTD-compressed, `version: uint64, data: binary`, every version cell 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, OPAQUE, options=options) as writer:
        for cells in batches:
            writer.write_batch(
                pa.record_batch([pa.array([0] * len(cells), pa.uint64()), pa.array(cells, pa.binary())], schema=OPAQUE)
            )


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# -- (a) a restart changes nothing ---------------------------------------


def test_objects_deltas_and_versions_read_back_identical_after_a_restart(make_server):
    """Whatever was acknowledged before a restart (bases, deltas, replaces, native tables,
    deletes) reads back identically after it, in full and patch-only reads, and new
    writes continue from the persisted versions."""
    server = make_server()
    big = os.urandom(MiB) * 2 + b"end"
    with server.client() as client:
        seed = put_path(client, "sess", b"seed base")["key"]
        patch(client, seed, b"d1")
        patch(client, seed, b"d2")  # version 3: base 1 + 2 deltas

        flamepy = put_path(client, "app/sess", b"first")["key"]
        patch(client, flamepy, b"dropped by replace")
        put_path(client, flamepy, b"second")  # base version 3
        patch(client, flamepy, b"after replace")  # version 4

        large = put_path(client, "app/sess", big, row_bytes=MiB)["key"]

        table_key = put(client, flight.FlightDescriptor.for_path("app/sess"), pa.table({"x": [1, 2]}))["key"]
        put(client, flight.FlightDescriptor.for_path(table_key), pa.table({"x": [3, 4, 5]}))  # version 2

        deleted = put_path(client, "sess", b"short-lived")["key"]
        client.do_action(flight.Action("DELETE", deleted.encode()))

        keys = {seed: 3, flamepy: 4, large: 1}
        tickets = [f"{key}:{v}" for key, current in keys.items() for v in range(0, current + 1)] + list(keys)
        before = {ticket: rows(get(client, ticket)) for ticket in tickets}
        table_before = get(client, table_key)
        listed_before = listing(client)

    assert before[f"{seed}:1"] == [(2, "patch", b"d1"), (3, "patch", b"d2")]
    assert before[flamepy] == [(3, "base", b"second"), (4, "patch", b"after replace")]
    assert before[large] == [(1, "base", big)]

    server.restart()
    with server.client() as client:
        assert {ticket: rows(get(client, ticket)) for ticket in tickets} == before
        table_after = get(client, table_key)
        assert table_after.equals(table_before) and table_after.schema.metadata == table_before.schema.metadata
        assert table_after.schema.metadata[VERSION] == b"2"
        assert {k: (m["version"], m["deltas"]) for k, m in listing(client).items()} == {
            k: (m["version"], m["deltas"]) for k, m in listed_before.items()
        }
        assert deleted not in listing(client)
        with pytest.raises(KeyError):
            get(client, deleted)

        assert patch(client, seed, b"d3")["version"] == 4
        assert put_path(client, flamepy, b"third")["version"] == 5
        assert put(client, flight.FlightDescriptor.for_path(table_key), pa.table({"x": [0]}))["version"] == 3
        assert put_path(client, deleted, b"reborn")["version"] == 1
    assert not [name for name in files_under(server.storage) if ".tmp-" in name]


def test_sigterm_stops_the_server_cleanly(make_server):
    """SIGTERM (what Docker and Kubernetes send) and SIGINT stop the server with exit
    status 0 and no traceback, so a restart is not reported as a crash."""
    server = make_server()
    assert server.stop(signal.SIGTERM) == 0, server.log()
    server.start()
    assert server.stop(signal.SIGINT) == 0, server.log()
    assert "Traceback" not in server.log()


# -- (b) a storage directory the upstream Rust server wrote ----------------


def test_serves_a_storage_directory_in_upstream_layout(make_server, tmp_path):
    """A directory in upstream's layout (`<session>/<object>.arrow`,
    `<app>/<session>/<object>.arrow`, `<object>.deltas/<n>.arrow`; IPC file format, ZSTD,
    version cells 0) is served as is: base at version 1, deltas as 2, 3, ... in order."""
    root = tmp_path / "upstream"
    seed_id, with_deltas_id, app_id, many_id = (str(uuid.uuid4()) for _ in range(4))
    write_upstream(root / "sessA" / f"{seed_id}.arrow", [[b"plain seed object"]])
    write_upstream(root / "sessA" / f"{with_deltas_id}.arrow", [[b"base-"]])
    write_upstream(root / "sessA" / f"{with_deltas_id}.deltas" / "0.arrow", [[b"delta-0"]])
    write_upstream(root / "sessA" / f"{with_deltas_id}.deltas" / "1.arrow", [[b"delta-1"]])
    # a flamepy 0.6 key, its base uploaded as several rows in two batches
    write_upstream(root / "myapp" / "sessB" / f"{app_id}.arrow", [[b"a" * 100, b"b" * 100], [b"c" * 50]])
    write_upstream(root / "myapp" / "sessB" / f"{app_id}.deltas" / "0.arrow", [[b"p0"]])
    write_upstream(root / "myapp" / "sessB" / f"{app_id}.deltas" / "1.arrow", [[b"p1-", b"more"]])
    # twelve deltas: 10.arrow and 11.arrow come after 9.arrow, not after 1.arrow
    write_upstream(root / "myapp" / "sessB" / f"{many_id}.arrow", [[b"many"]])
    for n in range(12):
        write_upstream(root / "myapp" / "sessB" / f"{many_id}.deltas" / f"{n}.arrow", [[f"m{n}".encode()]])
    written = {name: (root / name).read_bytes() for name in files_under(root)}

    seed_key, deltas_key = f"sessA/{seed_id}", f"sessA/{with_deltas_id}"
    app_key, many_key = f"myapp/sessB/{app_id}", f"myapp/sessB/{many_id}"
    server = make_server(storage=root)
    with server.client() as client:
        assert {k: (m["version"], m["deltas"]) for k, m in listing(client).items()} == {
            seed_key: (1, 0),
            deltas_key: (3, 2),
            app_key: (3, 2),
            many_key: (13, 12),
        }
        assert rows(get(client, seed_key)) == [(1, "base", b"plain seed object")]
        assert rows(get(client, deltas_key)) == [
            (1, "base", b"base-"),
            (2, "patch", b"delta-0"),
            (3, "patch", b"delta-1"),
        ]
        assert rows(get(client, app_key)) == [
            (1, "base", b"a" * 100 + b"b" * 100 + b"c" * 50),
            (2, "patch", b"p0"),
            (3, "patch", b"p1-more"),
        ]
        assert rows(get(client, f"{app_key}:1")) == [(2, "patch", b"p0"), (3, "patch", b"p1-more")]
        assert rows(get(client, f"{deltas_key}:1")) == [(2, "patch", b"delta-0"), (3, "patch", b"delta-1")]
        assert get(client, f"{app_key}:3").num_rows == 0
        assert rows(get(client, many_key)) == [(1, "base", b"many")] + [
            (n + 2, "patch", f"m{n}".encode()) for n in range(12)
        ]

        info = client.get_flight_info(flight.FlightDescriptor.for_path(app_key))
        assert info.total_bytes == 250 + 2 + 7
        assert [loc.uri.decode() for loc in info.endpoints[0].locations] == [server.endpoint]

    # serving did not rewrite upstream's files
    assert {name: (root / name).read_bytes() for name in files_under(root)} == written

    with server.client() as client:  # and they take new writes on top
        assert patch(client, app_key, b"p2")["version"] == 4
    server.restart()
    with server.client() as client:
        assert rows(get(client, f"{app_key}:1")) == [(2, "patch", b"p0"), (3, "patch", b"p1-more"), (4, "patch", b"p2")]


# -- (c) damaged and half-written files at start-up ------------------------


def _garbage(kind: str) -> bytes:
    if kind == "random-bytes":
        return b"\x89not arrow at all\x00" * 64
    if kind == "empty":
        return b""
    sink = pa.BufferOutputStream()  # an Arrow file cut off half way (a crash mid-write)
    with pa.ipc.new_file(sink, OPAQUE) as writer:
        writer.write_table(opaque(b"x" * 4096))
    whole = sink.getvalue().to_pybytes()
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("damage", ["random-bytes", "empty", "truncated-arrow"])
def test_damaged_and_temporary_files_at_start_up_do_not_stop_serving(make_server, tmp_path, damage):
    """With a stray `.<name>.arrow.tmp-<hex>` (an interrupted write) and a damaged `.arrow`
    in storage, the server starts, serves the good objects, answers NOT_FOUND naming the
    damaged key, never serves the temporary or foreign files, reports the damage in its log,
    and keeps serving and taking writes, also after the next restart."""
    storage = tmp_path / "damaged"
    good_id, bad_id = str(uuid.uuid4()), str(uuid.uuid4())
    write_upstream(storage / "sess" / f"{good_id}.arrow", [[b"good object"]])
    write_upstream(storage / "app" / "sess" / "fine.arrow", [[b"fine too"]])
    (storage / "sess" / f".{good_id}.arrow.tmp-{uuid.uuid4().hex}").write_bytes(_garbage("truncated-arrow"))
    (storage / "app" / "sess" / f".half.arrow.tmp-{uuid.uuid4().hex}").write_bytes(b"partial")
    (storage / "sess" / f"{bad_id}.arrow").write_bytes(_garbage(damage))
    # an interrupted delta write, and files that are no objects at all
    (storage / "sess" / f"{good_id}.deltas").mkdir()
    (storage / "sess" / f"{good_id}.deltas" / f".0.arrow.tmp-{uuid.uuid4().hex}").write_bytes(b"partial delta")
    (storage / "sess" / "notes.txt").write_text("not an object")
    write_upstream(storage / "deep" / "er" / "than" / "keys.arrow", [[b"four levels"]])
    good, fine, bad = f"sess/{good_id}", "app/sess/fine", f"sess/{bad_id}"

    server = make_server(storage=storage)
    with server.client() as client:
        assert rows(get(client, good)) == [(1, "base", b"good object")]
        assert rows(get(client, fine)) == [(1, "base", b"fine too")]
        with pytest.raises(KeyError) as caught:
            get(client, bad)
        assert bad in str(caught.value)
        with pytest.raises(KeyError) as caught:
            client.get_flight_info(flight.FlightDescriptor.for_path(bad))
        assert bad in str(caught.value)
        with pytest.raises(KeyError):
            get(client, "app/sess/half")

        assert set(listing(client)) == {good, fine}
        assert rows(get(client, good)) == [(1, "base", b"good object")]
        new = put_path(client, "sess", b"written after the damage")
        assert rows(get(client, new["key"])) == [(1, "base", b"written after the damage")]
        assert patch(client, good, b"patched")["version"] == 2
        assert rows(get(client, f"{good}:1")) == [(2, "patch", b"patched")]
    assert server.alive()
    assert bad_id in server.log(), "the damaged file is reported in the log"
    server.restart()
    with server.client() as client:
        assert rows(get(client, good)) == [(1, "base", b"good object"), (2, "patch", b"patched")]
        assert set(listing(client)) == {good, fine, new["key"]}


# -- (d) flamepy's local-storage mode --------------------------------------


def _flamepy_opaque_file(path: Path, data: bytes) -> None:
    """What flamepy 0.6 put_object writes in local-storage mode: plain `pa.ipc.new_file`."""
    with pa.ipc.new_file(str(path), OPAQUE) as writer:
        writer.write_batch(pa.record_batch([pa.array([0], pa.uint64()), pa.array([data], pa.binary())], schema=OPAQUE))


def test_a_file_dropped_into_storage_while_running_is_found_and_served(make_server):
    """flamepy's local-storage mode writes `<storage>/app/sess/<id>.arrow` itself, then calls
    GetFlightInfo: the server finds the file, advertises itself for it and serves it at
    version 1; the object then takes patches like any other."""
    server = make_server()
    with server.client() as client:
        put_path(client, "other/sess", b"the server is in use")
        object_id = str(uuid.uuid4())
        folder = server.storage / "app" / "sess"
        folder.mkdir(parents=True, exist_ok=True)
        data = b"written by flamepy, not by the server" * 100
        _flamepy_opaque_file(folder / f"{object_id}.arrow", data)
        key = f"app/sess/{object_id}"

        info = client.get_flight_info(flight.FlightDescriptor.for_path(key))
        assert info.endpoints[0].ticket.ticket == key.encode()
        assert [loc.uri.decode() for loc in info.endpoints[0].locations] == [server.endpoint]
        assert info.total_bytes == len(data)
        assert json.loads(info.app_metadata)["version"] == 1

        assert rows(client.do_get(info.endpoints[0].ticket).read_all()) == [(1, "base", data)]
        assert get(client, f"{key}:1").num_rows == 0  # flamepy's ref says version 1
        assert patch(client, key, b"delta")["version"] == 2
        assert rows(get(client, f"{key}:1")) == [(2, "patch", b"delta")]


def test_a_native_table_dropped_into_storage_is_served_as_that_table(make_server):
    """flamepy writes a pyarrow table in local-storage mode as the table itself, marked
    `flame.cache.format = arrow-table-v1` and version 0: it is served as that table at version 1."""
    server = make_server()
    folder = server.storage / "app" / "sess"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]}).replace_schema_metadata(
        {FORMAT: b"arrow-table-v1", VERSION: b"0", b"flame.cache.logical_type": b"pyarrow.Table"}
    )
    with pa.ipc.new_file(str(folder / "tbl.arrow"), table.schema) as writer:
        for batch in table.to_batches():
            writer.write_batch(batch)

    with server.client() as client:
        info = client.get_flight_info(flight.FlightDescriptor.for_path("app/sess/tbl"))
        assert info.total_records == 2
        got = get(client, "app/sess/tbl")
        assert got.replace_schema_metadata(None).equals(table.replace_schema_metadata(None))
        assert got.schema.metadata[VERSION] == b"1"
        assert got.schema.metadata[b"flame.cache.logical_type"] == b"pyarrow.Table"
