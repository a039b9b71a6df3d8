"""flame_cache.client, the Python API the command line stands on (issue 15).

Against a real server: writes from a path, a file object, bytes and
iterators of any piece size; reads into a path, a file object, or chunk by
chunk; a write that fails half way stores nothing; the token on every
call, refusals as typed errors (cache.auth), and a download whose bytes do
not match their checksum (a byte flipped in the stored file). Settings as flamepy
resolves them, and TLS with the CA from each of the places flamepy reads it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from flame_cache.client import (
    ChecksumMismatch,
    Client,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SettingsError,
    Unauthenticated,
    Unavailable,
    resolve,
)
from tests.cli import cli_env, run
from tests.server import CacheServer, free_port

MiB = 2**20


@pytest.fixture(scope="module")
def cache(server: CacheServer):
    with Client(server.endpoint) as client:
        yield client


def key() -> str:
    return f"api/s-{uuid.uuid4().hex[:8]}/{uuid.uuid4().hex[:8]}"


def blocks(size: int, piece: int) -> list[bytes]:
    data = bytes(range(251)) * (size // 251 + 1)
    return [data[i : i + piece] for i in range(0, size, piece)]


# -- writes and reads against the real server ----------------------------------


@pytest.mark.parametrize("piece", [1, 1000, MiB + 3, 9 * MiB], ids=["1 B", "1000 B", "1 MiB + 3", "9 MiB"])
def test_an_iterator_of_any_piece_size_round_trips(cache, piece):
    pieces = blocks(9 * MiB + 5 if piece > 1 else 5000, piece)
    target = key()
    ref = cache.put(target, iter(pieces))
    assert (ref.key, ref.version) == (target, 1)
    chunks = list(cache.iter_chunks(target))
    assert b"".join(bytes(c) for c in chunks) == b"".join(pieces)
    assert all(len(c) <= 4 * MiB for c in chunks)


def test_paths_file_objects_and_bytes_round_trip(cache, tmp_path):
    body = b"".join(blocks(6 * MiB + 1, MiB))
    (tmp_path / "in.bin").write_bytes(body)
    for source in (tmp_path / "in.bin", str(tmp_path / "in.bin"), io.BytesIO(body), body, bytearray(body)):
        target = key()
        assert cache.put(target, source).version == 1
        out = io.BytesIO()
        received = cache.get(target, out)
        assert out.getvalue() == body and (received.version, received.size) == (1, len(body))
        assert received.crc32c is not None  # checked against the stored checksum
        cache.get(target, tmp_path / "out.bin")
        assert (tmp_path / "out.bin").read_bytes() == body
    assert cache.stat(target).size == len(body)
    assert [s.key for s in cache.list(target.rsplit("/", 1)[0])] == [target]


def test_a_namespace_gets_a_new_object_and_a_key_a_new_version(cache):
    namespace = key().rsplit("/", 1)[0]
    ref = cache.put(namespace, b"first")
    assert ref.key.startswith(namespace + "/") and uuid.UUID(ref.key.rsplit("/", 1)[1]).version == 4
    assert cache.put(ref.key, b"second").version == 2
    cache.delete(namespace)
    with pytest.raises(NotFound, match="not found"):
        cache.stat(ref.key)


@pytest.mark.parametrize("declared", [True, False], ids=["size known", "size unknown (trailer)"])
def test_a_write_that_fails_half_way_stores_nothing(cache, declared):
    target = key()
    cache.put(target, b"the old object")

    def failing():
        yield from blocks(9 * MiB, MiB)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        cache.put(target, failing(), size=10 * MiB if declared else None)
    assert b"".join(bytes(c) for c in cache.iter_chunks(target)) == b"the old object"
    assert cache.stat(target).version == 1


def test_a_failed_get_leaves_no_file_and_an_unfinished_read_frees_the_stream(cache, tmp_path):
    with pytest.raises(NotFound):
        cache.get(key(), tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []
    target = key()
    cache.put(target, iter(blocks(12 * MiB, MiB)))
    chunks = cache.iter_chunks(target)
    next(chunks)
    chunks.close()  # stops early: the stream is cancelled, the client goes on working
    assert cache.stat(target).version == 1


def test_bad_keys_are_invalid_arguments(cache):
    for bad in ("app/../x", "a/b/c/d", "app/s/x:1"):
        with pytest.raises(InvalidArgument) as caught:
            cache.get(bad, io.BytesIO())
        assert caught.value.subject == bad
    with pytest.raises(InvalidArgument, match="4 segments"):
        cache.put("a/b/c/d", b"x")


def test_an_unreachable_server_is_unavailable():
    with Client(f"grpc://127.0.0.1:{free_port()}") as client, pytest.raises(Unavailable, match="cannot reach"):
        client.stat("a/b/c")


# -- the token, refusals and checksums, against a real server -------------------


TOKEN = "s3cret-client-token"


@pytest.fixture
def guarded(make_server, tmp_path) -> CacheServer:
    """A server with cache.auth: the `ci` token may read, write and delete app/*; anonymous nothing."""
    (tmp_path / "ci").write_text(TOKEN + "\n")
    scopes = ["read:app/*", "write:app/*", "delete:app/*"]
    return make_server(auth={"tokens": [{"name": "ci", "token_file": str(tmp_path / "ci"), "scopes": scopes}]})


def test_the_token_goes_on_every_call_and_a_wrong_one_is_refused(guarded, tmp_path):
    with Client(guarded.endpoint, token=TOKEN) as client:  # each call would be refused without it
        client.put("app/s/k", b"data")
        out = io.BytesIO()
        client.get("app/s/k", out)
        assert out.getvalue() == b"data"
        assert client.stat("app/s/k").size == 4
        assert [info.key for info in client.list("app")] == ["app/s/k"]
        with pytest.raises(PermissionDenied, match="no delete scope of token .ci. covers it"):
            client.delete("other/s")
    for token in (None, "wrong"):
        with Client(guarded.endpoint, token=token) as client, pytest.raises(Unauthenticated):
            client.stat("app/s/k")

    (tmp_path / "token").write_text(TOKEN + "\n")
    home = tmp_path / "home"
    for args in (("--token-file", str(tmp_path / "token")), ()):
        ran = run("stat", *args, "app/s/k", home=home, endpoint=guarded.endpoint,
                  env=None if args else _env_with_token(home, guarded.endpoint, TOKEN))
        assert ran.status == 0, ran.err
    refused = run("stat", "app/s/k", home=home, env=_env_with_token(home, guarded.endpoint, "wrong"))
    assert refused.status == 1 and len(refused.err.splitlines()) == 1
    assert refused.err.startswith("flame-cache stat: app/s/k: ") and "not one this server knows" in refused.err
    with Client(guarded.endpoint, token=TOKEN) as client:
        client.delete("app/*")
        with pytest.raises(NotFound):
            client.stat("app/s/k")


def _env_with_token(home: Path, endpoint: str, token: str) -> dict[str, str]:
    return cli_env(home, endpoint, FLAME_CACHE_TOKEN=token)


def test_bytes_that_do_not_match_their_checksum_are_refused(make_server, tmp_path):
    """A large base is sent from its file: a byte flipped there after the
    load's check goes out, and the client's own check refuses it."""
    server = make_server()
    data = bytes(range(256)) * (9 * MiB // 256)  # over 4 MiB: served from its file
    with Client(server.endpoint) as client:
        client.put("app/s/k", data)
        client.get("app/s/k", io.BytesIO())  # loaded (and checked) by the server
        path = server.storage / "app" / "s" / "k.arrow"
        with path.open("r+b") as stored:
            stored.seek(path.stat().st_size // 2)
            byte = stored.read(1)
            stored.seek(-1, io.SEEK_CUR)
            stored.write(bytes([byte[0] ^ 0xFF]))
        with pytest.raises(ChecksumMismatch, match="do not match its stored checksum"):
            client.get("app/s/k", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists() and not list(tmp_path.glob(".*.part"))
    ran = run("get", "app/s/k", str(tmp_path / "out.bin"), home=tmp_path / "home", endpoint=server.endpoint)
    assert ran.status == 1 and len(ran.err.splitlines()) == 1
    assert ran.err.startswith("flame-cache get: app/s/k: the bytes received do not match its stored checksum")
    assert not (tmp_path / "out.bin").exists()


# -- settings, as flamepy resolves them ------------------------------------------


def write_flame_yaml(home: Path, document: dict) -> None:
    (home / ".flame").mkdir(parents=True, exist_ok=True)
    (home / ".flame" / "flame.yaml").write_text(yaml.safe_dump(document))


def context(endpoint: str, ca_file: str | None = None, name: str = "flame") -> dict:
    cache = {"endpoint": endpoint, **({"tls": {"ca_file": ca_file}} if ca_file else {})}
    return {"current-context": name, "contexts": [{"name": "other", "cache": {"endpoint": "grpc://x:1"}},
                                                 {"name": name, "cache": cache}]}


def test_settings_resolve_in_flamepy_order(tmp_path):
    home = tmp_path
    assert resolve(environ={}, home=home).endpoint == "grpc://127.0.0.1:9090"
    write_flame_yaml(home, context("grpcs://cache.ctx:9443", "/ctx/ca.pem"))
    from_file = resolve(environ={"FLAME_CA_FILE": "/env/ca.pem"}, home=home)
    assert (from_file.endpoint, str(from_file.ca_file)) == ("grpc+tls://cache.ctx:9443", "/ctx/ca.pem")
    env = {"FLAME_CACHE_ENDPOINT": "grpc+tls://cache.env:1", "FLAME_CACHE_TOKEN": "t"}
    from_env = resolve(environ=env, home=home)
    assert (from_env.endpoint, str(from_env.ca_file), from_env.headers) == (
        "grpc+tls://cache.env:1", "/ctx/ca.pem", [(b"authorization", b"Bearer t")])
    explicit = resolve("grpc://cache.arg:2", ca_file="/arg/ca.pem", token="tok-123", environ=env, home=home)
    assert (explicit.endpoint, str(explicit.ca_file), explicit.token) == ("grpc://cache.arg:2", "/arg/ca.pem", "tok-123")
    assert "tok-123" not in repr(explicit)
    write_flame_yaml(home, context("grpcs://cache.ctx:9443"))
    assert str(resolve(environ={"FLAME_CA_FILE": "/env/ca.pem"}, home=home).ca_file) == "/env/ca.pem"


@pytest.mark.parametrize(
    "document, message",
    [({"contexts": []}, "current-context is not set"), ({"current-context": "nope", "contexts": []}, "'nope'")],
)
def test_a_flame_yaml_flamepy_would_refuse_is_refused(tmp_path, document, message):
    write_flame_yaml(tmp_path, document)
    with pytest.raises(SettingsError, match=message):
        resolve(environ={}, home=tmp_path)


def test_endpoints_that_are_not_grpc_and_unreadable_token_files_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="grpc://HOST:PORT"):
        resolve("http://127.0.0.1:9091", environ={}, home=tmp_path)
    with pytest.raises(SettingsError, match="cannot read the token file"):
        resolve("grpc://h:1", token_file=tmp_path / "none", environ={}, home=tmp_path)


# -- TLS: the CA from --ca-file, flame.yaml or FLAME_CA_FILE ----------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    workdir = tmp_path_factory.mktemp("tls")
    ca, cert, cert_key = make_certificates(workdir)
    server = CacheServer(
        workdir, workdir / "storage", scheme="grpc+tls", client_options={"tls_root_certs": ca.read_bytes()},
        tls={"cert_file": str(cert), "key_file": str(cert_key)},
    )
    yield server.start(), ca
    server.stop()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1."""
    ca, ca_key, cert, key_file = (folder / n for n in ("ca.pem", "ca.key", "cert.pem", "key.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl = ["openssl", "req", *ec, "-days", "2"]
    subprocess.run([*openssl, "-x509", "-keyout", ca_key, "-out", ca, "-subj", "/CN=test-ca"], check=True,
                   capture_output=True)
    csr = folder / "cert.csr"
    subprocess.run([*openssl, "-keyout", key_file, "-out", csr, "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
                    "-days", "2", "-extfile", folder / "san.ext"], check=True, capture_output=True)
    return ca, cert, key_file


def test_tls_with_the_ca_from_each_place_flamepy_reads_it(tls_server, tmp_path):
    server, ca = tls_server
    grpcs = server.endpoint.replace("grpc+tls://", "grpcs://")
    home = tmp_path / "home"
    assert run("put", "--ca-file", str(ca), "-", "tls/s/k", home=home, endpoint=grpcs, stdin=b"over tls").status == 0
    write_flame_yaml(home, context(grpcs, str(ca)))
    assert run("cat", "tls/s/k", home=home).stdout == b"over tls"  # flame.yaml: endpoint and CA
    bare = tmp_path / "bare"
    with_env = cli_env(bare, grpcs, FLAME_CA_FILE=str(ca))
    assert run("cat", "tls/s/k", home=bare, env=with_env).stdout == b"over tls"
    refused = run("cat", "tls/s/k", home=bare, endpoint=grpcs)  # no CA: the system's do not know it
    assert refused.status == 1 and len(refused.err.splitlines()) == 1 and "tls/s/k: cannot reach" in refused.err
