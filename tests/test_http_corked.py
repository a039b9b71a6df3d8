"""Responses whose head waits for their body (http/corked.py), over raw
sockets against a real server: a 100 Continue still goes at once, and a
response without a body (HEAD, 304) still gets its head out, also when the
connection closes after it.
"""

from __future__ import annotations

import socket

import httpx

from tests.server import CacheServer

SERVER_OPTIONS = {"with_http": True}


def read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_100_continue_goes_before_the_body_is_sent(server: CacheServer) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/objects/cork/s/one HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")  # nothing sent yet but the head
        sock.sendall(b"hello")
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")


def test_bodiless_answers_get_their_head_also_when_the_connection_closes(server: CacheServer) -> None:
    put = httpx.put(f"{server.http_url}/v1/objects/cork/s/two", content=b"x", headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 201
    for request, status in (
        (b"HEAD /v1/objects/cork/s/two HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"200"),
        (b'GET /v1/objects/cork/s/two HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: "1"\r\nConnection: close\r\n\r\n', b"304"),
        (b"GET /v1/objects/cork/s/none HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"404"),
    ):
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
            sock.sendall(request)
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer
        assert answer.count(b"HTTP/1.1 ") == 1, answer


def test_pipelined_requests_are_answered_in_order(server: CacheServer) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3 + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 200 ") == 4, answer


def _collected(client: httpx.Client) -> float:
    """Objects the server's garbage collector has freed so far (prometheus-client's GC collector)."""
    metrics = client.get("/metrics").text
    lines = [line for line in metrics.splitlines() if line.startswith("python_gc_objects_collected_total{")]
    assert lines, "python_gc_objects_collected_total missing from /metrics"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_requests_leave_no_reference_cycles_for_the_garbage_collector(server: CacheServer) -> None:
    """The wrappers a request's cycle gets (send, receive, transport) each refer
    to the cycle; taken off when its response is sent, a request's objects are
    freed as it ends. Left on, every request was 27 objects of cyclic garbage."""
    requests = 0
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        before = _collected(client)
        for i in range(200):
            key = f"/v1/objects/cork/gc/o{i % 4}"
            assert client.put(key, content=b"x" * 1024, headers={"Content-Type": "application/octet-stream"}).status_code < 300
            assert client.get(key).status_code == 200
            assert client.head(key).status_code == 200
            assert client.get(key, headers={"If-None-Match": client.head(key).headers["etag"]}).status_code == 304
            requests += 5
        freed = _collected(client) - before
    assert freed < requests / 10, f"{freed:.0f} objects of cyclic garbage after {requests} requests"
