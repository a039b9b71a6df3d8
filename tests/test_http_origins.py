"""Host and Origin checks of the HTTP mirror: DNS rebinding and cross-site writes.

A page on another site must not reach the cache through a visitor's browser:
- the Host header must name this server (cache.http.allowed_hosts), or a
  rebound DNS name (attacker.example resolving to 127.0.0.1) would do;
- a write (POST, PUT, PATCH, DELETE) from a browser must come from this
  server's own origin. Clients that send neither Origin nor Sec-Fetch-Site
  (curl, httpx, flamepy) are not browsers and keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from flame_cache.app.config import ConfigError, load_config
from tests.http_client import RAW, put
from tests.server import CacheServer

SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest


@pytest.fixture
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


def own_origin(server: CacheServer) -> str:
    return server.http_url


def assert_exists(http: httpx.Client, key: str) -> None:
    assert http.head(f"/v1/objects/{key}").status_code == 200, f"{key} is gone"


def assert_absent(http: httpx.Client, key: str) -> None:
    assert http.head(f"/v1/objects/{key}").status_code == 404, f"{key} was written"


# -- Host ----------------------------------------------------------------------


def test_the_probe_a_rebound_host_cannot_delete(server: CacheServer, http: httpx.Client) -> None:
    """The probe's request, as curl sent it: a foreign Host with a matching
    Origin and a spoofed Sec-Fetch-Site."""
    put(http, "known/s1/o1", b"keep me")
    foreign = f"attacker.example:{server.http_port}"
    reply = http.post(
        "/ui/delete",
        content=b"key=known/s1/o1",
        headers={
            "Host": foreign,
            "Origin": f"http://{foreign}",
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert reply.status_code in (400, 421), reply.text
    body = reply.json()
    assert "attacker.example" in body["message"]
    assert "cache.http.allowed_hosts" in body["message"]
    assert_exists(http, "known/s1/o1")


@pytest.mark.parametrize("path", ["/", "/v1/namespaces", "/v1/objects/known/s1/o1", "/openapi.json", "/metrics"])
def test_a_foreign_host_cannot_read(server: CacheServer, http: httpx.Client, path: str) -> None:
    """DNS rebinding reads as well as writes: every page and route checks Host."""
    put(http, "known/s1/o1", b"secret")
    reply = http.get(path, headers={"Host": f"attacker.example:{server.http_port}"})
    assert reply.status_code in (400, 421)
    assert reply.json()["error"] == "host_not_allowed"
    assert "'attacker.example'" in reply.json()["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST", "localhost."])
def test_loopback_names_are_allowed_by_default(server: CacheServer, http: httpx.Client, host: str) -> None:
    reply = http.get("/v1/namespaces", headers={"Host": f"{host}:{server.http_port}"})
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("host", ["attacker.example", "127.0.0.1.attacker.example", "localhost.attacker.example"])
def test_lookalike_hosts_are_refused(server: CacheServer, http: httpx.Client, host: str) -> None:
    assert http.get("/", headers={"Host": host}).status_code in (400, 421)


def test_health_stays_open_to_any_host(server: CacheServer, http: httpx.Client) -> None:
    """Probes (a kubelet sends the pod's IP as Host) reveal nothing."""
    for path in ("/healthz", "/readyz"):
        assert http.get(path, headers={"Host": "10.1.2.3:9091"}).status_code == 200


def test_the_advertised_host_is_allowed_by_default(tmp_path: Path) -> None:
    server = CacheServer(tmp_path, tmp_path / "storage", with_http=True, advertise="grpc://cache.internal:9090")
    server.start()
    try:
        with httpx.Client(base_url=server.http_url) as http:
            assert http.get("/", headers={"Host": f"cache.internal:{server.http_port}"}).status_code == 200
            assert http.get("/", headers={"Host": "cache.internal"}).status_code == 200
            assert http.get("/", headers={"Host": "cache.external"}).status_code in (400, 421)
    finally:
        server.stop()


def test_allowed_hosts_replaces_the_default_list_and_star_allows_any(tmp_path: Path) -> None:
    named = CacheServer(tmp_path, tmp_path / "a", with_http=True)
    named.cache["http"]["allowed_hosts"] = ["Cache.Example", "10.0.0.7"]
    anyone = CacheServer(tmp_path, tmp_path / "b", with_http=True)
    anyone.cache["http"]["allowed_hosts"] = ["*"]
    named.start()
    anyone.start()
    try:
        with httpx.Client(base_url=named.http_url) as http:
            assert http.get("/", headers={"Host": "cache.example:1234"}).status_code == 200
            assert http.get("/", headers={"Host": "10.0.0.7"}).status_code == 200
            refused = http.get("/")  # 127.0.0.1 is not listed
            assert refused.status_code in (400, 421)
            assert "'127.0.0.1'" in refused.json()["message"]
            assert "cache.example" in refused.json()["message"]
        with httpx.Client(base_url=anyone.http_url) as http:
            assert http.get("/", headers={"Host": "attacker.example"}).status_code == 200
    finally:
        named.stop()
        anyone.stop()


def test_allowed_hosts_setting_is_read_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("cache:\n  http:\n    allowed_hosts: [cache.example, '[::1]']\n")
    assert load_config(config, env={}).http_allowed_hosts == ("cache.example", "::1")
    from_env = load_config(config, env={"FLAME_CACHE_HTTP_ALLOWED_HOSTS": " a.example , B.example ,*"})
    assert from_env.http_allowed_hosts == ("a.example", "b.example", "*")
    assert load_config(None, env={}).http_allowed_hosts is None  # the default is computed at start-up
    for bad in ("cache.example:9091", "http://cache.example", "two words", ","):
        with pytest.raises(ConfigError, match="cache.http.allowed_hosts"):
            load_config(None, env={"FLAME_CACHE_HTTP_ALLOWED_HOSTS": bad})


# -- Origin on writes ----------------------------------------------------------


def test_writes_without_browser_headers_keep_working(http: httpx.Client) -> None:
    """curl, httpx and flamepy send neither Origin nor Sec-Fetch-Site."""
    assert put(http, "cli/s1/o", b"1").status_code == 201
    assert http.patch("/v1/objects/cli/s1/o", content=b"2", headers={"Content-Type": RAW}).status_code == 200
    assert http.post("/v1/namespaces/cli/s1", content=b"3", headers={"Content-Type": RAW}).status_code == 201
    assert http.delete("/v1/objects/cli/s1/o").status_code == 204


def test_writes_from_this_servers_own_origin_work(server: CacheServer, http: httpx.Client) -> None:
    same = {"Origin": own_origin(server), "Sec-Fetch-Site": "same-origin"}
    assert put(http, "own/s1/o", b"1", **same).status_code == 201
    assert put(http, "own/s1/o", b"2", **{"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert put(http, "own/s1/o", b"3", **{"Origin": own_origin(server)}).status_code == 200
    assert http.delete("/v1/objects/own/s1/o", headers=same).status_code == 204


FOREIGN = [
    {"Origin": "http://attacker.example"},
    {"Origin": "http://attacker.example", "Sec-Fetch-Site": "same-origin"},  # spoofed: Origin decides
    {"Origin": "null"},  # sandboxed iframes, some no-cors requests
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://127.0.0.1"},  # same host, another port
    {"Origin": "https://127.0.0.1:{port}"},  # another scheme
    {"Origin": "http://localhost:{port}"},  # another host name for the same server is another origin
    {"Origin": "not a url"},
]


@pytest.mark.parametrize("headers", FOREIGN, ids=lambda h: " ".join(f"{k}={v}" for k, v in h.items()))
def test_browser_writes_from_another_origin_are_refused(
    server: CacheServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    headers = {name: value.format(port=server.http_port) for name, value in headers.items()}
    ns = f"victim{uuid4().hex[:8]}"
    put(http, f"{ns}/s1/o", b"original")
    attempts = [
        http.post(f"/v1/namespaces/{ns}/s2", content=b"x", headers={**headers, "Content-Type": RAW}),
        http.put(f"/v1/objects/{ns}/s1/o", content=b"x", headers={**headers, "Content-Type": RAW}),
        http.patch(f"/v1/objects/{ns}/s1/o", content=b"x", headers={**headers, "Content-Type": RAW}),
        http.delete(f"/v1/objects/{ns}/s1/o", headers=headers),
        http.delete(f"/v1/namespaces/{ns}/s1", headers=headers),
        http.post(
            "/ui/delete",
            content=f"key={ns}/s1/o".encode(),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]
    for reply in attempts:
        assert reply.status_code == 403, (reply.request.method, reply.request.url, reply.text)
        body = reply.json()
        assert body["error"] == "cross_origin"
        shown = headers.get("Origin") or headers["Sec-Fetch-Site"]
        assert repr(shown) in body["message"]
    got = http.get(f"/v1/objects/{ns}/s1/o")
    assert got.content == b"original" and got.headers["etag"] == '"1"'
    assert http.get("/v1/objects", params={"prefix": f"{ns}/s2"}).json()["objects"] == []


def test_reads_from_another_origin_are_not_refused(http: httpx.Client) -> None:
    """Safe methods change nothing; the browser's same-origin policy keeps the answer from the other page."""
    put(http, "open/s1/o", b"x")
    assert http.get("/v1/objects/open/s1/o", headers={"Origin": "http://attacker.example"}).status_code == 200


def test_default_allowed_hosts_name_loopback_the_bound_and_the_advertised_host() -> None:
    from flame_cache.app.network import http_allowed_hosts, interface_addresses

    one = load_config(None, env={"FLAME_CACHE_HTTP_ENDPOINT": "http://10.9.8.7:9091"})
    assert http_allowed_hosts(one, "grpc://cache.internal:9090") == (
        "localhost", "127.0.0.1", "::1", "10.9.8.7", "cache.internal",
    )
    every = load_config(None, env={"FLAME_CACHE_HTTP_ENDPOINT": "http://0.0.0.0:9091"})
    assert set(interface_addresses().values()) <= set(http_allowed_hosts(every, "grpc://[fd00::1]:9090"))
    assert "fd00::1" in http_allowed_hosts(every, "grpc://[fd00::1]:9090")
    named = load_config(None, env={"FLAME_CACHE_HTTP_ALLOWED_HOSTS": "cache.example"})
    assert http_allowed_hosts(named, "grpc://cache.internal:9090") == ("cache.example",)
