"""TLS on both listeners (issue 13, done-when 1), against real server processes.

flamepy 0.6.0, unchanged, speaks TLS to a `grpcs://` cache endpoint with the
CA named in `~/.flame/flame.yaml` (`cache.tls.ca_file`) or in FLAME_CA_FILE;
a plaintext client is refused; with `ca_file` on the server, only clients with
a certificate from that CA get in, on Flight and on HTTP; `https://` serves the
same API as `http://`, and httpx checks the server's certificate. Certificates
are made by the tests (tests/certs.py).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.flight as flight
import pytest
import yaml

from tests.certs import Pki, issue, make_ca
from tests.flamepy_scripts import run_flamepy_with
from tests.flight_client import get, put_path, rows
from tests.secure_server import OPTIONS, SecureServer, trusting
from tests.server import CacheServer, free_port

RAW = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """Flight on grpcs:// and HTTP on https://, one certificate, no client certificates."""
    workdir = tmp_path_factory.mktemp("tls")
    server = SecureServer(workdir, workdir / "storage", pki=pki).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    """As tls_server, and clients must present a certificate from the CA."""
    workdir = tmp_path_factory.mktemp("mtls")
    server = SecureServer(workdir, workdir / "storage", pki=pki, mutual=True).start()
    yield server
    server.stop()


def check_flows(seen: dict, namespace: str, upload: bytes, server: SecureServer) -> None:
    assert seen["put"].endpoint == server.endpoint and seen["put"].key.startswith(namespace + "/")
    assert seen["get"] == {"step": 0}
    ref, base_and_deltas = seen["update_patch"]
    assert ref.version == 3 and base_and_deltas == {"base": {"step": 1}, "deltas": [{"step": 2}]}
    assert seen["upload"].key == f"{namespace}/blob.bin" and seen["upload"].version == 1
    with server.client() as client:
        assert rows(get(client, seen["upload"].key)) == [(1, "base", upload)]
    assert seen["deleted"] is True


@pytest.mark.parametrize("configured_by", ["flame.yaml", "environment"])
def test_flamepy_unchanged_speaks_tls(tls_server: SecureServer, pki: Pki, tmp_path: Path, configured_by: str) -> None:
    """flamepy's own TLS: a grpcs:// endpoint and the CA, from ~/.flame/flame.yaml
    (cache.tls.ca_file) or from FLAME_CACHE_ENDPOINT and FLAME_CA_FILE."""
    home, namespace = tmp_path / "home", f"tls-app/{configured_by.replace('.', '-')}"
    endpoint = f"grpcs://127.0.0.1:{tls_server.port}"
    if configured_by == "flame.yaml":
        context = {"name": "tls", "cluster": {"endpoint": "https://127.0.0.1:1"}}
        context["cache"] = {"endpoint": endpoint, "tls": {"ca_file": str(pki.ca.cert)}}
        (home / ".flame").mkdir(parents=True)
        (home / ".flame" / "flame.yaml").write_text(yaml.safe_dump({"current-context": "tls", "contexts": [context]}))
        env = {}
    else:
        env = {"FLAME_CACHE_ENDPOINT": endpoint, "FLAME_CA_FILE": str(pki.ca.cert)}
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(3 << 20 | 12345))  # several of flamepy's 1 MiB rows
    seen = run_flamepy_with(env, home, "every_flow", namespace, str(upload))
    check_flows(seen, namespace, upload.read_bytes(), tls_server)


def test_flamepy_without_the_ca_is_refused(tls_server: SecureServer, tmp_path: Path) -> None:
    """flamepy with a grpcs:// endpoint but no CA uses the system's CAs, which
    never signed the test CA: the handshake fails, nothing is stored."""
    env = {"FLAME_CACHE_ENDPOINT": f"grpcs://127.0.0.1:{tls_server.port}"}
    error = run_flamepy_with(env, tmp_path / "home", "error_of", "put_objects", "tls-app/no-ca", ["x"])
    assert error["type"] is not None, error
    with tls_server.client() as client:
        assert list(client.list_flights(b"tls-app/no-ca", options=OPTIONS)) == []


def test_plaintext_clients_are_refused(tls_server: SecureServer, tmp_path: Path) -> None:
    """grpc:// and http:// against TLS listeners: no answer but a failure."""
    with flight.FlightClient(f"grpc://127.0.0.1:{tls_server.port}") as plain:
        with pytest.raises(flight.FlightError):
            list(plain.list_actions(options=flight.FlightCallOptions(timeout=5)))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.http_port}/healthz", timeout=5)
    error = run_flamepy_with(
        {"FLAME_CACHE_ENDPOINT": f"grpc://127.0.0.1:{tls_server.port}"},
        tmp_path / "home",
        "error_of",
        "put_objects",
        "tls-app/plain",
        ["x"],
    )
    assert error["type"] is not None, error


def test_https_serves_the_same_api_and_httpx_verifies_it(tls_server: SecureServer, pki: Pki) -> None:
    """The HTTP mirror over TLS: write, read, list and delete as over http://;
    an object written over Flight is the one read over HTTPS, and back."""
    with tls_server.http() as http, tls_server.client() as client:
        assert http.get("/healthz").json() == {"status": "ok"}
        created = http.put("/v1/objects/web/s/doc", content=b"over https", headers=RAW)
        assert created.status_code == 201 and created.json()["endpoint"] == tls_server.endpoint
        assert rows(get(client, "web/s/doc")) == [(1, "base", b"over https")]
        put_path(client, "web/s/doc", b"over flight")
        answer = http.get("/v1/objects/web/s/doc")
        assert answer.content == b"over flight" and answer.headers["etag"] == '"2"'
        assert [o["key"] for o in http.get("/v1/objects", params={"prefix": "web"}).json()["objects"]] == ["web/s/doc"]
        assert http.delete("/v1/objects/web/s/doc").status_code == 204
    assert tls_server.http_url.startswith("https://")
    assert f"HTTP listening on {tls_server.http_url}" in tls_server.log()
    with pytest.raises(httpx.ConnectError) as caught:  # the default CAs did not sign the test CA
        httpx.get(tls_server.http_url + "/healthz", timeout=5)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    with pytest.raises(httpx.ConnectError):  # a CA that signed nothing of the server's
        httpx.get(tls_server.http_url + "/healthz", timeout=5, verify=trusting(pki.other_ca.cert))


def test_mutual_tls_lets_in_only_certificates_of_the_ca(mtls_server: SecureServer, pki: Pki) -> None:
    """ca_file on the server: a client certificate from that CA works, none
    or a stranger's is refused, on Flight and on HTTP alike."""
    with mtls_server.flight(cert=pki.client) as client:
        assert put_path(client, "m/s/o", b"mutual")["version"] == 1
        assert rows(get(client, "m/s/o")) == [(1, "base", b"mutual")]
    for cert in (None, pki.stranger):
        with mtls_server.flight(cert=cert) as client:
            with pytest.raises(flight.FlightError):
                list(client.list_flights(options=flight.FlightCallOptions(timeout=5)))
    with mtls_server.http(cert=pki.client) as http:
        assert http.get("/v1/objects/m/s/o").content == b"mutual"
    for cert in (None, pki.stranger):
        with mtls_server.http(cert=cert) as http:
            with pytest.raises(httpx.HTTPError):
                http.get("/healthz")


def test_http_serves_its_own_certificate_when_named(pki: Pki, tmp_path: Path) -> None:
    """cache.http.tls names another certificate: HTTP serves it, Flight keeps cache.tls's."""
    web_ca = make_ca(tmp_path / "web", "web-ca")
    web = issue(tmp_path / "web", "web", web_ca, server=True)
    server = SecureServer(tmp_path, tmp_path / "storage", pki=pki, http_tls=(web_ca, web)).start()
    try:
        with server.http() as http, server.client() as client:  # trusting web-ca, and Flight's CA
            assert http.put("/v1/objects/w/s/o", content=b"w", headers=RAW).status_code == 201
            assert rows(get(client, "w/s/o")) == [(1, "base", b"w")]
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.http_url + "/healthz", verify=trusting(pki.ca.cert), timeout=5)
    finally:
        server.stop()


def test_tokens_over_tls_on_both_protocols(pki: Pki, tmp_path: Path) -> None:
    """cache.auth beside TLS: the basic-token handshake and bearer tokens over
    grpc+tls://, bearer tokens over https://; nothing without one."""
    token = secrets.token_urlsafe(32)
    auth = {"tokens": [{"name": "ci", "token_sha256": hashlib.sha256(token.encode()).hexdigest(), "scopes": ["admin:*"]}]}
    server = SecureServer(tmp_path, tmp_path / "storage", pki=pki, auth=auth).start()
    try:
        with server.client() as client:
            header = client.authenticate_basic_token(b"ci", token.encode())
            options = flight.FlightCallOptions(headers=[header], timeout=10)
            assert list(client.do_action(flight.Action("DELETE", b"t/s"), options=options))[0].body.to_pybytes() == b"OK"
            with pytest.raises(flight.FlightUnauthenticatedError):
                list(client.list_flights(options=OPTIONS))
        with server.http(token) as http:
            assert http.put("/v1/objects/t/s/o", content=b"secret", headers=RAW).status_code == 201
            assert http.get("/metrics").status_code == 200
        with server.http() as anonymous:
            assert anonymous.get("/v1/objects/t/s/o").status_code == 401
        assert token not in server.log()
    finally:
        server.stop()


# -- start-up errors ------------------------------------------------------------


def start_and_fail(tmp_path: Path, cache: dict) -> tuple[int, str]:
    """Start a server with `cache` merged into its configuration; its exit status and log."""
    server = CacheServer(tmp_path, tmp_path / "storage", with_http=True, **cache)
    server.cache["http"]["endpoint"] = f"https://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError):
        server.start(timeout=20)
    return server.process.wait(10), server.log()


def test_missing_certificate_stops_start_up_naming_it(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "missing.crt"
    status, log = start_and_fail(tmp_path, {"tls": {"cert_file": str(missing), "key_file": str(pki.server.key)}})
    assert status == 2 and f"cache.tls.cert_file = {str(missing)!r} is not a readable file" in log, log


@pytest.mark.parametrize("damage", ["garbage-cert", "garbage-key", "mismatched-key", "garbage-ca", "unreadable-key"])
def test_bad_certificate_files_stop_start_up_naming_them(tmp_path: Path, pki: Pki, damage: str) -> None:
    """Each file is loaded (ssl.SSLContext) before anything listens."""
    cert, key, ca = tmp_path / "c.crt", tmp_path / "c.key", tmp_path / "ca.crt"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    ca.write_bytes(pki.ca.cert.read_bytes())
    if damage == "garbage-cert":
        cert.write_text("not a certificate\n")
    elif damage == "garbage-key":
        key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    elif damage == "mismatched-key":
        key.write_bytes(pki.client.key.read_bytes())
    elif damage == "garbage-ca":
        ca.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        key.chmod(0)
    status, log = start_and_fail(tmp_path, {"tls": {"cert_file": str(cert), "key_file": str(key), "ca_file": str(ca)}})
    expected = {
        "garbage-cert": f"cache.tls.cert_file = {str(cert)!r} is not a PEM certificate",
        "garbage-key": f"cache.tls: cannot use {str(cert)!r} with the key {str(key)!r}",
        "mismatched-key": f"cache.tls.key_file {str(key)!r} is not the key of cache.tls.cert_file {str(cert)!r}",
        "garbage-ca": f"cache.tls.ca_file {str(ca)!r} holds no usable CA certificate",
        "unreadable-key": f"cache.tls.key_file = {str(key)!r} cannot be read",
    }[damage]
    assert status == 1 and expected in log, log
    assert "Traceback" not in log


def test_https_without_a_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    status, log = start_and_fail(tmp_path, {})
    assert status == 2 and "uses TLS: set cache.tls.cert_file and cache.tls.key_file" in log, log


def test_the_server_context_refuses_old_protocols(pki: Pki) -> None:
    """What both listeners are checked with: TLS 1.2 or later."""
    from flame_cache.app.tls import server_context
    from flame_cache.app.tlsconfig import TlsConfig

    context = server_context(TlsConfig(pki.server.cert, pki.server.key, pki.ca.cert))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2 and context.verify_mode == ssl.CERT_REQUIRED
