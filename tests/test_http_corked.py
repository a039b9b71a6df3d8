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
