"""The seed client's protocol and the rest of the Flight surface, spoken with raw
pyarrow.flight calls (SPEC 4, shared/seed/flame-object-cache-README.md).

Every test works in its own fresh session id on the shared server, so tests do
not see each other's objects; listings that must be exact use a server of
their own.
"""

from __future__ import annotations

import base64
import json
import re
import uuid

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flight_client import (
    FORMAT,
    RESPONSE,
    VERSION,
    MiB,
    get,
    opaque,
    patch,
    put,
    put_path,
    rows,
)

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


# -- helpers ---------------------------------------------------------------


def new_session() -> str:
    return f"seed-{uuid.uuid4().hex[:12]}"














def action(client: flight.FlightClient, name: str, body: bytes) -> list[bytes]:
    return [r.body.to_pybytes() for r in client.do_action(flight.Action(name, body))]


def info_metadata(info: flight.FlightInfo) -> dict:
    return json.loads(info.app_metadata)


@pytest.fixture
def client(session_server):
    with session_server.client() as c:
        yield c


# -- DoPut / DoGet in the seed's form --------------------------------------


def test_put_on_a_session_path_creates_a_uuid4_key_and_answers_a_bson_ref(session_server, client):
    """DoPut on PATH `<session>` creates `<session>/<uuid4>` at version 1 and answers
    one BSON `{endpoint, key, version}` document, in that order."""
    session = new_session()
    ref = put_path(client, session, b"hello seed")
    assert list(ref) == ["endpoint", "key", "version"]
    assert ref["endpoint"] == session_server.endpoint
    assert re.fullmatch(f"{session}/{UUID4}", ref["key"]), ref["key"]
    assert uuid.UUID(ref["key"].split("/")[1]).version == 4
    assert ref["version"] == 1 and isinstance(ref["version"], int)
    assert put_path(client, session, b"another")["key"] != ref["key"], "each put gets a fresh id"


def test_get_with_a_bare_key_ticket_answers_one_base_row(client):
    """DoGet(ticket = key) answers `version: uint64, kind: utf8, data: binary` (non-null)
    with exactly one `base` row holding the bytes."""
    data = bytes(range(256)) * 10
    key = put_path(client, new_session(), data)["key"]
    table = get(client, key)
    assert table.schema == RESPONSE
    assert rows(table) == [(1, "base", data)]


@pytest.mark.parametrize("data_type", [pa.binary(), pa.large_binary()], ids=["binary", "large_binary"])
def test_upload_rows_are_concatenated_and_their_versions_ignored(client, data_type):
    """An opaque upload in several rows (flamepy sends 1 MiB rows) is one object whose bytes
    are the rows joined in order; the uploaded `version` cells do not set the version."""
    data = b"".join(bytes([i]) * 1000 for i in range(7))
    table = opaque(data, row_bytes=1000, version=42, data_type=data_type)
    assert table.num_rows == 7
    ref = put(client, flight.FlightDescriptor.for_path(new_session()), table)
    assert ref["version"] == 1
    assert rows(get(client, ref["key"])) == [(1, "base", data)]


@pytest.mark.parametrize("data_type", [pa.binary(), pa.large_binary()], ids=["binary", "large_binary"])
def test_null_and_empty_upload_cells_add_nothing(client, data_type):
    """Null and empty data cells of an opaque upload add no bytes, also in a
    batch that is a slice of a longer one (its offsets do not start at 0)."""
    cells = [b"skipped", b"ab", None, b"", b"cd", None, b"ef"]
    whole = pa.table({"version": pa.array([0] * len(cells), pa.uint64()), "data": pa.array(cells, data_type)})
    table = whole.slice(1)  # from b"ab" on
    ref = put(client, flight.FlightDescriptor.for_path(new_session()), table)
    assert rows(get(client, ref["key"])) == [(1, "base", b"abcdef")]


def test_put_on_an_existing_key_path_replaces_it_and_clears_its_deltas(client):
    """DoPut on PATH `<session>/<object>` of an existing object replaces it: version + 1,
    same key, and earlier patches are gone from reads and listings."""
    key = put_path(client, new_session(), b"v1")["key"]
    replaced = put_path(client, key, b"v2 bytes")
    assert (replaced["key"], replaced["version"]) == (key, 2)
    assert rows(get(client, key)) == [(2, "base", b"v2 bytes")]

    assert patch(client, key, b"delta")["version"] == 3
    again = put_path(client, key, b"v4 bytes")
    assert (again["key"], again["version"]) == (key, 4)
    assert rows(get(client, key)) == [(4, "base", b"v4 bytes")]
    info = client.get_flight_info(flight.FlightDescriptor.for_path(key))
    assert info_metadata(info)["deltas"] == 0
    assert info_metadata(info)["version"] == 4


def test_put_on_a_new_three_segment_path_creates_exactly_that_key(client):
    """DoPut on PATH `app/session/object` naming no object creates that key at version 1."""
    key = f"app-{uuid.uuid4().hex[:8]}/{new_session()}/report.bin"
    ref = put_path(client, key, b"chosen name")
    assert (ref["key"], ref["version"]) == (key, 1)
    assert rows(get(client, key)) == [(1, "base", b"chosen name")]


def test_put_on_a_two_segment_path_naming_no_object_creates_in_that_namespace(client):
    """DoPut on PATH `app/session` that names no object is a namespace: a new
    `app/session/<uuid4>` object is created there."""
    namespace = f"app-{uuid.uuid4().hex[:8]}/{new_session()}"
    ref = put_path(client, namespace, b"flamepy put_object")
    assert re.fullmatch(f"{namespace}/{UUID4}", ref["key"]), ref["key"]
    assert ref["version"] == 1
    assert rows(get(client, ref["key"])) == [(1, "base", b"flamepy put_object")]


# -- DoAction: the seed's PUT / UPDATE, and DELETE -------------------------


def test_seed_put_action_creates_an_object_and_answers_a_json_ref(session_server, client):
    """Action PUT `<session>:<base64>` creates `<session>/<uuid4>`; one JSON result
    `{endpoint, key, version, size}`."""
    session, data = new_session(), b"\x00seed put\xff" * 3
    results = action(client, "PUT", f"{session}:{base64.b64encode(data).decode()}".encode())
    assert len(results) == 1
    ref = json.loads(results[0])
    assert set(ref) == {"endpoint", "key", "version", "size"}
    assert ref["endpoint"] == session_server.endpoint
    assert re.fullmatch(f"{session}/{UUID4}", ref["key"]), ref["key"]
    assert (ref["version"], ref["size"]) == (1, len(data))
    assert rows(get(client, ref["key"])) == [(1, "base", data)]


def test_seed_update_action_replaces_an_object_and_answers_a_json_ref(session_server, client):
    """Action UPDATE `<key>:<base64>` replaces the object (version + 1, deltas cleared);
    one JSON result `{endpoint, key, version, size}`."""
    key = put_path(client, new_session(), b"old")["key"]
    patch(client, key, b"delta")
    data = b"brand new bytes"
    results = action(client, "UPDATE", f"{key}:{base64.b64encode(data).decode()}".encode())
    assert len(results) == 1
    ref = json.loads(results[0])
    assert ref == {"endpoint": session_server.endpoint, "key": key, "version": 3, "size": len(data)}
    assert rows(get(client, key)) == [(3, "base", data)]


def test_delete_action_removes_one_key_only(client):
    """DELETE `<session>/<object>` answers one `OK` and removes that object, not its siblings."""
    session = new_session()
    gone, kept = (put_path(client, session, b"x")["key"] for _ in range(2))
    assert action(client, "DELETE", gone.encode()) == [b"OK"]
    with pytest.raises(KeyError):
        get(client, gone)
    assert rows(get(client, kept)) == [(1, "base", b"x")]


def test_delete_action_removes_a_whole_session(client):
    """DELETE `<session>` answers one `OK` and removes every object of the session only."""
    session, other = new_session(), new_session()
    keys = [put_path(client, session, bytes([i])) for i in range(3)]
    survivor = put_path(client, other, b"other session")["key"]
    assert action(client, "DELETE", session.encode()) == [b"OK"]
    for ref in keys:
        with pytest.raises(KeyError):
            get(client, ref["key"])
    assert list(client.list_flights(session.encode())) == []
    assert rows(get(client, survivor)) == [(1, "base", b"other session")]


def test_delete_action_with_app_star_removes_every_session_of_the_app(client):
    """DELETE `app/*` (flamepy's 3-segment keys) answers one `OK`, removes every session of
    `app` and leaves other apps alone; a deleted key starts again at version 1."""
    app, other_app = f"app-{uuid.uuid4().hex[:8]}", f"app-{uuid.uuid4().hex[:8]}"
    doomed = [put_path(client, f"{app}/s1", b"a")["key"], put_path(client, f"{app}/s2/named", b"b")["key"]]
    survivor = put_path(client, f"{other_app}/s1", b"c")["key"]
    assert action(client, "DELETE", f"{app}/*".encode()) == [b"OK"]
    for key in doomed:
        with pytest.raises(KeyError):
            get(client, key)
    assert list(client.list_flights(app.encode())) == []
    assert rows(get(client, survivor)) == [(1, "base", b"c")]
    assert put_path(client, f"{app}/s2/named", b"again")["version"] == 1


@pytest.mark.parametrize("selector", ["nosuch-session/obj", "nosuch-session", "nosuch-app/*", "nosuch-app/s/obj"])
def test_delete_action_answers_ok_when_nothing_matched(client, selector):
    """DELETE of a key, session or `app/*` that names nothing still answers one `OK`."""
    assert action(client, "DELETE", selector.encode()) == [b"OK"]


# -- GetFlightInfo, GetSchema, ListFlights, ListActions --------------------


def test_get_flight_info_describes_an_object(session_server, client):
    """GetFlightInfo(path = key): one endpoint whose ticket is the key and location the
    advertised endpoint, the real schema, total_bytes and total_records of a full read."""
    key = put_path(client, new_session(), b"b" * 1000)["key"]
    patch(client, key, b"p" * 24)
    info = client.get_flight_info(flight.FlightDescriptor.for_path(*key.split("/")))
    assert len(info.endpoints) == 1
    endpoint = info.endpoints[0]
    assert endpoint.ticket.ticket == key.encode()
    assert [loc.uri.decode() for loc in endpoint.locations] == [session_server.endpoint]
    assert info.schema == RESPONSE
    assert info.total_bytes == 1024
    assert info.total_records == 2
    assert info_metadata(info)["version"] == 2
    # the ticket it hands out works as is
    assert rows(client.do_get(endpoint.ticket).read_all()) == [(1, "base", b"b" * 1000), (2, "patch", b"p" * 24)]


def test_get_schema_is_the_schema_do_get_answers(client):
    """GetSchema(path = key) is the schema DoGet answers, for opaque objects and tables."""
    session = new_session()
    key = put_path(client, session, b"abc")["key"]
    assert client.get_schema(flight.FlightDescriptor.for_path(key)).schema == get(client, key).schema == RESPONSE

    table = pa.table({"n": [1, 2, 3]})
    table_key = put(client, flight.FlightDescriptor.for_path(session), table)["key"]
    schema = client.get_schema(flight.FlightDescriptor.for_path(table_key)).schema
    assert schema == get(client, table_key).schema
    assert schema.metadata[FORMAT] == b"arrow-table-v1"


def test_list_flights_filters_by_prefix_and_empty_lists_all(make_server):
    """ListFlights(criteria = namespace or key) lists exactly the objects below it, with
    descriptor path, total_bytes and JSON app_metadata holding version and deltas;
    empty criteria lists everything."""
    server = make_server()
    with server.client() as client:
        a = put_path(client, "sess1", b"a" * 10)["key"]
        b = put_path(client, "sess1", b"b" * 20)["key"]
        patch(client, b, b"+" * 5)
        c = put_path(client, "sess2", b"c")["key"]
        d = put_path(client, "app/s/d", b"dd")["key"]

        def listing(criteria: bytes) -> dict[str, tuple[int, int, int]]:
            out = {}
            for info in client.list_flights(criteria):
                key = "/".join(p.decode() for p in info.descriptor.path)
                meta = info_metadata(info)
                out[key] = (meta["version"], meta["deltas"], info.total_bytes)
            return out

        assert listing(b"sess1") == {a: (1, 0, 10), b: (2, 1, 25)}
        assert listing(b"") == {a: (1, 0, 10), b: (2, 1, 25), c: (1, 0, 1), d: (1, 0, 2)}
        assert listing(b"app/s") == {d: (1, 0, 2)}
        assert listing(b"app/*") == {d: (1, 0, 2)}
        assert listing(a.encode()) == {a: (1, 0, 10)}
        assert listing(b"nosuch") == {}


def test_list_actions_lists_the_seed_actions_with_descriptions(client):
    """ListActions names DELETE, PUT and UPDATE (and every other action) with a description."""
    actions = {a.type: a.description for a in client.list_actions()}
    assert {"DELETE", "PUT", "UPDATE"} <= set(actions)
    assert all(actions.values()), actions


# -- versions: patches, patch-only and not-modified reads ------------------


def test_patch_command_appends_deltas_and_patch_only_reads_send_the_newer_ones(client):
    """CMD `PATCH:<key>` appends a delta (version + 1, same key); ticket `<key>:<v>` answers
    only the patches newer than v; `<key>` and `<key>:0` answer base + all patches."""
    key = put_path(client, new_session(), b"base")["key"]
    first = patch(client, key, b"p1")
    assert list(first) == ["endpoint", "key", "version"]
    assert (first["key"], first["version"]) == (key, 2)
    assert patch(client, key, b"p2")["version"] == 3

    full = [(1, "base", b"base"), (2, "patch", b"p1"), (3, "patch", b"p2")]
    assert rows(get(client, key)) == full
    assert rows(get(client, f"{key}:0")) == full
    assert rows(get(client, f"{key}:1")) == [(2, "patch", b"p1"), (3, "patch", b"p2")]
    assert rows(get(client, f"{key}:2")) == [(3, "patch", b"p2")]
    assert get(client, f"{key}:2").schema == RESPONSE


def test_reading_the_current_version_answers_not_modified(client):
    """Ticket `<key>:<current version>` answers the response schema and no rows."""
    key = put_path(client, new_session(), b"data")["key"]
    patch(client, key, b"more")
    table = get(client, f"{key}:2")
    assert table.schema == RESPONSE
    assert table.num_rows == 0


def test_versions_the_server_cannot_patch_from_get_a_full_read(client):
    """A client version older than the current base, or newer than the object, gets a full read."""
    key = put_path(client, new_session(), b"one")["key"]
    patch(client, key, b"two")
    put_path(client, key, b"three")  # replace: base version 3
    patch(client, key, b"four")
    full = [(3, "base", b"three"), (4, "patch", b"four")]
    assert rows(get(client, f"{key}:1")) == full
    assert rows(get(client, f"{key}:2")) == full
    assert rows(get(client, f"{key}:3")) == [(4, "patch", b"four")]
    assert rows(get(client, f"{key}:99")) == full


# -- the chunked ticket form -----------------------------------------------


def test_chunked_ticket_streams_a_large_base_in_bounded_rows(client):
    """`chunked:<key>` answers a 9 MiB base as several `base` rows of at most 4 MiB that join
    to the bytes, then the patches; `chunked:<key>:<v>` keeps the version rules; the plain
    ticket still answers exactly one base row."""
    data = bytes(range(251)) * (9 * MiB // 251) + b"tail"
    key = put(client, flight.FlightDescriptor.for_path(new_session()), opaque(data, row_bytes=MiB))["key"]

    chunks = rows(get(client, f"chunked:{key}"))
    assert len(chunks) >= 3
    assert all(version == 1 and kind == "base" for version, kind, _ in chunks)
    assert all(0 < len(cell) <= 4 * MiB for _, _, cell in chunks)
    assert b"".join(cell for _, _, cell in chunks) == data

    plain = rows(get(client, key))
    assert len(plain) == 1 and plain[0][2] == data

    patch(client, key, b"delta")
    with_patch = rows(get(client, f"chunked:{key}"))
    assert with_patch[:-1] == chunks
    assert with_patch[-1] == (2, "patch", b"delta")
    assert rows(get(client, f"chunked:{key}:1")) == [(2, "patch", b"delta")]
    assert get(client, f"chunked:{key}:2").num_rows == 0


# -- native tables ---------------------------------------------------------


def test_native_table_is_stored_as_sent_with_cache_metadata(client):
    """Any non-opaque schema is a native table: DoGet answers its schema and rows, with
    `flame.cache.format` / `flame.cache.version` stamped in and other metadata kept."""
    table = pa.table(
        {"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", None]},
    ).replace_schema_metadata({"owner": "team-a", "pandas": "{}"})
    ref = put(client, flight.FlightDescriptor.for_path(new_session()), table)
    assert ref["version"] == 1

    got = get(client, ref["key"])
    metadata = got.schema.metadata
    assert metadata[FORMAT] == b"arrow-table-v1"
    assert metadata[VERSION] == b"1"
    assert metadata[b"owner"] == b"team-a" and metadata[b"pandas"] == b"{}"
    assert got.replace_schema_metadata(None).equals(table.replace_schema_metadata(None))

    info = client.get_flight_info(flight.FlightDescriptor.for_path(ref["key"]))
    assert info.total_records == 3
    assert info.schema == got.schema

    bigger = pa.table({"id": pa.array([7, 8, 9, 10], pa.int64()), "name": ["w", "x", "y", "z"]})
    replaced = put(client, flight.FlightDescriptor.for_path(ref["key"]), bigger)
    assert (replaced["key"], replaced["version"]) == (ref["key"], 2)
    got = get(client, ref["key"])
    assert got.schema.metadata[VERSION] == b"2"
    assert got.column("id").to_pylist() == [7, 8, 9, 10]

    not_modified = get(client, f"{ref['key']}:2")
    assert not_modified.schema == RESPONSE and not_modified.num_rows == 0


def test_opaque_shape_marked_as_arrow_table_stays_a_native_table(client):
    """A `version, data` table whose metadata says `flame.cache.format = arrow-table-v1`
    is returned as that table, not joined into opaque bytes."""
    table = opaque(b"xy", row_bytes=1, version=5).replace_schema_metadata({FORMAT: b"arrow-table-v1"})
    key = put(client, flight.FlightDescriptor.for_path(new_session()), table)["key"]
    got = get(client, key)
    assert got.schema.names == ["version", "data"]
    assert got.column("data").to_pylist() == [b"x", b"y"]
    assert got.column("version").to_pylist() == [5, 5]
    assert got.schema.metadata[VERSION] == b"1"
