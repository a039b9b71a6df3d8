"""The HTTP mirror, curl-style, with httpx against a live server (issue 3, done-when 1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.app.config import load_config
from tests.http_client import ARROW, RAW, arrow_rows, ipc, put
from tests.server import CacheServer

MAX_OBJECT_SIZE = 16 * 1024 * 1024


SERVER_OPTIONS = dict(with_http=True, limits={"max_object_size": "16M"})  # for the `server` fixture in conftest


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


# -- put, get, head ----------------------------------------------------------


def test_put_creates_then_get_and_head_describe_it(server: CacheServer, http: httpx.Client) -> None:
    created = put(http, "api/s1/first", b"hello world")
    assert created.status_code == 201
    assert created.json() == {"endpoint": server.endpoint, "key": "api/s1/first", "version": 1}
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == "/v1/objects/api/s1/first"

    got = http.get("/v1/objects/api/s1/first")
    assert got.status_code == 200
    assert got.content == b"hello world"
    assert got.headers["content-type"] == RAW
    assert got.headers["content-length"] == "11"
    assert got.headers["etag"] == '"1"'
    assert got.headers["accept-ranges"] == "bytes"

    head = http.head("/v1/objects/api/s1/first")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "11"
    assert head.headers["etag"] == '"1"'
    assert head.headers["x-flame-deltas"] == "0"
    assert "last-modified" in head.headers


def test_replace_answers_200_bumps_the_version_and_clears_deltas(http: httpx.Client) -> None:
    put(http, "api/s1/replaced", b"one")
    assert http.patch("/v1/objects/api/s1/replaced", content=b"+d", headers={"Content-Type": RAW}).status_code == 200
    replaced = put(http, "api/s1/replaced", b"two")
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 3
    head = http.head("/v1/objects/api/s1/replaced")
    assert (head.headers["etag"], head.headers["x-flame-deltas"]) == ('"3"', "0")
    assert http.get("/v1/objects/api/s1/replaced").content == b"two"


def test_a_two_segment_key_is_written_as_named(http: httpx.Client) -> None:
    """Flight's PATH of 2 segments is ambiguous (a namespace or a seed key);
    HTTP PUT names an object, so it writes exactly that key."""
    assert put(http, "seedsession/obj", b"seed").json()["key"] == "seedsession/obj"
    assert http.get("/v1/objects/seedsession/obj").content == b"seed"


def test_create_in_a_namespace_picks_the_id(http: httpx.Client) -> None:
    first = http.post("/v1/namespaces/api/created", content=b"a", headers={"Content-Type": RAW})
    second = http.post("/v1/namespaces/api/created", content=b"b")  # no Content-Type: raw bytes
    assert first.status_code == second.status_code == 201
    keys = [first.json()["key"], second.json()["key"]]
    assert keys[0] != keys[1]
    for key, body in zip(keys, (b"a", b"b")):
        app, session, object_id = key.split("/")
        assert (app, session, len(object_id)) == ("api", "created", 36)
        assert http.get(f"/v1/objects/{key}").content == body
    assert first.headers["location"] == f"/v1/objects/{keys[0]}"


def test_an_empty_body_is_an_empty_object(http: httpx.Client) -> None:
    assert put(http, "api/s1/empty", b"").status_code == 201
    got = http.get("/v1/objects/api/s1/empty")
    assert (got.status_code, got.content, got.headers["content-length"]) == (200, b"", "0")


def test_keys_with_spaces_and_unicode_round_trip(http: httpx.Client) -> None:
    key = "api/s p/ob jé?#%"
    path = "/v1/objects/" + quote(key, safe="/")
    assert http.put(path, content=b"odd", headers={"Content-Type": RAW}).json()["key"] == key
    assert http.get(path).content == b"odd"
    assert key in [o["key"] for o in http.get("/v1/objects", params={"prefix": "api/s p"}).json()["objects"]]


# -- patches and the Arrow stream ----------------------------------------------


def test_patches_are_deltas_readable_raw_and_in_the_arrow_stream(http: httpx.Client) -> None:
    put(http, "api/s2/patched", b"base")
    for n, delta in enumerate((b"d1", b"d2"), start=2):
        patched = http.patch("/v1/objects/api/s2/patched", content=delta, headers={"Content-Type": RAW})
        assert (patched.status_code, patched.json()["version"], patched.headers["etag"]) == (200, n, f'"{n}"')

    assert http.get("/v1/objects/api/s2/patched").content == b"base"  # raw bytes: the base
    assert http.get("/v1/objects/api/s2/patched", params={"delta": 1}).content == b"d2"
    missing = http.get("/v1/objects/api/s2/patched", params={"delta": 2})
    assert missing.status_code == 404 and "2 delta(s)" in missing.json()["message"]

    full = http.get("/v1/objects/api/s2/patched", headers={"Accept": ARROW})
    assert full.headers["x-flame-read"] == "full"
    assert arrow_rows(full) == [(1, "base", b"base"), (2, "patch", b"d1"), (3, "patch", b"d2")]

    newer = http.get("/v1/objects/api/s2/patched", params={"format": "arrow", "version": 2})
    assert newer.headers["x-flame-read"] == "patches"
    assert arrow_rows(newer) == [(3, "patch", b"d2")]

    # If-None-Match with an older version asks for what is newer, like a ticket's version
    assert arrow_rows(http.get("/v1/objects/api/s2/patched", headers={"Accept": ARROW, "If-None-Match": '"1"'})) == [
        (2, "patch", b"d1"),
        (3, "patch", b"d2"),
    ]
    # ?version= equal to the current one: DoGet's not-modified answer, the schema and no rows
    current = http.get("/v1/objects/api/s2/patched", params={"format": "arrow", "version": 3})
    assert (current.status_code, current.headers["x-flame-read"], arrow_rows(current)) == (200, "not-modified", [])


def test_arrow_answers_kept_with_a_snapshot_stay_true_to_each_read(http: httpx.Client) -> None:
    """The server keeps a snapshot's short Arrow answers for the next read
    (store/wire.py, `ipc_bytes`): reads that alternate versions and forms,
    and reads after a new patch, must each still get their own rows."""
    key = "/v1/objects/api/s2/kept"
    put(http, "api/s2/kept", b"base")
    for delta in (b"d1", b"d2", b"d3"):
        http.patch(key, content=delta, headers={"Content-Type": RAW})
    want = {1: [(2, "patch", b"d1"), (3, "patch", b"d2"), (4, "patch", b"d3")], 3: [(4, "patch", b"d3")]}
    full = [(1, "base", b"base"), *want[1]]
    for _ in range(2):
        for since in (1, 3, 1):
            assert arrow_rows(http.get(key, params={"format": "arrow", "version": since})) == want[since]
        assert arrow_rows(http.get(key, params={"format": "arrow"})) == full
        chunked = http.get(key, params={"format": "arrow", "chunked": "true"})
        assert arrow_rows(chunked) == full
        assert b"flame.cache.crc32c" in chunked.content  # the chunked form's own schema, not the plain one's
    http.patch(key, content=b"d4", headers={"Content-Type": RAW})
    assert arrow_rows(http.get(key, params={"format": "arrow", "version": 3})) == [(4, "patch", b"d3"), (5, "patch", b"d4")]
    assert arrow_rows(http.get(key, params={"format": "arrow"}))[-1] == (5, "patch", b"d4")

    # a base too long to be sent at once: its patch-only reads still are (deltas only), and stay true
    big = "/v1/objects/api/s2/kept-big"
    put(http, "api/s2/kept-big", bytes(range(256)) * 8192)  # 2 MiB
    http.patch(big, content=b"p1", headers={"Content-Type": RAW})
    for _ in range(2):
        assert arrow_rows(http.get(big, params={"format": "arrow", "version": 1})) == [(2, "patch", b"p1")]
    http.patch(big, content=b"p2", headers={"Content-Type": RAW})
    assert arrow_rows(http.get(big, params={"format": "arrow", "version": 1})) == [(2, "patch", b"p1"), (3, "patch", b"p2")]
    full_big = arrow_rows(http.get(big, params={"format": "arrow"}))
    assert [row[:2] for row in full_big] == [(1, "base"), (2, "patch"), (3, "patch")] and len(full_big[0][2]) == 2 * 1024 * 1024


def test_patch_conditions_and_refusals(http: httpx.Client) -> None:
    put(http, "api/s2/cond", b"base")
    stale = http.patch("/v1/objects/api/s2/cond", content=b"x", headers={"Content-Type": RAW, "If-Match": '"7"'})
    assert stale.status_code == 412 and stale.headers["etag"] == '"1"'
    fresh = http.patch("/v1/objects/api/s2/cond", content=b"x", headers={"Content-Type": RAW, "If-Match": '"1"'})
    assert fresh.json()["version"] == 2
    missing = http.patch("/v1/objects/api/s2/nothing", content=b"x", headers={"Content-Type": RAW})
    assert missing.status_code == 404 and "api/s2/nothing" in missing.json()["message"]


def test_arrow_uploads_mean_what_doput_means(http: httpx.Client) -> None:
    opaque = pa.table({"version": pa.array([9, 9], pa.uint64()), "data": pa.array([b"ab", b"cd"], pa.binary())})
    written = http.put("/v1/objects/api/s3/opaque", content=ipc(opaque), headers={"Content-Type": ARROW})
    assert written.json()["version"] == 1  # uploaded version cells are ignored
    assert http.get("/v1/objects/api/s3/opaque").content == b"abcd"

    native = pa.table({"x": [1, 2, 3]}).replace_schema_metadata({"mine": "kept"})
    created = http.post("/v1/namespaces/api/s3", content=ipc(native), headers={"Content-Type": ARROW})
    key = created.json()["key"]
    got = http.get(f"/v1/objects/{key}")  # a table has no raw bytes: it answers as Arrow
    table = pa.ipc.open_stream(got.content).read_all()
    assert table.column("x").to_pylist() == [1, 2, 3]
    assert table.schema.metadata[b"mine"] == b"kept"
    assert table.schema.metadata[b"flame.cache.version"] == b"1"

    refused = http.patch(f"/v1/objects/{key}", content=b"x", headers={"Content-Type": RAW})
    assert refused.status_code == 400 and "native Arrow table" in refused.json()["message"]
    table_patch = http.patch("/v1/objects/api/s3/opaque", content=ipc(native), headers={"Content-Type": ARROW})
    assert table_patch.status_code == 400 and "opaque schema" in table_patch.json()["message"]
    garbage = http.put("/v1/objects/api/s3/garbage", content=b"not arrow", headers={"Content-Type": ARROW})
    assert garbage.status_code == 400 and "Arrow IPC stream" in garbage.json()["message"]
    assert http.get("/v1/objects/api/s3/garbage").status_code == 404


# -- conditional requests and ranges -----------------------------------------------


def test_if_none_match_answers_304(http: httpx.Client) -> None:
    put(http, "api/s4/cached", b"payload")
    same = http.get("/v1/objects/api/s4/cached", headers={"If-None-Match": '"1"'})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", '"1"')
    assert http.head("/v1/objects/api/s4/cached", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert http.get("/v1/objects/api/s4/cached", headers={"If-None-Match": '"0", "1"'}).status_code == 304
    other = http.get("/v1/objects/api/s4/cached", headers={"If-None-Match": '"5"'})
    assert (other.status_code, other.content) == (200, b"payload")


def test_if_match_makes_a_replace_conditional(http: httpx.Client) -> None:
    put(http, "api/s4/guarded", b"v1")
    stale = put(http, "api/s4/guarded", b"lost", **{"If-Match": '"2"'})
    assert stale.status_code == 412
    assert stale.headers["etag"] == '"1"'
    assert "version 1, not 2" in stale.json()["message"]
    assert http.get("/v1/objects/api/s4/guarded").content == b"v1"  # untouched

    assert put(http, "api/s4/guarded", b"v2", **{"If-Match": '"1"'}).json()["version"] == 2
    assert put(http, "api/s4/guarded", b"v3", **{"If-Match": '"7", "2"'}).json()["version"] == 3
    assert put(http, "api/s4/guarded", b"v4", **{"If-Match": "*"}).json()["version"] == 4
    assert put(http, "api/s4/nothing", b"x", **{"If-Match": "*"}).status_code == 412
    assert put(http, "api/s4/nothing", b"x", **{"If-Match": '"1"'}).status_code == 412
    assert http.get("/v1/objects/api/s4/nothing").status_code == 404

    assert put(http, "api/s4/guarded", b"x", **{"If-None-Match": "*"}).status_code == 412
    assert put(http, "api/s4/fresh", b"x", **{"If-None-Match": "*"}).status_code == 201


def test_range_requests_answer_206_and_resume(http: httpx.Client) -> None:
    body = bytes(range(256)) * 40  # 10240 bytes
    put(http, "api/s5/ranged", body)
    part = http.get("/v1/objects/api/s5/ranged", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == body[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"
    assert part.headers["content-length"] == "100"
    assert http.get("/v1/objects/api/s5/ranged", headers={"Range": "bytes=-10"}).content == body[-10:]
    assert http.get("/v1/objects/api/s5/ranged", headers={"Range": "bytes=10000-99999"}).content == body[10000:]

    unsatisfiable = http.get("/v1/objects/api/s5/ranged", headers={"Range": "bytes=20000-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(body)}"
    stale = http.get("/v1/objects/api/s5/ranged", headers={"Range": "bytes=0-9", "If-Range": '"9"'})
    assert (stale.status_code, len(stale.content)) == (200, len(body))  # changed since: everything
    assert http.get("/v1/objects/api/s5/ranged", headers={"Range": "bytes=0-1,5-6"}).status_code == 200

    resumed = bytearray()
    while len(resumed) < len(body):  # a resumable download, 3000 bytes at a time
        piece = http.get(
            "/v1/objects/api/s5/ranged",
            headers={"Range": f"bytes={len(resumed)}-{len(resumed) + 2999}", "If-Range": '"1"'},
        )
        assert piece.status_code == 206
        resumed += piece.content
    assert bytes(resumed) == body


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, named",
    [
        ("a/b/c/d", "4 segment(s)"),
        ("api/%2E%2E/x", "'..'"),
        ("api/s:1/x", "':'"),
        ("api//x", "empty"),
        ("one", "1 segment"),
    ],
)
def test_bad_keys_are_400_naming_the_problem(http: httpx.Client, key: str, named: str) -> None:
    for response in (http.get(f"/v1/objects/{key}"), put(http, key, b"x")):
        assert response.status_code == 400
        assert response.json()["error"] == "bad_request"
        assert named in response.json()["message"]


def test_missing_objects_are_404(http: httpx.Client) -> None:
    for response in (
        http.get("/v1/objects/api/none/x"),
        http.delete("/v1/objects/api/none/x"),
        http.patch("/v1/objects/api/none/x", content=b"x", headers={"Content-Type": RAW}),
    ):
        assert response.status_code == 404
        assert "api/none/x" in response.json()["message"]
    assert http.head("/v1/objects/api/none/x").status_code == 404


def test_other_content_types_are_415(http: httpx.Client) -> None:
    refused = put(http, "api/s6/typed", b"{}", **{"Content-Type": "application/json"})
    assert refused.status_code == 415
    assert "application/json" in refused.json()["message"]
    assert http.get("/v1/objects/api/s6/typed").status_code == 404


def test_bodies_over_the_limit_are_413_and_nothing_is_stored(http: httpx.Client) -> None:
    declared = put(http, "api/s6/huge", b"x" * (MAX_OBJECT_SIZE + 1))
    assert declared.status_code == 413
    assert str(MAX_OBJECT_SIZE) in declared.json()["message"]

    def undeclared() -> Iterator[bytes]:  # chunked: the size shows only while streaming
        for _ in range(MAX_OBJECT_SIZE // 2**20 + 1):
            yield b"y" * 2**20

    streamed = http.put("/v1/objects/api/s6/huge", content=undeclared(), headers={"Content-Type": RAW})
    assert streamed.status_code == 413
    assert http.get("/v1/objects/api/s6/huge").status_code == 404
    assert put(http, "api/s6/huge", b"x" * MAX_OBJECT_SIZE).status_code == 201  # at the limit: fine


def test_unknown_routes_and_bad_parameters_are_json_errors(http: httpx.Client) -> None:
    assert http.get("/v1/nothing").json()["error"] == "not_found"
    bad = http.get("/v1/objects", params={"limit": "lots"})
    assert bad.status_code == 400 and "limit" in bad.json()["message"]
    raw_with_version = http.get("/v1/objects/api/s1/first", params={"version": 1, "format": "raw"})
    assert raw_with_version.status_code == 400


# -- listing and deleting -----------------------------------------------------------


def test_listing_pages_through_a_prefix(http: httpx.Client) -> None:
    keys = [f"list/s1/o{i}" for i in range(5)] + ["list/s2/o0"]
    for key in keys:
        put(http, key, key.encode())
    seen, cursor, pages = [], None, 0
    while True:
        params = {"prefix": "list/s1", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/objects", params=params).json()
        seen += [o["key"] for o in page["objects"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == keys[:5]
    assert pages == 3
    whole_app = http.get("/v1/objects", params={"prefix": "list/*"}).json()
    assert [o["key"] for o in whole_app["objects"]] == keys
    entry = whole_app["objects"][0]
    assert (entry["version"], entry["size"], entry["deltas"], entry["kind"]) == (1, len(keys[0]), 0, "opaque")
    assert entry["updated"].endswith("+00:00")
    namespaces = http.get("/v1/namespaces", params={"prefix": "list"}).json()
    assert namespaces == [{"namespace": "list/s1", "objects": 5}, {"namespace": "list/s2", "objects": 1}]


def test_delete_a_key_a_namespace_and_app_star(http: httpx.Client) -> None:
    for key in ("del/a/1", "del/a/2", "del/b/1", "del/c/1", "keep/a/1"):
        put(http, key, b"x")
    assert http.delete("/v1/objects/del/a/1").status_code == 204
    assert http.get("/v1/objects/del/a/1").status_code == 404
    assert http.delete("/v1/namespaces/del/a").json() == {"deleted": 1}
    assert http.delete("/v1/namespaces/del/a").json() == {"deleted": 0}
    assert http.delete("/v1/namespaces/del/*").json() == {"deleted": 2}
    assert http.get("/v1/objects", params={"prefix": "del/*"}).json()["objects"] == []
    assert http.get("/v1/objects/keep/a/1").status_code == 200
    assert http.delete("/v1/namespaces/del/a/1/x").status_code == 400


def test_the_page_refuses_deletes_posted_from_other_sites(server: CacheServer, http: httpx.Client) -> None:
    put(http, "api/page/victim", b"x")
    forged = http.post(
        "/ui/delete",
        content="key=api%2Fpage%2Fvictim",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
    )
    assert forged.status_code == 403
    assert http.get("/v1/objects/api/page/victim").status_code == 200


# -- operations ------------------------------------------------------------------------


def test_health_readiness_docs_and_metrics(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready" and ready["persistent"] is True
    assert "swagger" in http.get("/docs").text.lower()
    assert "/v1/objects/{key}" in http.get("/openapi.json").json()["paths"]

    def metric(text: str, name: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    put(http, "api/metrics/one", b"12345")
    before = http.get("/metrics").text
    http.get("/v1/objects/api/metrics/one")
    http.get("/v1/objects/api/metrics/one", headers={"If-None-Match": '"1"'})
    http.get("/v1/objects/api/metrics/none")
    after = http.get("/metrics").text
    for outcome in ("200", "304", "404"):  # a hit, not modified, a miss
        name = f'flame_cache_requests_total{{operation="GET /v1/objects/{{key}}",outcome="{outcome}",protocol="http"}}'
        assert metric(after, name) == metric(before, name) + 1, name
    sent = 'flame_cache_request_bytes_total{direction="out",protocol="http"}'
    assert metric(after, sent) >= metric(before, sent) + 5
    assert metric(after, "flame_cache_objects") >= 1
    assert metric(after, "flame_cache_disk_bytes") >= 5


def test_http_is_off_when_its_endpoint_is_empty(tmp_path: Path) -> None:
    server = CacheServer(tmp_path, None).start()  # the harness's default: http endpoint ""
    try:
        assert "HTTP mirror off" in server.log()
    finally:
        server.stop()
    assert load_config(None, {"FLAME_CACHE_HTTP_ENDPOINT": "http://0.0.0.0:8081"}).http_endpoint.port == 8081


# -- writers racing, and memory-only storage ------------------------------------------------


def test_a_write_landing_during_a_streamed_upload_gets_its_own_version(server: CacheServer, http: httpx.Client) -> None:
    """The upload streams to a temporary file without the key's lock; a write
    that lands meanwhile takes the next version, and the upload the one after
    (framed into the file under the key's lock, so a restart still knows it)."""
    release = threading.Event()
    big = b"B" * (6 * 2**20)  # over one 4 MiB row: streamed

    def body() -> Iterator[bytes]:
        yield big[: 5 * 2**20]
        release.wait(60)
        yield big[5 * 2**20 :]

    result: dict[str, httpx.Response] = {}
    uploader = threading.Thread(
        target=lambda: result.update(r=http.put("/v1/objects/race/s/o", content=body(), headers={"Content-Type": RAW}))
    )
    uploader.start()
    folder = server.storage / "race" / "s"
    for _ in range(600):  # wait (bounded) until the upload has its temporary file
        if folder.is_dir() and any(p.name.startswith(".o.arrow.tmp-") for p in folder.iterdir()):
            break
        threading.Event().wait(0.05)
    else:
        pytest.fail("the upload never started its temporary file")
    with httpx.Client(base_url=server.http_url) as other:
        assert put(other, "race/s/o", b"small").json()["version"] == 1
    release.set()
    uploader.join(60)
    assert result["r"].json()["version"] == 2
    assert http.get("/v1/objects/race/s/o").content == big

    server.restart()
    head = http.head("/v1/objects/race/s/o")
    assert head.headers["etag"] == '"2"'
    with flight.FlightClient(server.endpoint) as client:
        rows = client.do_get(flight.Ticket(b"race/s/o")).read_all().to_pylist()
    assert [(r["version"], r["kind"], len(r["data"])) for r in rows] == [(2, "base", len(big))]


def test_memory_only_storage_serves_large_bodies_too(make_server) -> None:
    server = make_server(None, with_http=True)
    body = bytes(range(256)) * (5 * 2**20 // 256 + 7)
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        assert put(http, "mem/s/o", body).status_code == 201
        assert http.get("/v1/objects/mem/s/o").content == body
        assert http.get("/v1/objects/mem/s/o", headers={"Range": "bytes=-3"}).content == body[-3:]
        assert http.get("/readyz").json()["persistent"] is False
    assert server.stop() == 0  # SIGTERM stops HTTP and Flight cleanly
    assert "HTTP listening on" in server.log() and server.log().rstrip().endswith("stopped")


def test_health_means_the_same_on_both_protocols(make_server, tmp_path: Path) -> None:
    """Flight's HEALTH action and /readyz ask the store the same question: with the
    storage folder gone, both say not ready and why; back, both say ready."""
    storage = tmp_path / "gone-storage"
    server = make_server(storage, with_http=True)

    def both() -> tuple[dict, int, dict]:
        with server.client() as client:
            (result,) = client.do_action(flight.Action("HEALTH", b""))
        ready = httpx.get(f"{server.http_url}/readyz")
        return json.loads(result.body.to_pybytes()), ready.status_code, ready.json()

    flight_health, status, ready = both()
    assert (flight_health["status"], status, ready["status"]) == ("ok", 200, "ready")
    storage.rename(tmp_path / "moved-away")
    flight_health, status, ready = both()
    assert (flight_health["status"], status, ready["status"]) == ("not ready", 503, "not ready")
    assert flight_health["reason"] == ready["reason"] and str(storage) in ready["reason"]
