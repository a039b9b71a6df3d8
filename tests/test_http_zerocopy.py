"""Bodies sent from their files by sendfile (http/zerocopy.py): the bytes
of a file-backed object whole, in ranges across its cells and as a delta,
against a real server; a client that leaves mid-body leaves the server
serving, with no traceback in its log. Over TLS the extension is not
offered and the same reads stream as before (tests/test_tls.py).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.server import CacheServer

SERVER_OPTIONS = dict(with_http=True)  # for the `server` fixture in conftest
MiB = 2**20
SIZE = 9 * MiB + 12_345  # past the store's in-memory threshold (4 MiB): read from its file
RAW = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def http(server: CacheServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def payload(http: httpx.Client) -> bytes:
    data = os.urandom(SIZE)
    assert http.put("/v1/objects/zc/s/big", content=data, headers=RAW).status_code == 201
    return data


def test_a_file_backed_object_arrives_whole(http: httpx.Client, payload: bytes) -> None:
    for _ in range(3):  # loaded once, then sent from the same descriptor
        got = http.get("/v1/objects/zc/s/big")
        assert got.status_code == 200 and got.headers["content-length"] == str(SIZE)
        assert got.content == payload


@pytest.mark.parametrize(("start", "end"), [(0, 0), (1, 5 * MiB), (4 * MiB - 3, SIZE - 1), (SIZE - 1, SIZE - 1)])
def test_ranges_of_it_are_the_right_bytes(http: httpx.Client, payload: bytes, start: int, end: int) -> None:
    got = http.get("/v1/objects/zc/s/big", headers={"Range": f"bytes={start}-{end}"})
    assert got.status_code == 206 and got.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert got.content == payload[start : end + 1]


def test_a_large_delta_arrives_whole(http: httpx.Client) -> None:
    base, delta = os.urandom(5 * MiB), os.urandom(6 * MiB)
    assert http.put("/v1/objects/zc/s/patched", content=base, headers=RAW).status_code == 201
    assert http.patch("/v1/objects/zc/s/patched", content=delta, headers=RAW).status_code == 200
    got = http.get("/v1/objects/zc/s/patched", params={"delta": 0})
    assert got.status_code == 200 and got.content == delta
    assert http.get("/v1/objects/zc/s/patched").content == base


def test_a_client_leaving_mid_body_leaves_the_server_serving(server: CacheServer, http: httpx.Client, payload: bytes) -> None:
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /v1/objects/zc/s/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        # closed with most of the body unread: the server's send fails mid-file
    assert http.get("/v1/objects/zc/s/big").content == payload
    log = server.log()
    assert "Traceback" not in log and "without completing response" not in log, log[-3000:]


def test_bytes_sent_by_sendfile_are_counted_in_the_metrics(http: httpx.Client, payload: bytes) -> None:
    """flame_cache_request_bytes_total{protocol="http",direction="out"} moves by a
    sendfile body's length as by any other (plus the scrape's own answer)."""

    def sent() -> tuple[float, int]:
        answer = http.get("/metrics")
        line = next(
            line for line in answer.text.splitlines()
            if line.startswith('flame_cache_request_bytes_total{') and 'protocol="http"' in line and 'direction="out"' in line
        )  # fmt: skip
        return float(line.rsplit(" ", 1)[1]), len(answer.content)

    before, scrape = sent()
    got = http.get("/v1/objects/zc/s/big")
    assert got.content == payload
    after, _ = sent()
    assert after - before == SIZE + scrape  # the object once, and the first scrape's own answer
