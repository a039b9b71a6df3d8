"""cache.auth.anonymous and flamepy: what callers without a token may do.

flamepy 0.6.0 sends no credentials. Under `anonymous: ["read:*"]` it still
reads every object, and its writes are refused with UNAUTHENTICATED (nothing
stored); without a cache.auth section, everything works as before, whatever
token a client sends.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import httpx
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.flamepy_scripts import run_flamepy
from tests.flight_client import OPAQUE, opaque, put_path
from tests.secure_server import SecureServer, bearer
from tests.server import storage_snapshot

CI = secrets.token_urlsafe(32)
RAW = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    workdir = tmp_path_factory.mktemp("anonymous")
    auth = {
        "tokens": [{"name": "ci", "token_sha256": hashlib.sha256(CI.encode()).hexdigest(), "scopes": ["admin:flame-app/*"]}],
        "anonymous": ["read:*"],
    }
    server = SecureServer(workdir, workdir / "storage", auth=auth).start()
    yield server
    server.stop()


def test_flamepy_reads_without_a_token_and_its_writes_are_refused(server: SecureServer, tmp_path: Path) -> None:
    with server.client() as client:  # ci writes an object as flamepy would have
        writer, reader = client.do_put(*_descriptor_and_schema("flame-app/s1/shared"), options=bearer(CI))
        with writer:
            writer.write_table(_flamepy_cell({"weights": [1, 2, 3]}))
            writer.done_writing()
            assert reader.read() is not None
    from flamepy.core.cache import ObjectRef

    ref = ObjectRef(server.endpoint, "flame-app/s1/shared", 1)
    home = tmp_path / "home"
    assert run_flamepy(server.endpoint, home, "get_objects", [ref], False) == [{"weights": [1, 2, 3]}]
    before = storage_snapshot(server.storage)
    error = run_flamepy(server.endpoint, home, "error_of", "put_objects", "flame-app/s1", [{"new": 1}])
    assert error["type"] == "FlightUnauthenticatedError", error
    assert "put of 'flame-app/s1' needs a token: anonymous callers may not write it" in error["message"]
    assert storage_snapshot(server.storage) == before


def test_http_without_a_token_reads_and_is_asked_for_one_to_write(server: SecureServer) -> None:
    with server.http(CI) as ci:
        assert ci.put("/v1/objects/flame-app/s2/o", content=b"shared", headers=RAW).status_code == 201
    with server.http() as anonymous:
        assert anonymous.get("/v1/objects/flame-app/s2/o").content == b"shared"
        refused = anonymous.put("/v1/objects/flame-app/s2/o", content=b"mine", headers=RAW)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="flame-cache"'
        assert refused.json() == {
            "error": "unauthenticated",
            "message": "put of 'flame-app/s2/o' needs a token: anonymous callers may not write it "
            "(send 'authorization: Bearer <token>')",
        }
        assert anonymous.get("/metrics").status_code == 401
        page = anonymous.get("/")
        assert page.status_code == 200 and "flame-app/s2/o" in page.text and "id=token-form" in page.text
        assert anonymous.get("/v1/objects/flame-app/s2/o").headers["etag"] == '"1"'
    with server.http("not-a-token") as unknown:
        refused = unknown.get("/v1/objects/flame-app/s2/o")  # an unknown token is not anonymous
        assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_without_an_auth_section_tokens_are_ignored(make_server) -> None:
    server = make_server(with_http=True)
    with httpx.Client(base_url=server.http_url, headers={"Authorization": "Bearer whatever"}) as http:
        assert http.put("/v1/objects/a/s/o", content=b"x", headers=RAW).status_code == 201
        assert http.get("/metrics").status_code == 200
        assert "id=token-form" not in http.get("/").text and "<script>" not in http.get("/").text
    with server.client() as client:
        assert put_path(client, "a/s/o", b"y")["version"] == 2


def _descriptor_and_schema(key: str) -> tuple[flight.FlightDescriptor, pa.Schema]:
    return flight.FlightDescriptor.for_path(key), OPAQUE


def _flamepy_cell(obj: object) -> pa.Table:
    """What flamepy stores for a Python object: `FLM\\0` and its cloudpickle."""
    return opaque(b"FLM\x00" + cloudpickle.dumps(obj))
