"""The HTTP client of the benchmark: the one place that knows the mirror's routes.

If the mirror's routes or headers change, fix the constants and, at most,
the methods of `HttpAdapter`. Routes used (flame_cache/http/objects.py):

    GET   /healthz                  200 when serving (checked before any HTTP row)
    PUT   /v1/objects/{key}         raw body (application/octet-stream) = the object's
                                    bytes; the new version in `ETag: "<n>"` (or JSON "version")
    GET   /v1/objects/{key}         the raw base bytes; `If-None-Match: "<version>"` -> 304
    PATCH /v1/objects/{key}         raw body = one delta
    GET   /v1/objects/{key}?format=arrow&version=<v>
                                    the Arrow IPC stream DoGet sends for ticket <key>:<v>
                                    (for the patch-only read: one row per newer delta)

Plain `http.client` with one keep-alive connection per client: no dependency,
and bodies are streamed in 1 MiB pieces, never joined on the client side.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote, urlsplit

HEALTH_ROUTE = "/healthz"
OBJECT_ROUTE = "/v1/objects/{key}"
PATCH_METHOD = "PATCH"  # on OBJECT_ROUTE; None: no HTTP patch, the rows say n/a
ARROW_READ_QUERY = "?format=arrow&version={version}"  # None: no HTTP patch-only read, n/a
RAW = "application/octet-stream"
READ_CHUNK = 1 << 20


class NotAvailable(Exception):
    """This operation has no HTTP route (yet): the row is reported as n/a."""


def healthy(endpoint: str, timeout: float = 2.0) -> tuple[bool, str]:
    parts = urlsplit(endpoint)
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        conn.request("GET", HEALTH_ROUTE)
        response = conn.getresponse()
        response.read()
        conn.close()
    except OSError as exc:
        return False, f"n/a: HTTP mirror not running ({endpoint}{HEALTH_ROUTE}: {exc.strerror or exc})"
    except http.client.HTTPException as exc:
        return False, f"n/a: HTTP mirror not running ({endpoint}{HEALTH_ROUTE}: {exc!r})"
    if response.status != 200:
        return False, f"n/a: HTTP mirror not healthy ({endpoint}{HEALTH_ROUTE} answered {response.status})"
    return True, ""


class _NoDelayConnection(http.client.HTTPConnection):
    """TCP_NODELAY, as curl, urllib3 and httpx set it: http.client sends a
    request's headers and body in two writes, and Nagle would hold the body
    back until the server's (delayed) ACK of the headers."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HttpAdapter:
    name = "http"

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname, parts.port or 80
        self.conn = _NoDelayConnection(self.host, self.port, timeout=600)
        self.buffer = bytearray(READ_CHUNK)

    def _path(self, key: str) -> str:
        return OBJECT_ROUTE.format(key=quote(key, safe="/"))

    def _request(self, method: str, path: str, body=None, headers: dict | None = None) -> http.client.HTTPResponse:
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            return self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.conn.close()  # a keep-alive connection the server dropped: once more on a new one
            self.conn.request(method, path, body=body, headers=headers or {})
            return self.conn.getresponse()

    def put(self, key: str, payload) -> int:
        """`payload`: a bench.clients.Payload (its `view` is sent) or bytes."""
        return self._write("PUT", key, payload)

    def _write(self, method: str, key: str, payload) -> int:
        data = getattr(payload, "view", payload)
        response = self._request(
            method, self._path(key), body=data, headers={"Content-Type": RAW, "Content-Length": str(len(data))}
        )
        body = response.read()
        if response.status not in (200, 201, 204):
            raise RuntimeError(f"HTTP {method} {key}: {response.status} {body[:200]!r}")
        etag = response.getheader("ETag")
        if etag:
            return int(etag.strip('W/"'))
        try:
            return int(json.loads(body)["version"])
        except (ValueError, KeyError, TypeError):
            return 0

    def get(self, key: str) -> int:
        response = self._request("GET", self._path(key))
        if response.status != 200:
            body = response.read()
            raise RuntimeError(f"HTTP GET {key}: {response.status} {body[:200]!r}")
        total = 0
        view = memoryview(self.buffer)
        while True:
            n = response.readinto(view)
            if not n:
                break
            total += n
        return total

    def prepare_not_modified(self, key: str, payload) -> int:
        return self.put(key, payload)

    def not_modified(self, key: str, version: int) -> None:
        response = self._request("GET", self._path(key), headers={"If-None-Match": f'"{version}"'})
        body = response.read()
        if response.status != 304:
            raise RuntimeError(f"HTTP GET {key} If-None-Match {version}: expected 304, got {response.status}")
        del body

    def patch(self, key: str, payload) -> int:
        if PATCH_METHOD is None:
            raise NotAvailable("n/a: no HTTP route for a patch is known (bench/http_adapter.py)")
        return self._write(PATCH_METHOD, key, payload)

    def patches(self, key: str, since: int) -> int:
        """Rows of the Arrow stream that answers a client holding version `since`."""
        if ARROW_READ_QUERY is None:
            raise NotAvailable("n/a: no HTTP route for a patch-only read is known (bench/http_adapter.py)")
        import pyarrow as pa

        response = self._request("GET", self._path(key) + ARROW_READ_QUERY.format(version=since))
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP GET {key} as Arrow since {since}: {response.status} {body[:200]!r}")
        return pa.ipc.open_stream(body).read_all().num_rows

    def close(self) -> None:
        self.conn.close()
