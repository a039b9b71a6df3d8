"""One store, two protocols: what HTTP writes, Flight and flamepy read, and
the other way round, at the same versions (issue 3, done-when 2).

The Arrow stream of the HTTP mirror must be exactly what DoGet sends, so it
is compared with a real DoGet, for small and for large (spliced) bases.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.server import CacheServer, clean_env

RAW = "application/octet-stream"
ARROW = "application/vnd.apache.arrow.stream"
BIG = 9 * 2**20 + 12345  # over IN_MEMORY_BYTES (the upload streams to its file) and the inline limit


SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


@pytest.fixture
def fc(server: CacheServer) -> Iterator[flight.FlightClient]:
    with flight.FlightClient(server.endpoint) as client:
        yield client


def run_flamepy(server: CacheServer, home: Path, code: str, **args: object) -> dict:
    """Run `code` in a fresh interpreter whose flamepy is configured only by
    FLAME_CACHE_ENDPOINT; it sees `args` and `cache` (flamepy.core.cache) and
    sets `result`, which comes back through a file as JSON."""
    home.mkdir(parents=True, exist_ok=True)
    out = home / "result.json"
    program = "\n".join(
        [
            "import json, pickle, sys",
            "from flamepy.core import cache",
            f"args = json.loads({json.dumps(json.dumps(args))})",
            textwrap.dedent(code),
            f"open({str(out)!r}, 'w').write(json.dumps(result))",
        ]
    )
    env = clean_env(FLAME_CACHE_ENDPOINT=server.endpoint, HOME=str(home))
    proc = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def doget(fc: flight.FlightClient, ticket: str) -> pa.Table:
    return fc.do_get(flight.Ticket(ticket.encode())).read_all()


def http_arrow(http: httpx.Client, key: str, **params: object) -> pa.Table:
    response = http.get(f"/v1/objects/{key}", params={"format": "arrow", **params})
    assert response.status_code == 200, response.text
    return pa.ipc.open_stream(response.content).read_all()


def assert_same(http_table: pa.Table, flight_table: pa.Table) -> None:
    assert http_table.schema.equals(flight_table.schema, check_metadata=True)
    assert http_table.equals(flight_table)
    assert [b.num_rows for b in http_table.to_batches()] == [b.num_rows for b in flight_table.to_batches()]


def flight_put(fc: flight.FlightClient, path: str, table: pa.Table) -> dict:
    import bson

    writer, reader = fc.do_put(flight.FlightDescriptor.for_path(*path.split("/")), table.schema)
    writer.write_table(table)
    writer.done_writing()
    ref = bson.decode(reader.read().to_pybytes())
    writer.close()
    return ref


def opaque(data: bytes) -> pa.Table:
    return pa.table({"version": pa.array([0], pa.uint64()), "data": pa.array([data], pa.binary())})


def test_http_writes_read_back_through_flamepy(server: CacheServer, http: httpx.Client, tmp_path: Path) -> None:
    ref = http.put("/v1/objects/interop/s1/obj", content=pickle.dumps({"n": 1}), headers={"Content-Type": RAW}).json()
    http.patch("/v1/objects/interop/s1/obj", content=pickle.dumps({"n": 2}), headers={"Content-Type": RAW})
    result = run_flamepy(
        server,
        tmp_path / "home",
        """
        ref = cache.ObjectRef(**args["ref"])
        value = cache.get_object(ref, deserializer=lambda base, deltas: [base, *deltas])
        updated = cache.update_object(ref, {"n": 3})
        patched = cache.patch_object(updated, {"n": 4})
        result = {"value": value, "updated": updated.version, "patched": patched.version, "endpoint": ref.endpoint}
        """,
        ref=ref,
    )
    assert ref["endpoint"] == server.endpoint
    assert result["value"] == [{"n": 1}, {"n": 2}]
    assert (result["updated"], result["patched"]) == (3, 4)
    head = http.head("/v1/objects/interop/s1/obj")
    assert (head.headers["etag"], head.headers["x-flame-deltas"]) == ('"4"', "1")  # flamepy's writes, seen over HTTP


def test_flamepy_writes_read_back_over_http(server: CacheServer, http: httpx.Client, fc, tmp_path: Path) -> None:
    result = run_flamepy(
        server,
        tmp_path / "home",
        """
        ref = cache.put_object("interop/s2", {"from": "flamepy"})
        ref = cache.patch_object(ref, {"delta": 1})
        result = {"key": ref.key, "version": ref.version}
        """,
    )
    key = result["key"]
    assert result["version"] == 2
    got = http.get(f"/v1/objects/{key}")
    assert got.headers["etag"] == '"2"'
    rows = doget(fc, key).to_pylist()
    assert got.content == rows[0]["data"]  # raw bytes: the base flamepy stored
    assert http.get(f"/v1/objects/{key}", params={"delta": 0}).content == rows[1]["data"]
    assert_same(http_arrow(http, key), doget(fc, key))
    assert_same(http_arrow(http, key, version=1), doget(fc, f"{key}:1"))


@pytest.mark.parametrize("size", [11, BIG])
def test_http_writes_read_back_through_raw_flight(http: httpx.Client, fc, size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    key = f"interop/s3/http-{size}"
    assert http.put(f"/v1/objects/{key}", content=body, headers={"Content-Type": RAW}).json()["version"] == 1
    http.patch(f"/v1/objects/{key}", content=b"delta", headers={"Content-Type": RAW})
    table = doget(fc, key)
    assert table.to_pylist() == [
        {"version": 1, "kind": "base", "data": body},
        {"version": 2, "kind": "patch", "data": b"delta"},
    ]
    info = fc.get_flight_info(flight.FlightDescriptor.for_path(*key.split("/")))
    assert json.loads(info.app_metadata)["version"] == 2
    for ticket, params in (
        (key, {}),
        (f"{key}:1", {"version": 1}),
        (f"{key}:2", {"version": 2}),
        (f"chunked:{key}", {"chunked": "true"}),
        (f"chunked:{key}:0", {"chunked": "true"}),
    ):
        assert_same(http_arrow(http, key, **params), doget(fc, ticket))


@pytest.mark.parametrize("size", [11, BIG])
def test_flight_writes_read_back_over_http(http: httpx.Client, fc, size: int) -> None:
    body = b"F" * size
    key = f"interop/s4/flight-{size}"
    ref = flight_put(fc, key, opaque(body))
    assert ref["version"] == 1
    got = http.get(f"/v1/objects/{key}")
    assert (got.content, got.headers["etag"]) == (body, '"1"')
    assert http.get(f"/v1/objects/{key}", headers={"Range": f"bytes={size - 3}-"}).content == body[-3:]
    fc.do_put(flight.FlightDescriptor.for_command(f"PATCH:{key}".encode()), opaque(b"p").schema)[0].close()
    assert_same(http_arrow(http, key), doget(fc, key))
    assert_same(http_arrow(http, key, chunked="true"), doget(fc, f"chunked:{key}"))
    assert http.head(f"/v1/objects/{key}").headers["etag"] == '"2"'  # an empty patch is a version too


def test_native_tables_read_the_same_over_both(http: httpx.Client, fc) -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]}).replace_schema_metadata({"owner": "test"})
    flight_put(fc, "interop/s5/table", table)
    assert_same(http_arrow(http, "interop/s5/table"), doget(fc, "interop/s5/table"))
    assert_same(http_arrow(http, "interop/s5/table", version=1), doget(fc, "interop/s5/table:1"))

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    written = http.put("/v1/objects/interop/s5/via-http", content=sink.getvalue(), headers={"Content-Type": ARROW})
    assert written.json()["version"] == 1
    stored = doget(fc, "interop/s5/via-http")
    assert stored.select(["a", "b"]).equals(table.select(["a", "b"]))
    assert stored.schema.metadata[b"owner"] == b"test"
    assert_same(http_arrow(http, "interop/s5/via-http"), stored)


def test_deletes_over_http_are_seen_by_flight(http: httpx.Client, fc) -> None:
    http.put("/v1/objects/interop/s6/gone", content=b"x", headers={"Content-Type": RAW})
    assert http.delete("/v1/objects/interop/s6/gone").status_code == 204
    with pytest.raises(KeyError, match="interop/s6/gone"):  # NOT_FOUND
        doget(fc, "interop/s6/gone")
    http.put("/v1/objects/interop/s6/again", content=b"x", headers={"Content-Type": RAW})
    list(fc.do_action(flight.Action("DELETE", b"interop/*")))
    assert http.get("/v1/objects/interop/s6/again").status_code == 404
