"""Checksums (SPEC 8, "Integrity"): the crc32c of every base and delta is kept in its
file, checked when an object is loaded, by the background scrub and on demand (DoAction
VERIFY, POST /v1/verify); a mismatch sets the object aside. HTTP sends X-Flame-Checksum
on raw reads and refuses a write whose body does not match it. Upstream's files, which
carry no checksum, keep working.

Damage here is a byte flipped by the test inside a stored data cell, on disk.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import crc32c
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flame_cache.app.config import ConfigError, load_config
from tests.flamepy_scripts import run_flamepy
from tests.flight_client import OPAQUE, MiB, get, patch, put_path, rows
from tests.http_client import RAW, ipc
from tests.server import CacheServer, storage_snapshot

QUIET = {"scrub": {"rate": 0}}  # no scrub: only loads and VERIFY find damage
CHECKSUM = "X-Flame-Checksum"


def header(data: bytes) -> str:
    return "crc32c=" + base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()


def flip_inside(path: Path, data: bytes, at: float = 0.5) -> None:
    """Flip one bit of the stored cell holding `data` (found in the file), `at` of the way in."""
    raw = path.read_bytes()
    start = raw.index(data)
    offset = start + int(len(data) * at)
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x10]))


def quarantined(root: Path) -> list[str]:
    folder = root / ".quarantine"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.arrow.*") if p.is_file()) if folder.exists() else []


def assert_set_aside(server: CacheServer, key: str) -> None:
    """Neither protocol serves `key`: NOT_FOUND naming the checksum, and it is in .quarantine/."""
    with server.client() as client:
        with pytest.raises(KeyError, match="checksum does not match"):
            get(client, f"{key}:0")
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        for method in ("GET", "HEAD"):
            response = http.request(method, f"/v1/objects/{key}")
            assert response.status_code == 404, (method, response.status_code)
        assert "checksum does not match" in http.get(f"/v1/objects/{key}").json()["message"]
    assert any(name.startswith(key.rsplit("/", 1)[-1] + ".arrow.") for name in _names(server.storage, key))


def _names(root: Path, key: str) -> list[str]:
    folder = root / ".quarantine" / key.rsplit("/", 1)[0]
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def wait_for_log(server: CacheServer, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in (log := server.log()):
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the server log:\n{server.log()[-5000:]}")


SMALL = os.urandom(1000)
LARGE = os.urandom(6 * MiB + 123)  # past 4 MiB: streamed in, left in its file, checked by pread
DELTA = os.urandom(3000)


def store_three(server: CacheServer, ns: str) -> dict[str, tuple[Path, bytes]]:
    """A small object, a large one, and one whose delta is the damage target."""
    with server.client() as client:
        put_path(client, f"{ns}/small", SMALL)
        put_path(client, f"{ns}/large", LARGE, row_bytes=MiB)
        put_path(client, f"{ns}/patched", b"the base")
        patch(client, f"{ns}/patched", DELTA)
    root = server.storage
    return {
        f"{ns}/small": (root / f"{ns}/small.arrow", SMALL),
        f"{ns}/large": (root / f"{ns}/large.arrow", LARGE),
        f"{ns}/patched": (root / f"{ns}/patched.deltas/0.arrow", DELTA),
    }


# -- on load -------------------------------------------------------------------------


def test_a_flipped_byte_is_found_on_the_next_load_and_the_object_set_aside(make_server):
    server = make_server(with_http=True, **QUIET)
    targets = store_three(server, "crc/load")
    with server.client() as client:
        put_path(client, "crc/load/intact", b"nothing wrong here")
    server.stop()
    for path, data in targets.values():
        flip_inside(path, data)
    server.start()
    for key in targets:
        assert_set_aside(server, key)
    log = server.log()
    for key in targets:
        assert f"object {key} is damaged on disk" in log and "its checksum does not match" in log
    with server.client() as client:
        assert rows(get(client, "crc/load/intact:0")) == [(1, "base", b"nothing wrong here")]
        stats = json.loads(client.do_action(flight.Action("STATS", b"")).__next__().body.to_pybytes())
    assert stats["checksum_mismatches"] == 3
    assert len(quarantined(server.storage)) == 3


def test_flamepy_is_told_the_object_is_damaged(make_server, tmp_path: Path):
    """flamepy's large put (1 MiB rows, streamed to disk) and get: after a flipped byte
    and a restart the get fails naming the checksum; the intact object still reads."""
    import numpy as np

    server = make_server(**QUIET)
    big = np.arange(1_500_000, dtype=np.float64)  # 12 MB pickled: past 4 MiB
    refs = run_flamepy(server.endpoint, tmp_path / "home", "put_objects", "crcapp/sess", [big, {"small": 1}])
    server.stop()
    base = server.storage / f"{refs[0].key}.arrow"
    cell = base.read_bytes()
    position = len(cell) // 2  # inside the one data cell of a 12 MB file
    with open(base, "r+b") as file:
        file.seek(position)
        byte = file.read(1)[0]
        file.seek(position)
        file.write(bytes([byte ^ 0x01]))
    server.start()
    damaged, intact = run_flamepy(server.endpoint, tmp_path / "home2", "get_or_error", refs)
    assert damaged[0] == "error" and "checksum does not match" in damaged[2], damaged
    assert intact == {"small": 1}
    assert quarantined(server.storage)


# -- the scrub -----------------------------------------------------------------------


def test_the_scrub_finds_damage_in_the_background(make_server):
    server = make_server(with_http=True, scrub={"interval": "0.5s", "rate": "256M"})
    targets = store_three(server, "crc/scrub")
    wait_for_log(server, "scrub: 3 object(s) checked")  # a pass over intact objects sets nothing aside
    assert quarantined(server.storage) == []
    for path, data in targets.values():
        flip_inside(path, data)
    for key in targets:
        wait_for_log(server, f"object {key} is damaged on disk")
    for key in targets:
        assert_set_aside(server, key)
    assert "set aside (crc/scrub/" in server.log()  # the pass's summary names them


def test_the_scrub_keeps_to_its_rate(make_server):
    """16 MiB at 8 MiB/s: a pass takes about two seconds, not a moment."""
    server = make_server(scrub={"interval": "0.2s", "rate": "8M"})
    with server.client() as client:
        put_path(client, "crc/rate/o", os.urandom(16 * MiB), row_bytes=MiB)
    log = wait_for_log(server, "scrub: 1 object(s) checked (16777216 bytes)")
    line = next(line for line in log.splitlines() if "scrub: 1 object(s) checked (16777216 bytes)" in line)
    seconds = float(line.rsplit(" in ", 1)[1].rstrip("s"))
    assert 1.5 <= seconds <= 10, line


# -- on demand -----------------------------------------------------------------------


def test_verify_over_flight_and_http_sets_damaged_objects_aside(make_server):
    server = make_server(with_http=True, **QUIET)
    targets = store_three(server, "crc/verify")
    with server.client() as client:
        put_path(client, "crc/other/o", b"fine")
        (answer,) = client.do_action(flight.Action("VERIFY", b"crc/verify"))
        healthy = json.loads(answer.body.to_pybytes())
    assert healthy["checked"] == 3 and healthy["set_aside"] == [] and healthy["without_checksum"] == 0
    assert healthy["checked_bytes"] == len(SMALL) + len(LARGE) + len(b"the base") + len(DELTA)

    for path, data in targets.values():
        flip_inside(path, data)
    small, large, patched = targets
    with server.client() as client:  # one key over Flight
        (answer,) = client.do_action(flight.Action("VERIFY", small.encode()))
        found = json.loads(answer.body.to_pybytes())
    assert found["set_aside"] == [{"key": small, "reason": "its checksum does not match"}]
    with httpx.Client(base_url=server.http_url, timeout=60) as http:  # a key in the query, a namespace in JSON
        response = http.post("/v1/verify", params={"target": large})
        assert response.status_code == 200, response.text
        assert [e["key"] for e in response.json()["set_aside"]] == [large]
        response = http.post("/v1/verify", json={"target": "crc/*"})
        assert response.status_code == 200, response.text
        assert [e["key"] for e in response.json()["set_aside"]] == [patched]
        assert response.json()["checked"] == 1  # crc/other/o; the set-aside ones are gone
        assert http.post("/v1/verify", params={"target": "crc/verify/missing"}).status_code == 404
        assert http.post("/v1/verify").status_code == 400
    for key in targets:
        assert_set_aside(server, key)


# -- HTTP: X-Flame-Checksum ----------------------------------------------------------


SERVER_OPTIONS = dict(with_http=True, scrub={"rate": 0})


@pytest.fixture
def http(server: CacheServer):
    with httpx.Client(base_url=server.http_url, timeout=120) as client:
        yield client


@pytest.mark.parametrize("size", [100, 6 * MiB + 7], ids=["small", "streamed"])
def test_a_wrong_checksum_on_upload_stores_nothing(server, http, size):
    data = os.urandom(size)
    other = header(data + b"!")
    key = f"crc/http{size}/o"
    assert http.put(f"/v1/objects/{key}", content=b"old", headers={"Content-Type": RAW}).status_code == 201
    before = storage_snapshot(server.storage)
    chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))  # streamed: checked at the end of the body
    for method, path in (("PUT", f"/v1/objects/{key}"), ("POST", f"/v1/namespaces/crc/http{size}"), ("PATCH", f"/v1/objects/{key}")):
        response = http.request(method, path, content=chunks if method == "PUT" else data, headers={CHECKSUM: other})
        assert response.status_code == 400, (method, response.text)
        assert "does not match" in response.json()["message"] and "nothing was stored" in response.json()["message"]
    assert storage_snapshot(server.storage) == before
    got = http.get(f"/v1/objects/{key}")
    assert got.content == b"old" and got.headers["X-Flame-Version"] == "1"


@pytest.mark.parametrize("size", [100, 6 * MiB + 7], ids=["small", "streamed"])
def test_a_right_checksum_stores_and_reads_send_it(server, http, size):
    data = os.urandom(size)
    key = f"crc/right{size}/o"
    response = http.put(f"/v1/objects/{key}", content=data, headers={"Content-Type": RAW, CHECKSUM: header(data)})
    assert response.status_code == 201, response.text
    created = http.post(f"/v1/namespaces/crc/right{size}", content=data, headers={CHECKSUM: header(data)})
    assert created.status_code == 201, created.text
    delta = b"a patch"
    assert http.patch(f"/v1/objects/{key}", content=delta, headers={CHECKSUM: header(delta)}).status_code == 200
    for read in (http.get(f"/v1/objects/{key}"), http.get(f"/v1/objects/{created.json()['key']}")):
        assert read.content == data
        assert read.headers[CHECKSUM] == header(read.content)
    assert http.head(f"/v1/objects/{key}").headers[CHECKSUM] == header(data)
    partial = http.get(f"/v1/objects/{key}", headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and CHECKSUM not in partial.headers  # the header is of the whole base


@pytest.mark.parametrize("size", [100, 9 * MiB + 5], ids=["small", "streamed"])
def test_the_chunked_form_names_the_checksum_of_the_base_it_sends(server, http, size):
    """A `chunked:` ticket (and `?chunked=true`) answers with the base's crc32c in the schema
    metadata, as the file keeps it, so a client checks what it received (flame_cache.client);
    the compatible form and patch-only reads are as they were, without it."""
    data = os.urandom(size)
    key = f"crc/chunked{size}/o"
    expected = {b"flame.cache.crc32c": b"%08x" % crc32c.crc32c(data)}
    with server.client() as client:
        put_path(client, key, data, row_bytes=MiB)
        patch(client, key, b"a delta")
        chunked = get(client, f"chunked:{key}")
        assert chunked.schema.metadata == expected
        assert b"".join(cell for _, kind, cell in rows(chunked) if kind == "base") == data
        assert rows(chunked)[-1] == (2, "patch", b"a delta")
        assert get(client, key).schema.metadata is None and get(client, f"chunked:{key}:1").schema.metadata is None
    reply = http.get(f"/v1/objects/{key}", params={"format": "arrow", "chunked": "true"})
    assert pa.ipc.open_stream(reply.content).schema.metadata == expected


def test_an_arrow_upload_is_checked_against_its_data(server, http):
    data = os.urandom(5000)
    table = pa.table({"version": pa.array([0, 0], pa.uint64()), "data": pa.array([data[:100], data[100:]])}, schema=OPAQUE)
    arrow = {"Content-Type": "application/vnd.apache.arrow.stream"}
    assert http.put("/v1/objects/crc/arrow/o", content=ipc(table), headers={**arrow, CHECKSUM: header(data)}).status_code == 201
    assert http.get("/v1/objects/crc/arrow/o").headers[CHECKSUM] == header(data)
    wrong = http.put("/v1/objects/crc/arrow/o", content=ipc(table), headers={**arrow, CHECKSUM: header(b"x")})
    assert wrong.status_code == 400
    native = http.put(
        "/v1/objects/crc/arrow/t", content=ipc(pa.table({"x": [1]})), headers={**arrow, CHECKSUM: header(b"x")}
    )
    assert native.status_code == 400 and "native Arrow table" in native.json()["message"]
    assert http.get("/v1/objects/crc/arrow/t").status_code == 404


@pytest.mark.parametrize("value", ["crc32c", "crc32c=", "md5=AAAAAA==", "crc32c=AAAA", "crc32c=!!!!!!=="])
def test_a_malformed_checksum_header_is_refused(server, http, value):
    response = http.put("/v1/objects/crc/bad/o", content=b"x", headers={CHECKSUM: value})
    assert response.status_code == 400 and CHECKSUM in response.json()["message"]
    assert http.get("/v1/objects/crc/bad/o").status_code == 404


def test_the_checksum_survives_a_restart(make_server):
    server = make_server(with_http=True, **QUIET)
    data = os.urandom(6 * MiB)
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        assert http.put("/v1/objects/crc/again/o", content=data).status_code == 201
    server.restart()
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        read = http.get("/v1/objects/crc/again/o")
        assert read.content == data and read.headers[CHECKSUM] == header(data)


# -- upstream's files ----------------------------------------------------------------


def test_files_without_a_checksum_keep_working(make_server, tmp_path: Path):
    """Upstream's files (ZSTD, version 0, no checksum) and plain ones without the key:
    read, patched, verified (nothing to compare: reported as without a checksum)."""
    from tests.test_restart import write_upstream

    root = tmp_path / "upstream"
    write_upstream(root / "up/sess/zstd.arrow", [[b"upstream ", b"rows"]])
    write_upstream(root / "up/sess/zstd.deltas/0.arrow", [[b"its delta"]])
    plain = pa.record_batch([pa.array([1], pa.uint64()), pa.array([b"plain"], pa.binary())], schema=OPAQUE)
    (root / "up/sess").mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(root / "up/sess/plain.arrow"), "wb") as sink, pa.ipc.new_file(sink, OPAQUE) as writer:
        writer.write_batch(plain)
    server = make_server(root, with_http=True, scrub={"interval": "0.3s", "rate": "64M"})
    wait_for_log(server, "scrub: 2 object(s) checked")
    with server.client() as client:
        assert rows(get(client, "up/sess/zstd:0")) == [(1, "base", b"upstream rows"), (2, "patch", b"its delta")]
        assert rows(get(client, "up/sess/plain:0")) == [(1, "base", b"plain")]
        (answer,) = client.do_action(flight.Action("VERIFY", b"up/*"))
        report = json.loads(answer.body.to_pybytes())
        patch(client, "up/sess/zstd", b"a new delta")
    assert report["checked"] == 2 and report["without_checksum"] == 2 and report["set_aside"] == []
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        read = http.get("/v1/objects/up/sess/plain")
        assert read.content == b"plain" and CHECKSUM not in read.headers
    assert quarantined(root) == []
    server.restart()
    with server.client() as client:
        assert rows(get(client, "up/sess/zstd:0"))[-1] == (3, "patch", b"a new delta")


# -- configuration -------------------------------------------------------------------


def test_scrub_settings_from_the_file_and_the_environment(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("cache:\n  scrub: {interval: 30m, rate: 64M}\n")
    config = load_config(path, env={})
    assert (config.scrub.interval, config.scrub.rate, config.warnings) == (1800.0, 64 * MiB, ())
    config = load_config(path, env={"FLAME_CACHE_SCRUB_INTERVAL": "1h", "FLAME_CACHE_SCRUB_RATE": "0"})
    assert config.scrub.interval == 3600.0 and not config.scrub.enabled
    path.write_text("cache:\n  scrub: {rate: off}\n")
    assert not load_config(path, env={}).scrub.enabled
    path.write_text("cache: {}\n")
    defaults = load_config(path, env={}).scrub
    assert defaults.enabled and defaults.interval == 86400.0 and defaults.rate == 16 * MiB
    for bad in ({"interval": "soon"}, {"interval": 0}, {"rate": "fast"}):
        path.write_text(json.dumps({"cache": {"scrub": bad}}))
        with pytest.raises(ConfigError, match="cache.scrub"):
            load_config(path, env={})
