"""Request heads the transport refuses, over raw sockets: an over-long request
line (414), over-large headers (431), Content-Length with Transfer-Encoding
(400). Each gets a JSON `{"error", "message"}` answer naming what was wrong,
then the connection is closed, and the server keeps serving.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import httpx
import pytest

from tests.server import CacheServer

SERVER_OPTIONS = {"with_http": True}
MiB = 1 << 20


def exchange(server: CacheServer, request: bytes, timeout: float = 10.0) -> bytes:
    """Send `request` whole, then read until the server closes; what it answered."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + timeout
        answer = b""
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk
    raise AssertionError(f"the server did not close the connection within {timeout}s; it sent {answer[:300]!r}")


def refusal(answer: bytes) -> tuple[int, dict]:
    """The status and JSON body of a refusal; checks it says it closes."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    assert headers.get("connection") == "close", head
    assert headers.get("content-type") == "application/json", head
    assert int(headers["content-length"]) == len(body), head
    return status, json.loads(body)


def still_serving(server: CacheServer) -> None:
    assert httpx.get(f"{server.http_url}/healthz", timeout=10).status_code == 200


def test_an_over_long_request_line_is_414(server: CacheServer) -> None:
    status, body = refusal(exchange(server, b"GET /v1/objects/" + b"a" * MiB + b" HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 414 and body["error"] == "uri_too_long"
    assert "request line is longer than 32768 bytes" in body["message"]
    still_serving(server)


def test_a_request_line_just_over_the_limit_arriving_whole_is_414(server: CacheServer) -> None:
    """Shorter than h11's buffer limit: parsed, then refused."""
    request = b"GET /v1/objects/a/b?prefix=" + b"p" * 33_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, body = refusal(exchange(server, request))
    assert status == 414, body
    still_serving(server)


def test_over_large_headers_are_431(server: CacheServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * MiB + b"\r\n\r\n"
    status, body = refusal(exchange(server, request))
    assert status == 431 and body["error"] == "headers_too_large"
    assert "headers are larger than 65536 bytes" in body["message"]
    still_serving(server)


def test_many_headers_over_the_limit_are_431(server: CacheServer) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(1000))  # ~110 KiB
    status, body = refusal(exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"))
    assert status == 431, body
    still_serving(server)


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"content-length: 0\r\ntransfer-encoding: chunked\r\n",
    ],
)
def test_content_length_with_transfer_encoding_is_400_and_stores_nothing(server: CacheServer, framing: bytes) -> None:
    request = (
        b"PUT /v1/objects/smuggle/s/one HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        + framing
        + b"\r\n5\r\nhello\r\n0\r\n\r\n"
        + b"DELETE /v1/objects/smuggle/s/one HTTP/1.1\r\nHost: x\r\n\r\n"  # never read as a request
    )
    answer = exchange(server, request)
    status, body = refusal(answer)
    assert status == 400 and body["error"] == "bad_request"
    assert "both Content-Length and Transfer-Encoding" in body["message"]
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # the smuggled request got no answer
    assert httpx.get(f"{server.http_url}/v1/objects/smuggle/s/one", timeout=10).status_code == 404


def test_a_malformed_request_line_is_400_naming_the_reason(server: CacheServer) -> None:
    status, body = refusal(exchange(server, b"GET\r\n\r\n"))
    assert status == 400 and body["message"].startswith("malformed HTTP request: "), body
    still_serving(server)


def test_the_longest_key_still_fits(server: CacheServer) -> None:
    """Long keys, every byte percent-encoded, are far below the line limit."""
    key = "/".join(["é" * 127] * 2 + ["o" * 200])  # 710 bytes, 1,724 percent-encoded
    path = "/v1/objects/" + quote(key, safe="/")
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        put = http.put(path, content=b"x", headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        assert http.get(path).content == b"x"
