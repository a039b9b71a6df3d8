"""flamepy 0.6.0, unchanged, against a real flame-cache process.

flamepy is configured only through FLAME_CACHE_ENDPOINT (the `flamepy_cache`
fixture) or, for a second client / another server / local-storage mode, runs
in a subprocess of its own (`tests.flamepy_scripts.run_flamepy`). Where a test
looks at the wire it uses plain pyarrow.flight, the way any other client would.

flamepy's data cells are `b"FLM\\x00" + cloudpickle` for Python objects.
"""

from __future__ import annotations

import os
import uuid

import bson
import cloudpickle
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flamepy_scripts import add_all, base_and_deltas, run_flamepy

FORMAT = b"flame.cache.format"
VERSION = b"flame.cache.version"
ARROW_TABLE = b"arrow-table-v1"
RESPONSE_NAMES = ["version", "kind", "data"]


# -- helpers --------------------------------------------------------------------


def new_namespace(app: str | None = None) -> str:
    """A fresh `app/session`, so tests never see each other's objects."""
    return f"{app or 'app-' + uuid.uuid4().hex[:8]}/sess-{uuid.uuid4().hex[:8]}"


def object_id(key: str) -> str:
    """The third key segment, checked to be a uuid4 (SPEC 2)."""
    oid = key.split("/")[2]
    assert uuid.UUID(oid).version == 4 and str(uuid.UUID(oid)) == oid, key
    return oid


def do_get(endpoint: str, ticket: str) -> pa.Table:
    with flight.FlightClient(endpoint) as client:
        return client.do_get(flight.Ticket(ticket.encode())).read_all()


def rows(table: pa.Table) -> list[tuple[int, str, bytes]]:
    """An opaque reply as (version, kind, data) tuples, after checking its schema."""
    assert table.schema.names == RESPONSE_NAMES, table.schema
    assert table.schema.field("version").type == pa.uint64()
    assert table.schema.field("kind").type == pa.utf8()
    return list(zip(*(table.column(name).to_pylist() for name in RESPONSE_NAMES)))


def row_kinds(endpoint: str, ticket: str) -> list[tuple[int, str]]:
    """(version, kind) of each row a do_get of `ticket` answers."""
    return [(version, kind) for version, kind, _ in rows(do_get(endpoint, ticket))]


def unpickle(cell: bytes):
    """A flamepy-serialized Python object."""
    assert cell[:4] == b"FLM\x00", cell[:8]
    return cloudpickle.loads(cell[4:])


def assert_gone(cache, ref) -> None:
    """get_object of a deleted/missing key: gRPC NOT_FOUND, which flamepy
    lets through as pyarrow's ArrowKeyError (a KeyError) naming the key."""
    with pytest.raises(KeyError) as caught:
        cache.get_object(cache.ObjectRef(ref.endpoint, ref.key, 0))
    assert isinstance(caught.value, pa.ArrowKeyError)
    assert ref.key in str(caught.value)


def assert_alive(cache, ref, expected) -> None:
    assert cache.get_object(cache.ObjectRef(ref.endpoint, ref.key, 0)) == expected


@pytest.fixture
def record_fetches(flamepy_cache, monkeypatch):
    """The fetch modes flamepy's get_object saw (FULL / PATCHES / None = not
    modified), observed by wrapping its internal fetch; flamepy is unchanged."""
    modes: list = []
    real = flamepy_cache._fetch_object_data

    def recording(ref, cached_version):
        result = real(ref, cached_version)
        modes.append(None if result is None else result.mode.value)
        return result

    monkeypatch.setattr(flamepy_cache, "_fetch_object_data", recording)
    return modes


# -- 1. the basic calls -----------------------------------------------------------


def test_put_then_get_returns_the_object(flamepy_cache, session_server):
    """put_object stores a Python object under a fresh uuid4 key in the
    namespace; get_object (cached or forced fresh) returns an equal object."""
    ns = new_namespace()
    obj = {"name": "flame", "values": list(range(100)), "nested": {"bytes": os.urandom(64)}}
    ref = flamepy_cache.put_object(ns, obj)

    assert ref.key.startswith(ns + "/")
    object_id(ref.key)
    assert (ref.version, ref.endpoint) == (1, session_server.endpoint)
    assert flamepy_cache.get_object(ref) == obj
    assert flamepy_cache.get_object(flamepy_cache.ObjectRef(ref.endpoint, ref.key, 0)) == obj


def test_get_with_deserializer_sees_base_and_patches(flamepy_cache):
    """patch_object appends deltas: get_object without a deserializer returns
    the base only, with one it gets (base, [deltas in order])."""
    ref = flamepy_cache.put_object(new_namespace(), [1])
    ref = flamepy_cache.patch_object(ref, [2])
    ref = flamepy_cache.patch_object(ref, [3, 4])

    assert flamepy_cache.get_object(ref) == [1]
    assert flamepy_cache.get_object(ref, base_and_deltas) == {"base": [1], "deltas": [[2], [3, 4]]}
    assert flamepy_cache.get_object(ref, add_all) == [1, 2, 3, 4]


def test_update_replaces_base_and_clears_patches(flamepy_cache, session_server):
    """update_object replaces the whole object: the new base, no old patches,
    and the server sends it as a single base row of the new version."""
    ref = flamepy_cache.put_object(new_namespace(), {"v": "old"})
    ref = flamepy_cache.patch_object(ref, {"p": 1})
    ref = flamepy_cache.update_object(ref, {"v": "new"})

    assert ref.version == 3
    assert flamepy_cache.get_object(ref, base_and_deltas) == {"base": {"v": "new"}, "deltas": []}
    [(version, kind, data)] = rows(do_get(session_server.endpoint, f"{ref.key}:0"))
    assert (version, kind, unpickle(data)) == (3, "base", {"v": "new"})


def test_patch_of_missing_object_is_refused(flamepy_cache, session_server):
    """Patching a key that does not exist fails with NOT_FOUND, which reaches
    the flamepy user as pyarrow's ArrowKeyError (a KeyError), and creates nothing."""
    ref = flamepy_cache.ObjectRef(session_server.endpoint, f"{new_namespace()}/{uuid.uuid4()}", 1)
    with pytest.raises(pa.ArrowKeyError) as caught:
        flamepy_cache.patch_object(ref, [1])
    assert ref.key in str(caught.value) and "not found" in str(caught.value)
    assert_gone(flamepy_cache, ref)


# -- delete_objects -----------------------------------------------------------------


def test_delete_objects_full_key_deletes_only_that_object(flamepy_cache, session_server):
    """delete_objects('<app>/<session>/<id>') removes that object, its patches
    and its files (`<id>.arrow`, `<id>.deltas/0.arrow`); its sibling in the
    same session stays."""
    ns = new_namespace()
    doomed = flamepy_cache.patch_object(flamepy_cache.put_object(ns, "doomed"), "patch")
    kept = flamepy_cache.put_object(ns, "kept")
    flamepy_cache.get_object(doomed)  # in flamepy's client cache too
    base_file = session_server.storage / ns / f"{object_id(doomed.key)}.arrow"
    delta_file = session_server.storage / ns / f"{object_id(doomed.key)}.deltas" / "0.arrow"
    assert base_file.is_file() and delta_file.is_file()

    flamepy_cache.delete_objects(doomed.key)

    assert_gone(flamepy_cache, doomed)
    assert not base_file.exists() and not delta_file.parent.exists()
    with pytest.raises(KeyError):
        flamepy_cache.get_object(doomed)  # the ref as held, version 2
    assert_alive(flamepy_cache, kept, "kept")


def test_delete_objects_session_prefix_deletes_the_session(flamepy_cache):
    """delete_objects('<app>/<session>') removes every object of that session
    and nothing of the app's other sessions."""
    app = f"app-{uuid.uuid4().hex[:8]}"
    ns, other = new_namespace(app), new_namespace(app)
    doomed = [flamepy_cache.put_object(ns, i) for i in range(3)]
    doomed[0] = flamepy_cache.patch_object(doomed[0], 10)
    kept = flamepy_cache.put_object(other, "other session")

    flamepy_cache.delete_objects(ns)

    for ref in doomed:
        assert_gone(flamepy_cache, ref)
    assert_alive(flamepy_cache, kept, "other session")


def test_delete_objects_app_wildcard_deletes_every_session(flamepy_cache):
    """delete_objects('<app>/*') removes all sessions of the app, and leaves
    other apps alone, including one whose name merely starts with it."""
    app = f"app-{uuid.uuid4().hex[:8]}"
    doomed = [flamepy_cache.put_object(new_namespace(app), n) for n in ("a", "b")]
    kept = [
        flamepy_cache.put_object(new_namespace(app + "x"), "prefix-named app"),
        flamepy_cache.put_object(new_namespace(), "unrelated app"),
    ]

    flamepy_cache.delete_objects(f"{app}/*")

    for ref in doomed:
        assert_gone(flamepy_cache, ref)
    assert_alive(flamepy_cache, kept[0], "prefix-named app")
    assert_alive(flamepy_cache, kept[1], "unrelated app")
    flamepy_cache.delete_objects(f"{app}/*")  # nothing left: still OK, no error


def test_object_deleted_by_another_client_is_not_served_from_client_cache(flamepy_cache, session_server):
    """A client holding an object in its cache asks with `<key>:<version>`;
    after another client deleted it, the answer is NOT_FOUND, not 'not modified'."""
    ref = flamepy_cache.put_object(new_namespace(), "cached")
    assert flamepy_cache.get_object(ref) == "cached"

    with flight.FlightClient(session_server.endpoint) as other:
        assert [r.body.to_pybytes() for r in other.do_action(flight.Action("DELETE", ref.key.encode()))] == [b"OK"]

    with pytest.raises(KeyError):
        flamepy_cache.get_object(ref)


def test_invalid_key_is_refused_with_value_error_naming_the_segment(flamepy_cache, session_server):
    """flamepy lets some bad segments through (':' and '.'); the server refuses
    them with INVALID_ARGUMENT, a ValueError for the flamepy user that names
    the segment, stores nothing, and keeps serving."""
    app = f"app-{uuid.uuid4().hex[:8]}"
    for namespace, segment in ((f"{app}/bad:session", "'bad:session'"), (f"{app}/.", "'.'")):
        with pytest.raises(pa.ArrowInvalid) as caught:
            flamepy_cache.put_object(namespace, {"never": "stored"})
        assert segment in str(caught.value)
    with pytest.raises(pa.ArrowInvalid, match="'bad:session'"):
        flamepy_cache.delete_objects(f"{app}/bad:session")
    with flight.FlightClient(session_server.endpoint) as client:
        assert list(client.list_flights(app.encode())) == []
    assert_alive(flamepy_cache, flamepy_cache.put_object(new_namespace(app), "fine"), "fine")


# -- upload_object ---------------------------------------------------------------------


def test_upload_object_multi_mib_file_reads_back_byte_identical(flamepy_cache, session_server, tmp_path):
    """upload_object streams a file as 1 MiB rows; the server joins them, and a
    do_get `<key>:0` returns the file byte-identical as ONE base row. A full key
    is created as named, a prefix gets a uuid4 id; re-upload replaces (version
    2); after a delete the key starts again at version 1."""
    content = os.urandom(5 * 1024 * 1024 + 13)
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    ns = new_namespace()

    named = flamepy_cache.upload_object(f"{ns}/blob.bin", str(path))
    generated = flamepy_cache.upload_object(ns, str(path))

    assert (named.key, named.version, named.endpoint) == (f"{ns}/blob.bin", 1, session_server.endpoint)
    assert generated.key.startswith(ns + "/") and generated.version == 1
    object_id(generated.key)
    for ref in (named, generated):
        [(version, kind, data)] = rows(do_get(session_server.endpoint, f"{ref.key}:0"))
        assert (version, kind, len(data)) == (1, "base", len(content))
        assert data == content

    assert flamepy_cache.upload_object(f"{ns}/blob.bin", str(path)).version == 2
    flamepy_cache.delete_objects(f"{ns}/blob.bin")
    assert_gone(flamepy_cache, named)
    assert flamepy_cache.upload_object(f"{ns}/blob.bin", str(path)).version == 1


def test_uploaded_file_is_readable_with_get_object(flamepy_cache, tmp_path):
    """A multi-MiB file holding a flamepy-serialized object, uploaded in 1 MiB
    rows, comes back through get_object whole (flamepy accepts only one base
    row, so the server must not answer with the upload's chunks)."""
    payload = os.urandom(3 * 1024 * 1024 + 5)
    path = tmp_path / "object.flm"
    path.write_bytes(b"FLM\x00" + cloudpickle.dumps(payload))

    ref = flamepy_cache.upload_object(new_namespace(), str(path))

    assert flamepy_cache.get_object(ref) == payload


# -- 2. versions and refs --------------------------------------------------------------


def test_versions_count_every_write(flamepy_cache, session_server):
    """put is version 1; each patch and each update adds one; every ref names
    the server's endpoint and the same key."""
    ref = flamepy_cache.put_object(new_namespace(), 0)
    versions = [ref.version]
    ref = flamepy_cache.patch_object(ref, 1)
    versions.append(ref.version)
    ref = flamepy_cache.patch_object(ref, 2)
    versions.append(ref.version)
    ref = flamepy_cache.update_object(ref, 10)
    versions.append(ref.version)
    final = flamepy_cache.patch_object(ref, 11)
    versions.append(final.version)

    assert versions == [1, 2, 3, 4, 5]
    assert final.key == ref.key and final.endpoint == session_server.endpoint
    assert flamepy_cache.get_object(final, add_all) == 21
    assert row_kinds(session_server.endpoint, f"{final.key}:0") == [(4, "base"), (5, "patch")]


def test_put_reply_is_bson_endpoint_key_version(flamepy_cache, session_server):
    """The PutResult is the BSON {endpoint: str, key: str, version: int64}, in
    that order, that flamepy's ObjectRef decodes; ObjectRef.encode round-trips."""
    ns = new_namespace()
    batch = flamepy_cache._serialize_object({"raw": True})  # exactly what put_object sends
    with flight.FlightClient(session_server.endpoint) as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_path(ns), batch.schema)
        writer.write_batch(batch)
        writer.done_writing()
        raw = bytes(reader.read())
        writer.close()

    document = bson.decode(raw)
    assert list(document) == ["endpoint", "key", "version"]
    assert isinstance(document["version"], bson.int64.Int64) and b"\x12version\x00" in raw
    ref = flamepy_cache.ObjectRef.decode(raw)
    assert (ref.endpoint, ref.version) == (session_server.endpoint, 1)
    assert ref.key.startswith(ns + "/")
    assert flamepy_cache.get_object(ref) == {"raw": True}
    assert list(bson.decode(ref.encode())) == ["endpoint", "key", "version"]
    assert flamepy_cache.ObjectRef.decode(ref.encode()) == ref


# -- 3. native Arrow tables ---------------------------------------------------------------


def test_table_round_trips_as_native_arrow(flamepy_cache, session_server):
    """A pyarrow.Table is stored natively: a plain do_get returns the table's
    own schema and rows with flame.cache.format/version stamped in and the
    user's metadata kept; get_object returns an equal Table; update_object
    replaces it and bumps the stamped version."""
    table = pa.concat_tables(
        [
            pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", None]}),
            pa.table({"id": pa.array([3], pa.int32()), "name": ["c"]}),
        ]
    ).replace_schema_metadata({"owner": "tests"})
    ref = flamepy_cache.put_object(new_namespace(), table)

    wire = do_get(session_server.endpoint, f"{ref.key}:0")
    assert wire.schema.names == ["id", "name"] and wire.schema.field("id").type == pa.int32()
    metadata = wire.schema.metadata
    assert metadata[FORMAT] == ARROW_TABLE and metadata[VERSION] == b"1" and metadata[b"owner"] == b"tests"
    assert wire.to_pydict() == table.to_pydict()

    got = flamepy_cache.get_object(ref)
    assert isinstance(got, pa.Table) and got.equals(table, check_metadata=True)

    bigger = pa.table({"id": pa.array([7, 8, 9, 10], pa.int32()), "name": list("wxyz")})
    ref = flamepy_cache.update_object(ref, bigger)
    assert ref.version == 2
    assert do_get(session_server.endpoint, ref.key).schema.metadata[VERSION] == b"2"
    assert flamepy_cache.get_object(ref).equals(bigger)


def test_record_batch_round_trips_as_native_arrow(flamepy_cache, session_server):
    """A pyarrow.RecordBatch is stored natively and comes back as a RecordBatch."""
    batch = pa.record_batch(
        {"x": pa.array([1.5, 2.5], pa.float64()), "tag": pa.array([b"\x00", b"\xff"], pa.binary())},
        metadata={"source": "sensor"},
    )
    ref = flamepy_cache.put_object(new_namespace(), batch)

    wire = do_get(session_server.endpoint, f"{ref.key}:0")
    assert wire.schema.metadata[FORMAT] == ARROW_TABLE and wire.schema.metadata[VERSION] == b"1"
    assert wire.schema.names == ["x", "tag"] and wire.num_rows == 2

    got = flamepy_cache.get_object(ref)
    assert isinstance(got, pa.RecordBatch) and got.equals(batch, check_metadata=True)


def test_patching_a_native_table_is_refused(flamepy_cache, session_server):
    """patch_object on a native table fails with INVALID_ARGUMENT, which
    reaches the flamepy user as pyarrow's ArrowInvalid (a ValueError) naming
    the key, and the table is untouched."""
    table = pa.table({"n": [1, 2, 3]})
    ref = flamepy_cache.put_object(new_namespace(), table)

    with pytest.raises(pa.ArrowInvalid) as caught:
        flamepy_cache.patch_object(ref, {"not": "allowed"})
    assert ref.key in str(caught.value) and "table" in str(caught.value)

    wire = do_get(session_server.endpoint, f"{ref.key}:0")
    assert wire.schema.metadata[VERSION] == b"1" and wire.to_pydict() == table.to_pydict()
    assert flamepy_cache.get_object(flamepy_cache.ObjectRef(ref.endpoint, ref.key, 0)).equals(table)


def test_numpy_array_round_trips(flamepy_cache):
    """numpy arrays (flamepy's tensor fast path) come back equal, dtype and shape kept."""
    np = pytest.importorskip("numpy", reason="numpy is optional for flamepy and pyarrow")
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ref = flamepy_cache.put_object(new_namespace(), array)
    got = flamepy_cache.get_object(flamepy_cache.ObjectRef(ref.endpoint, ref.key, 0))
    assert got.dtype == array.dtype and got.shape == array.shape and (got == array).all()


# -- 4. two clients ------------------------------------------------------------------------


def test_other_clients_patches_arrive_as_patch_only_reply(flamepy_cache, session_server, tmp_path, record_fetches):
    """Client A holds version 1; client B (another flamepy process) patches
    twice. `<key>:1` then answers only the two patch rows (2, 3), and A's
    get_object applies them to its cached base: base + all patches, without
    downloading the base again. `<key>:3` is then 'not modified'."""
    ref = flamepy_cache.put_object(new_namespace(), ["base"])
    base_seen = flamepy_cache.get_object(ref)
    assert base_seen == ["base"]

    b_refs = run_flamepy(session_server.endpoint, tmp_path / "client-b", "patch_object", ref, [["p2"], ["p3"]])
    assert [r.version for r in b_refs] == [2, 3]

    patch_rows = rows(do_get(session_server.endpoint, f"{ref.key}:1"))
    assert [(v, k, unpickle(d)) for v, k, d in patch_rows] == [(2, "patch", ["p2"]), (3, "patch", ["p3"])]
    assert row_kinds(session_server.endpoint, f"{ref.key}:2") == [(3, "patch")]

    record_fetches.clear()
    assert flamepy_cache.get_object(ref, add_all) == ["base", "p2", "p3"]
    assert record_fetches == ["patches"]
    assert flamepy_cache.get_object(ref) is base_seen  # A kept its base, did not re-download it

    not_modified = do_get(session_server.endpoint, f"{ref.key}:3")
    assert not_modified.schema.names == RESPONSE_NAMES and not_modified.num_rows == 0
    assert flamepy_cache.get_object(ref, base_and_deltas) == {"base": ["base"], "deltas": [["p2"], ["p3"]]}
    assert record_fetches == ["patches", None, None]  # the two later gets: not modified


def test_not_modified_is_schema_and_no_rows(flamepy_cache, session_server, record_fetches):
    """A client that already has the current version gets the response schema
    and zero rows, for opaque objects and native tables alike, and flamepy
    serves its cached copy."""
    opaque = flamepy_cache.patch_object(flamepy_cache.put_object(new_namespace(), "o"), "p")
    table = flamepy_cache.put_object(new_namespace(), pa.table({"a": [1]}))
    for ref in (opaque, table):
        flamepy_cache.get_object(ref)
        reply = do_get(session_server.endpoint, f"{ref.key}:{ref.version}")
        assert reply.schema.names == RESPONSE_NAMES and reply.num_rows == 0, reply.schema

    record_fetches.clear()
    assert flamepy_cache.get_object(opaque, add_all) == "op"
    assert flamepy_cache.get_object(table).equals(pa.table({"a": [1]}))
    assert record_fetches == [None, None]


def test_stale_client_gets_full_object_after_other_clients_update(
    flamepy_cache, session_server, tmp_path, record_fetches
):
    """Client A holds version 2 (base 1 + a patch); client B replaces the
    object. `<key>:2` is older than the new base, so the answer is the full
    object (one base row, version 3), and A sees the new value, no stale patch."""
    ref = flamepy_cache.patch_object(flamepy_cache.put_object(new_namespace(), ["old"]), ["old patch"])
    assert flamepy_cache.get_object(ref, add_all) == ["old", "old patch"]

    b_ref = run_flamepy(session_server.endpoint, tmp_path / "client-b", "update_object", ref, ["new"])
    assert b_ref.version == 3

    [(version, kind, data)] = rows(do_get(session_server.endpoint, f"{ref.key}:2"))
    assert (version, kind, unpickle(data)) == (3, "base", ["new"])
    record_fetches.clear()
    assert flamepy_cache.get_object(ref, base_and_deltas) == {"base": ["new"], "deltas": []}
    assert record_fetches == ["full"]


# -- 5. flamepy's local-storage mode ---------------------------------------------------


@pytest.mark.parametrize("kind", ["object", "table"])
def test_local_storage_put_is_served_to_remote_clients(make_server, tmp_path, kind):
    """With FLAME_CACHE_STORAGE set to the server's storage, flamepy writes
    `<storage>/<app>/<session>/<id>.arrow` itself and calls GetFlightInfo; the
    server then serves it (as version 1) to a remote flamepy that has only
    FLAME_CACHE_ENDPOINT, and to plain pyarrow."""
    server = make_server()
    ns = new_namespace()
    if kind == "object":
        obj = {"local": True, "blob": os.urandom(1000)}
    else:
        obj = pa.table({"k": ["x", "y"], "v": [1.0, 2.0]})

    [ref] = run_flamepy(server.endpoint, tmp_path / "writer", "put_objects", ns, [obj], storage=server.storage)
    assert (ref.endpoint, ref.version) == (server.endpoint, 1)
    assert ref.key.startswith(ns + "/")
    assert (server.storage / ns / f"{object_id(ref.key)}.arrow").is_file()

    wire = do_get(server.endpoint, f"{ref.key}:0")
    if kind == "object":
        [(version, row_kind, data)] = rows(wire)
        assert (version, row_kind, unpickle(data)) == (1, "base", obj)
    else:
        assert wire.schema.metadata[FORMAT] == ARROW_TABLE and wire.schema.metadata[VERSION] == b"1"
        assert wire.to_pydict() == obj.to_pydict()

    [got] = run_flamepy(server.endpoint, tmp_path / "reader", "get_objects", [ref], False)
    assert got.equals(obj, check_metadata=True) if kind == "table" else got == obj

    if kind == "object":  # and it takes patches like any other object
        [patched] = run_flamepy(server.endpoint, tmp_path / "reader", "patch_object", ref, [{"more": 1}])
        assert patched.version == 2
        assert row_kinds(server.endpoint, ref.key) == [(1, "base"), (2, "patch")]


# -- 6. restarts ---------------------------------------------------------------------------


def test_objects_survive_restart_with_patches_and_versions(make_server, tmp_path):
    """Objects written by flamepy (patched, updated then patched, a native
    table) read back identical after a server restart: same base and patches,
    same versions, so clients' `<key>:<version>` tickets keep their meaning,
    and the next patch continues the numbering. A deleted one stays deleted."""
    server = make_server()
    before = run_flamepy(server.endpoint, tmp_path / "before", "put_patch_update", new_namespace())
    refs = before["refs"]
    assert {name: ref.version for name, ref in refs.items()} == {"patched": 3, "updated": 3, "table": 1}
    assert before["seen"]["patched"] == {"base": {"step": 0}, "deltas": [{"step": 1}, {"step": 2}]}
    assert before["seen"]["updated"] == {"base": ["new base"], "deltas": [["patch"]]}
    wire_before = {name: do_get(server.endpoint, f"{ref.key}:0") for name, ref in refs.items()}

    server.restart()

    with pytest.raises(pa.ArrowKeyError):  # a deleted object stays deleted
        do_get(server.endpoint, f"{before['deleted'].key}:0")

    for name, ref in refs.items():
        wire = do_get(server.endpoint, f"{ref.key}:0")
        assert wire.equals(wire_before[name], check_metadata=True), name
        assert do_get(server.endpoint, f"{ref.key}:{ref.version}").num_rows == 0, name
    assert [(v, k) for v, k, _ in rows(wire_before["updated"])] == [(2, "base"), (3, "patch")]
    assert row_kinds(server.endpoint, f"{refs['patched'].key}:1") == [(2, "patch"), (3, "patch")]
    assert row_kinds(server.endpoint, f"{refs['updated'].key}:2") == [(3, "patch")]
    assert wire_before["table"].schema.metadata[VERSION] == b"1"

    patched, updated, table = run_flamepy(
        server.endpoint, tmp_path / "after", "get_objects", [refs["patched"], refs["updated"], refs["table"]], True
    )
    assert patched == before["seen"]["patched"] and updated == before["seen"]["updated"]
    assert table["deltas"] == [] and table["base"].equals(before["seen"]["table"], check_metadata=True)
    [next_patch] = run_flamepy(server.endpoint, tmp_path / "after", "patch_object", refs["patched"], [{"step": 3}])
    assert next_patch.version == 4
