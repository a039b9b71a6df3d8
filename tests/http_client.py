"""httpx calls in the shapes our HTTP tests use: the twin of tests/flight_client.py."""

from __future__ import annotations

import http.client
import io
import itertools
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pyarrow as pa

RAW = "application/octet-stream"
ARROW = "application/vnd.apache.arrow.stream"


def object_path(key: str) -> str:
    return "/v1/objects/" + quote(key, safe="/")


def put(http: httpx.Client, key: str, data: bytes, **headers: str) -> httpx.Response:
    return http.put(f"/v1/objects/{key}", content=data, headers={"Content-Type": RAW, **headers})


def ipc(table: pa.Table) -> bytes:
    """`table` as an Arrow IPC stream body."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def arrow_rows(response: httpx.Response) -> list[tuple[int, str, bytes]]:
    """The version/kind/data rows of an Arrow stream answer (DoGet's rows)."""
    assert response.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(response.content).read_all()
    return [(r["version"], r["kind"], r["data"]) for r in table.to_pylist()]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def request_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    """The request line and headers, as written (no Host added)."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send(
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | Iterable[bytes] | None = None,
) -> Answer:
    """One request on a connection of its own, its target and headers sent byte for byte
    as given (httpx and urllib tidy `..` and `.` segments away before sending). A bytes
    body goes with a Content-Length (unless one is given), an iterable one chunked."""
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", **dict(headers)}
    parts: Iterable[bytes] = ()
    if isinstance(body, bytes):
        head.setdefault("Content-Length", str(len(body)))
        parts = (body,)
    elif body is not None:
        head["Transfer-Encoding"] = "chunked"
        parts = itertools.chain((b"%x\r\n%b\r\n" % (len(c), c) for c in body if c), (b"0\r\n\r\n",))
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(request_head(method, target, head))
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading it all (413) and closed: read that answer
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
